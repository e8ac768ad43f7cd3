"""The one evaluation loop: mean cross-entropy and accuracy of a model over a pass of batches."""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F


@torch.no_grad()
def evaluate(forward: Callable[[torch.Tensor], torch.Tensor], batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
             ) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `forward(x) -> class scores` over `batches`."""
    total_loss, correct, count = 0.0, 0, 0
    for x, y in batches:
        out = forward(x)
        total_loss += F.cross_entropy(out, y, reduction="sum").item()
        correct += (out.argmax(1) == y).sum().item()
        count += len(y)
    return total_loss / max(count, 1), correct / max(count, 1)
