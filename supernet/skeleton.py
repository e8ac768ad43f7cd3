"""What every network of every space shares, searched or discrete: the cell walk and the stem. The macro skeletons
of each space live with its networks (darts_networks.py, nb201_networks.py), where its supernet and its discrete
network take them from one place, so both lay out cells identically."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


def cell_walk(states: list[torch.Tensor], node_inputs: Sequence[Sequence[int]],
              edge: Callable[[int, torch.Tensor], torch.Tensor]) -> list[torch.Tensor]:
    """Every cell of every space, searched or discrete: node i = sum over its inputs j of edge_k(state j).

    `states` holds the cell's inputs; `node_inputs[i]` lists the states node i reads; edges are numbered k = 0, 1, ...
    in that order (the logits-row order). Returns `states` with every node appended.
    """
    k = 0
    for inputs in node_inputs:
        total = None
        for j in inputs:
            h = edge(k, states[j])
            total = h if total is None else total + h
            k += 1
        states.append(total)
    return states


def stem(in_channels: int, c_out: int) -> nn.Sequential:
    """conv 3x3 + BN, the stem of the DARTS and the NAS-Bench-201 networks."""
    return nn.Sequential(nn.Conv2d(in_channels, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))
