#!/usr/bin/env python
"""Latency-budgeted zero-shot proposals on devices the models never saw, scored as measured.

Results: docs/results/budget-regret.md.

The devices: every column of ../shared/data/hardware/nb201_latency_help.csv (23 GPUs, CPUs, phones and a Raspberry
Pi, from HELP; measured latencies of all 15,625 cells), plus any --measured CSV of this machine
(benchmarks/cpu_latency.py). For each device, its profile is what `--device-profile auto` would measure there: the
latencies of the 10 reference cells (supernet/latency.py), read from the device's column; the additive latency model
is fitted to them and predicts every cell. Budgets: --budgets bounds at evenly spaced quantiles (5 % to 95 %) of the
device's measured latencies. For each seed's TaskDARTS and --no-encoder meta-runs (benchmarks/meta_zero_shot.py, and
budget_conditioning.py's where made; their z is told the share of cells the budget lets through on the model),
the CIFAR-10 proposal decoded under each budget on the *predicted* latency (`search --meta RUN --max-latency-ms L
--device-profile FILE`) is scored on the *measured* one: met or not, and its regret = CIFAR-10 table accuracy of the
best cell whose measured latency fits - the proposal's. Also: the model's Spearman rank correlation with the measured
latencies over all cells, and a random cell that fits as measured (expected regret). The tables score only.

    python benchmarks/latency_budgets.py --seeds 3 --out runs/meta-zero-shot      # about a minute
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

import budget_regret as br
import meta_zero_shot as zs
import torch

from evaluation.nb201_table import NB201Table
from evaluation.ranking import spearman
from run_kit import InputError
from supernet.costs import Budget, budgeted_derive, cell_costs, cost_terms, every_cell
from supernet.latency import fit_latency, reference_cells

HELP = zs.SHARED / "hardware" / "nb201_latency_help.csv"


def device_columns(paths: list[Path], genotypes: list) -> dict[str, torch.Tensor]:
    """device -> [15,625] measured ms in the decoding's enumeration order, from CSVs `arch,<device>_ms...`."""
    index = {zs.SPACE.to_text(g): k for k, g in enumerate(genotypes)}
    devices: dict[str, torch.Tensor] = {}
    for path in paths:
        with open(path) as f:
            reader = csv.DictReader(f)
            names = [c for c in reader.fieldnames if c.endswith("_ms")]
            values = {name: torch.full((len(genotypes),), float("nan"), dtype=torch.float64) for name in names}
            for row in reader:
                k = index[row["arch"]]
                for name in names:
                    values[name][k] = float(row[name])
        for name, column in values.items():
            if torch.isnan(column).any():
                raise SystemExit(f"error: {path} lacks {name} for some cells")
            devices[name[:-3]] = column
    return devices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budgets", type=int, default=10)
    parser.add_argument("--measured", nargs="*", default=[], help="more device CSVs (arch,<device>_ms, all cells)")
    parser.add_argument("--table", default=str(zs.SHARED / "nb201" / "nats_bench.csv"))
    parser.add_argument("--out", default="runs/meta-zero-shot")
    args = parser.parse_args()
    out = Path(args.out)
    table = NB201Table.load(args.table)
    costs = cell_costs("nb201", 10, 3, 32)
    genotypes, _, accuracy = br.every_cell_table(table, costs)
    devices = device_columns([HELP, *map(Path, args.measured)], genotypes)
    position = {zs.SPACE.to_text(g): k for k, g in enumerate(genotypes)}
    references = [position[zs.SPACE.to_text(g)] for g in reference_cells(zs.SPACE)]
    methods = br.methods_of(out, args.seeds)
    models = {seed: br.meta_models(out, seed, f"npz:{zs.SHARED / 'cifar10_train.npz'}", methods)
              for seed in range(args.seeds)}
    summary, lines = {}, ["| device | Spearman of the model | method | budgets met as measured | mean regret "
                          "(points), mean ± std over seeds |", "|---|---|---|---|---|"]
    for device, measured in devices.items():
        model = fit_latency(zs.SPACE, [genotypes[k] for k in references], measured[references].tolist(), device)
        terms = cost_terms(costs, model.term(zs.SPACE))
        predicted = terms["latency_ms"].of_cells(every_cell(zs.SPACE.num_edges, len(zs.SPACE.ops)))
        rho = spearman(predicted.tolist(), measured.tolist())
        bounds = torch.quantile(measured, torch.linspace(0.05, 0.95, args.budgets, dtype=torch.float64)).tolist()
        entry = {"spearman": round(rho, 3), "intercept_ms": model.intercept_ms, "per_op_ms": model.per_op_ms}
        for method in [*methods, "random"]:
            met, regrets = [], {s: [] for s in range(args.seeds)}  # regrets of the budgets met, per seed
            for seed in range(args.seeds):
                for bound in bounds:
                    fits = measured <= bound
                    best = float(accuracy[fits].max())
                    if method == "random":
                        regrets[seed].append(best - float(accuracy[fits].mean()))
                        continue
                    meta, task = models[seed][0][method], models[seed][1]
                    try:
                        budget = Budget(max_latency_ms=bound)
                        cell = budgeted_derive(zs.SPACE, br.proposal_logits(meta, task, terms, budget), terms, budget)
                    except InputError:  # the model predicts that no cell fits: a miss
                        met.append(False)
                        continue
                    k = position[zs.SPACE.to_text(cell)]
                    met.append(bool(measured[k] <= bound))
                    if met[-1]:
                        regrets[seed].append(best - float(accuracy[k]))
            means = [statistics.mean(v) for v in regrets.values() if v]
            e = entry[method] = {"met": sum(met) / len(met) if met else None,
                                 "mean_regret": statistics.mean(means) if means else None,
                                 "std": statistics.stdev(means) if len(means) > 1 else None,
                                 "mean_regret_per_seed": means}
            met_text = "" if e["met"] is None else f"{100 * e['met']:.0f} %"
            regret = "" if e["mean_regret"] is None else f"{e['mean_regret']:.2f}" + (
                f" ± {e['std']:.2f}" if e["std"] is not None else "")
            lines.append(f"| {device} | {rho:.3f} | {method} | {met_text} | {regret} |")
        summary[device] = entry
    overall = ["", "| method | budgets met, all devices | mean regret of the met budgets, mean over devices |",
               "|---|---|---|"]
    for method in methods:
        met = statistics.mean(summary[d][method]["met"] for d in summary)
        regrets = [summary[d][method]["mean_regret"] for d in summary if summary[d][method]["mean_regret"] is not None]
        overall.append(f"| {method} | {100 * met:.1f} % | {statistics.mean(regrets):.2f} |")
    lines += overall
    (out / "latency-budgets.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "latency-budgets.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
