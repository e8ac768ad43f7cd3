"""A plain DARTS search: free architecture logits, bilevel optimisation, one genotype per epoch, exact resume.

`SearchJob` is one search; `run_search` runs it through the shared resumable driver (run_kit.loop), which writes
config.yaml, log.txt, metrics.csv and checkpoint.pt; the job adds genotype.json at every checkpoint.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import tqdm

from image_sets import (
    Augment,
    BatchStream,
    DataOptions,
    ImageData,
    Preprocess,
    channel_stats,
    ordered_batches,
    split_indices,
)
from image_sets.data import IN_MEMORY
from run_kit import InputError
from run_kit.cli import option
from run_kit.config import Config, require_at_least, require_choice, require_fraction, require_positive
from run_kit.device import PRECISIONS, pick_device, require_memory, require_model_fits, seed_everything
from run_kit.distributed import SINGLE, DistContext, init_distributed
from run_kit.loop import Job, check_finite, run_job
from run_kit.run_dir import RunDir
from search_spaces import SearchSpace
from search_spaces.operations import PARAMETER_FREE_OPS

from .accuracy import evaluate
from .bilevel import BilevelOptimizer
from .model import ArchLogits, load_weights
from .regularizers import REGULARIZERS, create_regularizer
from .relaxation import RELAXATIONS, create_relaxation, gumbel_tau
from .spaces import activation_bytes_lower_bound, create_supernet, get_space, space_names
from .training_free import PROXIES, TOP_FRACTION, TrainingFreeJob, top_cell_frequencies

WARM_START_WEIGHTS = {
    "task": "the initializer's weights for the task",
    "base": "the meta-learned base weights, not modulated by the task",
    "none": "its own random weights; only the logits are the meta-model's",
}
"""The weights a warm-started search begins from; "base" and "none" are the ablations of "task"."""


@dataclass
class SearchConfig(DataOptions, Config):
    """Everything that decides a search's result. Defaults: a first-order DARTS search of the NAS-Bench-201 space on
    the embedded `digits` (about 1 minute on 2 CPU cores) whose logits move enough in a short run to settle: logit lr
    0.3 annealed to 0 by cosine over 50 epochs (the DARTS reference uses 3e-4, constant, over 50 epochs of CIFAR-10,
    some 20,000 steps; digits gives 550). The methods of supernet/methods.py (`--method`) hold the reference settings;
    configs/darts_cifar10.yaml is the DARTS paper's run."""

    kind = "search"

    space: str = option("nb201", choices=space_names)
    epochs: int = option(50)
    order: int = option(1, "1: first-order, 2: unrolled second-order", choices=(1, 2))
    relax: str = option("softmax", "softmax (DARTS), hard Gumbel (GDAS) or Dirichlet (DrNAS)",
                        choices=lambda: tuple(RELAXATIONS))
    layers: int = option(2, "cells (darts) or cells per stage (nb201)")
    init_channels: int = option(8)
    batch_size: int = option(64)
    eval_batch_size: int = option(256, "batch size of the validation passes")
    seed: int = option(0)
    augment: bool = option(True, "random crop (padding = size/8), and horizontal flips for natural images")
    w_lr: float = option(0.025, "the weights' SGD learning rate (cosine-annealed to --w-lr-min)")
    w_lr_min: float = option(0.001)
    w_momentum: float = option(0.9)
    w_weight_decay: float = option(3e-4)
    grad_clip: float = option(5.0, "the weights' gradient-norm clip")
    logit_lr: float = option(0.3, "the architecture logits' Adam learning rate")
    logit_betas: tuple[float, float] = option((0.5, 0.999), "the logits' Adam betas", metavar="BETA")
    logit_weight_decay: float = option(1e-3)
    logit_init_std: float = option(1e-3, "the logits start as N(0, std^2)")
    logit_lr_schedule: str = option("cosine", "cosine: anneal the logit lr to 0 over the run, so a short search "
                                              "settles", choices=("constant", "cosine"))
    tau_max: float = option(10.0, "GDAS: the Gumbel temperature at the first epoch (annealed to --tau-min)")
    tau_min: float = option(0.1)
    partial_channels: int = option(1, "PC-DARTS: 1/K of the channels through the mixed ops (1: all, plain DARTS)",
                                   metavar="K")
    edge_normalization: bool = option(False, "PC-DARTS: per-edge weights, softmax over each node's inputs")
    logit_warmup_epochs: int = option(0, "train weights only for this many epochs first (PC-DARTS: 15 of 50)")
    logit_regularizer: str = option("none", "beta: beta-DARTS's beta-decay", choices=lambda: ("none", *REGULARIZERS))
    regularizer_weight: float = option(50.0, "the regularizer's lambda at the last epoch (ramped linearly from 0)")
    proxy: str | None = option(None, "training-free search: score --candidates random cells at initialisation, keep "
                                     "the best", choices=lambda: tuple(PROXIES))
    candidates: int = option(100, "cells a training-free search scores")
    channels_last: bool = option(True, "NHWC layout: 1.2-1.9x faster search steps on CPU "
                                       "(benchmarks/search_step.py)")
    recompute: bool = option(False, "recompute each cell's inside during backward: a third of the memory, ~1.5x "
                                    "the time")
    precision: str = option("fp32", "bf16: bfloat16 autocast of the forward pass (for GPUs; slower than fp32 on "
                                    "this CPU)", choices=PRECISIONS)
    warm_start_from: str | None = option(None, "a meta-checkpoint whose task-conditioned start the search begins at "
                                               "(search --meta RUN --warm-start sets it)")
    warm_start_weights: str = option("task", "with --warm-start: " + "; ".join(
        f"{k}: {v}" for k, v in WARM_START_WEIGHTS.items()), choices=tuple(WARM_START_WEIGHTS))
    exclude_ops: list[str] = option(default_factory=list, help="ops the derived cell may not use, in every method "
                                    "(e.g. a deployment target without a pooling kernel: avg_pool_3x3)", metavar="OP")
    device: str = option("auto", "auto (CUDA if available), cpu, cuda, cuda:N")

    def validate(self) -> None:
        super().validate()
        space = get_space(self.space)
        space.check_excluded_ops(self.exclude_ops)
        create_relaxation(self.relax)
        create_regularizer(self.logit_regularizer, space, self.regularizer_weight)
        if self.order not in (1, 2):
            raise InputError(f"--order must be 1 or 2, got {self.order}")
        if self.order == 2 and self.relax != "softmax":
            raise InputError("--order 2 needs --relax softmax: the unrolled step differentiates through the "
                             "relaxed mixture; hard (GDAS) and Dirichlet (DrNAS) sampling are first order")
        require_at_least(self, 1, "epochs", "layers", "init_channels", "batch_size", "eval_batch_size",
                         "partial_channels", "candidates")
        require_at_least(self, 0, "logit_warmup_epochs", "regularizer_weight")
        if self.init_channels % self.partial_channels:
            raise InputError(f"--partial-channels {self.partial_channels} must divide --init-channels "
                             f"{self.init_channels} (every cell's channels split into that many groups)")
        require_choice(self, "logit_lr_schedule", ("constant", "cosine"))
        require_choice(self, "warm_start_weights", WARM_START_WEIGHTS)
        if self.warm_start_from is None and self.warm_start_weights != "task":
            raise InputError("--warm-start-weights needs --meta META_CKPT --warm-start: it chooses the weights a "
                             "warm-started search begins from")
        if self.proxy is not None and self.proxy not in PROXIES:
            raise InputError(f"unknown --proxy '{self.proxy}'; known: {', '.join(PROXIES)}")
        require_positive(self, "w_lr", "logit_lr", "tau_max", "tau_min", "grad_clip")
        require_at_least(self, 0, "w_lr_min", "w_weight_decay", "logit_weight_decay", "logit_init_std")
        require_fraction(self, "w_momentum", "logit_betas")
        require_choice(self, "precision", PRECISIONS)
        if self.order == 2 and self.precision != "fp32":
            raise InputError("--order 2 needs --precision fp32: its finite-difference step moves each weight by about "
                             "1e-5 of its size, far below bfloat16's resolution (4e-3)")
        if self.w_lr_min > self.w_lr:
            raise InputError(f"--w-lr-min {self.w_lr_min} exceeds --w-lr {self.w_lr}")

    def next_steps(self, run_path) -> list[str]:
        """What a user does with a finished search: retrain its genotype on the same data, draw its cells."""
        if self.dataset.startswith(IN_MEMORY):  # no command can load these images by name
            retrain = (f"retrain it: python train.py retrain --genotype {run_path} --dataset D --out "
                       f"{run_path}/retrain, D the data set of the images it searched ({self.dataset})")
        else:
            data = f" --dataset {self.dataset}" + (f" --image-size {self.image_size}" if self.image_size else "")
            retrain = f"retrain it: python train.py retrain --genotype {run_path}{data} --out {run_path}/retrain"
        return [retrain, f"draw it:    python train.py visualize {run_path} --out {run_path}/cells"]


@dataclass
class SearchStart:
    """Where a warm-started search begins instead of a random supernet and near-uniform logits: a meta-model's
    task-conditioned weights, buffers and architecture logits (meta/meta_search.py), and the fixed pixel
    normalisation those weights were learned under (a data set's own statistics would shift every input). Without
    weights (`--warm-start-weights none`: the logits alone) the supernet is the search's own random one, normalised
    by the data set's statistics as a search from scratch is."""

    weights: dict[str, torch.Tensor] | None
    buffers: dict[str, torch.Tensor] | None
    logits: dict[str, torch.Tensor]
    pixel_mean: float | None
    pixel_std: float | None
    files: dict[str, str] = field(default_factory=dict)  # written into the run directory when the search starts


def logits_entropy(logits: dict[str, torch.Tensor], cell_types=None, mixing=None) -> dict[str, float]:
    """Mean per-edge entropy (nats) of the op weights mixing(logits) (default softmax) for each cell type (default:
    every entry); log(num_ops) is uniform, 0 is one-hot."""
    out = {}
    for cell_type in cell_types or logits:
        value = logits[cell_type].detach().float()
        p = mixing(value) if mixing is not None else torch.softmax(value, dim=-1)
        out[cell_type] = float(-(p * p.clamp_min(1e-12).log()).sum(-1).mean())
    return out


def parameter_free_share(space: SearchSpace, logits: dict[str, torch.Tensor], mixing) -> dict[str, float]:
    """Mean over edges of the op weight on parameter-free ops (none, skip, pools): the collapse DARTS is known for
    shows as this share rising towards 1."""
    free = [k for k, op in enumerate(space.ops) if op in PARAMETER_FREE_OPS]
    return {t: float(mixing(logits[t].detach().float())[:, free].sum(-1).mean()) for t in space.cell_types}


class SearchJob(Job):
    """The objects of one search, built identically for a fresh run and for a resume."""

    name, unit = "search", "epoch"

    def __init__(self, config: SearchConfig, data: ImageData, device: torch.device, dist: DistContext = SINGLE,
                 start: SearchStart | None = None):
        config.validate()
        if (start is None) != (config.warm_start_from is None):
            raise ValueError("a search has a start exactly when its config names warm_start_from")
        self.config, self.dist, self.device = config, dist, device
        self.space: SearchSpace = get_space(config.space)
        self.space.check_image_size(data.image_size)
        self.data = data.to(device)
        self.weight_indices, self.logit_indices = split_indices(len(data), [0.5, 0.5], seed=config.seed)
        self.batch_size = min(config.batch_size, len(self.weight_indices), len(self.logit_indices))
        dist.check_batch(self.batch_size)
        mean, std = (channel_stats(data) if start is None or start.weights is None else
                     (torch.full((data.channels,), start.pixel_mean), torch.full((data.channels,), start.pixel_std)))
        augment = Augment(crop_padding=max(data.image_size // 8, 1), hflip=data.hflip) if config.augment else Augment()
        self.train_preprocess = Preprocess(mean, std, augment, config.channels_last)
        self.eval_preprocess = Preprocess(mean, std, channels_last=config.channels_last)
        shard = (dist.rank, dist.world_size)
        self.weight_stream = BatchStream(self.data, self.weight_indices, self.batch_size, config.seed * 2 + 1,
                                         self.train_preprocess, augment=config.augment, shard=shard)
        self.logit_stream = BatchStream(self.data, self.logit_indices, self.batch_size, config.seed * 2 + 2,
                                        self.train_preprocess, augment=config.augment, shard=shard)
        self.relaxation = create_relaxation(config.relax, seed=config.seed)
        build = lambda: create_supernet(self.space, data.num_classes, data.channels, config.init_channels,  # noqa: E731
                                        config.layers, self.relaxation, config.partial_channels, config.recompute,
                                        config.precision)
        require_model_fits(build, "the supernet", device)
        require_memory(activation_bytes_lower_bound(self.space, config.init_channels, config.layers,
                                                    self.space.num_edges, self.batch_size, data.image_size),
                       f"a search step at batch {self.batch_size} and {data.image_size} px", device)
        self.model = build().to(device)
        self.arch = ArchLogits.random(self.space, config.logit_init_std, config.edge_normalization).to(device)
        if start is not None:  # the start's logits replace the op logits; PC-DARTS's edge logits stay as drawn
            if start.weights is not None:
                try:
                    load_weights(self.model, start.weights, start.buffers)
                except (KeyError, RuntimeError):
                    raise InputError("the meta-checkpoint's supernet weights do not fit this search's supernet (a "
                                     "--partial-channels supernet has other weight shapes)") from None
            with torch.no_grad():
                for key, value in start.logits.items():
                    self.arch.logits[key].copy_(value)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.weight_optimizer = torch.optim.SGD(self.model.parameters(), config.w_lr, momentum=config.w_momentum,
                                                weight_decay=config.w_weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.weight_optimizer, config.epochs,
                                                                    eta_min=config.w_lr_min)
        self.logit_optimizer = torch.optim.Adam(self.arch.parameters(), config.logit_lr, betas=config.logit_betas,
                                                weight_decay=config.logit_weight_decay)

        self.regularizer = create_regularizer(config.logit_regularizer, self.space, config.regularizer_weight)
        self.bilevel = BilevelOptimizer(self.model, self.arch, self.weight_optimizer, self.logit_optimizer,
                                        config.order, config.grad_clip, dist, self.regularizer)
        self.start = start
        self.total = config.epochs
        self.done = 0
        self.metrics: list[dict[str, Any]] = []

    def describe(self) -> str:
        batch = f"batch {self.batch_size}" + (f" (--batch-size {self.config.batch_size} is more than a half of the "
                                              f"data holds)" if self.batch_size < self.config.batch_size else "")
        return "; ".join([*self.data.notes, (
            f"search {self.config.space} on {self.data.name}: {len(self.data)} training images "
            f"({len(self.weight_indices)} weights / {len(self.logit_indices)} logits), {self.data.channels}x"
            f"{self.data.image_size}x{self.data.image_size}, {self.data.num_classes} classes, {batch}, device "
            f"{self.device}, {sum(p.numel() for p in self.model.parameters()) / 1e6:.3f} M supernet parameters"
            + (f", {self.dist.world_size} data-parallel processes" if self.dist.enabled else "")
            + (f", warm-started from {self.config.warm_start_from} with "
               f"{WARM_START_WEIGHTS[self.config.warm_start_weights]}" if self.start is not None else ""))])

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.done, "model": self.model.state_dict(), "arch": self.arch.state_dict(),
                "weight_optimizer": self.weight_optimizer.state_dict(),
                "logit_optimizer": self.logit_optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),

                "weight_stream": self.weight_stream.state_dict(), "logit_stream": self.logit_stream.state_dict(),
                "relaxation": self.relaxation.state_dict(), "metrics": self.metrics, "space": self.space.name,
                "genotype": self.space.to_json(self.genotype())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("space") != self.space.name:
            raise InputError(f"checkpoint is for the {state.get('space')} space, not {self.space.name}")
        try:
            self.model.load_state_dict(state["model"])
            self.arch.load_state_dict(state["arch"])
        except RuntimeError:
            raise InputError("the checkpoint's supernet does not match this configuration (other --layers, "
                             "--init-channels, classes or channels)") from None
        self.weight_optimizer.load_state_dict(state["weight_optimizer"])
        self.logit_optimizer.load_state_dict(state["logit_optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.weight_stream.load_state_dict(state["weight_stream"])
        self.logit_stream.load_state_dict(state["logit_stream"])
        self.relaxation.load_state_dict(state["relaxation"])
        self.done = state["epoch"]
        self.metrics = list(state["metrics"])

    def genotype(self):
        return self.space.derive(self.arch(), self.relaxation.expected, self.config.exclude_ops)

    def logit_lr(self, epoch: int) -> float:
        """constant, or cosine: logit_lr * (1 + cos(pi * epoch / epochs)) / 2, reaching 0 after the last epoch."""
        if self.config.logit_lr_schedule == "constant":
            return self.config.logit_lr
        return self.config.logit_lr * 0.5 * (1 + math.cos(math.pi * epoch / self.config.epochs))

    def run_unit(self, progress: bool) -> dict[str, Any]:
        """One epoch: a pass over the weight half, each step a logits step then a weight step."""
        config, started = self.config, time.time()
        lr, logit_lr = self.scheduler.get_last_lr()[0], self.logit_lr(self.done)
        for group in self.logit_optimizer.param_groups:
            group["lr"] = logit_lr
        if self.relaxation.hard:
            self.relaxation.tau = gumbel_tau(self.done, config.epochs, config.tau_max, config.tau_min)
        if self.regularizer is not None:
            self.regularizer.set_epoch(self.done, config.epochs)
        update_logits = self.done >= config.logit_warmup_epochs
        self.model.train()
        sums = {"logit_loss": 0.0, "weight_loss": 0.0, "weight_acc": 0.0}
        steps = self.weight_stream.batches_per_pass
        for step in tqdm(range(steps), desc=f"search epoch {self.done + 1}/{config.epochs}", leave=False,
                         disable=not progress):
            result = self.bilevel.step(next(self.weight_stream), next(self.logit_stream), lr, update_logits)
            where = f"epoch {self.done + 1}, step {step + 1}"
            check_finite([v for v in result.values() if v is not None], "training loss", where)
            check_finite(self.arch().values(), "architecture logits", where)
            for key in sums:
                sums[key] += result[key] or 0.0
        self.scheduler.step()
        self.model.eval()
        logits = {k: v.detach() for k, v in self.arch().items()}
        val_loss, val_acc = evaluate(lambda x: self.model(x, logits),
                                     ordered_batches(self.data, self.logit_indices, config.eval_batch_size,
                                                     self.eval_preprocess))
        self.done += 1
        row: dict[str, Any] = {"epoch": self.done, "lr": lr, "logit_lr": logit_lr,
                               "train_loss": sums["weight_loss"] / steps,
                               "train_acc": sums["weight_acc"] / steps,
                               "logit_loss": sums["logit_loss"] / steps if update_logits else "",  # "" in warm-up
                               "val_loss": val_loss, "val_acc": val_acc}
        if self.relaxation.hard:
            row["tau"] = self.relaxation.tau
        if self.regularizer is not None:
            row["regularizer_weight"] = self.regularizer.weight
        row.update({f"entropy_{k}": v for k, v in logits_entropy(logits, self.space.cell_types,
                                                                   self.relaxation.expected).items()})
        row.update({f"param_free_{k}": v for k, v in parameter_free_share(self.space, logits,
                                                                          self.relaxation.expected).items()})
        row["seconds"] = time.time() - started
        row["genotype"] = self.space.to_text(self.genotype())
        self.metrics.append(row)
        return row

    def log_line(self, row: dict[str, Any]) -> str:
        return (f"epoch {row['epoch']}/{self.config.epochs} train_acc {row['train_acc']:.4f} val_acc "
                f"{row['val_acc']:.4f} ({row['seconds']:.1f}s) genotype {row['genotype']}")

    def replicated(self) -> tuple[str, list[torch.Tensor]]:
        return "architecture logits and supernet weights", [*self.arch.parameters(), *self.model.parameters()]

    def start_files(self) -> dict[str, str]:
        return self.start.files if self.start is not None else {}

    def checkpoint_files(self) -> dict[str, str]:
        return {"genotype.json": self.space.dumps(self.genotype()) + "\n"}

    def final_lines(self, run_path) -> list[str]:
        return self.config.next_steps(run_path)

    def result(self) -> dict[str, Any]:
        return {"epoch": self.done, "batch_size": self.batch_size, "genotype": self.space.to_json(self.genotype()),
                "val_acc": self.metrics[-1]["val_acc"] if self.metrics else None,
                "search_seconds": round(sum(row["seconds"] for row in self.metrics), 2)}


@dataclass(frozen=True)
class SearchOutcome:
    """How a search run in memory ended: its cell, its last validation accuracy (None for a training-free search,
    which trains nothing) and its end as per-edge op weights (per cell type [edges][ops]): a gradient search's
    relaxed weights of its final logits, a training-free search's op shares among its best tenth of scored cells."""

    genotype: Any
    val_acc: float | None
    op_weights: dict[str, list[list[float]]]


def search_in_memory(config: SearchConfig, data: ImageData, device: torch.device,
                     fits: Callable[[Any], bool] | None = None, progress: bool = False) -> SearchOutcome:
    """A whole search with no run directory (no checkpoints: one that is cut short is redone), for callers that run
    many short searches inside a job of their own (the teachers). `fits`: the cells a training-free search may pick
    (a budget). The caller seeds: the supernet's initial weights come from the global generator."""
    if fits is not None and config.proxy is None:
        raise ValueError("only a training-free search takes a `fits` constraint")
    search: SearchJob | TrainingFreeJob = (TrainingFreeJob(config, data, device, fits=fits) if config.proxy is not None
                                           else SearchJob(config, data, device))
    while search.done < search.total:
        search.run_unit(progress)
    space, genotype = search.space, search.genotype()
    if isinstance(search, TrainingFreeJob):
        return SearchOutcome(genotype, None, top_cell_frequencies(space, search.metrics, TOP_FRACTION))
    weights = {k: search.relaxation.expected(v.detach().float()).cpu().tolist()
               for k, v in search.arch().items() if k in space.cell_types}
    return SearchOutcome(genotype, float(search.metrics[-1]["val_acc"]), weights)


def run_search(config: SearchConfig, data: ImageData, run: RunDir, resume: bool = False,
               stop_after_epoch: int | None = None, progress: bool = True,
               start: SearchStart | None = None) -> dict[str, Any]:
    """Search, writing config.yaml, log.txt, metrics.csv, checkpoint.pt and genotype.json into `run` each epoch.

    `stop_after_epoch` ends the process cleanly after that epoch (a time-sliced job); `--resume` continues it and
    ends exactly where an uninterrupted run would.
    """
    config.validate()
    dist, device = init_distributed(pick_device(config.device))
    seed_everything(config.seed)
    run.check(resume)
    if config.proxy is not None:
        if start is not None:
            raise InputError("--warm-start needs a gradient search: a training-free method scores cells at "
                             "their initialisation and has no weights to start from")
        job: Job = TrainingFreeJob(config, data, device, dist)
        return run_job(job, run, resume, stop_after_epoch, progress, every=max(1, config.candidates // 10), dist=dist)
    job = SearchJob(config, data, device, dist, start)
    return run_job(job, run, resume, stop_after_epoch, progress, dist=dist)
