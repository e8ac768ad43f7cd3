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

from search_spaces import SearchSpace, darts, nb201
from search_spaces.operations import DARTS_OPS, NB201_OPS, POOL_OPS, OpFactory, Zero

from .relaxation import SoftmaxRelaxation
from .skeleton import ResNetBasicBlock, cell_walk, darts_cells, darts_preprocess, nb201_head, nb201_stages, stem


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


def mixed_edges(registry: Mapping[str, OpFactory], op_names: Sequence[str], C: int, strides: Sequence[int],
                bn_after_pool: bool) -> nn.ModuleList:
    return nn.ModuleList(MixedOp(registry, op_names, C, stride, bn_after_pool) for stride in strides)


def walk_mixed(edges: nn.ModuleList, node_inputs, states: list[torch.Tensor], weights: torch.Tensor,
               active: list | None) -> list[torch.Tensor]:
    """The cell walk of a search cell: edge k is the mixed op k under the edge's weights (or its sampled op)."""
    return cell_walk(states, node_inputs, lambda k, h: edges[k](h, weights[k], None if active is None else active[k]))


class DartsSearchCell(nn.Module):
    """2 inputs, 4 nodes reading the inputs and every earlier node; output = concat of the nodes."""

    def __init__(self, op_names: Sequence[str], slot):
        super().__init__()
        self.reduction = slot.reduction
        self.preprocess0, self.preprocess1 = darts_preprocess(slot, affine=False)
        strides = [2 if slot.reduction and j < 2 else 1 for inputs in darts.NODE_INPUTS for j in inputs]
        self.edges = mixed_edges(DARTS_OPS, op_names, slot.c, strides, bn_after_pool=True)

    def forward(self, s0, s1, weights: torch.Tensor, active: list | None):
        states = walk_mixed(self.edges, darts.NODE_INPUTS, [self.preprocess0(s0), self.preprocess1(s1)], weights,
                            active)
        return torch.cat(states[2:], dim=1)


class NB201SearchCell(nn.Module):
    """node_i = sum_{j<i} mixed_{i<-j}(node_j), output = node_3; search BN without affine."""

    def __init__(self, op_names: Sequence[str], C: int):
        super().__init__()
        self.edges = mixed_edges(NB201_OPS, op_names, C, [1] * len(nb201.EDGES), bn_after_pool=False)

    def forward(self, x, weights: torch.Tensor, active: list | None):
        return walk_mixed(self.edges, nb201.NODE_INPUTS, [x], weights, active)[-1]


class DartsSupernet(nn.Module):
    """The DARTS search network: stem (3C), `layers` cells with reductions at layers//3 and 2*layers//3, GAP, linear."""

    def __init__(self, space: SearchSpace, num_classes: int, in_channels: int = 3, C: int = 16, layers: int = 8,
                 stem_multiplier: int = 3, relaxation=None):
        super().__init__()
        self.space = space
        self.relaxation = relaxation or SoftmaxRelaxation()
        self.stem = stem(in_channels, stem_multiplier * C)
        steps = len(darts.NODE_INPUTS)
        slots = list(darts_cells(C, layers, stem_multiplier, steps, steps))
        self.cells = nn.ModuleList(DartsSearchCell(space.ops, slot) for slot in slots)
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


class NB201Supernet(nn.Module):
    """NAS-Bench-201 skeleton (C=16, N=5 by default) with every cell a search cell."""

    def __init__(self, space: SearchSpace, num_classes: int, in_channels: int = 3, C: int = 16, layers: int = 5,
                 relaxation=None):
        super().__init__()
        self.space = space
        self.relaxation = relaxation or SoftmaxRelaxation()
        self.stem = stem(in_channels, C)
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
    """Architecture logits as parameters, so they checkpoint, move with `.to()` and are what an optimiser steps:
    the free logits of a plain search (`ArchLogits.random`) or a task's logits during adaptation, started from the
    controller's output."""

    def __init__(self, initial: Mapping[str, torch.Tensor]):
        super().__init__()
        self.logits = nn.ParameterDict({k: nn.Parameter(v.detach().clone()) for k, v in initial.items()})

    @classmethod
    def random(cls, space: SearchSpace, init_std: float = 1e-3) -> "ArchLogits":
        """init_std * N(0, 1), as the DARTS reference initialises its alphas."""
        return cls({cell_type: init_std * torch.randn(*shape) for cell_type, shape in space.logits_shapes().items()})

    def forward(self) -> dict[str, torch.Tensor]:
        return dict(self.logits.items())
