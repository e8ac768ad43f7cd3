"""Weight-sharing supernets. They own weights only: architecture logits come in through `forward`.

forward(x, logits) with logits = {cell_type: tensor [edges, ops]}; every edge computes
    mixed(x) = sum_k w_k * op_k(x)            (softmax relaxation; `none` is skipped, it adds zeros)
    mixed(x) = h_k* * op_k*(x)                (hard relaxation: only the sampled op k* runs)
where w = relaxation(logits[cell_type]), shared by all cells of that type.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from search_spaces import SearchSpace
from search_spaces.operations import DARTS_OPS, NB201_OPS, POOL_OPS, OpFactory, Zero

from .relaxation import SoftmaxRelaxation
from .skeleton import (ResNetBasicBlock, darts_cells, darts_preprocess, darts_stem, nb201_head, nb201_stages,
                       nb201_stem)


class MixedOp(nn.Module):
    def __init__(self, registry: Mapping[str, OpFactory], op_names: Sequence[str], C: int, stride: int,
                 bn_after_pool: bool):
        super().__init__()
        ops = []
        for name in op_names:
            op = registry[name](C, stride, False)
            if bn_after_pool and name in POOL_OPS:
                op = nn.Sequential(op, nn.BatchNorm2d(C, affine=False))
            ops.append(op)
        self.ops = nn.ModuleList(ops)
        self.computed = [k for k, op in enumerate(self.ops) if not isinstance(op, Zero)]

    def forward(self, x: torch.Tensor, weights: torch.Tensor, active: int | None) -> torch.Tensor:
        if active is not None:
            return self.ops[active](x) * weights[active]
        return sum(weights[k] * self.ops[k](x) for k in self.computed)


def _edge_weights(relaxation, logits: Mapping[str, torch.Tensor], sample: bool
                  ) -> dict[str, tuple[torch.Tensor, list | None]]:
    """Relax each cell type's logits once per forward; under a hard relaxation also name the op to run per edge."""
    out = {}
    for cell_type, value in logits.items():
        weights = relaxation(value, sample=sample)
        out[cell_type] = (weights, weights.argmax(-1).tolist() if relaxation.hard else None)
    return out


class DartsSearchCell(nn.Module):
    """2 inputs, `steps` nodes; node i = sum over its inputs j of mixed(state j); output = concat of the nodes."""

    def __init__(self, op_names: Sequence[str], steps: int, slot):
        super().__init__()
        self.reduction = slot.reduction
        self.steps = steps
        self.preprocess0, self.preprocess1 = darts_preprocess(slot, affine=False)
        self.edges = nn.ModuleList(
            MixedOp(DARTS_OPS, op_names, slot.c, 2 if slot.reduction and j < 2 else 1, bn_after_pool=True)
            for i in range(steps) for j in range(2 + i))

    def forward(self, s0, s1, weights: torch.Tensor, active: list | None):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.steps):
            states.append(sum(self.edges[offset + j](h, weights[offset + j],
                                                     None if active is None else active[offset + j])
                              for j, h in enumerate(states)))
            offset += len(states) - 1
        return torch.cat(states[2:], dim=1)


class DartsSupernet(nn.Module):
    """The DARTS search network: stem (3C), `layers` cells with reductions at layers//3 and 2*layers//3, GAP, linear."""

    def __init__(self, space: SearchSpace, num_classes: int, in_channels: int = 3, C: int = 16, layers: int = 8,
                 steps: int = 4, stem_multiplier: int = 3, relaxation=None):
        super().__init__()
        self.space = space
        self.relaxation = relaxation or SoftmaxRelaxation()
        self.stem = darts_stem(in_channels, stem_multiplier * C)
        slots = list(darts_cells(C, layers, stem_multiplier, steps, steps))
        self.cells = nn.ModuleList(DartsSearchCell(space.ops, steps, slot) for slot in slots)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(steps * slots[-1].c, num_classes)

    def forward(self, x: torch.Tensor, logits: Mapping[str, torch.Tensor], relaxation=None) -> torch.Tensor:
        """`relaxation` overrides the network's own for this call (e.g. DiscreteRelaxation for a sampled cell)."""
        weights = _edge_weights(relaxation or self.relaxation, logits, self.training)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            w, active = weights["reduce" if cell.reduction else "normal"]
            s0, s1 = s1, cell(s0, s1, w, active)
        return self.classifier(self.pool(s1).flatten(1))


class NB201SearchCell(nn.Module):
    """node_i = sum_{j<i} mixed_{i<-j}(node_j), output = node_3; search BN without affine."""

    def __init__(self, op_names: Sequence[str], C: int, nodes: int = 4):
        super().__init__()
        self.nodes = nodes
        self.edges = nn.ModuleList(MixedOp(NB201_OPS, op_names, C, 1, bn_after_pool=False)
                                   for i in range(1, nodes) for _ in range(i))

    def forward(self, x, weights: torch.Tensor, active: list | None):
        states = [x]
        offset = 0
        for _ in range(1, self.nodes):
            states.append(sum(self.edges[offset + j](h, weights[offset + j],
                                                     None if active is None else active[offset + j])
                              for j, h in enumerate(states)))
            offset += len(states) - 1
        return states[-1]


class NB201Supernet(nn.Module):
    """NAS-Bench-201 skeleton (C=16, N=5 by default) with every cell a search cell."""

    def __init__(self, space: SearchSpace, num_classes: int, in_channels: int = 3, C: int = 16, layers: int = 5,
                 relaxation=None):
        super().__init__()
        self.space = space
        self.relaxation = relaxation or SoftmaxRelaxation()
        self.stem = nb201_stem(in_channels, C)
        self.cells = nn.ModuleList(NB201SearchCell(space.ops, c_out) if kind == "cell" else ResNetBasicBlock(c_in, c_out)
                                   for kind, c_in, c_out in nb201_stages(C, layers))
        self.lastact, self.classifier = nb201_head(4 * C, num_classes)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor, logits: Mapping[str, torch.Tensor], relaxation=None) -> torch.Tensor:
        """`relaxation` overrides the network's own for this call (e.g. DiscreteRelaxation for a sampled cell)."""
        w, active = _edge_weights(relaxation or self.relaxation, logits, self.training)["cell"]
        h = self.stem(x)
        for cell in self.cells:
            h = cell(h, w, active) if isinstance(cell, NB201SearchCell) else cell(h)
        return self.classifier(self.pool(self.lastact(h)).flatten(1))


SUPERNETS = {"darts": DartsSupernet, "nb201": NB201Supernet}


def create_supernet(space: SearchSpace, num_classes: int, in_channels: int, C: int, layers: int,
                    relaxation=None) -> nn.Module:
    return SUPERNETS[space.name](space, num_classes, in_channels=in_channels, C=C, layers=layers,
                                 relaxation=relaxation)


class ArchLogits(nn.Module):
    """Free architecture logits for a plain DARTS search, kept as parameters so they checkpoint and move with `.to()`.

    Initialised to 1e-3 * N(0, 1), as the DARTS reference does.
    """

    def __init__(self, space: SearchSpace, init_std: float = 1e-3):
        super().__init__()
        self.logits = nn.ParameterDict({cell_type: nn.Parameter(init_std * torch.randn(*shape))
                                        for cell_type, shape in space.logits_shapes().items()})

    def forward(self) -> dict[str, torch.Tensor]:
        return dict(self.logits.items())
