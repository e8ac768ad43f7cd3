"""Cell search spaces, their genotypes and the genotypes' text and JSON forms.

`get_space(name)` is the registry; `load_genotype(spec)` accepts every form a user may type: a genotype.json
path, a run directory holding one, a published name, a DARTS `Genotype(...)` string or a NAS-Bench-201 string.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from run_kit import InputError

from .base import SearchSpace
from .darts import DartsSpace, Genotype
from .nb201 import NB201Genotype, NB201Space
from .published import PUBLISHED

MAX_GENOTYPE_FILE = 1_000_000  # bytes

SPACES: dict[str, SearchSpace] = {space.name: space for space in (DartsSpace(), NB201Space())}


def get_space(name: str) -> SearchSpace:
    if name not in SPACES:
        raise InputError(f"unknown search space '{name}'; known: {', '.join(SPACES)}")
    return SPACES[name]


def space_of(genotype: Any) -> SearchSpace:
    for space in SPACES.values():
        if space.owns(genotype):
            return space
    raise InputError(f"not a genotype of any known space: {genotype!r}")


def genotype_from_json(data: Any) -> tuple[SearchSpace, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("space"), str):
        raise InputError("genotype JSON must be an object with a 'space' field ('darts' or 'nb201')")
    space = get_space(str(data["space"]))
    return space, space.from_json(data)


def genotype_to_json(genotype: Any) -> dict:
    return space_of(genotype).to_json(genotype)


def genotype_to_text(genotype: Any) -> str:
    return space_of(genotype).to_text(genotype)


def load_genotype(spec: str) -> tuple[SearchSpace, Any]:
    """Resolve any user-facing genotype spec to (space, validated genotype)."""
    text = str(spec).strip()
    if text in PUBLISHED:
        return SPACES["darts"], PUBLISHED[text]
    if text.startswith("Genotype("):
        return SPACES["darts"], SPACES["darts"].from_text(text)
    if text.startswith("|"):
        return SPACES["nb201"], SPACES["nb201"].from_text(text)
    if text.startswith("{"):
        return genotype_from_json(_parse_json(text, "genotype"))
    path = Path(text)
    if len(text) < 4096 and path.is_dir():
        path = path / "genotype.json"
    if len(text) < 4096 and path.is_file():
        if path.stat().st_size > MAX_GENOTYPE_FILE:
            raise InputError(f"{path} is {path.stat().st_size:,} bytes; a genotype file is a few hundred")
        try:
            content = path.read_text()
        except UnicodeDecodeError:
            raise InputError(f"{path} is not a genotype JSON file (not text)") from None
        return genotype_from_json(_parse_json(content, str(path)))
    text = text if len(text) < 200 else text[:200] + "..."
    raise InputError(f"cannot read genotype '{text}': not a file, run directory, published name "
                     f"({', '.join(PUBLISHED)}), Genotype(...) string or NAS-Bench-201 string")


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"malformed JSON in {where}: {err}") from None
    except RecursionError:
        raise InputError(f"malformed JSON in {where}: nested too deeply") from None


__all__ = ["SearchSpace", "DartsSpace", "NB201Space", "Genotype", "NB201Genotype", "PUBLISHED",
           "SPACES", "get_space", "space_of", "load_genotype", "genotype_from_json", "genotype_to_json",
           "genotype_to_text"]
