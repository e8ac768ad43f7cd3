"""Config dataclasses from user dicts (a YAML file, flags, a saved config.yaml), checked against their annotations.

A value of the wrong type is refused with one line naming the option, never passed on to fail deep inside a run:
YAML gives strings, lists and numbers that argparse never would, and a NaN passes torch's own range checks.
"""
from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml

from .errors import InputError


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class Config:
    """Base of the config dataclasses (search, retrain, meta-train, compare): `from_dict` with every value checked.
    Subclasses name their `kind` for messages.

    A config may be made of sections: fields whose type is itself a Config (meta-train's task, model, meta, ...).
    Its dict form (config.yaml, a --config file) nests them, `section: {option: value}`; its options (the command
    line's flags) stay flat, each named like its field, and `from_options` puts each into its section."""

    kind: ClassVar[str] = "run"
    # options that left the tool: name -> (the values an old config may still hold, because they are what the tool
    # now always does (None: any value, the option no longer matters), why it was removed and the last commit with it)
    removed: ClassVar[Mapping[str, RemovedOption]] = {}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]):
        return config_from_dict(cls, values, cls.kind)

    @classmethod
    def sections(cls) -> dict[str, type[Config]]:
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in fields(cls) if _is_config(hints[f.name])}

    @classmethod
    def option_paths(cls) -> dict[str, tuple[str, ...]]:
        """Every option (flag) name -> where it lives: (name,) at the top, (section, name) in a section."""
        sections = cls.sections()
        paths: dict[str, tuple[str, ...]] = {f.name: (f.name,) for f in fields(cls) if f.name not in sections}
        for section, section_cls in sections.items():
            paths.update({f.name: (section, f.name) for f in fields(section_cls)})
        return paths

    @classmethod
    def nest(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """Flat options -> the dict form; names that are no option are kept at the top (from_dict refuses them)."""
        paths, out = cls.option_paths(), {}
        for name, value in options.items():
            path = paths.get(name, (name,))
            (out.setdefault(path[0], {}) if len(path) == 2 else out)[path[-1]] = value
        return out

    @classmethod
    def from_options(cls, options: Mapping[str, Any]):
        return cls.from_dict(cls.nest(options))

    def with_options(self, **options: Any):
        """A copy with some options (flat names) replaced, checked like any other input."""
        return self.from_dict(merge(asdict(self), self.nest(options)))


@dataclass(frozen=True)
class RemovedOption:
    """An option that left the tool. An old config (a --config file, a run's config.yaml, a checkpoint) that sets it
    to one of `kept` (what the tool now always does; None: any value, it no longer matters) still loads; any other
    value is one line naming `why` and `last_commit`, the commit that reproduces the studies that used it."""

    kept: tuple[Any, ...] | None
    why: str
    last_commit: str

    def check(self, what: str, name: str, value: Any) -> None:
        if self.kept is not None and value not in self.kept:
            raise InputError(f"{what} config key '{name}': {value!r} was removed ({self.why}); commit "
                             f"{self.last_commit} is the last with it and reproduces the studies that used it")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML file of options (a --config file, a run's config.yaml) as a dict, keys written like flags
    (`init-channels`) read as the fields' names, in sections too; a missing or malformed file is one line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file {path} does not exist")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise InputError(f"malformed YAML in {path}: {str(err).splitlines()[0]}") from None
    if not isinstance(loaded, dict):
        raise InputError(f"config file {path} must hold a mapping of option: value")
    return _underscored(loaded)


def _underscored(values: dict) -> dict:
    return {str(key).replace("-", "_"): _underscored(value) if isinstance(value, dict) else value
            for key, value in values.items()}


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`, section by section (a section given in `over` replaces only the options it names)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) else value
    return out


def _is_config(annotation: Any) -> bool:
    return isinstance(annotation, type) and is_dataclass(annotation) and issubclass(annotation, Config)


def config_from_dict(cls, values: Mapping[str, Any], what: str, root: type | None = None):
    """`cls(**values)` with unknown keys refused and every value checked (and int -> float, list -> tuple coerced)
    against the field's annotation; a section's mapping becomes its section config, checked alike (`root`: the
    sectioned config it belongs to, which knows where a misplaced key belongs)."""
    if not isinstance(values, Mapping):
        raise InputError(f"a {what} config must be a mapping of option: value, got {type(values).__name__}")
    removed = getattr(cls, "removed", {})
    for name in set(values) & set(removed):
        removed[name].check(what, name, values[name])
    values = {k: v for k, v in values.items() if k not in removed}
    known = {f.name for f in fields(cls)}
    unknown = sorted(str(k) for k in set(values) - known)
    if unknown:
        home = root or cls
        paths = home.option_paths() if issubclass(home, Config) else {}
        misplaced = [key for key in unknown if len(paths.get(key, ())) == 2]
        if misplaced:
            key = misplaced[0]
            raise InputError(f"{what} config key '{key}' belongs in the '{paths[key][0]}' section ({paths[key][0]}: "
                             f"{{{key}: ...}}); the sections are {', '.join(home.sections())}")
        raise InputError(f"unknown {what} config keys: {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    out = {}
    for name, value in values.items():
        if _is_config(hints[name]):
            out[name] = value if isinstance(value, hints[name]) else config_from_dict(hints[name], value,
                                                                                      f"{what} {name}", root or cls)
        else:
            out[name] = _coerce(name, value, hints[name])
            require_size(name, out[name])
    return cls(**out)


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


SIZE_LIMITS: dict[str, int] = {
    # network shape: far above any published network (DARTS: 20 cells of 36 channels), below what overflows a
    # tensor's size or takes minutes to build before the memory check can refuse it
    "layers": 1_000, "retrain_layers": 1_000, "teacher_probe_layers": 1_000,
    "init_channels": 4_096, "retrain_channels": 4_096,
    "channels": 64,  # of an image
    "num_classes": 100_000, "max_classes": 100_000,
    "embed_dim": 65_536,
    "seeds": 1_000,  # compare lists every (method, seed) pair up front
}
"""The largest value of each size option, checked when a config is read (and by inspect), before anything is built:
past these an option is absurd on any machine, and the memory checks (run_kit/device.py) refuse what would not fit
this one."""


def require_size(name: str, value: Any) -> None:
    """Refuse a size option above its SIZE_LIMITS entry (one line, before anything is allocated)."""
    limit = SIZE_LIMITS.get(name)
    if limit is not None and isinstance(value, int) and value > limit:
        raise InputError(f"{flag(name)} must be at most {limit:,}, got {value:,}")


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
