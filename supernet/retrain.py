"""Retraining a genotype's discrete network from scratch and reporting its test accuracy, size and FLOPs.

Recipes: the DARTS evaluation recipe for DARTS-space genotypes (SGD 0.025 cosine to 0, momentum 0.9, wd 3e-4,
clip 5, optional auxiliary head weighted 0.4, drop-path ramped linearly to 0.2, optional cutout) and the
NAS-Bench-201 recipe for its cells (SGD 0.1 Nesterov cosine to 0, wd 5e-4, no drop-path or auxiliary head).
The reported accuracy is the last epoch's on the test split; no epoch is picked by its test score.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from search_spaces import load_genotype

from .batches import Augment, BatchStream, ImageData, Preprocess, channel_stats, evaluate, ordered_batches
from .distributed import SINGLE, DistContext, init_distributed
from .discrete import count_flops_m, count_parameters_m, create_network
from .runtime import (RunDir, atomic_torch_save, atomic_write_text, config_from_dict, pick_device, require_at_least,
                      rng_state, seed_everything, set_rng_state, start_run)

RECIPES = {
    "darts": {"lr": 0.025, "weight_decay": 3e-4, "nesterov": False, "drop_path_prob": 0.2},
    "nb201": {"lr": 0.1, "weight_decay": 5e-4, "nesterov": True, "drop_path_prob": 0.0},
}


@dataclass
class RetrainConfig:
    """Defaults fit the embedded `digits` set; pass --layers 20 --init-channels 36 --epochs 600 --auxiliary --cutout
    --batch-size 96 on CIFAR-10 for the DARTS paper's evaluation. Unset (None) values come from the space's recipe."""

    genotype: str = "DARTS_V2"
    dataset: str = "digits"
    data_root: str = "data"
    download: bool = False
    image_size: int | None = None
    epochs: int = 10
    layers: int = 8
    init_channels: int = 16
    batch_size: int = 96
    eval_batch_size: int = 256
    seed: int = 0
    lr: float | None = None
    lr_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float | None = None
    grad_clip: float = 5.0
    auxiliary: bool = False
    auxiliary_weight: float = 0.4
    drop_path_prob: float | None = None
    cutout: bool = False
    cutout_length: int | None = None  # None: 16 at 32 px, scaled with the image
    augment: bool = True
    channels_last: bool = True
    device: str = "auto"

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RetrainConfig":
        return config_from_dict(cls, values, "retrain")

    def validate(self) -> None:
        require_at_least(self, 1, "epochs", "layers", "init_channels", "batch_size")


class RetrainState:
    def __init__(self, config: RetrainConfig, train: ImageData, test: ImageData, device: torch.device,
                 dist: DistContext = SINGLE):
        self.config = config
        self.dist = dist
        self.space, self.genotype = load_genotype(config.genotype)
        recipe = RECIPES[self.space.name]
        self.lr = recipe["lr"] if config.lr is None else config.lr
        self.weight_decay = recipe["weight_decay"] if config.weight_decay is None else config.weight_decay
        self.drop_path_max = recipe["drop_path_prob"] if config.drop_path_prob is None else config.drop_path_prob
        self.space.check_image_size(train.image_size)
        self.train, self.test = train.to(device), test.to(device)
        size = train.image_size
        mean, std = channel_stats(train)
        cutout = (config.cutout_length or max(size // 2, 1)) if config.cutout else 0
        augment = Augment(max(size // 8, 1), train.hflip, cutout) if config.augment else Augment(cutout=cutout)
        self.eval_preprocess = Preprocess(mean, std, channels_last=config.channels_last)
        self.stream = BatchStream(self.train, torch.arange(len(train)), config.batch_size, config.seed,
                                  Preprocess(mean, std, augment, config.channels_last),
                                  augment=config.augment or config.cutout, shard=(dist.rank, dist.world_size))
        self.model = create_network(self.genotype, train.num_classes, train.channels, config.init_channels,
                                    config.layers, config.auxiliary, size).to(device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD(self.model.parameters(), self.lr, momentum=config.momentum,
                                         weight_decay=self.weight_decay, nesterov=recipe["nesterov"])
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, config.epochs,
                                                                    eta_min=config.lr_min)
        self.epoch = 0
        self.metrics: list[dict[str, Any]] = []
        self.params_m = count_parameters_m(self.model)
        self.flops_m = count_flops_m(self.model, train.channels, size)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "stream": self.stream.state_dict(), "rng": rng_state(),
                "metrics": self.metrics, "config": asdict(self.config), "space": self.space.name,
                "genotype": self.space.to_json(self.genotype)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.stream.load_state_dict(state["stream"])
        set_rng_state(state["rng"])
        self.epoch = state["epoch"]
        self.metrics = list(state["metrics"])

    def run_epoch(self, progress: bool) -> dict[str, Any]:
        config, started = self.config, time.time()
        lr = self.scheduler.get_last_lr()[0]
        self.model.drop_path_prob = self.drop_path_max * self.epoch / config.epochs
        self.model.train()
        total_loss = total_acc = 0.0
        steps = self.stream.batches_per_pass
        for _ in tqdm(range(steps), desc=f"retrain epoch {self.epoch + 1}/{config.epochs}", leave=False,
                      disable=not progress):
            x, y = next(self.stream)
            self.optimizer.zero_grad(set_to_none=True)
            out, aux = self.model(x)
            loss = F.cross_entropy(out, y)
            if aux is not None:
                loss = loss + config.auxiliary_weight * F.cross_entropy(aux, y)
            loss.backward()
            self.dist.average_gradients(self.model.parameters())
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
            self.optimizer.step()
            total_loss += loss.item()
            total_acc += (out.argmax(1) == y).float().mean().item()
        self.scheduler.step()
        self.model.eval()
        test_loss, test_acc = evaluate(lambda x: self.model(x)[0],
                                       ordered_batches(self.test, None, config.eval_batch_size, self.eval_preprocess))
        self.epoch += 1
        row = {"epoch": self.epoch, "lr": lr, "drop_path_prob": self.model.drop_path_prob,
               "train_loss": total_loss / steps, "train_acc": total_acc / steps, "test_loss": test_loss,
               "test_acc": test_acc, "seconds": time.time() - started}
        self.metrics.append(row)
        return row

    def result(self) -> dict[str, Any]:
        last = self.metrics[-1] if self.metrics else {}
        return {"space": self.space.name, "genotype": self.space.to_text(self.genotype),
                "epochs": self.epoch, "test_acc": last.get("test_acc"), "test_loss": last.get("test_loss"),
                "params_m": round(self.params_m, 6), "flops_m": round(self.flops_m, 3), "seed": self.config.seed,
                "train_seconds": round(sum(row["seconds"] for row in self.metrics), 2)}


def run_retrain(config: RetrainConfig, train: ImageData, test: ImageData, run: RunDir, resume: bool = False,
                stop_after_epoch: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Train the genotype's network; writes config.yaml, log.txt, metrics.csv, checkpoint.pt and result.json."""
    config.validate()
    dist, device = init_distributed(pick_device(config.device))
    seed_everything(config.seed)
    run.check(resume)
    state = RetrainState(config, train, test, device, dist)
    main = dist.is_main
    try:
        log = start_run(run, "retrain", state, config, resume, main)
        if not resume:
            log.info(f"retrain {state.space.to_text(state.genotype)} on {train.name}: {len(train)} train / "
                     f"{len(test)} test images, {state.params_m:.3f} M parameters, {state.flops_m:.1f} M FLOPs, "
                     f"device {device}")
        while state.epoch < config.epochs:
            row = state.run_epoch(progress and main)
            if main:
                run.write_metrics(state.metrics)
                atomic_torch_save(state.state_dict(), run.file("checkpoint.pt"))
            log.info(f"epoch {row['epoch']}/{config.epochs} train_acc {row['train_acc']:.4f} test_acc "
                     f"{row['test_acc']:.4f} ({row['seconds']:.1f}s)")
            if stop_after_epoch is not None and state.epoch >= stop_after_epoch and state.epoch < config.epochs:
                log.info(f"stopping after epoch {state.epoch} as asked; continue with --resume")
                return state.result()
        result = state.result()
        if main:
            atomic_write_text(run.file("result.json"), json.dumps(result, indent=1) + "\n")
        log.info(f"test accuracy {result['test_acc']:.4f}, {result['params_m']:.3f} M parameters, "
                 f"{result['flops_m']:.1f} M FLOPs")
        return result
    finally:
        run.close_logger("retrain")
