"""The meta-train config (also the teachers' config, so both see one set of tasks and one class split), in sections
that config.yaml and a --config file mirror:

    space, seed, device
    task:     which tasks: data sets, episode sizes, the held-out split
    model:    the meta-model: supernet size, task graph, encoder, controller, initializer
    meta:     the objective and its outer loop
    adapt:    the inner loop (adapting a start on a task: meta-training's adapt objective and `search --meta`)
    imitate:  the imitate objective: which teacher bank, which targets
    teacher:  the teacher searches of `train.py teachers`

Every option keeps the name of its flag (`--teacher-epochs` is teacher.teacher_epochs), so a key of the file is the
flag a user would type.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from image_sets.data import check_image_size
from run_kit import InputError
from run_kit.cli import option
from run_kit.config import (
    Config,
    RemovedOption,
    require_at_least,
    require_choice,
    require_fraction,
    require_positive,
)
from run_kit.device import PRECISIONS
from supernet.methods import method_names, method_settings
from supernet.regularizers import REGULARIZERS, create_regularizer
from supernet.search import SearchConfig
from supernet.spaces import get_space, space_names

from .objectives import OBJECTIVES
from .tasks import SplitSizes, build_distributions


@dataclass
class TaskSection(Config):
    kind = "meta-train task"

    tasks: list[str] = option(default_factory=lambda: ["digits"], metavar="SPEC",
                              help="DATASET (N-way episodes from a seeded part of its classes) or whole:DATASET")
    test_tasks: list[str] = option(default_factory=list, help="held-out data sets for meta-testing", metavar="SPEC",
                                   nargs="*")
    ways: int = option(3, "classes per episode")
    max_ways: int | None = option(None, "episodes of --ways..--max-ways classes (None: always --ways)")
    shots: int = option(10, "support images per class (the inner loop's weight steps)")
    queries: int = option(10, "query images per class (the inner loop's logit steps)")
    outers: int = option(10, "images per class scoring the adapted task for the meta-gradient (the inner loop never "
                             "reads them)")
    tests: int = option(10, "meta-test images per class")
    meta_test_fraction: float = option(0.3, "share of each data set's classes held out for meta-testing")
    split_seed: int = option(0, "seed of the meta-train / meta-test class split alone (--seed does not change the "
                                "split)")
    image_size: int = option(8, "every task's images at this square size")
    channels: int = option(1, "... and this many channels")
    max_classes: int = option(10, "the classifier's width")
    data_root: str = option("data", "where torchvision data sets live")
    download: bool = option(False, "let torchvision download the sets")

    def validate(self) -> None:
        require_at_least(self, 1, "ways", "shots", "queries", "outers")
        require_at_least(self, 0, "tests", "split_seed")
        require_fraction(self, "meta_test_fraction")
        if self.ways > self.max_classes:
            raise InputError(f"--ways {self.ways} exceeds --max-classes {self.max_classes}")
        if self.max_ways is not None and not self.ways <= self.max_ways <= self.max_classes:
            raise InputError(f"--max-ways {self.max_ways} must lie between --ways {self.ways} and --max-classes "
                             f"{self.max_classes}")
        if not self.tasks:
            raise InputError("--tasks needs at least one task spec")
        check_image_size(self.image_size)

    @property
    def split_sizes(self) -> SplitSizes:
        return SplitSizes(self.shots, self.queries, self.outers, self.tests)

    @property
    def ways_text(self) -> str:
        """'3' or '3-5': the episode sizes, as log lines give them."""
        return f"{self.ways}-{self.max_ways}" if self.max_ways else str(self.ways)


@dataclass
class ModelSection(Config):
    kind = "meta-train model"

    layers: int = option(3, "the supernet's cells (darts) or cells per stage (nb201)")
    init_channels: int = option(4)
    embed_dim: int = option(32, "size of the task embedding z")
    hidden: int = option(64, "hidden width of the encoder, controller and initializer")
    gcn_layers: int = option(2, "graph convolutions of the task encoder")
    features: int = option(32, "image features per node of the task graph")
    knn: int = option(3, "each image node's neighbours in the task graph")
    graph_images_per_class: int = option(20, "images per class the task graph is built from")
    use_encoder: bool = option(True, "MetaNAS-style ablation: one set of logits and one initialization for all "
                                     "tasks", switch="--no-encoder")
    use_initializer: bool = option(True, "no task-conditioned start weights", switch="--no-initializer")
    budget_aware: bool = option(False, "the task embedding carries how tight a task's budget is (the share of cells "
                                       "it lets through); meta-train it on a bank made with --teacher-budgets",
                                switch="--budget-aware")
    precision: str = option("fp32", "bf16: bfloat16 autocast of the supernets' forward passes (for GPUs)",
                            choices=PRECISIONS)

    def validate(self) -> None:
        require_at_least(self, 1, "layers", "init_channels")
        require_choice(self, "precision", PRECISIONS)


@dataclass
class MetaSection(Config):
    kind = "meta-train meta"

    objective: str = option("adapt", "adapt: meta-gradient through the inner loop; imitate: fit the controller to "
                                     "--teachers", choices=lambda: tuple(OBJECTIVES))
    meta_steps: int = option(40)
    meta_batch: int = option(3, "episodes per meta-step")
    meta_lr: float = option(1e-3, "the meta-model's Adam learning rate")
    grad_clip: float = option(5.0, "the meta-gradient's norm clip")
    logit_regularizer: str = option("none", "beta: beta-decay on the inner logit steps and the controller's proposal",
                                    choices=lambda: ("none", *REGULARIZERS))
    regularizer_weight: float = option(50.0, "its lambda at the last meta-step (ramped linearly from 0)")
    probe_tasks: int = option(8, "fixed tasks whose proposals the log follows (how many distinct cells)")
    log_every: int = option(5, "meta-steps between log lines, metrics rows and checkpoints")

    def validate(self) -> None:
        require_choice(self, "objective", tuple(OBJECTIVES))
        require_at_least(self, 1, "meta_steps", "meta_batch", "log_every", "probe_tasks")
        require_at_least(self, 0, "regularizer_weight")
        require_positive(self, "meta_lr", "grad_clip")


# the last commit with the superseded research options (issue 38): it reproduces the studies that used them
LAST_WITH_SUPERSEDED_OPTIONS = "fa4a27d"


@dataclass
class AdaptSection(Config):
    kind = "meta-train adapt"
    removed = {name: RemovedOption(kept, "the adapt objective's reinforce mode (cells sampled from the policy, "
                                         "trained by policy gradient on their outer accuracy), which collapsed",
                                   LAST_WITH_SUPERSEDED_OPTIONS)
               for name, kept in (("mode", ("relaxed",)), ("samples", None), ("entropy_weight", None),
                                  ("baseline_momentum", None))}

    inner_steps: int = option(3, "adaptation steps per episode")
    inner_batch: int = option(32)
    inner_w_lr: float = option(0.05)
    inner_w_momentum: float = option(0.9)
    inner_w_weight_decay: float = option(3e-4)
    inner_logit_lr: float = option(0.05)
    reptile_lr: float = option(0.5, "step of the base weights toward the adapted ones (Reptile)")

    def validate(self) -> None:
        require_at_least(self, 1, "inner_batch")
        require_at_least(self, 0, "inner_steps")
        require_positive(self, "inner_w_lr", "inner_logit_lr", "reptile_lr")
        require_fraction(self, "reptile_lr", closed=True)
        require_fraction(self, "inner_w_momentum")
        require_at_least(self, 0, "inner_w_weight_decay")


@dataclass
class ImitateSection(Config):
    kind = "meta-train imitate"
    removed = {"imitate_target": RemovedOption(("cell",), "imitating each teacher's final op weights instead of its "
                                                          "cell", LAST_WITH_SUPERSEDED_OPTIONS)}

    teachers: str | None = option(None, "run directory of `train.py teachers`", metavar="TEACHER_RUN")
    imitate_pool: str = option("teacher", "teacher: an episode's target is its own teacher's; dataset: the mean "
                                          "target of all teachers of its data set", choices=("teacher", "dataset"))
    imitate_prior: float = option(0.0, "with --imitate-pool dataset: this many pseudo-teachers per data set at the "
                                       "bank's mean target (unused with --imitate-pool teacher)")
    dataset_loss: float = option(0.0, "weight of an auxiliary loss that names each episode's data set from its "
                                      "embedding z (imitate objective; 0: off; ignored with --no-encoder)")
    imitate_weight_steps: int = option(5, "imitate: inner weight steps per episode, under its proposal, that "
                                          "meta-learn the start weights (base by Reptile, initializer by the outer "
                                          "gradient; 0: none)")

    def validate(self) -> None:
        require_choice(self, "imitate_pool", ("teacher", "dataset"))
        require_at_least(self, 0, "imitate_prior", "dataset_loss", "imitate_weight_steps")


@dataclass
class TeacherSection(Config):
    kind = "meta-train teacher"

    teacher_method: str = option("pcdarts", lambda: f"the teachers' search: {method_names()}", metavar="METHOD")
    teacher_epochs: int = option(20)
    teacher_logit_lr: float | None = option(None, "the teachers' logit lr (None: the method's, 3e-4)")
    teachers_per_dataset: int = option(4)
    teacher_classes: int = option(20, "classes per teacher (fewer if the data set's meta-train split has fewer)")
    teacher_images: int = option(2000, "images per teacher search, split evenly over its classes")
    teacher_probe_epochs: int = option(0, "after each teacher search, train its cell and each one-skip variant this "
                                          "many epochs and keep the best (nb201; 0: no probe)")
    teacher_probe_layers: int = option(5, "cells per stage of the probe's trainings (NAS-Bench-201's own depth)")
    teacher_budgets: int = option(0, "per teacher's classes, K more training-free searches, each among the cells "
                                     "within a FLOPs budget drawn by tightness (nb201)", metavar="K")

    def validate(self) -> None:
        require_at_least(self, 1, "teacher_epochs", "teachers_per_dataset", "teacher_classes", "teacher_images")
        if self.teacher_logit_lr is not None:
            require_positive(self, "teacher_logit_lr")
        if method_settings(self.teacher_method, 1, 1) is None:
            raise InputError(f"--teacher-method must be a search method ({method_names()}), got "
                             f"'{self.teacher_method}'")
        require_at_least(self, 0, "teacher_probe_epochs")
        require_at_least(self, 1, "teacher_probe_layers")
        require_at_least(self, 0, "teacher_budgets")
        if self.teacher_budgets and method_settings(self.teacher_method, 1, 1).get("proxy") is None:
            raise InputError(f"--teacher-budgets needs a training-free --teacher-method (naswot-N, synflow-N): it "
                             f"samples only cells within the budget; got '{self.teacher_method}'")


@dataclass
class MetaConfig(Config):
    """Defaults: 3-way class-subset tasks of the embedded digits (7 meta-train / 3 meta-test classes), a tiny
    NAS-Bench-201 supernet (the space `search` defaults to, so that `search --meta RUN` works with both defaults), a
    few minutes on 2 CPU cores."""

    kind = "meta-train"

    space: str = option("nb201", choices=space_names)
    seed: int = option(0)
    device: str = option("auto", "auto (CUDA if available), cpu, cuda, cuda:N")
    task: TaskSection = field(default_factory=TaskSection)
    model: ModelSection = field(default_factory=ModelSection)
    meta: MetaSection = field(default_factory=MetaSection)
    adapt: AdaptSection = field(default_factory=AdaptSection)
    imitate: ImitateSection = field(default_factory=ImitateSection)
    teacher: TeacherSection = field(default_factory=TeacherSection)

    def validate(self) -> None:
        space = get_space(self.space)
        self.adapt.validate()
        self.meta.validate()
        self.imitate.validate()
        if self.meta.objective == "imitate" and not self.imitate.teachers:
            raise InputError("--objective imitate needs --teachers TEACHER_RUN (made by `train.py teachers`)")
        self.teacher.validate()
        if self.teacher.teacher_probe_epochs and not space.one_op_per_edge:
            raise InputError(f"--teacher-probe-epochs needs a space whose cells are one op per edge (nb201), got "
                             f"--space {self.space}")
        if self.teacher.teacher_budgets and not space.one_op_per_edge:
            raise InputError(f"--teacher-budgets needs a space whose cells are costed (nb201), got --space "
                             f"{self.space}")
        if self.model.budget_aware and not space.one_op_per_edge:
            raise InputError(f"--budget-aware needs a space whose cells are costed (nb201): a budget's share of "
                             f"cells is counted over all of them; got --space {self.space}")
        self.task.validate()
        self.model.validate()
        create_regularizer(self.meta.logit_regularizer, space, self.meta.regularizer_weight)
        space.check_image_size(self.task.image_size)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def distributions(self):
        """(meta-train distribution, meta-test distribution, TaskSplit) of this config: every user of a run's tasks
        (meta-training, teachers, benchmarks drawing its held-out tasks) builds them here, so they share one split."""
        t = self.task
        return build_distributions(t.tasks, t.test_tasks, t.ways, t.split_sizes, t.channels, t.image_size,
                                   t.meta_test_fraction, t.split_seed, t.data_root, t.download, t.max_ways)

    def teacher_search(self, seed: int) -> SearchConfig:
        """The teachers' search: the teacher section's method at the meta-model's supernet scale."""
        t = self.teacher
        settings = method_settings(t.teacher_method, t.teacher_epochs, 100)
        if settings is None:
            raise InputError(f"--teacher-method must be a search method ({method_names()}), got '{t.teacher_method}'")
        if t.teacher_logit_lr is not None:
            settings["logit_lr"] = t.teacher_logit_lr
        return SearchConfig(space=self.space, epochs=t.teacher_epochs, layers=self.model.layers,
                            init_channels=self.model.init_channels, seed=seed, augment=True, device=self.device,
                            precision=self.model.precision, **settings)
