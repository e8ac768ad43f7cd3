#!/usr/bin/env python
"""Median milliseconds per search step (logit step + weight step) and peak memory, ours and the DARTS reference's.

Every measurement runs in its own process, so its peak memory is its own (CPU: peak resident set size of the
process, PyTorch runtime included; CUDA: torch.cuda.max_memory_allocated). Measurements of one table are taken in
one run and interleaved (reference, ours, reference, ours, ...), so machine noise hits both alike; the ratios compare
medians of the same run. Random data of the configuration's shape, 10 classes.

    python benchmarks/search_step.py --configs small darts-default --orders 1 2 \\
        --peer ../shared/peers/darts_reference --repeats 2          # ours vs the reference, side by side
    python benchmarks/search_step.py --configs darts-default --orders 1 --variants darts pcdarts   # PC-DARTS (K=4)
    python benchmarks/search_step.py --variants darts gdas recompute bf16 --before /tmp/old-checkout  # before/after
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = {
    # name: space, channels C, layers, batch, image size, input channels
    "tiny": dict(space="darts", C=4, layers=3, batch=64, size=8, in_channels=1),
    "small": dict(space="darts", C=8, layers=5, batch=64, size=16, in_channels=3),
    "darts-default": dict(space="darts", C=16, layers=8, batch=64, size=32, in_channels=3),
    "nb201-default": dict(space="nb201", C=16, layers=5, batch=64, size=32, in_channels=3),
}
VARIANTS = {
    "darts": {},                                                    # our DARTS step as users run it
    "pcdarts": {"partial": 4, "edge_logits": True},                 # PC-DARTS, K = 4, edge normalisation
    "gdas": {"relax": "gumbel"},                                    # hard Gumbel sampling (first order only)
    "recompute": {"recompute": True},                               # DARTS, cells recomputed in backward
    "bf16": {"precision": "bf16"},                                  # DARTS under bfloat16 autocast
}


def measure(name: str, order: int, variant: str, steps: int, warmup: int, device_name: str, channels_last: bool,
            threads: int | None) -> dict:
    import torch

    from run_kit.device import pick_device
    from supernet.bilevel import BilevelOptimizer
    from supernet.model import ArchLogits
    from supernet.relaxation import create_relaxation
    try:
        from supernet.spaces import create_supernet, get_space
    except ImportError:  # a --before checkout older than the space registry (2026-12-04)
        from search_spaces import get_space
        from supernet.model import create_supernet

    if threads:
        torch.set_num_threads(threads)
    cfg, options = CONFIGS[name], VARIANTS[variant]
    device = pick_device(device_name)
    torch.manual_seed(0)
    space = get_space(cfg["space"])
    extra = {key: options[key] for key in ("recompute", "precision") if key in options}
    model = create_supernet(space, 10, cfg["in_channels"], cfg["C"], cfg["layers"],
                            create_relaxation(options.get("relax", "softmax")), options.get("partial", 1),
                            **extra).to(device)
    arch = ArchLogits.random(space, edge_logits=options.get("edge_logits", False)).to(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    w_opt = torch.optim.SGD(model.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(arch.parameters(), 3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    bilevel = BilevelOptimizer(model, arch, w_opt, a_opt, order=order)
    shape = (cfg["batch"], cfg["in_channels"], cfg["size"], cfg["size"])
    batch = lambda: (torch.randn(shape, device=device).contiguous(memory_format=memory_format),  # noqa: E731
                     torch.randint(0, 10, (cfg["batch"],), device=device))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for k in range(warmup + steps):
        weight_batch, logit_batch = batch(), batch()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        bilevel.step(weight_batch, logit_batch, lr=0.025)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if k >= warmup:
            times.append((time.perf_counter() - start) * 1000)
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {"impl": f"taskdarts-{variant}", "config": name, "order": order, "channels_last": channels_last,
            "device": str(device), "threads": torch.get_num_threads(), "ms_median": round(statistics.median(times), 1),
            "ms_min": round(min(times), 1), "peak_mb": round(peak_mb, 1), "steps": steps, **cfg}


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append_rows(path: Path, rows: list[dict]) -> None:
    """Add rows to a CSV (its header written once): each (config, order) lands as soon as it is measured."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)


def run_ours(args, name: str, order: int, variant: str, layout: str, tree: str | None = None) -> dict:
    """`tree`: a checkout of an earlier commit whose packages the measurement imports instead (--before)."""
    command = [sys.executable, __file__, "--one", name, str(order), variant, layout, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--device", args.device, "--threads", str(args.threads)]
    env = dict(os.environ, PYTHONPATH=str(Path(tree).resolve())) if tree else None
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout)


def run_peer(args, name: str, order: int) -> dict:
    """The reference's own search step, timed by ../shared/peers/time_darts_reference.py (warm-up: 1 step)."""
    cfg = CONFIGS[name]
    script = Path(args.peer).resolve().parent / "time_darts_reference.py"
    command = [sys.executable, str(script), str(Path(args.peer).resolve()), str(cfg["C"]), str(cfg["layers"]),
               str(cfg["batch"]), str(cfg["size"]), str(order), str(args.steps), str(args.threads)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return {"impl": "darts-reference", "ms_median": out["ms_median"], "peak_mb": out["peak_rss_mb"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["small", "darts-default"], choices=list(CONFIGS))
    parser.add_argument("--orders", nargs="+", type=int, default=[1, 2], choices=[1, 2])
    parser.add_argument("--variants", nargs="+", default=["darts"], choices=list(VARIANTS),
                        help="our implementations to time (gdas runs first order only)")
    parser.add_argument("--layouts", nargs="+", default=["channels_last"], choices=["nchw", "channels_last"])
    parser.add_argument("--peer", metavar="DARTS_CNN_DIR", help="also time the DARTS reference (DARTS-space configs, "
                                                                "3 input channels)")
    parser.add_argument("--before", metavar="CHECKOUT", help="also time these variants as an earlier commit's checkout "
                                                             "computes them (e.g. a `git worktree` of the commit)")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved repetitions of every measurement")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="torch threads, ours and the reference's alike")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", metavar="DIR", help="append every measurement to DIR/steps.csv; a (config, order) "
                                                      "already there is skipped, so an interrupted study resumes")
    parser.add_argument("--one", nargs=4, metavar=("CONFIG", "ORDER", "VARIANT", "LAYOUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        name, order, variant, layout = args.one
        print(json.dumps(measure(name, int(order), variant, args.steps, args.warmup, args.device,
                                 layout == "channels_last", args.threads)))
        return
    header = (f"{'config':<15}{'order':>6}  {'implementation':<36}{'median ms/step':>15}{'peak MB':>10}"
              + (f"{'speed vs ref':>14}{'memory vs ref':>15}" if args.peer else ""))
    print(header, flush=True)
    done = set()
    steps_csv = Path(args.data) / "steps.csv" if args.data else None
    if steps_csv is not None and steps_csv.is_file():
        done = {(r["config"], int(r["order"])) for r in read_rows(steps_csv)}
    for name in args.configs:
        for order in args.orders:
            if (name, order) in done:
                print(f"{name} order {order}: in {steps_csv} already", flush=True)
                continue
            jobs = [(v, layout) for v in args.variants for layout in args.layouts if not (v == "gdas" and order == 2)]
            peer_ok = args.peer and CONFIGS[name]["space"] == "darts" and CONFIGS[name]["in_channels"] == 3
            results: dict[str, list[dict]] = {}
            for _ in range(args.repeats):  # interleaved: reference, ours, reference, ours, ...
                if peer_ok:
                    results.setdefault("darts-reference", []).append(run_peer(args, name, order))
                for variant, layout in jobs:
                    results.setdefault(f"taskdarts-{variant} ({layout})", []).append(
                        run_ours(args, name, order, variant, layout))
                    if args.before and variant in ("darts", "gdas", "pcdarts"):
                        results.setdefault(f"before: {variant} ({layout})", []).append(
                            run_ours(args, name, order, variant, layout, args.before))
            if steps_csv is not None:  # raw rows, one per measurement (docs/results/search-step-speed.md)
                append_rows(steps_csv, [{"config": name, "order": order, "implementation": impl, "repeat": k,
                                         "ms_median": r["ms_median"], "peak_mb": r["peak_mb"],
                                         "threads": args.threads, "steps": args.steps, "warmup": args.warmup}
                                        for impl, rows in results.items() for k, r in enumerate(rows)])
            medians = {impl: (statistics.median(r["ms_median"] for r in rows), max(r["peak_mb"] for r in rows))
                       for impl, rows in results.items()}
            reference = medians.get("darts-reference")
            for impl, (ms, mb) in medians.items():
                line = f"{name:<15}{order:>6}  {impl:<36}{ms:>15,.1f}{mb:>10,.0f}"
                if reference:
                    line += f"{reference[0] / ms:>13.2f}x{mb / reference[1]:>14.2f}x"
                print(line, flush=True)


if __name__ == "__main__":
    main()
