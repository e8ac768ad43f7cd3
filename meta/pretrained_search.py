"""`search --meta pretrained`: a cell for a new task from the pretrained meta-model that ships (meta/pretrained.py),
in well under a second on a fresh clone, no tables and no meta-run needed.

    task (its images and/or K probe accuracies) -> z -> f(cell, z) over every cell -> the best that fits the budget

The task is described by what the user has:
- probes (`--probe-accuracies FILE`, a CSV arch,accuracy of K cells trained on the task): they fit z
  (meta/accuracy_predictor.py); the proposal rests on those K trainings, which the user paid for;
- images (`--dataset`): they give the classes and channels the budget's evaluation network is costed for. They do not
  condition z: none of the earlier tasks the model learnt from has images here, so there is nothing to learn an image
  embedding from; with images alone the proposal is the constant prior of the earlier tasks, and the log says so.
A budget bounds the evaluation network's parameters and FLOPs (counted) and its latency on a device (the pretrained
latency predictor adapted to the device's profile, with its guard). Where the device is at hand (`auto`), the proposal
is measured with the profile's protocol and, while over the bound, the next best cell is (supernet/latency.py).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict
from typing import Any

import torch

from image_sets import load_dataset
from run_kit import InputError
from run_kit.device import pick_device, seed_everything
from run_kit.files import atomic_write_text, save_checkpoint
from run_kit.run_dir import RunDir
from supernet.costs import Budget, best_remaining, cell_costs, cells_within, cells_without_ops, cost_terms
from supernet.latency import TimingProtocol, device_profile, verified_derive
from supernet.verify import verify_candidates

from .experience import SPACE, cell_genotype, cell_index
from .meta_search import MetaSearchConfig
from .pretrained import PRETRAINED_FILE, load_pretrained
from .probes import read_probe_accuracies

PRETRAINED = "pretrained"
TABLE_FORMAT = (10, 3)  # classes and channels a budget is costed for when no --dataset gives them (the tables')
MIN_PROFILE_CELLS = 20


def run_pretrained_search(config: MetaSearchConfig, run: RunDir, model_file: str = str(PRETRAINED_FILE)
                          ) -> dict[str, Any]:
    """Propose a cell with the pretrained model and write the run directory (config, log, metrics, genotype.json,
    checkpoint). Every input is checked before the run directory is made: bad input leaves nothing behind."""
    started = time.perf_counter()
    if config.space not in (None, SPACE.name):
        raise InputError(f"--meta pretrained proposes {SPACE.name} cells; --space {config.space} has no pretrained "
                         f"model")
    if config.dataset is None and config.probe_accuracies is None:
        raise InputError("--meta pretrained needs the task described: --dataset DATA, --probe-accuracies FILE, or "
                         "both")
    if config.adapt_steps:
        raise InputError("--adapt-steps does not apply to --meta pretrained: it trains no supernet")
    if config.verify < 0 or config.verify_epochs < 1:
        raise InputError(f"--verify must be 0 or more and --verify-epochs at least 1, got {config.verify} and "
                         f"{config.verify_epochs}")
    if config.verify and config.dataset is None:
        raise InputError("--verify K needs --dataset: the K best predicted cells are trained on its training images")
    config.check_costing()
    run.check(resume=False)
    seed_everything(config.seed)
    device = pick_device(config.device)
    allowed = cells_without_ops(SPACE, config.exclude_ops)
    model = load_pretrained(model_file)
    probes: dict[int, float] = {}
    if config.probe_accuracies is not None:
        probes = {cell_index(SPACE.from_text(text)): value
                  for text, value in read_probe_accuracies(config.probe_accuracies, SPACE).items()}
    data_seconds = 0.0
    if config.dataset is not None:  # read for its format only (the proposal's seconds leave the reading out)
        data_started = time.perf_counter()
        data = load_dataset(config.dataset, "train", config.data_root, config.download)
        num_classes, channels, task = data.num_classes, data.channels, data.name
        data_seconds = time.perf_counter() - data_started
    else:
        (num_classes, channels), task = TABLE_FORMAT, f"probes:{config.probe_accuracies}"
    fits, costs, latency, profile = allowed.clone(), None, None, None
    budget = config.budget()
    if budget.active:
        costs = cell_costs(SPACE.name, num_classes, channels, config.budget_image_size)
        # the counted bounds here; a latency bound below, on the pretrained latency predictor
        fits &= cells_within(cost_terms(costs), Budget(budget.max_params_m, budget.max_flops_m), SPACE)
        if budget.max_latency_ms is not None:
            protocol = TimingProtocol.here(device, config.latency_threads, config.latency_memory_format)
            profile = device_profile(config.device_profile, SPACE, num_classes, channels, config.budget_image_size,
                                     protocol, config.latency_confidence)
            if len(profile.cells) < MIN_PROFILE_CELLS:
                raise InputError(f"device profile {config.device_profile} has {len(profile.cells)} cells; the "
                                 f"pretrained latency predictor needs at least {MIN_PROFILE_CELLS}")
            latency = model.latency().adapt([cell_index(c) for c in profile.cells], profile.latencies_ms,
                                            profile.model.source, config.latency_confidence)
            fits &= latency.guarded_ms <= budget.max_latency_ms
    if not bool(fits.any()):
        where = f" in {costs.describe()}" if costs is not None else ""
        raise InputError(f"no cell{' without ' + ', '.join(config.exclude_ops) if config.exclude_ops else ''} meets "
                         f"{budget.describe() if budget.active else 'the request'}{where}")
    predictor = model.accuracy(len(probes))
    scores = predictor.scores(probes).masked_fill(~fits, -math.inf)
    if config.verify:
        candidates = torch.argsort(scores, descending=True, stable=True)[:config.verify]
        candidates = candidates[torch.isfinite(scores[candidates])].tolist()
    # a verification that ends in one line (every candidate over the bound) leaves nothing behind
    with run.claim(resume=False, discard_on_input_error=True):
        run.save_config({**asdict(config), "space": SPACE.name, "model_file": str(model_file),
                         "costed_for": {"num_classes": num_classes, "channels": channels,
                                        "image_size": config.budget_image_size},
                         "model_record": {k: model.record.get(k) for k in ("held_out_task", "held_out_devices",
                                                                            "trained_tasks", "command")}})
        log = run.logger("search")
        try:
            if config.dataset is not None and not probes:
                log.info("the images give the costed format only; none of the model's earlier tasks has images "
                         "to learn an image embedding from, so this is the constant prior of the earlier tasks "
                         f"({', '.join(model.tasks)}); --probe-accuracies conditions it")
            row: dict[str, Any] = {"probes": len(probes), "cells_that_fit": int(fits.sum())}
            order = None  # the verified order of the candidates (None: the predictor's scores)
            if config.verify:
                verification = verify_candidates(SPACE, [cell_genotype(k) for k in candidates], data,
                                                 run.path / "verify", epochs=config.verify_epochs,
                                                 seed=config.seed, device=config.device)
                order = [candidates[k] for k in sorted(range(len(candidates)),
                                                       key=lambda k: (-verification.accuracies[k], k))]
                row.update({"verified": len(candidates), "verify_best_acc": verification.accuracies[
                    verification.best], "verify_seconds": round(sum(verification.seconds), 3)})
                log.info(f"verified the {len(candidates)} best predicted cells on 80 % of the training images "
                         f"({config.verify_epochs} epoch(s) each, {sum(verification.seconds):.1f}s): validation "
                         f"accuracies {', '.join(f'{a:.4f}' for a in verification.accuracies)}")
            chosen, verified = _decide(scores, order, profile, budget, num_classes, channels, config)
            genotype = cell_genotype(chosen)
            seconds = time.perf_counter() - started - data_seconds
            row.update({"proposal_is_probe": chosen in probes, "seconds": round(seconds, 3),
                        "data_seconds": round(data_seconds, 3)})
            if costs is not None:
                row.update(zip(("params_m", "flops_m"), (round(v, 6) for v in costs.of(genotype))))
            if latency is not None and profile is not None:
                row.update({"latency_ms": round(float(latency.predicted_ms[chosen]), 4),
                            "latency_bound_ms": round(float(latency.guarded_ms[chosen]), 4),
                            "latency_profile_seconds": round(profile.seconds, 3), **verified})
                if profile.protocol is not None:
                    row.update(profile.protocol.record())
                atomic_write_text(run.file("device_profile.csv"), profile.csv(SPACE))
                log.info(f"latency: the pretrained predictor adapted to {latency.source} "
                         f"({latency.design}), guard x{latency.guard:.3f}")
            row["genotype"] = SPACE.to_text(genotype)
            run.write_metrics([row])
            save_checkpoint({"kind": "taskdarts-pretrained-proposal", "space": SPACE.name,
                             "config": asdict(config), "genotype": SPACE.to_json(genotype),
                             "probes": {SPACE.to_text(cell_genotype(k)): v for k, v in probes.items()}},
                            run.checkpoint)
            atomic_write_text(run.file("genotype.json"), SPACE.dumps(genotype) + "\n")
            log.info(f"pretrained proposal for {task} from {len(probes)} probe(s) in {seconds:.2f}s: "
                     f"{row['genotype']}; {int(fits.sum()):,} of {len(fits):,} cells allowed"
                     + (f"; {row['params_m']:.4f} M parameters, {row['flops_m']:.2f} M FLOPs"
                        if costs is not None else "")
                     + (f", {row['latency_ms']:.3f} ms predicted ({row['latency_bound_ms']:.3f} ms guarded)"
                        if "latency_ms" in row else "")
                     + (f", {row['latency_measured_ms']:.3f} ms measured here" if verified else ""))
        finally:
            run.close_logger("search")
    return {"genotype": SPACE.to_json(genotype), **{k: v for k, v in row.items() if k != "genotype"}}


def _decide(scores: torch.Tensor, order: list[int] | None, profile, budget, num_classes: int, channels: int,
            config: MetaSearchConfig) -> tuple[int, dict[str, Any]]:
    """(the proposed cell, what measuring it here recorded): the best by the verified order, else by the scores;
    where the device is at hand, the first of them that measures within the bound (supernet/latency.py)."""
    def decode(excluded: list[int]) -> int:
        if order is not None:
            left = [k for k in order if k not in excluded]
            if not left:
                raise InputError(f"every verified cell measured over {budget.describe()} here")
            return left[0]
        return best_remaining(scores, excluded, f"every cell predicted to meet {budget.describe()} measured over it "
                                                f"here")

    if profile is None or profile.protocol is None:
        return decode([]), {}
    drifts: list[float] = []
    started = time.perf_counter()

    def measure(k: int) -> float:
        ms, drift = profile.measure_with_profile(SPACE, cell_genotype(k), num_classes, channels,
                                                 config.budget_image_size)
        drifts.append(drift)
        return ms

    chosen, measured_ms, tries = verified_derive(decode, measure, budget.max_latency_ms)
    return chosen, {"latency_measured_ms": round(measured_ms, 4), "latency_tries": tries,
                    "latency_profile_drift": round(drifts[-1], 4),
                    "latency_verify_seconds": round(time.perf_counter() - started, 3)}
