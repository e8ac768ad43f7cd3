#!/usr/bin/env python
"""How well an imitation meta-run reproduces its own targets: for episodes of every teacher's classes (meta-train
classes, the episodes it was fitted on), the share of edges and of whole cells where the zero-shot cell takes the
most likely op of the teacher's target (its cell, or with `--imitate-pool dataset` its data set's pooled vote).

A diagnostic of the fit, not a validation score: these are training classes. It tells whether the controller can
give each data set its own target, which the held-out families can only show if it does.

    python benchmarks/imitation_fit.py runs/meta-natural --episodes 5
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from collections import defaultdict

import torch

from meta.controller import target_matches
from meta.model import load_meta
from meta.objectives import Imitate
from run_kit import InputError


def imitation_fit(run: str, episodes: int, seed: int = 0) -> dict[str, dict]:
    """Per data set: {"cell_fit", "edge_fit"} over `episodes` episodes of each of its teachers' classes, and "targets":
    the distinct cells its teachers' targets put first (one with pooled targets). The targets are rebuilt from the
    run's config and bank exactly as meta-training built them."""
    meta = load_meta(run, torch.device("cpu")).eval()
    if meta.config.meta.objective != "imitate":
        raise InputError(f"{run} was not meta-trained by imitation (objective {meta.config.meta.objective})")
    meta_train, _, split = meta.config.distributions()
    objective = Imitate(meta.config, meta, meta_train, split, torch.device("cpu"))
    rng = random.Random(seed)
    cells, edges, targets = defaultdict(list), defaultdict(list), defaultdict(set)
    with torch.no_grad():
        for distribution, target, dataset in zip(objective.episodes, objective.targets, objective.datasets):
            name = meta.config.task.tasks[dataset]
            targets[name].add(meta.space.to_text(meta.space.derive_from_weights(target)))
            for _ in range(episodes):
                logits = meta.start(meta.embed([distribution.sample(rng)])[0]).logits
                hits = target_matches({k: v[None] for k, v in logits.items()}, [target])[0].float()
                edges[name].append(float(hits.mean()))
                cells[name].append(float(hits.min()))
    return {name: {"cell_fit": round(sum(cells[name]) / len(cells[name]), 3),
                   "edge_fit": round(sum(edges[name]) / len(edges[name]), 3), "targets": sorted(targets[name])}
            for name in cells}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="meta-train run directory (objective imitate)")
    parser.add_argument("--episodes", type=int, default=5, help="episodes per teacher")
    parser.add_argument("--seed", type=int, default=0, help="episode draws")
    args = parser.parse_args()
    try:
        if args.episodes < 1:
            raise InputError(f"--episodes must be at least 1, got {args.episodes}")
        fit = imitation_fit(args.run, args.episodes, args.seed)
    except InputError as err:
        print(f"imitation_fit.py: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps({"run": args.run, "episodes_per_teacher": args.episodes,
                      "cell_fit": round(sum(f["cell_fit"] for f in fit.values()) / len(fit), 3),
                      "edge_fit": round(sum(f["edge_fit"] for f in fit.values()) / len(fit), 3),
                      "per_dataset": fit}, indent=1))


if __name__ == "__main__":
    main()
