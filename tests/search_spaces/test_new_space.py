"""A third search space added in this one file, as a user would add one: a SearchSpace subclass, its supernet and its
discrete network, one `register_space` call. Search, derive, retrain, inspect and visualize then work on it through
the command line, which proves that nothing outside the registry assumes the space is DARTS or NAS-Bench-201."""
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

from run_kit import InputError
from search_spaces import CellDiagram, SearchSpace
from search_spaces.operations import NB201_OPS
from supernet.model import mixed_edges, relax, walk_mixed
from supernet.relaxation import SoftmaxRelaxation
from supernet.skeleton import cell_walk, stem
from supernet.spaces import SPACES, RetrainRecipe, SpaceEntry, get_space, load_genotype, register_space
from tests.helpers import run_cli

OPS = ("none", "skip_connect", "nor_conv_3x3")
NODE_INPUTS = ((0,), (0, 1))  # node 1 reads the input, node 2 the input and node 1: 3 edges


@dataclass(frozen=True)
class ToyGenotype:
    ops: tuple[str, ...]


class ToySpace(SearchSpace):
    name = "toy"
    ops = OPS
    cell_types = ("cell",)
    num_edges = 3
    num_reductions = 1
    node_inputs = NODE_INPUTS
    text_form = "toy:op,op,op string"

    def owns(self, genotype: Any) -> bool:
        return isinstance(genotype, ToyGenotype)

    def recognizes(self, text: str) -> bool:
        return text.startswith("toy:")

    def derive_from_weights(self, weights: Mapping[str, torch.Tensor]) -> ToyGenotype:
        return ToyGenotype(tuple(self.ops[k] for k in weights["cell"].argmax(-1).tolist()))

    def logits_of(self, genotype: ToyGenotype, strength: float = 10.0) -> dict[str, torch.Tensor]:
        logits = torch.zeros(self.num_edges, len(self.ops))
        for row, op in enumerate(self.validate(genotype).ops):
            logits[row, self.ops.index(op)] = strength
        return {"cell": logits}

    def validate(self, genotype: Any) -> ToyGenotype:
        if not isinstance(genotype, ToyGenotype) or len(genotype.ops) != self.num_edges:
            raise InputError(f"not a toy genotype: {genotype!r}")
        for op in genotype.ops:
            self.check_op(op)
        return genotype

    def random_genotype(self, generator: torch.Generator) -> ToyGenotype:
        return ToyGenotype(tuple(self.ops[k] for k in torch.randint(len(self.ops), (3,), generator=generator)))

    def to_text(self, genotype: ToyGenotype) -> str:
        return "toy:" + ",".join(self.validate(genotype).ops)

    def from_text(self, text: str) -> ToyGenotype:
        return self.validate(ToyGenotype(tuple(text.strip()[len("toy:"):].split(","))))

    def to_json(self, genotype: ToyGenotype) -> dict:
        return {"space": self.name, "ops": list(self.validate(genotype).ops)}

    def from_json(self, data: Mapping[str, Any]) -> ToyGenotype:
        return self.validate(ToyGenotype(tuple(data["ops"])))

    def diagrams(self, genotype: ToyGenotype) -> list[CellDiagram]:
        edges = [("0", "1", genotype.ops[0]), ("0", "2", genotype.ops[1]), ("1", "2", genotype.ops[2])]
        return [CellDiagram("cell", edges, {"0": (0.0, 0.0), "1": (1.0, 0.9), "2": (2.0, 0.0)}, self.to_text(genotype))]


class ToySupernet(nn.Module):
    """stem, `layers` search cells, one 2x2 max-pool (the space's one reduction), pooling, linear."""

    def __init__(self, space, num_classes, in_channels=1, C=4, layers=1, relaxation=None, partial=1, recompute=False,
                 precision="fp32"):
        super().__init__()
        self.space, self.relaxation = space, relaxation or SoftmaxRelaxation()
        self.stem = stem(in_channels, C)
        self.cells = nn.ModuleList(mixed_edges(NB201_OPS, space.ops, C, [1, 1, 1], False, partial)
                                   for _ in range(layers))
        self.reduce, self.pool, self.classifier = nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Linear(C, num_classes)

    def forward(self, x, logits, relaxation=None):
        w = relax(self.space, relaxation or self.relaxation, logits, self.training)["cell"]
        h = self.stem(x)
        for edges in self.cells:
            h = walk_mixed(edges, NODE_INPUTS, [h], w)[-1]
        return self.classifier(self.pool(self.reduce(h)).flatten(1))


class ToyNetwork(nn.Module):
    def __init__(self, genotype, num_classes, in_channels, C, layers, auxiliary=False, image_size=32, precision="fp32"):
        super().__init__()
        self.stem = stem(in_channels, C)
        self.cells = nn.ModuleList(nn.ModuleList(NB201_OPS[op](C, 1, True) for op in genotype.ops)
                                   for _ in range(layers))
        self.reduce, self.pool, self.classifier = nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Linear(C, num_classes)

    def forward(self, x):
        h = self.stem(x)
        for ops in self.cells:
            h = cell_walk([h], NODE_INPUTS, lambda k, state, ops=ops: ops[k](state))[-1]
        return self.classifier(self.pool(self.reduce(h)).flatten(1)), None


@pytest.fixture
def toy_space():
    register_space(SpaceEntry(ToySpace(), ToySupernet, ToyNetwork, lambda C, layers: [(C, 1)] * layers,
                              RetrainRecipe(lr=0.05, weight_decay=0.0, nesterov=False, drop_path_prob=0.0,
                                            batch_size=32, grad_clip=5.0),
                              {"layers": 2, "init_channels": 8}))
    yield get_space("toy")
    SPACES.pop("toy")


def test_a_new_space_searches_derives_retrains_inspects_and_draws(toy_space, tmp_path):
    search = tmp_path / "search"
    code, stdout, stderr = run_cli("search", "--space", "toy", "--epochs", "2", "--layers", "1", "--init-channels",
                                   "4", "--batch-size", "32", "--no-progress", "--out", str(search))
    assert code == 0, stderr
    genotype = toy_space.from_json(json.loads(stdout)["genotype"])
    assert load_genotype(str(search)) == (toy_space, genotype)

    code, stdout, stderr = run_cli("derive", str(search), "--format", "toy")
    assert code == 0 and stdout.strip() == toy_space.to_text(genotype), stderr

    code, stdout, stderr = run_cli("retrain", "--genotype", str(search), "--epochs", "1", "--layers", "1",
                                   "--init-channels", "4", "--no-progress", "--out", str(tmp_path / "retrain"))
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["space"] == "toy" and 0 <= result["test_acc"] <= 1 and result["batch_size"] == 32  # its recipe

    code, stdout, stderr = run_cli("inspect", toy_space.to_text(genotype))
    assert code == 0, stderr
    inspected = json.loads(stdout)
    assert (inspected["layers"], inspected["init_channels"]) == (2, 8) and inspected["params_m"] > 0

    code, stdout, stderr = run_cli("inspect", "random", "--space", "toy", "--seed", "1")
    assert code == 0 and json.loads(stdout)["genotype"].startswith("toy:"), stderr

    code, stdout, stderr = run_cli("visualize", "toy:skip_connect,nor_conv_3x3,none", "--out", str(tmp_path / "cells"))
    assert code == 0 and (tmp_path / "cells" / "cell.png").stat().st_size > 0, stderr

    code, stdout, stderr = run_cli("search", "--space", "toy", "--proxy", "naswot", "--candidates", "3", "--layers",
                                   "1", "--init-channels", "4", "--no-progress", "--out", str(tmp_path / "naswot"))
    assert code == 0 and json.loads(stdout)["genotype"]["space"] == "toy", stderr


def test_an_unregistered_space_fails_loudly(tmp_path):
    code, _, stderr = run_cli("search", "--space", "toy", "--out", str(tmp_path / "run"))
    assert code == 2 and "invalid choice: 'toy'" in stderr
    with pytest.raises(InputError, match=re.escape("unknown search space 'toy'; known: darts, nb201")):
        get_space("toy")
    with pytest.raises(InputError, match="unknown search space 'toy'"):
        load_genotype('{"space": "toy", "ops": ["none", "none", "none"]}')
    with pytest.raises(InputError, match="cannot read genotype 'toy:none,none,none'"):  # no space reads its text
        load_genotype("toy:none,none,none")
