#!/usr/bin/env python
"""Latency of every NAS-Bench-201 cell's evaluation network on this machine, in settings that act as devices.

Results: docs/results/budget-regret.md.

Each cell's network (C=16, N=5, 10 classes, 3x32x32, as costed by supernet/costs.py) is built once, in eval mode,
and timed in each setting of SETTINGS: a batch of images through it, `--warmup` passes, then the median of
`--repeats`. Writes a CSV arch,<setting>_ms,... (the layout of ../shared/data/hardware/nb201_latency_help.csv, so
benchmarks/latency_budgets.py --measured reads it as more devices), appending as it goes and continuing a partial
file; the rank correlations between the settings are printed at the end. Nothing else may run meanwhile: it is a
timing.

    python benchmarks/cpu_latency.py --out runs/cpu-latency/nb201_latency_cpu.csv     # all 15,625 cells
"""
from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

import torch
from tqdm import tqdm

from evaluation.ranking import spearman
from supernet.costs import every_cell
from supernet.spaces import create_network, get_space

SPACE = get_space("nb201")
SETTINGS = {  # name -> (threads, channels_last, batch)
    "cpu_1thread": (1, False, 1),
    "cpu_2threads": (2, False, 1),
    "cpu_2threads_channels_last": (2, True, 1),
}


def time_network(network: torch.nn.Module, threads: int, channels_last: bool, batch: int, warmup: int,
                 repeats: int) -> float:
    torch.set_num_threads(threads)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    network = network.to(memory_format=fmt)
    x = torch.zeros(batch, 3, 32, 32).to(memory_format=fmt)
    times = []
    with torch.no_grad():
        for k in range(warmup + repeats):
            started = time.perf_counter()
            network(x)
            if k >= warmup:
                times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/cpu-latency/nb201_latency_cpu.csv")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cells", type=int, help="only the first N cells of the enumeration (a quick look)")
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = ["arch", *(f"{name}_ms" for name in SETTINGS)]
    done = set()
    if out.is_file():
        with out.open() as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != columns:
                raise SystemExit(f"error: {out} has other columns than {columns}; move it away")
            done = {row["arch"] for row in reader}
    cells = every_cell(SPACE.num_edges, len(SPACE.ops))[: args.cells]
    threads = torch.get_num_threads()
    with out.open("a", newline="") as f:
        writer = csv.writer(f)
        if not done:
            writer.writerow(columns)
        for row in tqdm(cells.tolist(), desc="cells", mininterval=10):
            genotype = SPACE.with_edge_ops([SPACE.ops[k] for k in row])
            text = SPACE.to_text(genotype)
            if text in done:
                continue
            torch.manual_seed(0)
            network = create_network(genotype, 10, 3, 16, 5, image_size=32).eval()
            writer.writerow([text, *(f"{time_network(network, *setting, args.warmup, args.repeats):.4f}"
                                     for setting in SETTINGS.values())])
            f.flush()
    torch.set_num_threads(threads)
    with out.open() as f:
        rows = list(csv.DictReader(f))
    names = list(SETTINGS)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            rho = spearman([float(r[f"{a}_ms"]) for r in rows], [float(r[f"{b}_ms"]) for r in rows])
            print(f"Spearman {a} vs {b} over {len(rows)} cells: {rho:.3f}")
    for name in names:
        values = sorted(float(r[f"{name}_ms"]) for r in rows)
        print(f"{name}: median {statistics.median(values):.3f} ms, range {values[0]:.3f}-{values[-1]:.3f} ms")


if __name__ == "__main__":
    main()
