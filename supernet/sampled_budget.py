"""Budgets in a space whose cells cannot be enumerated (DARTS: two cells of 8 (op, input) choices among 14 edges,
about 10^18 genotypes per cell type), where supernet/costs.py's enumerated decoding cannot go.

The proposal is the most likely of the logits' candidates whose evaluation network, counted, fits:
- candidates: the space's own derivation of the logits, and derivations of the logits perturbed by Gumbel noise
  (alpha + g, g ~ Gumbel(0, 1), seeded): a perturbed derivation draws each edge's op in proportion to
  softmax(alpha), so the candidates are the cells the logits find likely, cheap and costly alike;
- likelihood: log p(cell) = sum over the cell's chosen edges e of log softmax(alpha_e)[op_e];
- cost: the evaluation network (the space's published shape) built on the `meta` device, parameters and
  multiply-adds counted from shapes alone (supernet/discrete.py), nothing allocated.
Candidates are costed from the most likely down and the first that fits is the proposal, so a loose budget costs one
count (about 0.3 s for DARTS at 20 cells of 36 channels) and a tight one at most `max_costed`. A latency budget bounds
the guarded prediction of a device profile's latency model (supernet/latency.py: additive in the ops of the chosen
edges of both cell types), and where the device is at hand the caller measures the proposal and asks again without
the cells measured over the bound (`exclude`).
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

from .costs import UNITS, Budget
from .discrete import count_flops_m, count_parameters_m
from .spaces import create_network, entry_of, get_space

SAMPLES = 256
MAX_COSTED = 48


@dataclass(frozen=True)
class CountedCosts:
    """Costs of a space's evaluation network counted per cell (what CellCosts is where cells are enumerated)."""

    space: str
    num_classes: int
    channels: int
    image_size: int

    @property
    def shape(self) -> dict[str, int]:
        return entry_of(get_space(self.space)).inspect_defaults

    def of(self, genotype: Any) -> tuple[float, float]:
        """(parameters M, multiply-adds M) of the cell's evaluation network."""
        return _counted(self, get_space(self.space).to_text(genotype))

    def describe(self) -> str:
        return (f"the {self.space} evaluation network ({self.shape['layers']} cells, {self.shape['init_channels']} "
                f"channels) for {self.num_classes} classes at {self.channels}x{self.image_size}x{self.image_size}")


@functools.lru_cache(maxsize=4096)
def _counted(costs: CountedCosts, text: str) -> tuple[float, float]:
    space = get_space(costs.space)
    shape = costs.shape
    with torch.device("meta"):
        network = create_network(space.from_text(text), costs.num_classes, costs.channels, shape["init_channels"],
                                 shape["layers"], auxiliary=False, image_size=costs.image_size)
    return count_parameters_m(network), count_flops_m(network, costs.channels, costs.image_size)


def log_probability(space: SearchSpace, logits: Mapping[str, torch.Tensor], genotype: Any) -> float:
    """sum over the genotype's chosen edges of log softmax(alpha_e)[op_e] (an edge is chosen where the genotype's own
    logits form prefers an op other than `none`)."""
    chosen = space.logits_of(genotype, strength=1.0)
    none = space.ops.index("none")
    total = 0.0
    for cell_type, form in chosen.items():
        best = form.argmax(-1)
        rows = torch.nonzero(best != none).flatten()
        log_p = torch.log_softmax(logits[cell_type].detach().double().cpu(), dim=-1)
        total += float(log_p[rows, best[rows]].sum())
    return total


def candidates(space: SearchSpace, logits: Mapping[str, torch.Tensor], exclude_ops: Sequence[str] = (),
               samples: int = SAMPLES, seed: int = 0) -> list[tuple[float, Any]]:
    """(log p, genotype) of the derivation and of `samples` Gumbel-perturbed derivations, distinct, most likely
    first."""
    generator = torch.Generator().manual_seed(seed)
    found = {}
    for k in range(samples + 1):
        perturbed = {name: value.detach().float().cpu()
                     - (0 if k == 0 else torch.empty(value.shape).exponential_(generator=generator).log())
                     for name, value in logits.items()}
        genotype = space.derive(perturbed, exclude_ops=exclude_ops)
        found.setdefault(space.to_text(genotype), genotype)
    scored = [(log_probability(space, logits, g), g) for g in found.values()]
    return sorted(scored, key=lambda pair: -pair[0])


def sampled_budgeted_derive(space: SearchSpace, logits: Mapping[str, torch.Tensor], costs: CountedCosts,
                            budget: Budget, exclude_ops: Sequence[str] = (), samples: int = SAMPLES,
                            max_costed: int = MAX_COSTED, seed: int = 0, latency: Any | None = None,
                            exclude: Sequence[Any] = ()) -> tuple[Any, int, int]:
    """(the most likely candidate whose counted costs, and guarded predicted latency under `latency` (a
    supernet/latency.LatencyModel), fit `budget`, other than the cells in `exclude`; candidates costed, candidates
    drawn); one line naming the cheapest costed when none fits."""
    if budget.max_latency_ms is not None and latency is None:
        raise InputError("a latency budget needs a device profile's latency model")
    ranked = candidates(space, logits, exclude_ops, samples, seed)
    left_out = {space.to_text(g) for g in exclude}
    ranked = [(score, g) for score, g in ranked if space.to_text(g) not in left_out]
    bounds = {name: bound for name, bound in budget.bounds().items() if name != "latency_ms"}
    cheapest = (math.inf, math.inf, math.inf)
    for tried, (_, genotype) in enumerate(ranked[:max_costed], start=1):
        counted = dict(zip(("params_m", "flops_m"), costs.of(genotype)))
        guarded = latency.bound(space, genotype) if latency is not None else 0.0
        if all(counted[name] <= bound + 1e-9 for name, bound in bounds.items()) and (
                budget.max_latency_ms is None or guarded <= budget.max_latency_ms):
            return genotype, tried, len(ranked)
        cheapest = min(cheapest, (counted["params_m"], counted["flops_m"], guarded))
    latency_text = (f" and {cheapest[2]:.4g} {UNITS['latency_ms']}" if budget.max_latency_ms is not None else "")
    raise InputError(f"none of the {min(max_costed, len(ranked))} most likely of {len(ranked)} sampled cells"
                     + (f" (the {len(left_out)} measured over the bound left out)" if left_out else "")
                     + f" meets {budget.describe()} in {costs.describe()}; the cheapest of them has {cheapest[0]:.4g} "
                     f"{UNITS['params_m']}, {cheapest[1]:.4g} {UNITS['flops_m']}{latency_text}")
