"""Bilevel optimisation of DARTS: logits on the logit split, weights on the weight split, logits step first.

First order:   g_alpha = grad_alpha L_val(w, alpha)
Second order:  w' = w - xi * (grad_w L_train(w, alpha) + mu * m + lambda * w)      (one SGD step, xi = weight lr)
               g_alpha = grad_alpha L_val(w', alpha)
                         - xi * (grad_alpha L_train(w+, alpha) - grad_alpha L_train(w-, alpha)) / (2 eps)
               with v = grad_w' L_val(w', alpha), w+- = w +- eps * v and eps = 0.01 / ||v||
               (central finite differences at the original weights, as in the DARTS reference).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from run_kit.distributed import SINGLE, DistContext

Batch = tuple[torch.Tensor, torch.Tensor]
LogitsFn = Callable[[], Mapping[str, torch.Tensor]]
Reduce = Callable[[Sequence[torch.Tensor]], list[torch.Tensor]]


def _no_reduce(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return list(tensors)


def _grad(loss: torch.Tensor, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """d loss / d inputs, with zeros (not None) for inputs the loss does not reach, so every data-parallel rank
    averages the same list whatever ops it happened to run."""
    grads = torch.autograd.grad(loss, list(inputs), allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)]


def _loss(model: nn.Module, batch: Batch, logits: Mapping[str, torch.Tensor],
          params: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
    x, y = batch
    out = model(x, logits) if params is None else functional_call(model, dict(params), (x, logits))
    return F.cross_entropy(out, y)


def _weights(model: nn.Module) -> tuple[list[str], list[nn.Parameter]]:
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    return [n for n, _ in named], [p for _, p in named]


def second_order_logit_grads(model: nn.Module, logits: Mapping[str, torch.Tensor], weight_batch: Batch,
                             logit_batch: Batch, lr: float, weight_optimizer: torch.optim.Optimizer | None = None,
                             fd_radius: float = 0.01, reduce: Reduce = _no_reduce
                             ) -> tuple[list[torch.Tensor], float]:
    """d L_val(w'(alpha), alpha) / d alpha by the DARTS approximation, one per entry of `logits`; and L_val(w').

    `fd_radius` is the 0.01 of eps = 0.01 / ||v||. It is exact up to O(eps^2) where the loss is smooth; ReLU kinks
    within eps of the weights make a tiny network's finite difference rough (large networks average them out).
    `reduce` averages gradients across data-parallel processes, so every process computes the same w', v and result.
    """
    alphas = list(logits.values())
    names, params = _weights(model)
    detached = {k: v.detach() for k, v in logits.items()}
    grads = reduce(_grad(_loss(model, weight_batch, detached), params))
    momentum = weight_decay = 0.0
    if weight_optimizer is not None:
        group = weight_optimizer.param_groups[0]
        momentum, weight_decay = group.get("momentum", 0.0), group.get("weight_decay", 0.0)
    unrolled = {}
    with torch.no_grad():
        for name, p, g in zip(names, params, grads):
            step = g + weight_decay * p
            state = weight_optimizer.state.get(p, {}) if weight_optimizer is not None else {}
            if state.get("momentum_buffer") is not None:
                step = step + momentum * state["momentum_buffer"]
            unrolled[name] = (p - lr * step).requires_grad_(True)

    val_loss = _loss(model, logit_batch, logits, unrolled)
    out = reduce(_grad(val_loss, alphas + list(unrolled.values())))
    direct, vector = out[:len(alphas)], out[len(alphas):]
    hessian = reduce(_hessian_vector_product(model, logits, weight_batch, params, vector, fd_radius))
    return [d - lr * h for d, h in zip(direct, hessian)], val_loss.item()


def _hessian_vector_product(model, logits, batch, params, vector, r: float = 0.01) -> list[torch.Tensor]:
    """(grad_alpha L_train(w + eps v) - grad_alpha L_train(w - eps v)) / (2 eps), eps = r / ||v||; w is restored."""
    alphas = list(logits.values())
    norm = torch.sqrt(sum((v * v).sum() for v in vector))
    eps = r / norm.clamp_min(1e-12)
    with torch.no_grad():
        for p, v in zip(params, vector):
            p.add_(eps * v)
    plus = _grad(_loss(model, batch, logits), alphas)
    with torch.no_grad():
        for p, v in zip(params, vector):
            p.sub_(2 * eps * v)
    minus = _grad(_loss(model, batch, logits), alphas)
    with torch.no_grad():
        for p, v in zip(params, vector):
            p.add_(eps * v)
    return [(gp - gm) / (2 * eps) for gp, gm in zip(plus, minus)]


class BilevelOptimizer:
    """One search step = a logits step on a logit-split batch, then a weight step on a weight-split batch.

    `logits_fn` returns the architecture logits (the free `ArchLogits` of a plain search, or later a controller's
    output); `logit_optimizer` owns whatever produces them.
    """

    def __init__(self, model: nn.Module, logits_fn: LogitsFn, weight_optimizer: torch.optim.Optimizer,
                 logit_optimizer: torch.optim.Optimizer, order: int = 1, grad_clip: float = 5.0,
                 dist: DistContext = SINGLE, regularizer=None):
        """`dist` averages gradients across data-parallel processes (identity in a single process); `regularizer`
        (e.g. BetaDecay) adds the gradient of its `penalty(logits)` to the logit gradient."""
        if order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, got {order}")
        self.model = model
        self.logits_fn = logits_fn
        self.weight_optimizer = weight_optimizer
        self.logit_optimizer = logit_optimizer
        self.order = order
        self.grad_clip = grad_clip
        self.dist = dist
        self.regularizer = regularizer

    def logit_step(self, weight_batch: Batch, logit_batch: Batch, lr: float) -> float:
        """Gradients reach the logits (and whatever produced them), never the supernet weights."""
        self.logit_optimizer.zero_grad(set_to_none=True)
        logits = self.logits_fn()
        alphas = list(logits.values())
        if self.order == 1:
            loss = _loss(self.model, logit_batch, logits)
            grads = self.dist.average(_grad(loss, alphas))
            value = loss.item()
        else:
            grads, value = second_order_logit_grads(self.model, logits, weight_batch, logit_batch, lr,
                                                    self.weight_optimizer, reduce=self.dist.average)
        if self.regularizer is not None:  # the same on every rank: it depends on the logits alone
            grads = [g + r for g, r in zip(grads, _grad(self.regularizer.penalty(logits), alphas))]
        torch.autograd.backward(alphas, grads)
        self.logit_optimizer.step()
        return value

    def weight_step(self, weight_batch: Batch) -> tuple[float, float]:
        x, y = weight_batch
        self.weight_optimizer.zero_grad(set_to_none=True)
        logits = {k: v.detach() for k, v in self.logits_fn().items()}
        out = self.model(x, logits)
        loss = F.cross_entropy(out, y)
        loss.backward()
        self.dist.average_gradients(self.model.parameters())
        nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.weight_optimizer.step()
        return loss.item(), (out.argmax(1) == y).float().mean().item()

    def step(self, weight_batch: Batch, logit_batch: Batch, lr: float, update_logits: bool = True
             ) -> dict[str, float | None]:
        """`update_logits=False` trains the weights only (PC-DARTS's warm-up); the logit loss is then None."""
        logit_loss = self.logit_step(weight_batch, logit_batch, lr) if update_logits else None
        weight_loss, weight_acc = self.weight_step(weight_batch)
        return {"logit_loss": logit_loss, "weight_loss": weight_loss, "weight_acc": weight_acc}
