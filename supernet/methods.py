"""The search methods, in one registry: each one's SearchConfig settings as its paper runs it.

`search --method M`, `compare --methods M ...` and the teachers' `--teacher-method M` read this registry, and their
choices and help come from it, so a new method is one entry here. A training-free method takes a count, `naswot-500`:
the number of cells it scores (else `--candidates`). Whatever a method does not set is the search's default.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from run_kit import InputError

LITERATURE: Mapping[str, Any] = {"logit_lr": 3e-4, "logit_lr_schedule": "constant"}
"""The DARTS reference's logit optimiser (Adam 3e-4, betas 0.5/0.999, wd 1e-3, no schedule; the betas and weight
decay are the search's defaults already): what every gradient method of the registry uses."""


@dataclass(frozen=True)
class SearchMethod:
    name: str
    title: str  # what the method is, for help texts and reports
    settings: Mapping[str, Any] = field(default_factory=dict)  # SearchConfig overrides
    logit_warmup_fraction: float = 0.0  # logits frozen for this share of the epochs (PC-DARTS: 15 of 50)
    training_free: bool = False  # scores cells at initialisation; `name-N` scores N of them

    def search_settings(self, epochs: int, candidates: int) -> dict[str, Any]:
        """SearchConfig overrides for a search of `epochs` epochs (or of `candidates` cells if training-free)."""
        settings = dict(self.settings)
        if self.logit_warmup_fraction:
            settings["logit_warmup_epochs"] = round(self.logit_warmup_fraction * epochs)
        if self.training_free:
            settings["candidates"] = candidates
        return settings


METHODS: dict[str, SearchMethod] = {method.name: method for method in (
    SearchMethod("darts1", "DARTS, first order", {**LITERATURE, "order": 1, "relax": "softmax"}),
    SearchMethod("darts2", "DARTS, second order (unrolled)", {**LITERATURE, "order": 2, "relax": "softmax"}),
    SearchMethod("gdas", "GDAS: hard Gumbel sampling", {**LITERATURE, "relax": "gumbel"}),
    SearchMethod("pcdarts", "PC-DARTS: 1/4 of the channels, edge normalisation, logits frozen for 30 % of the epochs",
                 {**LITERATURE, "partial_channels": 4, "edge_normalization": True}, logit_warmup_fraction=0.3),
    SearchMethod("beta-darts", "beta-DARTS: beta-decay on the logits", {**LITERATURE, "logit_regularizer": "beta"}),
    SearchMethod("drnas", "DrNAS: Dirichlet mixing weights", {**LITERATURE, "relax": "dirichlet"}),
    SearchMethod("naswot", "NASWOT: the best of N random cells by log |det K_H|", {"proxy": "naswot"},
                 training_free=True),
    SearchMethod("synflow", "synflow: the best of N random cells by synaptic flow", {"proxy": "synflow"},
                 training_free=True),
)}


def parse_method(spec: str) -> tuple[SearchMethod, int | None] | None:
    """`name` or, for a training-free method, `name-N` -> (method, N or None); None if `spec` names no method."""
    name, _, count = spec.rpartition("-") if spec.rpartition("-")[0] in METHODS else (spec, "", "")
    method = METHODS.get(name)
    if method is None or (count and not (method.training_free and count.isdigit())):
        return None
    return method, int(count) if count else None


def method_settings(spec: str, epochs: int, candidates: int) -> dict[str, Any] | None:
    """SearchConfig overrides of the method `spec` (None if it names no method); `naswot-N` overrides candidates."""
    parsed = parse_method(spec)
    if parsed is None:
        return None
    method, count = parsed
    return method.search_settings(epochs, candidates if count is None else count)


def method_names() -> str:
    """The registry's names as a user types them: `darts1, ..., naswot[-N], synflow[-N]`."""
    return ", ".join(f"{m.name}[-N]" if m.training_free else m.name for m in METHODS.values())


def require_method(spec: str, option: str) -> None:
    if parse_method(spec) is None:
        raise InputError(f"{option} must be a search method ({method_names()}), got '{spec}'")
