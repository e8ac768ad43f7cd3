"""Command-line flags generated from config fields: an option's name, type, default and help are written once, on its
field, and its flag follows (`--init-channels` is the field `init_channels`).

    layers: int = option(2, "cells (darts) or cells per stage (nb201)")

`add_config_flags(group, SearchConfig)` then adds `--layers N`. Every generated flag defaults to None, "not given",
so that a --config file's value or the field's default stands unless the flag is typed, and a resumed run can tell
which flags would change its saved config. Types follow the annotation: a bool is a `--x / --no-x` switch (or one
`switch` flag that sets the opposite of its default, `--no-encoder`), a list takes one or more values, a fixed-size
tuple that many, `X | None` an X.
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Collection, Iterable
from typing import Any

from .config import flag


def option(default: Any = dataclasses.MISSING, help: str | Callable[[], str] = "", *,
           default_factory: Any = dataclasses.MISSING,
           choices: Collection[Any] | Callable[[], Collection[Any]] | None = None, metavar: str | None = None,
           nargs: str | None = None, switch: str | None = None) -> Any:
    """A config field with what its flag needs: `help` (why a user would set it; the default is appended),
    `choices`, `metavar`, `nargs` (lists: "+" unless given), `switch` (a bool's one flag, which sets the opposite of
    its default). `help` and `choices` may be functions giving them, for registries filled on import."""
    metadata = {"help": help, "choices": choices, "metavar": metavar, "nargs": nargs, "switch": switch}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def config_fields(config_class: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    """Every option of a config (a sectioned one's sections flattened, as its flags are): name -> (field, type)."""
    out: dict[str, tuple[dataclasses.Field, Any]] = {}
    hints = typing.get_type_hints(config_class)
    for f in dataclasses.fields(config_class):
        hint = hints[f.name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            out.update(config_fields(hint))
        else:
            out[f.name] = (f, hint)
    return out


def add_config_flags(group: Any, config_class: type, only: Iterable[str] | None = None,
                     exclude: Iterable[str] = (), seen: set[str] | None = None) -> list[str]:
    """Add a flag for each option of `config_class` (those in `only`, if given, in the config's order; never those in
    `exclude` or `seen`, which collects the names added, so that two configs sharing an option give one flag)."""
    options = config_fields(config_class)
    wanted = set(options) if only is None else set(only)
    unknown = wanted - set(options)
    if unknown:
        raise ValueError(f"{config_class.__name__} has no option(s) {', '.join(sorted(unknown))}")
    seen = set() if seen is None else seen
    skipped = set(exclude) | seen
    added = []
    for name in options:
        if name not in wanted or name in skipped:
            continue
        field, hint = options[name]
        group.add_argument(_flag_of(name, field), dest=name, default=None, **_argument(field, hint))
        seen.add(name)
        added.append(name)
    return added


def _flag_of(name: str, field: dataclasses.Field) -> str:
    return field.metadata.get("switch") or flag(name)


def _default_of(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _argument(field: dataclasses.Field, hint: Any) -> dict[str, Any]:
    meta = field.metadata
    text = meta.get("help", "")
    text = text() if callable(text) else text
    default = _default_of(field)
    worth_showing = default not in (dataclasses.MISSING, None) and not (isinstance(default, (list, tuple))
                                                                         and not default)
    if worth_showing and not meta.get("switch"):
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        text = f"{text} (default {shown})" if text else f"default {shown}"
    out: dict[str, Any] = {"help": text.replace("%", "%%") or None}
    base = _without_none(hint)
    if base is bool:
        if meta.get("switch"):
            return {**out, "action": "store_const", "const": not default}
        return {**out, "action": argparse.BooleanOptionalAction}
    origin, args = typing.get_origin(base), typing.get_args(base)
    if origin is list or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
        out.update(nargs=meta.get("nargs") or "+", type=args[0])
    elif origin is tuple:
        out.update(nargs=len(args), type=args[0])
    else:
        out["type"] = base
    choices = meta.get("choices")
    if choices is not None:
        out["choices"] = tuple(choices() if callable(choices) else choices)
    if meta.get("metavar"):
        out["metavar"] = meta["metavar"]
    return out


def _without_none(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        kept = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(kept) == 1:
            return kept[0]
    return hint
