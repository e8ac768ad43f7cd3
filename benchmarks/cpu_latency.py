#!/usr/bin/env python
"""Latency of every NAS-Bench-201 cell's evaluation network on this machine, in settings that act as devices.

Results: its table, gzipped, is committed as docs/results/data/latency-budgets/nb201_latency_cpu.csv.gz
(read by latency_budgets.py and predictor_study.py).

Each cell's network (C=16, N=5, 10 classes, 3x32x32, as costed by supernet/costs.py) is built in eval mode and
timed in each setting of SETTINGS under the timing protocol of `--device-profile auto` (supernet/latency.py
TimingProtocol: the thread count and memory format set for the timing, inference mode, rounds over a chunk of
cells, `--warmup` passes, then the median of `--repeats`). Writes a CSV arch,<setting>_ms,... (the layout of
../shared/data/hardware/nb201_latency_help.csv, so benchmarks/latency_budgets.py --measured reads it as more
devices), appending chunk by chunk and continuing a partial file; the rank correlations between the settings are
printed at the end. Nothing else may run meanwhile: it is a timing.

    python benchmarks/cpu_latency.py --out runs/cpu-latency/nb201_latency_cpu.csv     # all 15,625 cells
"""
from __future__ import annotations

import argparse
import csv
import statistics
from dataclasses import replace
from pathlib import Path

import torch
from tqdm import tqdm

from run_kit.ranking import spearman
from supernet.costs import every_cell
from supernet.latency import TimingProtocol, measure_latency
from supernet.spaces import get_space

SPACE = get_space("nb201")
SETTINGS = {  # name -> (threads, memory format, batch)
    "cpu_1thread": (1, "contiguous", 1),
    "cpu_2threads": (2, "contiguous", 1),
    "cpu_2threads_channels_last": (2, "channels_last", 1),
}
CHUNK = 25  # cells timed in rounds together, then appended to the CSV


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
    todo = [g for g in (SPACE.with_edge_ops([SPACE.ops[k] for k in row]) for row in cells.tolist())
            if SPACE.to_text(g) not in done]
    protocols = {name: replace(TimingProtocol.here(torch.device("cpu"), threads, memory_format), batch=batch,
                               warmup=args.warmup, repeats=args.repeats)
                 for name, (threads, memory_format, batch) in SETTINGS.items()}
    with out.open("a", newline="") as f:
        writer = csv.writer(f)
        if not done:
            writer.writerow(columns)
        for start in tqdm(range(0, len(todo), CHUNK), desc=f"chunks of {CHUNK} cells", mininterval=10):
            chunk = todo[start:start + CHUNK]
            # the one timing protocol of `--device-profile auto` (supernet/latency.py), in each setting
            columns_ms = [measure_latency(SPACE, chunk, 10, 3, 32, protocol) for protocol in protocols.values()]
            for k, genotype in enumerate(chunk):
                writer.writerow([SPACE.to_text(genotype), *(f"{ms[k]:.4f}" for ms in columns_ms)])
            f.flush()
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
