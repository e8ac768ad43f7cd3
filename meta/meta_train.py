"""Meta-training across tasks (equations in docs/meta.md).

Per meta-step, for each task i of a meta-batch:
  z_i = E(G(task_i)),  (W0_i, alpha0_i) = (I(z_i, W), C(z_i))
  (W_i, alpha_i) = adapt(W0_i, alpha0_i; K inner steps)
  relaxed:   g_i = grad of L_query(W_i, alpha_i) w.r.t. (W_i, alpha_i), applied at (W0_i, alpha0_i) (first order)
  reinforce: M architectures a ~ pi(.|z_i); reward = query accuracy of a with W_i; REINFORCE on alpha0_i;
             g_i for W0_i = grad of the sampled architectures' mean query loss w.r.t. W_i (first order)
Then: Adam step on encoder, graph builder, controller and initializer with the mean of the g_i;
      Reptile on the base weights: W <- W + reptile_lr * mean_i (W_i - W0_i).
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from search_spaces.errors import InputError
from supernet.model import create_supernet
from supernet.relaxation import DiscreteRelaxation
from supernet.runtime import (RunDir, atomic_torch_save, atomic_write_text, load_checkpoint, pick_device, rng_state,
                              seed_everything, set_rng_state)
from supernet.search import logits_entropy

from .adapt import adapt, query_batch, query_metrics
from .controller import PolicyGradient, sample_architecture
from .model import MetaConfig, TaskDARTS
from .tasks import build_distributions


class MetaTrainer:
    def __init__(self, config: MetaConfig, device: torch.device):
        self.config = config
        self.device = device
        self.meta_train, self.meta_test, self.split = build_distributions(
            config.tasks, config.test_tasks, config.ways, config.shots, config.queries, config.tests, config.channels,
            config.image_size, config.meta_test_fraction, config.seed, config.data_root, config.download)
        if self.meta_train is None:
            raise InputError("no meta-training tasks: give --tasks with at least one data set")
        self.model = TaskDARTS(config).to(device)
        self.work = create_supernet(self.model.space, config.max_classes, config.channels, config.init_channels,
                                    config.layers).to(device)
        self.optimizer = torch.optim.Adam(self.model.outer_parameters(), config.meta_lr)
        self.policy = PolicyGradient(config.baseline_momentum, config.entropy_weight)
        self.task_rng = random.Random(config.seed)
        probe_rng = random.Random(config.seed + 7919)
        self.probes = [self.meta_train.sample(probe_rng).to(device) for _ in range(config.probe_tasks)]
        self.step = 0
        self.metrics: list[dict[str, Any]] = []

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "taskdarts-meta", "step": self.step, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "policy": self.policy.state_dict(),
                "task_rng": self.task_rng.getstate(), "rng": rng_state(), "metrics": self.metrics,
                "config": self.config.as_dict(), "space": self.model.space.name, "split": self.split.as_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.policy.load_state_dict(state["policy"])
        self.task_rng.setstate(state["task_rng"])
        set_rng_state(state["rng"])
        self.step = state["step"]
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

    def meta_step(self) -> dict[str, Any]:
        config, started = self.config, time.time()
        tasks = [self.meta_train.sample(self.task_rng).to(self.device) for _ in range(config.meta_batch)]
        base_buffers = {name: b.detach().clone() for name, b in self.model.supernet.named_buffers()}
        base = dict(self.model.supernet.named_parameters())
        z = self.model.embed(tasks)
        tensors: list[torch.Tensor] = []
        grads: list[torch.Tensor] = []
        deltas = {name: torch.zeros_like(p) for name, p in base.items()}
        stats = {"support_loss": 0.0, "logit_loss": 0.0, "query_loss": 0.0, "query_acc": 0.0, "entropy": 0.0}
        policy_loss = None
        for i, task in enumerate(tasks):
            weights0, logits0 = self.model.start(z[i])
            seed = config.seed * 1_000_003 + self.step * 97 + i
            adapted = adapt(self.work, weights0, base_buffers, logits0, task, config.inner_steps, config, seed,
                            config.mode)
            params = list(self.work.parameters())
            x, y = query_batch(task)
            if config.mode == "relaxed":
                alphas = list(adapted.logits.parameters())
                query_loss = F.cross_entropy(adapted.head(x, adapted.logits()), y)
                out = torch.autograd.grad(query_loss, params + alphas, allow_unused=True)
                g_weights, g_logits = out[:len(params)], out[len(params):]
                tensors += list(logits0.values())
                grads += [g / len(tasks) for g in g_logits]
                _, acc = query_metrics(adapted.head, adapted.logits(), task)
            else:
                log_probs, rewards, losses = [], [], []
                for _ in range(config.samples):
                    sample, log_prob = sample_architecture(logits0)
                    out = adapted.head(x, sample, DiscreteRelaxation())
                    losses.append(F.cross_entropy(out, y))
                    rewards.append((out.argmax(1) == y).float().mean().detach())
                    log_probs.append(log_prob)
                rewards_t = torch.stack(rewards)
                task_pg = self.policy.loss(torch.stack(log_probs), rewards_t, logits0) / len(tasks)
                policy_loss = task_pg if policy_loss is None else policy_loss + task_pg
                query_loss = torch.stack(losses).mean()
                g_weights = torch.autograd.grad(query_loss, params, allow_unused=True)
                acc = float(rewards_t.mean())
            if self.model.initializer is not None:
                for (name, w0), g in zip(weights0.items(), g_weights):
                    if g is not None and w0.requires_grad:
                        tensors.append(w0)
                        grads.append(g / len(tasks))
            with torch.no_grad():
                for (name, p_adapted) in self.work.named_parameters():
                    deltas[name] += (p_adapted - weights0[name].detach()) / len(tasks)
            stats["support_loss"] += adapted.support_loss / len(tasks)
            stats["logit_loss"] += adapted.logit_loss / len(tasks)
            stats["query_loss"] += query_loss.item() / len(tasks)
            stats["query_acc"] += acc / len(tasks)
            stats["entropy"] += sum(logits_entropy(logits0).values()) / len(logits0) / len(tasks)
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
        self.step += 1
        row: dict[str, Any] = {"meta_step": self.step, **{k: round(v, 6) for k, v in stats.items()}}
        if config.mode == "reinforce":
            row["baseline"] = self.policy.baseline
        row["distinct_genotypes"] = (self.distinct_genotypes()
                                     if self.step % config.log_every == 0 or self.step == config.meta_steps else "")
        row["seconds"] = round(time.time() - started, 3)
        self.metrics.append(row)
        return row


def run_meta_train(config: MetaConfig, run: RunDir, resume: bool = False, stop_after_step: int | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Meta-train; writes config.yaml, log.txt, metrics.csv, task_split.json and checkpoint.pt into `run`."""
    config.validate()
    run.check(resume)
    device = pick_device(config.device)
    seed_everything(config.seed)
    trainer = MetaTrainer(config, device)
    run.make()
    log = run.logger("meta-train")
    try:
        if resume:
            state = load_checkpoint(run.file("checkpoint.pt"))
            trainer.load_state_dict(state)
            log.info(f"resumed {run.path} after meta-step {trainer.step}")
        else:
            run.save_config(config.as_dict())
            atomic_write_text(run.file("task_split.json"), json.dumps(trainer.split.as_dict(), indent=1) + "\n")
            log.info(f"meta-train {config.space} ({config.mode}, encoder {'on' if config.use_encoder else 'off'}, "
                     f"initializer {'on' if config.use_initializer else 'off'}) on {', '.join(config.tasks)}: "
                     f"{config.ways}-way tasks, device {device}")
        bar = tqdm(total=config.meta_steps, initial=trainer.step, desc="meta-train", disable=not progress)
        while trainer.step < config.meta_steps:
            row = trainer.meta_step()
            bar.update(1)
            if trainer.step % config.log_every == 0 or trainer.step == config.meta_steps:
                run.write_metrics(trainer.metrics)
                atomic_torch_save(trainer.state_dict(), run.file("checkpoint.pt"))
                log.info(f"meta-step {row['meta_step']}/{config.meta_steps} query_acc {row['query_acc']:.3f} "
                         f"query_loss {row['query_loss']:.3f} entropy {row['entropy']:.3f} "
                         f"distinct genotypes {row['distinct_genotypes']}")
                if stop_after_step is not None and trainer.step >= stop_after_step < config.meta_steps:
                    log.info(f"stopping after meta-step {trainer.step} as asked; continue with --resume")
                    break
        bar.close()
        last = trainer.metrics[-1] if trainer.metrics else {}
        return {"meta_step": trainer.step, "query_acc": last.get("query_acc"),
                "distinct_genotypes": last.get("distinct_genotypes")}
    finally:
        run.close_logger("meta-train")


def load_meta(path: str, device: torch.device, expect_space: str | None = None) -> TaskDARTS:
    """A trained TaskDARTS from a meta-train checkpoint (or run directory)."""
    state = load_checkpoint(path)
    if not isinstance(state, dict) or state.get("kind") != "taskdarts-meta":
        raise InputError(f"{path} is not a TaskDARTS meta-checkpoint (made by `train.py meta-train`)")
    if expect_space is not None and state["space"] != expect_space:
        raise InputError(f"meta-checkpoint {path} is for the {state['space']} space, not {expect_space}")
    model = TaskDARTS(MetaConfig.from_dict(state["config"])).to(device)
    model.load_state_dict(state["model"])
    return model
