"""Size and cost of a network: parameters and multiply-adds, as DARTS and NAS-Bench-201 count them. The discrete
networks themselves are built per space by `supernet.spaces.create_network`."""
from __future__ import annotations

import torch
from torch import nn


def count_parameters_m(model: nn.Module) -> float:
    """Parameters in millions, auxiliary head excluded (the DARTS convention)."""
    return sum(p.numel() for name, p in model.named_parameters() if "auxiliary" not in name) / 1e6


def count_flops_m(model: nn.Module, in_channels: int, image_size: int) -> float:
    """Multiply-adds in millions for one image (the unit DARTS and NAS-Bench-201 call FLOPs)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    param = next(model.parameters())
    x = torch.zeros(1, in_channels, image_size, image_size, device=param.device, dtype=param.dtype)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() / 2 / 1e6
