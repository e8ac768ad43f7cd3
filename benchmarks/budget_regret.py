#!/usr/bin/env python
"""Budgeted zero-shot proposals on CIFAR-10 against the best cell that fits, in the NAS-Bench-201 space.

Results: docs/results/budgets.md, rendered by benchmarks/render_results.py from the raw results this writes to
docs/results/data/flops-budgets/ (budgets.csv: one row per seed, budget and method, the cell as its op indices per
edge; unbudgeted.csv).

For each seed s, the two imitation meta-runs of benchmarks/meta_zero_shot.py under --out (TaskDARTS and its
--no-encoder ablation; finished runs are read, none is trained here). CIFAR-10 is no meta-training data set. The
budgets: --budgets multiply-add bounds at evenly spaced quantiles (5 % to 95 %) of the FLOPs of all 15,625 cells'
evaluation networks (supernet/costs.py: C=16, N=5, 10 classes, 32 px). The meta_zero_shot.py runs were trained
without budgets and do not see one: the decoding alone enforces it; the budget-conditioned runs' teachers searched
under budgets drawn at random tightness, never at these quantiles. Per budget and seed:
- TaskDARTS and the ablation: `search --meta RUN --max-flops-m F` on the CIFAR-10 training npz (the same embedding
  and decoding; timed per proposal, embedding included, the cost table measured once beforehand);
- NASWOT-N and synflow-N for N = 100, 500: N cells drawn (seed s) from the cells that fit, scored at the teachers'
  scale (C=8, 1 cell a stage) on one batch of the same training images at the meta-model's 16 px, the best kept;
- where benchmarks/budget_conditioning.py made them, its budget-aware TaskDARTS and its blind ablation, trained on a
  bank with FLOPs-budgeted teachers: the same decoding, the budget-aware graph told the budget's share of cells;
- the teachers' pooled vote, a constant proposal: log of each op's share on each edge over the seed's teacher bank
  (plus 1e-3), decoded under the same budget;
- random: the mean table accuracy over every cell that fits (the expectation of a random feasible cell).
Without a budget, the same meta-models' zero-shot cells next to the constant cells: the pooled vote, the all-3x3 +
residual cell and random residual + conv cells (skip on the input-to-output edge, 1x1 or 3x3 convolutions elsewhere;
the mean of 100 a seed).
Regret = (CIFAR-10 test accuracy of the best cell that fits, from the table) - (the chosen cell's); a cell over the
budget would score a random fitting cell's (supernet/budget_scoring.py). The table scores;
it chooses nothing. Feasibility is checked on the cost model (its sums equal the built networks',
tests/supernet/test_costs.py).

    python benchmarks/budget_regret.py --seeds 3 --out runs/meta-zero-shot     # a few minutes on 2 CPU cores
    python benchmarks/render_results.py
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import meta_zero_shot as zs
import torch
from budget_conditioning import BUDGET_METHODS

from evaluation.nb201_table import NB201Table
from evaluation.study_tables import cell_code, flops_budget_tables, write_rows
from image_sets import load_dataset
from meta.model import load_meta
from meta.tasks import match_format, whole_dataset_task
from meta.teacher_bank import TeacherBank, op_frequencies
from supernet.budget_scoring import quantile_bounds, score_proposal
from supernet.costs import Budget, budget_share, budgeted_derive, cell_costs, cost_terms, every_cell
from supernet.proxy_scores import CellProxyScores

PROXY_SIZES = (100, 500)
RESIDUAL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
"""The all-3x3 + residual cell: the best constant cell a user would try first (every edge a 3x3 convolution but the
input-to-output edge, a skip connection)."""
RESIDUAL_EDGE = 3  # the cell's input-to-output edge, in logits-row order


def random_residual_conv(generator: torch.Generator):
    """A random residual + conv cell: skip on the input-to-output edge, a 1x1 or 3x3 convolution on every other."""
    convs = ("nor_conv_1x1", "nor_conv_3x3")
    ops = [convs[int(k)] for k in torch.randint(2, (zs.SPACE.num_edges,), generator=generator)]
    ops[RESIDUAL_EDGE] = "skip_connect"
    return zs.SPACE.with_edge_ops(ops)


def methods_of(out: Path, seeds: int) -> tuple[str, ...]:
    """zs.METHODS and the budget-conditioned runs where budget_conditioning.py made them for every seed."""
    return (*zs.METHODS, *(m for m in BUDGET_METHODS
                           if all((out / f"seed{s}" / m / "checkpoint.pt").is_file() for s in range(seeds))))


def proposal_logits(meta, task, terms: dict, budget: Budget) -> dict:
    """The meta-model's zero-shot logits for `task` under `budget`, as `search --meta` computes them: a budget-aware
    model's z carries the share of cells the budget lets through (under `terms`), any other ignores the budget."""
    meta.eval()
    if meta.config.model.budget_aware:
        task = replace(task, budget_share=budget_share(zs.SPACE, terms, budget))
    with torch.no_grad():
        return meta.start(meta.embed([task])[0]).logits


def unbudgeted_rows(models: dict, task, vote: dict, table: NB201Table, seed: int, draws: int = 100) -> dict:
    """Without a budget, on CIFAR-10: each meta-model's zero-shot cell (a budget-aware one told share 1) against the
    constant cells; method -> CIFAR-10 test accuracy (table)."""
    row = {}
    for method, meta in models.items():
        row[method] = table.lookup(zs.SPACE.derive(proposal_logits(meta, task, {}, Budget()))).cifar10
    row["pooled vote"] = table.lookup(zs.SPACE.derive(vote)).cifar10
    row["all-3x3 + residual"] = table.lookup(zs.SPACE.from_text(RESIDUAL_CONV)).cifar10
    generator = torch.Generator().manual_seed(seed)
    row[f"random residual + conv (mean of {draws})"] = statistics.mean(
        table.lookup(random_residual_conv(generator)).cifar10 for _ in range(draws))
    return row


def every_cell_table(table: NB201Table, costs) -> tuple[list, torch.Tensor, torch.Tensor]:
    """(genotypes, FLOPs M, CIFAR-10 test accuracy) of all cells, in the decoding's enumeration order."""
    space = zs.SPACE
    cells = every_cell(space.num_edges, len(space.ops))
    genotypes = [space.with_edge_ops([space.ops[k] for k in row]) for row in cells.tolist()]
    flops = cost_terms(costs)["flops_m"].of_cells(cells)
    accuracy = torch.tensor([table.lookup(g).cifar10 for g in genotypes], dtype=torch.float64)
    return genotypes, flops, accuracy


def meta_models(out: Path, seed: int, dataset: str, methods=tuple(zs.METHODS)) -> tuple[dict, object]:
    """(method -> the seed's finished meta-model of `methods`, the data set as `search --meta` makes it a task)."""
    metas = {method: out / f"seed{seed}" / method for method in methods}
    missing = [str(run) for run in metas.values() if not (run / "checkpoint.pt").is_file()]
    if missing:
        sys.exit(f"error: no finished meta-run at {', '.join(missing)} (run benchmarks/meta_zero_shot.py or "
                 f"warm_start.py first)")
    models = {method: load_meta(str(run), torch.device("cpu")) for method, run in metas.items()}
    config = next(iter(models.values())).config
    task = whole_dataset_task(dataset, config.task.channels, config.task.image_size, seed, include_test=False,
                              outer=False)
    return models, task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budgets", type=int, default=10)
    parser.add_argument("--table", default=str(zs.SHARED / "nb201" / "nats_bench.csv"))
    parser.add_argument("--out", default="runs/meta-zero-shot", help="the meta-runs (benchmarks/meta_zero_shot.py)")
    parser.add_argument("--data", default=str(zs.ROOT / "docs" / "results" / "data" / "flops-budgets"),
                        help="where the raw results go (budgets.csv, unbudgeted.csv)")
    args = parser.parse_args()
    out = Path(args.out)
    dataset = f"npz:{zs.SHARED / 'cifar10_train.npz'}"
    table = NB201Table.load(args.table)
    costs = cell_costs("nb201", 10, 3, 32)
    genotypes, flops, accuracy = every_cell_table(table, costs)
    budgets = [round(b, 2) for b in quantile_bounds(flops, args.budgets)]
    terms = cost_terms(costs)
    meta_methods = methods_of(out, args.seeds)
    position = {zs.SPACE.to_text(g): k for k, g in enumerate(genotypes)}
    rows, unbudgeted = [], []
    for seed in range(args.seeds):
        models, task = meta_models(out, seed, dataset, meta_methods)
        config = next(iter(models.values())).config
        proxies = CellProxyScores(match_format(load_dataset(dataset, "train"), config.task.channels,
                                               config.task.image_size), seed)
        bank = TeacherBank.read(out / f"seed{seed}" / "teachers", "nb201")
        vote = {key: (share + 1e-3).log() for key, share in
                op_frequencies(zs.SPACE, [t.genotype for t in bank.teachers]).items()}
        unbudgeted.append(unbudgeted_rows(models, task, vote, table, seed))
        generator = torch.Generator().manual_seed(seed)
        for bound in budgets:
            fits = torch.nonzero(flops <= bound + 1e-9).flatten()
            best = float(accuracy[fits].max())
            row = {"seed": seed, "max_flops_m": bound, "feasible_cells": len(fits), "best_feasible": best}
            for method, meta in models.items():
                started = time.perf_counter()
                logits = proposal_logits(meta, task, terms, Budget(max_flops_m=bound))
                cell = budgeted_derive(zs.SPACE, logits, terms, Budget(max_flops_m=bound))
                seconds = time.perf_counter() - started
                score = score_proposal(accuracy, flops, bound + 1e-9, position[zs.SPACE.to_text(cell)])
                row[method] = {"cell": zs.SPACE.to_text(cell), "flops_m": round(costs.of(cell)[1], 3),
                               "fits": score.met, "regret": score.regret, "seconds": round(seconds, 4)}
            voted = budgeted_derive(zs.SPACE, vote, terms, Budget(max_flops_m=bound))
            row["pooled vote"] = {"cell": zs.SPACE.to_text(voted), "regret": score_proposal(
                accuracy, flops, bound + 1e-9, position[zs.SPACE.to_text(voted)]).regret}
            for proxy in ("naswot", "synflow"):
                for n in PROXY_SIZES:
                    drawn = fits[torch.randint(len(fits), (n,), generator=generator)].tolist()
                    chosen = proxies.best_of(proxy, genotypes, drawn)
                    row[f"{proxy}-{n}"] = {"cell": zs.SPACE.to_text(genotypes[chosen]),
                                           "regret": best - float(accuracy[chosen])}
            row["random"] = {"regret": best - float(accuracy[fits].mean())}
            rows.append(row)
            print(json.dumps({k: (v["regret"] if isinstance(v, dict) else v) for k, v in row.items()}), flush=True)
    methods = [*meta_methods, "pooled vote", *(f"{p}-{n}" for p in ("naswot", "synflow") for n in PROXY_SIZES),
               "random"]
    raw = []  # one row per seed, budget and method: the study's raw results
    for r in rows:
        for method in methods:
            entry = r[method]
            raw.append({"seed": r["seed"], "budget": budgets.index(r["max_flops_m"]), "max_flops_m": r["max_flops_m"],
                        "method": method,
                        "cell": cell_code(zs.SPACE, zs.SPACE.from_text(entry["cell"])) if "cell" in entry else "",
                        "met": int(entry.get("fits", True)), "regret": f"{entry['regret']:.4f}",
                        "seconds": f"{entry['seconds']:.4f}" if "seconds" in entry else ""})
    data = Path(args.data)
    write_rows(data / "budgets.csv", raw)
    write_rows(data / "unbudgeted.csv", [{"seed": seed, "proposal": method, "cifar10": f"{value:.4f}"}
                                         for seed, row in enumerate(unbudgeted) for method, value in row.items()])
    print(flops_budget_tables(data))
    print(f"raw results in {data}; render the study with benchmarks/render_results.py")


if __name__ == "__main__":
    main()
