"""The DARTS space's networks: the search supernet and the evaluation network built from a genotype, on one macro
skeleton (stem 3C, `layers` cells with reductions at layers//3 and 2*layers//3, global pooling, linear), so both lay
out cells identically. Registered with the space in supernet/spaces.py."""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.ops import stochastic_depth

from run_kit.device import autocast, widen
from search_spaces import Genotype, SearchSpace, darts
from search_spaces.operations import DARTS_OPS, FactorizedReduce, Identity, ReLUConvBN

from .model import CellWeights, mixed_edges, relax, run_cell, walk_mixed
from .relaxation import SoftmaxRelaxation
from .skeleton import cell_walk, stem


@dataclass(frozen=True)
class DartsCellSlot:
    c_prev_prev: int
    c_prev: int
    c: int
    reduction: bool
    reduction_prev: bool


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


def darts_feature_maps(C: int, layers: int) -> list[tuple[int, int]]:
    """(channels, downsampling factor) of the node maps of every cell of the network."""
    maps, factor = [], 1
    for slot in darts_cells(C, layers, 3, 4, 4):
        factor *= 2 if slot.reduction else 1
        maps.append((slot.c, factor))
    return maps


class DartsSearchCell(nn.Module):
    """2 inputs, 4 nodes reading the inputs and every earlier node; output = concat of the nodes."""

    def __init__(self, op_names: Sequence[str], slot, partial: int = 1):
        super().__init__()
        self.reduction = slot.reduction
        self.preprocess0, self.preprocess1 = darts_preprocess(slot, affine=False)
        strides = [2 if slot.reduction and j < 2 else 1 for inputs in darts.NODE_INPUTS for j in inputs]
        self.edges = mixed_edges(DARTS_OPS, op_names, slot.c, strides, bn_after_pool=True, partial=partial)

    def forward(self, s0, s1, w: CellWeights):
        states = walk_mixed(self.edges, darts.NODE_INPUTS, [self.preprocess0(s0), self.preprocess1(s1)], w)
        return torch.cat(states[2:], dim=1)


class DartsSupernet(nn.Module):
    """The DARTS search network: stem (3C), `layers` cells with reductions at layers//3 and 2*layers//3, GAP, linear."""

    def __init__(self, space: SearchSpace, num_classes: int, in_channels: int = 3, C: int = 16, layers: int = 8,
                 stem_multiplier: int = 3, relaxation=None, partial: int = 1, recompute: bool = False,
                 precision: str = "fp32"):
        super().__init__()
        self.space = space
        self.recompute, self.precision = recompute, precision
        self.relaxation = relaxation or SoftmaxRelaxation()
        self.stem = stem(in_channels, stem_multiplier * C)
        steps = len(darts.NODE_INPUTS)
        slots = list(darts_cells(C, layers, stem_multiplier, steps, steps))
        self.cells = nn.ModuleList(DartsSearchCell(space.ops, slot, partial) for slot in slots)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(steps * slots[-1].c, num_classes)

    def forward(self, x: torch.Tensor, logits: Mapping[str, torch.Tensor], relaxation=None) -> torch.Tensor:
        """`relaxation` overrides the network's own for this call (e.g. DiscreteRelaxation for a sampled cell)."""
        weights = relax(self.space, relaxation or self.relaxation, logits, self.training)
        with autocast(self.precision, x.device.type):
            s0 = s1 = self.stem(x)
            for cell in self.cells:
                s0, s1 = s1, run_cell(self.recompute, cell, s0, s1, weights["reduce" if cell.reduction else "normal"])
            return widen(self.classifier(self.pool(s1).flatten(1)))


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
