"""Config dataclasses from user dicts (a YAML file, flags, a saved config.yaml), checked against their annotations.

A value of the wrong type is refused with one line naming the option, never passed on to fail deep inside a run:
YAML gives strings, lists and numbers that argparse never would, and a NaN passes torch's own range checks.
"""
from __future__ import annotations

import math
import types
import typing
from dataclasses import fields
from typing import Any, ClassVar, Mapping

from .errors import InputError


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class Config:
    """Base of the config dataclasses (search, retrain, meta-train, compare): `from_dict` with every value checked.
    Subclasses name their `kind` for messages."""

    kind: ClassVar[str] = "run"

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]):
        return config_from_dict(cls, values, cls.kind)


def config_from_dict(cls, values: Mapping[str, Any], what: str):
    """`cls(**values)` with unknown keys refused and every value checked (and int -> float, list -> tuple coerced)
    against the field's annotation."""
    if not isinstance(values, Mapping):
        raise InputError(f"a {what} config must be a mapping of option: value, got {type(values).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(str(k) for k in set(values) - known)
    if unknown:
        raise InputError(f"unknown {what} config keys: {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    return cls(**{name: _coerce(name, value, hints[name]) for name, value in values.items()})


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    try:
        return _as(value, annotation)
    except TypeError:
        raise InputError(f"{flag(name)} must be {_describe(annotation)}, got {value!r}"[:300]) from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


SCALARS = {bool: lambda v: isinstance(v, bool), int: lambda v: _is_number(v) and isinstance(v, int),
           float: lambda v: _is_number(v) and math.isfinite(v), str: lambda v: isinstance(v, str)}
"""Which values a scalar field accepts: no bool for a number (YAML `yes`), no NaN or infinity for a float."""


def _as(value: Any, annotation: Any) -> Any:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _as(value, option)
            except TypeError:
                continue
        raise TypeError
    if annotation in SCALARS:
        if SCALARS[annotation](value):
            return float(value) if annotation is float else value
        raise TypeError
    if origin is list:
        if isinstance(value, (list, tuple)):
            return [_as(v, args[0]) for v in value]
        raise TypeError
    if origin is tuple:
        if isinstance(value, (list, tuple)) and len(value) == len(args):
            return tuple(_as(v, a) for v, a in zip(value, args))
        raise TypeError
    raise TypeError


def _describe(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    names = {bool: "true or false", int: "a whole number", float: "a finite number", str: "a string",
             type(None): "null"}
    if annotation in names:
        return names[annotation]
    if origin is list:
        return f"a list of {_describe(args[0])}s"
    if origin is tuple:
        return f"a list of {len(args)} values ({', '.join(_describe(a) for a in args)})"
    return str(annotation)


def require_at_least(config: Any, minimum: float, *names: str) -> None:
    for name in names:
        if getattr(config, name) < minimum:
            raise InputError(f"{flag(name)} must be at least {minimum}, got {getattr(config, name)}")


def require_choice(config: Any, name: str, choices: Any) -> None:
    if getattr(config, name) not in choices:
        raise InputError(f"{flag(name)} must be one of {', '.join(map(str, choices))}, got {getattr(config, name)}")


def require_positive(config: Any, *names: str) -> None:
    """Learning rates, temperatures, scales: finite (checked on load) and > 0."""
    for name in names:
        if getattr(config, name) <= 0:
            raise InputError(f"{flag(name)} must be greater than 0, got {getattr(config, name)}")


def require_fraction(config: Any, *names: str, closed: bool = False) -> None:
    """Momenta, betas, probabilities: in [0, 1) (or [0, 1] with `closed`)."""
    for name in names:
        value = getattr(config, name)
        values = value if isinstance(value, (list, tuple)) else [value]
        if any(v < 0 or v > 1 or (v == 1 and not closed) for v in values):
            raise InputError(f"{flag(name)} must be in [0, 1{']' if closed else ')'}, got {value}")
