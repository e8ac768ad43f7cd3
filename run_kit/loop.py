"""The one resumable driver that search, retrain and meta-train run through.

A job does one unit of work at a time (an epoch, or a meta-step) and knows how to save and restore itself; the driver
owns everything around that: claiming the run directory, config.yaml, the log, resuming from the checkpoint,
checkpointing every N units (metrics.csv, checkpoint.pt, the job's own files), the per-rank RNG state, the
data-parallel consistency check, `--stop-after-epoch`, progress, and stopping loudly when a run diverges.

    job.done < job.total:  row = job.run_unit()  ->  every N units: metrics.csv, checkpoint.pt, job files, log line
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .device import rng_state, set_rng_state
from .distributed import SINGLE, DistContext
from .errors import InputError, RunDiverged
from .files import atomic_write_text, load_checkpoint, save_checkpoint
from .run_dir import RunDir


class Job:
    """What the driver runs. Search, retrain and meta-train subclass it; the file and log hooks default to none."""

    name: str               # "search", "retrain", "meta-train": the checkpoint's kind and the log's name
    unit: str               # "epoch" or "meta-step"
    total: int              # units in the whole run
    done: int               # units finished
    config: Any             # a dataclass, saved as config.yaml
    metrics: list[dict[str, Any]]

    def describe(self) -> str:
        """The first log line of a fresh run."""
        raise NotImplementedError

    def run_unit(self, progress: bool) -> dict[str, Any]:
        """One unit of work; appends its metrics row to `metrics` and returns it."""
        raise NotImplementedError

    def log_line(self, row: dict[str, Any]) -> str:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def replicated(self) -> tuple[str, list[torch.Tensor]]:
        """What every data-parallel rank must hold alike, and its name for the log."""
        raise NotImplementedError

    def result(self) -> dict[str, Any]:
        """The summary the command prints."""
        raise NotImplementedError

    def start_files(self) -> dict[str, str]:
        """Written once when a fresh run starts."""
        return {}

    def checkpoint_files(self) -> dict[str, str]:
        """Written with every checkpoint."""
        return {}

    def final_files(self) -> dict[str, str]:
        """Written once the run is complete."""
        return {}

    def final_lines(self, run_path: Path) -> list[str]:
        """Logged once the run is complete."""
        return []


def check_finite(values: Iterable[float | torch.Tensor], what: str, where: str) -> None:
    """Raise RunDiverged naming `where` if any value is NaN or infinite."""
    for value in values:
        finite = bool(torch.isfinite(value).all()) if isinstance(value, torch.Tensor) else math.isfinite(value)
        if not finite:
            raise RunDiverged(f"the {what} became non-finite at {where}; lower the learning rate (the last good "
                              f"checkpoint stays)")


def run_job(job: Job, run: RunDir, resume: bool = False, stop_after: int | None = None, progress: bool = True,
            every: int = 1, dist: DistContext = SINGLE) -> dict[str, Any]:
    """Run `job` to its end (or to `stop_after` units) in `run`, checkpointing every `every` units."""
    main = dist.is_main
    with run.claim(resume, main):
        if resume:
            state = load_checkpoint(run.checkpoint)
            if state.get("job") != job.name:
                raise InputError(f"{run.checkpoint} was written by {state.get('job') or 'something else'}, not "
                                 f"{job.name}; it cannot be resumed as one")
            if len(state.get("rng", ())) != dist.world_size:
                raise InputError(f"{run.checkpoint} was written by {len(state.get('rng', ()))} process(es); resume it "
                                 f"with the same number")
            job.load_state_dict(state)
            set_rng_state(state["rng"][dist.rank])
        log = run.logger(job.name, enabled=main)
        try:
            if resume:
                log.info(f"resumed {run.path} after {job.unit} {job.done}")
            else:
                if main:
                    run.save_config(asdict(job.config))
                    for name, text in job.start_files().items():
                        atomic_write_text(run.file(name), text)
                log.info(job.describe())
            _loop(job, run, log, stop_after, progress and main, every, dist)
            if job.done == job.total:
                if main:
                    for name, text in job.final_files().items():
                        atomic_write_text(run.file(name), text)
                for line in job.final_lines(run.path):
                    log.info(line)
            return job.result()
        except RunDiverged as err:
            log.info(f"stopped: {err}")
            raise
        finally:
            run.close_logger(job.name)


def _loop(job: Job, run: RunDir, log, stop_after: int | None, progress: bool, every: int, dist: DistContext) -> None:
    bar = tqdm(total=job.total, initial=job.done, desc=job.name, unit=job.unit, disable=not progress)
    try:
        while job.done < job.total:
            row = job.run_unit(progress)
            bar.update(1)
            if job.done % every and job.done < job.total:
                continue
            if dist.enabled:
                what, tensors = job.replicated()
                if not dist.identical(tensors):
                    raise RuntimeError(f"{what} differ between data-parallel processes")
                log.info(f"{what} identical on all {dist.world_size} processes")
            rngs = dist.gather(rng_state())
            if dist.is_main:
                run.write_metrics(job.metrics)
                save_checkpoint({**job.state_dict(), "job": job.name, "rng": rngs}, run.checkpoint)
                for name, text in job.checkpoint_files().items():
                    atomic_write_text(run.file(name), text)
            log.info(job.log_line(row))
            if stop_after is not None and stop_after <= job.done < job.total:
                log.info(f"stopping after {job.unit} {job.done} as asked; continue with --resume")
                break
    finally:
        bar.close()
