#!/usr/bin/env python
"""Budgeted zero-shot proposals on CIFAR-10 against the best cell that fits, in the NAS-Bench-201 space.

Results: docs/results/budgets.md, rendered by benchmarks/render_results.py from the raw results this writes to
docs/results/data/flops-budgets/ (budgets.csv: one row per seed, budget and method, the cell as its op indices per
edge; unbudgeted.csv).

For each seed s, the two imitation meta-runs of meta/pipeline.ZERO_SHOT_BUDGETS (TaskDARTS and its --no-encoder
ablation, from configs/meta_nb201_natural.yaml), read from the pipeline's cache --cache, made there (teachers, then
meta-training, about 15 min a seed) where missing. CIFAR-10 is no meta-training data set. The
budgets: --budgets multiply-add bounds at evenly spaced quantiles (5 % to 95 %) of the FLOPs of all 15,625 cells'
evaluation networks (supernet/costs.py: C=16, N=5, 10 classes, 32 px). The meta-runs were trained without budgets
and do not see one: the decoding alone enforces it. Per budget and seed:
- TaskDARTS and the ablation: `search --meta RUN --max-flops-m F` on the CIFAR-10 training npz (the same embedding
  and decoding; timed per proposal, embedding included, the cost table measured once beforehand);
- NASWOT-N and synflow-N for N = 100, 500: N cells drawn (seed s) from the cells that fit, scored at the teachers'
  scale (C=8, 1 cell a stage) on one batch of the same training images at the meta-model's 16 px, the best kept;
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

    python benchmarks/budget_regret.py --seeds 3 --cache runs/meta-cache     # a few minutes once the meta-runs exist
    python benchmarks/render_results.py
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from evaluation.nb201_table import RESIDUAL_CONV, NB201Table, every_cell_accuracy
from evaluation.study_tables import cell_code, flops_budget_tables, write_rows
from image_sets import load_dataset
from meta.meta_search import told_budget, zero_shot_logits
from meta.pipeline import ZERO_SHOT_BUDGETS, MetaPipeline
from meta.tasks import match_format, whole_dataset_task
from meta.teacher_bank import TeacherBank
from supernet.budget_scoring import quantile_bounds, score_proposal
from supernet.costs import Budget, budgeted_derive, cell_costs, cost_terms
from supernet.proxy_scores import CellProxyScores
from supernet.spaces import get_space
from supernet.training_free import op_frequencies

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
SPACE = get_space("nb201")
PROXY_SIZES = (100, 500)
RESIDUAL_EDGE = 3  # the cell's input-to-output edge, in logits-row order


def random_residual_conv(generator: torch.Generator):
    """A random residual + conv cell: skip on the input-to-output edge, a 1x1 or 3x3 convolution on every other."""
    convs = ("nor_conv_1x1", "nor_conv_3x3")
    ops = [convs[int(k)] for k in torch.randint(2, (SPACE.num_edges,), generator=generator)]
    ops[RESIDUAL_EDGE] = "skip_connect"
    return SPACE.with_edge_ops(ops)


def unbudgeted_rows(models: dict, task, vote: dict, table: NB201Table, seed: int, draws: int = 100) -> dict:
    """Without a budget, on CIFAR-10: each meta-model's zero-shot cell against the constant cells; method -> CIFAR-10
    test accuracy (table)."""
    row = {}
    for method, meta in models.items():
        row[method] = table.lookup(SPACE.derive(zero_shot_logits(meta, task))).cifar10  # no budget: share 1
    row["pooled vote"] = table.lookup(SPACE.derive(vote)).cifar10
    row["all-3x3 + residual"] = table.lookup(SPACE.from_text(RESIDUAL_CONV)).cifar10
    generator = torch.Generator().manual_seed(seed)
    row[f"random residual + conv (mean of {draws})"] = statistics.mean(
        table.lookup(random_residual_conv(generator)).cifar10 for _ in range(draws))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budgets", type=int, default=10)
    parser.add_argument("--table", default=str(SHARED / "nb201" / "nats_bench.csv"))
    parser.add_argument("--cache", default="runs/meta-cache", help="the meta pipeline's cache (meta/pipeline.py)")
    parser.add_argument("--data", default=str(ROOT / "docs" / "results" / "data" / "flops-budgets"),
                        help="where the raw results go (budgets.csv, unbudgeted.csv)")
    args = parser.parse_args()
    pipeline = MetaPipeline(Path(args.cache))
    dataset = f"npz:{SHARED / 'cifar10_train.npz'}"
    table = NB201Table.load(args.table)
    costs = cell_costs("nb201", 10, 3, 32)
    genotypes, flops, accuracy = every_cell_accuracy(table, costs)
    budgets = [round(b, 2) for b in quantile_bounds(flops, args.budgets)]
    terms = cost_terms(costs)
    meta_methods = tuple(ZERO_SHOT_BUDGETS.designs)
    position = {SPACE.to_text(g): k for k, g in enumerate(genotypes)}
    rows, unbudgeted = [], []
    for seed in range(args.seeds):
        models = ZERO_SHOT_BUDGETS.meta_models(pipeline, seed)
        config = next(iter(models.values())).config
        task = whole_dataset_task(dataset, config.task.channels, config.task.image_size, seed, include_test=False,
                                  outer=False)  # the data set as `search --meta` makes it a task
        proxies = CellProxyScores(match_format(load_dataset(dataset, "train"), config.task.channels,
                                               config.task.image_size), seed)
        bank = TeacherBank.read(pipeline.teachers(ZERO_SHOT_BUDGETS.config(meta_methods[0], seed)), "nb201")
        vote = {key: (share + 1e-3).log() for key, share in
                op_frequencies(SPACE, [t.genotype for t in bank.teachers]).items()}
        unbudgeted.append(unbudgeted_rows(models, task, vote, table, seed))
        generator = torch.Generator().manual_seed(seed)
        for bound in budgets:
            fits = torch.nonzero(flops <= bound + 1e-9).flatten()
            best = float(accuracy[fits].max())
            row = {"seed": seed, "max_flops_m": bound, "feasible_cells": len(fits), "best_feasible": best}
            for method, meta in models.items():
                started = time.perf_counter()
                logits = zero_shot_logits(meta, told_budget(meta, task, terms, Budget(max_flops_m=bound)))
                cell = budgeted_derive(SPACE, logits, terms, Budget(max_flops_m=bound))
                seconds = time.perf_counter() - started
                score = score_proposal(accuracy, flops, bound + 1e-9, position[SPACE.to_text(cell)])
                row[method] = {"cell": SPACE.to_text(cell), "flops_m": round(costs.of(cell)[1], 3),
                               "fits": score.met, "regret": score.regret, "seconds": round(seconds, 4)}
            voted = budgeted_derive(SPACE, vote, terms, Budget(max_flops_m=bound))
            row["pooled vote"] = {"cell": SPACE.to_text(voted), "regret": score_proposal(
                accuracy, flops, bound + 1e-9, position[SPACE.to_text(voted)]).regret}
            for proxy in ("naswot", "synflow"):
                for n in PROXY_SIZES:
                    drawn = fits[torch.randint(len(fits), (n,), generator=generator)].tolist()
                    chosen = proxies.best_of(proxy, genotypes, drawn)
                    row[f"{proxy}-{n}"] = {"cell": SPACE.to_text(genotypes[chosen]),
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
                        "cell": cell_code(SPACE, SPACE.from_text(entry["cell"])) if "cell" in entry else "",
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
