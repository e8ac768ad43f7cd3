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
    device, method, seed and budget (met as measured, regret by supernet/budget_scoring.py, the random fitting
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
    (regret by supernet/budget_scoring.py, seconds per learned proposal); unbudgeted.csv the CIFAR-10 table
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


def _regret_summary(rows: list[dict[str, str]]) -> str:
    """mean ± std over seeds of the mean regret over the rows' budgets."""
    seeds = sorted({r["seed"] for r in rows})
    return _mean_std([statistics.mean(float(r["regret"]) for r in rows if r["seed"] == s) for s in seeds])


def _device_group_row(group: str, label: str, rows: list[dict[str, str]], names: list[str]) -> str:
    """One method's line over a group of devices: budgets met, devices met >= 95 %, regret (mean over devices) and
    the worst device."""
    met = {d: statistics.mean(int(r["met"]) for r in rows if r["device"] == d) for d in names}
    regret = statistics.mean(statistics.mean(float(r["regret"]) for r in rows if r["device"] == d) for d in names)
    worst = min(met, key=met.get)
    return (f"| {group} | {label} | {100 * statistics.mean(met.values()):.1f} % | "
            f"{sum(v >= 0.95 for v in met.values())} of {len(names)} | {regret:.2f} | "
            f"{worst} ({100 * met[worst]:.0f} %) |")


def _earlier_latency_rows(earlier: list[dict[str, str]], names: list[str], latency: list[dict[str, str]]
                          ) -> dict[str, list[dict]]:
    """The latency study's rows (benchmarks/latency_budgets.py, `earlier`) for the same profile (20 cells, guard
    0.95), devices and budgets, by method; empty where it is missing or its budgets differ."""
    rows = [r for r in earlier if r["setting"] == "20 cells, guard 0.95" and r["device"] in names]
    ours = {(r["device"], r["budget"]): round(float(r["bound_ms"]), 3) for r in latency if r["device"] in names}
    theirs = {(r["device"], r["budget"]): round(float(r["bound_ms"]), 3) for r in rows}
    if not rows or ours != theirs:
        return {}
    by_method: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_method[r["method"]].append(r)
    return dict(by_method)


def predictor_tables(data: Path) -> str:
    """The predictor study (benchmarks/predictor_study.py): tasks.csv (leave-one-task-out, K probes, unbudgeted and
    5 FLOPs budgets), flops.csv (CIFAR-10, 10 FLOPs budgets; beside it the FLOPs study's rows where its budgets are
    the same), latency.csv and devices.csv (held-out devices)."""
    tasks = read_rows(data / "tasks.csv")
    lines = ["(b) Each task held out in turn; regret in the task's own units (points of accuracy; Darcy: its score), "
             "unbudgeted and mean over 5 FLOPs budgets. Random probes: mean ± std over 3 seeds.", "",
             "| held-out task | K probes | constant prior: unbudgeted, budgets | predictor: unbudgeted, budgets | "
             "best of K random probes: unbudgeted, budgets | predictor <= half the prior (unbudgeted) |",
             "|---|---|---|---|---|---|"]
    for task in dict.fromkeys(r["task"] for r in tasks):
        mine = [r for r in tasks if r["task"] == task]
        prior = [r for r in mine if r["method"] == "constant prior"]
        prior_none = statistics.mean(float(r["regret"]) for r in prior if r["budget"] == "none")
        prior_budgets = statistics.mean(float(r["regret"]) for r in prior if r["budget"] != "none")
        for count in sorted({int(r["probes"]) for r in mine if int(r["probes"]) > 0}):
            cells = []
            for method in ("predictor", "best of K random probes"):
                rows = [r for r in mine if r["method"] == method and int(r["probes"]) == count]
                cells.append(f"{_regret_summary([r for r in rows if r['budget'] == 'none'])}, "
                             f"{_regret_summary([r for r in rows if r['budget'] != 'none'])}")
            ours = statistics.mean(float(r["regret"]) for r in mine if r["method"] == "predictor"
                                   and int(r["probes"]) == count and r["budget"] == "none")
            lines.append(f"| {task} | {count} | {prior_none:.2f}, {prior_budgets:.2f} | {cells[0]} | {cells[1]} | "
                         f"{'yes' if ours <= prior_none / 2 else 'no'} |")
    flops = read_rows(data / "flops.csv")
    budgeted = [r for r in flops if r["budget"] != "none"]
    bounds = {int(r["budget"]): r["max_flops_m"] for r in budgeted}
    lines += ["", "(a) CIFAR-10 held out, 10 FLOPs budgets (M FLOPs: " + ", ".join(bounds[k] for k in sorted(bounds))
              + "); regret over every budget, mean ± std over seeds; budgets met:", "",
              "| method | K probes | regret (points) | met |", "|---|---|---|---|"]
    for method, count in dict.fromkeys((r["method"], r["probes"]) for r in budgeted):
        rows = [r for r in budgeted if r["method"] == method and r["probes"] == count]
        lines.append(f"| {method} | {count} | {_regret_summary(rows)} | "
                     f"{100 * statistics.mean(int(r['met']) for r in rows):.0f} % |")
    earlier = data.parent / "flops-budgets" / "budgets.csv"
    if earlier.is_file():
        rows = read_rows(earlier)
        same = ({int(r["budget"]): round(float(r["max_flops_m"]), 2) for r in rows}
                == {k: round(float(v), 2) for k, v in bounds.items()})  # the same budgets, numbered alike
        for method in dict.fromkeys(r["method"] for r in rows) if same else ():
            mine = [r for r in rows if r["method"] == method]
            lines.append(f"| {method} (FLOPs study) | 0 | {_regret_summary(mine)} | "
                         f"{100 * statistics.mean(int(r['met']) for r in mine):.0f} % |")
    latency = read_rows(data / "latency.csv")
    devices = read_rows(data / "devices.csv")
    groups = {"HELP's 23 devices": [d["device"] for d in devices if not d["device"].startswith("cpu_")],
              "this machine's 3 CPU settings": [d["device"] for d in devices if d["device"].startswith("cpu_")]}
    lines += ["", "(a) CIFAR-10 held out, 10 latency budgets per held-out device (20-cell profile, guard 0.95), "
              "scored as measured:", "",
              "| devices | method | budgets met | devices met >= 95 % | regret over every budget, mean over devices | "
              "worst device (met) |", "|---|---|---|---|---|---|"]
    earlier_path = data.parent / "latency-budgets" / "budgets.csv"
    earlier = read_rows(earlier_path) if earlier_path.is_file() else []
    for group, names in groups.items():
        if not names:
            continue
        for method in dict.fromkeys(r["method"] for r in latency):
            lines.append(_device_group_row(group, method, [r for r in latency if r["method"] == method], names))
        for method, rows in _earlier_latency_rows(earlier, names, latency).items():
            lines.append(_device_group_row(group, f"{method} (latency study, mean over 3 seeds)", rows, names))
        guess = statistics.mean(statistics.mean(float(r["guess"]) for r in latency if r["device"] == d)
                                for d in names)
        lines.append(f"| {group} | random cell that fits (expected) | 100 % | {len(names)} of {len(names)} | "
                     f"{guess:.2f} | |")
    lines += ["", "(c) Spearman over all 15,625 cells from the 20-cell profile, each device held out of the "
              "predictor's experience; the guard each model's budgets apply (a per-cell guard: its median factor):",
              "",
              "| device | predictor | additive model | guard (predictor) | guard (additive) | design |",
              "|---|---|---|---|---|---|"]
    for d in devices:
        lines.append(f"| {d['device']} | {float(d['spearman']):.3f} | {float(d['spearman_additive']):.3f} | "
                     f"{float(d['guard']):.2f} | {float(d['guard_additive']):.2f} | {d['design']} |")
    for group, names in groups.items():
        if names:
            chosen = [d for d in devices if d["device"] in names]
            lines.append(f"| mean, {group} | {statistics.mean(float(d['spearman']) for d in chosen):.3f} | "
                         f"{statistics.mean(float(d['spearman_additive']) for d in chosen):.3f} | | | |")
    return "\n".join(lines)


def pretrained_tables(data: Path) -> str:
    """The pretrained model's study (benchmarks/pretrained_regret.py): flops.csv (CIFAR-10, unbudgeted and 10 FLOPs
    budgets), latency.csv (10 latency budgets on each held-out device), and record.json (benchmarks/make_pretrained.py:
    what the model was made from and how well its encoder predicts cells it was not trained on)."""
    import json

    record = json.loads((data / "record.json").read_text())
    fit = record["unseen_cell_spearman"]
    lines = [f"The model: {record['parameters']:,} parameters, {record['file_bytes'] / 1e6:.2f} MB; trained on "
             f"{', '.join(record['trained_tasks'])} and {len(record['trained_devices'])} devices; held out: "
             f"{record['held_out_task']} and {', '.join(record['held_out_devices'])}. Spearman of the encoder's "
             f"prediction with the table on the {record['config']['held_out_cells']:.0%} of cells it was not trained "
             "on: " + ", ".join(f"{t} {fit[t + ':rank']:.3f}" for t in record["trained_tasks"])
             + "; latency components 1-4 " + ", ".join(f"{fit[f'latency:{j}']:.3f}" for j in range(4)) + ".", "",
             "CIFAR-10 (held out), regret in points of test accuracy; budgets: 10 FLOPs budgets (5-95 % quantiles):",
             "", "| source | K probes | unbudgeted | regret over 10 budgets, mean ± std | met |",
             "|---|---|---|---|---|"]
    flops = read_rows(data / "flops.csv")
    for source, count in dict.fromkeys((r["source"], r["probes"]) for r in flops):
        mine = [r for r in flops if r["source"] == source and r["probes"] == count]
        budgeted = [r for r in mine if r["budget"] != "none"]
        unbudgeted = [float(r["regret"]) for r in mine if r["budget"] == "none"]
        spread = _mean_std([float(r["regret"]) for r in budgeted])
        lines.append(f"| {source} | {count} | {unbudgeted[0]:.2f} | {spread} | "
                     f"{100 * statistics.mean(int(r['met']) for r in budgeted):.0f} % |")
    cli = read_rows(data / "cli.csv") if (data / "cli.csv").is_file() else []
    if cli:
        ours = {(r["budget"], r["probes"]): r for r in flops if r["source"] == "pretrained"}
        same = sum(abs(float(r["regret"]) - float(ours[(r["budget"], r["probes"])]["regret"])) < 1e-9 for r in cli)
        budgeted = [r for r in cli if r["budget"] != "none"]
        summary = "; ".join(
            f"K={count}: regret " + _mean_std([float(r["regret"]) for r in budgeted if r["probes"] == count])
            for count in dict.fromkeys(r["probes"] for r in cli))
        lines += ["", f"The same proposals made by `search --meta pretrained --dataset npz:cifar10_train.npz` itself "
                  f"(its code, the CIFAR-10 training images giving the costed format; probes as a probe file): "
                  f"{same} of {len(cli)} score as the rows above; over the 10 budgets {summary}; proposal seconds "
                  f"median {statistics.median(float(r['seconds']) for r in cli):.2f} (in one process: the cost model "
                  "is measured once, then cached; a fresh process adds its ~0.5 s)."]
    latency = read_rows(data / "latency.csv")
    devices = list(dict.fromkeys(r["device"] for r in latency))
    lines += ["", "CIFAR-10 (held out) under 10 latency budgets on each held-out device (profile: 20 reference cells, "
              "guard 0.95), scored as measured; regret over every budget (a miss scores as a random cell that fits), "
              "mean ± std over budgets; budgets met:", "",
              "| source | K probes | " + " | ".join(devices) + " | all |", "|---|---|" + "---|" * (len(devices) + 1)]
    for source, count in dict.fromkeys((r["source"], r["probes"]) for r in latency):
        mine = [r for r in latency if r["source"] == source and r["probes"] == count]
        cells = []
        for group in [[r for r in mine if r["device"] == d] for d in devices] + [mine]:
            met = 100 * statistics.mean(int(r["met"]) for r in group)
            cells.append(f"{_mean_std([float(r['regret']) for r in group])} ({met:.0f} %)")
        lines.append(f"| {source} | {count} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fresh_clone_tables(data: Path) -> str:
    """The deployment path from a fresh clone (benchmarks/fresh_clone_path.py): steps.csv."""
    rows = read_rows(data / "steps.csv")
    lines = [f"Commit {rows[0]['commit']}; each step in a fresh process, timed from the outside (wall seconds, "
             "interpreter start-up included).", "",
             "| step | command | exit | seconds | result |", "|---|---|---|---|---|"]
    for r in rows:
        result = r["result"].replace("|", "\\|")  # a cell's text holds NAS-Bench-201's bars
        lines.append(f"| {r['step']} | `{r['command']}` | {r['exit']} | {r['seconds']} | {result} |")
    return "\n".join(lines)


STEP_CONFIGS = {"darts-default": "DARTS default (C=16, 8 cells, batch 64, 32 px)",
                "small": "small (C=8, 5 cells, batch 64, 16 px)"}
STEP_IMPLEMENTATIONS = {"darts-reference": "DARTS reference", "taskdarts-darts (channels_last)": "TaskDARTS",
                        "before: darts (channels_last)": "TaskDARTS before the step speed-ups (afec324)",
                        "taskdarts-recompute (channels_last)": "TaskDARTS `--recompute`",
                        "taskdarts-bf16 (channels_last)": "TaskDARTS `--precision bf16`",
                        "taskdarts-gdas (channels_last)": "GDAS (TaskDARTS)",
                        "before: gdas (channels_last)": "GDAS (TaskDARTS before, afec324)",
                        "taskdarts-pcdarts (channels_last)": "PC-DARTS, K=4 (TaskDARTS)"}


def search_step_tables(data: Path) -> str:
    """The search-step study (benchmarks/search_step.py --data): steps.csv, one row per measurement (each in its own
    process); medians over repeats, ratios against the reference of the same run."""
    rows = read_rows(data / "steps.csv")
    meta = rows[0]
    lines = [f"{meta['threads']} threads, {meta['steps']} timed steps after {meta['warmup']} warm-up per measurement; "
             "ms per step (logit step + weight step), peak resident memory of the measuring process (PyTorch runtime "
             "included).", "",
             "| configuration | order | implementation | ms/step | peak MB | speed vs reference | "
             "memory vs reference |", "|---|---|---|---|---|---|---|"]
    for config in dict.fromkeys(r["config"] for r in rows):
        for order in dict.fromkeys(r["order"] for r in rows if r["config"] == config):
            mine = [r for r in rows if r["config"] == config and r["order"] == order]
            medians = {impl: (statistics.median(float(r["ms_median"]) for r in mine if r["implementation"] == impl),
                              max(float(r["peak_mb"]) for r in mine if r["implementation"] == impl))
                       for impl in dict.fromkeys(r["implementation"] for r in mine)}
            reference = medians.get("darts-reference")
            first = True
            for impl, (ms, mb) in medians.items():
                label = STEP_CONFIGS.get(config, config) if first else ""
                first = False
                ratios = (f"{reference[0] / ms:.2f}x | {mb / reference[1]:.2f}x" if reference else " | ")
                lines.append(f"| {label} | {order} | {STEP_IMPLEMENTATIONS.get(impl, impl)} | {ms:,.0f} | {mb:,.0f} | "
                             f"{ratios} |")
    return "\n".join(lines)


def compare_tables(data: Path) -> str:
    """A `train.py compare` study: its results.json (config and one row per method and seed), rendered as compare's
    report.md renders it (evaluation/compare.comparison_table)."""
    import json

    from .compare import CompareConfig, comparison_table

    results = json.loads((data / "results.json").read_text())
    config = CompareConfig.from_dict(results["config"])
    rows = results["rows"]
    lines = [f"{config.seeds} seeds; mean ± std over seeds; spread = min..max over seeds; search seconds measured on "
             "this machine (2 CPU cores).", ""]
    return "\n".join(lines + comparison_table(config, rows, any("nb201_cifar10" in r for r in rows)))


def collapse_table(raw: dict) -> list[str]:
    """The collapse study's table (benchmarks/collapse.py) from its raw results: per method, mean ± std over seeds of
    the op weight on parameter-free ops at a few epochs, the derived cell's parameter-free and skip edges, and its
    NAS-Bench-201 CIFAR-10 accuracy."""
    from .compare import mean_std

    args, results = raw["args"], raw["results"]
    epochs = list(results[0]["share"])
    lines = [f"NAS-Bench-201 on {raw['data']} at {args['image_size']} px, {args['layers']} cell(s) per stage, "
             f"C={args['init_channels']}, {args['epochs']} epochs, logit lr {args['logit_lr']} (Adam), {args['seeds']} "
             f"seeds; mean ± std over seeds. Uniform weights put 0.60 on the parameter-free ops (3 of 5).", "",
             "| method | " + " | ".join(f"param-free weight, epoch {e}" for e in epochs)
             + " | param-free edges (of 6) | skip edges | NB201 CIFAR-10 |", "|---|" + "---|" * (len(epochs) + 3)]
    for method in dict.fromkeys(r["method"] for r in results):
        rs = [r for r in results if r["method"] == method]
        cells = [mean_std([r["share"][e] for r in rs], ".2f", ".2f") for e in epochs]
        cells += [mean_std([r["free_edges"] for r in rs], ".1f", ".1f"),
                  mean_std([r["skips"] for r in rs], ".1f", ".1f"), mean_std([r["cifar10"] for r in rs], ".2f", ".2f")]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def collapse_tables(data: Path) -> str:
    import json

    raw = json.loads((data / "results.json").read_text())
    return "\n".join(collapse_table(raw) + ["", "Cells:", ""] + [
        f"- {r['method']} seed {r['seed']}: `{r['genotype']}` ({r['cifar10']:.2f})" for r in raw["results"]])


STUDIES: dict[str, tuple[str, Callable[[Path], str]]] = {
    "latency-budgets": ("budgets.md", latency_budget_tables),
    "flops-budgets": ("budgets.md", flops_budget_tables),
    "predictors": ("predictors.md", predictor_tables),
    "pretrained": ("pretrained.md", pretrained_tables),
    "fresh-clone-path": ("fresh-clone-path.md", fresh_clone_tables),
    "search-step-speed": ("search-step-speed.md", search_step_tables),
    "compare-pcdarts-memory": ("compare-pcdarts-memory.md", search_step_tables),
    "compare-nb201-methods": ("compare-nb201-methods.md", compare_tables),  # results.json copied from its --out
    "compare-collapse": ("compare-collapse.md", collapse_tables),
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
