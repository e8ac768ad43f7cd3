"""TaskEncoder: task graph -> task embedding z.

H_0 = X,  H_{l+1} = ReLU(GCNConv_l(H_l, A))   (GCNConv: D^-1/2 (A + I) D^-1/2 H W)
u = W_out [mean_pool(H_L) ; max_pool(H_L)] + b_out
z = (u - m) / sqrt(v + 1e-5)        m, v: running mean and variance of u over the tasks seen in training
Pooling over nodes makes z independent of node order; batches of graphs go through torch-geometric's `Batch`.
The standardisation matters: embeddings of different tasks share a large common part (cosine ~0.998 at
initialisation), which would leave the controller blind to what tells tasks apart.
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
        self.standardize = RunningStandardizer(embed_dim)
        self.embed_dim = embed_dim

    def forward(self, batch: Batch) -> torch.Tensor:
        h = batch.x
        for conv in self.convs:
            h = torch.relu(conv(h, batch.edge_index))
        pooled = torch.cat([global_mean_pool(h, batch.batch), global_max_pool(h, batch.batch)], dim=1)
        return self.standardize(self.out(pooled))


class RunningStandardizer(nn.Module):
    """(u - m) / sqrt(v + eps) with exponential running estimates of m and v, updated (without gradient) from every
    training batch before use. v is the spread of u around the running mean m, not within the batch: a meta-batch
    of a few tasks often holds one kind of task only, and its own spread would then blow z up. Unlike BatchNorm, a
    task's z never depends on the other tasks of its batch, and a batch of one task works."""

    def __init__(self, dim: int, momentum: float = 0.05, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                rate = 1.0 if self.seen == 0 else self.momentum
                self.mean.lerp_(u.mean(0), rate)
                if len(u) > 1 or self.seen > 0:
                    self.var.lerp_(((u - self.mean) ** 2).mean(0), rate)
                self.seen += len(u)
        return (u - self.mean) / torch.sqrt(self.var + self.eps)


class ConstantEmbedding(nn.Module):
    """The `--no-encoder` ablation (MetaNAS-style): one learned embedding shared by every task."""

    def __init__(self, embed_dim: int = 32):
        super().__init__()
        self.z = nn.Parameter(torch.zeros(embed_dim))
        self.embed_dim = embed_dim

    def forward(self, num_tasks: int) -> torch.Tensor:
        return self.z.expand(num_tasks, -1)
