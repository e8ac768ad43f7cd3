"""Meta-training across tasks: one objective (meta/objectives.py: adapt, imitate) stepped
`meta_steps` times through the shared resumable driver. The job owns what every objective shares: the meta-model,
its outer optimiser, the task stream, the fixed probe tasks that count distinct zero-shot genotypes, the metrics and
the checkpoint (format: meta/model.py META_FORMAT).
"""
from __future__ import annotations

import json
import random
import time
from typing import Any

import torch

from run_kit import InputError
from run_kit.device import pick_device, seed_everything
from run_kit.loop import Job, run_job
from run_kit.run_dir import RunDir

from .config import MetaConfig
from .model import META_FORMAT, META_KIND, TaskDARTS, check_meta_checkpoint
from .objectives import create_objective


class MetaTrainJob(Job):
    name, unit = "meta-train", "meta-step"

    def __init__(self, config: MetaConfig, device: torch.device):
        config.validate()
        self.config = config
        self.device = device
        self.meta_train, self.meta_test, self.split = config.distributions()
        if self.meta_train is None:
            raise InputError("no meta-training tasks: give --tasks with at least one data set")
        self.model = TaskDARTS(config).to(device)
        self.objective = create_objective(config, self.model, self.meta_train, self.split, device)
        self.optimizer = torch.optim.Adam(self.model.outer_parameters(), config.meta.meta_lr)
        self.task_rng = random.Random(config.seed)
        probe_rng = random.Random(config.seed + 7919)
        self.probes = [self.meta_train.sample(probe_rng).to(device) for _ in range(config.meta.probe_tasks)]
        self.total = config.meta.meta_steps
        self.done = 0
        self.metrics: list[dict[str, Any]] = []

    def describe(self) -> str:
        return self.objective.describe()

    def state_dict(self) -> dict[str, Any]:
        return {"kind": META_KIND, "format": META_FORMAT, "step": self.done, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "objective": self.objective.state_dict(),
                "task_rng": self.task_rng.getstate(), "metrics": self.metrics, "config": self.config.as_dict(),
                "space": self.model.space.name, "split": self.split.as_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_meta_checkpoint(state, "this run's checkpoint")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError:
            raise InputError("the checkpoint's meta-model does not match this configuration") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.objective.load_state_dict(state["objective"])
        version, internal, gauss = state["task_rng"]
        self.task_rng.setstate((version, tuple(internal), gauss))
        self.done = state["step"]
        self.metrics = list(state["metrics"])

    def distinct_genotypes(self) -> int:
        """How many different genotypes the controller proposes (zero-shot) over the fixed probe tasks."""
        self.model.eval()
        with torch.no_grad():
            z = self.model.embed(self.probes)
            logits = self.model.controller(z)
        self.model.train()
        space = self.model.space
        return len({space.to_text(space.derive({k: v[i] for k, v in logits.items()})) for i in range(len(self.probes))})

    def run_unit(self, progress: bool) -> dict[str, Any]:
        """One meta-step of the objective."""
        started = time.time()
        stats = self.objective.step(self.optimizer, self.task_rng, self.done)
        self.done += 1
        row: dict[str, Any] = {"meta_step": self.done, **stats}
        meta = self.config.meta
        row["distinct_genotypes"] = (self.distinct_genotypes()
                                     if self.done % meta.log_every == 0 or self.done == meta.meta_steps else "")
        row["seconds"] = round(time.time() - started, 3)
        self.metrics.append(row)
        return row

    def log_line(self, row: dict[str, Any]) -> str:
        return self.objective.log_line(row)

    def replicated(self) -> tuple[str, list[torch.Tensor]]:
        return "meta-model weights", list(self.model.parameters())

    def start_files(self) -> dict[str, str]:
        return {"task_split.json": json.dumps(self.split.as_dict(), indent=1) + "\n"}

    def result(self) -> dict[str, Any]:
        last = self.metrics[-1] if self.metrics else {}
        return {"meta_step": self.done, self.objective.score: last.get(self.objective.score),
                "distinct_genotypes": last.get("distinct_genotypes")}


def run_meta_train(config: MetaConfig, run: RunDir, resume: bool = False, stop_after_step: int | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Meta-train; writes config.yaml, log.txt, metrics.csv, task_split.json and checkpoint.pt into `run`."""
    config.validate()
    run.check(resume)
    device = pick_device(config.device)
    seed_everything(config.seed)
    job = MetaTrainJob(config, device)
    return run_job(job, run, resume, stop_after_step, progress, every=config.meta.log_every)
