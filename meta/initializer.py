"""WeightInitializer: task embedding z -> the supernet's starting weights for that task.

For every weight tensor W of the meta-learned base supernet:
  conv / linear weight (dim > 1):  W_0 = W * (1 + tanh(gamma(z)))   per output channel, a factor in (0, 2)
  vector (bias, BN affine):        W_0 = W + tanh(beta(z))
with [gamma; beta] = U z, U zero-initialised (so the start is the base weights until it learns otherwise). The tanh
bounds keep a task's start a modulation of the base weights: unbounded, a standardised z of unit scale could scale
weights by several times or flip their sign, and meta-training became unstable.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


class WeightInitializer(nn.Module):
    def __init__(self, named_params: Iterable[tuple[str, nn.Parameter]], embed_dim: int = 32):
        super().__init__()
        self.names, self.sizes, self.kinds = [], [], []
        for name, p in named_params:
            self.names.append(name)
            self.sizes.append(p.shape[0] if p.dim() > 1 else p.numel())
            self.kinds.append("scale" if p.dim() > 1 else "shift")
        self.generator = nn.Linear(embed_dim, sum(self.sizes))
        nn.init.zeros_(self.generator.weight)
        nn.init.zeros_(self.generator.bias)

    def forward(self, z: torch.Tensor, base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """z [D] and base weights -> modulated starting weights (differentiable in z and in the generator)."""
        codes = torch.split(self.generator(z), self.sizes)
        out = {}
        for name, kind, code in zip(self.names, self.kinds, codes):
            w = base[name]
            if kind == "scale":
                out[name] = w * (1 + torch.tanh(code).view(-1, *([1] * (w.dim() - 1))))
            else:
                out[name] = w + torch.tanh(code).view_as(w)
        return out
