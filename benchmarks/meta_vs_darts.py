#!/usr/bin/env python
"""TaskDARTS vs the MetaNAS-style --no-encoder ablation vs DARTS from scratch, on held-out tasks.

Task distribution (recorded in each meta-run's task_split.json): 5-way episodes, 5 support / 5 query / 10 test images
per class, 28 px grey. Meta-training: 70 % of the Omniglot characters. Held-out: episodes over the other 30 % of the
characters and over MNIST (a data set never seen in meta-training). The same held-out tasks for every method and seed.

For each seed: meta-train TaskDARTS and the ablation (same budget), then adapt every method on every held-out task
with the same inner loop (first-order DARTS steps: weights on support, logits on query) and record the supernet's
query and test accuracy after 0, 5, 20, 50 steps. DARTS from scratch starts from a fresh supernet and near-uniform
logits (1e-3 N(0, 1)). Numbers: mean +- std over seeds of the mean over tasks.

    python benchmarks/meta_vs_darts.py --out runs/meta_vs_darts            # about 35 min on 2 CPU cores
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"

import torch  # noqa: E402

from meta.adapt import adapt  # noqa: E402
from meta.meta_train import load_meta, run_meta_train  # noqa: E402
from meta.model import MetaConfig  # noqa: E402
from meta.tasks import build_distributions  # noqa: E402
from supernet.model import ArchLogits, create_supernet  # noqa: E402
from supernet.runtime import RunDir  # noqa: E402

METHODS = ("taskdarts", "no-encoder", "darts")


def meta_config(args, seed: int, use_encoder: bool) -> MetaConfig:
    return MetaConfig(space=args.space, tasks=[f"npz:{args.omniglot}"], test_tasks=[f"npz:{args.mnist}"], ways=5,
                      shots=5, queries=5, tests=10, image_size=28, channels=1, max_classes=5, layers=args.layers,
                      init_channels=args.init_channels, meta_steps=args.meta_steps, meta_batch=4,
                      inner_steps=args.inner_steps, inner_batch=25, probe_tasks=8, log_every=10, seed=seed,
                      use_encoder=use_encoder, device="cpu")


def held_out_tasks(config: MetaConfig, count: int) -> list:
    _, meta_test, _ = build_distributions(config.tasks, config.test_tasks, config.ways, config.shots, config.queries,
                                          config.tests, config.channels, config.image_size, config.meta_test_fraction,
                                          0, config.data_root)
    rng = random.Random(12345)
    return [meta_test.sample(rng) for _ in range(count)]


def run_method(method, meta, config, task, steps, seed):
    started = time.time()
    if method == "darts":
        torch.manual_seed(seed)
        fresh = create_supernet(meta.space, config.max_classes, config.channels, config.init_channels, config.layers)
        weights = {n: p.detach() for n, p in fresh.named_parameters()}
        buffers = {n: b.detach().clone() for n, b in fresh.named_buffers()}
        logits = {k: v.detach() for k, v in ArchLogits(meta.space)().items()}
    else:
        meta.eval()
        with torch.no_grad():
            z = meta.embed([task])[0]
            weights, logits = meta.start(z)
        buffers = {n: b.detach().clone() for n, b in meta.supernet.named_buffers()}
    zero_shot = meta.space.to_text(meta.space.derive(logits))
    zero_shot_seconds = time.time() - started
    work = create_supernet(meta.space, config.max_classes, config.channels, config.init_channels, config.layers)
    started = time.time()
    adapted = adapt(work, weights, buffers, logits, task, max(steps), config, seed, "relaxed", record_at=steps)
    final = meta.space.to_text(meta.space.derive({k: v.detach() for k, v in adapted.logits().items()}))
    return {"history": adapted.history, "zero_shot_genotype": zero_shot, "final_genotype": final,
            "zero_shot_seconds": zero_shot_seconds, "adapt_seconds": time.time() - started}


def mean_std(values) -> str:
    values = list(values)
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--omniglot", default=str(SHARED / "omniglot_small.npz"))
    parser.add_argument("--mnist", default=str(SHARED / "mnist_test.npz"))
    parser.add_argument("--space", default="nb201", choices=("nb201", "darts"))
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--init-channels", type=int, default=8)
    parser.add_argument("--meta-steps", type=int, default=100)
    parser.add_argument("--inner-steps", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 5, 20, 50])
    parser.add_argument("--out", default="runs/meta_vs_darts")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(torch.get_num_threads())
    results, meta_seconds = [], {}
    tasks = held_out_tasks(meta_config(args, 0, True), args.tasks)
    for seed in range(args.seeds):
        metas = {}
        for method, use_encoder in (("taskdarts", True), ("no-encoder", False)):
            run_dir = out / f"{method}-seed{seed}"
            config = meta_config(args, seed, use_encoder)
            if not (run_dir / "checkpoint.pt").exists() or torch.load(run_dir / "checkpoint.pt",
                                                                       weights_only=False)["step"] < args.meta_steps:
                started = time.time()
                run_meta_train(config, RunDir(run_dir), resume=(run_dir / "checkpoint.pt").exists(), progress=False)
                meta_seconds[f"{method}-seed{seed}"] = time.time() - started
            metas[method] = load_meta(str(run_dir), torch.device("cpu"))
        for method in METHODS:
            meta = metas["no-encoder" if method == "darts" else method]
            for k, task in enumerate(tasks):
                row = run_method(method, meta, meta.config, task, args.steps, seed * 1000 + k)
                results.append({"seed": seed, "task": task.name, "method": method, **row})
                print(f"seed {seed} {method:<11} task {k:>2} query acc "
                      + " ".join(f"{s}:{row['history'][s]['query_acc']:.2f}" for s in args.steps), flush=True)
    (out / "results.json").write_text(json.dumps({"args": vars(args), "meta_train_seconds": meta_seconds,
                                                  "results": results}, indent=1))
    lines = report(results, args, meta_seconds)
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def report(results, args, meta_seconds) -> list[str]:
    seeds = sorted({r["seed"] for r in results})

    def per_seed(method, fn):
        return [fn([r for r in results if r["method"] == method and r["seed"] == s]) for s in seeds]

    lines = [f"Held-out tasks: {args.tasks} (5-way, Omniglot held-out characters and MNIST), seeds: {len(seeds)}; "
             f"{args.space} supernet C={args.init_channels}, {args.layers} cell(s) per stage; mean ± std over seeds.",
             "", "Supernet query accuracy after K adaptation steps:", "",
             "| method | " + " | ".join(f"K={s}" for s in args.steps) + " |",
             "|---|" + "---|" * len(args.steps)]
    for method in METHODS:
        cells = [mean_std(per_seed(method, lambda rows, s=s: statistics.mean(r["history"][s]["query_acc"] for r in rows)))
                 for s in args.steps]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", "Supernet test-split accuracy (images used neither for weights nor logits):", "",
              "| method | " + " | ".join(f"K={s}" for s in args.steps) + " |", "|---|" + "---|" * len(args.steps)]
    for method in METHODS:
        cells = [mean_std(per_seed(method, lambda rows, s=s: statistics.mean(r["history"][s]["test_acc"] for r in rows)))
                 for s in args.steps]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", f"Distinct genotypes over the {args.tasks} held-out tasks:", "",
              "| method | zero-shot | after K=" + str(max(args.steps)) + " |", "|---|---|---|"]
    for method in METHODS:
        zero = per_seed(method, lambda rows: len({r["zero_shot_genotype"] for r in rows}))
        final = per_seed(method, lambda rows: len({r["final_genotype"] for r in rows}))
        lines.append(f"| {method} | {mean_std(zero)} | {mean_std(final)} |")
    zero_shot = [r["zero_shot_seconds"] for r in results if r["method"] == "taskdarts"]
    darts = [r["adapt_seconds"] for r in results if r["method"] == "darts"]
    lines += ["", "Wall-clock seconds per task (median):", "",
              f"- TaskDARTS zero-shot (embed, controller, derive): {statistics.median(zero_shot):.3f}",
              f"- DARTS search of {max(args.steps)} steps from scratch: {statistics.median(darts):.1f}"]
    if meta_seconds:
        lines.append(f"- meta-training, once per seed and method ({args.meta_steps} meta-steps): "
                     f"{statistics.median(meta_seconds.values()):.0f}")
    return lines


if __name__ == "__main__":
    main()
