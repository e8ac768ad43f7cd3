"""Regularisers of the architecture logits, added to the logit loss (anti-collapse).

beta (beta-DARTS, "beta-decay"):
    R(alpha) = sum over cell types t of  mean over edges e of  logsumexp_k alpha_(t,e,k)
    dR / d alpha_(t,e,k) = softmax(alpha_(t,e))_k / E_t
    with weight lambda(epoch) = lambda_max * epoch / (epochs - 1), ramped linearly from 0 (lambda_max = 50).
Decaying logsumexp keeps the logits of an edge close together, so the softmax cannot saturate early on one
parameter-free op (the skip collapse), and the op weights stay informative for the derivation.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from run_kit import InputError
from search_spaces import SearchSpace


class BetaDecay:
    def __init__(self, space: SearchSpace, max_weight: float = 50.0):
        self.cell_types = space.cell_types
        self.max_weight = max_weight
        self.weight = 0.0

    def set_epoch(self, epoch: int, epochs: int) -> None:
        self.weight = self.max_weight * epoch / max(epochs - 1, 1)

    def penalty(self, logits: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """lambda * R(alpha) (edge-normalisation logits, where present, are not regularised)."""
        return self.weight * sum(torch.logsumexp(logits[t], dim=-1).mean() for t in self.cell_types)


REGULARIZERS = {"beta": BetaDecay}


def create_regularizer(name: str, space: SearchSpace, max_weight: float) -> BetaDecay | None:
    if name == "none":
        return None
    if name not in REGULARIZERS:
        raise InputError(f"unknown logit regularizer '{name}'; known: none, {', '.join(REGULARIZERS)}")
    return REGULARIZERS[name](space, max_weight)
