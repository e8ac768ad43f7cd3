"""TaskDARTS: task -> task graph -> embedding z -> (architecture logits, initial supernet weights).

The module owns the meta-learned base supernet (updated by Reptile), the graph builder and encoder (or one constant
embedding for the `--no-encoder` ablation), the controller and the optional weight initializer. A meta-checkpoint
holds it with its config; `load_meta` reads one back, refusing one of another format with one line.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn
from torch_geometric.data import Batch

from run_kit import InputError
from run_kit.files import load_checkpoint
from search_spaces import SearchSpace
from supernet.spaces import create_supernet, get_space

from .config import MetaConfig
from .controller import ArchController
from .encoder import ConstantEmbedding, TaskEncoder
from .initializer import WeightInitializer
from .task_graph import TaskGraphBuilder
from .tasks import Task

META_KIND = "taskdarts-meta"
META_FORMAT = 2
"""The layout of a meta-checkpoint: 1 (until 2026-12-03) had a flat config and the policy's state under "policy";
2 has the sectioned config of meta/config.py and the objective's state under "objective"."""


class TaskStart(NamedTuple):
    """Where adaptation on a task starts: the controller's architecture logits and the initializer's weights."""

    logits: dict[str, torch.Tensor]
    weights: dict[str, torch.Tensor]


class TaskDARTS(nn.Module):
    def __init__(self, config: MetaConfig):
        super().__init__()
        self.config = config
        self.space: SearchSpace = get_space(config.space)
        m, task = config.model, config.task
        self.supernet = create_supernet(self.space, task.max_classes, task.channels, m.init_channels, m.layers,
                                        precision=m.precision)
        if m.use_encoder:
            self.graph_builder = TaskGraphBuilder(m.features, m.knn)
            self.encoder: nn.Module = TaskEncoder(self.graph_builder.node_dim, m.hidden, m.embed_dim, m.gcn_layers)
        else:
            self.graph_builder = None
            self.encoder = ConstantEmbedding(m.embed_dim)
        # z = [E(G(task)); s] with --budget-aware: s, the share of the space's cells the task's budget lets through
        # (1: none), is a coordinate of its own. As one more attribute node of the graph it was lost: on a bank whose
        # cells depend on the budget alone, z moved 0.3 of its norm of 7 between s = 0.1 and 1 and the imitation
        # loss stayed at ln 2 for 1,500 meta-steps (docs/meta.md, "Budgets").
        z_dim = self.embed_dim = m.embed_dim + int(m.budget_aware)
        self.controller = ArchController(self.space, z_dim, m.hidden)
        # The auxiliary head of --dataset-loss (imitate objective): which meta-train data set an episode came from,
        # read linearly off z (none without the encoder: a constant z names nothing).
        self.dataset_head = (nn.Linear(z_dim, len(task.tasks)) if m.use_encoder
                             and config.meta.objective == "imitate" and config.imitate.dataset_loss > 0 else None)
        self.initializer = (WeightInitializer(self.supernet.named_parameters(), z_dim)
                            if m.use_initializer else None)

    def outer_parameters(self) -> list[nn.Parameter]:
        """What the outer optimiser trains; the base supernet is updated by Reptile instead."""
        modules = [self.encoder, self.controller, self.graph_builder, self.initializer, self.dataset_head]
        return [p for m in modules if m is not None for p in m.parameters()]

    def graph_sample(self, task: Task) -> tuple[torch.Tensor, torch.Tensor]:
        """The first min(graph_images_per_class, shots) support images of every class. The support split is a seeded
        random draw, so this is a random sample of the task; capped at the episodes' shots, a whole data set at
        deployment is embedded from as many images per class as meta-training tasks were."""
        y = task.data.y[task.support.to(task.data.y.device)]
        cap = min(self.config.model.graph_images_per_class, self.config.task.shots)
        keep = torch.cat([torch.nonzero(y == c).flatten()[:cap] for c in range(task.num_classes)])
        index = task.support.to(keep.device)[keep]
        return task.data.x[index.to(task.data.x.device)], task.data.y[index.to(task.data.y.device)]

    def embed(self, tasks: Sequence[Task]) -> torch.Tensor:
        """Task embeddings z [B, embed_dim] (the budget's share last with --budget-aware)."""
        if self.graph_builder is None:
            z = self.encoder(len(tasks))
        else:
            graphs = []
            for task in tasks:
                images, labels = self.graph_sample(task)
                graphs.append(self.graph_builder(images, labels, task.num_classes))
            z = self.encoder(Batch.from_data_list(graphs))
        if not self.config.model.budget_aware:
            return z
        shares = torch.tensor([[task.budget_share] for task in tasks], dtype=z.dtype, device=z.device)
        return torch.cat([z, shares], dim=1)

    def start(self, z: torch.Tensor) -> TaskStart:
        """(architecture logits, initial weights) for one task embedding z [D]."""
        logits = {cell_type: value[0] for cell_type, value in self.controller(z[None]).items()}
        base = {name: p.detach() for name, p in self.supernet.named_parameters()}
        weights = self.initializer(z, base) if self.initializer is not None else base
        return TaskStart(logits, weights)


def check_meta_checkpoint(state: dict, path: str) -> None:
    """Refuse, with one line naming it, a checkpoint that is no meta-checkpoint or one of another format."""
    if state.get("kind") != META_KIND:
        raise InputError(f"{path} is not a TaskDARTS meta-checkpoint (made by `train.py meta-train`)")
    made = state.get("format", 1)
    if made != META_FORMAT:
        raise InputError(f"{path} has meta-checkpoint format {made}; this TaskDARTS reads format {META_FORMAT} "
                         f"(meta/model.py META_FORMAT): meta-train it again")


def load_meta(path: str, device: torch.device, expect_space: str | None = None) -> TaskDARTS:
    """A trained TaskDARTS from a meta-train checkpoint (or run directory)."""
    state = load_checkpoint(path)
    check_meta_checkpoint(state, path)
    if expect_space is not None and state["space"] != expect_space:
        raise InputError(f"meta-checkpoint {path} is for the {state['space']} space, not {expect_space}")
    model = TaskDARTS(MetaConfig.from_dict(state["config"])).to(device)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError:
        raise InputError(f"meta-checkpoint {path} does not match its own config") from None
    return model
