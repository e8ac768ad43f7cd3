"""Weight-sharing supernets. They own weights only: architecture logits come in through `forward`.

forward(x, logits) with logits = {cell_type: tensor [edges, ops]}; every edge computes
    mixed(x) = sum_k w_k * op_k(x)            (softmax / Dirichlet relaxation; `none` is skipped, it adds zeros)
    mixed(x) = h_k* * op_k*(x)                (hard relaxation: only the sampled op k* runs)
where w = relaxation(logits[cell_type]), shared by all cells of that type. PC-DARTS adds two things:
    partial channels K:   mixed(x) = shuffle_K([ sum_k w_k op_k(x[:C/K]) ; bypass(x[C/K:]) ])
                          bypass = identity (stride 1) or 2x2 max-pool (stride 2); shuffle_K interleaves the K
                          channel groups, so the next step sends other channels through the ops
    edge normalisation:   node_i = sum_j gamma_(i<-j) * mixed_(i<-j)(state_j), gamma = per-node softmax of
                          the edge logits `<cell_type>_edges` (SearchSpace.edge_weights)
"""
from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import torch
from einops import rearrange
from torch import nn

from search_spaces import SearchSpace, darts, nb201
from search_spaces.operations import DARTS_OPS, NB201_OPS, POOL_OPS, OpFactory, Zero

from .relaxation import SoftmaxRelaxation
from .skeleton import ResNetBasicBlock, cell_walk, darts_cells, darts_preprocess, nb201_head, nb201_stages, stem


class MixedOp(nn.Module):
    def __init__(self, registry: Mapping[str, OpFactory], op_names: Sequence[str], C: int, stride: int,
                 bn_after_pool: bool, partial: int = 1):
        super().__init__()
        self.partial = partial
        c = C // partial
        ops = []
        for name in op_names:
            op = registry[name](c, stride, False)
            if bn_after_pool and name in POOL_OPS:
                op = nn.Sequential(op, nn.BatchNorm2d(c, affine=False))
            ops.append(op)
        self.ops = nn.ModuleList(ops)
        self.computed = [k for k, op in enumerate(self.ops) if not isinstance(op, Zero)]
        self.bypass = nn.MaxPool2d(2, 2, ceil_mode=True) if partial > 1 and stride == 2 else nn.Identity()

    def mix(self, x: torch.Tensor, weights: torch.Tensor, active: int | None) -> torch.Tensor:
        if active is not None:
            return self.ops[active](x) * weights[active]
        return sum(weights[k] * self.ops[k](x) for k in self.computed)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, active: int | None) -> torch.Tensor:
        if self.partial == 1:
            return self.mix(x, weights, active)
        c = x.shape[1] // self.partial
        out = torch.cat([self.mix(x[:, :c], weights, active), self.bypass(x[:, c:])], dim=1)
        return rearrange(out, "b (group c) h w -> b (c group) h w", group=self.partial)


class CellWeights(NamedTuple):
    """What one cell type's logits mean in one forward pass."""

    ops: torch.Tensor             # [edges, ops] mixing weights
    active: list[int] | None      # under a hard relaxation, the op each edge runs
    edges: torch.Tensor | None    # [edges] edge-normalisation weights gamma, or None


def relax(space: SearchSpace, relaxation, logits: Mapping[str, torch.Tensor], sample: bool) -> dict[str, CellWeights]:
    """Relax each cell type's logits once per forward."""
    edges = space.edge_weights(logits)
    out = {}
    for cell_type in space.cell_types:
        weights = relaxation(logits[cell_type], sample=sample)
        out[cell_type] = CellWeights(weights, weights.argmax(-1).tolist() if relaxation.hard else None,
                                     None if edges is None else edges[cell_type])
    return out


def mixed_edges(registry: Mapping[str, OpFactory], op_names: Sequence[str], C: int, strides: Sequence[int],
                bn_after_pool: bool, partial: int = 1) -> nn.ModuleList:
    return nn.ModuleList(MixedOp(registry, op_names, C, stride, bn_after_pool, partial) for stride in strides)


def walk_mixed(edges: nn.ModuleList, node_inputs, states: list[torch.Tensor], w: CellWeights) -> list[torch.Tensor]:
    """The cell walk of a search cell: edge k is the mixed op k under the edge's weights (or its sampled op),
    scaled by its edge-normalisation weight where there is one."""
    def edge(k: int, h: torch.Tensor) -> torch.Tensor:
        out = edges[k](h, w.ops[k], None if w.active is None else w.active[k])
        return out if w.edges is None else w.edges[k] * out

    return cell_walk(states, node_inputs, edge)


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


class NB201SearchCell(nn.Module):
    """node_i = sum_{j<i} mixed_{i<-j}(node_j), output = node_3; search BN without affine."""

    def __init__(self, op_names: Sequence[str], C: int, partial: int = 1):
        super().__init__()
        self.edges = mixed_edges(NB201_OPS, op_names, C, [1] * len(nb201.EDGES), bn_after_pool=False, partial=partial)

    def forward(self, x, w: CellWeights):
        return walk_mixed(self.edges, nb201.NODE_INPUTS, [x], w)[-1]


class DartsSupernet(nn.Module):
    """The DARTS search network: stem (3C), `layers` cells with reductions at layers//3 and 2*layers//3, GAP, linear."""

    def __init__(self, space: SearchSpace, num_classes: int, in_channels: int = 3, C: int = 16, layers: int = 8,
                 stem_multiplier: int = 3, relaxation=None, partial: int = 1):
        super().__init__()
        self.space = space
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
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, weights["reduce" if cell.reduction else "normal"])
        return self.classifier(self.pool(s1).flatten(1))


class NB201Supernet(nn.Module):
    """NAS-Bench-201 skeleton (C=16, N=5 by default) with every cell a search cell."""

    def __init__(self, space: SearchSpace, num_classes: int, in_channels: int = 3, C: int = 16, layers: int = 5,
                 relaxation=None, partial: int = 1):
        super().__init__()
        self.space = space
        self.relaxation = relaxation or SoftmaxRelaxation()
        self.stem = stem(in_channels, C)
        self.cells = nn.ModuleList(NB201SearchCell(space.ops, c_out, partial) if kind == "cell"
                                   else ResNetBasicBlock(c_in, c_out) for kind, c_in, c_out in nb201_stages(C, layers))
        self.lastact, self.classifier = nb201_head(4 * C, num_classes)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor, logits: Mapping[str, torch.Tensor], relaxation=None) -> torch.Tensor:
        """`relaxation` overrides the network's own for this call (e.g. DiscreteRelaxation for a sampled cell)."""
        w = relax(self.space, relaxation or self.relaxation, logits, self.training)["cell"]
        h = self.stem(x)
        for cell in self.cells:
            h = cell(h, w) if isinstance(cell, NB201SearchCell) else cell(h)
        return self.classifier(self.pool(self.lastact(h)).flatten(1))


SUPERNETS = {"darts": DartsSupernet, "nb201": NB201Supernet}


def create_supernet(space: SearchSpace, num_classes: int, in_channels: int, C: int, layers: int,
                    relaxation=None, partial: int = 1) -> nn.Module:
    """`partial`: PC-DARTS's K (1 = every channel through every op, plain DARTS)."""
    return SUPERNETS[space.name](space, num_classes, in_channels=in_channels, C=C, layers=layers,
                                 relaxation=relaxation, partial=partial)


class ArchLogits(nn.Module):
    """Architecture logits as parameters, so they checkpoint, move with `.to()` and are what an optimiser steps:
    the free logits of a plain search (`ArchLogits.random`) or a task's logits during adaptation, started from the
    controller's output."""

    def __init__(self, initial: Mapping[str, torch.Tensor]):
        super().__init__()
        self.logits = nn.ParameterDict({k: nn.Parameter(v.detach().clone()) for k, v in initial.items()})

    @classmethod
    def random(cls, space: SearchSpace, init_std: float = 1e-3, edge_logits: bool = False) -> "ArchLogits":
        """init_std * N(0, 1), as the DARTS reference initialises its alphas (and PC-DARTS its edge logits)."""
        return cls({key: init_std * torch.randn(*shape) for key, shape in space.logits_shapes(edge_logits).items()})

    def forward(self) -> dict[str, torch.Tensor]:
        return dict(self.logits.items())
