"""Teacher searches: the end points the `imitate` meta-objective amortises (equations in docs/meta.md).

A teacher is one search (any method of supernet/methods.py: a gradient search such as PC-DARTS, or a training-free
one such as NASWOT over N random cells) run to its end on a seeded sample of one data set's *meta-training* classes.
Its cell is what a search concludes for that kind of task, an answer meant to track the accuracy of the trained cell
rather than how fast a supernet fits in ten steps. Meta-training then fits the controller's policy pi(a | z) to these
end points from the embeddings of episodes drawn from the same classes, so a new task gets, in milliseconds, the cell
that searches on tasks like it end at. `--teacher-probe-epochs E` ends each search with the skip probe
(meta/skip_probe.py).

`TeacherJob` runs the searches one after another through the shared resumable driver (unit: one teacher) and
writes teachers.json (meta/teacher_bank.py): per teacher its data set, classes, search seed, cell, op weights,
supernet accuracy and seconds. Held-out classes never enter a teacher: the classes come from the run's meta-train
split (task_split.json).
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import asdict
from typing import Any

import torch

from image_sets import ImageData
from run_kit import InputError
from run_kit.device import pick_device, seed_everything
from run_kit.loop import Job, run_job
from run_kit.run_dir import RunDir
from supernet.costs import Budget, bound_at_share, budget_share, cell_costs, cost_terms
from supernet.search import search_in_memory
from supernet.spaces import get_space

from .config import MetaConfig
from .skip_probe import changed_edges, probed_weights, skip_probe
from .tasks import ClassPool, EpisodeDistribution
from .teacher_bank import TEACHERS_FILE, Teacher

MIN_BUDGET_SHARE = 0.03  # the tightest budget a teacher searches under lets 3 % of the space's cells through


def teacher_classes(config: MetaConfig, split) -> list[tuple[str, list[int], float | None]]:
    """(spec, labels, budget share) of every teacher: `teachers_per_dataset` seeded draws of up to `teacher_classes`
    of each data set's meta-train classes (drawn with the training seed: a teacher bank belongs to one training seed),
    unbudgeted (share None); then, with `teacher_budgets` K, K more teachers on each of those class draws, each under
    a FLOPs budget that lets a share ~ U(MIN_BUDGET_SHARE, 1) of the space's cells through (drawn apart, so the
    unbudgeted teachers are the same with and without budgets)."""
    rng = random.Random(config.seed * 7_919 + 17)
    plan: list[tuple[str, list[int], float | None]] = []
    for spec, labels in split.meta_train.items():
        for _ in range(config.teacher.teachers_per_dataset):
            chosen = sorted(rng.sample(labels, min(config.teacher.teacher_classes, len(labels))))
            plan.append((spec, chosen, None))
    budget_rng = random.Random(config.seed * 7_919 + 23)
    plan += [(spec, labels, round(budget_rng.uniform(MIN_BUDGET_SHARE, 1.0), 4))
             for spec, labels, _ in list(plan) for _ in range(config.teacher.teacher_budgets)]
    return plan


def class_images(pool: ClassPool, labels: list[int], max_images: int, seed: int) -> ImageData:
    """The images of `labels` of a pool (relabelled 0..n-1), at most max_images // n per class, a seeded sample: a
    teacher's search data (and, in benchmarks, a held-out family's)."""
    generator = torch.Generator().manual_seed(seed)
    per_class = max(max_images // len(labels), 1)
    keep = []
    for label in labels:
        members = pool.members[label]
        keep.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    index = torch.cat(keep)
    remap = torch.full((int(pool.data.y.max()) + 1,), -1, dtype=torch.long)
    remap[torch.tensor(labels)] = torch.arange(len(labels))
    classes = [pool.data.classes[label] for label in labels]
    return ImageData(pool.data.x[index], remap[pool.data.y[index]], classes, pool.data.name, pool.data.hflip)


class TeacherJob(Job):
    name, unit = "teachers", "teacher"

    def __init__(self, config: MetaConfig, device: torch.device):
        config.validate()
        config.teacher_search(0).validate()
        self.config, self.device = config, device
        meta_train, _, self.split = config.distributions()
        if not isinstance(meta_train, EpisodeDistribution):
            raise InputError("teachers search classes of episode task specs; whole:DATASET specs have none to sample")
        self.pools = {pool.spec: pool for pool in meta_train.pools}
        self.plan = [entry for entry in teacher_classes(config, self.split) if entry[0] in self.pools]
        self.total = len(self.plan)
        self.done = 0
        self.teachers: list[Teacher] = []
        self.metrics: list[dict[str, Any]] = []

    def reuse(self, teachers: list[Teacher]) -> int:
        """Take the leading teachers of another finished bank as this job's first units where they are the same
        searches (same data set, classes and seed, unbudgeted; the caller vouches for the same teacher settings):
        a bank grown with --teacher-budgets need not redo its unbudgeted searches. Returns how many were taken."""
        for teacher in teachers:
            if self.done == self.total:
                break
            spec, labels, share = self.plan[self.done]
            if (teacher.spec, teacher.labels, teacher.seed, teacher.budget_share) != (
                    spec, labels, self.config.seed * 1000 + self.done, share):
                break
            self.teachers.append(teacher)
            self.done += 1
        return self.done

    def describe(self) -> str:
        c, t = self.config, self.config.teacher
        budget = "" if c.teacher_search(0).proxy else f", {t.teacher_epochs} epochs"
        if t.teacher_budgets:
            budget += f", {t.teacher_budgets} FLOPs-budgeted searches per class draw"
        if t.teacher_probe_epochs:
            budget += (f", then a skip probe of {t.teacher_probe_epochs} epochs at {t.teacher_probe_layers} cells per "
                       f"stage")
        return (f"{self.total} teacher searches ({t.teacher_method}{budget}, {c.space} C="
                f"{c.model.init_channels} x{c.model.layers}, up to {t.teacher_classes} classes and {t.teacher_images} "
                f"images each) on the meta-train classes of {', '.join(self.pools)}; device {self.device}")

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "taskdarts-teachers", "done": self.done, "teachers": [asdict(t) for t in self.teachers],
                "metrics": self.metrics, "split": self.split.as_dict(), "config": self.config.as_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.done = state["done"]
        self.teachers = [Teacher(**t) for t in state["teachers"]]
        self.metrics = list(state["metrics"])

    def run_unit(self, progress: bool) -> dict[str, Any]:
        """One teacher: a whole search on its classes."""
        spec, labels, share = self.plan[self.done]
        seed = self.config.seed * 1000 + self.done
        t = self.config.teacher
        data = class_images(self.pools[spec], labels, t.teacher_images, seed)
        seed_everything(seed)  # the supernet's initial weights: a resumed bank repeats the teacher exactly
        config = self.config.teacher_search(seed)
        started = time.time()
        max_flops_m, fits = None, None
        if share is not None:  # only cells within the budget are candidates
            costs = cell_costs(self.config.space, len(labels), data.channels, data.image_size)
            space, terms = get_space(self.config.space), cost_terms(costs)
            max_flops_m = bound_at_share(space, terms["flops_m"], share)
            share = budget_share(space, terms, Budget(max_flops_m=max_flops_m))  # >= the draw: cells tie in FLOPs
            fits = lambda genotype: costs.of(genotype)[1] <= max_flops_m + 1e-9  # noqa: E731
        outcome = search_in_memory(config, data, self.device, fits, progress)
        space, genotype, weights = get_space(config.space), outcome.genotype, outcome.op_weights
        val_acc = outcome.val_acc
        probe, probe_note = None, ""
        if t.teacher_probe_epochs:
            searched = genotype
            genotype, probe = skip_probe(space, searched, data, t.teacher_probe_epochs, t.teacher_probe_layers,
                                         self.config.model.init_channels, seed, str(self.device))
            weights = probed_weights(space, weights, searched, genotype)
            probe_note = next((f"skip on edge {edge}" for edge, _ in changed_edges(space, searched, genotype)), "kept")
        if fits is not None and not fits(genotype):  # a skip costs no multiply-adds: the probe cannot leave the budget
            raise AssertionError(f"teacher {self.done + 1}'s cell {space.to_text(genotype)} exceeds its budget")
        teacher = Teacher(spec, labels, seed, space.to_text(genotype), val_acc, round(time.time() - started, 2),
                          weights, probe, share, max_flops_m)
        self.teachers.append(teacher)
        self.done += 1
        row = {"teacher": self.done, "spec": spec, "classes": len(labels), "images": len(data),
               "val_acc": "" if val_acc is None else round(val_acc, 4), "seconds": teacher.seconds,
               "probe": probe_note, "budget_share": "" if share is None else share,
               "max_flops_m": "" if max_flops_m is None else round(max_flops_m, 4), "genotype": teacher.genotype}
        self.metrics.append(row)
        return row

    def log_line(self, row: dict[str, Any]) -> str:
        budget = f", at most {row['max_flops_m']} M FLOPs (share {row['budget_share']})" if row["max_flops_m"] else ""
        return (f"teacher {row['teacher']}/{self.total} on {row['spec']} ({row['classes']} classes, {row['images']} "
                f"images{budget}): val_acc {row['val_acc'] or '-'} in {row['seconds']:.0f}s, "
                + (f"skip probe: {row['probe']}, " if row["probe"] else "") + f"genotype {row['genotype']}")

    def replicated(self) -> tuple[str, list[torch.Tensor]]:
        return "nothing", []

    def final_files(self) -> dict[str, str]:
        t = self.config.teacher
        bank = {"space": self.config.space, "split": self.split.as_dict(), "seed": self.config.seed,
                "method": t.teacher_method, "epochs": t.teacher_epochs, "probe_epochs": t.teacher_probe_epochs,
                "probe_layers": t.teacher_probe_layers, "budgets": t.teacher_budgets,
                "teachers": [asdict(teacher) for teacher in self.teachers]}
        return {TEACHERS_FILE: json.dumps(bank, indent=1) + "\n"}

    def result(self) -> dict[str, Any]:
        return {"teachers": self.done, "distinct_genotypes": len({t.genotype for t in self.teachers}),
                "seconds": round(sum(t.seconds for t in self.teachers), 1)}


def run_teachers(config: MetaConfig, run: RunDir, resume: bool = False, stop_after: int | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Run the teacher searches of a meta-train config; writes config.yaml, log.txt, metrics.csv, checkpoint.pt and
    finally teachers.json into `run`."""
    config.validate()
    run.check(resume)
    device = pick_device(config.device)
    seed_everything(config.seed)
    return run_job(TeacherJob(config, device), run, resume, stop_after, progress)
