"""One way to get a cell: every method that turns a task into a cell is a registered proposer.

A proposer family is one `ProposerEntry`: `parse` recognises the names a user types for it (`darts1`, `naswot-500`,
`random`, `DARTS_V2`, `taskdarts-0`, `warm-darts1`; None: not this family, InputError: this family, malformed), and
`run` turns a `ProposalRequest` and the task's images into a `Proposal` (the genotype, the seconds its search took and
the directory it wrote). `create_proposer(name, space)` is the only place a method's name is parsed; `compare` and
its checks go through it, so a new way of getting a cell is one `register_proposer` call
(tests/supernet/test_proposers.py adds a toy one in one file).

A family whose job a user configures in full (a search's SearchConfig, a meta proposal's MetaSearchConfig) also has
`run_config`: the whole job from its own config in a run directory, with the command's resume, stop and progress
(`RunControl`), returning the job's summary. `train.py search` runs one of these families (`search`, `warm`,
`zero-shot`, `pretrained`, chosen by its --meta and --warm-start) through it, and the family's `run` builds that
config from a request and calls the same function, so the command and `compare` run one code path.

This module registers the families of the supernet layer: the gradient and training-free searches of the method
registry (supernet/methods.py), random and published cells. Meta-learned proposals register themselves from
meta/proposers.py, which the callers import.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from image_sets.data import ImageData
from run_kit import InputError
from run_kit.files import atomic_write_text
from run_kit.run_dir import RunDir
from search_spaces import SearchSpace

from .methods import method_names, method_settings
from .search import SearchConfig, run_search
from .spaces import SPACES, get_space


@dataclass(frozen=True)
class ProposalRequest:
    """What every proposer is given besides the images: the space, the run's seed and device, and the search budget
    and supernet shape that searches use (others ignore them; they default to a plain search's)."""

    space: SearchSpace
    dataset: str
    data_root: str = "data"
    seed: int = 0
    device: str = "auto"
    search_epochs: int = SearchConfig.epochs
    candidates: int = SearchConfig.candidates
    layers: int = SearchConfig.layers
    init_channels: int = SearchConfig.init_channels
    batch_size: int = SearchConfig.batch_size
    image_size: int | None = None
    meta: str | None = None  # a meta-checkpoint, for the meta-learned families
    exclude_ops: tuple[str, ...] = ()  # ops no proposal may use (every family honours it)

    @classmethod
    def of_search(cls, config: SearchConfig) -> ProposalRequest:
        """The request a search's config makes (`train.py search --method NAME` for a family that is no search)."""
        return cls(get_space(config.space), config.dataset, config.data_root, config.seed, config.device,
                   config.epochs, config.candidates, config.layers, config.init_channels, config.batch_size,
                   config.image_size, exclude_ops=tuple(config.exclude_ops))


@dataclass(frozen=True)
class Proposal:
    genotype: Any
    search_seconds: float = 0.0
    run_dir: Path | None = None  # where its search wrote config, log, metrics, checkpoint and genotype (if it ran one)


ProposerRun = Callable[[Mapping[str, Any], ProposalRequest, ImageData, Path], Proposal]


@dataclass(frozen=True)
class RunControl:
    """How a command runs a job in its run directory: continue it from its checkpoint, stop cleanly after a unit (an
    epoch), show progress bars."""

    resume: bool = False
    stop_after: int | None = None
    progress: bool = True


ConfigRun = Callable[[Any, "ImageData | None", RunDir, RunControl], dict[str, Any]]
"""(the family's config, the images or None (the config's data set), run directory, control) -> the job's summary."""


@dataclass(frozen=True)
class ProposerEntry:
    family: str
    usage: str  # the names it takes, for help and errors
    parse: Callable[[str, SearchSpace], Mapping[str, Any] | None]
    run: ProposerRun
    needs_meta: bool = False
    run_config: ConfigRun | None = None  # the whole job from the family's own config (see the module's docstring)


@dataclass(frozen=True)
class Proposer:
    """A parsed method name: its family, parameters and how to run it."""

    name: str
    entry: ProposerEntry
    params: Mapping[str, Any]

    @property
    def needs_meta(self) -> bool:
        return self.entry.needs_meta

    def propose(self, request: ProposalRequest, data: ImageData, directory: Path) -> Proposal:
        """Run it, writing its search (if any) under `directory`; an interrupted one continues from its checkpoint."""
        return self.entry.run(self.params, request, data, directory)


PROPOSERS: dict[str, ProposerEntry] = {}


def register_proposer(entry: ProposerEntry) -> ProposerEntry:
    """Add a family (the first whose `parse` accepts a name owns it, in registration order)."""
    if entry.family in PROPOSERS:
        raise ValueError(f"proposer family {entry.family!r} is registered already")
    PROPOSERS[entry.family] = entry
    return entry


def proposer_names() -> str:
    return ", ".join(entry.usage for entry in PROPOSERS.values())


def find_proposer(name: str, space: SearchSpace) -> Proposer | None:
    """The proposer `name` stands for in `space`, None when no family takes the name; a malformed name of a family
    is one line."""
    for entry in PROPOSERS.values():
        params = entry.parse(name, space)
        if params is not None:
            return Proposer(name, entry, params)
    return None


def create_proposer(name: str, space: SearchSpace) -> Proposer:
    """The proposer `name` stands for in `space`; an unknown or malformed name is one line."""
    proposer = find_proposer(name, space)
    if proposer is None:
        raise InputError(f"unknown method '{name}'; known: {proposer_names()}")
    return proposer


def run_proposal(proposer: Proposer, request: ProposalRequest, data: ImageData, run: RunDir,
                 config: Mapping[str, Any]) -> Proposal:
    """A proposer run as a command's run directory (`train.py search --method random`, a published name, a family
    added later): `config` as config.yaml, what the proposer writes, and genotype.json; bad input found while it runs
    leaves nothing behind."""
    with run.claim(resume=False, discard_on_input_error=True):
        run.save_config(config)
        proposal = proposer.propose(request, data, run.path)
        atomic_write_text(run.file("genotype.json"), request.space.dumps(proposal.genotype) + "\n")
    return proposal


def _parse_search(name: str, space: SearchSpace) -> Mapping[str, Any] | None:
    return {"method": name} if method_settings(name, 1, 1) is not None else None


def _search_job(config: SearchConfig, data: ImageData | None, run: RunDir, control: RunControl) -> dict[str, Any]:
    """A search of `config` on `data` (None: the config's data set's training split)."""
    return run_search(config, config.load("train") if data is None else data, run, control.resume,
                      control.stop_after, control.progress)


def _run_search(params: Mapping[str, Any], request: ProposalRequest, data: ImageData, directory: Path) -> Proposal:
    settings = method_settings(params["method"], request.search_epochs, request.candidates)
    config = SearchConfig(space=request.space.name, dataset=request.dataset, data_root=request.data_root,
                          image_size=request.image_size, epochs=request.search_epochs, layers=request.layers,
                          init_channels=request.init_channels, batch_size=request.batch_size, seed=request.seed,
                          device=request.device, exclude_ops=list(request.exclude_ops), **settings)
    result = _search_job(config, data, RunDir(directory), RunControl((directory / "checkpoint.pt").exists(),
                                                                     progress=False))
    return Proposal(request.space.from_json(result["genotype"]), result["search_seconds"], directory)


def _parse_random(name: str, space: SearchSpace) -> Mapping[str, Any] | None:
    return {} if name == "random" else None


def _run_random(params: Mapping[str, Any], request: ProposalRequest, data: ImageData, directory: Path) -> Proposal:
    return Proposal(request.space.random_genotype_without(torch.Generator().manual_seed(request.seed),
                                                          request.exclude_ops))


def published_space(name: str) -> SearchSpace | None:
    """The space whose published genotype is called `name`, or None."""
    return next((entry.space for entry in SPACES.values() if name in entry.space.published), None)


def _parse_published(name: str, space: SearchSpace) -> Mapping[str, Any] | None:
    owner = published_space(name)
    if owner is None:
        return None
    if owner is not space:
        raise InputError(f"method '{name}' is a {owner.name}-space genotype; it does not fit --space {space.name}")
    return {"name": name}


def _run_published(params: Mapping[str, Any], request: ProposalRequest, data: ImageData, directory: Path) -> Proposal:
    genotype = request.space.published[params["name"]]
    used = request.space.ops_used(genotype) & set(request.space.check_excluded_ops(request.exclude_ops))
    if used:
        raise InputError(f"method '{params['name']}' uses {', '.join(sorted(used))}, which --exclude-ops leaves out")
    return Proposal(genotype)


register_proposer(ProposerEntry("search", method_names(), _parse_search, _run_search, run_config=_search_job))
register_proposer(ProposerEntry("random", "random (a random genotype of the space)", _parse_random, _run_random))
register_proposer(ProposerEntry("published", "a published name (published: all of the space's)", _parse_published,
                                _run_published))
