"""Retraining a genotype's discrete network from scratch and reporting its test accuracy, size and FLOPs.

Recipes (per space, supernet/spaces.py): the DARTS evaluation recipe for DARTS-space genotypes (SGD 0.025 cosine
to 0, momentum 0.9, wd 3e-4, batch 96, gradient norm clipped at 5, optional auxiliary head weighted 0.4, drop-path
ramped linearly to 0.2, optional cutout) and the NAS-Bench-201 recipe for its cells (SGD 0.1 Nesterov cosine to 0,
momentum 0.9, wd 5e-4, batch 256, no gradient clipping, no drop-path or auxiliary head). The reported accuracy is
the last epoch's on the test split; no epoch is picked by its test score.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from image_sets import Augment, BatchStream, DataOptions, ImageData, Preprocess, channel_stats, ordered_batches
from run_kit import InputError
from run_kit.cli import option
from run_kit.config import Config, require_at_least, require_choice, require_fraction, require_positive
from run_kit.device import PRECISIONS, pick_device, require_memory, require_model_fits, seed_everything
from run_kit.distributed import SINGLE, DistContext, init_distributed
from run_kit.loop import Job, check_finite, run_job
from run_kit.run_dir import RunDir

from .accuracy import evaluate
from .discrete import count_flops_m, count_parameters_m
from .spaces import RetrainRecipe, activation_bytes_lower_bound, create_network, entry_of, load_genotype


@dataclass
class RetrainConfig(DataOptions, Config):
    """Defaults fit the embedded `digits` set; pass --layers 20 --init-channels 36 --epochs 600 --auxiliary --cutout
    on CIFAR-10 for the DARTS paper's evaluation. Unset (None) values come from the space's recipe."""

    kind = "retrain"

    genotype: str = option("DARTS_V2", "genotype.json, run directory, published name (DARTS_V2), Genotype(...) "
                                       "string or NAS-Bench-201 string")
    epochs: int = option(10)
    layers: int = option(8)
    init_channels: int = option(16)
    batch_size: int | None = option(None, "None: the space's recipe (DARTS 96, NAS-Bench-201 256)")
    eval_batch_size: int = option(256, "batch size of the test passes")
    seed: int = option(0)
    lr: float | None = option(None, "SGD learning rate, cosine-annealed to --lr-min (None: the space's recipe)")
    lr_min: float = option(0.0)
    momentum: float = option(0.9)
    weight_decay: float | None = option(None, "None: the space's recipe")
    grad_clip: float | None = option(None, "None: the space's recipe")
    auxiliary: bool = option(False, "DARTS auxiliary head")
    auxiliary_weight: float = option(0.4)
    drop_path_prob: float | None = option(None, "None: the space's recipe")
    cutout: bool = option(False)
    cutout_length: int | None = option(None, "None: 16 at 32 px, scaled with the image")
    augment: bool = option(True, "random crop and, for natural images, horizontal flips")
    channels_last: bool = option(True, "NHWC layout")
    precision: str = option("fp32", "bf16: bfloat16 autocast of the network's forward pass (for GPUs)",
                            choices=PRECISIONS)
    device: str = option("auto", "auto (CUDA if available), cpu, cuda, cuda:N")


    def validate(self) -> None:
        super().validate()
        require_at_least(self, 1, "epochs", "layers", "init_channels", "eval_batch_size")
        for name in ("batch_size", "cutout_length"):
            if getattr(self, name) is not None:
                require_at_least(self, 1, name)
        for name in ("lr",):
            if getattr(self, name) is not None:
                require_positive(self, name)
        require_at_least(self, 0, "lr_min", "auxiliary_weight")
        require_choice(self, "precision", PRECISIONS)
        for name in ("weight_decay", "grad_clip"):
            if getattr(self, name) is not None:
                require_at_least(self, 0, name)
        require_fraction(self, "momentum")
        if self.drop_path_prob is not None:
            require_fraction(self, "drop_path_prob")

    def resolved(self, recipe: RetrainRecipe) -> dict[str, Any]:
        """The recipe values this run uses: the config's where set, else the space's recipe."""
        return {key: getattr(recipe, key) if getattr(self, key) is None else getattr(self, key)
                for key in ("lr", "weight_decay", "drop_path_prob", "batch_size", "grad_clip")} | \
            {"nesterov": recipe.nesterov}


class RetrainJob(Job):
    name, unit = "retrain", "epoch"

    def __init__(self, config: RetrainConfig, train: ImageData, test: ImageData, device: torch.device,
                 dist: DistContext = SINGLE):
        config.validate()
        self.config, self.dist, self.device = config, dist, device
        self.space, self.genotype = load_genotype(config.genotype)
        self.recipe = config.resolved(entry_of(self.space).recipe)
        self.asked_batch = self.recipe["batch_size"]
        self.recipe["batch_size"] = min(self.asked_batch, len(train))
        dist.check_batch(self.recipe["batch_size"])
        self.space.check_image_size(train.image_size)
        self.train, self.test = train.to(device), test.to(device)
        size = train.image_size
        mean, std = channel_stats(train)
        # what a deployment of the network needs (supernet/export.py): its input format and normalisation
        self.network_record = {"num_classes": train.num_classes, "channels": train.channels, "image_size": size,
                               "layers": config.layers, "init_channels": config.init_channels,
                               "auxiliary": config.auxiliary, "pixel_mean": mean.tolist(), "pixel_std": std.tolist()}
        cutout = (config.cutout_length or max(size // 2, 1)) if config.cutout else 0
        augment = Augment(max(size // 8, 1), train.hflip, cutout) if config.augment else Augment(cutout=cutout)
        self.eval_preprocess = Preprocess(mean, std, channels_last=config.channels_last)
        self.stream = BatchStream(self.train, torch.arange(len(train)), self.recipe["batch_size"], config.seed,
                                  Preprocess(mean, std, augment, config.channels_last),
                                  augment=config.augment or config.cutout, shard=(dist.rank, dist.world_size))
        build = lambda: create_network(self.genotype, train.num_classes, train.channels, config.init_channels,  # noqa
                                       config.layers, config.auxiliary, size, config.precision)
        require_model_fits(build, "the network", device)
        require_memory(activation_bytes_lower_bound(self.space, config.init_channels, config.layers,
                                                    self.space.active_edges(self.genotype),
                                                    self.recipe["batch_size"], size),
                       f"a training step at batch {self.recipe['batch_size']} and {size} px", device)
        self.model = build().to(device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD(self.model.parameters(), self.recipe["lr"], momentum=config.momentum,
                                         weight_decay=self.recipe["weight_decay"], nesterov=self.recipe["nesterov"])
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, config.epochs,
                                                                    eta_min=config.lr_min)
        self.total = config.epochs
        self.done = 0
        self.metrics: list[dict[str, Any]] = []
        self.params_m = count_parameters_m(self.model)
        self.flops_m = count_flops_m(self.model, train.channels, size)

    def describe(self) -> str:
        r = self.recipe
        clip = f"clip {r['grad_clip']}" if r["grad_clip"] else "no gradient clipping"
        batch = f"batch {r['batch_size']}" + (f" (asked {self.asked_batch}: the training split holds only "
                                              f"{len(self.train)} images)"
                                              if r["batch_size"] < self.asked_batch else "")
        return "; ".join([*self.train.notes, (
            f"retrain {self.space.to_text(self.genotype)} on {self.train.name}: {len(self.train)} train / "
            f"{len(self.test)} test images, {self.params_m:.3f} M parameters, {self.flops_m:.1f} M FLOPs, "
            f"device {self.device}; lr {r['lr']}, {batch}, wd {r['weight_decay']}, {clip}")])

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.done, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "stream": self.stream.state_dict(),
                "metrics": self.metrics, "space": self.space.name, "genotype": self.space.to_json(self.genotype)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError:
            raise InputError("the checkpoint's network does not match this configuration (other genotype, "
                             "--layers, --init-channels, classes or channels)") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.stream.load_state_dict(state["stream"])
        self.done = state["epoch"]
        self.metrics = list(state["metrics"])

    def run_unit(self, progress: bool) -> dict[str, Any]:
        config, started = self.config, time.time()
        lr = self.scheduler.get_last_lr()[0]
        self.model.drop_path_prob = self.recipe["drop_path_prob"] * self.done / config.epochs
        self.model.train()
        total_loss = total_acc = 0.0
        steps = self.stream.batches_per_pass
        for step in tqdm(range(steps), desc=f"retrain epoch {self.done + 1}/{config.epochs}", leave=False,
                         disable=not progress):
            x, y = next(self.stream)
            self.optimizer.zero_grad(set_to_none=True)
            out, aux = self.model(x)
            loss = F.cross_entropy(out, y)
            if aux is not None:
                loss = loss + config.auxiliary_weight * F.cross_entropy(aux, y)
            check_finite([loss.item()], "training loss", f"epoch {self.done + 1}, step {step + 1}")
            loss.backward()
            self.dist.average_gradients(self.model.parameters())
            if self.recipe["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe["grad_clip"])
            self.optimizer.step()
            total_loss += loss.item()
            total_acc += (out.argmax(1) == y).float().mean().item()
        self.scheduler.step()
        self.model.eval()
        test_loss, test_acc = evaluate(lambda x: self.model(x)[0],
                                       ordered_batches(self.test, None, config.eval_batch_size, self.eval_preprocess))
        self.done += 1
        row = {"epoch": self.done, "lr": lr, "drop_path_prob": self.model.drop_path_prob,
               "train_loss": total_loss / steps, "train_acc": total_acc / steps, "test_loss": test_loss,
               "test_acc": test_acc, "seconds": time.time() - started}
        self.metrics.append(row)
        return row

    def log_line(self, row: dict[str, Any]) -> str:
        return (f"epoch {row['epoch']}/{self.config.epochs} train_acc {row['train_acc']:.4f} test_acc "
                f"{row['test_acc']:.4f} ({row['seconds']:.1f}s)")

    def replicated(self) -> tuple[str, list[torch.Tensor]]:
        return "network weights", list(self.model.parameters())

    def final_files(self) -> dict[str, str]:
        return {"result.json": json.dumps(self.result(), indent=1) + "\n"}

    def final_lines(self, run_path) -> list[str]:
        result = self.result()
        return [f"test accuracy {result['test_acc']:.4f}, {result['params_m']:.3f} M parameters, "
                f"{result['flops_m']:.1f} M FLOPs"]

    def result(self) -> dict[str, Any]:
        last = self.metrics[-1] if self.metrics else {}
        return {"space": self.space.name, "genotype": self.space.to_text(self.genotype),
                "epochs": self.done, "test_acc": last.get("test_acc"), "test_loss": last.get("test_loss"),
                "params_m": round(self.params_m, 6), "flops_m": round(self.flops_m, 3), "seed": self.config.seed,
                "batch_size": self.recipe["batch_size"],
                "train_seconds": round(sum(row["seconds"] for row in self.metrics), 2),
                "network": self.network_record}


def retrain_in_memory(config: RetrainConfig, train: ImageData, test: ImageData) -> dict[str, Any]:
    """Train and test without a run directory, for short trainings inside another job (a teacher's skip probe):
    RetrainJob.result() of the finished training."""
    config.validate()
    seed_everything(config.seed)
    job = RetrainJob(config, train, test, pick_device(config.device))
    while job.done < job.total:
        job.run_unit(False)
    return job.result()


def run_retrain(config: RetrainConfig, train: ImageData, test: ImageData, run: RunDir, resume: bool = False,
                stop_after_epoch: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Train the genotype's network; writes config.yaml, log.txt, metrics.csv, checkpoint.pt and result.json."""
    config.validate()
    dist, device = init_distributed(pick_device(config.device))
    seed_everything(config.seed)
    run.check(resume)
    job = RetrainJob(config, train, test, device, dist)
    return run_job(job, run, resume, stop_after_epoch, progress, dist=dist)
