#!/usr/bin/env python
"""Validation score of a meta-trained NAS-Bench-201 TaskDARTS: zero-shot cells for episodes of one family's
held-out classes, scored with a NAS-Bench-201 table column that is never a reported figure.

Design choices (objective, regulariser weight, horizon) are made with this, never with the held-out report sets.
The default pairs held-out Tiny ImageNet classes with the table's ImageNet16-120 column (both downsampled ImageNet;
the reported CIFAR-10 column and CIFAR-10 images are not touched). The held-out classes are recomputed from the
run's own config and checked against its task_split.json, so they are the classes its meta-training never saw.

    python benchmarks/meta_validation.py runs/meta-natural --family tinyimagenet32 --episodes 20 \\
        --table ../shared/data/nb201/nats_bench.csv --column imagenet16_120
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path

import torch

from evaluation.compare import mean_std
from evaluation.nb201_table import NB201Table
from evaluation.teacher_signal import profile_distances
from meta.model import load_meta
from meta.tasks import EpisodeDistribution
from run_kit import InputError
from supernet.spaces import get_space


def validation_cells(run: str, family: str, episodes: int, seed: int = 0, ways: int | None = None
                     ) -> list[tuple[str, object, str | None]]:
    """(episode name, zero-shot genotype, data set its z is named as) for `episodes` episodes of `family`'s held-out
    classes: the run's own episode sizes, or `ways`-way episodes (a data set of that many classes, embedded as
    `search --meta` embeds one). The data set is the --dataset-loss head's guess among the meta-train data sets
    (None without the head)."""
    meta = load_meta(run, torch.device("cpu"), expect_space="nb201")
    c = meta.config
    _, meta_test, split = c.distributions()
    recorded = json.loads((Path(run) / "task_split.json").read_text())
    if split.as_dict() != recorded:
        raise InputError(f"{run}: the class split recomputed from its config differs from its task_split.json")
    pools = [pool for pool in getattr(meta_test, "pools", []) if family in pool.spec]
    if not pools:
        raise InputError(f"{run}: no held-out classes of a data set matching '{family}'")
    held_out = min(len(pool.members) for pool in pools)
    if ways is not None and not 1 <= ways <= held_out:
        raise InputError(f"--ways must lie between 1 and the family's {held_out} held-out classes, got {ways}")
    distribution = (EpisodeDistribution(pools, c.task.ways, c.task.split_sizes, c.task.max_ways) if ways is None
                    else EpisodeDistribution(pools, ways, c.task.split_sizes))
    rng = random.Random(seed)
    meta.eval()
    cells = []
    with torch.no_grad():
        for _ in range(episodes):
            task = distribution.sample(rng)
            z = meta.embed([task])[0]
            logits = meta.start(z).logits
            named = None if meta.dataset_head is None else c.task.tasks[int(meta.dataset_head(z).argmax())]
            cells.append((task.name, meta.space.derive({k: v.detach() for k, v in logits.items()}), named))
    return cells


def search_end(path: str) -> str:
    """The nb201 cell a search ended at, from its genotype.json or a skip-probe record ({"genotype": text})."""
    space = get_space("nb201")
    try:
        saved = json.loads(Path(path).read_text())
        return space.to_text(space.from_json(saved) if "arch" in saved else space.from_text(saved["genotype"]))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path}: not a genotype.json or skip-probe record ({err})") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="meta-train run directory")
    parser.add_argument("--family", default="tinyimagenet32", help="substring of the task spec whose held-out "
                                                                   "classes are the validation family")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="episode draws")
    parser.add_argument("--ways", type=int, help="classes per episode (default: the run's own episodes)")
    parser.add_argument("--table", default="../shared/data/nb201/nats_bench.csv")
    parser.add_argument("--column", default="imagenet16_120", choices=("imagenet16_120", "cifar100"),
                        help="never cifar10: that column is a reported figure")
    parser.add_argument("--searches", nargs="+", metavar="JSON", default=[],
                        help="where searches on the family's held-out classes ended (genotype.json files or skip-probe "
                             "records with a 'genotype'): adds the distances of the proposals' op profile to theirs")
    args = parser.parse_args()
    try:
        table = NB201Table.load(args.table)
        cells = validation_cells(args.run, args.family, args.episodes, args.seed, args.ways)
        searches = [search_end(path) for path in args.searches]
    except InputError as err:
        print(f"meta_validation.py: error: {err}", file=sys.stderr)
        sys.exit(2)
    scores = [getattr(table.lookup(g), args.column) for _, g, _ in cells]
    space = get_space("nb201")  # validation_cells loaded the run as an nb201 meta-model
    distinct = {space.to_text(g) for _, g, _ in cells}
    named = [n for _, _, n in cells if n is not None]
    distances = profile_distances(space, [space.to_text(g) for _, g, _ in cells], searches) if searches else None
    print(json.dumps({"run": args.run, "family": args.family, "column": args.column, "ways": args.ways,
                      "episodes": len(cells),
                      "mean": round(statistics.mean(scores), 3), "summary": mean_std(scores, ".2f", ".2f"),
                      "distinct_cells": len(distinct),
                      "named_as_family": round(sum(args.family in n for n in named) / len(named), 3) if named else None,
                      **({"to_searches": {"searches": len(searches), "shares": round(distances[0], 3),
                                          "per_edge": round(distances[1], 3)}} if distances else {}),
                      "cells": [{"task": name, "arch": space.to_text(g), "score": s, "named": n}
                                for (name, g, n), s in zip(cells, scores)]}, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
