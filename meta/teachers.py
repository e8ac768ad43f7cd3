"""Teacher searches: the end points the `imitate` meta-objective amortises (equations in docs/meta.md).

A teacher is one search (any `compare` method: a gradient search such as PC-DARTS, or a training-free one such as
NASWOT over N random cells) run to its end on a seeded sample of one data set's *meta-training* classes. Its cell is
what a search concludes for that kind of task, an answer meant to track the accuracy of the trained cell rather than
how fast a supernet fits in ten steps. Meta-training then fits the controller's policy pi(a | z) to these end points
from the embeddings of episodes drawn from the same classes, so a new task gets, in milliseconds, the cell that
searches on tasks like it end at. Which search makes the better teacher is a design choice made on the validation
family (docs/meta.md, "Choosing the teachers").

A training-free search cannot see a parameter-free path: on the validation family NASWOT and synflow score a skip
connection from the cell's input to its output below a convolution in 32 of 32 conv-only cells, where the table's
columns rank it first in 27-31 (benchmarks/proxy_alignment.py). `--teacher-probe-epochs E` adds that check after the
search: the cell and each variant with one edge turned into a skip connection are trained for E epochs at the space's
full depth on the teacher's images, and the best of them is the teacher's cell (`skip_probe`).

`TeacherJob` runs the searches one after another through the shared resumable driver (unit: one teacher) and
writes teachers.json: per teacher its data set, classes, search seed, cell, op weights, supernet accuracy and seconds.
Held-out classes never enter a teacher: the classes come from the run's meta-train split (task_split.json).
"""
from __future__ import annotations

import itertools
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from image_sets import ImageData, split_indices
from run_kit import InputError
from run_kit.device import pick_device, seed_everything
from run_kit.files import load_checkpoint
from run_kit.loop import Job, run_job
from run_kit.run_dir import RunDir
from search_spaces.nb201 import NB201Genotype
from supernet.methods import method_names, method_settings
from supernet.retrain import RetrainConfig, retrain_in_memory
from supernet.search import SearchConfig, SearchJob
from supernet.spaces import get_space
from supernet.training_free import TrainingFreeJob

from .tasks import ClassPool, EpisodeDistribution, TaskSplit

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


def teacher_classes(config, split) -> list[tuple[str, list[int]]]:
    """(spec, labels) of every teacher: `teachers_per_dataset` seeded draws of up to `teacher_classes` of each data
    set's meta-train classes (drawn with the training seed: a teacher bank belongs to one training seed)."""
    rng = random.Random(config.seed * 7_919 + 17)
    plan = []
    for spec, labels in split.meta_train.items():
        for _ in range(config.teachers_per_dataset):
            chosen = sorted(rng.sample(labels, min(config.teacher_classes, len(labels))))
            plan.append((spec, chosen))
    return plan


TOP_FRACTION = 0.1


def cell_one_hots(space, genotypes: list[str]) -> dict[str, torch.Tensor]:
    """Per cell type [cells, edges, ops]: each cell's (genotype text's) op on each edge, one-hot."""
    per_cell = [{k: F.one_hot(v.argmax(-1), v.shape[-1]).float()
                 for k, v in space.logits_of(space.from_text(genotype)).items()} for genotype in genotypes]
    return {k: torch.stack([h[k] for h in per_cell]) for k in per_cell[0]}


def op_frequencies(space, genotypes: list[str]) -> dict[str, torch.Tensor]:
    """Per cell type [edges, ops]: the share of the cells (genotype texts) that put each op on each edge; one cell's
    is its one-hot."""
    return {k: v.mean(0) for k, v in cell_one_hots(space, genotypes).items()}


def profile_distances(space, cells: list[str], reference: list[str]) -> tuple[float, float]:
    """How far a set of cells ends from a reference set (e.g. searches on a family): the total variation between their
    op shares over all edges, and the mean over edges of the total variation between their per-edge op distributions.
    Single cell type spaces (nb201)."""
    (ours,), (theirs,) = op_frequencies(space, cells).values(), op_frequencies(space, reference).values()
    return 0.5 * float((ours.mean(0) - theirs.mean(0)).abs().sum()), float(per_edge_distance(ours, theirs))


def per_edge_distance(ours: torch.Tensor, theirs: torch.Tensor) -> torch.Tensor:
    """The mean over edges of the total variation between two op profiles [edges, ops] (a 0-d tensor)."""
    return 0.5 * (ours - theirs).abs().sum(-1).mean()


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


def _edges_one_hot(space, genotypes: list[str]) -> torch.Tensor:
    """[cells, edges of all cell types, ops]."""
    return torch.cat(list(cell_one_hots(space, genotypes).values()), dim=1)


def _between_groups(one_hot: torch.Tensor, labels: torch.Tensor, count: int) -> float:
    profiles = [one_hot[labels == g].mean(0) for g in range(count)]
    return float(torch.stack([per_edge_distance(a, b) for a, b in itertools.combinations(profiles, 2)]).mean())


def dataset_dependence(space, groups: list[str], genotypes: list[str], shuffles: int = 2000, seed: int = 0
                       ) -> dict[str, Any]:
    """Whether searches end in different places on different data sets, beyond the spread of one data set's searches:
    a permutation test. Statistic: the mean over pairs of data sets of the per-edge total variation between their op
    profiles (profile_distances' second number); null: the statistic with the data-set labels shuffled (group sizes
    kept); p = (1 + #{shuffled >= observed}) / (1 + shuffles). What a task-conditioned proposal can learn from a bank
    beyond its overall vote is this difference; a large p says the bank shows none."""
    names = sorted(set(groups))
    if len(names) < 2:
        raise InputError("testing the teachers' dependence on the data set needs teachers of at least 2 data sets")
    one_hot = _edges_one_hot(space, genotypes)
    labels = torch.tensor([names.index(g) for g in groups])
    observed = _between_groups(one_hot, labels, len(names))
    generator = torch.Generator().manual_seed(seed)
    null = torch.tensor([_between_groups(one_hot, labels[torch.randperm(len(labels), generator=generator)],
                                         len(names)) for _ in range(shuffles)])
    return {"teachers_per_dataset": {name: groups.count(name) for name in names}, "statistic": round(observed, 4),
            "shuffled_mean": round(float(null.mean()), 4),
            "p_value": round((1 + int((null >= observed - 1e-9).sum())) / (1 + shuffles), 4), "shuffles": shuffles}


def leave_one_out(space, groups: list[str], genotypes: list[str], priors: list[float]) -> dict[float, dict[str, float]]:
    """How well a pooled target predicts where a search it never saw ends: for each teacher k, the pooled target of k's
    data set from the *other* teachers (pooled_targets of their cells, prior w), its most likely op per edge (ties
    broken by the other teachers' mean) against k's cell. Per prior: edge_agreement (share of edges), cell_agreement
    (share of whole cells) and probability (the target's mean mass on k's op). Teachers alone in their data set are
    left out for every prior (w = 0 has no target for them)."""
    one_hot = _edges_one_hot(space, genotypes)
    scored = [k for k, group in enumerate(groups) if groups.count(group) > 1]
    if not scored or len(groups) < 3:
        raise InputError("leave-one-out needs a data set with at least 2 teachers and at least 3 teachers in all")
    results = {}
    for prior in priors:
        edges, cells, mass = [], [], []
        for k in scored:
            others = [j for j in range(len(groups)) if j != k]
            other_groups = [groups[j] for j in others]
            targets = pooled_targets(other_groups, [{"edges": one_hot[j]} for j in others], prior)
            target = targets[other_groups.index(groups[k])]["edges"]
            mean = one_hot[others].mean(0)
            hits = (target + 1e-6 * mean).argmax(-1) == one_hot[k].argmax(-1)
            edges.append(float(hits.float().mean()))
            cells.append(float(hits.all()))
            mass.append(float((target * one_hot[k]).sum(-1).mean()))
        results[prior] = {"edge_agreement": round(sum(edges) / len(edges), 4),
                          "cell_agreement": round(sum(cells) / len(cells), 4),
                          "probability": round(sum(mass) / len(mass), 4), "teachers": len(scored)}
    return results


def top_cell_frequencies(space, rows: list[dict[str, Any]], fraction: float) -> dict[str, list[list[float]]]:
    """Per edge, how often each op occurs among the best `fraction` of a training-free search's scored cells: the
    search's preference as a distribution over ops rather than one cell (rows: its metrics, score and genotype)."""
    scored = sorted((row for row in rows if math.isfinite(row["score"])), key=lambda row: -row["score"])
    top = scored[:max(1, round(fraction * len(scored)))]
    return {k: v.tolist() for k, v in op_frequencies(space, [row["genotype"] for row in top]).items()}


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


SKIP = "skip_connect"


def probe_accuracy(genotype: NB201Genotype, train: ImageData, test: ImageData, epochs: int, layers: int,
                   init_channels: int, seed: int, device: str) -> float:
    """Test accuracy of the genotype's network after `epochs` epochs (the space's recipe, batch 64): the probe's
    short training."""
    config = RetrainConfig(genotype=str(genotype), epochs=epochs, layers=layers, init_channels=init_channels,
                           batch_size=64, seed=seed, channels_last=False, device=device)
    return float(retrain_in_memory(config, train, test)["test_acc"])


def skip_probe(genotype: NB201Genotype, data: ImageData, epochs: int, layers: int, init_channels: int, seed: int,
               device: str) -> tuple[NB201Genotype, list[dict[str, Any]]]:
    """The genotype or one of its one-skip variants (one edge's op replaced by skip_connect), whichever tests best
    after `epochs` epochs of training at `layers` cells per stage on a seeded 80/20 split of `data` (a tie keeps the
    genotype). Returns the winner and every trial: edge (None for the genotype itself), genotype text, accuracy."""
    train_index, test_index = split_indices(len(data), (0.8, 0.2), seed)
    train, test = data.subset(train_index), data.subset(test_index)
    candidates: list[tuple[int | None, NB201Genotype]] = [(None, genotype)]
    candidates += [(edge, NB201Genotype(genotype.ops[:edge] + (SKIP,) + genotype.ops[edge + 1:]))
                   for edge, op in enumerate(genotype.ops) if op != SKIP]
    trials = [{"edge": edge, "genotype": str(candidate), "accuracy": round(
        probe_accuracy(candidate, train, test, epochs, layers, init_channels, seed, device), 6)}
              for edge, candidate in candidates]
    best = max(range(len(trials)), key=lambda k: trials[k]["accuracy"])  # the first of equals: the genotype
    return candidates[best][1], trials


def probed_weights(weights: dict[str, list[list[float]]], before: NB201Genotype, after: NB201Genotype,
                   ops: tuple[str, ...]) -> dict[str, list[list[float]]]:
    """A teacher's op weights with every edge the probe changed set to one-hot on its new op."""
    rows = [list(row) for row in weights["cell"]]
    for edge, (old, new) in enumerate(zip(before.ops, after.ops)):
        if old != new:
            rows[edge] = [float(op == new) for op in ops]
    return {"cell": rows}


def teacher_search_config(config, seed: int) -> SearchConfig:
    """The teachers' search: the `teacher_method` of `compare`, at the meta-model's supernet scale."""
    settings = method_settings(config.teacher_method, config.teacher_epochs, 100)
    if settings is None:
        raise InputError(f"--teacher-method must be a search method ({method_names()}), got '{config.teacher_method}'")
    if config.teacher_logit_lr is not None:
        settings["logit_lr"] = config.teacher_logit_lr
    return SearchConfig(space=config.space, epochs=config.teacher_epochs, layers=config.layers,
                        init_channels=config.init_channels, seed=seed, augment=True, device=config.device,
                        precision=config.precision, **settings)


class TeacherJob(Job):
    name, unit = "teachers", "teacher"

    def __init__(self, config, device: torch.device):
        config.validate()
        teacher_search_config(config, 0).validate()
        self.config, self.device = config, device
        meta_train, _, self.split = config.distributions()
        if not isinstance(meta_train, EpisodeDistribution):
            raise InputError("teachers search classes of episode task specs; whole:DATASET specs have none to sample")
        self.pools = {pool.spec: pool for pool in meta_train.pools}
        self.plan = [(spec, labels) for spec, labels in teacher_classes(config, self.split) if spec in self.pools]
        self.total = len(self.plan)
        self.done = 0
        self.teachers: list[Teacher] = []
        self.metrics: list[dict[str, Any]] = []
        self._dependence: tuple[int, dict[str, Any]] | None = None  # (teachers tested, dataset_dependence)

    def describe(self) -> str:
        c = self.config
        budget = "" if teacher_search_config(c, 0).proxy else f", {c.teacher_epochs} epochs"
        if c.teacher_probe_epochs:
            budget += (f", then a skip probe of {c.teacher_probe_epochs} epochs at {c.teacher_probe_layers} cells per "
                       f"stage")
        return (f"{self.total} teacher searches ({c.teacher_method}{budget}, {c.space} C="
                f"{c.init_channels} x{c.layers}, up to {c.teacher_classes} classes and {c.teacher_images} images "
                f"each) on the meta-train classes of {', '.join(self.pools)}; device {self.device}")

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "taskdarts-teachers", "done": self.done, "teachers": [asdict(t) for t in self.teachers],
                "metrics": self.metrics, "split": self.split.as_dict(), "config": self.config.as_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.done = state["done"]
        self.teachers = [Teacher(**t) for t in state["teachers"]]
        self.metrics = list(state["metrics"])

    def run_unit(self, progress: bool) -> dict[str, Any]:
        """One teacher: a whole search on its classes."""
        spec, labels = self.plan[self.done]
        seed = self.config.seed * 1000 + self.done
        data = class_images(self.pools[spec], labels, self.config.teacher_images, seed)
        seed_everything(seed)  # the supernet's initial weights: a resumed bank repeats the teacher exactly
        config = teacher_search_config(self.config, seed)
        started = time.time()
        search = (SearchJob if config.proxy is None else TrainingFreeJob)(config, data, self.device)
        while search.done < search.total:
            search.run_unit(progress)
        space, genotype = search.space, search.genotype()
        if config.proxy is None:
            val_acc = float(search.metrics[-1]["val_acc"])
            weights = {k: search.relaxation.expected(v.detach().float()).cpu().tolist()
                       for k, v in search.arch().items() if k in space.cell_types}
        else:  # a training-free search: its best cell; op weights = op frequencies of its top tenth of cells
            val_acc = None
            weights = top_cell_frequencies(space, search.metrics, TOP_FRACTION)
        probe, probe_note = None, ""
        if self.config.teacher_probe_epochs:
            searched = genotype
            genotype, probe = skip_probe(searched, data, self.config.teacher_probe_epochs,
                                         self.config.teacher_probe_layers, self.config.init_channels, seed,
                                         str(self.device))
            weights = probed_weights(weights, searched, genotype, space.ops)
            probe_note = next((f"skip on edge {edge}" for edge, (old, new) in enumerate(zip(searched.ops, genotype.ops))
                               if old != new), "kept")
        teacher = Teacher(spec, labels, seed, space.to_text(genotype), val_acc, round(time.time() - started, 2),
                          weights, probe)
        self.teachers.append(teacher)
        self.done += 1
        row = {"teacher": self.done, "spec": spec, "classes": len(labels), "images": len(data),
               "val_acc": "" if val_acc is None else round(val_acc, 4), "seconds": teacher.seconds,
               "probe": probe_note,
               "genotype": teacher.genotype}
        self.metrics.append(row)
        return row

    def log_line(self, row: dict[str, Any]) -> str:
        return (f"teacher {row['teacher']}/{self.total} on {row['spec']} ({row['classes']} classes, {row['images']} "
                f"images): val_acc {row['val_acc'] or '-'} in {row['seconds']:.0f}s, "
                + (f"skip probe: {row['probe']}, " if row["probe"] else "") + f"genotype {row['genotype']}")

    def replicated(self) -> tuple[str, list[torch.Tensor]]:
        return "nothing", []

    def final_files(self) -> dict[str, str]:
        bank = {"space": self.config.space, "split": self.split.as_dict(), "seed": self.config.seed,
                "method": self.config.teacher_method, "epochs": self.config.teacher_epochs,
                "probe_epochs": self.config.teacher_probe_epochs, "probe_layers": self.config.teacher_probe_layers,
                "teachers": [asdict(t) for t in self.teachers]}
        return {TEACHERS_FILE: json.dumps(bank, indent=1) + "\n"}

    def dependence(self) -> dict[str, Any] | None:
        """dataset_dependence of the teachers' cells so far (None with fewer than 2 data sets), computed once per
        number of teachers (the log and the result ask for the same)."""
        groups = [teacher.spec for teacher in self.teachers]
        if len(set(groups)) < 2:
            return None
        if self._dependence is None or self._dependence[0] != len(groups):
            self._dependence = (len(groups), dataset_dependence(get_space(self.config.space), groups,
                                                                [t.genotype for t in self.teachers]))
        return self._dependence[1]

    def final_lines(self, run_path) -> list[str]:
        test = self.dependence()
        if test is None:
            return []
        return [f"do the teachers end differently on different data sets? per-edge distance between the data sets' "
                f"op profiles {test['statistic']:.3f}, with the labels shuffled {test['shuffled_mean']:.3f}: p = "
                f"{test['p_value']:.3f}" + (" (no evidence at the 5 % level: task conditioning has little to learn "
                                            "here beyond the bank's vote; see benchmarks/teacher_signal.py)"
                                            if test["p_value"] > 0.05 else "")]

    def result(self) -> dict[str, Any]:
        test = self.dependence() if self.done == self.total else None
        return {"teachers": self.done, "distinct_genotypes": len({t.genotype for t in self.teachers}),
                "seconds": round(sum(t.seconds for t in self.teachers), 1),
                **({"dataset_dependence_p": test["p_value"]} if test else {})}


def run_teachers(config, run: RunDir, resume: bool = False, stop_after: int | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Run the teacher searches of a meta-train config; writes config.yaml, log.txt, metrics.csv, checkpoint.pt and
    finally teachers.json into `run`."""
    config.validate()
    run.check(resume)
    device = pick_device(config.device)
    seed_everything(config.seed)
    return run_job(TeacherJob(config, device), run, resume, stop_after, progress)


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
    def load(cls, path: str | Path, space_name: str, split: TaskSplit) -> "TeacherBank":
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
    def read(cls, path: str | Path, space_name: str | None = None) -> "TeacherBank":
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
