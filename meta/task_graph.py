"""The task graph: a torch-geometric `Data` with one node per class and one node per task attribute.

Class node c:      [f_c, s_c, 0_A, 0, 1]      f_c = mean over the class's support images of a small CNN's features
                                              (trained with the encoder), s_c = (pixel mean, pixel std) of the class
Attribute node a:  [0_F, 0_2, onehot_A(a), v_a, 0]   v_a = the attribute's normalised value
Edges (both directions): every attribute node <-> every class node; every class node <-> its k most similar
classes (cosine similarity of f, detached). Class order and sample order do not change the graph up to relabelling.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Data


class TaskStats(NamedTuple):
    """What the attributes are computed from: a task's support sample."""

    num_classes: int
    images_per_class: float  # mean over classes
    image_size: int
    channels: int
    pixel_mean: float
    pixel_std: float


@dataclass(frozen=True)
class TaskAttribute:
    name: str
    value: Callable[[TaskStats], float]  # normalised to about [0, 1] for the tasks TaskDARTS meets


ATTRIBUTES = (
    TaskAttribute("num_classes", lambda t: math.log(t.num_classes) / math.log(100)),
    TaskAttribute("images_per_class", lambda t: math.log(t.images_per_class) / math.log(1000)),
    TaskAttribute("image_size", lambda t: t.image_size / 64),
    TaskAttribute("channels", lambda t: t.channels / 3),
    TaskAttribute("pixel_mean", lambda t: t.pixel_mean),
    TaskAttribute("pixel_std", lambda t: t.pixel_std),
)
"""The task attributes, one node each, in node order: each declared once with how it is computed."""


class ClassFeatureExtractor(nn.Module):
    """Three conv-GroupNorm(1 group)-ReLU blocks and global pooling; grey images are repeated to 3 channels.

    GroupNorm, not BatchNorm: an image's features must not depend on which other images share its batch, or the
    embedding of a task would change between meta-training (episodes, train-mode statistics) and deployment
    (a whole data set, another batch)."""

    def __init__(self, features: int = 32):
        super().__init__()
        blocks, c_in = [], 3
        for c_out in (16, 32, features):
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.GroupNorm(1, c_out),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True)]
            c_in = c_out
        self.body = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.features = features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div(255)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.body((x - 0.5) / 0.25)


class TaskGraphBuilder(nn.Module):
    """Images + labels of a task's support split -> task graph (class features carry gradients)."""

    def __init__(self, features: int = 32, knn: int = 3):
        super().__init__()
        self.extractor = ClassFeatureExtractor(features)
        self.knn = knn
        self.node_dim = features + 2 + len(ATTRIBUTES) + 2

    def forward(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Data:
        device = images.device
        feats = self.extractor(images)
        counts = torch.bincount(labels, minlength=num_classes).clamp_min(1).to(feats.dtype)
        class_feats = torch.zeros(num_classes, feats.shape[1], device=device).index_add(0, labels, feats)
        class_feats = class_feats / counts[:, None]
        pixels = images.float().div(255).flatten(1)
        per_image = torch.stack([pixels.mean(1), pixels.std(1)], dim=1)
        class_stats = torch.zeros(num_classes, 2, device=device).index_add(0, labels, per_image) / counts[:, None]
        n, a = num_classes, len(ATTRIBUTES)
        stats = TaskStats(n, float(counts.mean()), images.shape[-1], images.shape[1], float(pixels.mean()),
                          float(pixels.std()))
        values = torch.tensor([attribute.value(stats) for attribute in ATTRIBUTES], device=device)
        class_nodes = torch.cat([class_feats, class_stats, torch.zeros(n, a + 1, device=device),
                                 torch.ones(n, 1, device=device)], dim=1)
        attribute_nodes = torch.cat([torch.zeros(a, feats.shape[1] + 2, device=device),
                                     torch.eye(a, device=device), values[:, None], torch.zeros(a, 1, device=device)],
                                    dim=1)
        x = torch.cat([class_nodes, attribute_nodes])
        return Data(x=x, edge_index=self._edges(class_feats.detach(), n, a), num_nodes=n + a)

    def _edges(self, class_feats: torch.Tensor, n: int, a: int) -> torch.Tensor:
        device = class_feats.device
        classes = torch.arange(n, device=device)
        attrs = torch.arange(n, n + a, device=device)
        src = [attrs.repeat_interleave(n), classes.repeat(a)]
        k = min(self.knn, n - 1)
        if k > 0:
            unit = F.normalize(class_feats, dim=1)
            similarity = unit @ unit.T
            similarity.fill_diagonal_(-float("inf"))
            neighbours = similarity.topk(k, dim=1).indices
            src += [classes.repeat_interleave(k), neighbours.flatten()]
        first = torch.cat(src[0::2])
        second = torch.cat(src[1::2])
        edges = torch.stack([torch.cat([first, second]), torch.cat([second, first])])
        return torch.unique(edges, dim=1)
