"""Data-parallel runs under `torchrun --nproc_per_node=N train.py ...`.

Every rank holds the whole model and reads its shard (every N-th sample) of each global batch of `--batch-size`
samples, so the optimisation matches a single-process run with the same batch size. Before every optimiser step the
gradient of *every* parameter is averaged across ranks (a rank that computed none contributes zeros), also inside
the second-order step, so the ranks cannot drift apart whatever each one happened to compute. Random choices that
must agree (Gumbel samples) come from generators seeded identically on every rank; each rank's own random state is
checkpointed and restored for that rank. Rank 0 alone logs and writes files. Backend: nccl on CUDA, gloo on CPU.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from .errors import InputError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.world_size:
            raise InputError(f"--batch-size {batch_size} does not divide among {self.world_size} processes; use a "
                             f"multiple of {self.world_size}")

    def average(self, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Mean over ranks of each tensor, in one all-reduce; identity in a single process."""
        if not self.enabled or not tensors:
            return list(tensors)
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat)
        flat /= self.world_size
        return [chunk.view_as(t) for chunk, t in zip(flat.split([t.numel() for t in tensors]), tensors)]

    def average_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Average every parameter's gradient; a missing gradient counts as zeros, so all ranks step alike."""
        if not self.enabled:
            return
        params = list(params)
        grads = self.average([torch.zeros_like(p) if p.grad is None else p.grad for p in params])
        for p, g in zip(params, grads):
            p.grad = g

    def identical(self, tensors: Sequence[torch.Tensor]) -> bool:
        """Whether every rank holds exactly these values (compares against rank 0's)."""
        if not self.enabled:
            return True
        flat = torch.cat([t.detach().reshape(-1).float() for t in tensors])
        reference = flat.clone()
        dist.broadcast(reference, src=0)
        same = torch.tensor([float(torch.equal(flat, reference))], device=flat.device)
        dist.all_reduce(same, op=dist.ReduceOp.MIN)
        return bool(same.item())

    def gather(self, value: Any) -> list[Any]:
        """Every rank's `value` (any picklable object), in rank order, on every rank."""
        if not self.enabled:
            return [value]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out


SINGLE = DistContext()


def init_distributed(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join the process group torchrun describes in the environment; a plain run gets SINGLE and `device`."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return SINGLE, device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank, world_size, local_rank), device


def shutdown_distributed() -> None:
    """Leave the process group cleanly (a rank that exits with it still open can abort in gloo's threads)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
