"""TaskEncoder: task graph -> task embedding z.

H_0 = X,  H_{l+1} = ReLU(GCNConv_l(H_l, A))   (GCNConv: D^-1/2 (A + I) D^-1/2 H W)
z = W_out [mean_pool(H_L) ; max_pool(H_L)] + b_out
Pooling over nodes makes z independent of node order; batches of graphs go through torch-geometric's `Batch`.
"""
from __future__ import annotations

import torch
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.nn import GCNConv, global_max_pool, global_mean_pool


class TaskEncoder(nn.Module):
    def __init__(self, in_dim: int, hidden: int = 64, embed_dim: int = 32, layers: int = 2):
        super().__init__()
        dims = [in_dim] + [hidden] * layers
        self.convs = nn.ModuleList(GCNConv(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.out = nn.Linear(2 * hidden, embed_dim)
        self.embed_dim = embed_dim

    def forward(self, batch: Batch) -> torch.Tensor:
        h = batch.x
        for conv in self.convs:
            h = torch.relu(conv(h, batch.edge_index))
        pooled = torch.cat([global_mean_pool(h, batch.batch), global_max_pool(h, batch.batch)], dim=1)
        return self.out(pooled)


class ConstantEmbedding(nn.Module):
    """The `--no-encoder` ablation (MetaNAS-style): one learned embedding shared by every task."""

    def __init__(self, embed_dim: int = 32):
        super().__init__()
        self.z = nn.Parameter(torch.zeros(embed_dim))
        self.embed_dim = embed_dim

    def forward(self, num_tasks: int) -> torch.Tensor:
        return self.z.expand(num_tasks, -1)
