"""A teacher bank: the finished searches of `train.py teachers` (teachers.json), checked before use, and how its
cells become the imitate objective's targets (op frequencies, pooled per data set)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from run_kit import InputError
from run_kit.files import load_checkpoint
from supernet.spaces import get_space

from .tasks import TaskSplit

TEACHERS_FILE = "teachers.json"


@dataclass
class Teacher:
    """One finished teacher search."""

    spec: str  # the task spec (data set) its classes come from
    labels: list[int]  # the data set's class labels it searched on (all meta-train classes)
    seed: int
    genotype: str  # the space's text form
    val_acc: float | None  # the supernet's accuracy on the search's logit half at the end (None: training-free)
    seconds: float
    weights: dict[str, list[list[float]]]  # per edge over ops: a gradient search's final op weights (its
    # relaxation's mixing of its logits); a training-free search's op frequencies among its top 10 % of cells; an edge
    # the skip probe changed: one-hot on skip_connect
    probe: list[dict[str, Any]] | None = None  # the skip probe's trials (edge, genotype, accuracy), if one ran
    budget_share: float | None = None  # a budgeted teacher: the share of the space's cells its FLOPs budget fits
    max_flops_m: float | None = None  # that budget, on the space's evaluation network for its classes and images

    @property
    def task_share(self) -> float:
        """The budget tightness an episode of this teacher is told (1: no budget)."""
        return 1.0 if self.budget_share is None else self.budget_share

    @property
    def group(self) -> str:
        """What `--imitate-pool dataset` pools over: teachers of one data set under one budget."""
        return self.spec if self.budget_share is None else f"{self.spec}@{self.budget_share:.6g}"


def pooled_targets(groups: list[str], targets: list[dict[str, torch.Tensor]], prior: float
                   ) -> list[dict[str, torch.Tensor]]:
    """Per teacher k of group d (its data set): q_d = (sum_{j in d} q_j + w qbar) / (n_d + w), qbar the mean of all
    targets (w = inf: qbar itself, the limit). Teachers of one data set are replicate searches on random class subsets
    of it; their mean estimates where a search on that data set ends, without the single search's noise, and w
    pseudo-teachers shrink a small group's mean toward the bank's."""
    mean = {key: torch.stack([t[key] for t in targets]).mean(0) for key in targets[0]}
    pooled = {}
    for group in set(groups):
        members = [t for g, t in zip(groups, targets) if g == group]
        pooled[group] = (dict(mean) if math.isinf(prior) else
                         {key: (torch.stack([t[key] for t in members]).sum(0) + prior * mean[key])
                          / (len(members) + prior) for key in mean})
    return [pooled[group] for group in groups]


def bank_file(path: str | Path) -> Path:
    """A bank's teachers.json, given it or the teacher run's directory."""
    path = Path(path)
    return path / TEACHERS_FILE if path.is_dir() else path


@dataclass
class TeacherBank:
    """A finished teacher bank, checked against the meta-train run that imitates it."""

    space: str
    split: dict[str, Any]
    teachers: list[Teacher]

    @classmethod
    def load(cls, path: str | Path, space_name: str, split: TaskSplit) -> TeacherBank:
        """The bank at `path`, refused unless it was made in `space_name` with exactly `split` (the imitating run's
        class split) and its teachers' classes lie in that split's meta-train part."""
        bank = cls.read(path, space_name)
        file = bank_file(path)
        if bank.split != split.as_dict():
            raise InputError(f"teacher bank {file} was made with another class split than this run's (other tasks, "
                             f"--split-seed or --meta-test-fraction); its teachers could have seen held-out classes")
        for teacher in bank.teachers:
            if not set(teacher.labels) <= set(split.meta_train.get(teacher.spec, [])):
                raise InputError(f"teacher bank {file}: a teacher of {teacher.spec} searched classes outside this "
                                 f"run's meta-train split")
        return bank

    @classmethod
    def read(cls, path: str | Path, space_name: str | None = None) -> TeacherBank:
        """The bank at `path` (a teachers.json or its run directory), refused unless it is a well-formed bank of
        `space_name` (default: the space it names): its cells parse and its op weights have the space's shapes."""
        path, file = Path(path), bank_file(path)
        if not file.is_file():
            where = path / "checkpoint.pt"
            unfinished = where.is_file() and load_checkpoint(where).get("kind") == "taskdarts-teachers"
            raise InputError(f"{path}: no {TEACHERS_FILE}" + (" (the teacher run is unfinished; continue it with "
                                                              "--resume)" if unfinished else
                                                              " (make one with `train.py teachers`)"))
        try:
            raw = json.loads(file.read_text())
            bank = cls(raw["space"], raw["split"], [Teacher(**t) for t in raw["teachers"]])
        except (ValueError, KeyError, TypeError) as err:
            raise InputError(f"{file} is not a teacher bank ({type(err).__name__}: {err})"[:300]) from None
        space = get_space(bank.space if space_name is None else space_name)
        if bank.space != space.name:
            raise InputError(f"teacher bank {file} is for the {bank.space} space, not {space.name}")
        if not bank.teachers:
            raise InputError(f"teacher bank {file} holds no teachers")
        shapes = space.logits_shapes()
        for teacher in bank.teachers:
            try:
                space.from_text(teacher.genotype)
            except InputError as err:
                raise InputError(f"teacher bank {file}: {err}") from None
            try:
                weights = {k: torch.tensor(v, dtype=torch.float) for k, v in teacher.weights.items()}
            except (TypeError, ValueError):
                weights = {}
            if ({k: tuple(v.shape) for k, v in weights.items()} != shapes
                    or not all(bool(torch.isfinite(v).all() and (v >= 0).all()) for v in weights.values())):
                raise InputError(f"teacher bank {file}: a teacher's op weights must be non-negative arrays of shapes "
                                 f"{ {k: list(v) for k, v in shapes.items()} }")
        return bank
