"""Data-parallel runs under `torchrun --nproc_per_node=N train.py ...`.

Every rank holds the whole model and reads its shard (every N-th sample) of each global batch of `--batch-size`
samples, so the optimisation matches a single-process run with the same batch size. Gradients of the supernet
weights and of the architecture logits are averaged across ranks (all-reduce) before every optimiser step, and
inside the second-order step, so all ranks hold identical weights and logits and derive the same genotype. Rank 0
alone logs and writes files. Backend: nccl when running on CUDA, gloo on CPU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
import torch.distributed as dist


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

    def average(self, tensors: Sequence[torch.Tensor | None]) -> list[torch.Tensor | None]:
        """Mean over ranks of each tensor (None stays None); identity in a single process."""
        if not self.enabled:
            return list(tensors)
        present = [t for t in tensors if t is not None]
        if present:
            flat = torch.cat([t.reshape(-1) for t in present])
            dist.all_reduce(flat)
            flat /= self.world_size
            out, offset = [], 0
            for t in tensors:
                if t is None:
                    out.append(None)
                    continue
                out.append(flat[offset:offset + t.numel()].view_as(t))
                offset += t.numel()
            return out
        return list(tensors)

    def average_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        params = [p for p in params if p.grad is not None]
        for p, g in zip(params, self.average([p.grad for p in params])):
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
