"""A latency predictor g(cell, device profile), meta-learned across earlier devices and adapted to a new one from its
profile (any 20 or so cells with their measured latencies).

The additive model (supernet/latency.py) prices each op once per device; on phones it ranks poorly (it misses how a
device's ops interact: memory traffic, kernels fused or not). Earlier devices hold that structure: their log
latencies over every cell (meta/experience.py), standardised per device, have a few principal components u_1..u_r
that describe how cells differ in cost across hardware. A cell's representation is those components and its op
counts, and a device is a weight vector fitted to its profile:

    log g(cell, device) = a + sum_j b_j u_j(cell) + sum_op c_op count_op(cell),

ridge regression on the profile's cells (a unpenalised; the features standardised over the profile). The guard is
the additive model's: the leave-one-out conformal factor of the profile (supernet/latency.conformal_guard), so that
a budget bounds guard x g; or, per cell (`interval`), the same conformal quantile of leave-one-out residuals scaled by
each cell's leverage, so that cells the profile says less about get a wider guard. Which components and op counts
enter and the ridge are either fixed or chosen per device from its own profile (`by_profile`: the least
leave-one-out squared log error, or the smallest guard).
That choice, and the fixed design where it is fixed, is made by leave-one-device-out among the training devices
(`choose_latency_design`), scored by what the latency model costs a budgeted proposal: the regret under 10 budgets
of a score it must rank as measured.
"""
from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from run_kit import InputError
from run_kit.ranking import spearman
from supernet.budget_scoring import quantile_bounds, score_proposal
from supernet.costs import every_cell
from supernet.latency import conformal_guard, leave_one_out

from .experience import SPACE, Experience

BY_PROFILE = ("", "error", "guard")


@dataclass(frozen=True)
class LatencyDesign:
    """components: principal components of the earlier devices (0: none); ridge: per profile cell; op_counts: whether
    op counts enter; by_profile: instead of these three, the fixed design (`fixed_designs`) that does best on the
    device's own profile, by its leave-one-out squared log error ("error") or by the guard it would need ("guard",
    then the error); "" : fixed. interval: the guard of each cell is exp(q sqrt(1 + h(cell))), h the cell's leverage
    under the profile's ridge fit and q the conformal quantile of the profile's leave-one-out residuals scaled alike,
    instead of one factor for every cell."""

    components: int = 4
    ridge: float = 0.1
    op_counts: bool = True
    by_profile: str = ""
    interval: bool = False  # a guard per cell, wider where the profile says less (its leverage), not one per device

    def __post_init__(self):
        if self.by_profile not in BY_PROFILE:
            raise InputError(f"by_profile is one of {BY_PROFILE}, got {self.by_profile!r}")


@dataclass(frozen=True)
class DeviceLatency:
    """A device's fitted predictor: ms of every cell (point prediction) and the guard a budget applies."""

    predicted_ms: torch.Tensor
    guard: float
    source: str
    design: LatencyDesign  # the fixed design fitted (by_profile resolved)
    per_cell_ms: torch.Tensor | None = None  # with `interval`: each cell's guarded prediction

    @property
    def guarded_ms(self) -> torch.Tensor:
        """What a latency budget bounds."""
        return self.guard * self.predicted_ms if self.per_cell_ms is None else self.per_cell_ms


def op_counts() -> torch.Tensor:
    """[cells, ops - 1] how many edges of each cell hold each op but `none`."""
    cells = every_cell(SPACE.num_edges, len(SPACE.ops))
    return torch.stack([(cells == k).sum(1).double() for k in range(1, len(SPACE.ops))], 1)


def device_components(experience: Experience, count: int) -> torch.Tensor:
    """[cells, count] principal components of the earlier devices' standardised log latencies (unit variance)."""
    if not experience.latency_ms:
        raise InputError("a latency predictor needs at least one earlier device")
    logs = torch.stack([column.log() for column in experience.latency_ms.values()], 1)
    logs = (logs - logs.mean(0)) / logs.std(0)
    u, _, _ = torch.linalg.svd(logs, full_matrices=False)
    u = u[:, :count]
    return u / u.std(0)


class LatencyPredictor:
    """Meta-learned from an `Experience`'s latency columns; `adapt` fits it to one device's profile."""

    def __init__(self, experience: Experience, design: LatencyDesign = LatencyDesign(),
                 components: torch.Tensor | None = None):
        self.design = design
        most = max([design.components] + ([d.components for d in fixed_designs()] if design.by_profile else []))
        self.components = (components if components is not None
                           else device_components(experience, min(most, len(experience.latency_ms))))
        self.counts = op_counts()

    def _features(self, design: LatencyDesign) -> torch.Tensor:
        parts = [self.components[:, :design.components]] + ([self.counts] if design.op_counts else [])
        return torch.cat(parts, 1)

    @staticmethod
    def _ridge_system(features: torch.Tensor, cells: Sequence[int], ridge: float, at: Sequence[int] | None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The ridge fit on `cells` in features standardised over them: (its design matrix X, X^T X + ridge n I,
        the standardised features at cells `at`, None: every cell). Shared by the fit and its leverages."""
        rows = features[list(cells)]
        target = features if at is None else features[list(at)]
        centre, scale = rows.mean(0), rows.std(0).clamp_min(1e-9)
        x = (rows - centre) / scale
        penalty = ridge * len(cells) * torch.eye(x.shape[1], dtype=torch.float64)
        return x, x.T @ x + penalty, (target - centre) / scale

    @classmethod
    def _fit(cls, features: torch.Tensor, cells: Sequence[int], log_ms: torch.Tensor, ridge: float,
             at: Sequence[int] | None = None) -> torch.Tensor:
        """log ms predicted at cells `at` (None: every cell) by a ridge fit on `cells`."""
        if features.shape[1] == 0:
            prediction = log_ms.mean().expand(features.shape[0] if at is None else len(at))
            return prediction.clone()
        x, system, target = cls._ridge_system(features, cells, ridge, at)
        weights = torch.linalg.solve(system, x.T @ (log_ms - log_ms.mean()))
        return log_ms.mean() + target @ weights

    @classmethod
    def _leverage(cls, features: torch.Tensor, cells: Sequence[int], ridge: float, at: Sequence[int] | None = None
                  ) -> torch.Tensor:
        """x^T (X^T X + ridge n I)^-1 x at cells `at` (None: every cell), in the fit's standardised features."""
        if features.shape[1] == 0:
            return torch.full((features.shape[0] if at is None else len(at),), 1 / len(cells), dtype=torch.float64)
        _, system, target = cls._ridge_system(features, cells, ridge, at)
        return ((target @ torch.linalg.inv(system)) * target).sum(1) + 1 / len(cells)  # the intercept's share

    def _leave_one_out(self, design: LatencyDesign, cells: Sequence[int], log_y: torch.Tensor) -> torch.Tensor:
        """The log ms of each profile cell predicted by the fit on the others."""
        features = self._features(design)
        return torch.stack([self._fit(features, [cells[j] for j in rest], log_y[rest], design.ridge, [cells[i]])[0]
                            for i, rest in leave_one_out(len(cells))])

    def resolve(self, cells: Sequence[int], log_y: torch.Tensor, confidence: float) -> LatencyDesign:
        """The fixed design used for this profile: the design itself, or (by_profile) the candidate that does best on
        the profile's leave-one-out predictions (LatencyDesign)."""
        if not self.design.by_profile:
            return self.design
        candidates = [d for d in fixed_designs() if d.components <= self.components.shape[1]]
        keys = []
        for design in candidates:
            predicted = self._leave_one_out(design, cells, log_y)
            error = float(((predicted - log_y) ** 2).mean())
            if self.design.by_profile == "guard" and confidence > 0:
                pairs = [(float(y), float(p)) for y, p in zip(log_y.exp(), predicted.exp())]
                keys.append((conformal_guard(pairs, confidence, "profile"), error))
            else:
                keys.append((error,))
        return candidates[min(range(len(candidates)), key=keys.__getitem__)]

    def adapt(self, cells: Sequence[int], latencies_ms: Sequence[float], source: str,
              confidence: float = 0.95) -> DeviceLatency:
        """The device's predictor from its profile: cell indices and their measured latencies (ms)."""
        cells = list(cells)
        if len(set(cells)) < 5:
            raise InputError(f"a device profile needs at least 5 distinct cells; {source} has {len(set(cells))}")
        y = torch.tensor(list(latencies_ms), dtype=torch.float64)
        if not bool((y > 0).all()):
            raise InputError(f"device profile {source}: latencies must be positive")
        log_y = y.log()
        design = self.resolve(cells, log_y, confidence)
        if self.design.interval:
            design = replace(design, interval=True)
        features = self._features(design)
        predicted = self._fit(features, cells, log_y, design.ridge).exp()
        if confidence == 0:  # no guard: no leave-one-out fits
            return DeviceLatency(predicted, 1.0, source, design)
        loo = self._leave_one_out(design, cells, log_y)
        if not design.interval:
            pairs = [(float(y[i]), float(p)) for i, p in enumerate(loo.exp())]
            return DeviceLatency(predicted, conformal_guard(pairs, confidence, source), source, design)
        # residuals in units of each left-out cell's spread, sqrt(1 + h), under the fit without it
        spreads = torch.stack([(1 + self._leverage(features, [cells[j] for j in rest], design.ridge, [cells[i]])[0])
                               .sqrt() for i, rest in leave_one_out(len(cells))])
        scaled = ((log_y - loo) / spreads).exp()
        width = math.log(conformal_guard([(float(r), 1.0) for r in scaled], confidence, source))
        per_cell = (predicted.log() + width * (1 + self._leverage(features, cells, design.ridge)).sqrt()).exp()
        return DeviceLatency(predicted, float((per_cell / predicted).median()), source, design, per_cell)


def fixed_designs() -> list[LatencyDesign]:
    return [LatencyDesign(c, r, counts) for c, r, counts in
            itertools.product((0, 1, 2, 3, 4, 6, 8), (0.01, 0.1, 1.0), (False, True)) if c or counts]


def latency_design_grid() -> list[LatencyDesign]:
    """The designs leave-one-device-out chooses among: every fixed design, and choosing per profile."""
    return [*fixed_designs(), *(LatencyDesign(by_profile=rule, interval=interval)
                                for interval in (False, True) for rule in BY_PROFILE if rule)]


def choose_latency_design(experience: Experience, profile_cells: Sequence[int], accuracy: torch.Tensor,
                          budgets: int = 10, confidence: float = 0.95, grid: Sequence[LatencyDesign] | None = None
                          ) -> tuple[LatencyDesign, dict[str, dict[str, float]]]:
    """The design whose proposals lose least to latency when each training device is held out in turn: for 10
    budgets at the 5-95 % quantiles of that device's latencies, the best `accuracy` (a known score over every cell,
    from the training tasks) among the cells whose guarded prediction fits, scored as measured
    (supernet/budget_scoring.py). `accuracy` is then ranked perfectly, so the regret is what the latency model
    costs: its ranking near the bound and its guard. (design, design text -> mean regret and Spearman over all
    cells). The caller has removed the target device."""
    grid = list(grid or latency_design_grid())
    if len(experience.latency_ms) < 2:
        raise InputError("leave-one-device-out needs at least two training devices")
    most = max(max(d.components for d in grid), max(d.components for d in fixed_designs()))
    regrets: dict[LatencyDesign, list[float]] = {d: [] for d in grid}
    ranks: dict[LatencyDesign, list[float]] = {d: [] for d in grid}
    for device, measured in experience.latency_ms.items():
        inner = experience.without(devices=(device,))
        components = device_components(inner, min(most, len(inner.latency_ms)))
        bounds = quantile_bounds(measured, budgets)
        for design in grid:
            if design.components > components.shape[1]:
                continue
            model = LatencyPredictor(inner, design, components).adapt(profile_cells, measured[profile_cells].tolist(),
                                                                      device, confidence)
            guarded = model.guarded_ms
            for bound in bounds:
                fits = guarded <= bound
                proposed = int(torch.argmax(accuracy.masked_fill(~fits, -math.inf))) if bool(fits.any()) else None
                regrets[design].append(score_proposal(accuracy, measured, bound, proposed).regret)
            ranks[design].append(spearman(model.predicted_ms, measured))
    means = {d: statistics.mean(v) for d, v in regrets.items() if v}
    best = min(means, key=lambda d: (means[d], grid.index(d)))
    return best, {str(d): {"regret": round(means[d], 5), "spearman": round(statistics.mean(ranks[d]), 5)}
                  for d in means}
