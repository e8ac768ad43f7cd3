"""CellEncoder: a learned map from a cell to what earlier tasks and devices measured of it.

The predictors (meta/accuracy_predictor.py, meta/latency_predictor.py) represent a cell by columns of the tables:
its trained accuracy on each earlier task and the principal components of its latency across earlier devices. Those
columns are data we may not ship. The encoder learns them instead, so that what ships is a model derived from the
tables, not the tables (meta/pretrained.py):

    x(cell) = [onehot(op_1); ...; onehot(op_E)]                       (E edges, O ops: E*O inputs)
    h_0 = x,  h_{l+1} = SiLU(W_l h_l + b_l)   (l < L)
    phi^(cell) = W_out h_L + b_out                                    (one output per learned column)

trained by mean squared error against the columns (each on unit variance). In NAS-Bench-201 each edge has a fixed
place in the cell (edge e joins fixed nodes), so the edge-ordered one-hot code is a complete, injective description of
the cell; a graph network over the DAG would see the same information.
"""
from __future__ import annotations

import torch
from torch import nn


def cell_one_hot(cells: torch.Tensor, num_ops: int) -> torch.Tensor:
    """[cells, edges] op indices -> [cells, edges * ops] edge-ordered one-hot code (float32)."""
    return nn.functional.one_hot(cells.long(), num_ops).flatten(1).float()


class CellEncoder(nn.Module):
    def __init__(self, num_edges: int, num_ops: int, outputs: int, hidden: int = 256, layers: int = 3):
        super().__init__()
        self.num_edges, self.num_ops = num_edges, num_ops
        dims = [num_edges * num_ops] + [hidden] * layers
        self.body = nn.Sequential(*[module for a, b in zip(dims[:-1], dims[1:]) for module in (nn.Linear(a, b),
                                                                                                nn.SiLU())])
        self.out = nn.Linear(hidden, outputs)

    def forward(self, cells: torch.Tensor) -> torch.Tensor:
        """[cells, edges] op indices -> [cells, outputs]."""
        return self.out(self.body(cell_one_hot(cells, self.num_ops)))
