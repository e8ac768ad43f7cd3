"""`ImageData`, the in-memory form of every data set, and the seeded ways of splitting and resizing it."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from run_kit import InputError
from run_kit.device import require_memory

HOLDOUT_FRACTION = 0.2
HOLDOUT_SEED = 0
MAX_IMAGE_SIZE = 4096


def check_image_size(size: int) -> None:
    if not 1 <= size <= MAX_IMAGE_SIZE:
        raise InputError(f"--image-size must be between 1 and {MAX_IMAGE_SIZE}, got {size}")


@dataclass
class ImageData:
    """A labelled image set: x uint8 [N, C, H, W], y int64 [N] in 0..num_classes-1."""

    x: torch.Tensor
    y: torch.Tensor
    classes: list[str]
    name: str = ""
    hflip: bool = False  # natural images may be mirrored; digits and letters may not
    notes: tuple[str, ...] = ()  # what loading changed (remapped labels), for the run's log

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return self.x.shape[1]

    @property
    def image_size(self) -> int:
        return self.x.shape[-1]

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device) -> ImageData:
        return ImageData(self.x.to(device), self.y.to(device), self.classes, self.name, self.hflip, self.notes)

    def subset(self, indices: torch.Tensor) -> ImageData:
        indices = indices.to(self.x.device)
        return ImageData(self.x[indices], self.y[indices], self.classes, self.name, self.hflip, self.notes)


IN_MEMORY = "in-memory: "


def in_memory(description: str) -> str:
    """The `dataset` a run records when its caller hands it images in memory (a benchmark's or a teacher's class
    sample): says what they were, and cannot be mistaken for a data set to load (a resumed run refuses to guess)."""
    return IN_MEMORY + description


def channel_stats(data: ImageData) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std in [0, 1] units, from the data the model trains on."""
    x = data.x.float().div_(255)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return mean, std


def split_indices(n: int, fractions: Sequence[float], seed: int) -> list[torch.Tensor]:
    """A seeded random partition of range(n) into len(fractions) parts of the given sizes."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    sizes = [int(round(f * n)) for f in fractions[:-1]]
    sizes.append(n - sum(sizes))
    return list(torch.split(perm, sizes))


def stratified_holdout(y: torch.Tensor, fraction: float = HOLDOUT_FRACTION, seed: int = HOLDOUT_SEED
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, test indices): `fraction` of every class, drawn with a fixed seed."""
    generator = torch.Generator().manual_seed(seed)
    train, test = [], []
    for label in torch.unique(y).tolist():
        members = torch.nonzero(y == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        cut = int(round(fraction * len(members)))
        test.append(members[:cut])
        train.append(members[cut:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


def resize(data: ImageData, image_size: int | None) -> ImageData:
    if image_size is None or (data.x.shape[-2] == image_size and data.x.shape[-1] == image_size):
        return data
    check_image_size(image_size)
    require_memory(len(data) * data.channels * image_size ** 2, f"{len(data)} images of {image_size} px")
    chunks = []
    for start in range(0, len(data), 4096):
        x = data.x[start:start + 4096].float()
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
        chunks.append(x.round_().clamp_(0, 255).to(torch.uint8))
    return ImageData(torch.cat(chunks), data.y, data.classes, data.name, data.hflip, data.notes)
