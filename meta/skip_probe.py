"""The skip probe: a check a training-free teacher search ends with (`--teacher-probe-epochs E`).

A training-free search cannot see a parameter-free path: on the validation family NASWOT and synflow score a skip
connection from the cell's input to its output below a convolution in 32 of 32 conv-only cells, where the table's
columns rank it first in 27-31 (benchmarks/proxy_alignment.py, at commit 94710b7; a withdrawn study). The probe trains
the cell and each variant with one edge turned into a skip connection for E epochs at the space's full depth on the
teacher's images and keeps the best.
It works in spaces whose cells are one op per edge (`SearchSpace.one_op_per_edge`: NAS-Bench-201).
"""
from __future__ import annotations

from typing import Any

from image_sets import ImageData, split_indices
from search_spaces import SearchSpace
from supernet.retrain import RetrainConfig, retrain_in_memory

SKIP = "skip_connect"


def probe_accuracy(space: SearchSpace, genotype: Any, train: ImageData, test: ImageData, epochs: int, layers: int,
                   init_channels: int, seed: int, device: str) -> float:
    """Test accuracy of the genotype's network after `epochs` epochs (the space's recipe, batch 64): the probe's
    short training."""
    config = RetrainConfig(genotype=space.to_text(genotype), epochs=epochs, layers=layers, init_channels=init_channels,
                           batch_size=64, seed=seed, channels_last=False, device=device)
    return float(retrain_in_memory(config, train, test)["test_acc"])


def skip_probe(space: SearchSpace, genotype: Any, data: ImageData, epochs: int, layers: int, init_channels: int,
               seed: int, device: str) -> tuple[Any, list[dict[str, Any]]]:
    """The genotype or one of its one-skip variants (one edge's op replaced by skip_connect), whichever tests best
    after `epochs` epochs of training at `layers` cells per stage on a seeded 80/20 split of `data` (a tie keeps the
    genotype). Returns the winner and every trial: edge (None for the genotype itself), genotype text, accuracy."""
    train_index, test_index = split_indices(len(data), (0.8, 0.2), seed)
    train, test = data.subset(train_index), data.subset(test_index)
    ops = space.edge_ops(genotype)
    candidates: list[tuple[int | None, Any]] = [(None, genotype)]
    candidates += [(edge, space.with_edge_ops(ops[:edge] + (SKIP,) + ops[edge + 1:]))
                   for edge, op in enumerate(ops) if op != SKIP]
    trials = [{"edge": edge, "genotype": space.to_text(candidate), "accuracy": round(
        probe_accuracy(space, candidate, train, test, epochs, layers, init_channels, seed, device), 6)}
              for edge, candidate in candidates]
    best = max(range(len(trials)), key=lambda k: trials[k]["accuracy"])  # the first of equals: the genotype
    return candidates[best][1], trials


def changed_edges(space: SearchSpace, before: Any, after: Any) -> list[tuple[int, str]]:
    """(edge, new op) of every edge the probe changed."""
    return [(edge, new) for edge, (old, new) in enumerate(zip(space.edge_ops(before), space.edge_ops(after)))
            if old != new]


def probed_weights(space: SearchSpace, weights: dict[str, list[list[float]]], before: Any, after: Any
                   ) -> dict[str, list[list[float]]]:
    """A teacher's op weights with every edge the probe changed set to one-hot on its new op."""
    (cell_type,) = space.cell_types  # one op per edge: a single cell type
    rows = [list(row) for row in weights[cell_type]]
    for edge, new in changed_edges(space, before, after):
        rows[edge] = [float(op == new) for op in space.ops]
    return {cell_type: rows}
