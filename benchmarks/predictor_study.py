#!/usr/bin/env python
"""Proposals that rank whole cells: the meta-learned accuracy predictor (meta/accuracy_predictor.py) and latency
predictor (meta/latency_predictor.py) against the constant prior, on tasks and devices held out by construction.

Results: docs/results/predictors.md, rendered by benchmarks/render_results.py from the raw results this writes to
docs/results/data/predictors/:
- tasks.csv, (b) leave-one-task-out: each of the five table tasks (NAS-Bench-201's CIFAR-10, CIFAR-100,
  ImageNet16-120; HW-NAS-Bench-360's NinaPro and Darcy) held out in turn (meta/experience.split: its column leaves the
  experience before anything is fitted). For K = 0, 10, 20 probe cells, unbudgeted and under 5 FLOPs budgets: the
  predictor's design chosen by leave-one-task-out among the other four (choose_design), its probes chosen by that
  design among the cells that fit, their accuracies read from the target's column (what a user who trained them
  would hand in), the proposal scored by the target's column. Beside it: the constant prior (K = 0: the other
  tasks' mean, no conditioning) and the best of K random cells that fit (3 seeds), the probes a user would pick
  without the predictor.
- flops.csv, (a) CIFAR-10 held out under 10 FLOPs budgets (the budgets of docs/results/budgets.md's FLOPs study, so
  that its imitation and training-free rows stand beside these).
- latency.csv and devices.csv, (a) and (c): each device of the HELP table and this machine's 3 settings held out in
  turn from the latency predictor's experience (the other devices, HW-NAS-Bench-360's 4 included); its design chosen
  by leave-one-device-out among those; its profile the 20 reference cells of `--device-profile auto`
  (supernet/latency.reference_cells) read from the device's column; guard at confidence 0.95. Spearman over all
  cells against the additive model of the same profile. 10 budgets at the 5-95 % quantiles of the device's measured
  latencies; CIFAR-10 held out of the accuracy predictor (the design chosen for flops.csv); a budget bounds the
  guarded prediction and is scored as measured (supernet/budget_scoring.py: a miss scores a random fitting
  cell's expected regret). Two more rows take the latency model apart: the same proposal without the guard, and
  with the device's measured latency in place of the prediction (an oracle no user has). Two rows are what `search`
  does where the device is at hand (`--device-profile auto`): the proposal measured and, while over the bound, the
  next best cell that fits the prediction (supernet/latency.verified_derive, at most 5 measured; all 5 over scores
  as a miss), with the guard and without it. And the training-free rows: NASWOT-100 and synflow-100, 100 cells
  drawn (3 seeds) among those the same guarded latency prediction lets through, scored at the teachers' scale (C=8,
  1 cell a stage, 16 px) on one batch of the CIFAR-10 *training* images (supernet/proxy_scores.py), the best kept.
- designs.json: every design chosen and the leave-one-out means it was chosen by.

Everything is deterministic except the random-probe baseline and the proxies' draws (seeded). The tables are read
only through meta/experience.split; a target's column scores and supplies the probes' measured values, nothing else.

    python benchmarks/predictor_study.py          # about 20 minutes on 2 CPU cores
    python benchmarks/render_results.py
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from evaluation.study_tables import predictor_tables, write_rows
from image_sets import load_dataset
from meta.accuracy_predictor import (
    TRANSFORMS,
    AccuracyPredictor,
    PredictorDesign,
    choose_design,
    probe_values,
    probed_proposal,
)
from meta.experience import SPACE, TASKS, cell_genotype, cell_index, load_experience, split
from meta.latency_predictor import LatencyPredictor, choose_latency_design
from meta.tasks import match_format
from run_kit import InputError
from run_kit.files import atomic_write_text
from run_kit.ranking import spearman
from supernet.budget_scoring import quantile_bounds, score_fields
from supernet.costs import best_remaining, cell_costs, cost_terms, every_cell
from supernet.latency import fit_latency, reference_cells, verified_derive
from supernet.proxy_scores import CellProxyScores

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
CPU_LATENCY = ROOT / "docs" / "results" / "data" / "latency-budgets" / "nb201_latency_cpu.csv.gz"
PROBE_COUNTS = (0, 10, 20)
PROXIES = ("naswot", "synflow")
PROXY_DRAWS = 100
PROXY_IMAGE_SIZE = 16  # the teachers' scale, as the FLOPs study's training-free rows
GENOTYPES = [cell_genotype(k) for k in range(len(SPACE.ops) ** SPACE.num_edges)]  # every cell, by index
RANDOM_SEEDS = 3
CONFIDENCE = 0.95


def best_random_probe(target: torch.Tensor, fits: torch.Tensor, count: int, seed: int) -> int:
    """The best of `count` random cells that fit (seeded): what probing without a predictor finds."""
    candidates = torch.nonzero(fits).flatten()
    generator = torch.Generator().manual_seed(seed)
    drawn = candidates[torch.randperm(len(candidates), generator=generator)[:count]]
    return int(drawn[torch.argmax(target[drawn])])


def score_row(target: torch.Tensor, costs: torch.Tensor, bound: float, proposed: int | None) -> dict:
    return {"cell": "" if proposed is None else cell_code(proposed), **score_fields(target, costs, bound, proposed)}


def cell_code(index: int) -> str:
    return "".join(str(k) for k in every_cell(SPACE.num_edges, len(SPACE.ops))[index].tolist())


def task_rows(experience, target: str, costs: torch.Tensor, bounds: list[float], design_bounds: list[float],
              designs: dict) -> list[dict]:
    """Rows of one held-out task: every K, budget (None: unbudgeted) and method."""
    held = split(experience, task=target)
    rows = []
    for count in PROBE_COUNTS:
        # without probes only the transform matters: the grid is the transforms
        grid = [PredictorDesign(transform=t) for t in TRANSFORMS] if count == 0 else None
        design, means = choose_design(held.training, count, costs, design_bounds, grid)
        designs[f"{target}, K={count}"] = {"design": str(design), "leave-one-task-out": means}
        predictor = AccuracyPredictor(held.training, design)
        for number, bound in enumerate([None, *bounds], start=-1):
            fits = costs <= (math.inf if bound is None else bound)
            base = {"task": target, "probes": count, "budget": "none" if bound is None else number,
                    "max_flops_m": "" if bound is None else f"{bound:.6g}"}
            name = "constant prior" if count == 0 else "predictor"
            rows.append({**base, "method": name, "seed": 0,
                         **score_row(held.target_accuracy, costs, bound or math.inf,
                                     probed_proposal(predictor, held.target_accuracy, count, fits))})
            for seed in range(RANDOM_SEEDS if count else 0):
                rows.append({**base, "method": "best of K random probes", "seed": seed,
                             **score_row(held.target_accuracy, costs, bound or math.inf,
                                         best_random_probe(held.target_accuracy, fits, count, seed))})
    return rows


def latency_rows(experience, device: str, references: list[int], accuracy: dict[int, AccuracyPredictor],
                 cifar10: torch.Tensor, budgets: int, designs: dict, proxies: list[CellProxyScores],
                 device_number: int) -> tuple[list[dict], dict]:
    """Rows of one held-out device, and its predictors' summary. The latency design's leave-one-device-out ranks
    cells by the constant prior of the tasks other than CIFAR-10. `proxies`: one scorer per seed, for the
    training-free rows."""
    held = split(experience, device=device)
    measured = held.target_latency_ms
    prior = accuracy[0].predict(accuracy[0].prior_z)
    design, means = choose_latency_design(held.training, references, prior)
    designs[f"latency, {device}"] = {"design": str(design), "leave-one-device-out": means}
    profile = measured[references].tolist()
    learned = LatencyPredictor(held.training, design).adapt(references, profile, device, CONFIDENCE)
    additive_model = fit_latency(SPACE, [cell_genotype(k) for k in references], profile, device, CONFIDENCE)
    terms = cost_terms(cell_costs("nb201", 10, 3, 32), additive_model.term(SPACE))
    additive_guarded = terms["latency_ms"].of_cells(every_cell(SPACE.num_edges, len(SPACE.ops)))
    summary = {"device": device, "design": _design_text(design, learned.design),
               "spearman": f"{spearman(learned.predicted_ms, measured):.4f}",
               "spearman_additive": f"{spearman(additive_guarded, measured):.4f}",
               "guard": f"{learned.guard:.4f}", "guard_additive": f"{additive_model.guard:.4f}"}
    rows = []
    for number, bound in enumerate(quantile_bounds(measured, budgets)):
        base = {"device": device, "budget": number, "bound_ms": f"{bound:.6g}", "seed": 0}
        # the last two rows take the latency model apart: without its guard, and the measured latency itself
        for name, guarded, count in (("predictor, K=0 (constant prior)", learned.guarded_ms, 0),
                                     ("predictor, K=10", learned.guarded_ms, 10),
                                     ("additive latency, constant prior", additive_guarded, 0),
                                     ("predictor, K=10, no guard", learned.predicted_ms, 10),
                                     ("predictor, K=10, measured latency (oracle)", measured, 10)):
            proposed = probed_proposal(accuracy[count], cifar10, count, guarded <= bound)
            rows.append({**base, "method": name, **score_row(cifar10, measured, bound, proposed)})
        # where the device is at hand (`--device-profile auto`), the proposal is measured and, while over the bound,
        # the next best cell that fits the prediction is (supernet/latency.verified_derive, at most VERIFY_TRIES)
        for name, guarded in (("predictor, K=10, device at hand (guard, verified)", learned.guarded_ms),
                              ("predictor, K=10, device at hand (no guard, verified)", learned.predicted_ms)):
            rows.append({**base, "method": name, **score_row(cifar10, measured, bound,
                                                              _verified(accuracy[10], cifar10, measured, guarded,
                                                                        bound))})
        # training-free proxies over PROXY_DRAWS cells drawn (seed s) among those the guarded predictor lets through:
        # the same latency model as the predictor's rows, so that these rows differ in the accuracy ranking only
        fits = torch.nonzero(learned.guarded_ms <= bound).flatten()
        for seed, scorer in enumerate(proxies):
            generator = torch.Generator().manual_seed(1000 * seed + 10 * device_number + number)
            drawn = fits[torch.randint(len(fits), (PROXY_DRAWS,), generator=generator)].tolist() if len(fits) else []
            for proxy in PROXIES:
                proposed = scorer.best_of(proxy, GENOTYPES, drawn) if drawn else None
                rows.append({**base, "seed": seed, "method": f"{proxy}-{PROXY_DRAWS} over the cells predicted to fit",
                             **score_row(cifar10, measured, bound, proposed)})
    return rows, summary


def _verified(predictor: AccuracyPredictor, target: torch.Tensor, measured: torch.Tensor, predicted: torch.Tensor,
              bound: float) -> int | None:
    """The cell `search` keeps where the device is at hand: None if every try measured over the bound."""
    fits = predicted <= bound
    if not bool(fits.any()):
        return None
    scores = predictor.scores(probe_values(target, predictor.choose_probes(10, fits))).masked_fill(~fits, -math.inf)

    def decode(excluded: list[int]) -> int:
        return best_remaining(scores, excluded, "every cell predicted to fit was measured over the bound")

    try:
        return verified_derive(decode, lambda k: float(measured[k]), bound)[0]
    except InputError:
        return None


def _design_text(chosen, fitted) -> str:
    fixed = (f"{fitted.components} components, ridge {fitted.ridge:g}{', op counts' if fitted.op_counts else ''}"
             f"{', per-cell guard' if fitted.interval else ''}")
    return f"by profile's {chosen.by_profile}: {fixed}" if chosen.by_profile else fixed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nats", default=str(SHARED / "nb201" / "nats_bench.csv"))
    parser.add_argument("--hw360", default=str(SHARED / "hardware" / "nb201_hw_nas_bench_360.csv"))
    parser.add_argument("--help-latency", default=str(SHARED / "hardware" / "nb201_latency_help.csv"))
    parser.add_argument("--measured", nargs="*",
                        default=[str(CPU_LATENCY)],
                        help="more device CSVs (arch,<device>_ms, all cells), held out in turn as well")
    parser.add_argument("--cifar10-train", default=str(SHARED / "cifar10_train.npz"),
                        help="the training images the training-free proxies score cells on (never the test images)")
    parser.add_argument("--proxy-seeds", type=int, default=3)
    parser.add_argument("--data", default=str(ROOT / "docs" / "results" / "data" / "predictors"))
    args = parser.parse_args()
    experience = load_experience(args.nats, args.hw360, args.help_latency, tuple(args.measured))
    costs = cost_terms(cell_costs("nb201", 10, 3, 32))["flops_m"].of_cells(every_cell(SPACE.num_edges,
                                                                                       len(SPACE.ops)))
    designs: dict = {}
    tasks = []
    for target in TASKS:
        tasks += task_rows(experience, target, costs, quantile_bounds(costs, 5), quantile_bounds(costs, 5), designs)
        print(f"tasks: {target} held out", flush=True)
    flops = task_rows(experience, "cifar10", costs, quantile_bounds(costs, 10), quantile_bounds(costs, 5), designs)
    print("flops: CIFAR-10 under 10 budgets", flush=True)
    held = split(experience, task="cifar10")
    accuracy = {}  # K -> CIFAR-10's predictor, its design the one chosen for flops.csv
    for count in (0, 10):
        grid = [PredictorDesign(transform=t) for t in TRANSFORMS] if count == 0 else None
        accuracy[count] = AccuracyPredictor(held.training, choose_design(held.training, count, costs,
                                                                         quantile_bounds(costs, 5), grid)[0])
    references = [cell_index(g) for g in reference_cells(SPACE, 20)]
    help_devices = [d for d in experience.latency_ms if not d.startswith(("pi5_", "pixel_"))]  # HELP's and --measured
    images = match_format(load_dataset(f"npz:{args.cifar10_train}", "train"), 3, PROXY_IMAGE_SIZE)
    proxies = [CellProxyScores(images, seed) for seed in range(args.proxy_seeds)]
    latency, devices = [], []
    for number, device in enumerate(help_devices):
        rows, summary = latency_rows(experience, device, references, accuracy, held.target_accuracy, 10, designs,
                                     proxies, number)
        latency += rows
        devices.append(summary)
        print(f"latency: {device} held out (Spearman {summary['spearman']}, additive {summary['spearman_additive']})",
              flush=True)
    data = Path(args.data)
    write_rows(data / "tasks.csv", tasks)
    write_rows(data / "flops.csv", flops)
    write_rows(data / "latency.csv", latency)
    write_rows(data / "devices.csv", devices)
    atomic_write_text(data / "designs.json", json.dumps(designs, indent=1) + "\n")
    print(predictor_tables(data))


if __name__ == "__main__":
    main()
