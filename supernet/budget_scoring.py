"""How a budgeted proposal is scored against a table: one rule for every budgeted study.

For a budget B on a cost c (FLOPs, or a latency *as measured* on the device) and a table of accuracies a over all
cells, the cells that fit are F = {x : c(x) <= B}, the best that fits scores max_F a, and a random cell that fits
scores mean_F a. A proposal x scores

    regret(x) = max_F a - a(x)       if x is in F (the budget is met),
    regret(x) = max_F a - mean_F a   otherwise (a miss, or no cell proposed),

so a miss is as bad as a guess, never better: an over-budget cell's own accuracy is never counted (it could be higher
than any cell that fits). Every method is scored on every budget, so that no method drops the hard ones; a mean over
only the budgets met would compare methods on different budgets.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


def quantile_bounds(values: torch.Tensor, count: int) -> list[float]:
    """`count` budgets at evenly spaced quantiles, 5 % to 95 %, of a cost over every cell: how every budgeted study
    draws its bounds (a bound at the 5 % quantile lets the cheapest 5 % of the cells through)."""
    return torch.quantile(values, torch.linspace(0.05, 0.95, count, dtype=torch.float64)).tolist()


@dataclass(frozen=True)
class BudgetScore:
    met: bool
    regret: float  # points below the best cell that fits
    best: float  # the best accuracy among the cells that fit
    guess: float  # the expected regret of a random cell that fits


def score_proposal(accuracy: torch.Tensor, cost: torch.Tensor, bound: float, proposed: int | None) -> BudgetScore:
    """Score the cell at index `proposed` (None: no cell was proposed) under `cost <= bound`, by the rule above.
    `accuracy` and `cost` hold every cell of the space, in one order; at least one cell must fit."""
    fits = cost <= bound
    if not bool(fits.any()):
        raise ValueError(f"no cell fits the bound {bound}: a budget is drawn where some cell fits")
    best = float(accuracy[fits].max())
    guess = best - float(accuracy[fits].mean())
    met = proposed is not None and bool(fits[proposed])
    return BudgetScore(met, best - float(accuracy[proposed]) if met else guess, best, guess)


def score_fields(accuracy: torch.Tensor, cost: torch.Tensor, bound: float,
                 proposed: int | None) -> dict[str, str | int]:
    """A study's raw-result columns for one scored proposal: met (0/1), regret and guess (4 decimals)."""
    score = score_proposal(accuracy, cost, bound, proposed)
    return {"met": int(score.met), "regret": f"{score.regret:.4f}", "guess": f"{score.guess:.4f}"}
