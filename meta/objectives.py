"""The meta-objectives: what one meta-step of `train.py meta-train` optimises (equations in docs/meta.md).

adapt (`Adapt`):   per task i of a meta-batch, z_i = E(G(task_i)), (alpha0_i, W0_i) = (C(z_i),
    I(z_i, W)); K inner DARTS steps give (W_i, alpha_i); g_i = grad of L_outer(W_i, alpha_i) w.r.t. (W_i, alpha_i),
    applied at (W0_i, alpha0_i) (first order). The outer split is read here only, never by the inner loop.
    It then takes an Adam step on encoder, graph builder, controller and initializer with the mean of the g_i, and
    Reptile on the base weights: W <- W + reptile_lr * mean_i (W_i - W0_i). With
    --logit-regularizer beta, lambda R(alpha) is added to every inner logit step and lambda R(alpha0_i) / B to the
    outer objective, lambda ramped from 0 over the meta-steps.
imitate (`Imitate`):   no inner loop: for B teachers k_i of the bank, an episode of k_i's classes gives z_i, and the
    loss is the cross-entropy of the teacher's target q_i (its cell, or its data set's pooled vote of cells)
    under the policy, -(1/(B E)) sum_i sum_e sum_o q_i[e, o] log softmax(C(z_i))[e, o], plus with --dataset-loss
    lambda the auxiliary lambda (1/B) sum_i CE(h(z_i), d_i) that names episode i's data set d_i from z_i. The start
    weights are meta-learned as in adapt, with the architecture held at the proposal: K = --imitate-weight-steps
    weight steps from W0_i = I(z_i, W) under the fixed logits C(z_i) give W_i; the first-order gradient of
    L_outer(W_i) reaches W0_i, so the initializer (not the encoder: z_i is held there, the embedding is the
    imitation's to shape), and Reptile moves the base W. One Adam step on encoder, graph builder, controller,
    initializer and h.

Each objective owns what only it needs (the inner loop's scratch supernet, the teachers' episodes and targets) and
its own step; MetaTrainJob (meta_train.py) owns what they share.
"""
from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from run_kit import InputError
from run_kit.loop import check_finite
from supernet.regularizers import create_regularizer
from supernet.search import logits_entropy
from supernet.spaces import create_supernet
from supernet.training_free import op_frequencies

from .adapt import Adapted, adapt, split_batch, split_metrics
from .controller import imitation_loss, target_matches
from .tasks import ClassPool, EpisodeDistribution, Task, TaskSplit
from .teacher_bank import TeacherBank, pooled_targets

if TYPE_CHECKING:
    from .config import MetaConfig
    from .model import TaskDARTS, TaskStart


class Objective:
    """One meta-objective: its step (one meta-step's update of the meta-model), its log line, its resumable state."""

    score = ""  # the metric a finished run reports

    def __init__(self, config: MetaConfig, model: TaskDARTS, meta_train, split: TaskSplit, device: torch.device):
        self.config, self.model, self.meta_train, self.device = config, model, meta_train, device

    def describe(self) -> str:
        raise NotImplementedError

    def task_seed(self, done: int, i: int) -> int:
        """The seed of task i's batch streams in meta-step `done + 1`."""
        return self.config.seed * 1_000_003 + done * 97 + i

    def scratch_supernet(self) -> torch.nn.Module:
        """The network inner steps run in, loaded from each task's start (the base supernet itself never trains)."""
        c, m = self.config, self.config.model
        return create_supernet(self.model.space, c.task.max_classes, c.task.channels, m.init_channels, m.layers,
                               precision=m.precision).to(self.device)

    def step(self, optimizer: torch.optim.Optimizer, rng: random.Random, done: int) -> dict[str, Any]:
        """Meta-step `done + 1`: update the meta-model, return its metrics."""
        raise NotImplementedError

    def log_line(self, row: dict[str, Any]) -> str:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class StartUpdate:
    """What a meta-batch of B tasks does to the start weights, in every objective: each task's first-order outer
    gradient g_i, applied at its start W0_i = I(z_i, W) (reaching the initializer and, through z_i, the encoder), and
    Reptile on the base, W <- W + reptile_lr * mean_i (W_i - W0_i)."""

    def __init__(self, model: TaskDARTS, batch: int):
        self.model, self.batch = model, batch
        self.buffers = {name: b.detach().clone() for name, b in model.supernet.named_buffers()}  # every task's start
        self.deltas = {name: torch.zeros_like(p) for name, p in model.supernet.named_parameters()}

    def add(self, start: TaskStart, work: torch.nn.Module, g_weights: Sequence[torch.Tensor | None],
            tensors: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        """Task i: its (W0_i, g_i / B) pairs onto the meta-step's backward lists, and W_i - W0_i into the mean."""
        if self.model.initializer is not None:
            for w0, g in zip(start.weights.values(), g_weights):
                if g is not None and w0.requires_grad:
                    tensors.append(w0)
                    grads.append(g / self.batch)
        with torch.no_grad():
            for name, p_adapted in work.named_parameters():
                self.deltas[name] += (p_adapted - start.weights[name].detach()) / self.batch

    def reptile(self, lr: float) -> None:
        with torch.no_grad():
            for name, p in self.model.supernet.named_parameters():
                p.add_(lr * self.deltas[name])


class Adapt(Objective):
    """The meta-gradient through K inner steps, and Reptile on the base weights; the outer loss through the
    relaxation, so its gradient reaches the start's logits directly."""

    score = "outer_acc"

    def __init__(self, config, model, meta_train, split, device):
        super().__init__(config, model, meta_train, split, device)
        self.work = self.scratch_supernet()
        self.regularizer = create_regularizer(config.meta.logit_regularizer, model.space,
                                              config.meta.regularizer_weight)

    def describe(self) -> str:
        c = self.config
        return (f"meta-train {c.space} (relaxed, encoder {'on' if c.model.use_encoder else 'off'}, "
                f"initializer {'on' if c.model.use_initializer else 'off'}) on {', '.join(c.task.tasks)}: "
                f"{c.task.ways_text}-way tasks, device {self.device}")

    def outer(self, task: Task, start: TaskStart, adapted: Adapted, params: list[torch.nn.Parameter],
              batch: int) -> tuple[torch.Tensor, float, Sequence[torch.Tensor | None], list[torch.Tensor],
                                   list[torch.Tensor]]:
        """The adapted task scored on its outer split: (outer loss, accuracy, its gradient for the start's weights,
        the start's logits and their gradients for the meta-gradient)."""
        x, y = split_batch(task, "outer")  # the inner loop never read these images
        alphas = list(adapted.logits.parameters())
        outer_loss = F.cross_entropy(adapted.model(x, adapted.logits()), y)
        out = torch.autograd.grad(outer_loss, params + alphas, allow_unused=True)
        g_weights, g_logits = out[:len(params)], out[len(params):]
        _, acc = split_metrics(adapted.model, adapted.logits(), task, split="outer")
        # a cell type the network does not use (DARTS at --layers 1 has no normal cell) has no gradient: zero
        g_logits = [torch.zeros_like(a) if g is None else g / batch for g, a in zip(g_logits, alphas)]
        return outer_loss, acc, g_weights, list(start.logits.values()), g_logits

    def step(self, optimizer, rng, done):
        config, model = self.config, self.model
        tasks = [self.meta_train.sample(rng).to(self.device) for _ in range(config.meta.meta_batch)]
        z = model.embed(tasks)
        tensors: list[torch.Tensor] = []
        grads: list[torch.Tensor] = []
        update = StartUpdate(model, len(tasks))
        stats = {"support_loss": 0.0, "logit_loss": 0.0, "outer_loss": 0.0, "outer_acc": 0.0, "entropy": 0.0}
        if self.regularizer is not None:
            self.regularizer.set_epoch(done, config.meta.meta_steps)
        for i, task in enumerate(tasks):
            start = model.start(z[i])
            adapted = adapt(self.work, start.weights, update.buffers, start.logits, task, config.adapt.inner_steps,
                            config.adapt, config.meta.grad_clip, self.task_seed(done, i), regularizer=self.regularizer)
            if self.regularizer is not None:  # anti-collapse on the proposal itself: lambda R(alpha0_i) / B
                tensors.append(self.regularizer.penalty(start.logits) / len(tasks))
                grads.append(torch.tensor(1.0, device=self.device))
            params = list(self.work.parameters())
            outer_loss, acc, g_weights, more_tensors, more_grads = self.outer(task, start, adapted, params,
                                                                              len(tasks))
            tensors += more_tensors
            grads += more_grads
            check_finite([outer_loss.item()], "outer loss", f"meta-step {done + 1}, task {i + 1}")
            update.add(start, self.work, g_weights, tensors, grads)
            stats["support_loss"] += adapted.support_loss / len(tasks)
            stats["logit_loss"] += adapted.logit_loss / len(tasks)
            stats["outer_loss"] += outer_loss.item() / len(tasks)
            stats["outer_acc"] += acc / len(tasks)
            stats["entropy"] += sum(logits_entropy(start.logits).values()) / len(start.logits) / len(tasks)
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(tensors, grads)
        torch.nn.utils.clip_grad_norm_(model.outer_parameters(), config.meta.grad_clip)
        optimizer.step()
        update.reptile(config.adapt.reptile_lr)
        return {k: round(v, 6) for k, v in stats.items()}

    def log_line(self, row):
        return (f"meta-step {row['meta_step']}/{self.config.meta.meta_steps} outer_acc {row['outer_acc']:.3f} "
                f"outer_loss {row['outer_loss']:.3f} entropy {row['entropy']:.3f} "
                f"distinct genotypes {row['distinct_genotypes']}")


class Imitate(Objective):
    """Fit the policy to the teacher bank's end points from the embeddings of episodes of each teacher's classes."""

    score = "teacher_match"

    def __init__(self, config, model, meta_train, split, device):
        super().__init__(config, model, meta_train, split, device)
        self.episodes, self.targets, self.datasets, self.shares = self.teacher_tasks(split)
        self.work = self.scratch_supernet() if config.imitate.imitate_weight_steps else None

    def teacher_tasks(self, split: TaskSplit) -> tuple[list[EpisodeDistribution], list[dict[str, torch.Tensor]],
                                                        list[int], list[float]]:
        """Per teacher of the bank: the episodes of its classes, its target [edges, ops] per cell type (its cell
        one-hot), its data set's index in --tasks and
        the budget tightness its episodes carry (1: an unbudgeted teacher)."""
        c = self.config
        bank = TeacherBank.load(c.imitate.teachers, c.space, split)
        pools = {pool.spec: pool for pool in getattr(self.meta_train, "pools", [])}
        space, episodes, targets = self.model.space, [], []
        datasets = [c.task.tasks.index(teacher.spec) for teacher in bank.teachers]
        for teacher in bank.teachers:
            pool = pools[teacher.spec]
            own = ClassPool(teacher.spec, pool.data, {label: pool.members[label] for label in teacher.labels})
            episodes.append(EpisodeDistribution([own], c.task.ways, c.task.split_sizes, c.task.max_ways))
            targets.append(op_frequencies(space, [teacher.genotype]))
        if c.imitate.imitate_pool == "dataset":
            targets = pooled_targets([teacher.group for teacher in bank.teachers], targets, c.imitate.imitate_prior)
        return episodes, targets, datasets, [teacher.task_share for teacher in bank.teachers]

    def describe(self) -> str:
        c = self.config
        weights = (f"start weights by {c.imitate.imitate_weight_steps} inner steps (initializer "
                   f"{'on' if c.model.use_initializer else 'off'})" if self.work is not None else "no start weights")
        return (f"meta-train {c.space} by imitation of {len(self.targets)} teacher searches ({c.imitate.teachers}), "
                f"encoder {'on' if c.model.use_encoder else 'off'}, {weights}, on {', '.join(c.task.tasks)}: "
                f"{c.task.ways_text}-way episodes of the teachers' classes, device {self.device}")

    def step(self, optimizer, rng, done):
        """Episodes of B teachers' classes, the mean per-edge negative log-likelihood of each teacher's target under
        pi(. | z), one Adam step (no inner loop: the teachers' searches were the inner loop, run once)."""
        config, model = self.config, self.model
        picks = [rng.randrange(len(self.episodes)) for _ in range(config.meta.meta_batch)]
        tasks = [dataclasses.replace(self.episodes[k].sample(rng).to(self.device), budget_share=self.shares[k])
                 for k in picks]
        z = model.embed(tasks)
        logits = model.controller(z)
        targets = [self.targets[k] for k in picks]
        loss = imitation = imitation_loss(logits, targets)
        check_finite([loss.item()], "imitation loss", f"meta-step {done + 1}")
        head_metrics: dict[str, Any] = {}
        if model.dataset_head is not None:  # + lambda CE(h(z_i), d_i): z must name the episode's data set
            datasets = torch.tensor([self.datasets[k] for k in picks], device=self.device)
            named = model.dataset_head(z)
            dataset_loss = F.cross_entropy(named, datasets)
            loss = loss + config.imitate.dataset_loss * dataset_loss
            head_metrics["dataset_loss"] = round(dataset_loss.item(), 6)
            head_metrics["dataset_acc"] = round(float((named.argmax(1) == datasets).float().mean()), 6)
        tensors, grads = [loss], [torch.ones_like(loss)]
        update = None
        if self.work is not None:
            update, outer_loss, outer_acc = self.start_weights(tasks, z.detach(), done, tensors, grads)
            head_metrics.update(outer_loss=round(outer_loss, 6), outer_acc=round(outer_acc, 6))
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(tensors, grads)
        # clipped apart: the start weights' gradient never rescales the proposal's, so the proposal is what the same
        # imitation without --imitate-weight-steps gives
        initializer = set(model.initializer.parameters()) if model.initializer is not None else set()
        torch.nn.utils.clip_grad_norm_([p for p in model.outer_parameters() if p not in initializer],
                                       config.meta.grad_clip)
        if initializer:
            torch.nn.utils.clip_grad_norm_(list(initializer), config.meta.grad_clip)
        optimizer.step()
        if update is not None:
            update.reptile(config.adapt.reptile_lr)
        with torch.no_grad():  # the share of edges whose most likely op is the teacher's; mean edge entropy
            match = float(target_matches(logits, targets).float().mean())
            entropy = sum(logits_entropy(logits).values()) / len(logits)
        return {"imitation_loss": round(imitation.item(), 6), "teacher_match": round(match, 6),
                "entropy": round(entropy, 6), **head_metrics}

    def start_weights(self, tasks: list[Task], z: torch.Tensor, done: int, tensors: list[torch.Tensor],
                      grads: list[torch.Tensor]) -> tuple[StartUpdate, float, float]:
        """The start weights' part of the step (the module docstring): K weight steps per episode under its fixed
        proposal, the outer split scoring them; returns the Reptile update and the mean outer loss and accuracy."""
        config, model = self.config, self.model
        update = StartUpdate(model, len(tasks))
        outer_loss_sum = outer_acc_sum = 0.0
        for i, task in enumerate(tasks):
            start = model.start(z[i])
            proposal = {k: v.detach() for k, v in start.logits.items()}
            adapted = adapt(self.work, start.weights, update.buffers, proposal, task,
                            config.imitate.imitate_weight_steps, config.adapt, config.meta.grad_clip,
                            self.task_seed(done, i), update_logits=False)
            x, y = split_batch(task, "outer")  # the inner steps never read these images
            scores = adapted.model(x, proposal)
            outer_loss = F.cross_entropy(scores, y)
            check_finite([outer_loss.item()], "outer loss", f"meta-step {done + 1}, episode {i + 1}")
            g_weights = torch.autograd.grad(outer_loss, list(self.work.parameters()), allow_unused=True)
            update.add(start, self.work, g_weights, tensors, grads)
            outer_loss_sum += outer_loss.item() / len(tasks)
            outer_acc_sum += float((scores.argmax(1) == y).float().mean()) / len(tasks)
        return update, outer_loss_sum, outer_acc_sum

    def log_line(self, row):
        return (f"meta-step {row['meta_step']}/{self.config.meta.meta_steps} imitation_loss "
                f"{row['imitation_loss']:.3f} teacher_match {row['teacher_match']:.3f} entropy {row['entropy']:.3f} "
                + (f"dataset_acc {row['dataset_acc']:.2f} " if "dataset_acc" in row else "")
                + (f"outer_acc {row['outer_acc']:.3f} " if "outer_acc" in row else "")
                + f"distinct genotypes {row['distinct_genotypes']}")


OBJECTIVES: dict[str, type[Objective]] = {"adapt": Adapt, "imitate": Imitate}


def create_objective(config: MetaConfig, model: TaskDARTS, meta_train, split: TaskSplit,
                     device: torch.device) -> Objective:
    if config.meta.objective not in OBJECTIVES:
        raise InputError(f"unknown --objective '{config.meta.objective}'; known: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[config.meta.objective](config, model, meta_train, split, device)
