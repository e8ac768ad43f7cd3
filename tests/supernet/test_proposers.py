"""The proposer registry (supernet/proposers.py): every way of getting a cell is one registered family, parsed in one
place; a new one is added in one file (here: a toy) and runs through `search` and `compare`."""
from __future__ import annotations

import csv
import json

import pytest
import yaml

import meta.proposers  # noqa: F401  (registers the meta-learned families)
from run_kit import InputError
from supernet.proposers import PROPOSERS, Proposal, ProposerEntry, create_proposer, register_proposer
from supernet.spaces import get_space
from tests.evaluation.test_compare import TINY
from tests.helpers import run_cli


def test_every_name_is_parsed_by_one_family():
    nb201, darts = get_space("nb201"), get_space("darts")
    families = {name: create_proposer(name, nb201).entry.family
                for name in ("darts1", "naswot-500", "synflow", "random", "taskdarts-3", "warm-gdas")}
    assert families == {"darts1": "search", "naswot-500": "search", "synflow": "search", "random": "random",
                        "taskdarts-3": "zero-shot", "warm-gdas": "warm"}
    assert create_proposer("DARTS_V2", darts).entry.family == "published"
    assert create_proposer("taskdarts-3", nb201).params == {"adapt_steps": 3}
    assert create_proposer("taskdarts-3", nb201).needs_meta and not create_proposer("darts1", nb201).needs_meta
    for name, message in (("enas", "unknown method 'enas'"), ("DARTS_V2", "does not fit --space nb201"),
                          ("taskdarts-x", "taskdarts-K"), ("warm-naswot", "warm-METHOD"),
                          ("warm-pcdarts", "partial-channel")):
        with pytest.raises(InputError, match=message):
            create_proposer(name, nb201)


@pytest.fixture
def toy_proposer():
    """A proposer family added in this file alone: the all-3x3 cell, in no time."""
    def parse(name, space):
        return {"op": "nor_conv_3x3"} if name == "toy" else None

    def run(params, request, data, directory):
        return Proposal(request.space.with_edge_ops([params["op"]] * request.space.num_edges), 0.5)

    entry = register_proposer(ProposerEntry("toy", "toy (the all-3x3 cell)", parse, run))
    yield entry
    del PROPOSERS[entry.family]


def test_a_toy_proposer_runs_through_compare_in_one_file(toy_proposer, tmp_path):
    out = tmp_path / "out"
    code, _, stderr = run_cli("compare", *TINY, "--methods", "toy", "random", "--seeds", "1", "--out", str(out))
    assert code == 0, stderr
    rows = {r["method"]: r for r in csv.DictReader((out / "results.csv").open())}
    assert rows["toy"]["genotype"].count("nor_conv_3x3") == 6 and float(rows["toy"]["search_seconds"]) == 0.5
    assert json.loads((out / "toy" / "seed0" / "genotype.json").read_text())["arch"] == rows["toy"]["genotype"]
    retrained = json.loads((out / "toy" / "seed0" / "retrain" / "result.json").read_text())
    assert retrained["genotype"] == rows["toy"]["genotype"]
    with pytest.raises(ValueError, match="registered already"):  # a family is registered once
        register_proposer(toy_proposer)


def test_a_toy_proposer_runs_through_search_in_one_file(toy_proposer, tmp_path):
    """`search --method NAME` runs any registered family that is no search method as the command's run: its
    config, genotype.json and summary, like a search's."""
    out = tmp_path / "toy"
    code, stdout, stderr = run_cli("search", "--method", "toy", "--seed", "4", "--out", str(out), "--no-progress")
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["search_seconds"] == 0.5 and summary["run_dir"] == str(out)
    nb201 = get_space("nb201")
    genotype = nb201.from_json(json.loads((out / "genotype.json").read_text()))
    assert list(nb201.edge_ops(genotype)) == ["nor_conv_3x3"] * 6 and summary["genotype"] == nb201.to_json(genotype)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["method"] == "toy" and saved["seed"] == 4 and saved["space"] == "nb201"
    code, _, stderr = run_cli("inspect", str(out))
    assert code == 0, stderr


@pytest.mark.parametrize("args, message", [
    (["--method", "enas"], "--method must be a search method (darts1"),
    (["--method", "DARTS_V2"], "is a darts-space genotype; it does not fit --space nb201"),
    (["--method", "random", "--stop-after-epoch", "1"], "nothing to resume or stop"),
    (["--method", "taskdarts-0"], "needs a meta-checkpoint: search --meta RUN"),
])
def test_a_method_that_is_no_search_is_checked_before_any_work(tmp_path, args, message):
    out = tmp_path / "bad"
    code, _, stderr = run_cli("search", *args, "--out", str(out), "--no-progress")
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not out.exists() or not any(out.iterdir())


def test_random_and_published_cells_run_through_search(tmp_path):
    darts = get_space("darts")
    code, stdout, stderr = run_cli("search", "--space", "darts", "--method", "DARTS_V2", "--out", str(tmp_path / "p"))
    assert code == 0, stderr
    assert darts.from_json(json.loads(stdout)["genotype"]) == darts.published["DARTS_V2"]
    runs = []
    for seed in (0, 0, 1):
        out = tmp_path / f"random{len(runs)}"
        assert run_cli("search", "--method", "random", "--seed", str(seed), "--out", str(out))[0] == 0
        runs.append((out / "genotype.json").read_text())
    assert runs[0] == runs[1] != runs[2]  # seeded


def test_the_pretrained_model_is_a_proposer_compare_runs_without_a_meta_run(tmp_path):
    from meta.experience import cell_genotype
    from meta.pretrained import load_pretrained

    nb201 = get_space("nb201")
    assert create_proposer("pretrained", nb201).entry.family == "pretrained"
    assert not create_proposer("pretrained", nb201).needs_meta
    with pytest.raises(InputError, match="no pretrained model"):
        create_proposer("pretrained", get_space("darts"))
    out = tmp_path / "out"
    code, _, stderr = run_cli("compare", *TINY, "--methods", "pretrained", "--seeds", "1", "--out", str(out))
    assert code == 0, stderr
    rows = {r["method"]: r for r in csv.DictReader((out / "results.csv").open())}
    prior = load_pretrained().accuracy(0).scores({})
    assert rows["pretrained"]["genotype"] == nb201.to_text(cell_genotype(int(prior.argmax())))
    assert (out / "pretrained" / "seed0" / "retrain" / "result.json").is_file()
