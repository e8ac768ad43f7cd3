#!/usr/bin/env python
"""What the training-free teachers see and what they miss, measured on the validation family.

Results: withdrawn (no raw results were kept; docs/results/withdrawn.md).

The imitate objective can only be as good as its teachers. This script explains the ceiling of the NASWOT teachers
on NAS-Bench-201 with three measurements on images of the validation family (held-out Tiny ImageNet classes of the
natural config's split, 16 px) and the table's validation columns (ImageNet16-120, CIFAR-100; never CIFAR-10, a
reported figure):
1. rank correlation (Spearman) of each proxy (NASWOT, synflow, parameter count) with the columns over random cells,
   and the columns' value for each proxy's best cell and its top tenth;
2. the residual edge: NAS-Bench-201's best cells carry a skip connection from the cell input to its output (edge
   3<-0). Over all 32 conv-only settings of the other five edges, edge 3<-0 set to skip, 1x1 or 3x3 conv: the
   columns' mean, each proxy's mean score, and a short training of the network at NAS-Bench-201's depth (5 cells
   per stage) on `--train-contexts` of those settings (test accuracy, how often each choice wins);
3. whether that short training ranks a proxy's shortlist: the top `--shortlist` NASWOT cells of part 1, each
   trained the same way, Spearman with the columns and the columns' value of the cell it would pick.
Nothing here chooses a reported design; it says why the chosen teachers stop where they do.

    python benchmarks/proxy_alignment.py --out runs/proxy-alignment      # about 7 min on 2 CPU cores
"""
from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import time
from pathlib import Path

import torch
import yaml

from evaluation.nb201_table import NB201Table
from image_sets import ImageData, split_indices
from meta.config import MetaConfig
from meta.skip_probe import probe_accuracy
from meta.teacher_job import class_images
from run_kit.ranking import spearman
from supernet.proxy_scores import CellProxyScores
from supernet.spaces import get_space

ROOT = Path(__file__).resolve().parent.parent
SPACE = get_space("nb201")
COLUMNS = ("imagenet16_120", "cifar100")
CONVS = ("nor_conv_1x1", "nor_conv_3x3")
RESIDUAL_CHOICES = ("skip_connect", "nor_conv_1x1", "nor_conv_3x3")


def validation_images(config_path: str, family: str, classes: int, images: int, seed: int) -> ImageData:
    """Up to `classes` seeded held-out classes of the validation family (the split of the config's --split-seed)."""
    config = MetaConfig.from_dict(yaml.safe_load(Path(config_path).read_text())).with_options(device="cpu")
    _, meta_test, _ = config.distributions()
    pool = next(pool for pool in meta_test.pools if family in pool.spec)
    labels = sorted(random.Random(seed).sample(pool.labels(), min(classes, len(pool.labels()))))
    return class_images(pool, labels, images, seed)


class Scorer:
    """Proxy scores of given cells at the teachers' scale (C=8, 1 cell per stage) on one batch of images, with the
    candidate network's parameter count."""

    def __init__(self, data: ImageData, batch_size: int, seed: int):
        self.proxies = CellProxyScores(data, seed, batch_size=batch_size)

    def __call__(self, genotype, index: int) -> dict[str, float]:
        scores = {proxy: self.proxies.score(proxy, genotype, index) for proxy in ("naswot", "synflow")}
        network = self.proxies.network("synflow", genotype, index)
        return scores | {"params": float(sum(p.numel() for p in network.parameters()))}


def short_training(genotype, train: ImageData, test: ImageData, args) -> float:
    """Test accuracy after `--train-epochs` epochs of the network at NAS-Bench-201's depth (5 cells per stage): the
    teachers' skip-probe training."""
    return probe_accuracy(SPACE, genotype, train, test, args.train_epochs, 5, 8, args.seed, "cpu")


def column_values(table: NB201Table, genotype) -> dict[str, float]:
    accuracy = table.lookup(genotype)
    return {column: getattr(accuracy, column) for column in COLUMNS}


def correlation(args, scorer: Scorer, table: NB201Table) -> tuple[dict, list[dict]]:
    """Part 1: proxies against the validation columns over random cells."""
    generator = torch.Generator().manual_seed(args.seed)
    rows = []
    for index in range(args.cells):
        genotype = SPACE.random_genotype(generator)
        rows.append({"arch": SPACE.to_text(genotype), **scorer(genotype, index), **column_values(table, genotype)})
    rows = [row for row in rows if all(abs(row[p]) != float("inf") for p in ("naswot", "synflow"))]
    summary = {}
    for proxy in ("naswot", "synflow", "params"):
        ranked = sorted(rows, key=lambda row: -row[proxy])
        top = ranked[:max(1, len(rows) // 10)]
        summary[proxy] = {f"rho_{c}": round(spearman([r[proxy] for r in rows], [r[c] for r in rows]), 3)
                          for c in COLUMNS} | {
            f"best_{c}": round(ranked[0][c], 2) for c in COLUMNS} | {
            f"top10_{c}": round(statistics.mean(r[c] for r in top), 2) for c in COLUMNS} | {"best": ranked[0]["arch"]}
    summary["cells"] = len(rows)
    summary["table_best_in_sample"] = {c: round(max(r[c] for r in rows), 2) for c in COLUMNS}
    return summary, rows


def residual_edge(args, scorer: Scorer, table: NB201Table, train: ImageData, test: ImageData) -> dict:
    """Part 2: edge 3<-0 as skip, 1x1 or 3x3 conv over the 32 conv-only settings of the other edges."""
    contexts = list(itertools.product(CONVS, repeat=5))
    trained = set(random.Random(args.seed).sample(range(len(contexts)), args.train_contexts))
    rows = []
    for k, context in enumerate(contexts):
        group = []
        for choice in RESIDUAL_CHOICES:
            o = [*context[:3], choice, *context[3:]]
            genotype = SPACE.from_text(f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|")
            row = {"context": k, "choice": choice, **scorer(genotype, k), **column_values(table, genotype)}
            if k in trained:
                row["short_training"] = short_training(genotype, train, test, args)
            group.append(row)
        rows.extend(group)
    result = {}
    for choice in RESIDUAL_CHOICES:
        mine = [r for r in rows if r["choice"] == choice]
        result[choice] = {key: round(statistics.mean(r[key] for r in mine), 3)
                          for key in (*COLUMNS, "naswot", "synflow")}
        with_training = [r for r in mine if "short_training" in r]
        result[choice]["short_training"] = round(statistics.mean(r["short_training"] for r in with_training), 4)
    for key in (*COLUMNS, "naswot", "synflow", "short_training"):
        wins = {choice: 0 for choice in RESIDUAL_CHOICES}
        for k in {r["context"] for r in rows if key in r}:
            group = [r for r in rows if r["context"] == k]
            wins[max(group, key=lambda r: r[key])["choice"]] += 1
        result[f"wins_{key}"] = wins
    result["trained_contexts"] = len(trained)
    return result


def shortlist(args, rows: list[dict], train: ImageData, test: ImageData) -> dict:
    """Part 3: the short training as a second stage over NASWOT's best cells."""
    top = sorted(rows, key=lambda row: -row["naswot"])[:args.shortlist]
    for row in top:
        row["short_training"] = short_training(SPACE.from_text(row["arch"]), train, test, args)
    result = {"cells": len(top)}
    for key in ("short_training", "naswot"):
        pick = max(top, key=lambda row: row[key])
        result[key] = {f"rho_{c}": round(spearman([r[key] for r in top], [r[c] for r in top]), 3) for c in COLUMNS} | {
            f"pick_{c}": round(pick[c], 2) for c in COLUMNS} | {"pick": pick["arch"]}
    result["shortlist_best"] = {c: round(max(r[c] for r in top), 2) for c in COLUMNS}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "meta_nb201_natural.yaml"))
    parser.add_argument("--family", default="tinyimagenet32", help="the validation family (held-out classes)")
    parser.add_argument("--classes", type=int, default=40)
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--cells", type=int, default=300, help="random cells of part 1")
    parser.add_argument("--batch-size", type=int, default=64, help="the proxies' batch")
    parser.add_argument("--train-contexts", type=int, default=8, help="part 2 settings that are also trained")
    parser.add_argument("--train-epochs", type=int, default=2)
    parser.add_argument("--shortlist", type=int, default=30, help="NASWOT's best cells trained in part 3")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table", default=str(ROOT.parent / "shared" / "data" / "nb201" / "nats_bench.csv"))
    parser.add_argument("--out", default="runs/proxy-alignment")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    table = NB201Table.load(args.table)
    data = validation_images(args.config, args.family, args.classes, args.images, args.seed)
    train_index, test_index = split_indices(len(data), (0.8, 0.2), args.seed)
    train, test = data.subset(train_index), data.subset(test_index)
    scorer = Scorer(data, args.batch_size, args.seed)
    part1, rows = correlation(args, scorer, table)
    print(json.dumps({"correlation": part1}, indent=1), flush=True)
    part2 = residual_edge(args, scorer, table, train, test)
    print(json.dumps({"residual_edge": part2}, indent=1), flush=True)
    part3 = shortlist(args, rows, train, test)
    print(json.dumps({"shortlist": part3}, indent=1), flush=True)
    result = {"args": vars(args), "data": {"family": args.family, "classes": data.num_classes, "images": len(data)},
              "correlation": part1, "residual_edge": part2, "shortlist": part3,
              "seconds": round(time.time() - started, 1)}
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out / "results.json")
    print(f"{result['seconds']:.0f}s; wrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
