#!/usr/bin/env python
"""Does the zero-shot proposal depend on the data it is given? The input-dependence check of a meta-model.

Results: withdrawn (no raw results were kept; docs/results/withdrawn.md).

For each seed's TaskDARTS imitation meta-run under --out (benchmarks/meta_zero_shot.py), the zero-shot proposal
(`search --meta RUN`: embedding of the data set's first half, controller, the space's argmax) for data sets that
should get different cells and for inputs that carry no task at all:
- CIFAR-10 training images; the held-out MNIST, GTSRB and Tiny ImageNet classes of the run's split;
- CIFAR-10 with its labels shuffled (seeded): the same images, no learnable task;
- uniform noise images with random labels, 10 classes; one grey image repeated, 10 random labels.
Reported per seed: each input's cell, the mean L1 distance of its op distribution (softmax of the logits, mean over
edges) to CIFAR-10's, and how many distinct cells the inputs got. A proposal that is the same cell for noise as for
CIFAR-10 does not read the task. The CIFAR-10 table accuracy of each cell is shown for orientation only.

    python benchmarks/proposal_dependence.py --seeds 3 --out runs/meta-zero-shot     # seconds
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import meta_zero_shot as zs
import torch

from evaluation.nb201_table import NB201Table
from image_sets import ImageData, load_dataset
from meta.model import load_meta
from meta.tasks import cap_per_class, match_format, search_task
from meta.teacher_job import class_images


def inputs(config, images_per_class: int) -> dict[str, ImageData]:
    """name -> images in the meta-model's format."""
    task = config.task
    cifar = load_dataset(f"npz:{zs.SHARED / 'cifar10_train.npz'}", "train")
    cifar = cifar.subset(cap_per_class(cifar.y, images_per_class, 0))
    out = {"cifar10": cifar}
    _, meta_test, _ = config.distributions()
    for family in ("mnist", "gtsrb", "tinyimagenet"):
        pool = next(pool for pool in meta_test.pools if family in pool.spec)
        out[f"held-out {family}"] = class_images(pool, pool.labels(), images_per_class * len(pool.labels()), 0)
    generator = torch.Generator().manual_seed(0)
    shuffled = cifar.y[torch.randperm(len(cifar.y), generator=generator)]
    out["cifar10, labels shuffled"] = ImageData(cifar.x, shuffled, cifar.classes, "cifar10-shuffled")
    n, size = len(cifar), cifar.image_size
    labels = torch.randint(10, (n,), generator=generator)
    noise = torch.randint(256, (n, 3, size, size), generator=generator, dtype=torch.uint8)
    classes = [str(k) for k in range(10)]
    out["uniform noise, random labels"] = ImageData(noise, labels, classes, "noise")
    grey = torch.full((n, 3, size, size), 128, dtype=torch.uint8)
    out["one grey image, random labels"] = ImageData(grey, labels, classes, "grey")
    return {name: match_format(data, task.channels, task.image_size) for name, data in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--images-per-class", type=int, default=500)
    parser.add_argument("--table", default=str(zs.SHARED / "nb201" / "nats_bench.csv"))
    parser.add_argument("--out", default="runs/meta-zero-shot")
    args = parser.parse_args()
    out = Path(args.out)
    table = NB201Table.load(args.table) if Path(args.table).is_file() else None
    results, lines = [], ["| seed | input | cell | L1 to CIFAR-10's op distribution | CIFAR-10 table acc |",
                          "|---|---|---|---|---|"]
    data = None
    for seed in range(args.seeds):
        run = out / f"seed{seed}" / "taskdarts"
        if not (run / "checkpoint.pt").is_file():
            sys.exit(f"proposal_dependence.py: error: no finished meta-run at {run}")
        meta = load_meta(str(run), torch.device("cpu"))
        meta.eval()
        if data is None:
            data = inputs(meta.config, args.images_per_class)
        probs = {}
        for name, images in data.items():
            with torch.no_grad():
                logits = meta.start(meta.embed([search_task(images, seed, name)])[0]).logits
            probs[name] = torch.softmax(logits["cell"], -1)
            cell = zs.SPACE.derive(logits)
            results.append({"seed": seed, "input": name, "cell": zs.SPACE.to_text(cell),
                            "l1_to_cifar10": round(float((probs[name] - probs["cifar10"]).abs().sum(-1).mean()), 4),
                            "table_cifar10": None if table is None else table.lookup(cell).cifar10})
        for row in results[-len(data):]:
            acc = "" if row["table_cifar10"] is None else f"{row['table_cifar10']:.2f}"
            lines.append(f"| {seed} | {row['input']} | {row['cell']} | {row['l1_to_cifar10']:.4f} | {acc} |")
        distinct = len({row["cell"] for row in results[-len(data):]})
        lines.append(f"| {seed} | distinct cells over the {len(data)} inputs | {distinct} | | |")
    (out / "proposal-dependence.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "proposal-dependence.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
