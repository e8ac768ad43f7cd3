"""Every figure of a rendered study comes from its committed raw results (evaluation/study_tables.py)."""
import json
import re
from pathlib import Path

import pytest

from evaluation.study_tables import (
    BEGIN,
    END,
    STUDIES,
    latency_budget_tables,
    render_studies,
    replace_rendered,
    write_rows,
)

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"


def test_every_committed_study_table_equals_what_its_raw_results_render():
    assert render_studies(RESULTS, write=False) == []


def test_every_study_in_the_docs_is_rendered_from_raw_results_or_listed_as_withdrawn_without_figures():
    """A study file that no renderer checks would be a figure no committed command remakes: only the registered
    studies, the index and the list of withdrawn studies may sit in docs/results, and that list names no figures."""
    allowed = {file for file, _ in STUDIES.values()} | {"README.md", "withdrawn.md"}
    assert {p.name for p in RESULTS.glob("*.md")} <= allowed
    assert not [p for p in RESULTS.iterdir() if p.is_file() and p.suffix != ".md"]
    assert not re.findall(r"\d\.\d|\d %", (RESULTS / "withdrawn.md").read_text())
    for file in {file for file, _ in STUDIES.values()}:
        assert (RESULTS / file).is_file(), file


def _latency_data(tmp_path: Path) -> Path:
    """Two devices, two methods, two seeds, two budgets; method b misses its second budget on device y, where its
    regret is the random fitting cell's (4, the guess); a's regrets grow by 1 from seed 0 to seed 1."""
    rows = []
    for device in ("x", "y"):
        for method, regrets in (("a", [1.0, 2.0]), ("b", [0.0, 4.0])):
            for seed in (0, 1):
                for budget, regret in enumerate(regrets):
                    miss = method == "b" and device == "y" and budget == 1
                    rows.append({"setting": "20 cells, guard 0.95", "device": device, "method": method, "seed": seed,
                                 "budget": budget, "bound_ms": 1.0 + budget, "cell": "" if miss else "333333",
                                 "met": int(not miss), "regret": regret + (seed if method == "a" else 0),
                                 "guess": 4.0})
    write_rows(tmp_path / "budgets.csv", rows)
    models = {d: {"spearman": 0.9, "guard": g} for d, g in (("x", 1.1), ("y", 1.3))}
    (tmp_path / "devices.json").write_text(json.dumps({"20 cells, guard 0.95": models}))
    return tmp_path


def test_the_latency_tables_average_every_budget_over_devices_then_seeds(tmp_path):
    tables = latency_budget_tables(_latency_data(tmp_path))
    lines = tables.splitlines()
    a = next(line for line in lines if line.startswith("| 20 cells, guard 0.95 | a |"))
    b = next(line for line in lines if line.startswith("| 20 cells, guard 0.95 | b |"))
    # a: seed 0 mean 1.5 on both devices, seed 1 2.5 -> 2.00 ± 0.71; b: 2.0 on both devices and seeds, the miss
    # counted as the guess (dropping it would give 0 on device y)
    assert "| 100.0 % | 2 of 2 | 2.00 ± 0.71 [1.50, 2.50] | x (100 %) |" in a
    assert "| 75.0 % | 1 of 2 | 2.00 ± 0.00 [2.00, 2.00] | y (50 %) |" in b
    assert "| random cell that fits (expected) | 100 % | 2 of 2 | 4.00 | |" in tables
    assert "| y | 0.900 | 1.300 | 100 %, 2.00 | 50 %, 2.00 | 4.00 |" in tables


def test_a_rendered_block_is_replaced_between_its_markers_only(tmp_path):
    begin = BEGIN.format(name="s")
    markdown = f"# Study\n\ntext\n\n{begin}\nold table\n{END}\n\nafter\n"
    assert replace_rendered(markdown, "s", "new table") == f"# Study\n\ntext\n\n{begin}\nnew table\n{END}\n\nafter\n"
    with pytest.raises(ValueError, match="has no rendered block"):
        replace_rendered("# no markers\n", "s", "table")


def test_every_registered_study_has_its_markdown_and_data():
    assert STUDIES  # the check above compares something
    for name, (file, _) in STUDIES.items():
        assert BEGIN.format(name=name) in (RESULTS / file).read_text()
        assert (RESULTS / "data" / name).is_dir()
