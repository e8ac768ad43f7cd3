#!/usr/bin/env python
"""Does a method stop DARTS's collapse onto parameter-free ops (skip, pooling, none)? Measured on NAS-Bench-201.

Each method (as `compare` defines it) searches the same CIFAR-10 *training* images with the same seeds; the logit
learning rate is raised (default 10x the reference's 3e-4) so that the logits move as far in this CPU-sized run as in
a long search. Reported per method, mean +- std over seeds: the share of op weight on parameter-free ops at a few
epochs (its trajectory is the collapse), the parameter-free edges of the derived cell, the skip connections in it,
and the cell's NAS-Bench-201 CIFAR-10 test accuracy (table lookup; nothing is selected by it).

    python benchmarks/collapse.py --out runs/collapse          # about 25 minutes on 2 CPU cores
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from evaluation.nb201_table import NB201Table
from evaluation.study_tables import collapse_table
from image_sets import load_dataset
from run_kit.files import atomic_write_text
from run_kit.run_dir import RunDir
from search_spaces.operations import PARAMETER_FREE_OPS
from supernet.methods import method_settings
from supernet.search import SearchConfig, run_search
from supernet.spaces import get_space

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED / "cifar10_train.npz"))
    parser.add_argument("--table", default=str(SHARED / "nb201" / "nats_bench.csv"))
    parser.add_argument("--methods", nargs="+", default=["darts1", "beta-darts", "drnas", "pcdarts"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--logit-lr", type=float, default=3e-3)
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--init-channels", type=int, default=8)
    parser.add_argument("--out", default="runs/collapse")
    parser.add_argument("--raw", metavar="DIR", help="also write the raw results.json here (docs/results/data/"
                                                     "compare-collapse for the committed study)")
    args = parser.parse_args()
    out = Path(args.out)
    space = get_space("nb201")
    table = NB201Table.load(args.table)
    data = load_dataset(f"npz:{args.data}", "train", image_size=args.image_size)
    checkpoints = sorted({1, args.epochs // 4, args.epochs // 2, args.epochs})
    results = []
    for method in args.methods:
        for seed in range(args.seeds):
            run = out / method / f"seed{seed}"
            settings = {**method_settings(method, args.epochs, 1), "logit_lr": args.logit_lr}
            config = SearchConfig(space="nb201", dataset=f"npz:{args.data}", image_size=args.image_size,
                                  epochs=args.epochs, layers=args.layers, init_channels=args.init_channels, seed=seed,
                                  device="cpu", **settings)
            done = (run / "genotype.json").is_file() and len(list(csv.DictReader((run / "metrics.csv").open())))
            if not done or done < args.epochs:
                run_search(config, data, RunDir(run), resume=(run / "checkpoint.pt").is_file(), progress=False)
            rows = list(csv.DictReader((run / "metrics.csv").open()))
            genotype = space.from_json(json.loads((run / "genotype.json").read_text()))
            results.append({"method": method, "seed": seed, "genotype": space.to_text(genotype),
                            "share": {str(e): float(rows[e - 1]["param_free_cell"]) for e in checkpoints},
                            "free_edges": sum(op in PARAMETER_FREE_OPS for op in genotype.ops),
                            "skips": genotype.ops.count("skip_connect"),
                            "cifar10": table.lookup(genotype).cifar10})
            print(json.dumps(results[-1]), flush=True)
    raw = {"args": {k: v for k, v in vars(args).items() if k not in ("data", "table", "out", "raw")},
           "data": Path(args.data).name, "results": results}
    for directory in (out, *([Path(args.raw)] if args.raw else [])):
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(directory / "results.json", json.dumps(raw, indent=1) + "\n")
    lines = collapse_table(raw) + ["", "Cells:", ""] + [
        f"- {r['method']} seed {r['seed']}: `{r['genotype']}` ({r['cifar10']:.2f})" for r in results]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
