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
from supernet.regularizers import create_regularizer
from supernet.search import SearchConfig
from supernet.spaces import get_space

from .objectives import OBJECTIVES
from .tasks import SplitSizes, build_distributions


@dataclass
class TaskSection(Config):
    kind = "meta-train task"

    tasks: list[str] = field(default_factory=lambda: ["digits"])
    test_tasks: list[str] = field(default_factory=list)
    ways: int = 3
    max_ways: int | None = None  # episodes of ways..max_ways classes (None: always `ways`)
    shots: int = 10
    queries: int = 10
    outers: int = 10  # images per class scoring the adapted task for the meta-gradient (inner loop never reads them)
    tests: int = 10
    meta_test_fraction: float = 0.3
    split_seed: int = 0  # draws the meta-train / meta-test class split, independently of the training seed
    image_size: int = 8
    channels: int = 1
    max_classes: int = 10
    data_root: str = "data"
    download: bool = False

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
    budget_aware: bool = False  # z carries the budget's tightness (train on a bank with budgets)
    precision: str = "fp32"  # "bf16": bfloat16 autocast of the supernets' forward passes

    def validate(self) -> None:
        require_at_least(self, 1, "layers", "init_channels")
        require_choice(self, "precision", PRECISIONS)


@dataclass
class MetaSection(Config):
    kind = "meta-train meta"

    objective: str = "adapt"  # "imitate": fit pi(a | z) to the end points of the teacher searches (imitate section)
    meta_steps: int = 40
    meta_batch: int = 3
    meta_lr: float = 1e-3
    grad_clip: float = 5.0
    logit_regularizer: str = "none"  # "beta": beta-decay on the inner logit steps and on the controller's alpha0
    regularizer_weight: float = 50.0  # its lambda at the last meta-step (ramped linearly from 0)
    probe_tasks: int = 8
    log_every: int = 5

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

    inner_steps: int = 3
    inner_batch: int = 32
    inner_w_lr: float = 0.05
    inner_w_momentum: float = 0.9
    inner_w_weight_decay: float = 3e-4
    inner_logit_lr: float = 0.05
    reptile_lr: float = 0.5

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

    teachers: str | None = None  # teacher bank (run directory of `train.py teachers`)
    imitate_pool: str = "teacher"  # "dataset": an episode's target is the mean over its data set's teachers
    imitate_prior: float = 0.0  # with imitate_pool dataset: pseudo-teachers at the bank's mean target per data set
    dataset_loss: float = 0.0  # weight of the auxiliary loss that names an episode's data set from z
    imitate_weight_steps: int = 5  # inner weight steps per episode that meta-learn the start weights (0: none)

    def validate(self) -> None:
        require_choice(self, "imitate_pool", ("teacher", "dataset"))
        require_at_least(self, 0, "imitate_prior", "dataset_loss", "imitate_weight_steps")


@dataclass
class TeacherSection(Config):
    kind = "meta-train teacher"

    teacher_method: str = "pcdarts"  # the teachers' search (supernet/methods.py)
    teacher_epochs: int = 20
    teacher_logit_lr: float | None = None  # None: the method's published logit lr (3e-4)
    teachers_per_dataset: int = 4
    teacher_classes: int = 20  # classes per teacher (fewer if the data set's meta-train split has fewer)
    teacher_images: int = 2000  # images per teacher search, split evenly over its classes
    teacher_probe_epochs: int = 0  # > 0: after each search, the skip probe (meta/skip_probe.py), this many epochs
    teacher_probe_layers: int = 5  # cells per stage of the probe's trainings (NAS-Bench-201's own depth)
    teacher_budgets: int = 0  # per teacher's classes, this many more searches, each under a FLOPs budget drawn by
    # the share of cells it lets through (a training-free method, a space with costs: nb201)

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

    space: str = "nb201"
    seed: int = 0
    device: str = "auto"
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
