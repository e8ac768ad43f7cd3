"""ArchController: task embedding z -> architecture logits for every cell type of a search space.

alpha_t = reshape(W_t ReLU(W_1 z + b_1) + b_t, [edges, ops])  for each cell type t
The logits are a policy over architectures: the supernet relaxes them (softmax / Gumbel), and
pi(a | z) = prod_e Categorical(softmax(alpha_e))[a_e] can be sampled and trained by policy gradient (`PolicyGradient`,
as meta/predictor_policy.py trains the logits on a cell predictor's reward).
Output weights start at N(0, 1e-3^2) and biases at 0, so an untrained controller gives near-uniform logits.
"""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn
from torch.distributions import Categorical

from search_spaces import SearchSpace


class ArchController(nn.Module):
    def __init__(self, space: SearchSpace, embed_dim: int = 32, hidden: int = 64, init_std: float = 1e-3):
        super().__init__()
        self.shapes = space.logits_shapes()
        self.trunk = nn.Sequential(nn.Linear(embed_dim, hidden), nn.ReLU(inplace=True))
        self.heads = nn.ModuleDict({cell_type: nn.Linear(hidden, edges * ops)
                                    for cell_type, (edges, ops) in self.shapes.items()})
        for head in self.heads.values():
            nn.init.normal_(head.weight, std=init_std)
            nn.init.zeros_(head.bias)

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """z [B, D] -> {cell_type: [B, edges, ops]}."""
        h = self.trunk(z)
        return {cell_type: rearrange(head(h), "b (edges ops) -> b edges ops", edges=self.shapes[cell_type][0])
                for cell_type, head in self.heads.items()}


def policy(logits: dict[str, torch.Tensor]) -> dict[str, Categorical]:
    """pi(a) = prod over cell types and edges of Categorical(logits=alpha_e)."""
    return {cell_type: Categorical(logits=value) for cell_type, value in logits.items()}


def sample_architecture(logits: dict[str, torch.Tensor], generator: torch.Generator | None = None
                        ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Draw one op per edge from pi; returns (one-hot samples per cell type, log pi(a)). The draw itself uses
    `generator` (the global RNG if None), so a seeded policy-gradient run repeats exactly."""
    samples, log_prob = {}, 0.0
    for cell_type, dist in policy(logits).items():
        index = torch.multinomial(dist.probs.detach().float().cpu(), 1, generator=generator).flatten()
        index = index.to(logits[cell_type].device)
        samples[cell_type] = nn.functional.one_hot(index, dist.param_shape[-1]).to(logits[cell_type].dtype)
        log_prob = log_prob + dist.log_prob(index).sum()
    return samples, log_prob


def imitation_loss(logits: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    """-(1 / (B E)) sum_i sum_e sum_o q_i[e, o] log pi_e(o | z_i): the cross-entropy of each task's teacher
    distribution q_i [edges, ops] under the policy, per edge. With one-hot q_i (a teacher's cell) it is the negative
    log-likelihood of the teacher's architecture, -log pi(a_i | z_i) / E. logits {cell_type: [B, edges, ops]}."""
    total, edges = 0.0, 0
    for cell_type, value in logits.items():
        target = torch.stack([t[cell_type] for t in targets]).to(value.device, value.dtype)
        total = total - (target * torch.log_softmax(value, dim=-1)).sum()
        edges += target.shape[0] * target.shape[1]
    return total / edges


def target_matches(logits: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    """[B, E] (E: the edges of all cell types): whether each edge's most likely op under the policy is the one its
    target q_i puts first. logits {cell_type: [B, edges, ops]}; targets, per task, {cell_type: [edges, ops]}."""
    return torch.cat([value.argmax(-1).cpu() == torch.stack([t[k] for t in targets]).argmax(-1).cpu()
                      for k, value in logits.items()], dim=1)


def policy_entropy(logits: dict[str, torch.Tensor]) -> torch.Tensor:
    """H(pi): the sum over edges of the entropy of each edge's Categorical."""
    return sum(dist.entropy().sum() for dist in policy(logits).values())


class PolicyGradient:
    """REINFORCE with a moving-average baseline and an entropy bonus:

    loss = -(R - b) * log pi(a) - beta * H(pi),   b <- m * b + (1 - m) * R
    """

    def __init__(self, momentum: float = 0.9, entropy_weight: float = 1e-3):
        self.momentum = momentum
        self.entropy_weight = entropy_weight
        self.baseline: float | None = None

    def loss(self, log_probs: torch.Tensor, rewards: torch.Tensor, logits: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean over samples of one policy; updates the baseline after using it."""
        mean_reward = float(rewards.mean())
        baseline = mean_reward if self.baseline is None else self.baseline
        advantage = rewards.to(log_probs.dtype) - baseline
        loss = -(advantage * log_probs).mean() - self.entropy_weight * policy_entropy(logits)
        self.baseline = mean_reward if self.baseline is None else (
            self.momentum * self.baseline + (1 - self.momentum) * mean_reward)
        return loss

    def state_dict(self) -> dict:
        return {"baseline": self.baseline}

    def load_state_dict(self, state: dict) -> None:
        self.baseline = state["baseline"]
