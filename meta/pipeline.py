"""The meta pipeline: teachers -> imitation meta-training -> the meta-model a proposal reads, with every run cached
under a directory named by a hash of the config that made it.

A study asks for "the seed-s imitation meta-run of this config with these options"; `MetaPipeline.meta_run` makes
its teacher bank (if no finished bank of the same teacher settings is cached), then meta-trains (if no finished run of
the same config is cached), resuming an interrupted run and never deleting one. A run made with another config sits
in another directory (its key differs), so it is never reused by mistake and never overwritten: two studies that
share a cache share only what they would both have made.

Keys: 12 hex digits of the SHA-256 of the canonical JSON of the options that decide the run.
- a teacher bank: the space, seed, device, task and teacher sections, and the model options its searches read
  (`TEACHER_MODEL_OPTIONS`); the meta-learning sections do not change a teacher;
- a meta-run: its whole config, its bank named by the bank's key rather than by a path (a moved cache keeps its keys).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from run_kit import InputError
from run_kit.config import read_config_file
from run_kit.files import atomic_write_text, load_checkpoint
from run_kit.run_dir import RunDir

from .config import MetaConfig
from .meta_train import run_meta_train
from .model import TaskDARTS, load_meta
from .teacher_bank import TEACHERS_FILE
from .teacher_job import run_teachers

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TEACHER_MODEL_OPTIONS = ("layers", "init_channels", "precision")
"""The model section's options a teacher search reads (MetaConfig.teacher_search: the supernet's scale)."""
KEY_FILE = "pipeline_key.json"  # the options a cached run's key was computed from, written beside it


def config_key(values: Mapping[str, Any]) -> str:
    """12 hex digits of the SHA-256 of `values` as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def teacher_options(config: MetaConfig) -> dict[str, Any]:
    """What decides a config's teacher bank (and nothing else: two meta-runs that differ only in how they learn
    share their teachers)."""
    values = config.as_dict()
    return {"space": values["space"], "seed": values["seed"], "device": values["device"], "task": values["task"],
            "teacher": values["teacher"], "model": {name: values["model"][name] for name in TEACHER_MODEL_OPTIONS}}


def read_meta_config(path: str | Path, **options: Any) -> MetaConfig:
    """A meta-train config from a YAML file (as `train.py meta-train --config`), with flat `options` replaced."""
    config = MetaConfig.from_dict(read_config_file(path)).with_options(**options)
    config.validate()
    return config


@dataclass(frozen=True)
class MetaPipeline:
    """Teacher banks and meta-runs under `cache`, each in `teachers-KEY/` or `meta-KEY/`."""

    cache: Path
    progress: bool = False

    def teachers_path(self, config: MetaConfig) -> Path:
        """Where the teacher bank of `config`'s teacher settings is cached (made or not)."""
        return self.cache / f"teachers-{config_key(teacher_options(config))}"

    def meta_path(self, config: MetaConfig) -> Path:
        """Where the imitation meta-run of `config` is cached (made or not)."""
        return self.cache / f"meta-{config_key(_meta_options(self._imitating(config)))}"

    def teachers(self, config: MetaConfig) -> Path:
        """The finished teacher bank of `config`'s teacher settings: made, or continued, here if need be."""
        run = self.teachers_path(config)
        if not (run / TEACHERS_FILE).is_file():
            resume = (run / "checkpoint.pt").is_file()
            _write_key(run, teacher_options(config))
            run_teachers(config, RunDir(run), resume=resume, progress=self.progress)
        return run

    def meta_run(self, config: MetaConfig) -> Path:
        """The finished imitation meta-run of `config` (its `teachers` option replaced by the cached bank of the same
        config's teacher settings), made, or continued, here if need be."""
        self.teachers(config)
        config = self._imitating(config)
        run = self.meta_path(config)
        checkpoint = run / "checkpoint.pt"
        if not checkpoint.is_file() or load_checkpoint(checkpoint)["step"] < config.meta.meta_steps:
            resume = checkpoint.is_file()
            _write_key(run, _meta_options(config))
            run_meta_train(config, RunDir(run), resume=resume, progress=self.progress)
        return run

    def _imitating(self, config: MetaConfig) -> MetaConfig:
        return config.with_options(objective="imitate", teachers=str(self.teachers_path(config)))


def _meta_options(config: MetaConfig) -> dict[str, Any]:
    """What decides an imitation meta-run: its whole config, its bank named by the bank's key (the directory's name)
    rather than by where the cache lies."""
    options = config.as_dict()
    options["imitate"]["teachers"] = Path(options["imitate"]["teachers"]).name
    return options


def _write_key(run: Path, options: Mapping[str, Any]) -> None:
    """Record what a cached run's key was computed from, before the run starts (a directory of that name holds a run
    of exactly these options, or nothing)."""
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run / KEY_FILE, json.dumps(options, indent=1, sort_keys=True, default=str) + "\n")


@dataclass(frozen=True)
class ImitationStudy:
    """The meta-runs a study reads: for each seed, one imitation meta-run per design, all from one config file with
    the study's `options` (and the design's, and the seed) replaced."""

    config_file: Path
    designs: Mapping[str, Mapping[str, Any]]  # name -> options
    options: Mapping[str, Any] = field(default_factory=dict)

    def config(self, design: str, seed: int) -> MetaConfig:
        if design not in self.designs:
            raise InputError(f"unknown design '{design}'; known: {', '.join(self.designs)}")
        return read_meta_config(self.config_file, **{**self.options, **self.designs[design], "seed": seed})

    def meta_runs(self, pipeline: MetaPipeline, seed: int) -> dict[str, Path]:
        """design -> the seed's finished meta-run (made here if not cached)."""
        return {design: pipeline.meta_run(self.config(design, seed)) for design in self.designs}

    def meta_models(self, pipeline: MetaPipeline, seed: int) -> dict[str, TaskDARTS]:
        return {design: load_meta(str(run), torch.device("cpu")) for design, run in self.meta_runs(pipeline,
                                                                                                      seed).items()}


ZERO_SHOT_BUDGETS = ImitationStudy(
    CONFIGS / "meta_nb201_natural.yaml",
    designs={"taskdarts": {"use_encoder": True}, "no-encoder": {"use_encoder": False}},
    options={"imitate_weight_steps": 0, "device": "cpu"})
"""The budget studies' meta-runs (docs/results/budgets.md): the natural config's TaskDARTS and its --no-encoder
ablation, without the start weights' inner steps (a zero-shot budgeted proposal reads the logits alone), on CPU."""
