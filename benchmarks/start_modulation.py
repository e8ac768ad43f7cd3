#!/usr/bin/env python
"""How far the initializer moves a task's start from the meta-learned base weights (meta/initializer.py).

Results: withdrawn (no raw results were kept; docs/results/withdrawn.md).

For each seed's two imitation meta-runs under --out (benchmarks/meta_zero_shot.py: TaskDARTS and its --no-encoder
ablation) and each target of benchmarks/warm_start.py (its search images, embedded as a warm-started search embeds
them), with W0 = I(z, W): the norm of z; over conv and linear weights the mean relative change |W0 - W| / |W| and
the share of output channels whose factor 1 + tanh(gamma) lies outside (0.1, 1.9) (tanh saturated); over vectors
(biases, BatchNorm affine) the mean |W0 - W|. Reads the runs, trains nothing; seconds.

    python benchmarks/start_modulation.py --seeds 3 --out runs/meta-zero-shot
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import meta_zero_shot as zs
import torch
import warm_start

from meta.model import load_meta
from meta.tasks import search_task


def modulation(meta, images, seed: int) -> dict[str, float]:
    meta.eval()
    with torch.no_grad():
        z = meta.embed([search_task(images, seed)])[0].detach()
        start = meta.start(z).weights
        base = {name: p.detach() for name, p in meta.supernet.named_parameters()}
        matrices = [name for name in base if base[name].dim() > 1]
        vectors = [name for name in base if base[name].dim() == 1]
        relative = [float((start[n] - base[n]).norm() / base[n].norm().clamp_min(1e-12)) for n in matrices]
        factors = torch.cat([(start[n].flatten(1).norm(dim=1) / base[n].flatten(1).norm(dim=1).clamp_min(1e-12))
                             for n in matrices])
    return {"z_norm": float(z.norm()), "relative_change": statistics.mean(relative),
            "saturated_channels": float(((factors < 0.1) | (factors > 1.9)).double().mean()),
            "mean_shift": statistics.mean(float((start[n] - base[n]).abs().mean()) for n in vectors)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(zs.ROOT / "configs" / "meta_nb201_natural.yaml"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--images-per-class", type=int, default=500)
    parser.add_argument("--out", default="runs/meta-zero-shot")
    args = parser.parse_args()
    for name in zs.CONFIG_OVERRIDES:
        setattr(args, name, None)
    data = warm_start.targets(args, zs.natural_config(args, 0))
    lines = ["| seed | meta-run | target | norm of z | relative change of weights | saturated channels | mean shift of "
             "vectors |", "|---|---|---|---|---|---|---|"]
    for seed in range(args.seeds):
        for method in zs.METHODS:
            meta = load_meta(str(Path(args.out) / f"seed{seed}" / method), torch.device("cpu"))
            for target, (images, _, _) in data.items():
                m = modulation(meta, images, seed)
                lines.append(f"| {seed} | {method} | {target} | {m['z_norm']:.2f} | {m['relative_change']:.3f} | "
                             f"{m['saturated_channels']:.3f} | {m['mean_shift']:.3f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
