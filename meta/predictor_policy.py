"""The controller's logits from a cell-level predictor: a policy over architectures trained by policy gradient on the
predictor's reward under the budget, so that the logits agree with the predictor.

A cell-ranking proposal picks one cell, but a warm search starts from logits and `search --meta` reports them. The
policy pi(a) = prod_e Categorical(softmax(alpha_e))[a_e] is trained by REINFORCE (meta/controller.PolicyGradient:
moving-average baseline, entropy bonus) on

    R(a) = standardised predicted score of a     if a fits the budget,
    R(a) = the lowest score of any cell           otherwise,

with `samples` cells drawn per step (a seeded generator, so that a run repeats). Where the space can be enumerated
(NAS-Bench-201), the proposal itself remains the best predicted cell that fits; the policy is what a search starts
from and where, in a space too large to enumerate, candidates are drawn and re-ranked by the predictor.
"""
from __future__ import annotations

import torch

from search_spaces import SearchSpace

from .controller import PolicyGradient


def cell_indices(space: SearchSpace, ops: torch.Tensor) -> torch.Tensor:
    """[N, edges] op indices -> index in the enumeration order of supernet.costs.every_cell (first edge most
    significant)."""
    weights = len(space.ops) ** torch.arange(space.num_edges - 1, -1, -1)
    return (ops * weights).sum(1)


def fit_policy(space: SearchSpace, scores: torch.Tensor, fits: torch.Tensor | None = None, steps: int = 300,
               samples: int = 64, lr: float = 0.1, seed: int = 0) -> dict[str, torch.Tensor]:
    """Logits {cell type: [edges, ops]} trained on the predictor's `scores` over every cell (module docstring)."""
    if len(space.cell_types) != 1:
        raise ValueError("fit_policy needs a space whose cells can be enumerated (one cell type)")
    reward = (scores - scores[torch.isfinite(scores)].mean()) / scores[torch.isfinite(scores)].std().clamp_min(1e-12)
    if fits is not None:
        reward = reward.masked_fill(~fits, float(reward[fits].min()) if bool(fits.any()) else -1.0)
    (cell_type,) = space.cell_types
    alpha = torch.zeros(space.num_edges, len(space.ops), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([alpha], lr=lr)
    trainer = PolicyGradient()
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        probs = torch.softmax(alpha.detach(), -1)
        drawn = torch.multinomial(probs, samples, replacement=True, generator=generator).T  # [samples, edges]
        log_probs = torch.log_softmax(alpha, -1).gather(1, drawn.T).sum(0)  # [samples]
        loss = trainer.loss(log_probs, reward[cell_indices(space, drawn)], {cell_type: alpha})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {cell_type: alpha.detach().float()}
