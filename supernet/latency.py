"""Latency of a cell's evaluation network on a device, predicted from a device profile (the HELP idea: a device is
described by the measured latencies of a few reference cells).

The model is additive in the ops a cell holds,

    latency(cell) ~ a + sum_e b[op_e],        b[none] = 0,  a, b >= 0,

fitted by non-negative least squares to the profile's cells (at least as many distinct cells as unknowns). It ranks
cells well on every device measured (benchmarks/latency_budgets.py) but a device's latencies are noisy around it, so a
budget on the point prediction is missed by the cells the decoding likes most: those predicted just under it. The
budget therefore bounds a guarded prediction, the point prediction times a factor chosen from the profile itself
(split-conformal, leave-one-out): each profile cell's measured latency over the prediction of the model fitted
without it, r_i = y_i / f_{-i}(x_i); the factor is the ceil((n + 1) q)-th smallest r_i (at least 1), so that a new
cell's latency lies under its guarded prediction with probability about q, the `--latency-confidence` (default
0.95; 0: no guard). This needs n >= q / (1 - q) profile cells (19 at 0.95). A profile is a CSV `arch,latency_ms` of
any cells of the space, or `auto`: the reference cells measured here (batch 1, fp32, the evaluation network at the
costed image size, median of repeated forward passes); with `auto` the proposal itself is measured too
(`verified_derive`), since a device drifts between the profile's measurement and the proposal's.
"""
from __future__ import annotations

import csv
import io
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from run_kit import InputError
from search_spaces import SearchSpace

from .costs import Term
from .spaces import create_network, entry_of

MAX_PROFILE_BYTES = 1_000_000
REFERENCE_SEED = 0
REFERENCE_CELLS = 20  # enough for the 0.95 guard (19)
DEFAULT_CONFIDENCE = 0.95
VERIFY_TRIES = 5  # cells measured at most, where the device is at hand


def reference_cells(space: SearchSpace, count: int = REFERENCE_CELLS) -> list[Any]:
    """The cells `auto` measures: `count` seeded random cells of the space (the same on every machine)."""
    generator = torch.Generator().manual_seed(REFERENCE_SEED)
    return [space.random_genotype(generator) for _ in range(count)]


@dataclass(frozen=True)
class LatencyModel:
    space: str
    intercept_ms: float
    per_op_ms: dict[str, float]  # every op of the space; none is 0
    source: str  # where the profile came from
    confidence: float = 0.0  # what the guard is chosen for; 0: none
    guard: float = 1.0  # the factor a budget applies to the point prediction

    def term(self, space: SearchSpace) -> Term:
        """The guarded prediction, which a latency budget bounds."""
        row = torch.tensor([self.per_op_ms[op] for op in space.ops], dtype=torch.float64)
        return Term(self.guard * self.intercept_ms, self.guard * row.repeat(space.num_edges, 1))

    def predict(self, space: SearchSpace, genotype: Any) -> float:
        """The point prediction (ms)."""
        return self.intercept_ms + sum(self.per_op_ms[op] for op in space.edge_ops(genotype))

    def bound(self, space: SearchSpace, genotype: Any) -> float:
        """The guarded prediction (ms): what a latency budget is checked on."""
        return self.guard * self.predict(space, genotype)

    def describe(self) -> str:
        ops = ", ".join(f"{op} {ms:.3g}" for op, ms in self.per_op_ms.items() if op != "none")
        guard = (f"; budgets bound {self.guard:.3f} x the prediction (leave-one-out guard at confidence "
                 f"{self.confidence:g})" if self.confidence > 0 else "; no guard (--latency-confidence 0)")
        return f"latency model from {self.source}: {self.intercept_ms:.3g} ms + per edge {ops} (ms){guard}"


def _counts(space: SearchSpace, genotype: Any, ops: Sequence[str]) -> list[float]:
    held = space.edge_ops(genotype)
    return [1.0] + [float(held.count(op)) for op in ops]


def _nnls(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Non-negative least squares (active set: a negative coefficient is fixed at 0 and the rest refitted)."""
    free = list(range(x.shape[1]))
    coef = torch.zeros(x.shape[1], dtype=torch.float64)
    while free:
        solution = torch.linalg.lstsq(x[:, free], y[:, None]).solution.flatten()
        if (solution >= 0).all():
            coef[free] = solution
            break
        free = [k for k, v in zip(free, solution.tolist()) if v >= 0]
    return coef


def cells_for_confidence(confidence: float) -> int:
    """The fewest profile cells whose leave-one-out ratios hold a ceil((n + 1) q)-th smallest."""
    return 0 if confidence == 0 else math.ceil(confidence / (1 - confidence) - 1e-9)


def check_confidence(confidence: float) -> None:
    if not (math.isfinite(confidence) and 0 <= confidence < 1):
        raise InputError(f"--latency-confidence must lie in [0, 1) (0: no guard), got {confidence}")


def fit_latency(space: SearchSpace, cells: Sequence[Any], latencies_ms: Sequence[float], source: str,
                confidence: float = DEFAULT_CONFIDENCE) -> LatencyModel:
    """The additive model of a profile, and its guard at `confidence` (module docstring)."""
    check_confidence(confidence)
    ops = [op for op in space.ops if op != "none"]
    x = torch.tensor([_counts(space, c, ops) for c in cells], dtype=torch.float64)
    y = torch.tensor(list(latencies_ms), dtype=torch.float64)
    if len({space.to_text(c) for c in cells}) < x.shape[1] or int(torch.linalg.matrix_rank(x)) < x.shape[1]:
        raise InputError(f"a device profile needs at least {x.shape[1]} cells whose op counts tell the "
                         f"{len(ops)} ops apart; {source} has {len(cells)}")
    needed = cells_for_confidence(confidence)
    if len(cells) < needed:
        raise InputError(f"a latency guard at confidence {confidence:g} needs a profile of at least {needed} cells; "
                         f"{source} has {len(cells)} (measure more cells, or lower --latency-confidence; 0: no guard)")
    coef = _nnls(x, y)
    guard = 1.0
    if confidence > 0:
        ratios = []
        for i in range(len(cells)):
            rest = [j for j in range(len(cells)) if j != i]
            predicted = float(x[i] @ _nnls(x[rest], y[rest]))
            ratios.append(math.inf if predicted <= 0 else float(y[i]) / predicted)
        rank = min(len(cells), math.ceil((len(cells) + 1) * confidence))  # 1-based
        guard = max(1.0, sorted(ratios)[rank - 1])
        if not math.isfinite(guard):
            raise InputError(f"device profile {source}: a cell's latency is not predicted by the other cells (a model "
                             f"without it predicts 0 ms); measure more cells, or --latency-confidence 0")
    per_op = {"none": 0.0, **{op: float(coef[k + 1]) for k, op in enumerate(ops)}}
    return LatencyModel(space.name, float(coef[0]), per_op, source, confidence, guard)


def read_profile(path: str, space: SearchSpace) -> tuple[list[Any], list[float]]:
    """(cells, latencies ms) of a profile CSV with the header `arch,latency_ms`; bad content is one line."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"device profile {path} does not exist (a CSV arch,latency_ms, or `auto`)")
    if file.stat().st_size > MAX_PROFILE_BYTES:
        raise InputError(f"device profile {path} is {file.stat().st_size:,} bytes; a profile is a few lines")
    try:
        rows = list(csv.DictReader(io.StringIO(file.read_text())))
    except (UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"device profile {path} is not a CSV file ({err})") from None
    if not rows or set(rows[0]) != {"arch", "latency_ms"}:
        raise InputError(f"device profile {path} must have the header arch,latency_ms and one row per cell")
    cells, latencies = [], []
    for number, row in enumerate(rows, start=2):
        try:
            cells.append(space.from_text(row["arch"].strip()))
            latencies.append(float(row["latency_ms"]))
        except (InputError, ValueError, AttributeError) as err:
            raise InputError(f"device profile {path} line {number}: {err}") from None
        if not (math.isfinite(latencies[-1]) and latencies[-1] > 0):
            raise InputError(f"device profile {path} line {number}: latency must be a positive number of ms, got "
                             f"{row['latency_ms']}")
    return cells, latencies


def measure_latency(space: SearchSpace, cells: Sequence[Any], num_classes: int, channels: int, image_size: int,
                    device: torch.device, repeats: int = 10, warmup: int = 3, batch: int = 1) -> list[float]:
    """Median ms of `repeats` forward passes (after `warmup`) of each cell's evaluation network at `batch` images.

    The cells are timed in rounds, one pass of each per round, so that a drift of the machine (clock, a neighbour's
    load) falls on every cell alike instead of on the ones timed during it (benchmarks/profile_stability.py: over 5
    back-to-back profiles here, guards 1.03-1.06 in rounds against 1.06-1.50 cell after cell). A drift of the whole
    machine between profiles (up to 4 % there) remains; a guard from one profile cannot see it, the measured check
    of a proposal (`verified_derive`) catches it."""
    shape = entry_of(space).inspect_defaults
    x = torch.zeros(batch, channels, image_size, image_size, device=device)
    networks = []
    for cell in cells:
        torch.manual_seed(0)
        networks.append(create_network(cell, num_classes, channels, shape["init_channels"], shape["layers"],
                                       image_size=image_size).to(device).eval())
    times: list[list[float]] = [[] for _ in cells]
    with torch.no_grad():
        for k in range(warmup + repeats):
            for network, record in zip(networks, times):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                started = time.perf_counter()
                network(x)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if k >= warmup:
                    record.append(1000 * (time.perf_counter() - started))
    return [statistics.median(record) for record in times]


def verified_derive(decode: Callable[[Sequence[Any]], Any], measure: Callable[[Any], float], bound_ms: float,
                    tries: int = VERIFY_TRIES) -> tuple[Any, float, int]:
    """Where the device is at hand (`auto`): (the first decoded cell whose measured latency is within `bound_ms`, that
    latency, the cells tried). `decode(excluded)` is the budgeted decoding without the cells measured over the bound;
    one line after `tries` misses. The guard makes a miss rare; this catches the ones it lets through."""
    excluded: list[Any] = []
    measured = []
    for _ in range(tries):
        cell = decode(excluded)
        measured.append(measure(cell))
        if measured[-1] <= bound_ms:
            return cell, measured[-1], len(excluded) + 1
        excluded.append(cell)
    raise InputError(f"the {tries} most likely cells under {bound_ms:g} ms (guarded prediction) all measured over it "
                     f"here ({', '.join(f'{ms:.3g}' for ms in measured)} ms): this device is noisier than its profile "
                     f"says; raise --max-latency-ms or --latency-confidence")


def profile_csv(space: SearchSpace, cells: Sequence[Any], latencies_ms: Sequence[float]) -> str:
    lines = ["arch,latency_ms"] + [f"{space.to_text(c)},{ms:.6g}" for c, ms in zip(cells, latencies_ms)]
    return "\n".join(lines) + "\n"


def device_latency_model(spec: str, space: SearchSpace, num_classes: int, channels: int, image_size: int,
                         device: torch.device, confidence: float = DEFAULT_CONFIDENCE) -> tuple[LatencyModel, str]:
    """(the latency model of the profile `spec`, the profile as CSV): `auto` measures the reference cells here."""
    if spec == "auto":
        cells = reference_cells(space)
        latencies = measure_latency(space, cells, num_classes, channels, image_size, device)
        threads = f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""
        source = f"auto ({len(cells)} reference cells measured on {device.type}{threads}, batch 1, fp32)"
    else:
        cells, latencies = read_profile(spec, space)
        source = spec
    return fit_latency(space, cells, latencies, source, confidence), profile_csv(space, cells, latencies)
