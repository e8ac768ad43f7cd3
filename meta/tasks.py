"""Tasks and task distributions: the first stage of TaskDARTS's data flow.

A task is a classification problem: images of some classes of a data set, relabelled 0..n-1, in four disjoint
splits: support (the inner loop's weight steps), query (the inner loop's logit steps), outer (scores the adapted
task for the meta-gradient: the inner loop never reads it) and test (reporting only). Two distributions:
- episodes: N classes drawn from one of several data sets, a fixed number of images per class and split;
- whole data sets: each `whole:DATASET` spec is one task (support/query/outer = seeded thirds of its training
  split, test = its test split).
Meta-train and meta-test episodes come from disjoint classes: a split of every data set's classes drawn with the
split seed alone (`--split-seed`), so meta-runs with different training seeds share one held-out set. Held-out whole
data sets are given separately. The split is recorded in the run directory (task_split.json).
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from image_sets import ImageData, load_dataset, resize, split_indices
from run_kit import InputError


@dataclass
class Task:
    name: str
    data: ImageData  # the task's images only, labels 0..n-1
    support: torch.Tensor
    query: torch.Tensor
    outer: torch.Tensor
    test: torch.Tensor
    budget_share: float = 1.0  # the share of the space's cells its budget lets through (1: no budget)

    SPLITS = ("support", "query", "outer", "test")

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    def to(self, device: torch.device) -> Task:
        return Task(self.name, self.data.to(device), self.support, self.query, self.outer, self.test,
                    self.budget_share)


class SplitSizes(NamedTuple):
    """Images per class in each split of an episode."""

    shots: int     # support
    queries: int   # query
    outers: int    # outer
    tests: int     # test

    @property
    def per_class(self) -> int:
        return sum(self)


def match_format(data: ImageData, channels: int, image_size: int) -> ImageData:
    """Bring images to the channel count and square size a meta-model was trained with."""
    x = data.x
    if x.shape[1] != channels:
        if x.shape[1] == 1:
            x = x.expand(-1, channels, -1, -1).contiguous()
        elif channels == 1:
            x = x.float().mean(1, keepdim=True).round().to(torch.uint8)
        else:
            raise InputError(f"cannot convert {x.shape[1]}-channel images to {channels} channels")
    return resize(ImageData(x, data.y, data.classes, data.name, data.hflip), image_size)


def whole_dataset_task(spec: str, channels: int, image_size: int, seed: int, root: str = "data",
                       download: bool = False, max_per_class: int | None = None, include_test: bool = True,
                       outer: bool = True) -> Task:
    """A whole data set as one task: support/query/outer are seeded thirds of its training split (halves and no
    outer split with `outer=False`: a search on a new data set has no meta-gradient to score), test its test split
    (left out with `include_test=False`, as a search must never see it)."""
    train = match_format(load_dataset(spec, "train", root, download), channels, image_size)
    if max_per_class is not None:
        train = train.subset(cap_per_class(train.y, max_per_class, seed))
    parts = [train]
    if include_test:
        parts.append(match_format(load_dataset(spec, "test", root, download), channels, image_size))
    data = ImageData(torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]), train.classes, train.name,
                     train.hflip)
    if outer:
        support, query, outer_part = split_indices(len(train), [1 / 3, 1 / 3, 1 / 3], seed)
    else:  # halves (a split [0.5, 0.5, 0.0] rounds both halves up for some sizes and fails, e.g. 1903 images)
        support, query = split_indices(len(train), [0.5, 0.5], seed)
        outer_part = torch.zeros(0, dtype=torch.long)
    return Task(f"whole:{spec}", data, support, query, outer_part, torch.arange(len(train), len(data)))


def search_task(data: ImageData, seed: int, name: str | None = None) -> Task:
    """A data set as a search on it sees it: support and query are its seeded halves (a plain search's weight and
    logit halves, the same seed giving the same halves), no outer or test split."""
    support, query = split_indices(len(data), [0.5, 0.5], seed)
    empty = torch.zeros(0, dtype=torch.long)
    return Task(name or data.name, data, support, query, empty, empty)


def cap_per_class(y: torch.Tensor, cap: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    keep = []
    for label in torch.unique(y).tolist():
        members = torch.nonzero(y == label).flatten()
        keep.append(members[torch.randperm(len(members), generator=generator)[:cap]])
    return torch.cat(keep).sort().values


@dataclass
class ClassPool:
    """The classes of one data set available to a distribution, with all their images."""

    spec: str
    data: ImageData
    members: dict[int, torch.Tensor]  # class label -> indices into data

    def labels(self) -> list[int]:
        return sorted(self.members)


class EpisodeDistribution:
    """N-way episodes: pick a data set (uniformly), N of its classes, then the split sizes' images per class.
    N = `ways`, or with `max_ways` uniform in [ways, max_ways] (capped at the data set's class count), so that
    meta-training also sees tasks with as many classes as the data sets it will be deployed on."""

    def __init__(self, pools: Sequence[ClassPool], ways: int, sizes: SplitSizes, max_ways: int | None = None):
        self.pools = [pool for pool in pools if len(pool.members) >= ways]
        if not self.pools:
            raise InputError(f"no data set has {ways} classes with {sizes.per_class} images each "
                             f"for {ways}-way episodes; lower --ways, --shots, --queries, --outers or --tests")
        self.ways, self.sizes, self.max_ways = ways, sizes, max_ways or ways

    def sample(self, rng: random.Random) -> Task:
        pool = self.pools[rng.randrange(len(self.pools))]
        ways = self.ways
        if self.max_ways > self.ways:
            ways = rng.randint(self.ways, min(self.max_ways, len(pool.members)))
        labels = rng.sample(pool.labels(), ways)
        chosen: list[int] = []
        splits: dict[str, list[int]] = {name: [] for name in Task.SPLITS}
        for label in labels:
            picked = rng.sample(pool.members[label].tolist(), self.sizes.per_class)
            offset = len(chosen)
            chosen += picked
            for name, size in zip(Task.SPLITS, self.sizes):
                splits[name] += range(offset, offset + size)
                offset += size
        index = torch.tensor(chosen)
        remap = {label: k for k, label in enumerate(labels)}
        y = torch.tensor([remap[int(v)] for v in pool.data.y[index]])
        classes = [pool.data.classes[label] for label in labels]
        data = ImageData(pool.data.x[index], y, classes, pool.data.name, pool.data.hflip)
        name = f"{pool.spec}[{','.join(map(str, labels))}]"
        return Task(name, data, *(torch.tensor(splits[key], dtype=torch.long) for key in Task.SPLITS))


class WholeDatasetDistribution:
    def __init__(self, tasks: Sequence[Task]):
        if not tasks:
            raise InputError("no whole-data-set tasks")
        self.tasks = list(tasks)

    def sample(self, rng: random.Random) -> Task:
        return self.tasks[rng.randrange(len(self.tasks))]


@dataclass
class TaskSplit:
    """Which classes of which data set belong to meta-training and to meta-testing (saved as task_split.json)."""

    meta_train: dict[str, list[int]]
    meta_test: dict[str, list[int]]
    split_seed: int

    def as_dict(self) -> dict[str, Any]:
        return {"split_seed": self.split_seed, "meta_train": self.meta_train, "meta_test": self.meta_test}


def build_distributions(specs: Sequence[str], test_specs: Sequence[str], ways: int, sizes: SplitSizes,
                        channels: int, image_size: int, meta_test_fraction: float, split_seed: int,
                        root: str = "data", download: bool = False, max_ways: int | None = None):
    """(meta-train distribution, meta-test distribution, TaskSplit) for the task specs.

    A spec `DATASET` contributes episodes, its classes split between meta-train and meta-test by `split_seed`
    alone; a spec `whole:DATASET` is one meta-train task. `test_specs` are held-out data sets (episodes over all
    their classes, or `whole:` tasks) used for meta-testing only.
    """
    per_class = sizes.per_class
    generator = torch.Generator().manual_seed(split_seed)
    train_pools, test_pools, whole_train, whole_test = [], [], [], []
    split = TaskSplit({}, {}, split_seed)
    for spec, held_out in [(s, False) for s in specs] + [(s, True) for s in test_specs]:
        if spec.startswith("whole:"):
            task = whole_dataset_task(spec[6:], channels, image_size, split_seed, root, download)
            (whole_test if held_out else whole_train).append(task)
            (split.meta_test if held_out else split.meta_train)[spec] = list(range(task.num_classes))
            continue
        data = _all_images(spec, channels, image_size, root, download)
        members = {label: torch.nonzero(data.y == label).flatten() for label in torch.unique(data.y).tolist()}
        members = {label: m for label, m in members.items() if len(m) >= per_class}
        labels = sorted(members)
        if held_out:
            test_labels, train_labels = labels, []
        else:
            order = [labels[k] for k in torch.randperm(len(labels), generator=generator).tolist()]
            cut = max(int(round(meta_test_fraction * len(order))), ways if meta_test_fraction > 0 else 0)
            if len(order) - cut < ways:
                raise InputError(f"{spec}: {len(labels)} classes with {per_class} images each are too few for "
                                 f"{ways}-way meta-train and meta-test episodes")
            test_labels, train_labels = sorted(order[:cut]), sorted(order[cut:])
        if train_labels:
            train_pools.append(ClassPool(spec, data, {k: members[k] for k in train_labels}))
            split.meta_train[spec] = train_labels
        if test_labels:
            test_pools.append(ClassPool(spec, data, {k: members[k] for k in test_labels}))
            split.meta_test[spec] = test_labels
    meta_train = _distribution(train_pools, whole_train, ways, sizes, max_ways, "meta-training")
    meta_test = _distribution(test_pools, whole_test, ways, sizes, max_ways, "meta-testing")
    return meta_train, meta_test, split


def _distribution(pools, whole, ways, sizes, max_ways, purpose):
    if pools and whole:
        raise InputError(f"mix of episode and whole-data-set task specs for {purpose}; use one kind")
    if whole:
        return WholeDatasetDistribution(whole)
    if pools:
        return EpisodeDistribution(pools, ways, sizes, max_ways)
    return None


def _all_images(spec: str, channels: int, image_size: int, root: str, download: bool) -> ImageData:
    """Both splits of a data set (classes, not images, separate meta-train from meta-test)."""
    parts = [match_format(load_dataset(spec, split, root, download), channels, image_size)
             for split in ("train", "test")]
    return ImageData(torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]), parts[0].classes,
                     parts[0].name, parts[0].hflip)
