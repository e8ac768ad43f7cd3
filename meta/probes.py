"""Probe accuracies: the measured accuracies of K cells a user trained on the new task (`--probe-accuracies FILE`).

A probe file is a CSV `arch,accuracy`: one row per cell of the space, its accuracy on the task however it was trained,
on any scale where higher is better (only the order and relative spacing of the probes matter to the predictor,
meta/accuracy_predictor.py). It is data a user hands us: its size is checked before it is read, every cell is parsed
by the space, and a bad row is one line naming it.
"""
from __future__ import annotations

import math
from pathlib import Path

from run_kit import InputError
from run_kit.files import read_small_csv
from search_spaces import SearchSpace

MAX_PROBE_BYTES = 1_000_000


def read_probe_accuracies(path: str | Path, space: SearchSpace) -> dict[str, float]:
    """{cell text (the space's canonical form): accuracy} of a probe CSV."""
    rows = read_small_csv(path, ("arch", "accuracy"), "probe file", MAX_PROBE_BYTES)
    probes: dict[str, float] = {}
    for number, row in enumerate(rows, start=2):
        try:
            text = space.to_text(space.from_text((row["arch"] or "").strip()))
            value = float(row["accuracy"])
        except (InputError, ValueError, TypeError, AttributeError) as err:
            raise InputError(f"probe file {path} line {number}: {err}") from None
        if not math.isfinite(value):
            raise InputError(f"probe file {path} line {number}: accuracy must be a finite number, got "
                             f"{row['accuracy']}")
        if text in probes:
            raise InputError(f"probe file {path} line {number}: cell {text} appears twice")
        probes[text] = value
    return probes
