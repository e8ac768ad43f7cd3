"""What a cell costs in its space's published evaluation network (parameters, multiply-adds), and the most likely cell
under a budget: constrained decoding of architecture logits.

In a space with one op per edge (NAS-Bench-201) both costs are sums over edges,

    cost(cell) = cost(every edge none) + sum_e [cost(only edge e as op_e) - cost(every edge none)],

exact because each edge is its own module whose multiply-adds do not depend on the values it reads. The terms are
measured once per (space, classes, channels, image size) on 1 + E (O - 1) built networks. The budgeted decoding
enumerates every cell (5^6 = 15,625 in NAS-Bench-201) and keeps the feasible one of highest
sum_e log softmax(logits_e)[op_e]; without a budget that is the space's own per-edge argmax.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from run_kit import InputError
from search_spaces import SearchSpace

from .discrete import count_flops_m, count_parameters_m
from .spaces import create_network, entry_of, get_space

MAX_ENUMERATED = 2_000_000  # cells the decoding scores at once


@dataclass(frozen=True)
class CellCosts:
    """The additive cost model of one space's evaluation network for one data format."""

    space: str
    num_classes: int
    channels: int
    image_size: int
    layers: int
    init_channels: int
    fixed_params_m: float  # every edge none
    fixed_flops_m: float
    params_m: torch.Tensor  # [edges, ops]: what op o on edge e adds
    flops_m: torch.Tensor

    def of(self, genotype: Any) -> tuple[float, float]:
        """(parameters M, multiply-adds M) of a cell's evaluation network."""
        space = get_space(self.space)
        index = torch.tensor([space.ops.index(op) for op in space.edge_ops(genotype)])
        edges = torch.arange(len(index))
        return (self.fixed_params_m + float(self.params_m[edges, index].sum()),
                self.fixed_flops_m + float(self.flops_m[edges, index].sum()))

    def describe(self) -> str:
        return (f"the {self.space} evaluation network ({self.layers} cells a stage, {self.init_channels} channels) for "
                f"{self.num_classes} classes at {self.channels}x{self.image_size}x{self.image_size}")


def _require_edge_space(space: SearchSpace) -> None:
    if not space.one_op_per_edge or len(space.cell_types) != 1:
        raise InputError(f"budgets need a space with one op per edge and one cell type (nb201); {space.name} cells "
                         f"are not costed")
    if len(space.ops) ** space.num_edges > MAX_ENUMERATED:
        raise InputError(f"the {space.name} space has {len(space.ops) ** space.num_edges:,} cells, more than the "
                         f"{MAX_ENUMERATED:,} a budgeted decoding enumerates")


@functools.lru_cache(maxsize=16)
def cell_costs(space_name: str, num_classes: int, channels: int = 3, image_size: int = 32) -> CellCosts:
    """The cost model of `space_name`'s published evaluation network (its inspect defaults: NAS-Bench-201 C=16,
    N=5) for this data format, measured on built networks (about a second on a CPU)."""
    space = get_space(space_name)
    _require_edge_space(space)
    space.check_image_size(image_size)
    shape = entry_of(space).inspect_defaults

    def measure(ops: list[str]) -> tuple[float, float]:
        network = create_network(space.with_edge_ops(ops), num_classes, channels, shape["init_channels"],
                                 shape["layers"], image_size=image_size)
        return count_parameters_m(network), count_flops_m(network, channels, image_size)

    empty = ["none"] * space.num_edges
    fixed = measure(empty)
    params = torch.zeros(space.num_edges, len(space.ops), dtype=torch.float64)
    flops = torch.zeros_like(params)
    for e in range(space.num_edges):
        for o, op in enumerate(space.ops):
            if op == "none":
                continue
            p, f = measure(empty[:e] + [op] + empty[e + 1:])
            params[e, o], flops[e, o] = p - fixed[0], f - fixed[1]
    return CellCosts(space.name, num_classes, channels, image_size, shape["layers"], shape["init_channels"],
                     fixed[0], fixed[1], params, flops)


@functools.lru_cache(maxsize=4)
def every_cell(edges: int, ops: int) -> torch.Tensor:
    """[ops^edges, edges] op indices of every cell."""
    return torch.cartesian_prod(*[torch.arange(ops)] * edges).view(-1, edges)


@dataclass(frozen=True)
class Budget:
    """Upper bounds on a proposed cell's evaluation network; None: no bound."""

    max_params_m: float | None = None
    max_flops_m: float | None = None

    def __post_init__(self):
        for name in ("max_params_m", "max_flops_m"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise InputError(f"--{name.replace('_', '-')} must be a positive number of millions, got {value}")

    @property
    def active(self) -> bool:
        return self.max_params_m is not None or self.max_flops_m is not None

    def describe(self) -> str:
        parts = [f"at most {v} M {what}" for v, what in ((self.max_params_m, "parameters"),
                                                         (self.max_flops_m, "FLOPs")) if v is not None]
        return " and ".join(parts) or "no budget"


def require_feasible(costs: CellCosts, budget: Budget) -> None:
    """One line when no cell fits: the cell of every edge `none` is the cheapest in both counts (no op costs less than
    nothing), so a budget below it fits none."""
    if ((budget.max_params_m is not None and costs.fixed_params_m > budget.max_params_m + 1e-9)
            or (budget.max_flops_m is not None and costs.fixed_flops_m > budget.max_flops_m + 1e-9)):
        raise InputError(f"no {costs.space} cell fits {budget.describe()} in {costs.describe()}: the smallest has "
                         f"{costs.fixed_params_m:.4f} M parameters and {costs.fixed_flops_m:.2f} M FLOPs")


def budgeted_derive(space: SearchSpace, logits: Mapping[str, torch.Tensor], costs: CellCosts, budget: Budget) -> Any:
    """The cell of highest log-probability under `logits` whose evaluation network fits `budget`; one line naming the
    cheapest cell's costs when none fits."""
    _require_edge_space(space)
    (cell_type,) = space.cell_types
    log_p = torch.log_softmax(logits[cell_type].detach().double().cpu(), dim=-1)
    cells = every_cell(space.num_edges, len(space.ops))
    edges = torch.arange(space.num_edges)
    feasible = torch.ones(len(cells), dtype=torch.bool)
    for bound, fixed, table in ((budget.max_params_m, costs.fixed_params_m, costs.params_m),
                                (budget.max_flops_m, costs.fixed_flops_m, costs.flops_m)):
        if bound is not None:
            cost = fixed + table[edges, cells].sum(-1)
            feasible &= cost <= bound + 1e-9
    if not feasible.any():
        require_feasible(costs, budget)
        raise AssertionError("the cell of every edge none fits any budget that some cell fits")
    score = log_p[edges, cells].sum(-1).masked_fill(~feasible, -math.inf)
    best = cells[int(score.argmax())]
    return space.with_edge_ops([space.ops[k] for k in best.tolist()])
