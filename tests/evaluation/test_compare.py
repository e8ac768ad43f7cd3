import csv
import json

import pytest

from tests.evaluation.test_nb201_table import _synthetic_rows, _write_table
from tests.helpers import run_cli

TINY = ["--space", "nb201", "--layers", "1", "--init-channels", "4", "--search-epochs", "1", "--retrain-layers", "1",
        "--retrain-channels", "4", "--retrain-epochs", "1", "--no-progress"]


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "out"
    code, stdout, stderr = run_cli("compare", *TINY, "--methods", "darts1", "gdas", "random", "--seeds", "2",
                                   "--out", str(out))
    assert code == 0, stderr
    return out


def test_compare_writes_table_report_plot_and_cells(comparison):
    rows = list(csv.DictReader((comparison / "results.csv").open()))
    assert sorted((r["method"], int(r["seed"])) for r in rows) == sorted(
        (m, s) for m in ("darts1", "gdas", "random") for s in (0, 1))
    for row in rows:  # each row reports its own search and retraining runs
        pair = comparison / row["method"] / f"seed{row['seed']}"
        retrained = json.loads((pair / "retrain" / "result.json").read_text())
        assert retrained["genotype"] == row["genotype"] and retrained["seed"] == int(row["seed"])
        assert (float(row["test_acc"]), float(row["params_m"])) == (retrained["test_acc"], retrained["params_m"])
        if row["method"] != "random":
            searched = json.loads((pair / "search" / "genotype.json").read_text())["arch"]
            assert searched == row["genotype"]
    assert float(next(r for r in rows if r["method"] == "random")["search_seconds"]) == 0.0
    assert float(next(r for r in rows if r["method"] == "darts1")["search_seconds"]) > 0.0
    report = (comparison / "report.md").read_text()
    assert "| darts1 |" in report and "±" in report and "spread" in report
    assert (comparison / "accuracy_vs_search_cost.png").read_bytes()[:4] == b"\x89PNG"
    assert (comparison / "gdas" / "seed1" / "cells" / "cell.png").is_file()
    assert json.loads((comparison / "results.json").read_text())["config"]["seeds"] == 2


def test_compare_resume_redoes_only_missing_pairs(comparison):
    results = json.loads((comparison / "results.json").read_text())
    removed = next(r for r in results["rows"] if r["method"] == "darts1" and r["seed"] == 1)
    kept = [r for r in results["rows"] if r is not removed]
    (comparison / "results.json").write_text(json.dumps({**results, "rows": kept}))
    untouched = comparison / "gdas" / "seed0" / "retrain" / "checkpoint.pt"
    before = untouched.stat().st_mtime_ns
    code, _, stderr = run_cli("compare", "--out", str(comparison), "--resume", "--no-progress")
    assert code == 0, stderr
    rows = json.loads((comparison / "results.json").read_text())["rows"]
    assert len(rows) == 6 and untouched.stat().st_mtime_ns == before
    again = next(r for r in rows if r["method"] == "darts1" and r["seed"] == 1)
    assert again["genotype"] == removed["genotype"] and again["test_acc"] == removed["test_acc"]


def test_compare_resume_refuses_a_flag_that_changes_the_saved_config(comparison):
    before = (comparison / "results.json").read_text()
    code, stdout, stderr = run_cli("compare", "--out", str(comparison), "--resume", "--no-progress",
                                   "--methods", "darts1", "gdas", "random", "darts2", "--seeds", "2")
    assert code == 2 and stdout == ""
    assert len(stderr.strip().splitlines()) == 1 and "--methods would change it" in stderr
    assert "Traceback" not in stderr and (comparison / "results.json").read_text() == before
    same = run_cli("compare", "--out", str(comparison), "--resume", "--no-progress", "--seeds", "2")
    assert same[0] == 0, same[2]  # a flag equal to the saved value changes nothing


def test_compare_with_nb201_table_needs_no_retraining(tmp_path):
    table = tmp_path / "table.csv"
    _write_table(table, _synthetic_rows())
    out = tmp_path / "out"
    code, _, stderr = run_cli("compare", *TINY, "--retrain-epochs", "0", "--methods", "random", "--seeds", "2",
                              "--nb201-table", str(table), "--out", str(out))
    assert code == 0, stderr
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert all(r["nb201_cifar10"] != "" and "test_acc" not in r for r in rows)
    assert "NB201 CIFAR-10" in (out / "report.md").read_text()


@pytest.mark.parametrize("args, message", [
    (("--methods", "enas"), "unknown method 'enas'"),
    (("--methods", "published"), "does not fit --space nb201"),
    (("--methods", "taskdarts-0"), "needs --meta"),
    (("--methods", "taskdarts-x", "--meta", "m"), "taskdarts-K"),
    (("--methods", "random", "--nb201-table", "/nonexistent.csv"), "does not exist"),
    (("--methods", "random", "--retrain-epochs", "0"), "leaves nothing to compare"),
])
def test_compare_bad_input(tmp_path, args, message):
    out = tmp_path / "out"
    code, _, stderr = run_cli("compare", *TINY, *args, "--out", str(out))
    assert code == 2 and message in stderr, stderr
    assert not out.exists()


def test_compare_rejects_a_table_of_the_wrong_format(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    code, _, stderr = run_cli("compare", *TINY, "--methods", "random", "--nb201-table", str(tmp_path / "t.csv"),
                              "--out", str(tmp_path / "out"))
    assert code == 2 and "not a NAS-Bench-201 table" in stderr


def test_compare_taskdarts_methods_use_the_meta_checkpoint(tmp_path):
    from tests.meta.test_meta import TINY_META

    assert run_cli("meta-train", *TINY_META, "--meta-steps", "1", "--out", str(tmp_path / "meta"))[0] == 0
    out = tmp_path / "out"
    code, _, stderr = run_cli("compare", *TINY, "--methods", "taskdarts-0", "taskdarts-2", "--seeds", "1",
                              "--meta", str(tmp_path / "meta"), "--out", str(out))
    assert code == 0, stderr
    rows = {r["method"]: r for r in csv.DictReader((out / "results.csv").open())}
    assert set(rows) == {"taskdarts-0", "taskdarts-2"}
    assert float(rows["taskdarts-2"]["search_seconds"]) > 0 and rows["taskdarts-0"]["genotype"].startswith("|")
    assert (out / "taskdarts-2" / "seed0" / "search" / "embedding.json").is_file()
