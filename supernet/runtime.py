"""Run plumbing shared by every command: device choice, seeding and RNG state, atomic files, run directories."""
from __future__ import annotations

import csv
import io
import logging
import os
import random
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch
import yaml

from search_spaces.errors import InputError


def config_from_dict(cls, values: Mapping[str, Any], what: str):
    """A config dataclass from a dict (a YAML file, a saved config.yaml); unknown keys are an error, not ignored."""
    from dataclasses import fields

    unknown = sorted(set(values) - {f.name for f in fields(cls)})
    if unknown:
        raise InputError(f"unknown {what} config keys: {', '.join(unknown)}")
    return cls(**values)


def require_at_least(config: Any, minimum: int, *names: str) -> None:
    for name in names:
        if getattr(config, name) < minimum:
            raise InputError(f"--{name.replace('_', '-')} must be at least {minimum}, got {getattr(config, name)}")


def pick_device(name: str | None = None) -> torch.device:
    """`auto` (or None) picks CUDA when present, else CPU; anything else must name an available device."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device '{name}' asked for, but CUDA is not available here; use --device cpu")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise InputError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated or foreign file: say which, not a pickle traceback
        raise InputError(f"cannot read checkpoint {path}: {type(err).__name__}") from None


class RunDir:
    """A run's directory: config.yaml, log.txt, metrics.csv, checkpoint.pt and the command's own outputs."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    def check(self, resume: bool) -> None:
        """Refuse before any work: resuming a run that has no checkpoint, or overwriting one that has."""
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"--out {self.path} exists and is not a directory")
        if resume and not self.file("checkpoint.pt").is_file():
            raise InputError(f"cannot resume: {self.file('checkpoint.pt')} does not exist")
        if not resume and self.file("checkpoint.pt").exists():
            raise InputError(f"{self.path} already holds a run; pass --resume to continue it or choose another --out")

    def make(self) -> None:
        """Create the directory; called only once every input has been validated."""
        self.path.mkdir(parents=True, exist_ok=True)

    def save_config(self, config: Mapping[str, Any]) -> None:
        atomic_write_text(self.file("config.yaml"), yaml.safe_dump(dict(config), sort_keys=False))

    def load_config(self) -> dict[str, Any]:
        return yaml.safe_load(self.file("config.yaml").read_text())

    def logger(self, name: str, enabled: bool = True) -> logging.Logger:
        """Log to log.txt (appending, so a resumed run keeps its history) and to stderr; silent when not `enabled`
        (data-parallel ranks other than 0)."""
        log = logging.getLogger(f"taskdarts.{name}.{self.path.resolve()}")
        log.setLevel(logging.INFO)
        log.propagate = False
        if not enabled:
            log.disabled = True
            return log
        log.disabled = False
        if not log.handlers:
            fmt = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
            for handler in (logging.FileHandler(self.file("log.txt")), logging.StreamHandler()):
                handler.setFormatter(fmt)
                log.addHandler(handler)
        return log

    def close_logger(self, name: str) -> None:
        log = logging.getLogger(f"taskdarts.{name}.{self.path.resolve()}")
        for handler in list(log.handlers):
            handler.close()
            log.removeHandler(handler)

    def write_metrics(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Rewrite metrics.csv from all rows so far (a resumed run drops rows past its checkpoint)."""
        rows = list(rows)
        if not rows:
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.file("metrics.csv"), buffer.getvalue())


def start_run(run: RunDir, name: str, state: Any, config: Any, resume: bool, is_main: bool = True) -> logging.Logger:
    """Create the run directory (rank 0 only), open its log, and either restore `state` (anything with
    `load_state_dict` and `epoch`) from the checkpoint or save the resolved config of a fresh run."""
    if is_main:
        run.make()
    log = run.logger(name, enabled=is_main)
    if resume:
        state.load_state_dict(load_checkpoint(run.file("checkpoint.pt")))
        log.info(f"resumed {run.path} after epoch {state.epoch}")
    elif is_main:
        run.save_config(asdict(config))
    return log
