"""What every weight-sharing supernet is made of. A supernet owns weights only: architecture logits come in
through `forward` (each space's supernet: darts_networks.py, nb201_networks.py; built by spaces.create_supernet).

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

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import NamedTuple

import torch
from einops import rearrange
from torch import nn
from torch.func import functional_call
from torch.utils.checkpoint import checkpoint

from search_spaces import SearchSpace
from search_spaces.operations import POOL_OPS, RELU_FIRST, OpFactory, Zero

from .skeleton import cell_walk


class SharedSource:
    """One state as every edge leaving it sees it.

    The edges that read one state apply identical parameter-free computations to it: the ReLU that opens every
    convolution op, the pools (with their affine-free BN in the DARTS space), PC-DARTS's channel slice. Each is
    computed once per state and forward pass instead of once per edge. The forward values are the same float
    operations as per-edge computation; autograd sums the sharing edges' gradients (the order of that sum is the
    only difference, within float rounding). A shared pool+BN runs through the first edge's module; the later
    edges' BN running statistics are copied from it, which is what their own identical update would have given.
    """

    def __init__(self, x: torch.Tensor):
        self.x = x
        self._relu: torch.Tensor | None = None
        self._heads: dict[int, SharedSource] = {}
        self._free: dict[tuple, tuple[torch.Tensor, nn.Module]] = {}

    def relu(self, opening: nn.Module) -> torch.Tensor:
        """opening(x), computed by the first op that asks: every op's opening is the same parameter-free ReLU."""
        if self._relu is None:
            self._relu = opening(self.x)
        return self._relu

    def head(self, channels: int) -> SharedSource:
        """The first `channels` channels, as a source of their own (PC-DARTS sends those through the ops)."""
        if channels not in self._heads:
            self._heads[channels] = SharedSource(self.x[:, :channels])
        return self._heads[channels]

    def parameter_free(self, key: tuple, op: nn.Module) -> torch.Tensor:
        if key not in self._free:
            self._free[key] = (op(self.x), op)
            return self._free[key][0]
        out, first = self._free[key]
        if op.training:
            with torch.no_grad():
                for mine, theirs in zip(op.buffers(), first.buffers()):
                    mine.copy_(theirs)
        return out


class MixedOp(nn.Module):
    def __init__(self, registry: Mapping[str, OpFactory], op_names: Sequence[str], C: int, stride: int,
                 bn_after_pool: bool, partial: int = 1):
        super().__init__()
        self.partial = partial
        self.stride = stride
        c = C // partial
        ops = []
        for name in op_names:
            op = registry[name](c, stride, False)
            if bn_after_pool and name in POOL_OPS:
                op = nn.Sequential(op, nn.BatchNorm2d(c, affine=False))
            ops.append(op)
        self.ops = nn.ModuleList(ops)
        self.computed = [k for k, op in enumerate(self.ops) if not isinstance(op, Zero)]
        self.shared = {k for k, name in enumerate(op_names) if name in POOL_OPS}
        self.bypass = nn.MaxPool2d(2, 2, ceil_mode=True) if partial > 1 and stride == 2 else nn.Identity()

    def run(self, k: int, source: SharedSource) -> torch.Tensor:
        op = self.ops[k]
        if k in self.shared:
            return source.parameter_free((k, self.stride), op)
        if isinstance(op, RELU_FIRST):
            return op.after_relu(source.relu(op.opening))
        return op(source.x)

    def mix(self, source: SharedSource, weights: torch.Tensor, active: int | None) -> torch.Tensor:
        if active is not None:
            return self.run(active, source) * weights[active]
        return sum(weights[k] * self.run(k, source) for k in self.computed)

    def forward(self, x: torch.Tensor | SharedSource, weights: torch.Tensor, active: int | None) -> torch.Tensor:
        """`x`: the state this edge reads, as a SharedSource where other edges read it too."""
        source = x if isinstance(x, SharedSource) else SharedSource(x)
        if self.partial == 1:
            return self.mix(source, weights, active)
        c = source.x.shape[1] // self.partial
        out = torch.cat([self.mix(source.head(c), weights, active), self.bypass(source.x[:, c:])], dim=1)
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
    scaled by its edge-normalisation weight where there is one. Edges reading one state share its SharedSource."""
    sources: dict[int, SharedSource] = {}

    def edge(k: int, h: torch.Tensor) -> torch.Tensor:
        if id(h) not in sources:
            sources[id(h)] = SharedSource(h)
        out = edges[k](sources[id(h)], w.ops[k], None if w.active is None else w.active[k])
        return out if w.edges is None else w.edges[k] * out

    return cell_walk(states, node_inputs, edge)




class KeepBuffers:
    """Entered while a checkpointed cell is recomputed: its BN running statistics were updated by the forward pass
    and must not be updated a second time, so they are restored on exit."""

    def __init__(self, module: nn.Module):
        self.module = module

    def __enter__(self) -> None:
        self.saved = [b.clone() for b in self.module.buffers()]

    def __exit__(self, *exc) -> None:
        with torch.no_grad():
            for buffer, saved in zip(self.module.buffers(), self.saved):
                buffer.copy_(saved)


def run_cell(recompute: bool, cell: nn.Module, *inputs):
    """cell(*inputs); with `recompute`, autograd keeps only the inputs and recomputes the cell's intermediate maps
    during backward (activation checkpointing): the memory of a cell's mixed ops is held for one cell at a time,
    for about one more forward pass of compute. Values and gradients are the same computation."""
    if not (recompute and torch.is_grad_enabled()):
        return cell(*inputs)
    # The parameters of this forward pass, bound now: under functional_call (the unrolled weights w' of a
    # second-order step) the recomputation runs after that call has put the module's own weights back.
    params = dict(cell.named_parameters())
    return checkpoint(lambda *args: functional_call(cell, params, args), *inputs, use_reentrant=False,
                      context_fn=lambda: (nullcontext(), KeepBuffers(cell)))




class ArchLogits(nn.Module):
    """Architecture logits as parameters, so they checkpoint, move with `.to()` and are what an optimiser steps:
    the free logits of a plain search (`ArchLogits.random`) or a task's logits during adaptation, started from the
    controller's output."""

    def __init__(self, initial: Mapping[str, torch.Tensor]):
        super().__init__()
        self.logits = nn.ParameterDict({k: nn.Parameter(v.detach().clone()) for k, v in initial.items()})

    @classmethod
    def random(cls, space: SearchSpace, init_std: float = 1e-3, edge_logits: bool = False) -> ArchLogits:
        """init_std * N(0, 1), as the DARTS reference initialises its alphas (and PC-DARTS its edge logits)."""
        return cls({key: init_std * torch.randn(*shape) for key, shape in space.logits_shapes(edge_logits).items()})

    def forward(self) -> dict[str, torch.Tensor]:
        return dict(self.logits.items())


def load_weights(supernet: nn.Module, weights: Mapping[str, torch.Tensor], buffers: Mapping[str, torch.Tensor]) -> None:
    """Copy a start (a meta-model's weights) into `supernet`. A classifier for another number of classes shares the
    start's rows for the classes both have: one with more keeps its own initialisation for the rest (a task with more
    classes than meta-training had), one with fewer takes the first rows (what a task's class slice reads)."""
    with torch.no_grad():
        for name, p in supernet.named_parameters():
            start = weights[name]
            if p.shape != start.shape and p.shape[1:] == start.shape[1:]:
                rows = min(p.shape[0], start.shape[0])
                p[:rows].copy_(start[:rows])
                continue
            p.copy_(start)
        for name, b in supernet.named_buffers():
            b.copy_(buffers[name])
