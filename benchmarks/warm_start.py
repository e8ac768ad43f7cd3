#!/usr/bin/env python
"""Warm-started searches against searching from scratch, in the NAS-Bench-201 space.

Results: withdrawn (no raw results were kept; docs/results/withdrawn.md).

For each seed s, from configs/meta_nb201_natural.yaml: the teachers and the two imitation meta-runs of
benchmarks/meta_zero_shot.py (same layout under --out, reused when finished): TaskDARTS and its --no-encoder
ablation (one embedding, so one start for every task), both meta-learning the start weights (imitate_weight_steps).

Targets, none of them seen in meta-training: the CIFAR-10 training images, the held-out MNIST classes and the
held-out GTSRB classes (task_split.json), and, for design choices only, the held-out Tiny ImageNet classes (the
validation family of benchmarks/meta_validation.py). Each at the meta-model's 16 px RGB; a
fifth of every class (seed 0) is set aside before anything searches, to test the retrained cells; the searches read
up to --images-per-class of the rest.

On each target, first-order DARTS searches (supernet/methods.py darts1 settings, the meta-model's supernet shape,
--epochs, seed s, same images) from each start of STARTS: scratch; the ablation's start; TaskDARTS's start with each
of its weight options (`--warm-start-weights` task / base / none). Read from each search's metrics.csv: the
supernet's accuracy on its logit half after every epoch (val_acc) and the steps to reach the scratch search's final
val_acc (weight steps, counted in whole epochs). The weight option TaskDARTS reports is chosen on the validation
target (fewest steps to scratch's final, mean over seeds); the report targets never choose. Then (--retrain-epochs
> 0) every distinct final cell of a report target is retrained with one recipe (benchmarks/meta_validation.py's: 2
cells per stage, 16 channels, batch 64, seed s) on the target's search images and tested on its set-aside fifth. The
CIFAR-10 cells are also looked up in the NAS-Bench-201 table (report only). Writes warm-start-summary.json,
warm-start-report.md and warm-start-val_acc.png to --out.

    python benchmarks/warm_start.py --seeds 3 --out runs/meta-zero-shot   # ~50 min a seed with its meta-runs
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import statistics
import sys
from pathlib import Path

import meta_zero_shot as zs
import torch
import yaml
from meta_validation import retrain_once

from evaluation.nb201_table import NB201Table
from image_sets import ImageData, in_memory, load_dataset
from meta.meta_search import task_start
from meta.model import load_meta
from meta.tasks import match_format, search_task
from meta.teacher_job import class_images
from run_kit.run_dir import RunDir
from supernet.methods import method_settings
from supernet.search import SearchConfig, run_search

STARTS = {  # name -> (meta-run of zs.METHODS, its --warm-start-weights); None: a search from scratch
    "scratch": None,
    "unconditioned": ("no-encoder", "task"),
    "conditioned": ("taskdarts", "task"),
    "conditioned-base": ("taskdarts", "base"),
    "logits-only": ("taskdarts", "none"),
}
CANDIDATES = ("conditioned", "conditioned-base", "logits-only")  # TaskDARTS's weight options; validation picks one
VALIDATION = "validation tinyimagenet"
REUSED_WHEN_SAME = ("dataset", "epochs", "seed", "warm_start_from", "warm_start_weights")  # a finished search's config


def set_aside(data: ImageData, per_class: int, seed: int = 0) -> tuple[ImageData, ImageData]:
    """(search images, test images): a seeded fifth of every class to test retrained cells, never searched, and up to
    per_class of the rest to search."""
    generator = torch.Generator().manual_seed(seed)
    search, test = [], []
    for label in range(data.num_classes):
        members = torch.nonzero(data.y == label).flatten()
        order = members[torch.randperm(len(members), generator=generator)]
        held = max(len(order) // 5, 1)
        test.append(order[:held])
        search.append(order[held:held + per_class])
    return data.subset(torch.cat(search).sort().values), data.subset(torch.cat(test).sort().values)


def targets(args, config) -> dict[str, tuple[ImageData, ImageData, str]]:
    """name -> (search images, test images, how they were chosen), in the meta-model's image format."""
    task = config.task
    _, meta_test, _ = config.distributions()
    pools = {family: next(pool for pool in meta_test.pools if family in pool.spec)
             for family in ("mnist", "gtsrb", "tinyimagenet")}
    everything = {"cifar10": load_dataset(f"npz:{zs.SHARED / 'cifar10_train.npz'}", "train")}
    for family in ("mnist", "gtsrb"):
        everything[f"held-out {family}"] = class_images(pools[family], pools[family].labels(), 10**9, 0)
    everything[VALIDATION] = class_images(pools["tinyimagenet"], pools["tinyimagenet"].labels(), 10**9, 0)
    out = {}
    for name, data in everything.items():
        search, test = set_aside(match_format(data, task.channels, task.image_size), args.images_per_class)
        out[name] = (search, test, f"{name}: {len(search)} images, up to {args.images_per_class} a class after a "
                                   f"fifth set aside (seed 0), benchmarks/warm_start.py")
    return out


def search(args, config, data: ImageData, recorded: str, seed: int, start: tuple[Path, str] | None,
           run: Path) -> list[dict]:
    """One search (resumed when interrupted, reused when finished on the same images and start); its metrics rows."""
    m = config.model
    settings = method_settings("darts1", args.epochs, 100)
    search_config = SearchConfig(space=config.space, epochs=args.epochs, layers=m.layers, init_channels=m.init_channels,
                                 seed=seed, device="cpu", dataset=in_memory(recorded),
                                 warm_start_from=None if start is None else str(start[0]),
                                 warm_start_weights="task" if start is None else start[1], **settings)
    made = run / "config.yaml"
    if made.is_file():
        saved = yaml.safe_load(made.read_text())
        if any(saved.get(key) != getattr(search_config, key) for key in REUSED_WHEN_SAME):
            for leftover in run.iterdir():  # made on other images or from another start: redone
                leftover.unlink()
    if not (run / "genotype.json").is_file() or len(_rows(run)) < args.epochs:
        search_start = None
        if start is not None:
            search_start = task_start(load_meta(str(start[0]), torch.device("cpu")), data, seed, start[1])
        run_search(search_config, data, RunDir(run), resume=(run / "checkpoint.pt").is_file(), progress=False,
                   start=search_start)
    return _rows(run)


def _rows(run: Path) -> list[dict]:
    path = run / "metrics.csv"
    return list(csv.DictReader(path.open())) if path.is_file() else []


def steps_to_reach(rows: list[dict], target: float, steps_per_epoch: int) -> int | None:
    for row in rows:
        if float(row["val_acc"]) >= target:
            return int(row["epoch"]) * steps_per_epoch
    return None


def ratio(run: dict) -> float | None:
    reached = run["steps_to_scratch_final"]
    return None if reached is None else reached / run["total_steps"]


def choose_on_validation(results: dict) -> str:
    """The TaskDARTS weight option whose searches on the validation target reach scratch's final accuracy soonest:
    fewest seeds that never reach it, then the lowest mean share of scratch's steps."""
    def key(start: str):
        ratios = [ratio(r) for r in results[VALIDATION][start]]
        reached = [r for r in ratios if r is not None]
        return (len(ratios) - len(reached), statistics.mean(reached) if reached else 0.0)
    return min(CANDIDATES, key=key)


def retrain(args, target: str, search_images: ImageData, test: ImageData, cell: str, seed: int,
            out: Path) -> float:
    """Test accuracy of `cell` retrained with the one recipe on the target's search images (reused when done)."""
    place = out / f"seed{seed}" / "warm-start" / "retrain" / target.replace(" ", "-") / hashlib.sha1(
        cell.encode()).hexdigest()[:12]
    recorded = in_memory(f"{target}: {len(search_images)} search images to train, {len(test)} set-aside images to "
                         f"test (benchmarks/warm_start.py)")
    return retrain_once(cell, search_images, test, recorded, place, args.retrain_epochs, seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(zs.ROOT / "configs" / "meta_nb201_natural.yaml"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--images-per-class", type=int, default=500)
    parser.add_argument("--retrain-epochs", type=int, default=10, help="0: no retraining")
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
        for target, (images, test, recorded) in data.items():
            weight_half = len(search_task(images, seed).support)  # what a search's weight steps pass over
            steps_per_epoch = weight_half // SearchConfig.batch_size
            runs = {}
            for start, made_by in STARTS.items():
                run = out / f"seed{seed}" / "warm-start" / target.replace(" ", "-") / start
                runs[start] = search(args, config, images, recorded, seed,
                                     None if made_by is None else (metas[made_by[0]], made_by[1]), run)
            final = float(runs["scratch"][-1]["val_acc"])
            for start, rows in runs.items():
                cell = rows[-1]["genotype"]
                retrained = (retrain(args, target, images, test, cell, seed, out)
                             if args.retrain_epochs > 0 and target != VALIDATION else None)
                results.setdefault(target, {}).setdefault(start, []).append({
                    "seed": seed, "val_acc": [float(r["val_acc"]) for r in rows],
                    "steps_to_scratch_final": steps_to_reach(rows, final, steps_per_epoch),
                    "total_steps": len(rows) * steps_per_epoch, "genotype": cell, "retrained_test_acc": retrained})
    chosen = choose_on_validation(results)
    table = NB201Table.load(args.table) if Path(args.table).is_file() else None
    lines = report(results, table, chosen, args)
    (out / "warm-start-summary.json").write_text(json.dumps({"chosen_on_validation": chosen, "results": results},
                                                            indent=1) + "\n")
    (out / "warm-start-report.md").write_text("\n".join(lines) + "\n")
    plot(results, out / "warm-start-val_acc.png")
    print("\n".join(lines))


def _mean_std(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    values = [scale * v for v in values if v is not None]
    if not values:
        return ""
    return f"{statistics.mean(values):.{digits}f}" + (f" ± {statistics.stdev(values):.{digits}f}"
                                                      if len(values) > 1 else "")


def report(results: dict, table: NB201Table | None, chosen: str, args) -> list[str]:
    lines = [f"TaskDARTS's weight option chosen on the validation target ({VALIDATION}): {chosen}", "",
             "| target | start | seeds | val_acc after 1 epoch | final val_acc | steps to scratch's final (of total) "
             f"| share of scratch's steps | retrained test acc % ({args.retrain_epochs} epochs) "
             "| CIFAR-10 test acc of the final cell (table) |", "|---|---|---|---|---|---|---|---|---|"]
    for target, starts in results.items():
        for start, runs in starts.items():
            steps = ", ".join("never" if r["steps_to_scratch_final"] is None else str(r["steps_to_scratch_final"])
                              for r in runs)
            ratios = [ratio(r) for r in runs]
            share = _mean_std(ratios, digits=2) + (f" ({ratios.count(None)} never)" if None in ratios else "")
            looked_up = ""
            if table is not None and target == "cifar10":
                looked_up = _mean_std([table.lookup(zs.SPACE.from_text(r["genotype"])).cifar10 for r in runs],
                                      digits=2)
            name = f"{start} (chosen)" if start == chosen else start
            lines.append(f"| {target} | {name} | {len(runs)} | {_mean_std([r['val_acc'][0] for r in runs])} | "
                         f"{_mean_std([r['val_acc'][-1] for r in runs])} | {steps} (of {runs[0]['total_steps']}) | "
                         f"{share} | {_mean_std([r['retrained_test_acc'] for r in runs], 100, 2)} | {looked_up} |")
    return lines


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.5 * len(results), 4), squeeze=False)
    for ax, (target, starts) in zip(axes[0], results.items()):
        for start, runs in starts.items():
            curve = [statistics.mean(values) for values in zip(*(r["val_acc"] for r in runs))]
            per_epoch = runs[0]["total_steps"] // len(curve)
            ax.plot([per_epoch * (i + 1) for i in range(len(curve))], curve, label=start, marker=".")
        ax.set_title(f"{target} ({len(next(iter(starts.values())))} seeds)")
        ax.set_xlabel("weight steps")
        ax.set_ylabel("supernet val_acc (logit half)")
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
