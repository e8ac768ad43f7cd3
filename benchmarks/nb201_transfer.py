#!/usr/bin/env python
"""How much can choosing a cell per data set gain in NAS-Bench-201 at all? The table's ground truth, no search:

- Spearman's rho between the columns (CIFAR-10, CIFAR-100, ImageNet16-120) over all 15,625 cells and over the top 1 %
  of each pair's first column;
- each column's best cell, and what it loses on the other columns (its regret, in points);
- the best single cell for all three (the smallest largest regret): the most a perfect task-conditioned proposal
  (each data set's own best cell) can gain over one fixed cell on these data sets.

It bounds what task conditioning can show in this space on data sets like these: searches whose end points
hardly depend on the data set, and a fixed proposal that is near-optimal everywhere, are what it predicts
(its study kept no raw results and is withdrawn: docs/results/withdrawn.md).

    python benchmarks/nb201_transfer.py [--table ../shared/data/nb201/nats_bench.csv]
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from evaluation.nb201_table import COLUMNS, NB201Table
from run_kit import InputError
from run_kit.ranking import spearman
from supernet.spaces import get_space

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def transfer(table: NB201Table, top_fraction: float = 0.01) -> dict:
    """Rank correlations between the columns, each column's best cell with its regrets, and the minimax cell."""
    space, columns = get_space("nb201"), list(COLUMNS)
    cells = list(table.rows)
    acc = {c: [getattr(table.rows[g], c) for g in cells] for c in columns}
    best = {c: max(acc[c]) for c in columns}
    result: dict = {"rho": {}, "rho_top": {}, "best": {}}
    for a, b in itertools.combinations(columns, 2):
        result["rho"][f"{a}/{b}"] = round(spearman(acc[a], acc[b]), 4)
        top = sorted(range(len(cells)), key=lambda i: -acc[a][i])[:max(2, round(top_fraction * len(cells)))]
        result["rho_top"][f"{a}/{b}"] = round(spearman([acc[a][i] for i in top], [acc[b][i] for i in top]), 4)
    for c in columns:
        i = acc[c].index(best[c])
        result["best"][c] = {"genotype": space.to_text(cells[i]),
                             "regret": {d: round(best[d] - acc[d][i], 2) for d in columns}}
    minimax = min(range(len(cells)), key=lambda i: max(best[d] - acc[d][i] for d in columns))
    result["one_cell"] = {"genotype": space.to_text(cells[minimax]),
                          "regret": {d: round(best[d] - acc[d][minimax], 2) for d in columns}}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=str(SHARED / "nb201" / "nats_bench.csv"))
    args = parser.parse_args()
    try:
        result = transfer(NB201Table.load(args.table))
    except InputError as err:
        print(f"nb201_transfer.py: error: {err}", file=sys.stderr)
        sys.exit(2)
    columns = list(COLUMNS)
    print("| pair of columns | Spearman rho, all cells | rho, top 1 % of the first |\n|---|---|---|")
    for pair, rho in result["rho"].items():
        print(f"| {pair} | {rho:.3f} | {result['rho_top'][pair]:.3f} |")
    print("\n| cell | " + " | ".join(f"regret on {c} (points)" for c in columns) + " |\n|---|" + "---|" * len(columns))
    for name, entry in [*((f"best on {c}: {e['genotype']}", e) for c, e in result["best"].items()),
                        (f"one cell for all (smallest largest regret): {result['one_cell']['genotype']}",
                         result["one_cell"])]:
        print(f"| {name} | " + " | ".join(f"{entry['regret'][c]:.2f}" for c in columns) + " |")


if __name__ == "__main__":
    main()
