#!/usr/bin/env python
"""TaskDARTS vs the MetaNAS-style --no-encoder ablation vs DARTS from scratch, on held-out tasks.

Task distribution (recorded in each meta-run's task_split.json): 5-way episodes, 5 support / 5 query / 10 test images
per class, 28 px grey, from two kinds of data whose DARTS searches prefer different ops (hand-drawn characters and
natural images). Meta-training: 70 % of the Omniglot characters and 5 of the 10 CIFAR-10 classes. Held-out families:
episodes over the other Omniglot characters, over the other 5 CIFAR-10 classes, and over MNIST (a data set never seen
in meta-training), the same number of tasks per family; the same held-out tasks for every method and seed.

For each seed: meta-train TaskDARTS and the ablation (same budget), then adapt every method on every held-out task
with the same inner loop (first-order DARTS steps: weights on support, logits on query) and record the supernet's
query and test accuracy after 0, 5, 20, 50 steps. DARTS from scratch starts from a fresh supernet and near-uniform
logits (1e-3 N(0, 1)). Numbers: mean +- std over seeds of the mean over tasks. Whether task conditioning matters is
shown three ways: distinct zero-shot genotypes (over all held-out tasks and within each family), each family's mean
op probabilities next to what a DARTS search on that family's tasks prefers, and, for the CIFAR-10 tasks, the
NAS-Bench-201 CIFAR-10 accuracy of the proposed cells (table lookup, when the table is there).
`--no-initializer-ablation` adds TaskDARTS without the weight initializer (task-conditioned logits only), to tell
what the conditioned architecture does from what the conditioned weights do. Finished meta-runs in --out are reused.

    python benchmarks/meta_vs_darts.py --out runs/meta_vs_darts            # about 45 min on 2 CPU cores
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import torch

from evaluation.compare import mean_std
from evaluation.nb201_table import NB201Table
from meta.adapt import adapt
from meta.meta_train import load_meta, run_meta_train
from meta.model import MetaConfig
from meta.tasks import EpisodeDistribution
from run_kit.run_dir import RunDir
from supernet.model import ArchLogits, create_supernet

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"

# meta-trained methods: name -> (use_encoder, use_initializer); "darts" (from scratch) is always run
META_METHODS = {"taskdarts": (True, True), "no-encoder": (False, True), "no-initializer": (True, False)}


def meta_config(args, seed: int, use_encoder: bool, use_initializer: bool = True) -> MetaConfig:
    return MetaConfig(space=args.space, tasks=[f"npz:{args.omniglot}", f"folder:{args.cifar}"],
                      test_tasks=[f"npz:{args.mnist}"], ways=5, shots=5, queries=5, outers=5, tests=10, image_size=28,
                      channels=1, max_classes=5, layers=args.layers, init_channels=args.init_channels,
                      meta_steps=args.meta_steps, meta_batch=4, inner_steps=args.inner_steps, inner_batch=25,
                      probe_tasks=8, log_every=10, seed=seed, use_encoder=use_encoder,
                      use_initializer=use_initializer, device="cpu")


def family(spec: str) -> str:
    return Path(spec.split(":", 1)[-1]).stem.split("_")[0]


def held_out_tasks(config: MetaConfig, per_family: int) -> list[tuple[str, object]]:
    """`per_family` episodes from each held-out pool: the meta-test classes of the split every meta-run of this
    benchmark used (`config.split_seed`, the same for all training seeds), episode draws from a fixed seed."""
    _, meta_test, _ = config.distributions()
    rng = random.Random(12345)
    tasks = []
    for pool in meta_test.pools:
        episodes = EpisodeDistribution([pool], config.ways, config.split_sizes)
        tasks += [(family(pool.spec), episodes.sample(rng)) for _ in range(per_family)]
    return tasks


def op_probabilities(logits: dict[str, torch.Tensor]) -> list[list[float]]:
    """softmax over ops of every edge of the (single) NAS-Bench-201 cell, or of the first DARTS cell type."""
    value = logits["cell"] if "cell" in logits else next(iter(logits.values()))
    return torch.softmax(value.detach().float(), dim=-1).tolist()


def mean_std3(values) -> str:
    return mean_std(values, ".3f", ".3f")


def run_method(method, meta, config, task, steps, seed):
    started = time.time()
    if method == "darts":
        torch.manual_seed(seed)
        fresh = create_supernet(meta.space, config.max_classes, config.channels, config.init_channels, config.layers)
        weights = {n: p.detach() for n, p in fresh.named_parameters()}
        buffers = {n: b.detach().clone() for n, b in fresh.named_buffers()}
        logits = {k: v.detach() for k, v in ArchLogits.random(meta.space)().items()}
    else:
        meta.eval()
        with torch.no_grad():
            z = meta.embed([task])[0]
            logits, weights = meta.start(z)
        buffers = {n: b.detach().clone() for n, b in meta.supernet.named_buffers()}
    zero_shot = meta.space.to_text(meta.space.derive(logits))
    zero_shot_seconds = time.time() - started
    work = create_supernet(meta.space, config.max_classes, config.channels, config.init_channels, config.layers)
    started = time.time()
    adapted = adapt(work, weights, buffers, logits, task, max(steps), config, seed, "relaxed", record_at=steps)
    final_logits = {k: v.detach() for k, v in adapted.logits().items()}
    return {"history": adapted.history, "zero_shot_genotype": zero_shot,
            "final_genotype": meta.space.to_text(meta.space.derive(final_logits)),
            "zero_shot_probs": op_probabilities(logits), "final_probs": op_probabilities(final_logits),
            "zero_shot_seconds": zero_shot_seconds, "adapt_seconds": time.time() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--omniglot", default=str(SHARED / "omniglot_small.npz"))
    parser.add_argument("--cifar", default=str(SHARED / "cifar10_test"), help="CIFAR-10 class-per-folder images")
    parser.add_argument("--mnist", default=str(SHARED / "mnist_test.npz"))
    parser.add_argument("--nb201-table", default=str(SHARED / "nb201" / "nats_bench.csv"),
                        help="NATS-Bench topology CSV for the CIFAR-10 lookup (skipped if missing)")
    parser.add_argument("--space", default="nb201", choices=("nb201", "darts"))
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--init-channels", type=int, default=8)
    parser.add_argument("--meta-steps", type=int, default=50)
    parser.add_argument("--inner-steps", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks-per-family", type=int, default=4)
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 5, 20, 50])
    parser.add_argument("--no-initializer-ablation", action="store_true",
                        help="also meta-train TaskDARTS with --no-initializer (task-conditioned logits only)")
    parser.add_argument("--out", default="runs/meta_vs_darts")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta_methods = ["taskdarts", "no-encoder"] + (["no-initializer"] if args.no_initializer_ablation else [])
    methods = [*meta_methods, "darts"]
    results, meta_seconds = [], {}
    tasks = held_out_tasks(meta_config(args, 0, True), args.tasks_per_family)
    for seed in range(args.seeds):
        metas = {}
        for method in meta_methods:
            run_dir = out / f"{method}-seed{seed}"
            config = meta_config(args, seed, *META_METHODS[method])
            checkpoint = run_dir / "checkpoint.pt"
            if not checkpoint.exists() or torch.load(checkpoint, weights_only=True)["step"] < args.meta_steps:
                run_meta_train(config, RunDir(run_dir), resume=checkpoint.exists(), progress=False)
            steps = torch.load(checkpoint, weights_only=True)["metrics"]
            meta_seconds[f"{method}-seed{seed}"] = sum(row["seconds"] for row in steps)  # also for finished runs
            metas[method] = load_meta(str(run_dir), torch.device("cpu"))
        for method in methods:
            meta = metas["no-encoder" if method == "darts" else method]
            for k, (fam, task) in enumerate(tasks):
                row = run_method(method, meta, meta.config, task, args.steps, seed * 1000 + k)
                results.append({"seed": seed, "family": fam, "task": task.name, "method": method, **row})
                print(f"seed {seed} {method:<11} {fam:<8} task {k:>2} query acc "
                      + " ".join(f"{s}:{row['history'][s]['query_acc']:.2f}" for s in args.steps)
                      + f"  zero-shot {row['zero_shot_genotype']}", flush=True)
    (out / "results.json").write_text(json.dumps({"args": vars(args), "meta_train_seconds": meta_seconds,
                                                  "results": results}, indent=1))
    table = NB201Table.load(args.nb201_table) if args.space == "nb201" and Path(args.nb201_table).is_file() else None
    lines = report(results, args, methods, meta_seconds, metas["taskdarts"].space, table)
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def report(results, args, methods, meta_seconds, space, table) -> list[str]:
    seeds = sorted({r["seed"] for r in results})
    families = list(dict.fromkeys(r["family"] for r in results))
    top = max(args.steps)

    def per_seed(method, fn, fam=None):
        return [fn([r for r in results if r["method"] == method and r["seed"] == s and fam in (None, r["family"])])
                for s in seeds]

    def accuracy_table(title, key, fam=None):
        rows = ["", title, "", "| method | " + " | ".join(f"K={s}" for s in args.steps) + " |",
                "|---|" + "---|" * len(args.steps)]
        for method in methods:
            cells = [mean_std3(per_seed(method, lambda rs, s=s: statistics.mean(r["history"][s][key] for r in rs), fam))
                     for s in args.steps]
            rows.append(f"| {method} | " + " | ".join(cells) + " |")
        return rows

    count = len(results) // len(seeds) // len(methods)
    lines = [f"Held-out tasks: {count} (5-way; {args.tasks_per_family} each from {', '.join(families)}), seeds: "
             f"{len(seeds)}; {args.space} supernet C={args.init_channels}, {args.layers} cell(s) per stage; "
             f"mean ± std over seeds."]
    lines += accuracy_table("Supernet query accuracy after K adaptation steps:", "query_acc")
    lines += accuracy_table("Supernet test-split accuracy (images used neither for weights nor logits):", "test_acc")
    for fam in families:
        lines += accuracy_table(f"Test-split accuracy, {fam} tasks only:", "test_acc", fam)
    lines += ["", f"Distinct genotypes over the {count} held-out tasks (and within each family, zero-shot):", "",
              "| method | zero-shot | " + " | ".join(f"zero-shot, {f}" for f in families) + f" | after K={top} |",
              "|---|---|" + "---|" * len(families) + "---|"]
    def distinct(key):
        return lambda rows: len({r[key] for r in rows})

    for method in methods:
        cells = [mean_std3(per_seed(method, distinct("zero_shot_genotype")))]
        cells += [mean_std3(per_seed(method, distinct("zero_shot_genotype"), f)) for f in families]
        cells.append(mean_std3(per_seed(method, distinct("final_genotype"))))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    ops = space.ops
    lines += ["", "Mean op probability (over edges, tasks and seeds) by family: the meta-learned zero-shot logits next "
              f"to where a DARTS search from scratch ends after {top} steps on the same tasks:", "",
              "| family | source | " + " | ".join(ops) + " |", "|---|---|" + "---|" * len(ops)]
    for fam in families:
        sources = [(m, "zero_shot_probs", f"{m} zero-shot") for m in methods if m != "darts"]
        for method, key, label in sources + [("darts", "final_probs", f"DARTS after {top} steps")]:
            probs = torch.tensor([r[key] for r in results if r["method"] == method and r["family"] == fam])
            lines.append(f"| {fam} | {label} | " + " | ".join(f"{v:.3f}" for v in probs.mean((0, 1)).tolist()) + " |")
    if table is not None and "cifar10" in families:
        lines += ["", "NAS-Bench-201 CIFAR-10 test accuracy (%, 200 epochs, table lookup) of the cells proposed for "
                  "the held-out CIFAR-10 tasks:", "", f"| method | zero-shot | after K={top} |", "|---|---|---|"]
        for method in methods:
            cells = [mean_std3(per_seed(method, lambda rows, key=key: statistics.mean(
                table.lookup(space.from_text(r[key])).cifar10 for r in rows), "cifar10"))
                for key in ("zero_shot_genotype", "final_genotype")]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    zero_shot = [r["zero_shot_seconds"] for r in results if r["method"] == "taskdarts"]
    darts = [r["adapt_seconds"] for r in results if r["method"] == "darts"]
    lines += ["", "Wall-clock seconds per task (median):", "",
              f"- TaskDARTS zero-shot (embed, controller, derive): {statistics.median(zero_shot):.3f}",
              f"- DARTS search of {top} steps from scratch: {statistics.median(darts):.1f}"]
    if meta_seconds:
        lines.append(f"- meta-training, once per seed and method ({args.meta_steps} meta-steps, sum of step times): "
                     f"{statistics.median(meta_seconds.values()):.0f}")
    return lines


if __name__ == "__main__":
    main()
