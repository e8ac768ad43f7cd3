"""Continuous relaxations: architecture logits [edges, ops] -> per-edge op weights used by the supernet.

softmax (DARTS):        w_e = softmax(alpha_e)
gumbel (GDAS):          h_e = one_hot(argmax(alpha_e + g)) - sg(p_e) + p_e,  p_e = softmax((alpha_e + g) / tau),
                        g ~ Gumbel(0, 1); forward uses the hard one-hot, backward the soft p_e (straight through),
                        and only the sampled op is computed.
dirichlet (DrNAS):      w_e ~ Dirichlet(c_e),  c_e = elu(alpha_e) + 1, reparameterised (pathwise gradients reach
                        alpha); the mean c_e / sum(c_e) in evaluation. DrNAS's l2 regulariser on alpha is the logit
                        optimiser's weight decay.
`expected(logits)` is the deterministic weight each relaxation stands for (softmax, or the Dirichlet mean): the
genotype is derived from it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.distributions import Dirichlet

from run_kit import InputError


class SoftmaxRelaxation:
    hard = False

    def __call__(self, logits: torch.Tensor, sample: bool = True) -> torch.Tensor:
        return F.softmax(logits, dim=-1)

    def expected(self, logits: torch.Tensor) -> torch.Tensor:
        return F.softmax(logits, dim=-1)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class GumbelRelaxation:
    """Hard straight-through Gumbel-softmax with temperature `tau` (the search anneals it 10 -> 0.1).

    The noise comes from the relaxation's own generator, seeded with `seed`: data-parallel ranks seeded alike sample
    the same cell at every step by construction, and a checkpoint carries the generator's state.
    """

    hard = True

    def __init__(self, tau: float = 10.0, seed: int = 0):
        self.tau = tau
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, logits: torch.Tensor, sample: bool = True) -> torch.Tensor:
        """A Gumbel sample while training; the argmax op (no noise) when `sample` is False, for evaluation."""
        if not sample:
            return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
        exponential = torch.empty(logits.shape, dtype=torch.float64).exponential_(generator=self.generator)
        gumbels = -exponential.log().to(device=logits.device, dtype=logits.dtype)
        soft = F.softmax((logits + gumbels) / self.tau, dim=-1)
        hard = F.one_hot(soft.argmax(-1), logits.shape[-1]).to(soft.dtype)
        return hard - soft.detach() + soft

    def expected(self, logits: torch.Tensor) -> torch.Tensor:
        return F.softmax(logits, dim=-1)

    def state_dict(self) -> dict:
        return {"tau": self.tau, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.tau = state["tau"]
        self.generator.set_state(state["generator"])


class DirichletRelaxation:
    """DrNAS's Dirichlet mixing weights. The draws come from the relaxation's own random state (seeded with `seed`,
    checkpointed), not the global stream, so data-parallel ranks draw alike and a resumed run repeats exactly."""

    hard = False

    def __init__(self, seed: int = 0):
        self.generator = torch.Generator().manual_seed(seed)

    @staticmethod
    def concentration(logits: torch.Tensor) -> torch.Tensor:
        return F.elu(logits) + 1

    def __call__(self, logits: torch.Tensor, sample: bool = True) -> torch.Tensor:
        if not sample:
            return self.expected(logits)
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.generator.get_state())
            weights = Dirichlet(self.concentration(logits.float().cpu())).rsample()
            self.generator.set_state(torch.get_rng_state())
        return weights.to(device=logits.device, dtype=logits.dtype)

    def expected(self, logits: torch.Tensor) -> torch.Tensor:
        concentration = self.concentration(logits)
        return concentration / concentration.sum(-1, keepdim=True)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class DiscreteRelaxation:
    """The argmax op of every edge, no gradient to the logits: runs one sub-network of the supernet (for example an
    architecture sampled by a policy, passed as one-hot logits) with the shared weights."""

    hard = True

    def __call__(self, logits: torch.Tensor, sample: bool = True) -> torch.Tensor:
        return F.one_hot(logits.detach().argmax(-1), logits.shape[-1]).to(logits.dtype)


RELAXATIONS = {"softmax": SoftmaxRelaxation, "gumbel": GumbelRelaxation, "dirichlet": DirichletRelaxation}


def create_relaxation(name: str, seed: int = 0) -> SoftmaxRelaxation | GumbelRelaxation | DirichletRelaxation:
    if name not in RELAXATIONS:
        raise InputError(f"unknown relaxation '{name}'; known: {', '.join(RELAXATIONS)}")
    return SoftmaxRelaxation() if name == "softmax" else RELAXATIONS[name](seed=seed)


def gumbel_tau(epoch: int, epochs: int, tau_max: float = 10.0, tau_min: float = 0.1) -> float:
    """GDAS's linear temperature schedule over the search epochs."""
    if epochs <= 1:
        return tau_min
    return tau_max - (tau_max - tau_min) * epoch / (epochs - 1)
