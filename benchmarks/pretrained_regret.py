"""Score the pretrained meta-model that ships (meta/pretrained/nb201_predictor.pt) on its held-out task and devices.

    python benchmarks/pretrained_regret.py      # ~1 min; deterministic; then python benchmarks/render_results.py

CIFAR-10 is the held-out task (the model never learnt from its column): its column is read only to score and, with
K > 0, as the K probe accuracies a user would measure on the cells the model asks for (the cost of the proposal is
then those K trainings). The pretrained proposal reads no images, so a search on the CIFAR-10 training images is
exactly this proposal for the 10-class 3x32x32 evaluation network. Budgets:
- 10 FLOPs budgets at the 5-95 % quantiles of that network's FLOPs over every cell;
- 10 latency budgets per held-out device (the model's three held-out HELP devices) at the 5-95 % quantiles of its
  measured latencies; the profile is the 20 reference cells' latencies from its column (a profile FILE), the guard
  at 0.95, and a proposal is scored as measured.
Beside the pretrained model, the same predictors on the tables' own columns (the training tasks and devices only): what
distilling the tables into the encoder costs. Then the FLOPs proposals again, made by `search --meta pretrained`'s own
code on the CIFAR-10 training images (cli.csv). Writes docs/results/data/pretrained/{flops,latency,cli}.csv.
"""
from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import torch

from evaluation.study_tables import pretrained_tables, write_rows
from meta.accuracy_predictor import AccuracyPredictor, probe_values, probed_proposal
from meta.experience import SPACE, cell_genotype, cell_index, load_experience, split
from meta.latency_predictor import LatencyPredictor
from meta.meta_search import MetaSearchConfig
from meta.pretrained import PRETRAINED_FILE, load_pretrained
from meta.pretrained_search import run_pretrained_search
from run_kit.run_dir import RunDir
from supernet.budget_scoring import quantile_bounds, score_fields
from supernet.costs import cell_costs, cost_terms, every_cell
from supernet.latency import reference_cells

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
CPU_LATENCY = ROOT / "docs" / "results" / "data" / "latency-budgets" / "nb201_latency_cpu.csv.gz"
PROBE_COUNTS = (0, 10, 20)
CONFIDENCE = 0.95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nats", default=str(SHARED / "nb201" / "nats_bench.csv"))
    parser.add_argument("--hw360", default=str(SHARED / "hardware" / "nb201_hw_nas_bench_360.csv"))
    parser.add_argument("--help-latency", default=str(SHARED / "hardware" / "nb201_latency_help.csv"))
    parser.add_argument("--model", default=str(PRETRAINED_FILE))
    parser.add_argument("--cifar10", default=str(SHARED / "cifar10_train.npz"), help="the CIFAR-10 training images")
    parser.add_argument("--data", default=str(ROOT / "docs" / "results" / "data" / "pretrained"))
    args = parser.parse_args()
    model = load_pretrained(args.model)
    held_devices = model.record["held_out_devices"]
    experience = load_experience(args.nats, args.hw360, args.help_latency, (CPU_LATENCY,))
    held = split(experience, task=model.record["held_out_task"])
    training = held.training.without(devices=tuple(held_devices))
    assert sorted(training.accuracy) == sorted(model.tasks) and sorted(training.latency_ms) == sorted(model.devices)
    target = held.target_accuracy
    flops = cost_terms(cell_costs(SPACE.name, 10, 3, 32))["flops_m"].of_cells(every_cell(SPACE.num_edges,
                                                                                          len(SPACE.ops)))
    predictors = {count: {"pretrained": model.accuracy(count),
                          "tables": AccuracyPredictor(training, model.design_for(count))} for count in PROBE_COUNTS}
    flops_rows = []
    for number, bound in enumerate([math.inf, *quantile_bounds(flops, 10)], start=-1):
        fits = flops <= bound
        for count in PROBE_COUNTS:
            for source, predictor in predictors[count].items():
                flops_rows.append({"budget": "none" if number < 0 else number,
                                   "max_flops_m": "" if number < 0 else f"{bound:.6g}", "source": source,
                                   "probes": count, **score_fields(target, flops, bound,
                                                                probed_proposal(predictor, target, count, fits))})
        print(f"flops: budget {number}", flush=True)
    references = [cell_index(g) for g in reference_cells(SPACE)]
    latency_rows = []
    for device in held_devices:
        measured = experience.latency_ms[device]
        profile = measured[references].tolist()
        models = {"pretrained": model.latency().adapt(references, profile, device, CONFIDENCE),
                  "tables": LatencyPredictor(training, model.latency_design).adapt(references, profile, device,
                                                                                   CONFIDENCE)}
        for number, bound in enumerate(quantile_bounds(measured, 10)):
            for source, latency in models.items():
                fits = latency.guarded_ms <= bound
                for count in (0, 10):
                    latency_rows.append({"device": device, "budget": number, "bound_ms": f"{bound:.6g}",
                                         "source": source, "probes": count,
                                         **score_fields(target, measured, bound,
                                                     probed_proposal(predictors[count][source], target, count, fits))})
        print(f"latency: {device}", flush=True)
    data = Path(args.data)
    write_rows(data / "flops.csv", flops_rows)
    write_rows(data / "latency.csv", latency_rows)
    write_rows(data / "cli.csv", cli_rows(args.cifar10, model, target, flops, quantile_bounds(flops, 10)))
    print(pretrained_tables(data))


def cli_rows(cifar10: str, model, target: torch.Tensor, flops: torch.Tensor, bounds: list[float]) -> list[dict]:
    """The same proposals as `search --meta pretrained` makes them on the CIFAR-10 training images (its data set
    gives the costed format; K = 10: the probes the model asks for, written as a probe file), scored alike: what the
    table rows above stand for, run through the command's own code."""
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for count in (0, 10):
            for number, bound in enumerate([math.inf, *bounds], start=-1):
                probes = {}
                if count:
                    predictor = model.accuracy(count)
                    probes = probe_values(target, predictor.choose_probes(count, flops <= bound))
                probe_file = Path(work) / f"probes-{count}-{number}.csv"
                probe_file.write_text("arch,accuracy\n" + "".join(f"{SPACE.to_text(cell_genotype(k))},{v}\n"
                                                                    for k, v in probes.items()))
                config = MetaSearchConfig(meta="pretrained", dataset=f"npz:{cifar10}",
                                          max_flops_m=None if number < 0 else bound,
                                          probe_accuracies=str(probe_file) if count else None)
                result = run_pretrained_search(config, RunDir(Path(work) / f"run-{count}-{number}"))
                proposed = cell_index(SPACE.from_json(result["genotype"]))
                rows.append({"budget": "none" if number < 0 else number, "probes": count,
                             "seconds": result["seconds"], **score_fields(target, flops, bound, proposed)})
    return rows


if __name__ == "__main__":
    main()
