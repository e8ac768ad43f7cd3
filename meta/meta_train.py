"""Meta-training across tasks (equations in docs/meta.md).

Per meta-step, for each task i of a meta-batch:
  z_i = E(G(task_i)),  (alpha0_i, W0_i) = (C(z_i), I(z_i, W))
  (W_i, alpha_i) = adapt(W0_i, alpha0_i; K inner steps)
  relaxed:   g_i = grad of L_outer(W_i, alpha_i) w.r.t. (W_i, alpha_i), applied at (W0_i, alpha0_i) (first order)
  reinforce: M architectures a ~ pi(.|z_i); reward = outer-split accuracy of a with W_i; REINFORCE on alpha0_i;
             g_i for W0_i = grad of the sampled architectures' mean outer loss w.r.t. W_i (first order)
The inner loop trains W on the support split and alpha on the query split; the outer split is read only here.
With --logit-regularizer beta, lambda R(alpha) (supernet/regularizers.py) is added to every inner logit step and
lambda R(alpha0_i) / B to the outer objective, lambda ramped from 0 to --regularizer-weight over the meta-steps.
Then: Adam step on encoder, graph builder, controller and initializer with the mean of the g_i;
      Reptile on the base weights: W <- W + reptile_lr * mean_i (W_i - W0_i).
That is the `adapt` objective. The `imitate` objective (--teachers, meta/teachers.py) has no inner loop: for B
teachers k_i, an episode of k_i's classes gives z_i, and the loss is the cross-entropy of the teacher's cell (or op
weights) q_i under the policy, -(1/(B E)) sum_i sum_e sum_o q_i[e, o] log softmax(C(z_i))[e, o], plus with
--dataset-loss lambda the auxiliary lambda (1/B) sum_i CE(h(z_i), d_i) that names episode i's data set d_i from z_i
(Adam on encoder, graph builder, controller and h; the base weights and the initializer are not trained).
`MetaTrainJob` is one meta-training run; `run_meta_train` runs it through the shared resumable driver.
"""
from __future__ import annotations

import json
import random
import time
from typing import Any

import torch
import torch.nn.functional as F

from run_kit import InputError
from run_kit.device import pick_device, seed_everything
from run_kit.files import load_checkpoint
from run_kit.loop import Job, check_finite, run_job
from run_kit.run_dir import RunDir
from supernet.spaces import create_supernet
from supernet.regularizers import create_regularizer
from supernet.relaxation import DiscreteRelaxation
from supernet.search import logits_entropy

from .adapt import adapt, split_batch, split_metrics
from .controller import PolicyGradient, imitation_loss, sample_architecture, target_matches
from .model import MetaConfig, TaskDARTS
from .tasks import ClassPool, EpisodeDistribution
from .teachers import TeacherBank, op_frequencies, pooled_targets


class MetaTrainJob(Job):
    name, unit = "meta-train", "meta-step"

    def __init__(self, config: MetaConfig, device: torch.device):
        config.validate()
        self.config = config
        self.device = device
        self.meta_train, self.meta_test, self.split = config.distributions()
        if self.meta_train is None:
            raise InputError("no meta-training tasks: give --tasks with at least one data set")
        self.model = TaskDARTS(config).to(device)
        self.work = None if config.objective == "imitate" else create_supernet(  # the inner loop's network
            self.model.space, config.max_classes, config.channels, config.init_channels, config.layers,
            precision=config.precision).to(device)
        self.optimizer = torch.optim.Adam(self.model.outer_parameters(), config.meta_lr)
        self.policy = PolicyGradient(config.baseline_momentum, config.entropy_weight)
        self.regularizer = create_regularizer(config.logit_regularizer, self.model.space, config.regularizer_weight)
        self.task_rng = random.Random(config.seed)
        if config.objective == "imitate":
            self.teacher_episodes, self.teacher_targets, self.teacher_datasets = self.teacher_tasks()
        probe_rng = random.Random(config.seed + 7919)
        self.probes = [self.meta_train.sample(probe_rng).to(device) for _ in range(config.probe_tasks)]
        self.total = config.meta_steps
        self.done = 0
        self.metrics: list[dict[str, Any]] = []

    def teacher_tasks(self) -> tuple[list[EpisodeDistribution], list[dict[str, torch.Tensor]], list[int]]:
        """Per teacher of the bank: the episodes of its classes, its target [edges, ops] per cell type (its cell
        one-hot, `--imitate-target cell`, or its final op weights, `weights`) and its data set's index in --tasks."""
        bank = TeacherBank.load(self.config.teachers, self.config.space, self.split)
        pools = {pool.spec: pool for pool in getattr(self.meta_train, "pools", [])}
        space, episodes, targets = self.model.space, [], []
        datasets = [self.config.tasks.index(teacher.spec) for teacher in bank.teachers]
        for teacher in bank.teachers:
            pool = pools[teacher.spec]
            own = ClassPool(teacher.spec, pool.data, {label: pool.members[label] for label in teacher.labels})
            episodes.append(EpisodeDistribution([own], self.config.ways, self.config.split_sizes, self.config.max_ways))
            if self.config.imitate_target == "cell":
                targets.append(op_frequencies(space, [teacher.genotype]))
            else:
                targets.append({k: torch.tensor(v) for k, v in teacher.weights.items()})
        if self.config.imitate_pool == "dataset":
            targets = pooled_targets([teacher.spec for teacher in bank.teachers], targets, self.config.imitate_prior)
        return episodes, targets, datasets

    def describe(self) -> str:
        c = self.config
        ways = f"{c.ways}-{c.max_ways}" if c.max_ways else str(c.ways)
        if c.objective == "imitate":
            return (f"meta-train {c.space} by imitation of {len(self.teacher_targets)} teacher searches "
                    f"({c.teachers}), encoder {'on' if c.use_encoder else 'off'}, on {', '.join(c.tasks)}: {ways}-way "
                    f"episodes of the teachers' classes, device {self.device}")
        return (f"meta-train {c.space} ({c.mode}, encoder {'on' if c.use_encoder else 'off'}, initializer "
                f"{'on' if c.use_initializer else 'off'}) on {', '.join(c.tasks)}: {ways}-way tasks, device "
                f"{self.device}")

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "taskdarts-meta", "step": self.done, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "policy": self.policy.state_dict(),
                "task_rng": self.task_rng.getstate(), "metrics": self.metrics, "config": self.config.as_dict(),
                "space": self.model.space.name, "split": self.split.as_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError:
            raise InputError("the checkpoint's meta-model does not match this configuration") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.policy.load_state_dict(state["policy"])
        version, internal, gauss = state["task_rng"]
        self.task_rng.setstate((version, tuple(internal), gauss))
        self.done = state["step"]
        self.metrics = list(state["metrics"])

    def distinct_genotypes(self) -> int:
        """How many different genotypes the controller proposes (zero-shot) over the fixed probe tasks."""
        self.model.eval()
        with torch.no_grad():
            z = self.model.embed(self.probes)
            logits = self.model.controller(z)
        self.model.train()
        space = self.model.space
        return len({space.to_text(space.derive({k: v[i] for k, v in logits.items()})) for i in range(len(self.probes))})

    def task_seed(self, i: int) -> int:
        """The seed of task i's batch streams in the coming meta-step."""
        return self.config.seed * 1_000_003 + self.done * 97 + i

    def run_unit(self, progress: bool) -> dict[str, Any]:
        """One meta-step over a meta-batch of tasks."""
        if self.config.objective == "imitate":
            return self.imitation_unit()
        config, started = self.config, time.time()
        tasks = [self.meta_train.sample(self.task_rng).to(self.device) for _ in range(config.meta_batch)]
        base_buffers = {name: b.detach().clone() for name, b in self.model.supernet.named_buffers()}
        base = dict(self.model.supernet.named_parameters())
        z = self.model.embed(tasks)
        tensors: list[torch.Tensor] = []
        grads: list[torch.Tensor] = []
        deltas = {name: torch.zeros_like(p) for name, p in base.items()}
        stats = {"support_loss": 0.0, "logit_loss": 0.0, "outer_loss": 0.0, "outer_acc": 0.0, "entropy": 0.0}
        policy_loss = None
        if self.regularizer is not None:
            self.regularizer.set_epoch(self.done, config.meta_steps)
        for i, task in enumerate(tasks):
            start = self.model.start(z[i])
            adapted = adapt(self.work, start.weights, base_buffers, start.logits, task, config.inner_steps, config,
                            self.task_seed(i), config.mode, regularizer=self.regularizer)
            if self.regularizer is not None:  # anti-collapse on the proposal itself: lambda R(alpha0_i) / B
                tensors.append(self.regularizer.penalty(start.logits) / len(tasks))
                grads.append(torch.tensor(1.0, device=self.device))
            params = list(self.work.parameters())
            x, y = split_batch(task, "outer")  # the inner loop never read these images
            if config.mode == "relaxed":
                alphas = list(adapted.logits.parameters())
                outer_loss = F.cross_entropy(adapted.model(x, adapted.logits()), y)
                out = torch.autograd.grad(outer_loss, params + alphas, allow_unused=True)
                g_weights, g_logits = out[:len(params)], out[len(params):]
                tensors += list(start.logits.values())
                grads += [g / len(tasks) for g in g_logits]
                _, acc = split_metrics(adapted.model, adapted.logits(), task, split="outer")
            else:
                log_probs, rewards, losses = [], [], []
                for _ in range(config.samples):
                    sample, log_prob = sample_architecture(start.logits)
                    out = adapted.model(x, sample, DiscreteRelaxation())
                    losses.append(F.cross_entropy(out, y))
                    rewards.append((out.argmax(1) == y).float().mean().detach())
                    log_probs.append(log_prob)
                rewards_t = torch.stack(rewards)
                task_pg = self.policy.loss(torch.stack(log_probs), rewards_t, start.logits) / len(tasks)
                policy_loss = task_pg if policy_loss is None else policy_loss + task_pg
                outer_loss = torch.stack(losses).mean()
                g_weights = torch.autograd.grad(outer_loss, params, allow_unused=True)
                acc = float(rewards_t.mean())
            check_finite([outer_loss.item()], "outer loss", f"meta-step {self.done + 1}, task {i + 1}")
            if self.model.initializer is not None:
                for (name, w0), g in zip(start.weights.items(), g_weights):
                    if g is not None and w0.requires_grad:
                        tensors.append(w0)
                        grads.append(g / len(tasks))
            with torch.no_grad():
                for name, p_adapted in self.work.named_parameters():
                    deltas[name] += (p_adapted - start.weights[name].detach()) / len(tasks)
            stats["support_loss"] += adapted.support_loss / len(tasks)
            stats["logit_loss"] += adapted.logit_loss / len(tasks)
            stats["outer_loss"] += outer_loss.item() / len(tasks)
            stats["outer_acc"] += acc / len(tasks)
            stats["entropy"] += sum(logits_entropy(start.logits).values()) / len(start.logits) / len(tasks)
        self.optimizer.zero_grad(set_to_none=True)
        if policy_loss is not None:
            tensors.append(policy_loss)
            grads.append(torch.ones_like(policy_loss))
        torch.autograd.backward(tensors, grads)
        torch.nn.utils.clip_grad_norm_(self.model.outer_parameters(), config.grad_clip)
        self.optimizer.step()
        with torch.no_grad():
            for name, p in base.items():
                p.add_(config.reptile_lr * deltas[name])
        self.done += 1
        row: dict[str, Any] = {"meta_step": self.done, **{k: round(v, 6) for k, v in stats.items()}}
        if config.mode == "reinforce":
            row["baseline"] = self.policy.baseline
        row["distinct_genotypes"] = (self.distinct_genotypes()
                                     if self.done % config.log_every == 0 or self.done == config.meta_steps else "")
        row["seconds"] = round(time.time() - started, 3)
        self.metrics.append(row)
        return row

    def imitation_unit(self) -> dict[str, Any]:
        """One meta-step of the imitate objective: episodes of B teachers' classes, the mean per-edge negative
        log-likelihood of each teacher's architecture under pi(. | z), one Adam step (no inner loop: the teachers'
        searches were the inner loop, run once)."""
        config, started = self.config, time.time()
        picks = [self.task_rng.randrange(len(self.teacher_episodes)) for _ in range(config.meta_batch)]
        tasks = [self.teacher_episodes[k].sample(self.task_rng).to(self.device) for k in picks]
        z = self.model.embed(tasks)
        logits = self.model.controller(z)
        targets = [self.teacher_targets[k] for k in picks]
        loss = imitation = imitation_loss(logits, targets)
        check_finite([loss.item()], "imitation loss", f"meta-step {self.done + 1}")
        head_metrics: dict[str, Any] = {}
        if self.model.dataset_head is not None:  # + lambda CE(h(z_i), d_i): z must name the episode's data set
            datasets = torch.tensor([self.teacher_datasets[k] for k in picks], device=self.device)
            named = self.model.dataset_head(z)
            dataset_loss = F.cross_entropy(named, datasets)
            loss = loss + config.dataset_loss * dataset_loss
            head_metrics["dataset_loss"] = round(dataset_loss.item(), 6)
            head_metrics["dataset_acc"] = round(float((named.argmax(1) == datasets).float().mean()), 6)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.outer_parameters(), config.grad_clip)
        self.optimizer.step()
        with torch.no_grad():  # the share of edges whose most likely op is the teacher's; mean edge entropy
            match = float(target_matches(logits, targets).float().mean())
            entropy = sum(logits_entropy(logits).values()) / len(logits)
        self.done += 1
        row: dict[str, Any] = {"meta_step": self.done, "imitation_loss": round(imitation.item(), 6),
               "teacher_match": round(match, 6), "entropy": round(entropy, 6), **head_metrics}
        row["distinct_genotypes"] = (self.distinct_genotypes()
                                     if self.done % config.log_every == 0 or self.done == config.meta_steps else "")
        row["seconds"] = round(time.time() - started, 3)
        self.metrics.append(row)
        return row

    def log_line(self, row: dict[str, Any]) -> str:
        if self.config.objective == "imitate":
            return (f"meta-step {row['meta_step']}/{self.config.meta_steps} imitation_loss {row['imitation_loss']:.3f} "
                    f"teacher_match {row['teacher_match']:.3f} entropy {row['entropy']:.3f} "
                    + (f"dataset_acc {row['dataset_acc']:.2f} " if "dataset_acc" in row else "")
                    + f"distinct genotypes {row['distinct_genotypes']}")
        return (f"meta-step {row['meta_step']}/{self.config.meta_steps} outer_acc {row['outer_acc']:.3f} "
                f"outer_loss {row['outer_loss']:.3f} entropy {row['entropy']:.3f} "
                f"distinct genotypes {row['distinct_genotypes']}")

    def replicated(self) -> tuple[str, list[torch.Tensor]]:
        return "meta-model weights", list(self.model.parameters())

    def start_files(self) -> dict[str, str]:
        return {"task_split.json": json.dumps(self.split.as_dict(), indent=1) + "\n"}




    def result(self) -> dict[str, Any]:
        last = self.metrics[-1] if self.metrics else {}
        score = ("teacher_match",) if self.config.objective == "imitate" else ("outer_acc",)
        return {"meta_step": self.done, **{key: last.get(key) for key in score},
                "distinct_genotypes": last.get("distinct_genotypes")}


def run_meta_train(config: MetaConfig, run: RunDir, resume: bool = False, stop_after_step: int | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Meta-train; writes config.yaml, log.txt, metrics.csv, task_split.json and checkpoint.pt into `run`."""
    config.validate()
    run.check(resume)
    device = pick_device(config.device)
    seed_everything(config.seed)
    job = MetaTrainJob(config, device)
    return run_job(job, run, resume, stop_after_step, progress, every=config.log_every)


def load_meta(path: str, device: torch.device, expect_space: str | None = None) -> TaskDARTS:
    """A trained TaskDARTS from a meta-train checkpoint (or run directory)."""
    state = load_checkpoint(path)
    if state.get("kind") != "taskdarts-meta":
        raise InputError(f"{path} is not a TaskDARTS meta-checkpoint (made by `train.py meta-train`)")
    if expect_space is not None and state["space"] != expect_space:
        raise InputError(f"meta-checkpoint {path} is for the {state['space']} space, not {expect_space}")
    model = TaskDARTS(MetaConfig.from_dict(state["config"])).to(device)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError:
        raise InputError(f"meta-checkpoint {path} does not match its own config") from None
    return model
