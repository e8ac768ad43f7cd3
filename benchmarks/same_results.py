#!/usr/bin/env python
"""Does a change keep results? Runs a fixed set of commands (searches of every method, retrainings, meta-training of
every objective, teachers, zero-shot and adapted searches, comparisons, derive/inspect/visualize) in one checkout,
then compares two such runs file by file: metrics, genotypes, results, checkpoint tensors and the commands' JSON
summaries must be equal; timings, logs and the saved configs' layout are not compared.

    python benchmarks/same_results.py run --checkout /tmp/before --out runs/same/before    # ~11 min on 2 CPU cores
    python benchmarks/same_results.py run --checkout . --out runs/same/after
    python benchmarks/same_results.py compare runs/same/before runs/same/after

Each command runs in a fresh interpreter with the checkout on PYTHONPATH and as its working directory, so the two
checkouts' code never mix; they run one after another, never side by side (the machine has 2 cores). A refactor
that keeps every computation in the same order gives identical files; one that reorders a floating-point sum does
not (see README, "search": short searches are chaotic at float level), which this comparison then shows.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
MNIST = f"npz:{SHARED / 'mnist_test.npz'}"
TABLE = str(SHARED / "nb201" / "nats_bench.csv")

# A small two-data-set NAS-Bench-201 task family for the teachers and the imitate objective (same flags for both, so
# both draw the same class split).
FAMILY = ["--space", "nb201", "--tasks", "digits", MNIST, "--image-size", "8", "--layers", "1", "--init-channels", "4",
          "--ways", "3", "--shots", "5", "--queries", "5", "--outers", "5", "--tests", "5"]
TEACHERS = ["--teachers-per-dataset", "2", "--teacher-classes", "5", "--teacher-images", "300"]

CASES: list[tuple[str, list[str]]] = [
    ("search-default", ["search"]),
    ("search-darts", ["search", "--space", "darts", "--layers", "3", "--init-channels", "4", "--epochs", "3"]),
    ("search-gdas", ["search", "--relax", "gumbel", "--epochs", "5"]),
    ("search-pcdarts", ["search", "--partial-channels", "4", "--edge-normalization", "--logit-warmup-epochs", "1",
                        "--epochs", "4"]),
    ("search-beta", ["search", "--logit-regularizer", "beta", "--epochs", "3"]),
    ("search-drnas", ["search", "--relax", "dirichlet", "--epochs", "3"]),
    ("search-order2", ["search", "--order", "2", "--epochs", "2"]),
    ("search-naswot", ["search", "--proxy", "naswot", "--candidates", "20"]),
    ("search-synflow", ["search", "--space", "darts", "--layers", "3", "--init-channels", "4", "--proxy", "synflow",
                        "--candidates", "10"]),
    ("retrain-search", ["retrain", "--genotype", "{search-default}", "--epochs", "2"]),
    ("retrain-darts", ["retrain", "--genotype", "DARTS_V2", "--epochs", "1", "--layers", "3", "--init-channels", "8",
                       "--auxiliary", "--cutout"]),
    ("derive", ["derive", "{search-darts}", "--format", "darts"]),
    ("inspect-darts", ["inspect", "DARTS_V2", "--layers", "20", "--init-channels", "36"]),
    ("inspect-random", ["inspect", "random", "--space", "nb201", "--seed", "3"]),
    ("visualize", ["visualize", "{search-darts}", "--out", "{out}"]),
    ("lookup", ["nb201-lookup", "{search-default}", "--table", TABLE]),
    ("meta-default", ["meta-train"]),
    ("meta-nb201-beta", ["meta-train", "--space", "nb201", "--meta-steps", "10", "--logit-regularizer", "beta"]),
    ("meta-no-encoder", ["meta-train", "--no-encoder", "--no-initializer", "--meta-steps", "10"]),
    ("teachers-naswot", ["teachers", *FAMILY, *TEACHERS, "--teacher-method", "naswot-20", "--teacher-probe-epochs",
                         "1", "--teacher-probe-layers", "1"]),
    ("teachers-pcdarts", ["teachers", *FAMILY, *TEACHERS, "--teacher-epochs", "2"]),
    ("meta-imitate", ["meta-train", *FAMILY, "--objective", "imitate", "--teachers", "{teachers-naswot}",
                      "--imitate-pool", "dataset", "--imitate-prior", "1", "--dataset-loss", "1", "--meta-steps", "60",
                      "--meta-batch", "4", "--log-every", "20"]),
    ("meta-imitate-pcdarts", ["meta-train", *FAMILY, "--objective", "imitate", "--teachers", "{teachers-pcdarts}",
                              "--meta-steps", "30", "--no-encoder"]),
    ("zero-shot", ["search", "--meta", "{meta-default}", "--dataset", "digits"]),
    ("adapt", ["search", "--meta", "{meta-default}", "--dataset", "digits", "--adapt-steps", "5"]),
    ("zero-shot-imitate", ["search", "--meta", "{meta-imitate}", "--dataset", "digits", "--space", "nb201"]),
    ("compare-nb201", ["compare", "--space", "nb201", "--methods", "darts1", "gdas", "pcdarts", "beta-darts", "drnas",
                       "naswot-10", "synflow-10", "random", "taskdarts-0", "taskdarts-3", "--meta", "{meta-imitate}",
                       "--seeds", "2", "--search-epochs", "2", "--layers", "1", "--init-channels", "4",
                       "--retrain-epochs", "1", "--retrain-layers", "1", "--retrain-channels", "8", "--nb201-table",
                       TABLE]),
    ("meta-darts", ["meta-train", "--space", "darts", "--meta-steps", "10"]),  # meta-train's default space is nb201
    ("compare-darts", ["compare", "--space", "darts", "--methods", "darts1", "published", "PC_DARTS", "random",
                       "taskdarts-0", "--meta", "{meta-darts}", "--seeds", "2", "--search-epochs", "1", "--layers",
                       "3", "--init-channels", "4", "--retrain-epochs", "1", "--retrain-layers", "3",
                       "--retrain-channels", "8"]),
    ("compare-default", ["compare"]),  # the README's default comparison: DARTS space, darts1 / gdas / random, 3 seeds
]

TIMING = ("seconds", "time")
CHECKPOINT_RENAMES = {"/policy/baseline": "/objective/policy/baseline"}
"""Checkpoint entries a format change moved (meta-checkpoint format 2, 2026-12-04: the policy's state moved under the
objective's); compared under their new name. An entry that was None and is gone (the baseline of an objective
without a policy) and the format number itself are not differences of results."""
FORMAT_ENTRIES = {"/format"}
NOT_COMPARED = {"log.txt", "config.yaml", "report.md", "accuracy_vs_search_cost.png"}
"""Timings and layout only: a comparison's report and plot show search seconds; its results.json/csv are compared."""


def run_cases(checkout: Path, out: Path, only: list[str] | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(checkout.resolve()))
    for name, args in CASES:
        if only and name not in only:
            continue
        target = out / name
        if (target / "stdout.json").exists():
            print(f"{name}: done before, kept", flush=True)
            continue
        fill = {case: str((out / case / "run").resolve()) for case, _ in CASES}
        fill["out"] = str((target / "run").resolve())
        argv = [a.format(**fill) if "{" in a else a for a in args]
        if argv[0] not in ("derive", "inspect", "visualize", "nb201-lookup"):
            argv += ["--out", fill["out"]]
        if argv[0] not in ("derive", "inspect", "visualize", "nb201-lookup", "compare"):
            argv += ["--no-progress"]
        started = time.time()
        done = subprocess.run([sys.executable, str(checkout / "train.py"), *argv], cwd=checkout, env=env,
                              capture_output=True, text=True)
        target.mkdir(parents=True, exist_ok=True)
        (target / "command.txt").write_text(" ".join(argv) + "\n")
        (target / "stderr.txt").write_text(done.stderr)
        if done.returncode != 0:
            print(f"{name}: exit {done.returncode}\n{done.stderr[-2000:]}", flush=True)
            sys.exit(1)
        (target / "stdout.json").write_text(done.stdout)
        print(f"{name}: {time.time() - started:.0f} s", flush=True)


def _clean(value: Any, root: str) -> Any:
    """A JSON-like value without timings and with this side's output folder replaced by a placeholder."""
    if isinstance(value, dict):
        return {k: _clean(v, root) for k, v in value.items() if not any(t in str(k) for t in TIMING)}
    if isinstance(value, list):
        return [_clean(v, root) for v in value]
    if isinstance(value, str):
        return value.replace(root, "<run>")
    if isinstance(value, float) and value != value:
        return "nan"  # NaN == NaN for this comparison (a logit loss where no logit step ran)
    return value


def _csv_rows(path: Path, root: str) -> list[dict[str, str]]:
    import csv

    with path.open(newline="") as handle:
        return _clean([dict(row) for row in csv.DictReader(handle)], root)


def _tensors(value: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten a checkpoint into path -> leaf; the saved config is left out (its layout may change)."""
    import torch

    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("config",) or any(t in str(key) for t in TIMING):
                continue
            out.update(_tensors(item, f"{prefix}/{key}"))
    elif isinstance(value, (list, tuple)) and not (value and isinstance(value[0], (int, float))):
        for k, item in enumerate(value):
            out.update(_tensors(item, f"{prefix}[{k}]"))
    else:
        out[prefix] = value.clone() if isinstance(value, torch.Tensor) else _clean(value, "\0")
    return out


def _equal(a: Any, b: Any) -> bool:
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and a.dtype == b.dtype and bool((a == b).all() or (a.isnan() & b.isnan()).any() and
                                                torch.equal(a.nan_to_num(), b.nan_to_num())))
    return a == b


def compare_file(a: Path, b: Path, root_a: str, root_b: str) -> list[str]:
    """Differences between two files of the same name (empty if equal)."""
    if a.suffix == ".csv":
        rows_a, rows_b = _csv_rows(a, root_a), _csv_rows(b, root_b)
        if rows_a == rows_b:
            return []
        for k, (ra, rb) in enumerate(zip(rows_a, rows_b)):
            if ra != rb:
                keys = sorted(key for key in set(ra) | set(rb) if ra.get(key) != rb.get(key))
                return [f"row {k + 1}: " + "; ".join(f"{key} {ra.get(key)!r} vs {rb.get(key)!r}" for key in keys[:4])]
        return [f"{len(rows_a)} vs {len(rows_b)} rows"]
    if a.suffix == ".json":
        def parse(path: Path, root: str) -> Any:
            text = path.read_text()
            if path.name == "stdout.json":  # the command's summary is its last line (compare writes progress first)
                text = (text.strip().splitlines() or [""])[-1]
            try:
                return _clean(json.loads(text), root)
            except json.JSONDecodeError:  # one JSON value per line, or plain text (derive, visualize)
                try:
                    return [_clean(json.loads(line), root) for line in text.splitlines() if line.strip()]
                except json.JSONDecodeError:
                    return text.replace(root, "<run>")
        va, vb = parse(a, root_a), parse(b, root_b)
        return [] if va == vb else [f"{json.dumps(va)[:300]} vs {json.dumps(vb)[:300]}"]
    if a.suffix == ".pt":
        import torch

        ta = _tensors(torch.load(a, map_location="cpu", weights_only=True))
        tb = _tensors(torch.load(b, map_location="cpu", weights_only=True))
        ta = {CHECKPOINT_RENAMES.get(k, k) if CHECKPOINT_RENAMES.get(k) in tb else k: v for k, v in ta.items()}
        ta = {k: v for k, v in ta.items() if k not in FORMAT_ENTRIES and not (v is None and k not in tb)}
        tb = {k: v for k, v in tb.items() if k not in FORMAT_ENTRIES}
        problems = [f"only in the first: {key}" for key in sorted(set(ta) - set(tb))[:5]]
        problems += [f"only in the second: {key}" for key in sorted(set(tb) - set(ta))[:5]]
        problems += [f"differs: {key}" for key in sorted(set(ta) & set(tb)) if not _equal(ta[key], tb[key])][:10]
        return problems
    if a.suffix in (".txt", ".md"):
        text_a, text_b = a.read_text().replace(root_a, "<run>"), b.read_text().replace(root_b, "<run>")
        if a.name in ("stderr.txt",):
            return []
        return [] if text_a == text_b else ["text differs"]
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (a, b)]
    return [] if digest[0] == digest[1] else ["bytes differ"]


def compare(first: Path, second: Path) -> int:
    failures = 0
    for name, _ in CASES:
        a, b = first / name, second / name
        if not (a.is_dir() and b.is_dir()):
            print(f"{name}: missing in {'the first' if not a.is_dir() else 'the second'} run")
            failures += 1
            continue
        files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name not in NOT_COMPARED}
        files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.name not in NOT_COMPARED}
        problems = [f"only in the first: {p}" for p in sorted(files_a - files_b)]
        problems += [f"only in the second: {p}" for p in sorted(files_b - files_a)]
        for rel in sorted(files_a & files_b):
            problems += [f"{rel}: {d}" for d in compare_file(a / rel, b / rel, str(first.resolve()),
                                                               str(second.resolve()))]
        print(f"{name}: {'same' if not problems else 'DIFFERENT'} ({len(files_a & files_b)} files)")
        for problem in problems:
            print(f"    {problem}")
        failures += bool(problems)
    print(f"{len(CASES) - failures} of {len(CASES)} cases the same")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run every case in one checkout")
    run.add_argument("--checkout", type=Path, default=Path("."))
    run.add_argument("--out", type=Path, required=True)
    run.add_argument("--only", nargs="*", help="case names (default: all)")
    diff = commands.add_parser("compare", help="compare two runs' outputs")
    diff.add_argument("first", type=Path)
    diff.add_argument("second", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        run_cases(args.checkout, args.out, args.only)
        return 0
    return compare(args.first, args.second)


if __name__ == "__main__":
    sys.exit(main())
