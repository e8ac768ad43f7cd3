"""Discrete networks built from a genotype, for retraining: the DARTS evaluation network and the NAS-Bench-201 one.

Both return (logits, auxiliary_logits); the second is None unless the auxiliary head is on and the model trains.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.ops import stochastic_depth

from run_kit.device import autocast, widen
from search_spaces import Genotype, NB201Genotype, nb201, space_of
from search_spaces.operations import DARTS_OPS, NB201_OPS, Identity

from .skeleton import (ResNetBasicBlock, cell_walk, darts_cells, darts_preprocess, darts_reduction_layers, nb201_head,
                       nb201_stages, stem)


class DartsEvalCell(nn.Module):
    """Node i = the sum of its 2 chosen edges; drop-path (whole samples zeroed with probability p, the rest scaled by
    1/(1-p)) on every non-identity op while training; output = concat of the `concat` nodes."""

    def __init__(self, genotype: Genotype, slot):
        super().__init__()
        self.reduction = slot.reduction
        pairs = genotype.reduce if slot.reduction else genotype.normal
        self.concat = list(genotype.reduce_concat if slot.reduction else genotype.normal_concat)
        self.preprocess0, self.preprocess1 = darts_preprocess(slot, affine=True)
        self.node_inputs = [[pairs[2 * node][1], pairs[2 * node + 1][1]] for node in range(len(pairs) // 2)]
        self.ops = nn.ModuleList(DARTS_OPS[op](slot.c, 2 if slot.reduction and j < 2 else 1, True) for op, j in pairs)

    def _edge(self, k: int, h: torch.Tensor, drop_prob: float) -> torch.Tensor:
        h = self.ops[k](h)
        if isinstance(self.ops[k], Identity):
            return h
        return stochastic_depth(h, drop_prob, "row", self.training)

    def forward(self, s0, s1, drop_prob: float):
        states = cell_walk([self.preprocess0(s0), self.preprocess1(s1)], self.node_inputs,
                           lambda k, h: self._edge(k, h, drop_prob))
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """DARTS auxiliary classifier after the second reduction (8x8 input at 32 px).

    ReLU, AvgPool 5 stride 3 (an adaptive 2x2 pool when the map is smaller than 8 px), 1x1 conv 128, BN, ReLU,
    2x2 conv 768, BN, ReLU, linear.
    """

    def __init__(self, c: int, num_classes: int, feature_size: int):
        super().__init__()
        pool = (nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False) if feature_size >= 8
                else nn.AdaptiveAvgPool2d(2))
        self.features = nn.Sequential(
            nn.ReLU(inplace=True), pool,
            nn.Conv2d(c, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class DartsNetwork(nn.Module):
    """The DARTS evaluation network: affine BN, optional auxiliary head, drop-path set per epoch by the trainer."""

    def __init__(self, genotype: Genotype, num_classes: int, in_channels: int = 3, C: int = 36, layers: int = 20,
                 auxiliary: bool = False, image_size: int = 32, stem_multiplier: int = 3, precision: str = "fp32"):
        super().__init__()
        self.genotype = genotype
        self.precision = precision
        self.drop_path_prob = 0.0
        self.stem = stem(in_channels, stem_multiplier * C)
        slots = list(darts_cells(C, layers, stem_multiplier, len(genotype.normal_concat), len(genotype.reduce_concat)))
        self.cells = nn.ModuleList(DartsEvalCell(genotype, slot) for slot in slots)
        self.aux_position = darts_reduction_layers(layers)[1]
        self.auxiliary_head = None
        if auxiliary:
            aux_slot = slots[self.aux_position]
            outputs = len(genotype.reduce_concat if aux_slot.reduction else genotype.normal_concat)
            self.auxiliary_head = AuxiliaryHead(outputs * aux_slot.c, num_classes, -(-image_size // 4))
        last = slots[-1]
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(len(genotype.reduce_concat if last.reduction else genotype.normal_concat) * last.c,
                                    num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        aux = None
        with autocast(self.precision, x.device.type):
            s0 = s1 = self.stem(x)
            for i, cell in enumerate(self.cells):
                s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
                if i == self.aux_position and self.auxiliary_head is not None and self.training:
                    aux = widen(self.auxiliary_head(s1))
            return widen(self.classifier(self.pool(s1).flatten(1))), aux


class NB201Cell(nn.Module):
    def __init__(self, genotype: NB201Genotype, C: int):
        super().__init__()
        self.ops = nn.ModuleList(NB201_OPS[op](C, 1, True) for op in genotype.ops)

    def forward(self, x):
        return cell_walk([x], nb201.NODE_INPUTS, lambda k, h: self.ops[k](h))[-1]


class NB201Network(nn.Module):
    """The NAS-Bench-201 network for one cell: C=16, N=5 per stage by default."""

    def __init__(self, genotype: NB201Genotype, num_classes: int, in_channels: int = 3, C: int = 16, layers: int = 5,
                 precision: str = "fp32"):
        super().__init__()
        self.genotype = genotype
        self.precision = precision
        self.drop_path_prob = 0.0  # not used by NAS-Bench-201 training; kept so trainers treat both alike
        self.auxiliary_head = None
        self.stem = stem(in_channels, C)
        self.cells = nn.Sequential(*(NB201Cell(genotype, c_out) if kind == "cell" else ResNetBasicBlock(c_in, c_out)
                                     for kind, c_in, c_out in nb201_stages(C, layers)))
        self.lastact, self.classifier = nb201_head(4 * C, num_classes)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        with autocast(self.precision, x.device.type):
            return widen(self.classifier(self.pool(self.lastact(self.cells(self.stem(x)))).flatten(1))), None


def create_network(genotype: Any, num_classes: int, in_channels: int, C: int, layers: int, auxiliary: bool = False,
                   image_size: int = 32, precision: str = "fp32") -> nn.Module:
    """The discrete network of the genotype's space; `auxiliary` applies to the DARTS space only; `precision`
    "bf16" runs its forward pass under bfloat16 autocast."""
    space = space_of(genotype)
    space.check_image_size(image_size)
    if space.name == "darts":
        return DartsNetwork(genotype, num_classes, in_channels, C, layers, auxiliary, image_size, precision=precision)
    return NB201Network(genotype, num_classes, in_channels, C, layers, precision=precision)


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
