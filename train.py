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

from image_sets import DataOptions
from run_kit import InputError, RunDiverged
from run_kit.cli import add_config_flags, config_fields
from run_kit.config import flag as _flag
from run_kit.config import merge, read_config_file
from supernet.export import EXPORT_FORMATS, UNTRAINED_FORMAT
from supernet.methods import method_names, method_settings
from supernet.spaces import entry_of, get_space, load_genotype, space_names

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _add_run_args(group, unit: str = "epoch", stoppable: bool = True) -> None:
    """The run's plumbing, which no config holds: where it writes, resuming, stopping, progress bars."""
    group.add_argument("--out", help="run directory (default: runs/<command>-<dataset>-<time>)")
    group.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    if stoppable:
        group.add_argument("--stop-after-epoch", type=int, metavar=unit.upper().replace("-", "_"),
                           help=f"stop cleanly after this {unit} (continue with --resume)")
    group.add_argument("--no-progress", action="store_true", help="no progress bars")


DATA_OPTIONS = tuple(f.name for f in fields(DataOptions))
RUN_OPTIONS = ("seed", "device", "precision")  # config options listed with the run's plumbing


def _add_config(parser, config_class, sections: dict[str, Any], unit: str = "epoch", stoppable: bool = True,
                seen: set[str] | None = None, exclude: tuple[str, ...] = ()) -> set[str]:
    """--config FILE and every option of `config_class` as a flag (run_kit/cli.py), grouped: `sections` maps a group
    title to the options listed in it (None: all the rest); the run's options and plumbing last."""
    parser.add_argument("--config", help="YAML file of defaults (keys as in the saved config.yaml)")
    seen = set() if seen is None else seen
    seen.update(exclude)
    for title, names in sections.items():
        if names is not None:
            add_config_flags(parser.add_argument_group(title), config_class, only=names, seen=seen)
    rest = [title for title, names in sections.items() if names is None]
    add_config_flags(parser.add_argument_group(rest[0] if rest else "options"), config_class, exclude=RUN_OPTIONS,
                     seen=seen)
    run = parser.add_argument_group("run")
    add_config_flags(run, config_class, only=[n for n in RUN_OPTIONS if n in config_fields(config_class)], seen=seen)
    _add_run_args(run, unit, stoppable)
    return seen


def _add_meta_args(parser, unit: str) -> None:
    """The options of meta-train; `teachers` takes the same config, so both see one set of tasks and one split."""
    from meta.config import MetaConfig

    sections = {name: [f.name for f in fields(section)] for name, section in MetaConfig.sections().items()}
    sections["task"].insert(0, "space")
    _add_config(parser, MetaConfig, sections, unit=unit)


def build_parser() -> OneLineParser:
    from evaluation.compare import CompareConfig
    from meta.config import MetaConfig
    from meta.meta_search import MetaSearchConfig
    from supernet.retrain import RetrainConfig
    from supernet.search import SearchConfig

    parser = OneLineParser(prog="train.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    search = commands.add_parser("search", help="DARTS search; writes genotype.json and a resumable checkpoint")
    search.add_argument("--method", metavar="METHOD",
                        help=f"a search method's published settings as defaults ({method_names()}; --config and "
                             f"flags win), or another registered proposer: random, a published cell's name (DARTS_V2)")
    seen = _add_config(search, SearchConfig, {"data": list(DATA_OPTIONS), "search": None},
                       exclude=("warm_start_from",))  # set by --meta RUN --warm-start
    meta = search.add_argument_group("task-conditioned start (TaskDARTS): --meta RUN, with or without --warm-start")
    meta.add_argument("--warm-start", action="store_true",
                      help="with --meta: a full search (any gradient method, --epochs) from the task-conditioned "
                           "weights and logits; the meta-checkpoint fixes the supernet shape and image format")
    add_config_flags(meta, MetaSearchConfig, seen=seen)
    search.set_defaults(handler=cmd_search, config_class=SearchConfig)

    meta_train = commands.add_parser("meta-train", help="learn across tasks how to start a search")
    _add_meta_args(meta_train, "meta-step")
    meta_train.set_defaults(handler=cmd_meta_train, config_class=MetaConfig)

    teachers = commands.add_parser("teachers", help="the teacher searches that `meta-train --objective imitate` "
                                                    "amortises (takes meta-train's config)")
    _add_meta_args(teachers, "teacher")
    teachers.set_defaults(handler=cmd_teachers, config_class=MetaConfig)

    retrain = commands.add_parser("retrain", help="train a genotype's network from scratch; reports test accuracy")
    _add_config(retrain, RetrainConfig, {"data": list(DATA_OPTIONS), "network and recipe": None})
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
    _add_config(compare, CompareConfig, {"data": list(DATA_OPTIONS), "methods": None}, stoppable=False)
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
    if method and method_settings(method, 1, 1) is not None:  # a search method's settings lie under the file and
        resolved = config_class.from_dict(values)                # the flags; epochs and candidates as resolved
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
    """One proposer family of the registry (supernet/proposers.py), run from its config: a search (`search`), a search
    warm-started from --meta's start (`warm`), or --meta's proposal (`zero-shot`, or `pretrained`, the model that
    ships). Which flags apply to which is checked first (meta/meta_search.check_search_flags), one line for the first
    that does not."""
    from meta import proposers as _registers_meta_families  # noqa: F401  (warm, zero-shot, pretrained)
    from meta.meta_search import check_search_flags
    from supernet.proposers import PROPOSERS, RunControl

    family = check_search_flags(_given(args))
    if family in ("zero-shot", "pretrained"):
        config, run = _proposal_config(args)
    else:
        if family == "warm" and not args.resume:
            args.warm_start_from = args.meta  # the one search option without a flag of its own
        config, run = _prepare(args)
        family = "warm" if config.warm_start_from is not None else "search"  # a resumed run continues its own
        proposer = _method_proposer(args, config)
        if proposer is not None:
            return _emit_proposal(proposer, config, run)
    control = RunControl(args.resume, args.stop_after_epoch, not args.no_progress)
    result = PROPOSERS[family].run_config(config, None, run, control)
    _emit({"run_dir": str(run.path), **result})
    return 0


def _method_proposer(args: argparse.Namespace, config: Any):
    """The registered proposer --method names when it is no search method (random, a published cell, any family
    registered in supernet/proposers.py), else None (a search method's settings are the config's defaults)."""
    from supernet.proposers import PROPOSERS, find_proposer

    if not args.method or method_settings(args.method, 1, 1) is not None:
        return None
    proposer = find_proposer(args.method, get_space(config.space))
    if proposer is None:
        others = ", ".join(entry.usage for entry in PROPOSERS.values() if entry.family != "search")
        raise InputError(f"--method must be a search method ({method_names()}) or another registered proposer "
                         f"({others}), got '{args.method}'")
    if config.warm_start_from is not None:
        raise InputError(f"--warm-start needs a gradient search: --method {args.method} searches nothing")
    if proposer.needs_meta:
        raise InputError(f"--method {args.method} needs a meta-checkpoint: search --meta RUN (--adapt-steps K for "
                         f"taskdarts-K, --warm-start --method METHOD for warm-METHOD)")
    if args.resume or args.stop_after_epoch is not None:
        raise InputError(f"--method {args.method} runs in one step: nothing to resume or stop")
    return proposer


def _emit_proposal(proposer, config: Any, run) -> int:
    """Run a --method that is no search as the command's run; its summary like a search's."""
    from supernet.proposers import ProposalRequest, run_proposal

    request = ProposalRequest.of_search(config)
    proposal = run_proposal(proposer, request, config.load("train"), run, {"method": proposer.name, **asdict(config)})
    _emit({"run_dir": str(run.path), "genotype": request.space.to_json(proposal.genotype),
           "search_seconds": proposal.search_seconds})
    return 0


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The search command's options and mode flags typed on the command line, with their values, in the parser's
    order (its generated flags are None when not typed)."""
    from meta.meta_search import MetaSearchConfig

    options = {**config_fields(args.config_class), **config_fields(MetaSearchConfig)}
    return {name: value for name, value in vars(args).items()
            if (name in options and value is not None) or (name in ("config", "method", "resume", "warm_start")
                                                            and value)}


def _proposal_config(args: argparse.Namespace):
    """(MetaSearchConfig, run directory) of `search --meta`: the config's defaults under the flags typed."""
    from meta.meta_search import MetaSearchConfig

    pretrained = args.meta == "pretrained"
    if not pretrained and not Path(args.meta).exists():
        raise InputError(f"--meta {args.meta}: no such meta-run or checkpoint; name a meta-train run directory, its "
                         f"checkpoint.pt, or `pretrained` (the meta-model that ships)")
    values = {f.name: getattr(args, f.name) for f in fields(MetaSearchConfig) if getattr(args, f.name) is not None}
    values.setdefault("dataset", None if pretrained else "digits")
    values["exclude_ops"] = tuple(values.get("exclude_ops", ()))
    config = MetaSearchConfig(**values)
    return config, _run_dir(args, config.dataset or "probes")


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
