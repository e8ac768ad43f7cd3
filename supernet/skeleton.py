"""What the search supernets and the discrete networks share, so both lay out cells identically: the cell walk,
the stem, the DARTS channel bookkeeping and cell-input preprocessing, and the NAS-Bench-201 stages and head."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from search_spaces.operations import FactorizedReduce, ReLUConvBN


@dataclass(frozen=True)
class DartsCellSlot:
    c_prev_prev: int
    c_prev: int
    c: int
    reduction: bool
    reduction_prev: bool


def cell_walk(states: list[torch.Tensor], node_inputs: Sequence[Sequence[int]],
              edge: Callable[[int, torch.Tensor], torch.Tensor]) -> list[torch.Tensor]:
    """Every cell of both spaces, searched or discrete: node i = sum over its inputs j of edge_k(state j).

    `states` holds the cell's inputs; `node_inputs[i]` lists the states node i reads; edges are numbered k = 0, 1, ...
    in that order (the logits-row order). Returns `states` with every node appended.
    """
    k = 0
    for inputs in node_inputs:
        total = None
        for j in inputs:
            h = edge(k, states[j])
            total = h if total is None else total + h
            k += 1
        states.append(total)
    return states


def stem(in_channels: int, c_out: int) -> nn.Sequential:
    """conv 3x3 + BN, the stem of both the DARTS and the NAS-Bench-201 networks."""
    return nn.Sequential(nn.Conv2d(in_channels, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))


def darts_reduction_layers(layers: int) -> tuple[int, int]:
    return layers // 3, 2 * layers // 3


def darts_cells(C: int, layers: int, stem_multiplier: int, normal_outputs: int, reduce_outputs: int
                ) -> Iterator[DartsCellSlot]:
    """Channel bookkeeping of the DARTS network: reductions at layers//3 and 2*layers//3 double C.

    A cell outputs the concat of `*_outputs` nodes, so the next cell's input has `outputs * C` channels.
    """
    c_stem = stem_multiplier * C
    c_prev_prev, c_prev, c_curr = c_stem, c_stem, C
    reduction_prev = False
    for i in range(layers):
        reduction = i in darts_reduction_layers(layers)
        if reduction:
            c_curr *= 2
        yield DartsCellSlot(c_prev_prev, c_prev, c_curr, reduction, reduction_prev)
        outputs = reduce_outputs if reduction else normal_outputs
        c_prev_prev, c_prev = c_prev, outputs * c_curr
        reduction_prev = reduction


def darts_preprocess(slot: DartsCellSlot, affine: bool) -> tuple[nn.Module, nn.Module]:
    """Bring both cell inputs to C channels and the same resolution."""
    if slot.reduction_prev:
        pre0: nn.Module = FactorizedReduce(slot.c_prev_prev, slot.c, affine=affine)
    else:
        pre0 = ReLUConvBN(slot.c_prev_prev, slot.c, 1, 1, 0, affine=affine)
    return pre0, ReLUConvBN(slot.c_prev, slot.c, 1, 1, 0, affine=affine)


class ResNetBasicBlock(nn.Module):
    """NAS-Bench-201's reduction block: ReLU-conv3x3-BN (stride 2), ReLU-conv3x3-BN, + AvgPool2x2-conv1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2, padding=0),
                                      nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x):
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


def nb201_stages(C: int, cells_per_stage: int) -> Iterator[tuple[str, int, int]]:
    """('cell', C, C) x N, ('block', C, 2C), ('cell', 2C, 2C) x N, ('block', 2C, 4C), ('cell', 4C, 4C) x N."""
    for stage, c in enumerate((C, 2 * C, 4 * C)):
        if stage:
            yield "block", c // 2, c
        for _ in range(cells_per_stage):
            yield "cell", c, c


def nb201_head(c: int, num_classes: int) -> tuple[nn.Module, nn.Module]:
    return nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True)), nn.Linear(c, num_classes)


def cell_feature_maps(space: str, C: int, layers: int) -> list[tuple[int, int]]:
    """(channels, downsampling factor) of the node maps of every cell of the space's network."""
    if space == "darts":
        maps, factor = [], 1
        for slot in darts_cells(C, layers, 3, 4, 4):
            factor *= 2 if slot.reduction else 1
            maps.append((slot.c, factor))
        return maps
    factors = {C: 1, 2 * C: 2, 4 * C: 4}
    return [(c_out, factors[c_out]) for kind, _, c_out in nb201_stages(C, layers) if kind == "cell"]


def activation_bytes_lower_bound(space: str, C: int, layers: int, edges_per_cell: int, batch: int,
                                 image_size: int) -> int:
    """What a training step keeps at the least: every edge of every cell holds one fp32 map of its cell's size for
    backward (real networks hold several). Refusing what exceeds memory by this bound never refuses a run that fits."""
    return sum(4 * batch * edges_per_cell * c * (-(-image_size // factor)) ** 2
               for c, factor in cell_feature_maps(space, C, layers))
