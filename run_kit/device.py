"""Device choice, seeding and the RNG state a checkpoint carries (as tensors and plain values only, so checkpoints
load with `weights_only=True`)."""
from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from .errors import InputError


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
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"device '{name}' is not supported; use auto, cpu, cuda or cuda:N")
    return device


PRECISIONS = ("fp32", "bf16")


def autocast(precision: str, device_type: str) -> contextlib.AbstractContextManager:
    """The forward pass of a network at `precision`: bf16 autocasts matrix products and convolutions to bfloat16
    (BN statistics, softmax and losses stay float32, as autocast keeps them); fp32 changes nothing. On the meta
    device (shapes only: counting FLOPs of a network too large to run) there is nothing to cast."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision '{precision}'; known: {', '.join(PRECISIONS)}")
    if device_type == "meta":
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16")


def widen(t: torch.Tensor) -> torch.Tensor:
    """Scores leave an autocast network as float32; other dtypes (a float64 network) stay as they are."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def memory_bytes(device: torch.device | None = None) -> int:
    """Physical memory of the machine (CPU) or of the GPU."""
    if device is not None and device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def require_memory(nbytes: float, what: str, device: torch.device | None = None) -> None:
    """Refuse, before allocating, what could not fit: an absurd option must not exhaust the machine."""
    available = memory_bytes(device)
    if nbytes > available:
        raise InputError(f"{what} would need about {nbytes / 2**30:,.1f} GiB, more than the "
                         f"{available / 2**30:,.1f} GiB of "
                         f"{'this GPU' if device is not None and device.type == 'cuda' else 'this machine'}")


def require_model_fits(build: Callable[[], torch.nn.Module], what: str, device: torch.device | None = None,
                       copies: int = 4) -> None:
    """Build the model on the meta device (no memory) and refuse it if `copies` fp32 copies of its parameters
    (weights, gradients, optimiser state, an unrolled copy) would not fit: absurd --layers or --init-channels."""
    with torch.device("meta"):
        params = sum(p.numel() for p in build().parameters())
    require_memory(copies * 4 * params, f"{what} ({params / 1e6:,.1f} M parameters)", device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    name, keys, position, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "numpy": (name, torch.from_numpy(keys.astype(np.int64)), position,
                                                    has_gauss, gauss),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(_tuples(state["python"]))
    name, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(value: Any) -> Any:
    """random.setstate wants the tuples getstate gave, which a checkpoint may hand back as lists."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value
