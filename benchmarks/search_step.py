#!/usr/bin/env python
"""Median milliseconds per search step (logit step + weight step) and peak memory, for standard configurations.

Each configuration runs in its own process so peak memory is its own (CPU: peak resident set size of the process;
CUDA: torch.cuda.max_memory_allocated). Random data of the configuration's shape; 10 classes.

    python benchmarks/search_step.py                       # all configurations, 5 timed steps each
    python benchmarks/search_step.py --configs tiny darts-default --orders 1 --steps 10 --device cpu
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = {
    # name: space, channels C, layers, batch, image size, input channels
    "tiny": dict(space="darts", C=4, layers=3, batch=64, size=8, in_channels=1),
    "darts-default": dict(space="darts", C=16, layers=8, batch=64, size=32, in_channels=3),
    "nb201-default": dict(space="nb201", C=16, layers=5, batch=64, size=32, in_channels=3),
}


def measure(name: str, order: int, relax: str, steps: int, warmup: int, device_name: str, channels_last: bool) -> dict:
    import torch

    from search_spaces import get_space
    from supernet.bilevel import BilevelOptimizer
    from supernet.model import ArchLogits, create_supernet
    from supernet.relaxation import create_relaxation
    from run_kit.device import pick_device

    cfg = CONFIGS[name]
    device = pick_device(device_name)
    torch.manual_seed(0)
    space = get_space(cfg["space"])
    model = create_supernet(space, 10, cfg["in_channels"], cfg["C"], cfg["layers"], create_relaxation(relax)).to(device)
    arch = ArchLogits.random(space).to(device)
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
    return {"config": name, "order": order, "relax": relax, "channels_last": channels_last, "device": str(device), "threads": torch.get_num_threads(),
            "median_ms": round(statistics.median(times), 1), "min_ms": round(min(times), 1),
            "peak_mb": round(peak_mb, 1), "steps": steps, **cfg}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--orders", nargs="+", type=int, default=[1, 2], choices=[1, 2])
    parser.add_argument("--gumbel", action="store_true", help="also time first-order Gumbel (GDAS) steps")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--layouts", nargs="+", default=["nchw", "channels_last"], choices=["nchw", "channels_last"],
                        help="memory layouts to compare (same run, same configurations)")
    parser.add_argument("--one", nargs=4, metavar=("CONFIG", "ORDER", "RELAX", "LAYOUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        name, order, relax, layout = args.one
        print(json.dumps(measure(name, int(order), relax, args.steps, args.warmup, args.device,
                                 layout == "channels_last")))
        return
    jobs = [(name, order, "softmax") for name in args.configs for order in args.orders]
    if args.gumbel:
        jobs += [(name, 1, "gumbel") for name in args.configs]
    print(f"{'config':<15}{'order':>6}{'relax':>9}{'layout':>15}{'device':>8}{'median ms/step':>16}{'peak MB':>10}")
    for name, order, relax in jobs:
        for layout in args.layouts:
            command = [sys.executable, __file__, "--one", name, str(order), relax, layout, "--steps", str(args.steps),
                       "--warmup", str(args.warmup), "--device", args.device]
            result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            print(f"{name:<15}{order:>6}{relax:>9}{layout:>15}{result['device']:>8}{result['median_ms']:>16.1f}"
                  f"{result['peak_mb']:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
