"""Adaptation on one task: K DARTS steps from a (task-conditioned) start. Meta-training's inner loop and
`search --meta --adapt-steps K` both run this function, so what is meta-learned is what a user gets.

Each step = one logits step on a query batch, then one weight step on a support batch (BilevelOptimizer, first
order; SGD for weights, Adam for logits).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from image_sets import BatchStream, Preprocess, ordered_batches
from supernet.accuracy import evaluate
from supernet.bilevel import BilevelOptimizer
from supernet.model import ArchLogits, load_weights

from .tasks import Task

if TYPE_CHECKING:
    from .config import AdaptSection

PIXEL_MEAN, PIXEL_STD = 0.5, 0.25  # fixed normalisation: tasks differ, and no task's statistics should leak in


class ClassSlice(nn.Module):
    """The supernet's class scores cut to a task's first n classes (the base classifier has `max_classes` outputs)."""

    def __init__(self, supernet: nn.Module, num_classes: int):
        super().__init__()
        self.supernet = supernet
        self.num_classes = num_classes

    def forward(self, x, logits, relaxation=None):
        return self.supernet(x, logits, relaxation)[:, : self.num_classes]


def task_preprocess(channels: int) -> Preprocess:
    return Preprocess(torch.full((channels,), PIXEL_MEAN), torch.full((channels,), PIXEL_STD))


@dataclass
class Adapted:
    model: ClassSlice
    logits: ArchLogits
    support_loss: float
    logit_loss: float
    history: dict[int, dict[str, float]]  # step -> query (and test) loss/accuracy at the steps in `record_at`


def adapt(work: nn.Module, weights: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
          logits: dict[str, torch.Tensor], task: Task, steps: int, settings: AdaptSection, grad_clip: float,
          seed: int, record_at: Sequence[int] = (), regularizer=None, update_logits: bool = True) -> Adapted:
    """Run `steps` adaptation steps of `work` (a scratch supernet) from `weights`/`logits` on the task, with the
    learning rates and batch size of a meta-config's adapt section.

    At every step count in `record_at` (0 = the start) the supernet's query and test loss/accuracy are recorded.
    `regularizer` (e.g. BetaDecay) adds its gradient to every logit step, as in a plain search. With
    `update_logits=False` only the weights move, under the given logits (imitation's weight steps).
    """
    load_weights(work, weights, buffers)
    model = ClassSlice(work, task.num_classes)
    arch = ArchLogits(logits).to(next(work.parameters()).device)
    w_opt = torch.optim.SGD(work.parameters(), settings.inner_w_lr, momentum=settings.inner_w_momentum,
                            weight_decay=settings.inner_w_weight_decay)
    a_opt = torch.optim.Adam(arch.parameters(), settings.inner_logit_lr, betas=(0.5, 0.999))
    preprocess = task_preprocess(task.data.channels)
    support = BatchStream(task.data, task.support, settings.inner_batch, seed * 2 + 1, preprocess, augment=False)
    query = BatchStream(task.data, task.query, settings.inner_batch, seed * 2 + 2, preprocess, augment=False)
    bilevel = BilevelOptimizer(model, arch, w_opt, a_opt, order=1, grad_clip=grad_clip, regularizer=regularizer)
    support_loss = logit_loss = float("nan")
    history: dict[int, dict[str, float]] = {}
    work.train()
    for step in range(steps + 1):
        if step in record_at:
            history[step] = _record(model, arch, task)
        if step == steps:
            break
        result = bilevel.step(next(support), next(query), lr=settings.inner_w_lr, update_logits=update_logits)
        support_loss = result["weight_loss"]
        logit_loss = result["logit_loss"] if update_logits else float("nan")
    return Adapted(model, arch, support_loss, logit_loss, history)


def _record(model: ClassSlice, arch: ArchLogits, task: Task) -> dict[str, float]:
    logits = {k: v.detach() for k, v in arch().items()}
    query_loss, query_acc = split_metrics(model, logits, task)
    out = {"query_loss": query_loss, "query_acc": query_acc}
    if len(task.test):
        out["test_loss"], out["test_acc"] = split_metrics(model, logits, task, split="test")
    return out


def split_batch(task: Task, split: str = "query") -> tuple[torch.Tensor, torch.Tensor]:
    """A whole split of the task as one batch (the meta-gradient's query loss)."""
    index = getattr(task, split).to(task.data.x.device)
    return task_preprocess(task.data.channels)(task.data.x[index]), task.data.y[index]


def split_metrics(model: ClassSlice, logits: dict[str, torch.Tensor], task: Task, relaxation=None,
                  chunk: int = 256, split: str = "query") -> tuple[float, float]:
    """Loss and accuracy on a split (query by default), BN on batch statistics as during search (in chunks)."""
    batches = ordered_batches(task.data, getattr(task, split), chunk, task_preprocess(task.data.channels))
    return evaluate(lambda x: model(x, logits, relaxation), batches)
