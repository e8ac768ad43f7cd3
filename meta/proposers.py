"""The meta-learned proposer families, registered in supernet/proposers.py's registry on import:

- `taskdarts-K`: the meta-model's zero-shot (K = 0) or K-step adapted proposal for the task (meta/meta_search.py);
- `warm-METHOD`: a full search of a gradient METHOD started from the meta-model's weights and logits for the task.

Both need a meta-checkpoint (`ProposalRequest.meta`).
- `pretrained`: the pretrained meta-model that ships (meta/pretrained_search.py), in NAS-Bench-201; it needs no
  meta-checkpoint, and without probes its proposal is the constant prior of its earlier tasks.
"""
from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from image_sets.data import ImageData
from run_kit import InputError
from run_kit.run_dir import RunDir
from search_spaces import SearchSpace
from supernet.methods import METHODS, method_settings
from supernet.proposers import Proposal, ProposalRequest, ProposerEntry, RunControl, register_proposer
from supernet.search import SearchConfig
from supernet.spaces import load_genotype

from .experience import SPACE
from .meta_search import MetaSearchConfig, run_meta_search, warm_search
from .pretrained_search import PRETRAINED, run_pretrained_search

ZERO_SHOT = "taskdarts-"
WARM = "warm-"


def _parse_zero_shot(name: str, space: SearchSpace) -> Mapping[str, Any] | None:
    if not name.startswith(ZERO_SHOT):
        return None
    if not name[len(ZERO_SHOT):].isdigit():
        raise InputError(f"method '{name}': use taskdarts-K with K the adaptation steps, e.g. taskdarts-0")
    return {"adapt_steps": int(name[len(ZERO_SHOT):])}


def _zero_shot_job(config: MetaSearchConfig, data: ImageData | None, run: RunDir, control: RunControl
                   ) -> dict[str, Any]:
    """The meta-model's proposal for the config's data set (`data` is not read: the task is the whole data set), in
    seconds: nothing to resume or stop."""
    return run_meta_search(config, run, progress=control.progress)


def _run_zero_shot(params: Mapping[str, Any], request: ProposalRequest, data: ImageData, directory: Path) -> Proposal:
    """The meta-model's proposal, written as a search run directory (redone when interrupted: it takes seconds)."""
    config = MetaSearchConfig(meta=request.meta, dataset=request.dataset, adapt_steps=params["adapt_steps"],
                              space=request.space.name, seed=request.seed, data_root=request.data_root,
                              device=request.device, exclude_ops=request.exclude_ops)
    return _quick_proposal(directory, lambda run: _zero_shot_job(config, None, run, RunControl(progress=False)))


def _parse_pretrained(name: str, space: SearchSpace) -> Mapping[str, Any] | None:
    if name != PRETRAINED:
        return None
    if space.name != SPACE.name:
        raise InputError(f"method 'pretrained' proposes {SPACE.name} cells; the {space.name} space has no pretrained "
                         f"model")
    return {}


def _run_pretrained(params: Mapping[str, Any], request: ProposalRequest, data: ImageData, directory: Path
                    ) -> Proposal:
    """The shipped model's proposal for the data set's format, written as a search run directory (redone when
    interrupted: it takes well under a second)."""
    config = MetaSearchConfig(meta=PRETRAINED, dataset=request.dataset, seed=request.seed,
                              data_root=request.data_root, device=request.device, exclude_ops=request.exclude_ops)
    return _quick_proposal(directory, lambda run: _pretrained_job(config, None, run, RunControl(progress=False)))


def _pretrained_job(config: MetaSearchConfig, data: ImageData | None, run: RunDir, control: RunControl
                    ) -> dict[str, Any]:
    """The shipped model's proposal (well under a second; nothing to resume, stop or show)."""
    return run_pretrained_search(config, run)


def _quick_proposal(directory: Path, make: Callable[[RunDir], Any]) -> Proposal:
    """A proposal that takes seconds, written by `make` as a search run directory: an interrupted one (no
    genotype.json yet) is redone from an empty directory rather than resumed; its seconds from its metrics.csv."""
    if not (directory / "genotype.json").exists():
        if directory.exists():
            for leftover in directory.iterdir():
                leftover.unlink()
        make(RunDir(directory))
    with (directory / "metrics.csv").open() as f:
        seconds = float(next(csv.DictReader(f))["seconds"])
    return Proposal(load_genotype(str(directory))[1], seconds, directory)


def _parse_warm(name: str, space: SearchSpace) -> Mapping[str, Any] | None:
    if not name.startswith(WARM):
        return None
    method = METHODS.get(name[len(WARM):])
    if method is None or method.training_free:
        gradient = ", ".join(m.name for m in METHODS.values() if not m.training_free)
        raise InputError(f"method '{name}': use warm-METHOD with METHOD a gradient search ({gradient})")
    if method.settings.get("partial_channels", 1) != 1:
        raise InputError(f"method '{name}': the meta-checkpoint's supernet weights do not fit a partial-channel "
                         "supernet; warm-start a full-channel search, e.g. warm-darts1")
    return {"method": method.name}


def _warm_job(config: SearchConfig, data: ImageData | None, run: RunDir, control: RunControl) -> dict[str, Any]:
    """A search of `config` from the start of its meta-checkpoint (`warm_start_from`) for the task, on `data` (None: the
    config's data set's training split); the checkpoint fixes the space, supernet shape and image format."""
    return warm_search(config, data, run, control.resume, control.stop_after, control.progress)


def _run_warm(params: Mapping[str, Any], request: ProposalRequest, data: ImageData, directory: Path) -> Proposal:
    """The meta-model's supernet shape and image format, its start for this task, then METHOD's search (a
    meta-checkpoint of another space than the comparison's is refused)."""
    settings = method_settings(params["method"], request.search_epochs, request.candidates)
    config = SearchConfig(space=request.space.name, dataset=request.dataset, data_root=request.data_root,
                          epochs=request.search_epochs, batch_size=request.batch_size, seed=request.seed,
                          device=request.device, warm_start_from=request.meta,
                          exclude_ops=list(request.exclude_ops), **settings)
    result = warm_search(config, data, RunDir(directory), resume=(directory / "checkpoint.pt").exists(),
                         progress=False, expect_space=request.space.name)
    return Proposal(request.space.from_json(result["genotype"]), result["search_seconds"], directory)


register_proposer(ProposerEntry("zero-shot", "taskdarts-K (K adaptation steps from --meta)", _parse_zero_shot,
                                _run_zero_shot, needs_meta=True, run_config=_zero_shot_job))
register_proposer(ProposerEntry("warm", "warm-METHOD (a search METHOD warm-started from --meta's start for the data "
                                        "set)", _parse_warm, _run_warm, needs_meta=True, run_config=_warm_job))
register_proposer(ProposerEntry("pretrained", "pretrained (the meta-model that ships; nb201)", _parse_pretrained,
                                _run_pretrained, run_config=_pretrained_job))
