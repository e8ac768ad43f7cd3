"""A meta-learned accuracy predictor over whole cells, f(cell, z), learned from earlier tasks' trained results.

Each earlier task t is a column of trained accuracies over every cell (meta/experience.py). The cell's representation
is what the earlier tasks measured of it, phi(cell) = (s_1(cell), ..., s_T(cell)), each column put on one scale by
`transform` (rank: normal scores of the ranks, robust to a column's own scale and tails such as Darcy's; zscore:
standardised values, which keep how far apart the good cells are). A task is described by z, the weights with which
its accuracies resemble the earlier tasks':

    f(cell, z) = phi(cell) . z

Without anything known of the new task, z is the prior z0 = (1/T, ..., 1/T): the earlier tasks' mean, the constant
prior (no conditioning). Probes condition it: the measured accuracies y_k of K cells the user trained on the new task
(on any scale where higher is better). z is then a ridge regression of the standardised probes on the features,
pulled toward a scaled prior,

    z = argmin_w sum_k (y~_k - phi~(c_k) . w)^2 + ridge * K * |w - beta z0|^2,

where ~ centres and scales over the probes and beta is the least-squares scale of the prior alone (>= 0): with few or
uninformative probes the proposal stays the constant prior's; with many it follows the earlier tasks that the new one
resembles. The proposal is the best cell that fits, a probe scored by its measured accuracy (it is known) and every
other cell by f on the probes' scale, so that a proposal never ranks a predicted cell above a better probe that the
prediction itself says it should not.

Which cells to probe is part of the method (`choose_probes`): `top` takes the prior's K best; `spread` starts at the
prior's best and then greedily adds the cell of the `pool` (the prior's best share of cells) that most increases
det(eps I + sum phi~ phi~^T) (D-optimal), the cells on which the earlier tasks disagree most.

All design choices (transform, ridge, probe rule, pool) are made by leave-one-task-out among the training tasks
(`choose_design`), never with the target.
"""
from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import torch

from run_kit import InputError
from run_kit.ranking import average_ranks
from supernet.budget_scoring import score_proposal

from .experience import Experience

TRANSFORMS = ("rank", "zscore")
PROBE_RULES = ("top", "spread")
MIN_PROBES = 3  # fewer cannot fit a scale and a direction
D_OPTIMAL_EPS = 1e-3


def transform_column(column: torch.Tensor, transform: str) -> torch.Tensor:
    """One task's accuracies on the common scale of the features."""
    if transform == "rank":
        n = column.numel()
        return torch.special.ndtri((average_ranks(column) + 0.5) / n)
    if transform == "zscore":
        return (column - column.mean()) / column.std()
    raise InputError(f"unknown transform {transform!r}; one of {', '.join(TRANSFORMS)}")


@dataclass(frozen=True)
class PredictorDesign:
    """The accuracy predictor's design choices (chosen by leave-one-task-out, `choose_design`)."""

    transform: str = "rank"
    ridge: float = 1.0
    probe_rule: str = "spread"
    probe_pool: float = 0.1
    caution: float = 1.0

    def __post_init__(self):
        if self.transform not in TRANSFORMS or self.probe_rule not in PROBE_RULES:
            raise InputError(f"unknown predictor design {self}")
        if not (self.ridge >= 0 and 0 < self.probe_pool <= 1):
            raise InputError(f"predictor design: ridge >= 0 and 0 < probe_pool <= 1, got {self}")


class AccuracyPredictor:
    """f(cell, z) over every cell of the space, meta-learned from an `Experience`'s accuracy columns."""

    def __init__(self, experience: Experience | None, design: PredictorDesign = PredictorDesign(),
                 learned: Mapping[str, torch.Tensor] | None = None):
        """From the experience's accuracy columns, or from `learned` columns (task -> every cell's value on the
        design's transform scale, as a CellEncoder predicts them: meta/pretrained.py) instead of the tables."""
        columns = (learned if learned is not None else
                   {} if experience is None else
                   {t: transform_column(v, design.transform) for t, v in experience.accuracy.items()})
        if not columns:
            raise InputError("an accuracy predictor needs at least one earlier task")
        self.tasks = tuple(columns)
        self.design = design
        self.features = torch.stack([columns[t].double() for t in self.tasks], 1)  # [cells, T]
        self.prior_z = torch.full((len(self.tasks),), 1 / len(self.tasks), dtype=torch.float64)

    def predict(self, z: torch.Tensor) -> torch.Tensor:
        """f(cell, z) for every cell (on the features' scale)."""
        return self.features @ z

    def choose_probes(self, count: int, fits: torch.Tensor | None = None) -> list[int]:
        """The `count` cells to train on the new task (indices), by the design's probe rule, among the cells that
        fit (`fits`, a mask; None: every cell): a budgeted proposal is probed where it will be chosen."""
        if count <= 0:
            return []
        prior = self.predict(self.prior_z)
        if fits is not None:
            prior = prior.masked_fill(~fits, -math.inf)
        order = torch.argsort(prior, descending=True, stable=True)
        order = order[:int(torch.isfinite(prior).sum())]
        if self.design.probe_rule == "top" or len(order) <= count:
            return order[:count].tolist()
        pool = order[:max(count, math.ceil(self.design.probe_pool * len(order)))]
        x = self.features[pool] - self.features[pool].mean(0)
        chosen = [0]
        inverse = torch.eye(x.shape[1], dtype=torch.float64) / D_OPTIMAL_EPS
        for _ in range(count - 1):
            v = x[chosen[-1]]  # Sherman-Morrison update of (eps I + sum x x^T)^-1
            u = inverse @ v
            inverse = inverse - torch.outer(u, u) / (1 + v @ u)
            gain = ((x @ inverse) * x).sum(1)
            gain[chosen] = -math.inf
            chosen.append(int(torch.argmax(gain)))
        return pool[chosen].tolist()

    def scores(self, probes: Mapping[int, float]) -> torch.Tensor:
        """What the proposal ranks, for every cell: without probes (or fewer than MIN_PROBES) f(cell, z0), the
        constant prior; with them, on the standardised probes' scale, each probe's own measurement and every other
        cell's posterior mean f(cell, z) minus `caution` posterior standard deviations (module docstring)."""
        if len(probes) < MIN_PROBES:
            scores = self.predict(self.prior_z).clone()
            if probes:  # too few to fit: a probe wins ties against the cells the prior ranks with it
                cells = torch.tensor(list(probes))
                scores[cells] = scores[cells] + 1e-9
            return scores
        cells = torch.tensor(list(probes))
        y = torch.tensor(list(probes.values()), dtype=torch.float64)
        if float(y.std()) == 0:
            y = torch.zeros_like(y)
        else:
            y = (y - y.mean()) / y.std()
        centre = self.features[cells].mean(0)
        x = self.features[cells] - centre
        prior = x @ self.prior_z
        beta = max(0.0, float(prior @ y) / max(float(prior @ prior), 1e-12))
        penalty = self.design.ridge * len(probes)
        precision = x.T @ x + penalty * torch.eye(x.shape[1], dtype=torch.float64)
        z = torch.linalg.solve(precision, x.T @ y + penalty * beta * self.prior_z)
        features = self.features - centre
        mean = features @ z
        residual = float(((y - x @ z) ** 2).mean()) + 1e-3  # the noise left around the fit (floored)
        spread = (residual * ((features @ torch.linalg.inv(precision)) * features).sum(1)).sqrt()
        scores = mean - self.design.caution * spread
        scores[cells] = y
        return scores

    def propose(self, probes: Mapping[int, float], fits: torch.Tensor | None = None) -> int | None:
        """The best-scored cell among those that fit (`fits`: a mask over every cell; None: no budget)."""
        scores = self.scores(probes)
        if fits is not None:
            if not bool(fits.any()):
                return None
            scores = scores.masked_fill(~fits, -math.inf)
        return int(torch.argmax(scores))


def probe_values(target: torch.Tensor, cells: Sequence[int]) -> dict[int, float]:
    """The probes a user would hand in: the target task's measured accuracy of each chosen cell."""
    return {k: float(target[k]) for k in cells}


def probed_proposal(predictor: AccuracyPredictor, target: torch.Tensor, probe_count: int,
                    fits: torch.Tensor | None = None) -> int | None:
    """A study's proposal for a task whose accuracies are `target`: the predictor chooses `probe_count` cells among
    those that fit, their accuracies are read from `target` (the probes a user would measure), and it proposes; None
    where no cell fits."""
    if fits is not None and not bool(fits.any()):
        return None
    return predictor.propose(probe_values(target, predictor.choose_probes(probe_count, fits)), fits)


def design_grid() -> list[PredictorDesign]:
    """The designs leave-one-task-out chooses among."""
    return [PredictorDesign(t, r, rule, pool, caution) for t, r, rule, pool, caution in itertools.product(
        TRANSFORMS, (0.03, 0.3, 3.0), PROBE_RULES, (0.05, 0.25, 1.0), (0.0, 1.0, 3.0))
        if not (rule == "top" and pool != 1.0)]  # the pool does not change `top`


def proposal_regret(predictor: AccuracyPredictor, target: torch.Tensor, probe_count: int, costs: torch.Tensor,
                    bounds: Sequence[float]) -> list[float]:
    """The regret of the predictor's proposals for a task whose accuracies are `target` (read for the probes and to
    score): unbudgeted first, then under each cost bound (supernet/budget_scoring.py)."""
    regrets = []
    for bound in (math.inf, *bounds):
        fits = costs <= bound
        proposed = probed_proposal(predictor, target, probe_count, fits)
        regrets.append(score_proposal(target, costs, bound, proposed).regret)
    return regrets


def choose_design(experience: Experience, probe_count: int, costs: torch.Tensor, bounds: Sequence[float],
                  grid: Sequence[PredictorDesign] | None = None) -> tuple[PredictorDesign, dict[str, float]]:
    """The design with the least mean regret when each training task is held out in turn (the others its
    experience), unbudgeted and under `bounds`, each task's regret in units of its random cell's (its best minus
    its mean); (design, design -> that mean, keyed by the design as text). Only the
    experience's tasks are read: the caller has removed the target (meta/experience.split)."""
    if len(experience.accuracy) < 2:
        raise InputError("leave-one-task-out needs at least two training tasks")
    results: dict[str, float] = {}
    best: tuple[float, PredictorDesign] | None = None
    for design in grid or design_grid():
        per_task = []
        for task in experience.accuracy:
            inner = AccuracyPredictor(experience.without(tasks=(task,)), design)
            target = experience.accuracy[task]
            # in units of the task's random-cell regret, so that tasks on other scales (Darcy) weigh the same
            scale = float(target.max() - target.mean())
            per_task.append(statistics.mean(proposal_regret(inner, target, probe_count, costs, bounds)) / scale)
        mean = statistics.mean(per_task)
        results[str(asdict(design))] = mean
        if best is None or mean < best[0] - 1e-12:
            best = (mean, design)
    assert best is not None
    return best[1], results
