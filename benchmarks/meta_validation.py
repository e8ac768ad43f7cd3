#!/usr/bin/env python
"""Validation score of a meta-trained NAS-Bench-201 TaskDARTS: zero-shot cells for episodes of one family's
held-out classes, each distinct cell retrained on those classes' images; no table is read.

Design choices (objective, regulariser weight, horizon, start weights) are made with this, never with the held-out
report sets and never with a NAS-Bench-201 table: the table's columns rank cells alike (Spearman 0.96-0.98), so a
column that chose a design would also choose the reported figure. The validation family is the run's held-out Tiny
ImageNet classes (recomputed from its config and checked against its task_split.json, so they are classes its
meta-training never saw). Score (`--score retrain`, the default): the family's held-out classes, up to
--images-per-class images each, split 80/20 (seed 0); every distinct proposed cell is trained --retrain-epochs
epochs (2 cells per stage, 16 channels, batch 64) for --retrain-seeds seeds on the 80 % and tested on the 20 %; an
episode scores its cell's mean accuracy. Retrainings are kept in --out and reused.

    python benchmarks/meta_validation.py runs/meta-natural --family tinyimagenet32 --episodes 20 \\
        --retrain-epochs 10 --retrain-seeds 2 --out runs/meta-validation

`--score table --column imagenet16_120` is the protocol of the studies made before 2026-12-04 (docs/results/),
kept to reproduce them; it is not a validation score.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
from pathlib import Path

import torch

from evaluation.compare import mean_std
from evaluation.nb201_table import NB201Table
from evaluation.teacher_signal import profile_distances
from image_sets import ImageData, in_memory, split_indices
from meta.model import load_meta
from meta.tasks import EpisodeDistribution, match_format
from meta.teacher_job import class_images
from run_kit import InputError
from run_kit.run_dir import RunDir
from supernet.retrain import RetrainConfig, run_retrain
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


def retrain_scores(run: str, family: str, cells: list[str], out: Path, epochs: int, seeds: int,
                   images_per_class: int) -> dict[str, float]:
    """cell text -> mean test accuracy of the cell retrained on the family's held-out classes (see the module
    docstring); each retraining in out/<cell number>-s<seed>, reused when finished with the same cell and recipe."""
    if epochs < 1 or seeds < 1 or images_per_class < 2:
        raise InputError("--retrain-epochs and --retrain-seeds must be at least 1, --images-per-class at least 2")
    meta = load_meta(run, torch.device("cpu"), expect_space="nb201")
    c = meta.config
    _, meta_test, _ = c.distributions()
    pool = next(pool for pool in meta_test.pools if family in pool.spec)
    data = match_format(class_images(pool, pool.labels(), images_per_class * len(pool.labels()), seed=0),
                        c.task.channels, c.task.image_size)
    train_index, test_index = split_indices(len(data), [0.8, 0.2], seed=0)
    train, test = data.subset(train_index), data.subset(test_index)
    recorded = in_memory(f"{data.name} held-out classes {pool.labels()}, {len(data)} images: 80 % to train, 20 % to "
                         f"test (benchmarks/meta_validation.py)")
    return {cell: statistics.mean(retrain_once(cell, train, test, recorded, out / f"cell{number}-s{seed}", epochs, seed)
                                  for seed in range(seeds))
            for number, cell in enumerate(sorted(set(cells)))}


def retrain_once(cell: str, train: ImageData, test: ImageData, recorded: str, place: Path, epochs: int,
                 seed: int) -> float:
    """Test accuracy of the nb201 `cell` after the validation recipe (2 cells per stage, 16 channels, batch 64,
    `epochs`, `seed`) on `train`, tested on `test`; `recorded` names the images in its config. Reused from `place`
    when finished there with the same cell and epochs, else redone there."""
    if _finished(place, cell, epochs):
        return json.loads((place / "result.json").read_text())["test_acc"]
    shutil.rmtree(place, ignore_errors=True)  # another cell or recipe, or unfinished: redone
    config = RetrainConfig(genotype=cell, dataset=recorded, epochs=epochs, layers=2, init_channels=16, batch_size=64,
                           seed=seed, device="cpu")
    return run_retrain(config, train, test, RunDir(place), progress=False)["test_acc"]


def _finished(place: Path, cell: str, epochs: int) -> bool:
    """Whether `place` holds a finished retraining of this cell for this many epochs."""
    result = place / "result.json"
    if not result.is_file():
        return False
    saved = json.loads(result.read_text())
    return saved.get("genotype") == cell and saved.get("epochs") == epochs


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
    parser.add_argument("--score", default="retrain", choices=("retrain", "table"),
                        help="retrain: the cells trained on the family's held-out classes (default); table: a table "
                             "column, the earlier studies' protocol, never a validation score")
    parser.add_argument("--retrain-epochs", type=int, default=10)
    parser.add_argument("--retrain-seeds", type=int, default=2)
    parser.add_argument("--images-per-class", type=int, default=100)
    parser.add_argument("--out", help="retrainings (default: runs/meta-validation/<run name>)")
    parser.add_argument("--table", default="../shared/data/nb201/nats_bench.csv", help="with --score table")
    parser.add_argument("--column", default="imagenet16_120", choices=("imagenet16_120", "cifar100"),
                        help="with --score table; never cifar10: that column is a reported figure")
    parser.add_argument("--searches", nargs="+", metavar="JSON", default=[],
                        help="where searches on the family's held-out classes ended (genotype.json files or skip-probe "
                             "records with a 'genotype'): adds the distances of the proposals' op profile to theirs")
    args = parser.parse_args()
    space = get_space("nb201")
    try:
        cells = validation_cells(args.run, args.family, args.episodes, args.seed, args.ways)
        searches = [search_end(path) for path in args.searches]
        if args.score == "table":
            table = NB201Table.load(args.table)
            scores = [getattr(table.lookup(g), args.column) for _, g, _ in cells]
        else:
            out = Path(args.out or Path("runs") / "meta-validation" / Path(args.run).name)
            by_cell = retrain_scores(args.run, args.family, [space.to_text(g) for _, g, _ in cells], out,
                                     args.retrain_epochs, args.retrain_seeds, args.images_per_class)
            scores = [100 * by_cell[space.to_text(g)] for _, g, _ in cells]
    except InputError as err:
        print(f"meta_validation.py: error: {err}", file=sys.stderr)
        sys.exit(2)
    distinct = {space.to_text(g) for _, g, _ in cells}
    named = [n for _, _, n in cells if n is not None]
    distances = profile_distances(space, [space.to_text(g) for _, g, _ in cells], searches) if searches else None
    score = (f"table column {args.column}" if args.score == "table" else
             f"retrained {args.retrain_epochs} epochs x {args.retrain_seeds} seeds on the held-out classes, test %")
    print(json.dumps({"run": args.run, "family": args.family, "score": score, "ways": args.ways,
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
