#!/usr/bin/env python
"""Latency-budgeted zero-shot proposals on devices the models never saw, scored as measured.

Results: docs/results/budgets.md, rendered from the raw results this writes to
docs/results/data/latency-budgets/ (budgets.csv: one row per profile setting, device, method, seed and budget, the
proposed cell as its op indices per edge; devices.json: each profile's fitted model) by benchmarks/render_results.py.

The devices: every column of ../shared/data/hardware/nb201_latency_help.csv (23 GPUs, CPUs, phones and a Raspberry
Pi, from HELP; measured latencies of all 15,625 cells), plus any --measured CSV of this machine
(benchmarks/cpu_latency.py). For each device, its profile is what `--device-profile auto` would measure there: the
latencies of the reference cells (supernet/latency.py), read from the device's column; the additive latency model
is fitted to them and predicts every cell; a budget bounds that prediction times the profile's leave-one-out guard
(`--latency-confidence`). --settings scores several profiles: 10 cells bare (the model before the guard), 20 cells
bare, and 20 cells with the 0.95 guard (what `search --meta` does by default). Budgets: --budgets bounds at evenly
spaced quantiles (5 % to 95 %) of the device's measured latencies. For each seed's TaskDARTS and --no-encoder
meta-runs (meta/pipeline.ZERO_SHOT_BUDGETS, read from the pipeline's cache --cache, made there where missing), the
CIFAR-10 proposal decoded under each budget on the guarded *predicted*
latency (`search --meta RUN --max-latency-ms L --device-profile FILE`) is scored on the *measured* one: met or not,
and its regret = CIFAR-10 table accuracy of the best cell whose measured latency fits - the proposal's, on every
budget: a miss scores the expected regret of a random cell that fits (supernet/budget_scoring.py). Also: the
model's Spearman rank correlation with the measured latencies over all cells, the constant all-3x3 + residual cell
decoded under the same budgets (its logits), and a random cell that fits as measured (expected regret). The tables
score only.

    python benchmarks/latency_budgets.py --seeds 3 --settings 10:0 20:0.95 --cache runs/meta-cache \
        --measured docs/results/data/latency-budgets/nb201_latency_cpu.csv.gz                       # 20 s
    python benchmarks/render_results.py
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from evaluation.nb201_table import RESIDUAL_CONV, NB201Table, every_cell_accuracy
from evaluation.study_tables import cell_code, latency_budget_tables, write_rows
from meta.experience import read_latency_columns
from meta.latency_predictor import op_counts
from meta.meta_search import told_budget, zero_shot_logits
from meta.pipeline import ZERO_SHOT_BUDGETS, MetaPipeline
from meta.tasks import whole_dataset_task
from run_kit import InputError
from run_kit.files import atomic_write_text
from run_kit.ranking import spearman
from supernet.budget_scoring import quantile_bounds, score_proposal
from supernet.costs import Budget, budgeted_derive, cell_costs, cost_terms, every_cell, every_cell_costs
from supernet.latency import fit_latency, reference_cells
from supernet.spaces import get_space

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
HELP = SHARED / "hardware" / "nb201_latency_help.csv"
SPACE = get_space("nb201")


def device_columns(paths: list[Path], genotypes: list) -> dict[str, torch.Tensor]:
    """device -> [15,625] measured ms in the decoding's enumeration order, from CSVs `arch,<device>_ms...` (gzipped
    where the name ends in .gz; meta/experience.py reads them)."""
    index = {SPACE.to_text(g): k for k, g in enumerate(genotypes)}
    devices: dict[str, torch.Tensor] = {}
    for path in paths:
        devices.update(read_latency_columns(path, index))
    return devices


def parse_setting(text: str) -> tuple[int, float]:
    """`CELLS:CONFIDENCE` -> (profile cells, guard confidence)."""
    try:
        cells, confidence = text.split(":")
        return int(cells), float(confidence)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a profile setting is CELLS:CONFIDENCE (e.g. 20:0.95), got {text}") from None


def model_ceiling(measured: torch.Tensor) -> dict[str, tuple[float, float]]:
    """How well an additive model can fit the device at all: least squares on *every* cell, per op count (the model
    a profile fits) and per (edge, op) one-hot; (Spearman, 95th percentile of |relative error|) each."""
    cells = every_cell(SPACE.num_edges, len(SPACE.ops))
    ones = torch.ones(len(cells), 1, dtype=torch.float64)
    features = {"op counts": torch.cat([ones, op_counts()], 1),
                "per edge": torch.cat([ones, torch.nn.functional.one_hot(cells, len(SPACE.ops))[..., 1:]
                                       .flatten(1).double()], 1)}
    out = {}
    for name, x in features.items():
        fitted = x @ torch.linalg.lstsq(x, measured[:, None]).solution.flatten()
        out[name] = (round(spearman(fitted.tolist(), measured.tolist()), 3),
                     round(float(((measured - fitted).abs() / measured).quantile(0.95)), 3))
    return out


def setting_name(cells: int, confidence: float) -> str:
    return f"{cells} cells, " + ("bare prediction" if confidence == 0 else f"guard {confidence:g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budgets", type=int, default=10)
    parser.add_argument("--measured", nargs="*", default=[], help="more device CSVs (arch,<device>_ms, all cells)")
    parser.add_argument("--settings", nargs="+", type=parse_setting, default=[(10, 0.0), (20, 0.0), (20, 0.95)],
                        help="profiles scored, CELLS:CONFIDENCE each: the first CELLS reference cells "
                             "(supernet/latency.py) and the guard's confidence (0: the bare prediction)")
    parser.add_argument("--table", default=str(SHARED / "nb201" / "nats_bench.csv"))
    parser.add_argument("--cache", default="runs/meta-cache", help="the meta pipeline's cache (meta/pipeline.py)")
    parser.add_argument("--data", default=str(ROOT / "docs" / "results" / "data" / "latency-budgets"),
                        help="where the raw results go (budgets.csv, devices.json)")
    args = parser.parse_args()
    pipeline = MetaPipeline(Path(args.cache))
    table = NB201Table.load(args.table)
    costs = cell_costs("nb201", 10, 3, 32)
    genotypes, _, accuracy = every_cell_accuracy(table, costs)
    devices = device_columns([HELP, *map(Path, args.measured)], genotypes)
    position = {SPACE.to_text(g): k for k, g in enumerate(genotypes)}
    references = [position[SPACE.to_text(g)] for g in reference_cells(SPACE, max(c for c, _ in args.settings))]
    methods = tuple(ZERO_SHOT_BUDGETS.designs)
    models = {seed: ZERO_SHOT_BUDGETS.meta_models(pipeline, seed) for seed in range(args.seeds)}
    config = models[0][methods[0]].config
    tasks = {seed: whole_dataset_task(f"npz:{SHARED / 'cifar10_train.npz'}", config.task.channels,
                                      config.task.image_size, seed, include_test=False, outer=False)
             for seed in range(args.seeds)}  # CIFAR-10 as `search --meta` makes it a task
    constant = SPACE.logits_of(SPACE.from_text(RESIDUAL_CONV))  # the best constant cell, as logits
    names = [*methods, "all-3x3 + residual"]
    assert SPACE.ops[0] == "none"  # model_ceiling's features leave it out
    ceiling = {device: model_ceiling(measured) for device, measured in devices.items()}
    fitted: dict = {}  # setting -> device -> the profile's model
    raw: list[dict] = []  # one row per (setting, device, method, seed, budget): the study's raw results
    for cells, confidence in args.settings:
        setting = setting_name(cells, confidence)
        fitted[setting] = {}
        for device, measured in devices.items():
            chosen = references[:cells]
            model = fit_latency(SPACE, [genotypes[k] for k in chosen], measured[chosen].tolist(), device,
                                confidence)
            terms = cost_terms(costs, model.term(SPACE))
            predicted = every_cell_costs(terms, SPACE)["latency_ms"]
            fitted[setting][device] = {"spearman": round(spearman(predicted.tolist(), measured.tolist()), 4),
                                       "guard": round(model.guard, 4), "intercept_ms": round(model.intercept_ms, 6),
                                       "per_op_ms": {op: round(v, 6) for op, v in model.per_op_ms.items()}}
            bounds = quantile_bounds(measured, args.budgets)
            for method in names:
                for seed in range(args.seeds):
                    for number, bound in enumerate(bounds):
                        # every budget scores every method (supernet/budget_scoring.py): a miss, over the budget
                        # as measured or no cell predicted to fit, scores as a random cell that fits
                        k, code = None, ""
                        budget = Budget(max_latency_ms=bound)
                        try:
                            meta = models[seed].get(method)
                            logits = constant if meta is None else zero_shot_logits(
                                meta, told_budget(meta, tasks[seed], terms, budget))
                            cell = budgeted_derive(SPACE, logits, terms, budget)
                            k = position[SPACE.to_text(cell)]
                            code = cell_code(SPACE, cell)
                        except InputError:
                            pass
                        score = score_proposal(accuracy, measured, bound, k)
                        raw.append({"setting": setting, "device": device, "method": method, "seed": seed,
                                    "budget": number, "bound_ms": f"{bound:.6g}", "cell": code,
                                    "met": int(score.met), "regret": f"{score.regret:.4f}",
                                    "guess": f"{score.guess:.4f}"})
        print(f"{setting}: scored", flush=True)
    data = Path(args.data)
    write_rows(data / "budgets.csv", raw)
    atomic_write_text(data / "devices.json", json.dumps({**fitted, "model_ceiling": ceiling}, indent=1) + "\n")
    print(latency_budget_tables(data))
    print(f"raw results in {data}; render the study with benchmarks/render_results.py")


if __name__ == "__main__":
    main()
