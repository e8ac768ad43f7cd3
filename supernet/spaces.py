"""The registry of search spaces: one entry per space pairs what the space is (its genotypes, derivation, text and
JSON forms, cell diagrams: search_spaces/) with its network side (supernet, discrete network, the macro skeleton's
feature maps, retraining recipe, the size of its published evaluation network).

Everything that depends on which space a run uses asks this registry; no other code branches on a space's name. A
new space is a SearchSpace subclass, its two networks and one `register_space` call
(tests/search_spaces/test_new_space.py adds a toy third space that way and runs search, derive, retrain and inspect
on it).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from run_kit import InputError
from search_spaces import PUBLISHED, DartsSpace, NB201Space, SearchSpace

from .darts_networks import DartsNetwork, DartsSupernet, darts_feature_maps
from .nb201_networks import NB201Network, NB201Supernet, nb201_feature_maps

MAX_GENOTYPE_FILE = 1_000_000  # bytes

SupernetFactory = Callable[..., nn.Module]
"""(space, num_classes, in_channels=, C=, layers=, relaxation=, partial=, recompute=, precision=) -> supernet whose
forward(x, logits) takes architecture logits."""
NetworkFactory = Callable[..., nn.Module]
"""(genotype, num_classes, in_channels, C, layers, auxiliary, image_size, precision=) -> discrete network whose
forward(x) gives (logits, auxiliary logits or None)."""


@dataclass(frozen=True)
class RetrainRecipe:
    """How the space's papers train a discrete network; a value set in a RetrainConfig wins. grad_clip 0: none."""

    lr: float
    weight_decay: float
    nesterov: bool
    drop_path_prob: float
    batch_size: int
    grad_clip: float


@dataclass(frozen=True)
class SpaceEntry:
    space: SearchSpace
    supernet: SupernetFactory
    network: NetworkFactory
    feature_maps: Callable[[int, int], list[tuple[int, int]]]  # (C, layers) -> (channels, downsampling) per cell
    recipe: RetrainRecipe
    inspect_defaults: Mapping[str, int]  # layers and init_channels of the published evaluation network


SPACES: dict[str, SpaceEntry] = {}


def register_space(entry: SpaceEntry) -> None:
    if entry.space.name in SPACES:
        raise ValueError(f"a search space named '{entry.space.name}' is registered already")
    SPACES[entry.space.name] = entry


register_space(SpaceEntry(
    DartsSpace(published=PUBLISHED), DartsSupernet, DartsNetwork, darts_feature_maps,
    RetrainRecipe(lr=0.025, weight_decay=3e-4, nesterov=False, drop_path_prob=0.2, batch_size=96, grad_clip=5.0),
    {"layers": 20, "init_channels": 36}))
register_space(SpaceEntry(
    NB201Space(), NB201Supernet, NB201Network, nb201_feature_maps,
    RetrainRecipe(lr=0.1, weight_decay=5e-4, nesterov=True, drop_path_prob=0.0, batch_size=256, grad_clip=0.0),
    {"layers": 5, "init_channels": 16}))


def space_names() -> list[str]:
    return list(SPACES)


def entry_of(space: SearchSpace | str) -> SpaceEntry:
    """The registry entry of a space (or space name); an unknown one is one line naming the known ones."""
    name = space if isinstance(space, str) else space.name
    if name not in SPACES:
        raise InputError(f"unknown search space '{name}'; known: {', '.join(SPACES)}")
    return SPACES[name]


def get_space(name: str) -> SearchSpace:
    return entry_of(name).space


def space_of(genotype: Any) -> SearchSpace:
    for entry in SPACES.values():
        if entry.space.owns(genotype):
            return entry.space
    raise InputError(f"not a genotype of any known space: {genotype!r}"[:300])


def genotype_from_json(data: Any) -> tuple[SearchSpace, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("space"), str):
        raise InputError(f"genotype JSON must be an object with a 'space' field ({' or '.join(map(repr, SPACES))})")
    space = get_space(str(data["space"]))
    return space, space.from_json(data)


def genotype_to_json(genotype: Any) -> dict:
    return space_of(genotype).to_json(genotype)


def genotype_to_text(genotype: Any) -> str:
    return space_of(genotype).to_text(genotype)


def load_genotype(spec: str) -> tuple[SearchSpace, Any]:
    """Resolve any genotype a user may type to (space, validated genotype): a published name, a space's one-line
    text form, a JSON object, a genotype.json file or a run directory holding one."""
    text = str(spec).strip()
    spaces = [entry.space for entry in SPACES.values()]
    for space in spaces:
        if text in space.published:
            return space, space.published[text]
    for space in spaces:
        if space.recognizes(text):
            return space, space.from_text(text)
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
    published = ", ".join(name for space in spaces for name in space.published)
    raise InputError(f"cannot read genotype '{text}': not a file, run directory, published name ({published}), "
                     + " or ".join(space.text_form for space in spaces))


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"malformed JSON in {where}: {err}") from None
    except RecursionError:
        raise InputError(f"malformed JSON in {where}: nested too deeply") from None


def create_supernet(space: SearchSpace, num_classes: int, in_channels: int, C: int, layers: int,
                    relaxation=None, partial: int = 1, recompute: bool = False, precision: str = "fp32") -> nn.Module:
    """The space's supernet. `partial`: PC-DARTS's K (1 = every channel through every op, plain DARTS). `recompute`:
    keep only each cell's inputs for backward and recompute the cell's inside (model.run_cell). `precision`: "fp32"
    or "bf16" (autocast)."""
    return entry_of(space).supernet(space, num_classes, in_channels=in_channels, C=C, layers=layers,
                                    relaxation=relaxation, partial=partial, recompute=recompute, precision=precision)


def create_network(genotype: Any, num_classes: int, in_channels: int, C: int, layers: int, auxiliary: bool = False,
                   image_size: int = 32, precision: str = "fp32") -> nn.Module:
    """The discrete network of the genotype's space; `auxiliary` (the DARTS auxiliary head) where the space has one;
    `precision` "bf16" runs its forward pass under bfloat16 autocast."""
    space = space_of(genotype)
    space.check_image_size(image_size)
    return entry_of(space).network(genotype, num_classes, in_channels, C, layers, auxiliary, image_size,
                                   precision=precision)


def activation_bytes_lower_bound(space: SearchSpace, C: int, layers: int, edges_per_cell: int, batch: int,
                                 image_size: int) -> int:
    """What a training step keeps at the least: every edge of every cell holds one fp32 map of its cell's size for
    backward (real networks hold several). Refusing what exceeds memory by this bound never refuses a run that fits."""
    return sum(4 * batch * edges_per_cell * c * (-(-image_size // factor)) ** 2
               for c, factor in entry_of(space).feature_maps(C, layers))
