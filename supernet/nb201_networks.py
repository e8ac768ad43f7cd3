"""The NAS-Bench-201 space's networks: the search supernet and the network built from a cell, on the benchmark's
macro skeleton (stem C; N cells, a residual reduction block, N cells at 2C, a block, N cells at 4C; BN-ReLU, pooling,
linear), so both lay out cells identically. Registered with the space in supernet/spaces.py."""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import nn

from run_kit.device import autocast, widen
from search_spaces import NB201Genotype, SearchSpace, nb201
from search_spaces.operations import NB201_OPS, ReLUConvBN

from .model import CellWeights, mixed_edges, relax, run_cell, walk_mixed
from .relaxation import SoftmaxRelaxation
from .skeleton import cell_walk, stem


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


def nb201_feature_maps(C: int, layers: int) -> list[tuple[int, int]]:
    """(channels, downsampling factor) of the node maps of every cell of the network."""
    factors = {C: 1, 2 * C: 2, 4 * C: 4}
    return [(c_out, factors[c_out]) for kind, _, c_out in nb201_stages(C, layers) if kind == "cell"]


class NB201SearchCell(nn.Module):
    """node_i = sum_{j<i} mixed_{i<-j}(node_j), output = node_3; search BN without affine."""

    def __init__(self, op_names: Sequence[str], C: int, partial: int = 1):
        super().__init__()
        self.edges = mixed_edges(NB201_OPS, op_names, C, [1] * len(nb201.EDGES), bn_after_pool=False, partial=partial)

    def forward(self, x, w: CellWeights):
        return walk_mixed(self.edges, nb201.NODE_INPUTS, [x], w)[-1]


class NB201Supernet(nn.Module):
    """NAS-Bench-201 skeleton (C=16, N=5 by default) with every cell a search cell."""

    def __init__(self, space: SearchSpace, num_classes: int, in_channels: int = 3, C: int = 16, layers: int = 5,
                 relaxation=None, partial: int = 1, recompute: bool = False, precision: str = "fp32"):
        super().__init__()
        self.space = space
        self.recompute, self.precision = recompute, precision
        self.relaxation = relaxation or SoftmaxRelaxation()
        self.stem = stem(in_channels, C)
        self.cells = nn.ModuleList(NB201SearchCell(space.ops, c_out, partial) if kind == "cell"
                                   else ResNetBasicBlock(c_in, c_out) for kind, c_in, c_out in nb201_stages(C, layers))
        self.lastact, self.classifier = nb201_head(4 * C, num_classes)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor, logits: Mapping[str, torch.Tensor], relaxation=None) -> torch.Tensor:
        """`relaxation` overrides the network's own for this call (e.g. DiscreteRelaxation for a sampled cell)."""
        w = relax(self.space, relaxation or self.relaxation, logits, self.training)["cell"]
        with autocast(self.precision, x.device.type):
            h = self.stem(x)
            for cell in self.cells:
                h = run_cell(self.recompute, cell, h, w) if isinstance(cell, NB201SearchCell) else cell(h)
            return widen(self.classifier(self.pool(self.lastact(h)).flatten(1)))


class NB201Cell(nn.Module):
    def __init__(self, genotype: NB201Genotype, C: int):
        super().__init__()
        self.ops = nn.ModuleList(NB201_OPS[op](C, 1, True) for op in genotype.ops)

    def forward(self, x):
        return cell_walk([x], nb201.NODE_INPUTS, lambda k, h: self.ops[k](h))[-1]


class NB201Network(nn.Module):
    """The NAS-Bench-201 network for one cell: C=16, N=5 per stage by default. The benchmark trains it without an
    auxiliary head, so `auxiliary` (and `image_size`, which only sizes one) changes nothing."""

    def __init__(self, genotype: NB201Genotype, num_classes: int, in_channels: int = 3, C: int = 16, layers: int = 5,
                 auxiliary: bool = False, image_size: int = 32, precision: str = "fp32"):
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
