"""Latency of a cell's evaluation network on a device, predicted from a device profile (the HELP idea: a device is
described by the measured latencies of a few reference cells).

The model is additive in the ops a cell holds,

    latency(cell) ~ a + sum_e b[op_e],        b[none] = 0,  a, b >= 0,

over the cell's edges (in the DARTS space, the chosen edges of both cell types: space.held_ops),

fitted by non-negative least squares to the profile's cells (at least as many distinct cells as unknowns). It ranks
cells well on every device measured (benchmarks/latency_budgets.py) but a device's latencies are noisy around it, so a
budget on the point prediction is missed by the cells the decoding likes most: those predicted just under it. The
budget therefore bounds a guarded prediction, the point prediction times a factor chosen from the profile itself
(split-conformal, leave-one-out): each profile cell's measured latency over the prediction of the model fitted
without it, r_i = y_i / f_{-i}(x_i); the factor is the ceil((n + 1) q)-th smallest r_i (at least 1), so that a new
cell's latency lies under its guarded prediction with probability about q, the `--latency-confidence` (default
0.95; 0: no guard). This needs n >= q / (1 - q) profile cells (19 at 0.95). A profile is a CSV `arch,latency_ms` of
any cells of the space, or `auto`: the reference cells measured here under one `TimingProtocol` (batch 1, fp32, the
evaluation network at the costed image size, median of repeated forward passes in rounds, the CPU thread count and
memory format set for the timing and recorded); with `auto` the proposal itself is measured too (`verified_derive`),
under the same protocol and in rounds with the profile's cells, since a device drifts between the profile's
measurement and the proposal's (the drift, now over then on the profile's cells, is recorded).
"""
from __future__ import annotations

import csv
import io
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from run_kit import InputError
from run_kit.files import read_small_csv
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
        return self.intercept_ms + sum(self.per_op_ms[op] for op in space.held_ops(genotype))

    def bound(self, space: SearchSpace, genotype: Any) -> float:
        """The guarded prediction (ms): what a latency budget is checked on."""
        return self.guard * self.predict(space, genotype)

    def describe(self) -> str:
        ops = ", ".join(f"{op} {ms:.3g}" for op, ms in self.per_op_ms.items() if op != "none")
        guard = (f"; budgets bound {self.guard:.3f} x the prediction (leave-one-out guard at confidence "
                 f"{self.confidence:g})" if self.confidence > 0 else "; no guard (--latency-confidence 0)")
        return f"latency model from {self.source}: {self.intercept_ms:.3g} ms + per edge {ops} (ms){guard}"


def _counts(space: SearchSpace, genotype: Any, ops: Sequence[str]) -> list[float]:
    held = space.held_ops(genotype)
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


def leave_one_out(n: int) -> list[tuple[int, list[int]]]:
    """(i, every other index) for i < n."""
    return [(i, [j for j in range(n) if j != i]) for i in range(n)]


def conformal_guard(measured_predicted: Sequence[tuple[float, float]], confidence: float, source: str) -> float:
    """The guard factor from leave-one-out pairs (measured ms, prediction of the model fitted without that cell):
    the ceil((n + 1) q)-th smallest ratio measured / predicted, at least 1 (1 when confidence is 0)."""
    if confidence == 0:
        return 1.0
    ratios = sorted(math.inf if predicted <= 0 else measured / predicted for measured, predicted in measured_predicted)
    rank = min(len(ratios), math.ceil((len(ratios) + 1) * confidence))  # 1-based
    guard = max(1.0, ratios[rank - 1])
    if not math.isfinite(guard):
        raise InputError(f"device profile {source}: a cell's latency is not predicted by the other cells (a model "
                         f"without it predicts 0 ms); measure more cells, or --latency-confidence 0")
    return guard


def fit_latency(space: SearchSpace, cells: Sequence[Any], latencies_ms: Sequence[float], source: str,
                confidence: float = DEFAULT_CONFIDENCE) -> LatencyModel:
    """The additive model of a profile, and its guard at `confidence` (module docstring)."""
    check_confidence(confidence)
    ops = [op for op in space.ops if op != "none"]
    x = torch.tensor([_counts(space, c, ops) for c in cells], dtype=torch.float64)
    y = torch.tensor(list(latencies_ms), dtype=torch.float64)
    # where every cell holds as many ops (DARTS: 8 chosen edges per cell type), the intercept is their sum again:
    # it is left out and the per-op terms carry it
    intercept = not (len(cells) > 1 and bool((x[:, 1:].sum(1) == x[0, 1:].sum()).all()))
    if not intercept:
        x = x[:, 1:]
    if len({space.to_text(c) for c in cells}) < x.shape[1] or int(torch.linalg.matrix_rank(x)) < x.shape[1]:
        raise InputError(f"a device profile needs at least {x.shape[1]} cells whose op counts tell the "
                         f"{len(ops)} ops apart; {source} has {len(cells)}")
    needed = cells_for_confidence(confidence)
    if len(cells) < needed:
        raise InputError(f"a latency guard at confidence {confidence:g} needs a profile of at least {needed} cells; "
                         f"{source} has {len(cells)} (measure more cells, or lower --latency-confidence; 0: no guard)")
    coef = _nnls(x, y)
    guard = conformal_guard([(float(y[i]), float(x[i] @ _nnls(x[rest], y[rest])))
                             for i, rest in leave_one_out(len(cells))] if confidence > 0 else [], confidence, source)
    if not intercept:
        coef = torch.cat([torch.zeros(1, dtype=torch.float64), coef])
    per_op = {"none": 0.0, **{op: float(coef[k + 1]) for k, op in enumerate(ops)}}
    return LatencyModel(space.name, float(coef[0]), per_op, source, confidence, guard)


def read_profile(path: str, space: SearchSpace) -> tuple[list[Any], list[float]]:
    """(cells, latencies ms) of a profile CSV with the header `arch,latency_ms`; bad content is one line."""
    rows = read_small_csv(path, ("arch", "latency_ms"), "device profile", MAX_PROFILE_BYTES, instead="`auto`")
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


MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
MAX_THREADS = 4096


@dataclass(frozen=True)
class TimingProtocol:
    """How cells are timed where the device is at hand: the same for the profile (`auto`) and for the measured check of
    the proposal (`verified_derive`), so that both see one device. Batch `batch`, fp32, inference mode, `warmup`
    passes then `repeats` timed passes, the median kept; on a CPU the intra-op thread count is set to `threads` for
    the timing (and restored after), since a latency at 1 thread and at 16 are different devices; inputs and
    weights in `memory_format`."""

    device: str  # "cpu", "cuda:0"
    threads: int  # intra-op threads on a CPU (recorded on a GPU, where it does not apply)
    memory_format: str = "contiguous"
    batch: int = 1
    warmup: int = 3
    repeats: int = 10

    @classmethod
    def here(cls, device: torch.device, threads: int = 0, memory_format: str = "contiguous") -> TimingProtocol:
        """The protocol on `device`; `threads` 0: the count PyTorch uses here now (recorded as that number)."""
        if memory_format not in MEMORY_FORMATS:
            raise InputError(f"--latency-memory-format must be one of {', '.join(MEMORY_FORMATS)}, got "
                             f"{memory_format}")
        if threads < 0 or threads > MAX_THREADS:
            raise InputError(f"--latency-threads must lie between 0 (PyTorch's count here) and {MAX_THREADS}, got "
                             f"{threads}")
        name = str(device) if device.type != "cuda" or device.index is not None else "cuda:0"
        return cls(name, threads or torch.get_num_threads(), memory_format)

    def describe(self) -> str:
        threads = f", {self.threads} threads" if self.device == "cpu" else ""
        return f"{self.device}{threads}, batch {self.batch}, fp32, {self.memory_format}, median of {self.repeats}"

    def record(self) -> dict[str, Any]:
        """What a run's metrics keep of it."""
        return {"latency_device": self.device, "latency_threads": self.threads,
                "latency_memory_format": self.memory_format}



def measure_latency(space: SearchSpace, cells: Sequence[Any], num_classes: int, channels: int, image_size: int,
                    protocol: TimingProtocol) -> list[float]:
    """Median ms of each cell's evaluation network under `protocol`.

    The cells are timed in rounds, one pass of each per round, so that a drift of the machine (clock, a neighbour's
    load) falls on every cell alike instead of on the ones timed during it (benchmarks/profile_stability.py: over 5
    back-to-back profiles here, guards 1.03-1.06 in rounds against 1.06-1.50 cell after cell). A drift of the whole
    machine between profiles (up to 4 % there) remains; a guard from one profile cannot see it, the measured check
    of a proposal (`verified_derive`, which times the proposal in rounds with the profile's cells) catches it."""
    device = torch.device(protocol.device)
    fmt = MEMORY_FORMATS[protocol.memory_format]
    shape = entry_of(space).inspect_defaults
    x = torch.zeros(protocol.batch, channels, image_size, image_size, device=device).to(memory_format=fmt)
    networks = []
    for cell in cells:
        torch.manual_seed(0)
        networks.append(create_network(cell, num_classes, channels, shape["init_channels"], shape["layers"],
                                       image_size=image_size).to(device, memory_format=fmt).eval())
    times: list[list[float]] = [[] for _ in cells]
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(protocol.threads)
    try:
        with torch.inference_mode():
            for k in range(protocol.warmup + protocol.repeats):
                for network, record in zip(networks, times):
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    started = time.perf_counter()
                    network(x)
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    if k >= protocol.warmup:
                        record.append(1000 * (time.perf_counter() - started))
    finally:
        torch.set_num_threads(threads)
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
    """The profile as a CSV arch,latency_ms (a DARTS genotype's text, which holds commas, quoted)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["arch", "latency_ms"])
    writer.writerows([space.to_text(c), f"{ms:.6g}"] for c, ms in zip(cells, latencies_ms))
    return buffer.getvalue()


@dataclass
class DeviceProfile:
    """A device's profile and the latency model fitted to it; where the device is at hand (`auto`), the protocol that
    timed it and can time a proposal alike, and the seconds the profile took."""

    model: LatencyModel
    cells: list[Any]
    latencies_ms: list[float]
    protocol: TimingProtocol | None = None  # None: a profile read from a file (the device is elsewhere)
    seconds: float = 0.0

    def csv(self, space: SearchSpace) -> str:
        return profile_csv(space, self.cells, self.latencies_ms)

    def measure_with_profile(self, space: SearchSpace, cell: Any, num_classes: int, channels: int,
                             image_size: int) -> tuple[float, float]:
        """(the cell's ms, the device's drift): the cell timed in rounds with the profile's cells, exactly as the
        profile was timed; the drift is the median over the profile's cells of now / then (1: the device is as it
        was when profiled). Only where the device is at hand."""
        assert self.protocol is not None, "a profile read from a file has no device to measure on"
        now = measure_latency(space, [cell, *self.cells], num_classes, channels, image_size, self.protocol)
        return now[0], statistics.median(a / b for a, b in zip(now[1:], self.latencies_ms))


def device_profile(spec: str, space: SearchSpace, num_classes: int, channels: int, image_size: int,
                   protocol: TimingProtocol, confidence: float = DEFAULT_CONFIDENCE) -> DeviceProfile:
    """The profile `spec` and its latency model: `auto` times the reference cells here under `protocol`; otherwise
    `spec` is a CSV arch,latency_ms."""
    started = time.perf_counter()
    if spec == "auto":
        cells = reference_cells(space)
        latencies = measure_latency(space, cells, num_classes, channels, image_size, protocol)
        source = f"auto ({len(cells)} reference cells measured on {protocol.describe()})"
        measured_here: TimingProtocol | None = protocol
    else:
        cells, latencies = read_profile(spec, space)
        source, measured_here = spec, None
    model = fit_latency(space, cells, latencies, source, confidence)
    return DeviceProfile(model, cells, latencies, measured_here, time.perf_counter() - started)
