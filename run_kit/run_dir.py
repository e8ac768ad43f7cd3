"""A run's directory: config.yaml, log.txt, metrics.csv, checkpoint.pt and the command's own outputs.

One run at a time: `claim` takes an exclusive lock on the directory for as long as the run lasts, so a second run
started into the same --out is refused instead of interleaving its files with the first's.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import logging
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError
from .files import atomic_write_text

CHECKPOINT = "checkpoint.pt"


class RunDir:
    """`marker`: the file whose presence means the directory holds a run (a comparison's is results.json)."""

    def __init__(self, path: str | Path, marker: str = CHECKPOINT):
        self.path = Path(path)
        self.marker = marker

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def checkpoint(self) -> Path:
        return self.file(CHECKPOINT)

    def check(self, resume: bool) -> None:
        """Refuse before any work: resuming a run that has nothing to resume, or overwriting one that has."""
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"--out {self.path} exists and is not a directory")
        if resume and not self.file(self.marker).is_file():
            raise InputError(f"cannot resume: {self.file(self.marker)} does not exist")
        if not resume and self.file(self.marker).exists():
            raise InputError(f"{self.path} already holds a run; pass --resume to continue it or choose another --out")

    @contextlib.contextmanager
    def claim(self, resume: bool, is_main: bool = True, discard_on_input_error: bool = False) -> Iterator[RunDir]:
        """Create the directory (rank 0 only) and hold an exclusive lock on it until the block ends.

        Called once every input is validated. Temporary files an interrupted earlier run left behind are removed
        (nobody else can be writing them: we hold the lock). `discard_on_input_error`: for a run that can find its
        input bad only inside the block (a budget no candidate meets once the logits are final), a directory this
        claim created is removed again when the block ends in InputError, so bad input leaves nothing behind."""
        self.check(resume)
        if not is_main:
            yield self
            return
        created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(f"cannot create --out {self.path}: {err.strerror}") from None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(f"{self.path} is in use by another run; wait for it or choose another --out") from None
        try:
            self.check(resume)  # the run that held the lock may have finished a checkpoint meanwhile
            for leftover in self.path.glob(".*.tmp"):
                leftover.unlink(missing_ok=True)
            yield self
        except InputError:
            if discard_on_input_error and created:
                shutil.rmtree(self.path, ignore_errors=True)
            raise
        finally:
            os.close(fd)  # releases the lock

    def save_config(self, config: Mapping[str, Any]) -> None:
        atomic_write_text(self.file("config.yaml"), yaml.safe_dump(_plain(dict(config)), sort_keys=False))

    def load_config(self) -> dict[str, Any]:
        path = self.file("config.yaml")
        if not path.is_file():
            raise InputError(f"cannot resume: {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise InputError(f"malformed YAML in {path}: {str(err).splitlines()[0]}") from None
        if not isinstance(loaded, dict):
            raise InputError(f"{path} must hold a mapping of option: value")
        return loaded

    def logger(self, name: str, enabled: bool = True) -> logging.Logger:
        """Log to log.txt (appending, so a resumed run keeps its history) and to stderr; silent when not `enabled`
        (data-parallel ranks other than 0). log.txt is created by the first line, not before."""
        log = logging.getLogger(f"taskdarts.{name}.{self.path.resolve()}")
        log.setLevel(logging.INFO)
        log.propagate = False
        log.disabled = not enabled
        if enabled and not log.handlers:
            fmt = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
            for handler in (logging.FileHandler(self.file("log.txt"), delay=True), logging.StreamHandler()):
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
        writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.file("metrics.csv"), buffer.getvalue())


def _plain(value: Any) -> Any:
    """Tuples as lists, so config.yaml holds only what `yaml.safe_load` reads back."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
