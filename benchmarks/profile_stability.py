#!/usr/bin/env python
"""How stable is a device profile measured here: the reference cells timed in rounds against cell after cell.

Results: withdrawn (no raw results were kept; docs/results/withdrawn.md).

`--profiles` back-to-back profiles of each kind, alternating: "rounds" is supernet.latency.measure_latency (one pass
of each cell per round, the median of 10 after 3 warm-up rounds); "cell after cell" times each cell's 13 passes in
a row, as measure_latency did before 2026-12-06. For each kind: the leave-one-out guard at 0.95 of every profile
(supernet/latency.py) and, for every pair of profiles, the per-cell ratio of their latencies divided by its median
(the spread a drift of the machine leaves between cells) and that median (a drift of the whole machine). Nothing else
may run meanwhile: it is a timing.

    python benchmarks/profile_stability.py --profiles 3      # ~10 s on 2 CPU cores
"""
from __future__ import annotations

import argparse
import itertools
import statistics

import torch

from supernet.latency import TimingProtocol, fit_latency, measure_latency, reference_cells
from supernet.spaces import get_space

SPACE = get_space("nb201")


def cell_after_cell(cells: list, protocol: TimingProtocol) -> list[float]:
    """The old protocol: each cell's warm-up and timed passes in a row."""
    return [measure_latency(SPACE, [cell], 10, 3, 32, protocol)[0] for cell in cells]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=3)
    args = parser.parse_args()
    protocol = TimingProtocol.here(torch.device("cpu"))
    cells = reference_cells(SPACE)
    kinds = {"rounds": lambda: measure_latency(SPACE, cells, 10, 3, 32, protocol),
             "cell after cell": lambda: cell_after_cell(cells, protocol)}
    profiles: dict[str, list[list[float]]] = {kind: [] for kind in kinds}
    for _ in range(args.profiles):
        for kind, measure in kinds.items():
            profiles[kind].append(measure())
    print(f"{len(cells)} reference cells, {protocol.describe()}\n")
    print("| protocol | guard at 0.95 per profile | per-cell ratio / median ratio, all pairs | median ratio per pair |")
    print("|---|---|---|---|")
    for kind, runs in profiles.items():
        guards = [fit_latency(SPACE, cells, run, kind).guard for run in runs]
        spreads, medians = [], []
        for a, b in itertools.combinations(runs, 2):
            ratios = [y / x for x, y in zip(a, b)]
            middle = statistics.median(ratios)
            medians.append(middle)
            spreads += [r / middle for r in ratios]
        print(f"| {kind} | {', '.join(f'{g:.3f}' for g in guards)} | {min(spreads):.3f}-{max(spreads):.3f} | "
              f"{', '.join(f'{m:.3f}' for m in medians)} |")


if __name__ == "__main__":
    main()
