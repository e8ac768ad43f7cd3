"""The resumable batch streams the search, retraining and meta-learning loops read.

Images stay uint8 on the compute device; a batch is converted, augmented (random crop with padding, optional
horizontal flip, cutout) and normalised there, so CPU and CUDA runs take the same path and no worker processes
are needed. Every random draw comes from a generator seeded by (seed, pass, position), so a stream resumes exactly.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from .data import ImageData


@dataclass
class Augment:
    crop_padding: int = 0
    hflip: bool = False
    cutout: int = 0


@dataclass
class Preprocess:
    """uint8 batch -> normalised float batch, with the augmentation of a training stream."""

    mean: torch.Tensor
    std: torch.Tensor
    augment: Augment = field(default_factory=Augment)
    channels_last: bool = False  # match a model converted with .to(memory_format=torch.channels_last)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = x.float().div_(255)
        n, _, h, w = x.shape
        a = self.augment
        if generator is not None and a.crop_padding:
            p = a.crop_padding
            padded = torch.nn.functional.pad(x, (p, p, p, p))
            dy = torch.randint(0, 2 * p + 1, (n,), generator=generator).tolist()
            dx = torch.randint(0, 2 * p + 1, (n,), generator=generator).tolist()
            x = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
        if generator is not None and a.hflip:
            flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        x = (x - self.mean.to(x.device)[None, :, None, None]) / self.std.to(x.device)[None, :, None, None]
        if generator is not None and a.cutout:
            cy = torch.randint(0, h, (n,), generator=generator).to(x.device)
            cx = torch.randint(0, w, (n,), generator=generator).to(x.device)
            rows = torch.arange(h, device=x.device)[None, :, None]
            cols = torch.arange(w, device=x.device)[None, None, :]
            half = a.cutout // 2  # the reference's square: [c - L//2, c + L//2), clipped to the image
            hole = ((rows >= cy[:, None, None] - half) & (rows < cy[:, None, None] + half)
                    & (cols >= cx[:, None, None] - half) & (cols < cx[:, None, None] + half))
            x = x.masked_fill(hole[:, None], 0.0)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


class BatchStream:
    """Endless batches over `indices`: pass p visits them in a permutation drawn from (seed, p), last partial batch
    dropped. `state_dict()` is two integers, so a checkpoint resumes the stream at the exact next batch."""

    def __init__(self, data: ImageData, indices: torch.Tensor, batch_size: int, seed: int, preprocess: Preprocess,
                 augment: bool = True, shard: tuple[int, int] = (0, 1)):
        """`shard` = (rank, world size): this process reads every world-size-th sample of each global batch."""
        self.data = data
        self.indices = indices.cpu()
        self.batch_size = min(batch_size, len(self.indices))
        self.rank, self.world_size = shard
        if self.batch_size < self.world_size:
            raise ValueError(f"a batch of {self.batch_size} cannot be shared by {self.world_size} processes")
        self.seed = seed
        self.preprocess = preprocess
        self.augment = augment
        self.pass_index = 0
        self.position = 0
        self._order: torch.Tensor | None = None

    @property
    def batches_per_pass(self) -> int:
        return len(self.indices) // self.batch_size

    def _generator(self, *salt: int) -> torch.Generator:
        return torch.Generator().manual_seed(hash((self.seed, *salt)) % (2**63))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.position >= self.batches_per_pass:
            self.pass_index, self.position, self._order = self.pass_index + 1, 0, None
        if self._order is None:
            perm = torch.randperm(len(self.indices), generator=self._generator(self.pass_index, -1))
            self._order = self.indices[perm]
        chosen = self._order[self.position * self.batch_size:(self.position + 1) * self.batch_size]
        chosen = chosen[self.rank::self.world_size]
        generator = self._generator(self.pass_index, self.position, self.rank) if self.augment else None
        self.position += 1
        chosen = chosen.to(self.data.x.device)
        return self.preprocess(self.data.x[chosen], generator), self.data.y[chosen]

    def state_dict(self) -> dict[str, int]:
        return {"pass_index": self.pass_index, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.pass_index, self.position, self._order = state["pass_index"], state["position"], None


def ordered_batches(data: ImageData, indices: torch.Tensor | None, batch_size: int, preprocess: Preprocess
                    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One pass in index order, no augmentation: for evaluation."""
    indices = torch.arange(len(data)) if indices is None else indices.cpu()
    for start in range(0, len(indices), batch_size):
        chosen = indices[start:start + batch_size].to(data.x.device)
        yield preprocess(data.x[chosen]), data.y[chosen]


