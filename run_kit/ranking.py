"""Rank statistics shared by everything that compares rankings of cells (proxies, table columns, predictors)."""
from __future__ import annotations

from collections.abc import Sequence

import torch


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """0-based ranks of a 1-D tensor, ties given the mean of the ranks they span (float64)."""
    values = torch.as_tensor(values, dtype=torch.float64).flatten()
    order = torch.argsort(values, stable=True)
    _, inverse, counts = torch.unique_consecutive(values[order], return_inverse=True, return_counts=True)
    last = torch.cumsum(counts, 0).double() - 1  # rank of each tie group's last member
    group_rank = last - (counts.double() - 1) / 2
    ranks = torch.empty_like(values)
    ranks[order] = group_rank[inverse]
    return ranks


def spearman(a: Sequence[float] | torch.Tensor, b: Sequence[float] | torch.Tensor) -> float:
    """Spearman's rho (average ranks for ties)."""
    # float64 before ranking: a list of Python floats would become float32, and rounding would invent ties
    ra = average_ranks(torch.as_tensor(a, dtype=torch.float64))
    rb = average_ranks(torch.as_tensor(b, dtype=torch.float64))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / ((ra * ra).sum() * (rb * rb).sum()).sqrt())
