"""Atomic files and checkpoints.

Every file is written to a temporary file beside its target and renamed over it, so a reader (or a resumed run)
never sees half a file; files get the permissions the user's umask gives, like any other tool's output. Checkpoints
are data, never code: they load with `weights_only=True`, and a file that needs anything beyond tensors and plain
Python values is refused.
"""
from __future__ import annotations

import csv
import io
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import InputError


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _read_umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~UMASK)  # mkstemp makes 0600 files; outputs follow the umask like everything else
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint file (or a run directory's checkpoint.pt) as a dict, loaded without running any code."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise InputError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        hostile = re.search(r"GLOBAL (\S+)", str(err))
        if hostile:
            raise InputError(f"refusing {path}: it asks to load {hostile.group(1).rstrip('.')}, which could run code; "
                             f"TaskDARTS checkpoints hold only tensors and plain data") from None
        raise InputError(f"cannot read checkpoint {path}: not a checkpoint, or a corrupted one") from None
    except Exception as err:  # a truncated or foreign file: say which, not a pickle traceback
        raise InputError(f"cannot read checkpoint {path}: {type(err).__name__} (truncated or corrupted?)") from None
    if not isinstance(state, dict):
        raise InputError(f"{path} is not a TaskDARTS checkpoint")
    return state


def read_small_csv(path: str | Path, columns: tuple[str, ...], what: str, max_bytes: int = 1_000_000,
                   instead: str = "") -> list[dict[str, str]]:
    """The rows of a small CSV a user hands us (a device profile, probe accuracies), whose header must be exactly
    `columns`: its size is checked before it is read, and anything else is one line naming `what` and the file
    (and `instead`, what else the option takes)."""
    file = Path(path)
    header = ",".join(columns)
    if not file.is_file():
        raise InputError(f"{what} {path} does not exist (a CSV {header}{f', or {instead}' if instead else ''})")
    if file.stat().st_size > max_bytes:
        raise InputError(f"{what} {path} is {file.stat().st_size:,} bytes; it should be a few lines")
    try:
        rows = list(csv.DictReader(io.StringIO(file.read_text())))
    except (UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{what} {path} is not a CSV file ({err})") from None
    if not rows or set(rows[0]) != set(columns):
        raise InputError(f"{what} {path} must have the header {header} and one row per cell")
    return rows
