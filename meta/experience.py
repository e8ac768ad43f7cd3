"""Earlier tasks and devices as data: the trained accuracies and measured latencies of every NAS-Bench-201 cell.

This is the experience the predictors (meta/accuracy_predictor.py, meta/latency_predictor.py) learn from, as
(task, cell, trained accuracy) and (device, cell, latency) records, stored as one column per task or device over the
15,625 cells in the decoding's enumeration order (supernet/costs.every_cell):
- accuracies: NAS-Bench-201's CIFAR-10, CIFAR-100 and ImageNet16-120 columns (200 epochs, test split) and
  HW-NAS-Bench-360's NinaPro and Darcy columns (NAS-Bench-360 training; Darcy's score is higher-is-better, on its own
  scale). HW-NAS-Bench-360's own CIFAR-100 column is left out: it is a second measurement of a task already here;
- latencies: HELP's 23 devices, HW-NAS-Bench-360's CIFAR-100 networks on a Raspberry Pi 5 (3 frameworks) and a
  Pixel phone, and any further CSV `arch,<device>_ms,...` of all cells (benchmarks/cpu_latency.py writes one).

A study names a target task and/or device. `split` removes the target's column before anything is fitted: the
training `Experience` it returns has no record of the target at all, and the target's column comes back apart, to
score with. Nothing downstream can read what the split removed (tests/meta/test_predictors.py proves that a predictor
fitted on the split is unchanged when the target's values are scrambled).
"""
from __future__ import annotations

import csv
import functools
import gzip
from dataclasses import dataclass, field
from pathlib import Path

import torch

from run_kit import InputError
from search_spaces.nb201 import NB201Space
from supernet.costs import every_cell

SPACE = NB201Space()
NUM_CELLS = len(SPACE.ops) ** SPACE.num_edges
NATS_COLUMNS = {"cifar10": "CIFAR10TestAccuracy200Epochs", "cifar100": "CIFAR100TestAccuracy200Epochs",
                "imagenet16_120": "ImageNetTestAccuracy200Epochs"}
HW360_TASKS = ("ninapro", "darcy")  # its cifar100 column is a second measurement of NAS-Bench-201's
HW360_LATENCY_TASK = "cifar100"  # the task whose networks (32 px, like HELP's) give HW-NAS-Bench-360's devices
TASKS = (*NATS_COLUMNS, *HW360_TASKS)


@functools.cache
def cell_texts() -> tuple[str, ...]:
    """Every cell's text, in the enumeration order of every column (built once: 15,625 genotypes)."""
    return tuple(SPACE.to_text(SPACE.with_edge_ops([SPACE.ops[k] for k in row]))
            for row in every_cell(SPACE.num_edges, len(SPACE.ops)).tolist())


def cell_index(genotype) -> int:
    """A cell's row in every column: its edge ops' indices read as a base-O number (every_cell's order)."""
    index = 0
    for op in SPACE.edge_ops(genotype):
        index = index * len(SPACE.ops) + SPACE.ops.index(op)
    return index


def cell_genotype(index: int):
    """The cell of row `index` (cell_index's inverse)."""
    ops = []
    for _ in range(SPACE.num_edges):
        index, op = divmod(index, len(SPACE.ops))
        ops.append(SPACE.ops[op])
    return SPACE.with_edge_ops(ops[::-1])


def _column_index() -> dict[str, int]:
    return {text: k for k, text in enumerate(cell_texts())}


def _open(path: Path):
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    return gzip.open(path, "rt", newline="") if path.suffix == ".gz" else open(path, newline="")


def _complete(path: Path, columns: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for name, column in columns.items():
        if torch.isnan(column).any():
            raise InputError(f"{path} lacks {name} for {int(torch.isnan(column).sum())} cells")
    return columns


def read_nats(path: Path, index: dict[str, int]) -> dict[str, torch.Tensor]:
    """NAS-Bench-201's three accuracy columns (percent)."""
    columns = {task: torch.full((NUM_CELLS,), float("nan"), dtype=torch.float64) for task in NATS_COLUMNS}
    with _open(path) as f:
        for row in csv.DictReader(f):
            k = index[SPACE.to_text(SPACE.from_text(row["ArchitectureString"]))]
            for task, name in NATS_COLUMNS.items():
                columns[task][k] = float(row[name])
    return _complete(path, columns)


def read_hw360(path: Path, index: dict[str, int]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """HW-NAS-Bench-360: (task -> accuracy column for HW360_TASKS, device -> latency ms of the cifar100 networks)."""
    accuracy = {task: torch.full((NUM_CELLS,), float("nan"), dtype=torch.float64) for task in HW360_TASKS}
    latency: dict[str, torch.Tensor] = {}
    with _open(path) as f:
        for row in csv.DictReader(f):
            k = index[SPACE.to_text(SPACE.from_text(row["arch"]))]
            if row["task"] in accuracy:
                accuracy[row["task"]][k] = float(row["accuracy"])
            elif row["task"] == HW360_LATENCY_TASK:
                device = f"{row['device']}_{row['framework']}"
                latency.setdefault(device, torch.full((NUM_CELLS,), float("nan"), dtype=torch.float64))[k] = float(
                    row["lat_ms_median"])
    return _complete(path, accuracy), _complete(path, latency)


def read_latency_columns(path: Path, index: dict[str, int]) -> dict[str, torch.Tensor]:
    """device -> latency ms of every cell, from a CSV `arch,<device>_ms,...` (gzipped where the name ends in .gz)."""
    with _open(path) as f:
        reader = csv.DictReader(f)
        names = [c for c in reader.fieldnames or [] if c.endswith("_ms")]
        if "arch" not in (reader.fieldnames or []) or not names:
            raise InputError(f"{path} is not a latency table (a CSV arch,<device>_ms,...)")
        columns = {name[:-3]: torch.full((NUM_CELLS,), float("nan"), dtype=torch.float64) for name in names}
        for row in reader:
            k = index[SPACE.to_text(SPACE.from_text(row["arch"]))]
            for name in names:
                columns[name[:-3]][k] = float(row[name])
    return _complete(path, columns)


@dataclass(frozen=True)
class Experience:
    """Columns over every cell: task -> trained accuracy, device -> measured latency (ms)."""

    accuracy: dict[str, torch.Tensor] = field(default_factory=dict)
    latency_ms: dict[str, torch.Tensor] = field(default_factory=dict)

    def without(self, tasks: tuple[str, ...] = (), devices: tuple[str, ...] = ()) -> Experience:
        return Experience({t: v for t, v in self.accuracy.items() if t not in tasks},
                          {d: v for d, v in self.latency_ms.items() if d not in devices})


@dataclass(frozen=True)
class Split:
    """A study's held-out target and the experience it may learn from. `training` holds no record of the target;
    `target_accuracy` / `target_latency_ms` are for scoring only."""

    training: Experience
    target_task: str | None
    target_device: str | None
    target_accuracy: torch.Tensor | None
    target_latency_ms: torch.Tensor | None


def split(experience: Experience, task: str | None = None, device: str | None = None) -> Split:
    """Hold out a task and/or a device: their columns are removed from the training experience (and copied, so
    that scoring cannot write into what training reads)."""
    if task is not None and task not in experience.accuracy:
        raise InputError(f"unknown task {task!r}; the tables hold {', '.join(experience.accuracy)}")
    if device is not None and device not in experience.latency_ms:
        raise InputError(f"unknown device {device!r}; the tables hold {', '.join(experience.latency_ms)}")
    training = experience.without(tuple(t for t in [task] if t), tuple(d for d in [device] if d))
    return Split(training, task, device,
                 None if task is None else experience.accuracy[task].clone(),
                 None if device is None else experience.latency_ms[device].clone())


def load_experience(nats: str | Path, hw360: str | Path | None = None, help_latency: str | Path | None = None,
                    more_latency: tuple[str | Path, ...] = ()) -> Experience:
    """The tables under ../shared/data (paths given; any but nats may be left out)."""
    index = _column_index()
    accuracy = read_nats(Path(nats), index)
    latency: dict[str, torch.Tensor] = {}
    if help_latency is not None:
        latency.update(read_latency_columns(Path(help_latency), index))
    if hw360 is not None:
        more_accuracy, hw_latency = read_hw360(Path(hw360), index)
        accuracy.update(more_accuracy)
        latency.update(hw_latency)
    for path in more_latency:
        latency.update(read_latency_columns(Path(path), index))
    return Experience(accuracy, latency)
