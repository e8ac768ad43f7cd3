"""Verify a short list of proposed cells on the task itself: train each briefly and keep the best (`--verify K`).

A predictor ranks cells blind; the task's own images can break its near-ties. Each candidate's evaluation network is
trained for a few epochs on a seeded, stratified part of the task's *training* images and scored on the rest of
them (the validation part). No test split and no table is read: the choice is the user's data alone. Each candidate
is an ordinary retraining run directory (config, log, metrics, checkpoint, result.json) under `run/candidateK/`, so
an interrupted verification continues where it stopped, and its cost (seconds per candidate) is reported.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from image_sets.data import ImageData, in_memory, stratified_holdout
from run_kit import InputError
from run_kit.files import atomic_write_text
from run_kit.run_dir import RunDir
from search_spaces import SearchSpace

from .retrain import RetrainConfig, run_retrain

VALIDATION_FRACTION = 0.2
VALIDATION_SEED = 1  # not the holdout seed of the data sets' own test splits


@dataclass(frozen=True)
class Verification:
    best: int  # index into the candidates
    accuracies: list[float]  # each candidate's accuracy on the validation part of the training images
    seconds: list[float]  # each candidate's training time


def verify_candidates(space: SearchSpace, candidates: list[Any], train: ImageData, run: Path, epochs: int = 1,
                      layers: int = 1, init_channels: int = 8, seed: int = 0, device: str = "auto",
                      progress: bool = False) -> Verification:
    """Train each candidate genotype for `epochs` on 80 % of `train` (per class, seeded) and score it on the other
    20 %; the best is the first of the highest accuracy (the candidates' order breaks ties)."""
    if not candidates:
        raise InputError("nothing to verify: no candidate cell")
    fit, held = stratified_holdout(train.y, VALIDATION_FRACTION, VALIDATION_SEED)
    if len(held) == 0 or len(fit) == 0:
        raise InputError(f"--verify needs a validation part of the training images; {len(train)} images are too few")
    fit_data, held_data = train.subset(fit), train.subset(held)
    accuracies, seconds = [], []
    for k, genotype in enumerate(candidates):
        directory = run / f"candidate{k}"
        directory.mkdir(parents=True, exist_ok=True)
        genotype_file = directory / "candidate.json"
        atomic_write_text(genotype_file, space.dumps(genotype) + "\n")
        config = RetrainConfig(genotype=str(genotype_file), dataset=in_memory("80 % of the task's training images"),
                               epochs=epochs, layers=layers, init_channels=init_channels, seed=seed, device=device)
        result = run_retrain(config, fit_data, held_data, RunDir(directory),
                             resume=(directory / "checkpoint.pt").exists(), progress=progress)
        accuracies.append(float(result["test_acc"]))
        seconds.append(float(result["train_seconds"]))
    best = max(range(len(candidates)), key=lambda k: (accuracies[k], -k))
    return Verification(best, accuracies, seconds)
