#!/usr/bin/env python
"""Warm-started searches against searching from scratch, in the NAS-Bench-201 space.

Results: docs/results/warm-start.md.

For each seed s, from configs/meta_nb201_natural.yaml: the teachers and the two imitation meta-runs of
benchmarks/meta_zero_shot.py (same layout under --out, reused when finished): TaskDARTS (task-conditioned start)
and its --no-encoder ablation (one start for every task), both meta-learning the start weights
(imitate_weight_steps). Targets, none of them seen in meta-training: the CIFAR-10 training images, the held-out
MNIST classes and the held-out GTSRB classes (task_split.json), each capped at --images-per-class images per class
and brought to the meta-model's 16 px RGB. On each target, three first-order DARTS searches (supernet/methods.py
darts1 settings, the meta-model's supernet shape, --epochs, seed s, same images): from scratch, warm-started from the
ablation, warm-started from TaskDARTS. Read from each search's metrics.csv: the supernet's accuracy on its logit half
after every epoch (val_acc) and the steps to reach the scratch search's final val_acc (weight steps, counted in whole
epochs). The final cells of the CIFAR-10 searches are looked up in the NAS-Bench-201 table (CIFAR-10 test accuracy,
for the report only: nothing here chooses a design). Writes summary.json, report.md and val_acc.png to --out.

    python benchmarks/warm_start.py --seeds 1 --out runs/meta-zero-shot   # ~50 min for a seed with its meta-runs
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

import meta_zero_shot as zs
import torch

from evaluation.nb201_table import NB201Table
from image_sets import ImageData, in_memory, load_dataset
from meta.meta_search import task_start
from meta.model import load_meta
from meta.tasks import cap_per_class, match_format, search_task
from meta.teacher_job import class_images
from run_kit.run_dir import RunDir
from supernet.methods import method_settings
from supernet.search import SearchConfig, run_search

STARTS = {"scratch": None, "unconditioned": "no-encoder", "conditioned": "taskdarts"}  # -> meta-run of zs.METHODS


def targets(args, config) -> dict[str, ImageData]:
    """The data sets the searches run on, in the meta-model's image format."""
    task = config.task
    cifar = load_dataset(f"npz:{zs.SHARED / 'cifar10_train.npz'}", "train")
    cifar = cifar.subset(cap_per_class(cifar.y, args.images_per_class, 0))
    out = {"cifar10": cifar}
    _, meta_test, _ = config.distributions()
    for family in ("mnist", "gtsrb"):
        pool = next(pool for pool in meta_test.pools if family in pool.spec)
        out[f"held-out {family}"] = class_images(pool, pool.labels(), args.images_per_class * len(pool.labels()), 0)
    return {name: match_format(data, task.channels, task.image_size) for name, data in out.items()}


def search(args, config, data: ImageData, name: str, seed: int, start_from: Path | None, run: Path) -> list[dict]:
    """One search (resumed when interrupted, reused when finished); its metrics rows."""
    m = config.model
    settings = method_settings("darts1", args.epochs, 100)
    search_config = SearchConfig(space=config.space, epochs=args.epochs, layers=m.layers, init_channels=m.init_channels,
                                 seed=seed, device="cpu", dataset=in_memory(f"{name} ({len(data)} images, "
                                                                            f"benchmarks/warm_start.py)"),
                                 warm_start_from=None if start_from is None else str(start_from), **settings)
    if not (run / "genotype.json").is_file() or len(_rows(run)) < args.epochs:
        start = None
        if start_from is not None:
            start = task_start(load_meta(str(start_from), torch.device("cpu")), data, seed)
        run_search(search_config, data, RunDir(run), resume=(run / "checkpoint.pt").is_file(), progress=False,
                   start=start)
    return _rows(run)


def _rows(run: Path) -> list[dict]:
    path = run / "metrics.csv"
    return list(csv.DictReader(path.open())) if path.is_file() else []


def steps_to_reach(rows: list[dict], target: float, steps_per_epoch: int) -> int | None:
    for row in rows:
        if float(row["val_acc"]) >= target:
            return int(row["epoch"]) * steps_per_epoch
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(zs.ROOT / "configs" / "meta_nb201_natural.yaml"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--images-per-class", type=int, default=500)
    parser.add_argument("--table", default=str(zs.SHARED / "nb201" / "nats_bench.csv"))
    parser.add_argument("--out", default="runs/meta-zero-shot")
    args = parser.parse_args()
    for name in zs.CONFIG_OVERRIDES:  # the zero-shot benchmark's design options, at the config's values
        setattr(args, name, None)
    out = Path(args.out)
    config = zs.natural_config(args, 0)
    data = targets(args, config)
    results: dict = {}
    for seed in range(args.seeds):
        bank = zs.ensure_teachers(args, seed, out)
        metas = {method: zs.ensure_meta(args, seed, method, bank, out) for method in zs.METHODS}
        for target, images in data.items():
            weight_half = len(search_task(images, seed).support)  # what a search's weight steps pass over
            steps_per_epoch = weight_half // SearchConfig.batch_size
            runs = {}
            for start, method in STARTS.items():
                run = out / f"seed{seed}" / "warm-start" / target.replace(" ", "-") / start
                runs[start] = search(args, config, images, target, seed, metas.get(method), run)
            final = float(runs["scratch"][-1]["val_acc"])
            for start, rows in runs.items():
                results.setdefault(target, {}).setdefault(start, []).append({
                    "seed": seed, "val_acc": [float(r["val_acc"]) for r in rows],
                    "steps_to_scratch_final": steps_to_reach(rows, final, steps_per_epoch),
                    "total_steps": len(rows) * steps_per_epoch, "genotype": rows[-1]["genotype"]})
    table = NB201Table.load(args.table) if Path(args.table).is_file() else None
    lines = report(results, table)
    (out / "warm-start-summary.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "warm-start-report.md").write_text("\n".join(lines) + "\n")
    plot(results, out / "warm-start-val_acc.png")
    print("\n".join(lines))


def _mean_std(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{statistics.mean(values):.4f}" + (f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else "")


def report(results: dict, table: NB201Table | None) -> list[str]:
    lines = ["| target | start | seeds | supernet val_acc after 1 epoch | final val_acc | steps to scratch's final "
             "(of total) | CIFAR-10 test acc of the final cell (table) |", "|---|---|---|---|---|---|---|"]
    for target, starts in results.items():
        for start, runs in starts.items():
            reached = [r["steps_to_scratch_final"] for r in runs]
            steps = ", ".join("never" if s is None else str(s) for s in reached)
            looked_up = ""
            if table is not None and target == "cifar10":
                looked_up = _mean_std([table.lookup(zs.SPACE.from_text(r["genotype"])).cifar10 for r in runs])
            lines.append(f"| {target} | {start} | {len(runs)} | {_mean_std([r['val_acc'][0] for r in runs])} | "
                         f"{_mean_std([r['val_acc'][-1] for r in runs])} | {steps} (of {runs[0]['total_steps']}) | "
                         f"{looked_up} |")
    return lines


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), squeeze=False)
    for ax, (target, starts) in zip(axes[0], results.items()):
        for start, runs in starts.items():
            curve = [statistics.mean(values) for values in zip(*(r["val_acc"] for r in runs))]
            per_epoch = runs[0]["total_steps"] // len(curve)
            ax.plot([per_epoch * (i + 1) for i in range(len(curve))], curve, label=start, marker=".")
        ax.set_title(target)
        ax.set_xlabel("weight steps")
        ax.set_ylabel("supernet val_acc (logit half)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
