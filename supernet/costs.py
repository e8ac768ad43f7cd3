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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from run_kit import InputError
from search_spaces import SearchSpace

from .discrete import count_flops_m, count_parameters_m
from .spaces import create_network, entry_of, get_space

MAX_ENUMERATED = 2_000_000  # cells the decoding scores at once
UNITS = {"params_m": "M parameters", "flops_m": "M FLOPs", "latency_ms": "ms latency (guarded prediction)"}


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
        index = torch.tensor([[space.ops.index(op) for op in space.edge_ops(genotype)]])
        terms = cost_terms(self)
        return float(terms["params_m"].of_cells(index)[0]), float(terms["flops_m"].of_cells(index)[0])

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


def cells_without_ops(space: SearchSpace, exclude_ops: Sequence[str]) -> torch.Tensor:
    """[cells] True where an enumerated cell (every_cell's order) uses none of `exclude_ops` (checked by the space)."""
    cells = every_cell(space.num_edges, len(space.ops))
    allowed = torch.ones(len(cells), dtype=torch.bool)
    for op in space.check_excluded_ops(exclude_ops):
        allowed &= ~(cells == space.ops.index(op)).any(-1)
    return allowed


def best_remaining(scores: torch.Tensor, excluded: Sequence[int], exhausted: str) -> int:
    """The best-scored cell (index) not in `excluded` (cells measured over a bound); `-inf` scores are not allowed.
    One line, `exhausted`, when none is left: the next cell a verified decoding (supernet/latency.verified_derive)
    tries over enumerated scores."""
    remaining = scores.index_fill(0, torch.tensor(list(excluded), dtype=torch.long), -math.inf)
    if not bool(torch.isfinite(remaining).any()):
        raise InputError(exhausted)
    return int(torch.argmax(remaining))


@dataclass(frozen=True)
class Budget:
    """Upper bounds on a proposed cell's evaluation network; None: no bound."""

    max_params_m: float | None = None
    max_flops_m: float | None = None
    max_latency_ms: float | None = None

    def __post_init__(self):
        for name, unit in (("max_params_m", "millions"), ("max_flops_m", "millions"), ("max_latency_ms", "ms")):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise InputError(f"--{name.replace('_', '-')} must be a positive number of {unit}, got {value}")

    def bounds(self) -> dict[str, float]:
        """cost name (a key of `Term`s) -> bound, for the bounds that are set."""
        named = {"params_m": self.max_params_m, "flops_m": self.max_flops_m, "latency_ms": self.max_latency_ms}
        return {name: bound for name, bound in named.items() if bound is not None}

    @property
    def active(self) -> bool:
        return bool(self.bounds())

    def describe(self) -> str:
        return " and ".join(f"at most {v} {UNITS[k]}" for k, v in self.bounds().items()) or "no budget"


@dataclass(frozen=True)
class Term:
    """One additive cost: cost(cell) = fixed + sum_e per_op[e, op_e]."""

    fixed: float
    per_op: torch.Tensor  # [edges, ops]

    def of_cells(self, cells: torch.Tensor) -> torch.Tensor:
        """[N] costs of cells given as [N, edges] op indices."""
        return self.fixed + self.per_op[torch.arange(self.per_op.shape[0]), cells].sum(-1)


def cost_terms(costs: CellCosts, latency_ms: Term | None = None) -> dict[str, Term]:
    """The terms a Budget bounds: the counted ones, and a latency model's (supernet/latency.py) when there is one."""
    terms = {"params_m": Term(costs.fixed_params_m, costs.params_m),
             "flops_m": Term(costs.fixed_flops_m, costs.flops_m)}
    if latency_ms is not None:
        terms["latency_ms"] = latency_ms
    return terms


def require_feasible(terms: Mapping[str, Term], budget: Budget, where: str) -> None:
    """One line when no cell fits: the cell of every edge `none` is the cheapest in every term (no op costs less than
    nothing: measured counts, and a latency model's non-negative per-op terms), so a budget below it fits none."""
    bounds = budget.bounds()
    missing = set(bounds) - set(terms)
    if missing:
        raise InputError(f"a {', '.join(sorted(missing))} budget needs its cost model (latency: a device profile)")
    if any(terms[name].fixed > bound + 1e-9 for name, bound in bounds.items()):
        smallest = ", ".join(f"{terms[name].fixed:.4g} {UNITS[name]}" for name in terms)
        raise InputError(f"no cell fits {budget.describe()} in {where}: the smallest has {smallest}")


def budgeted_derive(space: SearchSpace, logits: Mapping[str, torch.Tensor], terms: Mapping[str, Term],
                    budget: Budget, where: str = "its evaluation network", exclude: Sequence[Any] = (),
                    exclude_ops: Sequence[str] = ()) -> Any:
    """The cell of highest log-probability under `logits` whose costs fit `budget`, other than the cells in `exclude`
    (ones measured over it) and those using an op of `exclude_ops`; one line naming the cheapest cell's costs when
    none fits."""
    _require_edge_space(space)
    require_feasible(terms, budget, where)
    (cell_type,) = space.cell_types
    log_p = torch.log_softmax(logits[cell_type].detach().double().cpu(), dim=-1)
    cells = every_cell(space.num_edges, len(space.ops))
    feasible = cells_within(terms, budget, space)
    if not feasible.any():
        raise AssertionError("the cell of every edge none fits any budget that some cell fits")
    for cell in exclude:
        feasible &= ~(cells == torch.tensor([space.ops.index(op) for op in space.edge_ops(cell)])).all(-1)
    feasible &= cells_without_ops(space, exclude_ops)
    if not feasible.any():
        raise InputError(f"no cell fits {budget.describe()} in {where} once the {len(exclude)} measured over it"
                         + (f" and those using {', '.join(exclude_ops)}" if exclude_ops else "") + " are left out")
    score = log_p[torch.arange(space.num_edges), cells].sum(-1).masked_fill(~feasible, -math.inf)
    best = cells[int(score.argmax())]
    return space.with_edge_ops([space.ops[k] for k in best.tolist()])


def cells_within(terms: Mapping[str, Term], budget: Budget, space: SearchSpace) -> torch.Tensor:
    """[cells] True where an enumerated cell's costs under `terms` fit every bound of `budget` (to 1e-9: the terms are
    sums of floats); the one feasibility rule of the enumerated decodings."""
    feasible = torch.ones(len(every_cell(space.num_edges, len(space.ops))), dtype=torch.bool)
    for name, cost in every_cell_costs({name: terms[name] for name in budget.bounds()}, space).items():
        feasible &= cost <= budget.bounds()[name] + 1e-9
    return feasible


def every_cell_costs(terms: Mapping[str, Term], space: SearchSpace) -> dict[str, torch.Tensor]:
    """cost name -> [cells] cost of every cell (enumeration order of `every_cell`)."""
    cells = every_cell(space.num_edges, len(space.ops))
    return {name: term.of_cells(cells) for name, term in terms.items()}


def budget_share(space: SearchSpace, terms: Mapping[str, Term], budget: Budget) -> float:
    """The share of the space's cells that fit `budget` (1.0 without one): how tight a budget is, in a form that does
    not depend on the data format or the cost's unit. What a budget-aware task graph is told (meta/task_graph.py)."""
    _require_edge_space(space)
    if not budget.active:
        return 1.0
    return float(cells_within(terms, budget, space).double().mean())


def bound_at_share(space: SearchSpace, term: Term, share: float) -> float:
    """The smallest bound on `term` that `share` (in (0, 1]) of the space's cells fit: a budget drawn by tightness."""
    _require_edge_space(space)
    if not 0 < share <= 1:
        raise InputError(f"a budget's share of fitting cells must lie in (0, 1], got {share}")
    costs = term.of_cells(every_cell(space.num_edges, len(space.ops))).sort().values
    return float(costs[max(math.ceil(share * len(costs)) - 1, 0)])
