"""TaskDARTS: task -> task graph -> embedding z -> (architecture logits, initial supernet weights).

The module owns the meta-learned base supernet (updated by Reptile), the graph builder and encoder (or one constant
embedding for the `--no-encoder` ablation), the controller and the optional weight initializer.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple, Sequence

import torch
from torch import nn
from torch_geometric.data import Batch

from image_sets.data import check_image_size
from run_kit import InputError
from run_kit.config import Config, require_at_least, require_choice, require_fraction, require_positive
from run_kit.device import PRECISIONS
from search_spaces import SearchSpace
from supernet.spaces import create_supernet, get_space
from supernet.regularizers import create_regularizer

from .controller import ArchController
from .encoder import ConstantEmbedding, TaskEncoder
from .initializer import WeightInitializer
from .task_graph import TaskGraphBuilder
from .tasks import SplitSizes, Task, build_distributions
from .teachers import teacher_search_config


@dataclass
class MetaConfig(Config):
    """Defaults: 3-way class-subset tasks of the embedded digits (7 meta-train / 3 meta-test classes), a tiny
    DARTS-space supernet, a few minutes on 2 CPU cores."""

    kind = "meta-train"

    space: str = "darts"
    tasks: list[str] = field(default_factory=lambda: ["digits"])
    test_tasks: list[str] = field(default_factory=list)
    ways: int = 3
    max_ways: int | None = None  # episodes of ways..max_ways classes (None: always `ways`)
    shots: int = 10
    queries: int = 10
    outers: int = 10  # images per class scoring the adapted task for the meta-gradient (inner loop never reads them)
    tests: int = 10
    meta_test_fraction: float = 0.3
    image_size: int = 8
    channels: int = 1
    max_classes: int = 10
    data_root: str = "data"
    download: bool = False
    layers: int = 3
    init_channels: int = 4
    embed_dim: int = 32
    hidden: int = 64
    gcn_layers: int = 2
    features: int = 32
    knn: int = 3
    graph_images_per_class: int = 20
    use_encoder: bool = True
    use_initializer: bool = True
    precision: str = "fp32"  # "bf16": bfloat16 autocast of the supernets' forward passes
    mode: str = "relaxed"
    objective: str = "adapt"  # "imitate": fit pi(a | z) to the end points of the teacher searches in `teachers`
    teachers: str | None = None  # teacher bank (run directory of `train.py teachers`) for the imitate objective
    imitate_target: str = "cell"  # "cell": each teacher's derived cell (one-hot); "weights": its op weights
    imitate_pool: str = "teacher"  # "dataset": an episode's target is the mean over its data set's teachers
    imitate_prior: float = 0.0  # with imitate_pool dataset: pseudo-teachers at the bank's mean target per data set
    dataset_loss: float = 0.0  # imitate: weight of the auxiliary loss that names an episode's data set from z
    teacher_method: str = "pcdarts"  # the teachers' search (a compare method)
    teacher_epochs: int = 20
    teacher_logit_lr: float | None = None  # None: the method's published logit lr (3e-4)
    teachers_per_dataset: int = 4
    teacher_classes: int = 20  # classes per teacher (fewer if the data set's meta-train split has fewer)
    teacher_images: int = 2000  # images per teacher search, split evenly over its classes
    teacher_probe_epochs: int = 0  # > 0: after each search, the skip probe (meta/teachers.py) with this many epochs
    teacher_probe_layers: int = 5  # cells per stage of the probe's trainings (NAS-Bench-201's own depth)
    logit_regularizer: str = "none"  # "beta": beta-decay on the inner logit steps and on the controller's alpha0
    regularizer_weight: float = 50.0  # its lambda at the last meta-step (ramped linearly from 0)
    meta_steps: int = 40
    meta_batch: int = 3
    inner_steps: int = 3
    inner_batch: int = 32
    inner_w_lr: float = 0.05
    inner_w_momentum: float = 0.9
    inner_w_weight_decay: float = 3e-4
    inner_logit_lr: float = 0.05
    grad_clip: float = 5.0
    meta_lr: float = 1e-3
    reptile_lr: float = 0.5
    samples: int = 4
    entropy_weight: float = 1e-3
    baseline_momentum: float = 0.9
    probe_tasks: int = 8
    log_every: int = 5
    seed: int = 0
    split_seed: int = 0  # draws the meta-train / meta-test class split, independently of the training seed
    device: str = "auto"


    def validate(self) -> None:
        get_space(self.space)
        require_choice(self, "mode", ("relaxed", "reinforce"))
        require_choice(self, "objective", ("adapt", "imitate"))
        require_choice(self, "imitate_target", ("cell", "weights"))
        require_choice(self, "imitate_pool", ("teacher", "dataset"))
        require_at_least(self, 0, "imitate_prior", "dataset_loss")
        if self.objective == "imitate" and not self.teachers:
            raise InputError("--objective imitate needs --teachers TEACHER_RUN (made by `train.py teachers`)")
        require_at_least(self, 1, "teacher_epochs", "teachers_per_dataset", "teacher_classes", "teacher_images")
        if self.teacher_logit_lr is not None:
            require_positive(self, "teacher_logit_lr")
        teacher_search_config(self, 0)  # an unknown --teacher-method is refused here
        require_at_least(self, 0, "teacher_probe_epochs")
        require_at_least(self, 1, "teacher_probe_layers")
        if self.teacher_probe_epochs and self.space != "nb201":
            raise InputError(f"--teacher-probe-epochs works in the nb201 space only, got --space {self.space}")
        require_at_least(self, 1, "meta_steps", "meta_batch", "ways", "shots", "queries", "outers", "layers",
                         "init_channels",
                         "samples", "log_every", "inner_batch", "probe_tasks")
        require_at_least(self, 0, "inner_steps", "tests", "split_seed")
        require_choice(self, "precision", PRECISIONS)
        create_regularizer(self.logit_regularizer, get_space(self.space), self.regularizer_weight)
        require_at_least(self, 0, "regularizer_weight")
        require_positive(self, "inner_w_lr", "inner_logit_lr", "meta_lr", "reptile_lr", "grad_clip")
        require_fraction(self, "reptile_lr", closed=True)
        require_fraction(self, "inner_w_momentum", "baseline_momentum", "meta_test_fraction")
        require_at_least(self, 0, "inner_w_weight_decay", "entropy_weight")
        if self.ways > self.max_classes:
            raise InputError(f"--ways {self.ways} exceeds --max-classes {self.max_classes}")
        if self.max_ways is not None and not self.ways <= self.max_ways <= self.max_classes:
            raise InputError(f"--max-ways {self.max_ways} must lie between --ways {self.ways} and --max-classes "
                             f"{self.max_classes}")
        if not self.tasks:
            raise InputError("--tasks needs at least one task spec")
        check_image_size(self.image_size)
        get_space(self.space).check_image_size(self.image_size)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def split_sizes(self) -> SplitSizes:
        return SplitSizes(self.shots, self.queries, self.outers, self.tests)

    def distributions(self):
        """(meta-train distribution, meta-test distribution, TaskSplit) of this config: every user of a run's tasks
        (meta-training, benchmarks drawing its held-out tasks) builds them here, so they share one split."""
        return build_distributions(self.tasks, self.test_tasks, self.ways, self.split_sizes, self.channels,
                                   self.image_size, self.meta_test_fraction, self.split_seed, self.data_root,
                                   self.download, self.max_ways)


class TaskStart(NamedTuple):
    """Where adaptation on a task starts: the controller's architecture logits and the initializer's weights."""

    logits: dict[str, torch.Tensor]
    weights: dict[str, torch.Tensor]


class TaskDARTS(nn.Module):
    def __init__(self, config: MetaConfig):
        super().__init__()
        self.config = config
        self.space: SearchSpace = get_space(config.space)
        self.supernet = create_supernet(self.space, config.max_classes, config.channels, config.init_channels,
                                        config.layers, precision=config.precision)
        if config.use_encoder:
            self.graph_builder = TaskGraphBuilder(config.features, config.knn)
            self.encoder: nn.Module = TaskEncoder(self.graph_builder.node_dim, config.hidden, config.embed_dim,
                                                  config.gcn_layers)
        else:
            self.graph_builder = None
            self.encoder = ConstantEmbedding(config.embed_dim)
        self.controller = ArchController(self.space, config.embed_dim, config.hidden)
        # The auxiliary head of --dataset-loss (imitate objective): which meta-train data set an episode came from,
        # read linearly off z (none without the encoder: a constant z names nothing).
        self.dataset_head = (nn.Linear(config.embed_dim, len(config.tasks)) if config.use_encoder
                             and config.objective == "imitate" and config.dataset_loss > 0 else None)
        self.initializer = (WeightInitializer(self.supernet.named_parameters(), config.embed_dim)
                            if config.use_initializer else None)

    def outer_parameters(self) -> list[nn.Parameter]:
        """What the outer optimiser trains; the base supernet is updated by Reptile instead."""
        modules = [self.encoder, self.controller, self.graph_builder, self.initializer, self.dataset_head]
        return [p for m in modules if m is not None for p in m.parameters()]

    def graph_sample(self, task: Task) -> tuple[torch.Tensor, torch.Tensor]:
        """The first min(graph_images_per_class, shots) support images of every class. The support split is a seeded
        random draw, so this is a random sample of the task; capped at the episodes' shots, a whole data set at
        deployment is embedded from as many images per class as meta-training tasks were."""
        y = task.data.y[task.support.to(task.data.y.device)]
        cap = min(self.config.graph_images_per_class, self.config.shots)
        keep = torch.cat([torch.nonzero(y == c).flatten()[:cap] for c in range(task.num_classes)])
        index = task.support.to(keep.device)[keep]
        return task.data.x[index.to(task.data.x.device)], task.data.y[index.to(task.data.y.device)]

    def embed(self, tasks: Sequence[Task]) -> torch.Tensor:
        """Task embeddings z [B, D]."""
        if self.graph_builder is None:
            return self.encoder(len(tasks))
        graphs = []
        for task in tasks:
            images, labels = self.graph_sample(task)
            graphs.append(self.graph_builder(images, labels, task.num_classes))
        return self.encoder(Batch.from_data_list(graphs))

    def start(self, z: torch.Tensor) -> TaskStart:
        """(architecture logits, initial weights) for one task embedding z [D]."""
        logits = {cell_type: value[0] for cell_type, value in self.controller(z[None]).items()}
        base = {name: p.detach() for name, p in self.supernet.named_parameters()}
        weights = self.initializer(z, base) if self.initializer is not None else base
        return TaskStart(logits, weights)
