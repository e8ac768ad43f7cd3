"""A plain DARTS search: free architecture logits, bilevel optimisation, one genotype per epoch, exact resume."""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from tqdm import tqdm

from search_spaces import SearchSpace, get_space
from search_spaces.errors import InputError

from .batches import Augment, BatchStream, ImageData, Preprocess, channel_stats, evaluate, ordered_batches, split_indices
from .bilevel import BilevelOptimizer
from .distributed import SINGLE, DistContext, init_distributed
from .model import ArchLogits, create_supernet
from .relaxation import create_relaxation, gumbel_tau
from .runtime import (RunDir, atomic_torch_save, atomic_write_text, config_from_dict, pick_device, require_at_least,
                      rng_state, seed_everything, set_rng_state, start_run)


@dataclass
class SearchConfig:
    """Everything that decides a search's result. Defaults: a small DARTS-space search on `digits` (about 2 min
    on 2 CPU cores) with the DARTS reference's optimiser settings; configs/darts_cifar10.yaml is the paper's run."""

    space: str = "darts"
    dataset: str = "digits"
    data_root: str = "data"
    download: bool = False
    image_size: int | None = None  # None keeps the data set's own size
    epochs: int = 8
    order: int = 1
    relax: str = "softmax"
    layers: int = 5
    init_channels: int = 8
    batch_size: int = 64
    eval_batch_size: int = 256
    seed: int = 0
    augment: bool = True  # random crop (padding = size/8), and horizontal flips for natural images
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    grad_clip: float = 5.0
    logit_lr: float = 3e-4
    logit_betas: tuple[float, float] = (0.5, 0.999)
    logit_weight_decay: float = 1e-3
    logit_init_std: float = 1e-3
    tau_max: float = 10.0
    tau_min: float = 0.1
    channels_last: bool = True  # NHWC convolutions: 1.2-1.9x faster search steps on CPU (benchmarks/search_step.py)
    device: str = "auto"

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SearchConfig":
        config = config_from_dict(cls, values, "search")
        config.logit_betas = tuple(config.logit_betas)  # YAML gives a list
        return config

    def validate(self) -> None:
        get_space(self.space)
        create_relaxation(self.relax)
        if self.order not in (1, 2):
            raise InputError(f"--order must be 1 or 2, got {self.order}")
        if self.order == 2 and self.relax != "softmax":
            raise InputError("--order 2 needs --relax softmax: the unrolled step differentiates through the "
                             "relaxed mixture, and GDAS-style hard sampling is first order")
        require_at_least(self, 1, "epochs", "layers", "init_channels", "batch_size")


def logits_entropy(logits: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean per-edge entropy (nats) of softmax(logits); log(num_ops) is uniform, 0 is one-hot."""
    out = {}
    for cell_type, value in logits.items():
        p = torch.softmax(value.detach().float(), dim=-1)
        out[cell_type] = float(-(p * p.clamp_min(1e-12).log()).sum(-1).mean())
    return out


class SearchState:
    """The objects of one search, built identically for a fresh run and for a resume."""

    def __init__(self, config: SearchConfig, data: ImageData, device: torch.device, dist: DistContext = SINGLE):
        self.config = config
        self.space: SearchSpace = get_space(config.space)
        self.space.check_image_size(data.image_size)
        self.data = data.to(device)
        self.weight_indices, self.logit_indices = split_indices(len(data), [0.5, 0.5], seed=config.seed)
        mean, std = channel_stats(data)
        augment = Augment(crop_padding=max(data.image_size // 8, 1), hflip=data.hflip) if config.augment else Augment()
        self.train_preprocess = Preprocess(mean, std, augment, config.channels_last)
        self.eval_preprocess = Preprocess(mean, std, channels_last=config.channels_last)
        shard = (dist.rank, dist.world_size)
        self.weight_stream = BatchStream(self.data, self.weight_indices, config.batch_size, config.seed * 2 + 1,
                                         self.train_preprocess, augment=config.augment, shard=shard)
        self.logit_stream = BatchStream(self.data, self.logit_indices, config.batch_size, config.seed * 2 + 2,
                                        self.train_preprocess, augment=config.augment, shard=shard)
        self.relaxation = create_relaxation(config.relax)
        self.model = create_supernet(self.space, data.num_classes, data.channels, config.init_channels, config.layers,
                                     self.relaxation).to(device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.arch = ArchLogits(self.space, config.logit_init_std).to(device)
        self.weight_optimizer = torch.optim.SGD(self.model.parameters(), config.w_lr, momentum=config.w_momentum,
                                                weight_decay=config.w_weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.weight_optimizer, config.epochs,
                                                                    eta_min=config.w_lr_min)
        self.logit_optimizer = torch.optim.Adam(self.arch.parameters(), config.logit_lr, betas=config.logit_betas,
                                                weight_decay=config.logit_weight_decay)
        self.bilevel = BilevelOptimizer(self.model, self.arch, self.weight_optimizer, self.logit_optimizer,
                                        config.order, config.grad_clip, dist)
        self.epoch = 0
        self.metrics: list[dict[str, Any]] = []

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "model": self.model.state_dict(), "arch": self.arch.state_dict(),
                "weight_optimizer": self.weight_optimizer.state_dict(),
                "logit_optimizer": self.logit_optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "weight_stream": self.weight_stream.state_dict(), "logit_stream": self.logit_stream.state_dict(),
                "rng": rng_state(), "metrics": self.metrics, "config": asdict(self.config), "space": self.space.name,
                "genotype": self.space.to_json(self.genotype())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("space") != self.space.name:
            raise InputError(f"checkpoint is for the {state.get('space')} space, not {self.space.name}")
        self.model.load_state_dict(state["model"])
        self.arch.load_state_dict(state["arch"])
        self.weight_optimizer.load_state_dict(state["weight_optimizer"])
        self.logit_optimizer.load_state_dict(state["logit_optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.weight_stream.load_state_dict(state["weight_stream"])
        self.logit_stream.load_state_dict(state["logit_stream"])
        set_rng_state(state["rng"])
        self.epoch = state["epoch"]
        self.metrics = list(state["metrics"])

    def genotype(self):
        return self.space.derive(self.arch())

    def run_epoch(self, progress: bool) -> dict[str, Any]:
        config, started = self.config, time.time()
        lr = self.scheduler.get_last_lr()[0]
        if self.relaxation.hard:
            self.relaxation.tau = gumbel_tau(self.epoch, config.epochs, config.tau_max, config.tau_min)
        self.model.train()
        sums = {"logit_loss": 0.0, "weight_loss": 0.0, "weight_acc": 0.0}
        steps = self.weight_stream.batches_per_pass
        for _ in tqdm(range(steps), desc=f"search epoch {self.epoch + 1}/{config.epochs}", leave=False,
                      disable=not progress):
            result = self.bilevel.step(next(self.weight_stream), next(self.logit_stream), lr)
            for key in sums:
                sums[key] += result[key]
        self.scheduler.step()
        self.model.eval()
        logits = {k: v.detach() for k, v in self.arch().items()}
        val_loss, val_acc = evaluate(lambda x: self.model(x, logits),
                                     ordered_batches(self.data, self.logit_indices, config.eval_batch_size,
                                                     self.eval_preprocess))
        self.epoch += 1
        row: dict[str, Any] = {"epoch": self.epoch, "lr": lr, "train_loss": sums["weight_loss"] / steps,
                               "train_acc": sums["weight_acc"] / steps, "logit_loss": sums["logit_loss"] / steps,
                               "val_loss": val_loss, "val_acc": val_acc}
        if self.relaxation.hard:
            row["tau"] = self.relaxation.tau
        row.update({f"entropy_{k}": v for k, v in logits_entropy(logits).items()})
        row["seconds"] = time.time() - started
        row["genotype"] = self.space.to_text(self.genotype())
        self.metrics.append(row)
        return row


def run_search(config: SearchConfig, data: ImageData, run: RunDir, resume: bool = False,
               stop_after_epoch: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Search, writing config.yaml, log.txt, metrics.csv, checkpoint.pt and genotype.json into `run` each epoch.

    `stop_after_epoch` ends the process cleanly after that epoch (a time-sliced job); `--resume` continues it and
    ends exactly where an uninterrupted run would.
    """
    config.validate()
    dist, device = init_distributed(pick_device(config.device))
    seed_everything(config.seed)
    run.check(resume)
    state = SearchState(config, data, device, dist)
    main = dist.is_main
    try:
        log = start_run(run, "search", state, config, resume, main)
        if not resume:
            log.info(f"search {config.space} on {data.name}: {len(data)} training images "
                     f"({len(state.weight_indices)} weights / {len(state.logit_indices)} logits), {data.channels}x"
                     f"{data.image_size}x{data.image_size}, {data.num_classes} classes, device {device}, "
                     f"{sum(p.numel() for p in state.model.parameters()) / 1e6:.3f} M supernet parameters"
                     + (f", {dist.world_size} data-parallel processes" if dist.enabled else ""))
        while state.epoch < config.epochs:
            row = state.run_epoch(progress and main)
            if dist.enabled:
                if not dist.identical(list(state.arch.parameters())):
                    raise RuntimeError("architecture logits differ between data-parallel processes")
                log.info(f"architecture logits identical on all {dist.world_size} processes")
            if main:
                run.write_metrics(state.metrics)
                atomic_torch_save(state.state_dict(), run.file("checkpoint.pt"))
                atomic_write_text(run.file("genotype.json"), state.space.dumps(state.genotype()) + "\n")
            log.info(f"epoch {row['epoch']}/{config.epochs} train_acc {row['train_acc']:.4f} val_acc "
                     f"{row['val_acc']:.4f} ({row['seconds']:.1f}s) genotype {row['genotype']}")
            if stop_after_epoch is not None and state.epoch >= stop_after_epoch and state.epoch < config.epochs:
                log.info(f"stopping after epoch {state.epoch} as asked; continue with --resume")
                break
        return {"epoch": state.epoch, "genotype": json.loads(state.space.dumps(state.genotype())),
                "val_acc": state.metrics[-1]["val_acc"] if state.metrics else math.nan,
                "search_seconds": round(sum(row["seconds"] for row in state.metrics), 2)}
    finally:
        run.close_logger("search")
