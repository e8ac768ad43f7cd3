#!/usr/bin/env python
"""TaskDARTS command line: search, derive, retrain, inspect and visualize cell architectures.

Data flows one way: data set -> supernet search (architecture logits) -> genotype -> retrained network -> report.
Every subcommand takes `--config FILE.yaml` for defaults; flags given on the command line win. Bad input ends with
one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from run_kit import InputError, RunDiverged
from run_kit.config import flag as _flag
from run_kit.config import merge, read_config_file
from run_kit.device import PRECISIONS
from supernet.export import EXPORT_FORMATS, UNTRAINED_FORMAT
from supernet.latency import MEMORY_FORMATS
from supernet.methods import method_names, method_settings, require_method
from supernet.regularizers import REGULARIZERS
from supernet.relaxation import RELAXATIONS
from supernet.spaces import entry_of, get_space, load_genotype, space_names
from supernet.training_free import PROXIES

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _add_data_args(group) -> None:
    group.add_argument("--dataset", help="digits | mnist | fashion_mnist | kmnist | cifar10 | cifar100 | svhn | "
                                         "folder:PATH | npz:PATH")
    group.add_argument("--data-root", help="where torchvision data sets live")
    group.add_argument("--download", action=argparse.BooleanOptionalAction, help="let torchvision download the set")
    group.add_argument("--image-size", type=int, help="resize images to this square size (default: native)")


def _add_run_args(group, unit: str = "epoch") -> None:
    group.add_argument("--seed", type=int)
    group.add_argument("--device", help="auto (CUDA if available), cpu, cuda, cuda:N")
    group.add_argument("--out", help="run directory (default: runs/<command>-<dataset>-<time>)")
    group.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    group.add_argument("--stop-after-epoch", type=int, metavar=unit.upper().replace("-", "_"),
                       help=f"stop cleanly after this {unit} (continue with --resume)")
    group.add_argument("--no-progress", action="store_true", help="no progress bars")
    group.add_argument("--precision", choices=PRECISIONS, help="bf16: bfloat16 autocast of the forward pass "
                                                                   "(for GPUs; slower than fp32 on this CPU)")


def _add_meta_args(parser, unit: str) -> None:
    """The options of meta-train; `teachers` takes the same config, so both see one set of tasks and one split."""
    from meta.objectives import OBJECTIVES

    parser.add_argument("--config", help="YAML file of defaults")
    group = parser.add_argument_group("tasks")
    group.add_argument("--space", choices=space_names())
    group.add_argument("--tasks", nargs="+", metavar="SPEC",
                       help="DATASET (N-way episodes from a seeded part of its classes) or whole:DATASET")
    group.add_argument("--test-tasks", nargs="*", metavar="SPEC", help="held-out data sets for meta-testing")
    for name in ("ways", "max_ways", "shots", "queries", "outers", "tests", "image_size", "channels", "max_classes"):
        group.add_argument(_flag(name), type=int)
    group.add_argument("--split-seed", type=int, help="seed of the meta-train / meta-test class split alone "
                                                      "(default 0; --seed does not change the split)")
    group.add_argument("--meta-test-fraction", type=float)
    group.add_argument("--data-root")
    group.add_argument("--download", action=argparse.BooleanOptionalAction)
    group = parser.add_argument_group("meta-learning")
    for name in ("meta_steps", "meta_batch", "inner_steps", "inner_batch", "layers", "init_channels", "embed_dim",
                 "log_every"):
        group.add_argument(_flag(name), type=int)
    for name in ("meta_lr", "reptile_lr", "inner_w_lr", "inner_logit_lr"):
        group.add_argument(_flag(name), type=float)
    group.add_argument("--logit-regularizer", choices=("none", *REGULARIZERS),
                       help="beta: beta-decay on the inner logit steps and the controller's proposal")
    group.add_argument("--regularizer-weight", type=float, help="its lambda at the last meta-step (default 50)")
    group.add_argument("--no-initializer", dest="use_initializer", action="store_const", const=False)
    group.add_argument("--no-encoder", dest="use_encoder", action="store_const", const=False,
                       help="MetaNAS-style ablation: one set of logits and one initialization for all tasks")
    group.add_argument("--budget-aware", dest="budget_aware", action="store_const", const=True,
                       help="the task embedding carries how tight a task's budget is (the share of cells it lets "
                            "through); meta-train it on a bank made with --teacher-budgets")
    group = parser.add_argument_group("teachers (the imitate objective)")
    group.add_argument("--objective", choices=tuple(OBJECTIVES),
                       help="adapt: meta-gradient through the inner loop; imitate: fit the controller to --teachers")
    group.add_argument("--teachers", metavar="TEACHER_RUN", help="run directory of `train.py teachers`")
    group.add_argument("--imitate-pool", choices=("teacher", "dataset"),
                       help="teacher: an episode's target is its own teacher's (default); dataset: the mean target "
                            "of all teachers of its data set")
    group.add_argument("--imitate-prior", type=float,
                       help="with --imitate-pool dataset: this many pseudo-teachers per data set at the bank's mean "
                            "target (default 0; unused with --imitate-pool teacher)")
    group.add_argument("--dataset-loss", type=float,
                       help="weight of an auxiliary loss that names each episode's data set from its embedding z "
                            "(imitate objective; default 0: off; ignored with --no-encoder)")
    group.add_argument("--imitate-weight-steps", type=int,
                       help="imitate: inner weight steps per episode, under its proposal, that meta-learn the start "
                            "weights (base by Reptile, initializer by the outer gradient; default 5, 0: none)")
    group.add_argument("--teacher-method", metavar="METHOD",
                       help=f"the teachers' search: {method_names()} (default pcdarts)")
    for name in ("teacher_epochs", "teachers_per_dataset", "teacher_classes", "teacher_images"):
        group.add_argument(_flag(name), type=int)
    group.add_argument("--teacher-logit-lr", type=float, help="the teachers' logit lr (default: the method's, 3e-4)")
    group.add_argument("--teacher-probe-epochs", type=int,
                       help="after each teacher search, train its cell and each one-skip variant this many epochs "
                            "and keep the best (nb201; default 0: no probe)")
    group.add_argument("--teacher-probe-layers", type=int, help="cells per stage of the probe's trainings (default 5)")
    group.add_argument("--teacher-budgets", type=int, metavar="K",
                       help="per teacher's classes, K more training-free searches, each among the cells within a "
                            "FLOPs budget drawn by tightness (nb201; default 0)")
    _add_run_args(parser.add_argument_group("run"), unit=unit)


def build_parser() -> OneLineParser:
    from evaluation.compare import CompareConfig, method_help
    from meta.config import MetaConfig
    from supernet.retrain import RetrainConfig
    from supernet.search import WARM_START_WEIGHTS, SearchConfig

    parser = OneLineParser(prog="train.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    search = commands.add_parser("search", help="DARTS search; writes genotype.json and a resumable checkpoint")
    search.add_argument("--config", help="YAML file of defaults (keys as in the saved config.yaml)")
    group = search.add_argument_group("search")
    group.add_argument("--method", metavar="METHOD",
                       help=f"a method's published settings as defaults ({method_names()}); --config and flags win")
    group.add_argument("--space", choices=space_names())
    group.add_argument("--epochs", type=int)
    group.add_argument("--order", type=int, choices=(1, 2), help="1: first-order, 2: unrolled second-order")
    group.add_argument("--relax", choices=tuple(RELAXATIONS),
                       help="softmax (DARTS), hard Gumbel (GDAS) or Dirichlet (DrNAS)")
    group.add_argument("--layers", type=int, help="cells (darts) or cells per stage (nb201)")
    group.add_argument("--init-channels", type=int)
    group.add_argument("--batch-size", type=int)
    group.add_argument("--augment", action=argparse.BooleanOptionalAction)
    group.add_argument("--channels-last", action=argparse.BooleanOptionalAction, help="NHWC layout (default on)")
    group.add_argument("--recompute", action=argparse.BooleanOptionalAction,
                       help="recompute each cell's inside during backward: a third of the memory, ~1.5x the time")
    group.add_argument("--partial-channels", type=int, metavar="K", help="PC-DARTS: 1/K of the channels through the "
                                                                         "mixed ops (default 1: all)")
    group.add_argument("--edge-normalization", action=argparse.BooleanOptionalAction,
                       help="PC-DARTS: per-edge weights, softmax over each node's inputs")
    group.add_argument("--logit-warmup-epochs", type=int, help="train weights only for this many epochs first")
    group.add_argument("--logit-lr-schedule", choices=("constant", "cosine"),
                       help="cosine: anneal the logit lr to 0 over the run, so a short search settles")
    group.add_argument("--logit-regularizer", choices=("none", *REGULARIZERS), help="beta: beta-DARTS's beta-decay")
    group.add_argument("--regularizer-weight", type=float, help="beta-decay lambda at the last epoch (default 50)")
    group.add_argument("--proxy", choices=tuple(PROXIES),
                       help="training-free search: score --candidates random cells at initialisation, keep the best")
    group.add_argument("--candidates", type=int, help="cells a training-free search scores (default 100)")
    opt = search.add_argument_group("optimisers (DARTS defaults)")
    for name in ("w_lr", "w_lr_min", "w_momentum", "w_weight_decay", "grad_clip", "logit_lr", "logit_weight_decay",
                 "logit_init_std", "tau_max", "tau_min"):
        opt.add_argument(_flag(name), type=float)
    meta = search.add_argument_group("task-conditioned start (TaskDARTS)")
    meta.add_argument("--meta", metavar="META_CKPT", help="meta-train checkpoint or run directory, or `pretrained`: "
                                                          "the meta-model that ships (nb201; no meta-run needed)")
    meta.add_argument("--adapt-steps", type=int, default=0, help="0: zero-shot; K: K adaptation steps")
    meta.add_argument("--probe-accuracies", metavar="FILE",
                      help="with --meta pretrained: a CSV arch,accuracy of cells trained on the task (any scale where "
                           "higher is better); they condition the proposal")
    meta.add_argument("--verify", type=int, metavar="K",
                      help="with --meta pretrained --dataset: train the K best predicted cells that fit for "
                           "--verify-epochs on 80 %% of the training images, keep the best on the other 20 %%")
    meta.add_argument("--verify-epochs", type=int, metavar="E", help="with --verify (default 5)")
    meta.add_argument("--exclude-ops", nargs="+", metavar="OP",
                      help="ops the derived cell may not use, in every method (e.g. a deployment target without a "
                           "pooling kernel: avg_pool_3x3)")
    meta.add_argument("--warm-start", action="store_true",
                      help="with --meta: a full search (any gradient method, --epochs) from the task-conditioned "
                           "weights and logits; the meta-checkpoint fixes the supernet shape and image format")
    meta.add_argument("--max-params-m", type=float, metavar="P",
                      help="with --meta: the proposal's evaluation network (nb201: C=16, N=5) has at most P M "
                           "parameters (the most likely cell that fits; exit 2 when none does)")
    meta.add_argument("--max-flops-m", type=float, metavar="F", help="with --meta: at most F M multiply-adds")
    meta.add_argument("--max-latency-ms", type=float, metavar="L",
                      help="with --meta: at most L ms latency, predicted from --device-profile")
    meta.add_argument("--device-profile", metavar="auto|FILE",
                      help="with --max-latency-ms: a CSV arch,latency_ms of measured cells, or auto (default): the "
                           "reference cells measured on this machine")
    meta.add_argument("--latency-confidence", type=float, metavar="Q",
                      help="with --max-latency-ms: the budget bounds the prediction times a guard chosen from the "
                           "profile so that a cell meets it as measured with probability ~Q (default 0.95, needs 19 "
                           "profile cells; 0: the bare prediction)")
    meta.add_argument("--latency-threads", type=int, metavar="N",
                      help="with --device-profile auto: time cells with N CPU threads (default 0: PyTorch's count "
                           "here; recorded in metrics.csv)")
    meta.add_argument("--latency-memory-format", choices=tuple(MEMORY_FORMATS),
                      help="with --device-profile auto: the memory format cells are timed in (default contiguous)")
    meta.add_argument("--budget-image-size", type=int, metavar="PX",
                      help="with a budget: the image size the evaluation network is costed at (default 32)")
    meta.add_argument("--warm-start-weights", choices=tuple(WARM_START_WEIGHTS),
                      help="with --warm-start: " + "; ".join(f"{k}: {v}" for k, v in WARM_START_WEIGHTS.items())
                           + " (default task)")
    _add_data_args(search.add_argument_group("data"))
    _add_run_args(search.add_argument_group("run"))
    search.set_defaults(handler=cmd_search, config_class=SearchConfig)

    meta_train = commands.add_parser("meta-train", help="learn across tasks how to start a search")
    _add_meta_args(meta_train, "meta-step")
    meta_train.set_defaults(handler=cmd_meta_train, config_class=MetaConfig)

    teachers = commands.add_parser("teachers", help="the teacher searches that `meta-train --objective imitate` "
                                                    "amortises (takes meta-train's config)")
    _add_meta_args(teachers, "teacher")
    teachers.set_defaults(handler=cmd_teachers, config_class=MetaConfig)

    retrain = commands.add_parser("retrain", help="train a genotype's network from scratch; reports test accuracy")
    retrain.add_argument("--config", help="YAML file of defaults")
    group = retrain.add_argument_group("network and recipe")
    group.add_argument("--genotype", help="genotype.json, run directory, published name (DARTS_V2), "
                                          "Genotype(...) string or NAS-Bench-201 string")
    group.add_argument("--epochs", type=int)
    group.add_argument("--layers", type=int)
    group.add_argument("--init-channels", type=int)
    group.add_argument("--batch-size", type=int)
    group.add_argument("--auxiliary", action=argparse.BooleanOptionalAction, help="DARTS auxiliary head (weight 0.4)")
    group.add_argument("--cutout", action=argparse.BooleanOptionalAction)
    group.add_argument("--cutout-length", type=int)
    group.add_argument("--augment", action=argparse.BooleanOptionalAction)
    group.add_argument("--channels-last", action=argparse.BooleanOptionalAction, help="NHWC layout (default on)")
    for name in ("lr", "lr_min", "momentum", "weight_decay", "grad_clip", "auxiliary_weight", "drop_path_prob"):
        group.add_argument(_flag(name), type=float)
    _add_data_args(retrain.add_argument_group("data"))
    _add_run_args(retrain.add_argument_group("run"))
    retrain.set_defaults(handler=cmd_retrain, config_class=RetrainConfig)

    export = commands.add_parser("export", help="export a retrained network (or, --untrained, a genotype's) for "
                                                "deployment: torch.export (pt2) or ONNX; outputs checked")
    export.add_argument("source", metavar="RUN_OR_GENOTYPE",
                        help="a retrain run directory, or with --untrained any genotype (as for retrain --genotype)")
    export.add_argument("--format", choices=EXPORT_FORMATS, default="pt2",
                        help="pt2: torch.export program (torch.export.load); onnx: needs the onnx extra")
    export.add_argument("--out", required=True, help="the file to write")
    export.add_argument("--untrained", action="store_true",
                        help="export a genotype's network with random weights (seed 0): for deployment tests only")
    for name, default in UNTRAINED_FORMAT.items():
        export.add_argument(_flag(name), type=int, help=f"with --untrained (default {default})")
    export.add_argument("--layers", type=int, help="with --untrained: default the space's evaluation network's")
    export.add_argument("--init-channels", type=int, help="with --untrained: default the space's evaluation network's")
    export.set_defaults(handler=cmd_export)

    derive = commands.add_parser("derive", help="print the genotype of a search run or checkpoint")
    derive.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT")
    derive.add_argument("--format", choices=("json", *space_names()), default="json",
                        help="json, or the one-line text form of the genotype's space (named after it)")
    derive.set_defaults(handler=cmd_derive)

    inspect = commands.add_parser("inspect", help="build a genotype's network; print params and FLOPs as JSON")
    inspect.add_argument("genotype", metavar="G", help="as for retrain --genotype, or 'random' with --space")
    inspect.add_argument("--space", choices=space_names(), help="the space G must belong to")
    published = {name: entry_of(name).inspect_defaults for name in space_names()}
    inspect.add_argument("--layers", type=int, help="default: the published evaluation network's, " + ", ".join(
        f"{size['layers']} ({name})" for name, size in published.items()))
    inspect.add_argument("--init-channels", type=int, help="default: " + ", ".join(
        f"{size['init_channels']} ({name})" for name, size in published.items()))
    inspect.add_argument("--num-classes", type=int, default=10)
    inspect.add_argument("--image-size", type=int, default=32)
    inspect.add_argument("--channels", type=int, default=3)
    inspect.add_argument("--seed", type=int, default=0, help="for G = random")
    inspect.set_defaults(handler=cmd_inspect)

    compare = commands.add_parser("compare", help="search, retrain and tabulate several methods over several seeds")
    compare.add_argument("--config", help="YAML file of defaults")
    group = compare.add_argument_group("methods")
    group.add_argument("--space", choices=space_names())
    group.add_argument("--methods", nargs="+", metavar="METHOD", help=method_help())
    group.add_argument("--meta", metavar="META_CKPT", help="meta-checkpoint for the taskdarts-K methods")
    group.add_argument("--nb201-table", metavar="PATH", help="NATS-Bench topology CSV: add benchmark accuracies")
    for name in ("seeds", "search_epochs", "candidates", "layers", "init_channels", "batch_size", "retrain_epochs",
                 "retrain_layers", "retrain_channels", "retrain_batch_size"):
        group.add_argument(_flag(name), type=int)
    group.add_argument("--auxiliary", action=argparse.BooleanOptionalAction)
    group.add_argument("--cutout", action=argparse.BooleanOptionalAction)
    group.add_argument("--exclude-ops", nargs="+", metavar="OP", help="ops no method's cell may use")
    _add_data_args(compare.add_argument_group("data"))
    group = compare.add_argument_group("run")
    group.add_argument("--device")
    group.add_argument("--out", help="output directory (default: runs/compare-<dataset>-<time>)")
    group.add_argument("--resume", action="store_true", help="continue; finished method/seed pairs are kept")
    group.add_argument("--no-progress", action="store_true")
    compare.set_defaults(handler=cmd_compare, config_class=CompareConfig)

    lookup = commands.add_parser("nb201-lookup", help="NAS-Bench-201 test accuracies of a cell (200-epoch training)")
    lookup.add_argument("arch", metavar="ARCH_STRING", help="|op~0|+|op~0|op~1|+|op~0|op~1|op~2|, or a run directory")
    lookup.add_argument("--table", required=True,
                        help="NATS-Bench topology CSV (e.g. ../shared/data/nb201/nats_bench.csv)")
    lookup.set_defaults(handler=cmd_nb201_lookup)

    visualize = commands.add_parser("visualize", help="draw a genotype's cells as PNG files")
    visualize.add_argument("genotype", metavar="G")
    visualize.add_argument("--out", required=True, help="directory for <cell>.png")
    visualize.set_defaults(handler=cmd_visualize)
    return parser


def resolve_config(args: argparse.Namespace, defaults_file: str | None):
    """Dataclass defaults < YAML file < explicit flags."""
    config_class = args.config_class
    values: dict[str, Any] = read_config_file(defaults_file) if defaults_file else {}
    options = config_class.option_paths()
    flags = {key: value for key, value in vars(args).items() if key in options and value is not None}
    values = merge(values, config_class.nest(flags))
    method = getattr(args, "method", None)
    if method:  # the method's settings lie under the file and the flags; epochs and candidates as resolved
        require_method(method, "--method")
        resolved = config_class.from_dict(values)
        values = {**method_settings(method, resolved.epochs, resolved.candidates), **values}
    return config_class.from_dict(values)


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _error(err: Exception) -> None:
    """One line on stderr (from rank 0 only under torchrun: every rank meets the same bad input)."""
    if _is_main_process():
        print(f"error: {err}", file=sys.stderr)


def _emit(summary: dict) -> None:
    """The one-line JSON summary on stdout (rank 0 only under torchrun)."""
    if _is_main_process():
        print(json.dumps(summary))


def _run_dir(args: argparse.Namespace, dataset: str, marker: str = "checkpoint.pt"):
    from run_kit.run_dir import RunDir

    if args.out:
        return RunDir(args.out, marker)
    if args.resume:
        raise InputError("--resume needs --out RUN_DIR")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise InputError("under torchrun every process must be given the same --out RUN_DIR")
    tag = "".join(c if c.isalnum() else "_" for c in Path(dataset).name)[:40]
    return RunDir(Path("runs") / f"{args.command}-{tag}-{time.strftime('%Y%m%d-%H%M%S')}", marker)


def _prepare(args: argparse.Namespace, tag: Callable[[Any], str] = lambda config: config.dataset,
             marker: str = "checkpoint.pt"):
    """(config, run directory) of search, retrain, meta-train and compare: dataclass defaults < --config file < flags
    for a fresh run; the saved config.yaml for a resumed one (only --device may change), validated before any work."""
    config = resolve_config(args, args.config)
    run = _run_dir(args, tag(config), marker)
    if args.resume:
        run.check(resume=True)
        saved = run.load_config()
        config = args.config_class.from_dict(saved)
        _refuse_changed_flags(args, saved, config)
        if args.device:
            config.device = args.device
    config.validate()
    return config, run


def _refuse_changed_flags(args: argparse.Namespace, saved: dict, config: Any) -> None:
    """A resumed run continues its saved config; a flag that would change it (a method added to a comparison, say)
    is refused rather than silently ignored."""
    options = args.config_class.option_paths()
    changed = []
    for key, value in vars(args).items():
        if key not in options or value is None or key == "device":
            continue
        altered = args.config_class.from_dict(merge(saved, args.config_class.nest({key: value})))
        if asdict(altered) != asdict(config):
            changed.append(_flag(key))
    if changed:
        raise InputError(f"--resume continues the saved config in {args.out}; {', '.join(changed)} would change it "
                         f"(drop the flag, or start a new --out)")


def cmd_search(args: argparse.Namespace) -> int:
    from supernet.search import run_search

    if args.warm_start_weights is not None and not args.warm_start:
        raise InputError("--warm-start-weights needs --meta META_CKPT --warm-start: it chooses the weights a "
                         "warm-started search begins from")
    budgets = [_flag(name) for name in ("max_params_m", "max_flops_m", "max_latency_ms", "device_profile",
                                        "latency_confidence", "latency_threads", "latency_memory_format",
                                        "budget_image_size") if getattr(args, name) is not None]
    if args.device_profile is not None and args.max_latency_ms is None:
        raise InputError("--device-profile needs --max-latency-ms: the profile predicts the latency it bounds")
    if args.latency_confidence is not None and args.max_latency_ms is None:
        raise InputError("--latency-confidence needs --max-latency-ms: it guards the latency prediction a budget "
                         "bounds")
    timing = [_flag(name) for name in ("latency_threads", "latency_memory_format") if getattr(args, name) is not None]
    if timing and (args.max_latency_ms is None or (args.device_profile or "auto") != "auto"):
        raise InputError(f"{', '.join(timing)} need(s) --max-latency-ms with --device-profile auto: they set how this "
                         f"machine times cells")
    if budgets and (not args.meta or args.warm_start):
        raise InputError(f"{', '.join(budgets)} need(s) --meta META_CKPT without --warm-start: a budget constrains "
                         f"the meta-model's proposal")
    pretrained_only = [_flag(name) for name in ("probe_accuracies", "verify", "verify_epochs")
                       if getattr(args, name) is not None]
    if pretrained_only and args.meta != "pretrained":
        raise InputError(f"{', '.join(pretrained_only)} need(s) --meta pretrained")
    if args.meta == "pretrained" and args.warm_start:
        raise InputError("--warm-start needs a meta-run (--meta RUN): the pretrained model has no supernet to start "
                         "from")
    if args.meta and not args.warm_start:
        return cmd_meta_search(args)
    if args.adapt_steps:
        raise InputError("--adapt-steps needs --meta META_CKPT" + (" and no --warm-start: a warm-started search runs "
                                                                   "--epochs of its method" if args.meta else ""))
    if args.warm_start and not args.meta:
        raise InputError("--warm-start needs --meta META_CKPT, the meta-checkpoint whose start the search begins at")
    if args.warm_start:
        from meta.meta_search import WARM_FIXED

        fixed = [_flag(name) for name in WARM_FIXED if getattr(args, name, None) is not None]
        if fixed:
            raise InputError(f"{', '.join(fixed)} do(es) not apply to --warm-start: the meta-checkpoint fixes the "
                             f"supernet shape and image format")
    config, run = _prepare(args)
    if args.meta and not args.resume:
        config.warm_start_from = args.meta
    if config.warm_start_from is None and config.warm_start_weights != "task":
        raise InputError("warm_start_weights (in --config) needs --meta META_CKPT --warm-start")
    if config.warm_start_from is not None:
        from meta.meta_search import run_warm_search

        result = run_warm_search(config, run, resume=args.resume, stop_after_epoch=args.stop_after_epoch,
                                 progress=not args.no_progress)
    else:
        result = run_search(config, run=run, data=config.load("train"), resume=args.resume,
                            stop_after_epoch=args.stop_after_epoch, progress=not args.no_progress)
    _emit({"run_dir": str(run.path), **result})
    return 0


def cmd_meta_search(args: argparse.Namespace) -> int:
    from meta.meta_search import MetaSearchConfig, run_meta_search

    meta_flags = {"meta", "adapt_steps", "dataset", "data_root", "download", "seed", "device", "space", "config",
                  "probe_accuracies", "exclude_ops", "verify", "verify_epochs"}
    ignored = [_flag(name) for name, value in vars(args).items()
               if name in {f.name for f in fields(args.config_class)} - meta_flags and value is not None]
    if args.resume:
        ignored.append("--resume")
    if args.method:
        ignored.append("--method")
    if args.config:
        ignored.append("--config")
    if ignored:
        raise InputError(f"{', '.join(sorted(ignored))} do(es) not apply to --meta searches: the meta-checkpoint "
                         f"fixes the supernet, image format and adaptation settings")
    pretrained = args.meta == "pretrained"
    if not pretrained and not Path(args.meta).exists():
        raise InputError(f"--meta {args.meta}: no such meta-run or checkpoint; name a meta-train run directory, its "
                         f"checkpoint.pt, or `pretrained` (the meta-model that ships)")
    dataset = args.dataset or (None if pretrained else "digits")
    costed_at = {name: getattr(args, name) for name in ("budget_image_size", "device_profile", "latency_confidence",
                                                        "latency_threads", "latency_memory_format")
                 if getattr(args, name) is not None}
    config = MetaSearchConfig(meta=args.meta, dataset=dataset, adapt_steps=args.adapt_steps,
                              seed=args.seed if args.seed is not None else 0, data_root=args.data_root or "data",
                              download=bool(args.download), max_params_m=args.max_params_m,
                              max_flops_m=args.max_flops_m, max_latency_ms=args.max_latency_ms,
                              device=args.device or "auto", probe_accuracies=args.probe_accuracies,
                              exclude_ops=tuple(args.exclude_ops or ()), verify=args.verify or 0,
                              verify_epochs=args.verify_epochs or 5, **costed_at)
    run = _run_dir(args, dataset or "probes")
    if pretrained:
        from meta.experience import SPACE
        from meta.pretrained_search import run_pretrained_search

        if args.space not in (None, SPACE.name):
            raise InputError(f"--meta pretrained proposes {SPACE.name} cells; --space {args.space} has no pretrained "
                             f"model")
        result = run_pretrained_search(config, run)
    else:
        result = run_meta_search(config, run, expect_space=args.space, progress=not args.no_progress)
    _emit({"run_dir": str(run.path), **result})
    return 0


def cmd_meta_train(args: argparse.Namespace) -> int:
    from meta.meta_train import run_meta_train

    config, run = _prepare(args, tag=lambda c: "-".join(c.task.tasks))
    result = run_meta_train(config, run, args.resume, args.stop_after_epoch, not args.no_progress)
    _emit({"run_dir": str(run.path), **result})
    return 0


def cmd_teachers(args: argparse.Namespace) -> int:
    """The teacher searches; a finished bank is then tested for what it can teach (evaluation/teacher_signal.py):
    do its teachers end differently on different data sets? The answer goes to the run's log and summary."""
    from evaluation.teacher_signal import bank_dependence, dependence_line
    from meta.teacher_bank import TEACHERS_FILE, TeacherBank
    from meta.teacher_job import run_teachers

    config, run = _prepare(args, tag=lambda c: "-".join(c.task.tasks))
    result = run_teachers(config, run, args.resume, args.stop_after_epoch, not args.no_progress)
    if run.file(TEACHERS_FILE).is_file():  # the bank is complete (it is written once the last teacher is done)
        test = bank_dependence(TeacherBank.read(run.path))
        if test is not None:
            log = run.logger("teachers")
            log.info(dependence_line(test))
            run.close_logger("teachers")
            result["dataset_dependence_p"] = test["p_value"]
    _emit({"run_dir": str(run.path), **result})
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from supernet.retrain import run_retrain

    config, run = _prepare(args)
    load_genotype(config.genotype)  # fail on a bad genotype before loading data
    train, test = config.load("train"), config.load("test")
    result = run_retrain(config, train, test, run, resume=args.resume, stop_after_epoch=args.stop_after_epoch,
                         progress=not args.no_progress)
    _emit({"run_dir": str(run.path), **result})
    return 0


def derive_from_checkpoint(source: str):
    """(space, genotype) derived from the architecture logits stored in a search checkpoint."""
    import torch

    from run_kit.files import load_checkpoint

    path = Path(source)
    if not path.exists():
        raise InputError(f"{path} does not exist")
    state = load_checkpoint(path)
    if "arch" not in state or "space" not in state:
        raise InputError(f"{path} is not a search checkpoint (no architecture logits)")
    if not isinstance(state["arch"], dict) or not isinstance(state["space"], str):
        raise InputError(f"{path} is not a search checkpoint (its architecture logits are not a mapping of tensors)")
    space = get_space(state["space"])
    prefix = "logits."
    logits = {key[len(prefix):]: value for key, value in state["arch"].items() if str(key).startswith(prefix)}
    for key, value in logits.items():
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise InputError(f"{path}: the logits '{key}' are not a tensor of numbers")
    return space, space.derive(logits)


def cmd_derive(args: argparse.Namespace) -> int:
    space, genotype = derive_from_checkpoint(args.source)
    if args.format == "json":
        print(json.dumps(space.to_json(genotype)))
    elif args.format != space.name:  # the text formats are named after their spaces
        raise InputError(f"--format {args.format} does not fit a genotype of the {space.name} space")
    else:
        print(space.to_text(genotype))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from supernet.export import export_network, export_source

    sized = [name for name in (*UNTRAINED_FORMAT, "layers", "init_channels") if getattr(args, name) is not None]
    if sized and not args.untrained:
        raise InputError(f"{', '.join(_flag(n) for n in sized)} only appl(ies) with --untrained: a retrain run's "
                         f"network has its own format")
    chosen = {name: default if getattr(args, name) is None else getattr(args, name)
              for name, default in UNTRAINED_FORMAT.items()}
    source = export_source(args.source, args.untrained, layers=args.layers, init_channels=args.init_channels,
                           **chosen)
    print(json.dumps(export_network(source, args.format, args.out)))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    import torch

    from image_sets.data import check_image_size
    from run_kit.config import require_size
    from supernet.discrete import count_flops_m, count_parameters_m
    from supernet.spaces import create_network

    if args.genotype == "random":
        if not args.space:
            raise InputError(f"inspect random needs --space {'|'.join(space_names())}")
        space = get_space(args.space)
        genotype = space.random_genotype(torch.Generator().manual_seed(args.seed))
    else:
        space, genotype = load_genotype(args.genotype)
        if args.space and args.space != space.name:
            raise InputError(f"genotype is of the {space.name} space, not {args.space}")
    defaults = entry_of(space).inspect_defaults
    layers = args.layers or defaults["layers"]
    channels = args.init_channels or defaults["init_channels"]
    for name, value in (("--layers", layers), ("--init-channels", channels), ("--num-classes", args.num_classes),
                        ("--channels", args.channels)):
        if value < 1:
            raise InputError(f"{name} must be at least 1, got {value}")
        require_size(name[2:].replace("-", "_"), value)
    check_image_size(args.image_size)  # create_network refuses one too small for the space
    with torch.device("meta"):  # shapes only: parameters and FLOPs are counted without allocating or computing
        model = create_network(genotype, args.num_classes, args.channels, channels, layers, auxiliary=False,
                               image_size=args.image_size)
    print(json.dumps({"space": space.name, "params_m": round(count_parameters_m(model), 6),
                      "flops_m": round(count_flops_m(model, args.channels, args.image_size), 3),
                      "layers": layers, "init_channels": channels, "num_classes": args.num_classes,
                      "image_size": args.image_size, "genotype": space.to_text(genotype)}))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from evaluation.compare import Comparison

    config, run = _prepare(args, marker="config.yaml")
    out = run.path
    comparison = Comparison(config, out, progress=not args.no_progress)
    rows = comparison.run(resume=args.resume)
    print(json.dumps({"out": str(out), "rows": len(rows), "report": str(out / "report.md")}))
    return 0


def cmd_nb201_lookup(args: argparse.Namespace) -> int:
    from evaluation.nb201_table import TABLE_SPACE, NB201Table

    space, genotype = load_genotype(args.arch)
    if space.name != TABLE_SPACE:
        raise InputError(f"nb201-lookup needs a NAS-Bench-201 cell, got a {space.name} genotype")
    table = NB201Table.load(args.table)
    print(json.dumps({"arch": space.to_text(genotype), **table.lookup(genotype).as_dict()}))
    return 0


def cmd_visualize(args: argparse.Namespace) -> int:
    from search_spaces.plot import plot_genotype

    space, genotype = load_genotype(args.genotype)
    for path in plot_genotype(space, genotype, args.out):
        print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except InputError as err:
        _error(err)
        return EXIT_BAD_INPUT
    except RunDiverged as err:
        _error(err)
        return EXIT_DIVERGED
    except OSError as err:  # a path the user named cannot be read or written (permissions, a file in the way, ...)
        _error(f"{err.strerror or err}: {err.filename}" if err.filename else err)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted; a run directory keeps its last finished epoch (continue with --resume)", file=sys.stderr)
        return 130
    finally:
        from run_kit.distributed import shutdown_distributed

        shutdown_distributed()


if __name__ == "__main__":
    sys.exit(main())
