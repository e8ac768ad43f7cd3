"""run_kit/cli.py: flags generated from config fields, and train.py defining every config option's flag through it
(once) rather than by hand."""
import argparse
import ast
from dataclasses import dataclass

import pytest

import train
from evaluation.compare import CompareConfig
from meta.config import MetaConfig
from meta.meta_search import MetaSearchConfig
from run_kit.cli import add_config_flags, config_fields, option
from run_kit.config import Config, flag
from supernet.retrain import RetrainConfig
from supernet.search import SearchConfig
from tests.helpers import ROOT


@dataclass
class Toy(Config):
    kind = "toy"

    depth: int = option(3, "how deep")
    rate: float | None = option(None, "a rate (None: the recipe's)")
    name: str = option("a", choices=lambda: ("a", "b"))
    tags: list[str] = option(default_factory=list, help="some tags", metavar="TAG")
    betas: tuple[float, float] = option((0.5, 0.9))
    fast: bool = option(True, "go fast")
    shared: bool = option(True, "one switch", switch="--no-sharing")


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_config_flags(parser, Toy)
    return parser.parse_args(list(argv))


def test_each_type_gives_its_flag_and_an_untyped_flag_stays_none():
    assert all(value is None for value in vars(_parse()).values())
    args = _parse("--depth", "5", "--rate", "0.1", "--name", "b", "--tags", "x", "y", "--betas", "0.1", "0.2",
                  "--no-fast", "--no-sharing")
    assert vars(args) == {"depth": 5, "rate": 0.1, "name": "b", "tags": ["x", "y"], "betas": [0.1, 0.2],
                          "fast": False, "shared": False}
    assert Toy.from_options(vars(args)).betas == (0.1, 0.2)
    assert _parse("--fast").fast is True
    with pytest.raises(SystemExit):
        _parse("--name", "c")  # not a choice
    with pytest.raises(SystemExit):
        _parse("--depth", "x")


def test_help_comes_from_the_field_with_its_default():
    parser = argparse.ArgumentParser()
    add_config_flags(parser, Toy)
    text = " ".join(parser.format_help().split())
    assert "how deep (default 3)" in text and "some tags" in text and "--betas BETAS BETAS default 0.5 0.9" in text
    assert "a rate (None: the recipe's)" in text and "(default None)" not in text


def test_options_shared_by_two_configs_give_one_flag_and_unknown_names_are_refused():
    parser, seen = argparse.ArgumentParser(), set()
    first = add_config_flags(parser, SearchConfig, seen=seen)
    second = add_config_flags(parser, MetaSearchConfig, seen=seen)
    assert "seed" in first and "seed" not in second and "meta" in second
    with pytest.raises(ValueError, match="no option"):
        add_config_flags(argparse.ArgumentParser(), Toy, only=["width"])


@pytest.mark.parametrize("command, configs, without", [
    ("search", (SearchConfig, MetaSearchConfig), {"warm_start_from"}),
    ("meta-train", (MetaConfig,), set()),
    ("teachers", (MetaConfig,), set()),
    ("retrain", (RetrainConfig,), set()),
    ("compare", (CompareConfig,), set()),
])
def test_every_config_option_has_its_flag_in_its_command(command, configs, without):
    """Each option of the command's config(s) is a flag of the command (dest = the option's name), and a typed flag
    lands in the config."""
    parser = train.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    dests = {action.dest for action in sub._actions}
    options = {name for config in configs for name in config_fields(config)} - without
    assert options <= dests, sorted(options - dests)


def test_train_py_writes_no_config_options_flag_by_hand():
    """Every add_argument in train.py names a flag that is no option of a config (those are generated), so no flag is
    written twice; `export` and `inspect` take no config (their --layers, --init-channels, ... size a network)."""
    options = {flag(name) for config in (SearchConfig, MetaSearchConfig, MetaConfig, RetrainConfig, CompareConfig)
               for name in config_fields(config)}
    by_hand = []
    for node in ast.walk(ast.parse((ROOT / "train.py").read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            if getattr(node.func.value, "id", None) in ("export", "inspect"):
                continue
            by_hand += [arg.value for arg in node.args if isinstance(arg, ast.Constant) and arg.value in options]
    assert not by_hand, by_hand
