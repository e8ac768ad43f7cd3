"""The tables of the results studies, rendered from their raw results, which are committed beside them.

A study keeps its raw results (one row per seed, budget, device, ...) under docs/results/data/STUDY/, made by the
benchmark its markdown names. Its tables are not typed: the markdown holds them between two marker lines, and
`benchmarks/render_results.py` rewrites what lies between from the data (`--check` only compares). A test renders
every study and compares with the committed markdown, so a figure in a table is always the one the raw results give.

Registered studies: `STUDIES`, name -> (markdown file, renderer of its data directory).
"""
from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from run_kit.files import atomic_write_text
from search_spaces import SearchSpace

BEGIN = "<!-- rendered from data/{name}/ by benchmarks/render_results.py: edit the data, not this table -->"
END = "<!-- end of rendered tables -->"


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path: Path, rows: list[dict]) -> None:
    """Raw results as CSV, written whole or not at all."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, text.getvalue())


def cell_code(space: SearchSpace, genotype: Any) -> str:
    """A one-op-per-edge cell in raw results: the index of each edge's op in `space.ops` (nb201: 6 digits)."""
    return "".join(str(space.ops.index(op)) for op in space.edge_ops(genotype))


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def latency_budget_tables(data: Path) -> str:
    """The latency-budget study (benchmarks/latency_budgets.py): budgets.csv holds one row per profile setting,
    device, method, seed and budget (met as measured, regret by evaluation/budget_scoring.py, the random fitting
    cell's expected regret `guess`); devices.json the fitted model of each setting and device (Spearman over all
    cells, guard)."""
    rows = read_rows(data / "budgets.csv")
    devices = json.loads((data / "devices.json").read_text())
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    # (setting, method, device, seed) -> [(met, regret)], and (setting, device) -> the random cell's regrets
    scores: dict[tuple, list[tuple[int, float]]] = defaultdict(list)
    guesses: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        scores[r["setting"], r["method"], r["device"], int(r["seed"])].append((int(r["met"]), float(r["regret"])))
        if r["method"] == methods[0]:
            guesses[r["setting"], r["device"]].append(float(r["guess"]))
    seeds = sorted({int(r["seed"]) for r in rows})
    names = list(devices[settings[0]])
    lines = ["| profile | method | budgets met as measured | devices met >= 95 % | regret over every budget "
             "(points): mean over devices, mean ± std over seeds [per seed] | worst device (met) |",
             "|---|---|---|---|---|---|"]
    for setting in settings:
        guards = [devices[setting][d]["guard"] for d in names]
        for method in methods:
            met = {d: statistics.mean(m for s in seeds for m, _ in scores[setting, method, d, s]) for d in names}
            per_seed = [statistics.mean(statistics.mean(g for _, g in scores[setting, method, d, s]) for d in names)
                        for s in seeds]
            worst = min(met, key=met.get)
            lines.append(f"| {setting} | {method} | {100 * statistics.mean(met.values()):.1f} % | "
                         f"{sum(v >= 0.95 for v in met.values())} of {len(names)} | {_mean_std(per_seed)} "
                         f"[{', '.join(f'{v:.2f}' for v in per_seed)}] | {worst} ({100 * met[worst]:.0f} %) |")
        random = statistics.mean(statistics.mean(guesses[setting, d]) for d in names)
        lines.append(f"| {setting} | random cell that fits (expected) | 100 % | {len(names)} of {len(names)} | "
                     f"{random:.2f} | |")
        lines.append(f"| {setting} | (guard over devices: median {statistics.median(guards):.3f}, range "
                     f"{min(guards):.3f}-{max(guards):.3f}) | | | | |")
    last = settings[-1]
    lines += ["", f"Per device, {last} (met as measured; regret over every budget, mean over seeds):", "",
              "| device | Spearman of the model | guard | " + " | ".join(methods) + " | random (regret) |",
              "|---|---|---|" + "---|" * len(methods) + "---|"]
    for d in names:
        cells = []
        for method in methods:
            pairs = [p for s in seeds for p in scores[last, method, d, s]]
            cells.append(f"{100 * statistics.mean(m for m, _ in pairs):.0f} %, "
                         f"{statistics.mean(g for _, g in pairs):.2f}")
        lines.append(f"| {d} | {devices[last][d]['spearman']:.3f} | {devices[last][d]['guard']:.3f} | "
                     + " | ".join(cells) + f" | {statistics.mean(guesses[last, d]):.2f} |")
    return "\n".join(lines)


def flops_budget_tables(data: Path) -> str:
    """The FLOPs-budget study (benchmarks/budget_regret.py): budgets.csv holds one row per seed, budget and method
    (regret by evaluation/budget_scoring.py, seconds per learned proposal); unbudgeted.csv the CIFAR-10 table
    accuracy of each seed's unbudgeted proposal and of the constant cells."""
    rows = read_rows(data / "budgets.csv")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    seeds = sorted({int(r["seed"]) for r in rows})
    bounds = {int(r["budget"]): float(r["max_flops_m"]) for r in rows}
    lines = ["| method | regret over every budget (points), mean ± std over seeds [per seed] | budgets met | "
             "median s per proposal |", "|---|---|---|---|"]
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        per_seed = [statistics.mean(float(r["regret"]) for r in mine if int(r["seed"]) == s) for s in seeds]
        seconds = [float(r["seconds"]) for r in mine if r["seconds"]]
        lines.append(f"| {method} | {_mean_std(per_seed)} [{', '.join(f'{v:.2f}' for v in per_seed)}] | "
                     f"{100 * statistics.mean(int(r['met']) for r in mine):.0f} % | "
                     f"{f'{statistics.median(seconds):.4f}' if seconds else ''} |")
    lines += ["", "Budgets (M FLOPs): " + ", ".join(f"{bounds[k]:g}" for k in sorted(bounds)), ""]
    unbudgeted = read_rows(data / "unbudgeted.csv")
    lines += ["Without a budget (CIFAR-10 test accuracy, table):", "",
              "| proposal | mean ± std over seeds | per seed |", "|---|---|---|"]
    for proposal in dict.fromkeys(r["proposal"] for r in unbudgeted):
        values = [float(r["cifar10"]) for r in unbudgeted if r["proposal"] == proposal]
        lines.append(f"| {proposal} | {_mean_std(values)} | {', '.join(f'{v:.2f}' for v in values)} |")
    return "\n".join(lines)


STUDIES: dict[str, tuple[str, Callable[[Path], str]]] = {
    "latency-budgets": ("budgets.md", latency_budget_tables),
    "flops-budgets": ("budgets.md", flops_budget_tables),
}


def replace_rendered(markdown: str, name: str, tables: str) -> str:
    """`markdown` with the block between the study's markers replaced by `tables`."""
    begin = BEGIN.format(name=name)
    if begin not in markdown or END not in markdown.split(begin, 1)[1]:
        raise ValueError(f"the markdown of {name} has no rendered block (the lines {begin!r} ... {END!r})")
    head, rest = markdown.split(begin, 1)
    return f"{head}{begin}\n{tables}\n{END}{rest.split(END, 1)[1]}"


def render_studies(results_dir: Path, write: bool) -> list[str]:
    """Render every registered study from results_dir/data/NAME/ into results_dir/FILE; the names whose committed
    markdown differed (and, with `write`, was rewritten)."""
    changed = []
    for name, (file, renderer) in STUDIES.items():
        path = results_dir / file
        markdown = path.read_text()
        rendered = replace_rendered(markdown, name, renderer(results_dir / "data" / name))
        if rendered != markdown:
            changed.append(name)
            if write:
                atomic_write_text(path, rendered)
    return changed
