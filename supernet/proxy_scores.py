"""Training-free proxy scores of given cells, the one place studies score cells they did not sample themselves.

A study that compares "NASWOT-N over the cells that fit" with a proposal draws its N cells and asks for their scores;
the scores are those a training-free search (supernet/training_free.py) would give the same cells: the same scale,
the same mini-batch of training images, the network of cell `index` seeded by (seed, index). Scores are cached by
(proxy, index, cell), so drawing a cell twice (another budget, another device) scores it once.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from image_sets import ImageData

from .search import SearchConfig
from .training_free import TrainingFreeJob


class CellProxyScores:
    """Proxy scores (NASWOT, synflow) of NAS-Bench-201 cells at the teachers' scale (`layers` cells a stage, C =
    `init_channels`) on one mini-batch of `data`, cached by (proxy, index, cell)."""

    def __init__(self, data: ImageData, seed: int, proxies: Sequence[str] = ("naswot", "synflow"),
                 batch_size: int | None = None, layers: int = 1, init_channels: int = 8, space: str = "nb201"):
        extra = {} if batch_size is None else {"batch_size": batch_size}
        self.searches = {proxy: TrainingFreeJob(SearchConfig(space=space, proxy=proxy, layers=layers,
                                                             init_channels=init_channels, seed=seed, device="cpu",
                                                             **extra), data, torch.device("cpu"))
                         for proxy in proxies}
        self.space = next(iter(self.searches.values())).space
        self.cache: dict[tuple[str, int, str], float] = {}

    def score(self, proxy: str, genotype: Any, index: int) -> float:
        """The proxy's raw score of `genotype` as candidate `index` (its network seeded by (seed, index)); NaN and inf
        as computed."""
        key = (proxy, index, self.space.to_text(genotype))
        if key not in self.cache:
            self.cache[key] = self.searches[proxy].score(self.network(proxy, genotype, index))
        return self.cache[key]

    def network(self, proxy: str, genotype: Any, index: int) -> torch.nn.Module:
        """The network a candidate is scored on: `genotype` at the proxy's scale, seeded by (seed, index)."""
        return self.searches[proxy].candidate_network(genotype, index)

    def best_of(self, proxy: str, genotypes: Sequence[Any], indices: Sequence[int]) -> int:
        """The index among `indices` (of cells in `genotypes`, each scored as candidate `index`) with the highest
        finite score, the first on ties; a cell without a finite score ranks last."""
        if not indices:
            raise ValueError("no cells to choose from")

        def rank(index: int) -> float:
            value = self.score(proxy, genotypes[index], index)
            return value if math.isfinite(value) else -math.inf

        return max(indices, key=rank)
