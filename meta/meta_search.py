"""Search on a new task from a meta-trained TaskDARTS: zero-shot (K = 0: the controller's logits, seconds), after
K adaptation steps from the task-conditioned start, or a full search of any gradient method warm-started at that
start (`--warm-start`: the task's weights and logits instead of a random supernet). Writes what a plain search
writes, plus the task embedding."""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, NamedTuple

import torch

from image_sets import ImageData
from run_kit import InputError
from run_kit.cli import option
from run_kit.config import flag
from run_kit.device import pick_device, seed_everything
from run_kit.files import atomic_write_text, save_checkpoint
from run_kit.run_dir import RunDir
from supernet.costs import (
    Budget,
    CellCosts,
    Term,
    budget_share,
    budgeted_derive,
    cell_costs,
    cost_terms,
    require_feasible,
)
from supernet.latency import (
    DEFAULT_CONFIDENCE,
    MEMORY_FORMATS,
    DeviceProfile,
    TimingProtocol,
    check_confidence,
    device_profile,
    verified_derive,
)
from supernet.regularizers import create_regularizer
from supernet.sampled_budget import CountedCosts, sampled_budgeted_derive
from supernet.search import SearchConfig, SearchStart, logits_entropy, run_search
from supernet.spaces import create_supernet

from .adapt import PIXEL_MEAN, PIXEL_STD, adapt, split_metrics
from .model import TaskDARTS, load_meta
from .tasks import Task, match_format, search_task, whole_dataset_task

MAX_BUDGET_IMAGE_SIZE = 1024  # costing builds the evaluation network and runs one image of this size through it
WARM_FIXED = ("space", "layers", "init_channels", "image_size", "precision")
"""What a warm-started search takes from its meta-checkpoint: the supernet's shape and the image format."""


@dataclass
class MetaSearchConfig:
    """Everything a meta-model's proposal for a task reads (`search --meta`, and the zero-shot and pretrained proposer
    families): which meta-model, which task, adaptation steps, and the budget its cell must meet. Its fields generate
    the command's flags (run_kit/cli.py); a run directory's config.yaml records them."""

    meta: str = option(help="meta-train checkpoint or run directory, or `pretrained`: the meta-model that ships "
                            "(nb201; no meta-run needed)", metavar="META_CKPT")
    dataset: str | None = option("digits", "the task's data set (None: only with `pretrained`, the task then "
                                           "described by its probes)")
    adapt_steps: int = option(0, "0: zero-shot; K: K adaptation steps")
    space: str | None = option(None, "the space the proposal must be in (None: the meta-checkpoint's)")
    seed: int = option(0)
    data_root: str = option("data", "where torchvision data sets live")
    download: bool = option(False, "let torchvision download the set")
    max_images_per_class: int | None = option(None, "the task's images per class at most (None: all)")
    max_params_m: float | None = option(None, "the proposal's evaluation network (nb201: C=16, N=5) has at most P M "
                                              "parameters (the most likely cell that fits; exit 2 when none does)",
                                        metavar="P")
    max_flops_m: float | None = option(None, "at most F M multiply-adds", metavar="F")
    max_latency_ms: float | None = option(None, "at most L ms latency, predicted from --device-profile", metavar="L")
    device_profile: str = option("auto", "with --max-latency-ms: a CSV arch,latency_ms of measured cells, or auto: "
                                         "the reference cells measured on this machine", metavar="auto|FILE")
    latency_confidence: float = option(DEFAULT_CONFIDENCE, "with --max-latency-ms: the budget bounds the prediction "
                                       "times a guard chosen from the profile so that a cell meets it as measured "
                                       "with probability ~Q (needs 19 profile cells; 0: the bare prediction)",
                                       metavar="Q")
    latency_threads: int = option(0, "with --device-profile auto: time cells with N CPU threads (0: PyTorch's count "
                                     "here; recorded in metrics.csv)", metavar="N")
    latency_memory_format: str = option("contiguous", "with --device-profile auto: the memory format cells are timed "
                                                      "in", choices=tuple(MEMORY_FORMATS))
    budget_image_size: int = option(32, "with a budget: the image size the evaluation network is costed at",
                                    metavar="PX")
    device: str = option("auto", "auto (CUDA if available), cpu, cuda, cuda:N")
    probe_accuracies: str | None = option(None, "with --meta pretrained: a CSV arch,accuracy of cells trained on the "
                                                "task (any scale where higher is better); they condition the proposal",
                                          metavar="FILE")
    exclude_ops: tuple[str, ...] = option((), "ops the proposal may not use", metavar="OP")
    verify: int = option(0, "with --meta pretrained --dataset: train the K best predicted cells that fit for "
                            "--verify-epochs on 80 % of the training images, keep the best on the other 20 %",
                         metavar="K")
    verify_epochs: int = option(5, "with --verify", metavar="E")

    def budget(self) -> Budget:
        return Budget(self.max_params_m, self.max_flops_m, self.max_latency_ms)

    def check_costing(self) -> None:
        """The costing options every proposal that takes a budget checks before any work: one line each."""
        if self.budget().active and not 1 <= self.budget_image_size <= MAX_BUDGET_IMAGE_SIZE:
            raise InputError(f"--budget-image-size must lie between 1 and {MAX_BUDGET_IMAGE_SIZE}, got "
                             f"{self.budget_image_size}")
        check_confidence(self.latency_confidence)


BUDGET_OPTIONS = ("max_params_m", "max_flops_m", "max_latency_ms", "device_profile", "latency_confidence",
                  "latency_threads", "latency_memory_format", "budget_image_size")
PRETRAINED_OPTIONS = ("probe_accuracies", "verify", "verify_epochs")


def check_search_flags(given: Mapping[str, Any]) -> str:
    """The `search` command's cross-flag rules, before any work: which options apply in which of its three modes (a
    search; `--meta RUN --warm-start`, a search from the meta-model's start; `--meta`, the meta-model's proposal).
    `given`: the options typed (SearchConfig's and MetaSearchConfig's) and the mode flags `config`, `method`,
    `resume`, `warm_start` where set, with their values. One line for the first rule broken; else the proposer family
    (supernet/proposers.py) the command runs: "search", "warm", "zero-shot" or "pretrained"."""
    def named(names) -> str:
        return ", ".join(flag(name) for name in names)

    meta, warm = given.get("meta"), "warm_start" in given
    proposal = meta is not None and not warm
    if "warm_start_weights" in given and not (meta and warm):
        raise InputError("--warm-start-weights needs --meta META_CKPT --warm-start: it chooses the weights a "
                         "warm-started search begins from")
    if "device_profile" in given and "max_latency_ms" not in given:
        raise InputError("--device-profile needs --max-latency-ms: the profile predicts the latency it bounds")
    if "latency_confidence" in given and "max_latency_ms" not in given:
        raise InputError("--latency-confidence needs --max-latency-ms: it guards the latency prediction a budget "
                         "bounds")
    timing = [name for name in ("latency_threads", "latency_memory_format") if name in given]
    if timing and ("max_latency_ms" not in given or given.get("device_profile", "auto") != "auto"):
        raise InputError(f"{named(timing)} need(s) --max-latency-ms with --device-profile auto: they set how this "
                         f"machine times cells")
    budgets = [name for name in BUDGET_OPTIONS if name in given]
    if budgets and not proposal:
        raise InputError(f"{named(budgets)} need(s) --meta META_CKPT without --warm-start: a budget constrains the "
                         f"meta-model's proposal")
    pretrained_only = [name for name in PRETRAINED_OPTIONS if name in given]
    if pretrained_only and meta != "pretrained":
        raise InputError(f"{named(pretrained_only)} need(s) --meta pretrained")
    if meta == "pretrained" and warm:
        raise InputError("--warm-start needs a meta-run (--meta RUN): the pretrained model has no supernet to start "
                         "from")
    proposal_options = {f.name for f in fields(MetaSearchConfig)} | {"space"}
    if proposal:
        ignored = sorted(flag(name) for name in given if name not in proposal_options | {"meta"})
        if ignored:
            raise InputError(f"{', '.join(ignored)} do(es) not apply to --meta searches: the meta-checkpoint fixes "
                             f"the supernet, image format and adaptation settings")
        return "pretrained" if meta == "pretrained" else "zero-shot"
    if "adapt_steps" in given:
        raise InputError("--adapt-steps needs --meta META_CKPT" + (" and no --warm-start: a warm-started search runs "
                                                                   "--epochs of its method" if meta else ""))
    if warm and not meta:
        raise InputError("--warm-start needs --meta META_CKPT, the meta-checkpoint whose start the search begins at")
    fixed = [name for name in WARM_FIXED if name in given]
    if warm and fixed:
        raise InputError(f"{named(fixed)} do(es) not apply to --warm-start: the meta-checkpoint fixes the supernet "
                         f"shape and image format")
    searching = {f.name for f in fields(SearchConfig)}
    proposal_only = [name for name in given if name in proposal_options - searching - {"meta"}]
    if proposal_only:
        raise InputError(f"{named(proposal_only)} appl(ies) to --meta proposals only")
    return "warm" if warm else "search"


class Costing(NamedTuple):
    """What a budgeted proposal is costed with: the counted costs, the terms the budget bounds (None where the space's
    cells are not enumerated: each candidate is counted, supernet/sampled_budget.py), and the device profile (with its
    latency model) when the budget has a latency."""

    costs: CellCosts | CountedCosts
    terms: dict[str, Term] | None
    profile: DeviceProfile | None


def costing(config: MetaSearchConfig, space, num_classes: int, channels: int, device: torch.device) -> Costing:
    """The cost models of a budget, checked feasible where cells are enumerated: one line when no cell fits. In a
    space whose cells are not (DARTS), each candidate is counted, and its latency predicted, one by one."""
    enumerated = space.one_op_per_edge
    costs = (cell_costs(space.name, num_classes, channels, config.budget_image_size) if enumerated
             else CountedCosts(space.name, num_classes, channels, config.budget_image_size))
    profile = None
    if config.max_latency_ms is not None:
        protocol = TimingProtocol.here(device, config.latency_threads, config.latency_memory_format)
        profile = device_profile(config.device_profile, space, num_classes, channels, config.budget_image_size,
                                 protocol, config.latency_confidence)
    if not enumerated:
        return Costing(costs, None, profile)
    terms = cost_terms(costs, None if profile is None else profile.model.term(space))
    require_feasible(terms, config.budget(), costs.describe())
    return Costing(costs, terms, profile)


def told_budget(meta: TaskDARTS, task: Task, terms: dict | None, budget: Budget) -> Task:
    """The task as the meta-model sees it under `budget`: a budget-aware model's z is told the share of cells the
    budget lets through (counted under `terms`, the enumerated cost terms); any other model ignores budgets."""
    if terms is None or not meta.config.model.budget_aware:
        return task
    return replace(task, budget_share=budget_share(meta.space, terms, budget))


def zero_shot_logits(meta: TaskDARTS, task: Task) -> dict[str, torch.Tensor]:
    """The controller's logits for the task's embedding: the zero-shot proposal before any adaptation or decoding."""
    meta.eval()
    with torch.no_grad():
        return meta.start(meta.embed([task])[0]).logits


def run_meta_search(config: MetaSearchConfig, run: RunDir, progress: bool = True) -> dict[str, Any]:
    if config.adapt_steps < 0:
        raise InputError(f"--adapt-steps must be 0 or more, got {config.adapt_steps}")
    config.check_costing()
    run.check(resume=False)
    device = pick_device(config.device)
    seed_everything(config.seed)
    meta = load_meta(config.meta, device, config.space)
    meta.space.check_excluded_ops(config.exclude_ops)
    mc = meta.config
    task = whole_dataset_task(config.dataset, mc.task.channels, mc.task.image_size, config.seed, config.data_root,
                              config.download, config.max_images_per_class, include_test=False, outer=False).to(device)
    # before the run directory exists: a budget no cell meets leaves nothing behind
    costing_started = time.perf_counter()  # the proposal's seconds include costing it (and profiling the device)
    costs = costing(config, meta.space, task.num_classes, mc.task.channels, device) if config.budget().active else None
    costing_seconds = time.perf_counter() - costing_started if costs is not None else 0.0
    if costs is not None:
        task = told_budget(meta, task, costs.terms, config.budget())
    # a budget no candidate meets is found only once the logits are final: such bad input leaves nothing behind
    with run.claim(resume=False, discard_on_input_error=True):
        run.save_config({**asdict(config), "space": mc.space, "image_size": mc.task.image_size,
                         "channels": mc.task.channels})
        log = run.logger("meta-search")
        try:
            return _propose(config, meta, task, costs, run, log, device, costing_seconds)
        finally:
            run.close_logger("meta-search")


def _propose(config: MetaSearchConfig, meta, task, costs: Costing | None, run: RunDir, log,
             device: torch.device, costing_seconds: float = 0.0) -> dict[str, Any]:
    """Embed the task, start from the controller's logits and the initializer's weights, adapt K steps, derive (the
    most likely cell within the budget, costed by `costs`, when there is one)."""
    mc = meta.config
    budget = config.budget()
    started = time.perf_counter()
    meta.eval()
    with torch.no_grad():
        z = meta.embed([task])[0]
        start = meta.start(z)
        # With a --dataset-loss head: how much the new data set looks like each meta-train data set (which data set's
        # teachers the proposal follows). Recorded, never used to propose.
        resembles = ({} if meta.dataset_head is None else
                     dict(zip(mc.task.tasks, [round(p, 4) for p in meta.dataset_head(z).softmax(-1).tolist()])))
    buffers = {name: b.detach().clone() for name, b in meta.supernet.named_buffers()}
    # A data set with more classes than meta-training had gets a grown classifier (adapt: load_weights); the
    # zero-shot proposal itself reads the task graph only, which takes any number of classes.
    work = create_supernet(meta.space, max(mc.task.max_classes, task.num_classes), mc.task.channels,
                           mc.model.init_channels, mc.model.layers, precision=mc.model.precision).to(device)
    regularizer = create_regularizer(mc.meta.logit_regularizer, meta.space, mc.meta.regularizer_weight)
    if regularizer is not None:
        regularizer.set_epoch(1, 1)  # the full lambda, where meta-training ended
    adapted = adapt(work, start.weights, buffers, start.logits, task, config.adapt_steps, mc.adapt, mc.meta.grad_clip,
                    config.seed, regularizer=regularizer)
    final_logits = {k: v.detach() for k, v in adapted.logits().items()}
    verified = None
    profile = None if costs is None else costs.profile
    sampled = {}
    if costs is None:
        genotype = meta.space.derive(final_logits, exclude_ops=config.exclude_ops)
    else:
        def decode(excluded):
            if costs.terms is not None:
                return budgeted_derive(meta.space, final_logits, costs.terms, budget, costs.costs.describe(),
                                       excluded, config.exclude_ops)
            cell, costed, drawn = sampled_budgeted_derive(meta.space, final_logits, costs.costs, budget,
                                                          config.exclude_ops, seed=config.seed,
                                                          latency=None if profile is None else profile.model,
                                                          exclude=excluded)
            sampled.update({"candidates_costed": costed, "candidates_drawn": drawn})
            return cell

        if profile is not None and profile.protocol is not None:  # the device is here: measure the proposal alike
            drifts = []
            verify_started = time.perf_counter()

            def measure(cell) -> float:
                ms, drift = profile.measure_with_profile(meta.space, cell, task.num_classes, mc.task.channels,
                                                         config.budget_image_size)
                drifts.append(drift)
                return ms

            genotype, measured_ms, tries = verified_derive(decode, measure, budget.max_latency_ms)
            verified = {"latency_measured_ms": round(measured_ms, 4), "latency_tries": tries,
                        "latency_profile_drift": round(drifts[-1], 4),
                        "latency_verify_seconds": round(time.perf_counter() - verify_started, 3)}
        else:
            genotype = decode(())
    seconds = time.perf_counter() - started + costing_seconds
    query_loss, query_acc = split_metrics(adapted.model, final_logits, task)
    cost = {}
    if costs is not None:
        cost = dict(zip(("params_m", "flops_m"), (round(v, 6) for v in costs.costs.of(genotype))))
        if profile is not None:
            cost["latency_ms"] = round(profile.model.predict(meta.space, genotype), 4)
            cost["latency_bound_ms"] = round(profile.model.bound(meta.space, genotype), 4)
            if profile.protocol is not None:
                cost.update({**profile.protocol.record(), "latency_profile_seconds": round(profile.seconds, 3)})
            cost.update(verified or {})
            atomic_write_text(run.file("device_profile.csv"), profile.csv(meta.space))
            log.info(profile.model.describe())
    cost.update(sampled)
    row = {"adapt_steps": config.adapt_steps, "query_loss": query_loss, "query_acc": query_acc,
           **{f"entropy_{k}": v for k, v in logits_entropy(final_logits).items()}, "seconds": round(seconds, 3),
           **cost, "genotype": meta.space.to_text(genotype)}
    run.write_metrics([row])
    save_checkpoint({"kind": "taskdarts-adapted", "space": meta.space.name, "config": asdict(config),
                     "arch": adapted.logits.state_dict(), "model": work.state_dict(),
                     "embedding": z.cpu(), "genotype": meta.space.to_json(genotype)}, run.checkpoint)
    embedding = {"task": task.name, "z": z.cpu().tolist(), **({"resembles": resembles} if resembles else {}),
                 **({"budget_share": task.budget_share} if mc.model.budget_aware else {})}
    atomic_write_text(run.file("embedding.json"), json.dumps(embedding) + "\n")
    atomic_write_text(run.file("genotype.json"), meta.space.dumps(genotype) + "\n")
    nearest = max(resembles, key=resembles.get) if resembles else None
    log.info(f"{'zero-shot' if config.adapt_steps == 0 else f'{config.adapt_steps}-step'} TaskDARTS search on "
             f"{task.name} ({task.num_classes} classes) in {seconds:.1f}s: supernet query accuracy "
             f"{query_acc:.4f}, genotype {row['genotype']}"
             + (f"; resembles {nearest} (p {resembles[nearest]:.2f})" if nearest else "")
             + (f"; {budget.describe()} in {costs.costs.describe()}: {cost['params_m']:.4f} M parameters, "
                f"{cost['flops_m']:.2f} M FLOPs" if costs is not None else "")
             + (f", {cost['latency_ms']:.3f} ms predicted ({cost['latency_bound_ms']:.3f} ms guarded)"
                if "latency_ms" in cost else "")
             + (f", {cost['latency_measured_ms']:.3f} ms measured here (cell {cost['latency_tries']} of those tried)"
                if verified else ""))
    return {"genotype": meta.space.to_json(genotype), "query_acc": query_acc, "seconds": round(seconds, 3), **cost}


def warm_search(config: SearchConfig, data: ImageData | None, run: RunDir, resume: bool = False,
                stop_after_epoch: int | None = None, progress: bool = True,
                expect_space: str | None = None) -> dict[str, Any]:
    """A full search from the meta-checkpoint `config.warm_start_from`'s start for this data set: its supernet shape
    and image format (WARM_FIXED), the initializer's weights for the task and the controller's logits. The task is
    embedded from the search's weight half, the images its weight steps train on: `data` (None: the config's data
    set's training split), brought to the meta-model's format. `expect_space`: refuse a checkpoint of another space
    (a comparison's); the command's own search takes the checkpoint's."""
    device = pick_device(config.device)
    meta = load_meta(config.warm_start_from, device, expect_space)
    mc = meta.config
    config = replace(config, space=mc.space, layers=mc.model.layers, init_channels=mc.model.init_channels,
                     image_size=mc.task.image_size, precision=mc.model.precision)
    config.validate()
    data = match_format(config.load("train") if data is None else data, mc.task.channels, mc.task.image_size)
    seed_everything(config.seed)
    start = task_start(meta, data, config.seed, config.warm_start_weights)
    return run_search(config, data, run, resume, stop_after_epoch, progress, start)


def task_start(meta: TaskDARTS, data: ImageData, seed: int, weights: str = "task") -> SearchStart:
    """The meta-model's start for a data set, embedded from its first half (a search's weight half, same seed), with
    the weights `weights` names (supernet/search.py WARM_START_WEIGHTS): the initializer's for this task, the base
    supernet's, or none (the logits alone)."""
    task = search_task(data, seed, f"whole:{data.name}").to(next(meta.parameters()).device)
    meta.eval()
    with torch.no_grad():
        z = meta.embed([task])[0]
        start = meta.start(z)
    logits = {k: v.detach().clone() for k, v in start.logits.items()}
    embedding = {"task": task.name, "z": z.cpu().tolist(), "weights": weights}
    files = {"embedding.json": json.dumps(embedding) + "\n"}
    if weights == "none":
        return SearchStart(None, None, logits, None, None, files=files)
    chosen = start.weights if weights == "task" else dict(meta.supernet.named_parameters())
    buffers = {name: b.detach().clone() for name, b in meta.supernet.named_buffers()}
    return SearchStart({k: v.detach().clone() for k, v in chosen.items()}, buffers, logits, PIXEL_MEAN, PIXEL_STD,
                       files=files)
