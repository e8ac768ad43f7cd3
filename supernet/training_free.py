"""Training-free search: sample N cells, score each network at initialisation, keep the best.

NASWOT (Mellor et al. 2021, "Neural Architecture Search without Training"): for one mini-batch x_1..x_B of the
training split, every ReLU unit u gives each input a binary code c_i[u] = 1[pre-activation of u on x_i > 0]
(all ReLUs of the network concatenated, N_A units). With the Hamming distance d_H,
    K_H[i, j] = N_A - d_H(c_i, c_j) = c_i . c_j + (1 - c_i) . (1 - c_j),        score = log |det K_H|.
Inputs that the network already tells apart (different activation patterns) make K_H well conditioned.

synflow (Tanaka et al. 2020, as the zero-cost NAS proxy of Abdelfattah et al. 2021): with every parameter replaced
by its absolute value, BatchNorm removed, in float64, and an all-ones input of one image,
    R = sum of the network's outputs,        score = sum over conv and linear weights theta of |theta * dR/dtheta|.
It needs no data; it measures how much signal the (positive) network passes through its parameters.

Each candidate's network is the discrete network of the genotype at the search's scale (`--layers`,
`--init-channels`), initialised from a seed derived from (run seed, candidate index), so a search is deterministic.
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from image_sets import BatchStream, ImageData, Preprocess, channel_stats
from run_kit import InputError
from run_kit.distributed import SINGLE, DistContext
from run_kit.loop import Job

from .model import ArchLogits
from .spaces import create_network, get_space


@torch.no_grad()
def first_occurrences(x: torch.Tensor) -> torch.Tensor:
    """Indices of the first occurrence of every distinct row of x, in their order (duplicates dropped)."""
    _, inverse = torch.unique(x.flatten(1), dim=0, return_inverse=True)
    seen: set[int] = set()
    keep = [i for i, k in enumerate(inverse.tolist()) if not (k in seen or seen.add(k))]
    return torch.tensor(keep, dtype=torch.long, device=x.device)


def naswot_score(network: nn.Module, x: torch.Tensor) -> float:
    """log |det K_H| of the ReLU activation-pattern kernel over the batch `x` (network in train mode, BN on
    batch statistics, as at initialisation)."""
    kernel = torch.zeros(len(x), len(x), dtype=torch.float64, device=x.device)

    def accumulate(module, inputs, output):
        codes = (output.detach().flatten(1) > 0).double()
        kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

    hooks = [m.register_forward_hook(accumulate) for m in network.modules() if isinstance(m, nn.ReLU)]
    try:
        network.train()
        network(x)
    finally:
        for hook in hooks:
            hook.remove()
    return float(torch.linalg.slogdet(kernel).logabsdet)


def synflow_score(network: nn.Module, input_shape: tuple[int, ...]) -> float:
    """sum |theta * dR/dtheta| over conv and linear weights, R = sum(f_|theta|(ones)), BN removed, float64."""
    net = copy.deepcopy(network)
    for module in list(net.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(module, child_name, nn.Identity())
    net = net.double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    device = next(net.parameters()).device
    out = net(torch.ones(1, *input_shape, dtype=torch.float64, device=device))
    out = out[0] if isinstance(out, tuple) else out
    out.sum().backward()
    total = 0.0
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)) and module.weight.grad is not None:
            total += float((module.weight.detach() * module.weight.grad).abs().sum())
    return total


PROXIES: dict[str, str] = {"naswot": "NASWOT (log |det K_H|)", "synflow": "synflow"}


class TrainingFreeJob(Job):
    """One training-free search: `candidates` units, each a sampled cell scored at initialisation."""

    name, unit = "training-free search", "candidate"

    MAX_DRAWS = 100_000  # draws of a random cell that may fail `fits` before a candidate is given up on

    def __init__(self, config, data: ImageData, device: torch.device, dist: DistContext = SINGLE,
                 fits: Callable[[Any], bool] | None = None):
        """`fits`: only cells it accepts are candidates (a budget: uniform over the cells within it)."""
        config.validate()
        excluded = set(config.exclude_ops)
        self.fits = fits if not excluded else (  # candidates never use an excluded op
            lambda genotype: not self.space.ops_used(genotype) & excluded and (fits is None or fits(genotype)))
        self.config, self.device = config, device
        self.space = get_space(config.space)
        self.space.check_image_size(data.image_size)
        self.data = data
        mean, std = channel_stats(data)
        self.batch_size = min(config.batch_size, len(data))
        stream = BatchStream(data.to(device), torch.arange(len(data)), self.batch_size, config.seed,
                             Preprocess(mean, std), augment=False)
        self.batch = next(stream)[0]  # one mini-batch of the training split, the same for every candidate
        if config.proxy == "naswot":  # a repeated image repeats a row of the kernel: det 0 for every cell, no ranking
            self.batch = self.batch[first_occurrences(self.batch)]
        self.generator = torch.Generator().manual_seed(config.seed)
        self.total = config.candidates
        self.done = 0
        self.best: tuple[float, Any] | None = None
        self.metrics: list[dict[str, Any]] = []
        self.score: Callable[[nn.Module], float] = {
            "naswot": lambda net: naswot_score(net, self.batch),
            "synflow": lambda net: synflow_score(net, tuple(self.batch.shape[1:])),
        }[config.proxy]

    def describe(self) -> str:
        return "; ".join([*self.data.notes, (
            f"training-free search ({PROXIES[self.config.proxy]}) over {self.total} random {self.space.name} cells on "
            f"{self.data.name}: networks of {self.config.layers} cells, C={self.config.init_channels}, "
            f"{self.data.channels}x{self.data.image_size}x{self.data.image_size}, one batch of {self.batch_size} "
            f"training images, device {self.device}")])

    def candidate_network(self, genotype, index: int) -> nn.Module:
        """Candidate `index`'s network at initialisation, seeded by (run seed, index): a search is deterministic, and
        a benchmark scoring given cells builds exactly the networks a search would."""
        torch.manual_seed(self.config.seed * 1_000_003 + index)
        return create_network(genotype, self.data.num_classes, self.data.channels, self.config.init_channels,
                              self.config.layers, image_size=self.data.image_size).to(self.device)

    def run_unit(self, progress: bool) -> dict[str, Any]:
        started = time.time()
        genotype = self.space.random_genotype(self.generator)
        draws = 1
        while self.fits is not None and not self.fits(genotype):
            if draws == self.MAX_DRAWS:
                raise InputError(f"none of {draws:,} random cells fits the search's budget"
                                 + (f" without {', '.join(self.config.exclude_ops)}" if self.config.exclude_ops
                                    else ""))
            genotype, draws = self.space.random_genotype(self.generator), draws + 1
        score = self.score(self.candidate_network(genotype, self.done))
        if math.isfinite(score) and (self.best is None or score > self.best[0]):
            self.best = (score, genotype)
        self.done += 1
        if self.done == self.total and self.best is None:
            raise InputError(f"no candidate cell got a finite {self.config.proxy} score on {self.data.name} (a batch "
                             f"of {len(self.batch)} distinct images); nothing to choose from")
        row = {"candidate": self.done, "score": score, "genotype": self.space.to_text(genotype),
               "best_score": self.best[0] if self.best else float("nan"), "seconds": time.time() - started}
        self.metrics.append(row)
        return row

    def log_line(self, row: dict[str, Any]) -> str:
        return (f"candidate {row['candidate']}/{self.total} score {row['score']:.4g}; best {row['best_score']:.4g} "
                f"{self.space.to_text(self.best[1]) if self.best else '-'}")

    def genotype(self):
        return self.best[1] if self.best else None

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"candidate": self.done, "generator": self.generator.get_state(),
                                 "metrics": self.metrics, "space": self.space.name, "config": asdict(self.config)}
        if self.best is not None:
            state.update(best_score=self.best[0], genotype=self.space.to_json(self.best[1]),
                         arch=ArchLogits(self.space.logits_of(self.best[1])).state_dict())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.done = state["candidate"]
        self.generator.set_state(state["generator"])
        self.metrics = list(state["metrics"])
        if "genotype" in state:
            self.best = (state["best_score"], self.space.from_json(state["genotype"]))

    def replicated(self) -> tuple[str, list[torch.Tensor]]:
        return "candidate count", [torch.tensor([float(self.done)])]

    def checkpoint_files(self) -> dict[str, str]:
        return {"genotype.json": self.space.dumps(self.best[1]) + "\n"} if self.best else {}

    def final_lines(self, run_path) -> list[str]:
        return self.config.next_steps(run_path)

    def result(self) -> dict[str, Any]:
        return {"candidates": self.done, "batch_size": self.batch_size,
                "genotype": self.space.to_json(self.best[1]) if self.best else None,
                "score": self.best[0] if self.best else None,
                "search_seconds": round(sum(row["seconds"] for row in self.metrics), 2)}


def cell_one_hots(space, genotypes: list[str]) -> dict[str, torch.Tensor]:
    """Per cell type [cells, edges, ops]: each cell's (genotype text's) op on each edge, one-hot."""
    per_cell = [{k: F.one_hot(v.argmax(-1), v.shape[-1]).float()
                 for k, v in space.logits_of(space.from_text(genotype)).items()} for genotype in genotypes]
    return {k: torch.stack([h[k] for h in per_cell]) for k in per_cell[0]}


def op_frequencies(space, genotypes: list[str]) -> dict[str, torch.Tensor]:
    """Per cell type [edges, ops]: the share of the cells (genotype texts) that put each op on each edge; one cell's
    is its one-hot."""
    return {k: v.mean(0) for k, v in cell_one_hots(space, genotypes).items()}


TOP_FRACTION = 0.1
"""The share of a training-free search's scored cells whose ops make its end as op weights (a teacher's target)."""


def top_cell_frequencies(space, rows: list[dict[str, Any]], fraction: float) -> dict[str, list[list[float]]]:
    """Per edge, how often each op occurs among the best `fraction` of a training-free search's scored cells: the
    search's preference as a distribution over ops rather than one cell (rows: its metrics, score and genotype)."""
    scored = sorted((row for row in rows if math.isfinite(row["score"])), key=lambda row: -row["score"])
    top = scored[:max(1, round(fraction * len(scored)))]
    return {k: v.tolist() for k, v in op_frequencies(space, [row["genotype"] for row in top]).items()}
