"""The NAS-Bench-201 cell space: 4 nodes, 6 edges, 5 ops, one cell type; 5^6 = 15,625 cells.

A genotype is the benchmark's architecture string, held as one op per edge in the benchmark's edge order
(1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2), so it prints back exactly as parsed.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from run_kit import InputError

from .base import CellDiagram, SearchSpace
from .operations import NB201_OPS

NODES = 4
EDGES = tuple((target, source) for target in range(1, NODES) for source in range(target))
"""(target, source) of each edge, in logits-row order."""
NODE_INPUTS = tuple(tuple(range(target)) for target in range(1, NODES))
"""The nodes each of nodes 1..3 reads: every earlier node."""


@dataclass(frozen=True)
class NB201Genotype:
    """One op per edge, in `EDGES` order."""

    ops: tuple[str, ...]

    def __str__(self) -> str:
        groups = []
        for target in range(1, NODES):
            groups.append("|" + "|".join(f"{self.ops[k]}~{s}" for k, (t, s) in enumerate(EDGES) if t == target) + "|")
        return "+".join(groups)

    def edge(self, target: int, source: int) -> str:
        return self.ops[EDGES.index((target, source))]


_ITEM = re.compile(r"^([A-Za-z0-9_]+)~(\d+)$")


class NB201Space(SearchSpace):
    name = "nb201"
    ops = tuple(NB201_OPS)
    cell_types = ("cell",)
    num_edges = len(EDGES)
    num_reductions = 2
    node_inputs = NODE_INPUTS
    text_form = "NAS-Bench-201 string"
    one_op_per_edge = True

    def owns(self, genotype: Any) -> bool:
        return isinstance(genotype, NB201Genotype)

    def recognizes(self, text: str) -> bool:
        return text.startswith("|")

    def edge_ops(self, genotype: NB201Genotype) -> tuple[str, ...]:
        return self.validate(genotype).ops

    def with_edge_ops(self, ops: Sequence[str]) -> NB201Genotype:
        return self.validate(NB201Genotype(tuple(ops)))

    def diagrams(self, genotype: NB201Genotype) -> list[CellDiagram]:
        """Nodes 0-3 left to right, alternating below and above; `none` edges are not drawn."""
        genotype = self.validate(genotype)
        positions = {str(i): (float(i), 0.9 if i % 2 else -0.9) for i in range(NODES)}
        edges = [(str(s), str(t), op) for (t, s), op in zip(EDGES, genotype.ops) if op != "none"]
        return [CellDiagram("cell", edges, positions, self.to_text(genotype))]

    def derive_from_weights(self, weights: Mapping[str, torch.Tensor]) -> NB201Genotype:
        """Argmax op per edge, `none` included (the benchmark's rule)."""
        best = weights["cell"].argmax(dim=-1).tolist()
        return NB201Genotype(tuple(self.ops[k] for k in best))

    def logits_of(self, genotype: NB201Genotype, strength: float = 10.0) -> dict[str, torch.Tensor]:
        genotype = self.validate(genotype)
        logits = torch.zeros(self.num_edges, len(self.ops))
        for row, op in enumerate(genotype.ops):
            logits[row, self.ops.index(op)] = strength
        return {"cell": logits}

    def validate(self, genotype: Any) -> NB201Genotype:
        if not isinstance(genotype, NB201Genotype):
            raise InputError(f"not a NAS-Bench-201 genotype: {genotype!r}")
        if len(genotype.ops) != self.num_edges:
            raise InputError(f"a NAS-Bench-201 cell has {self.num_edges} edges, got {len(genotype.ops)}")
        for op in genotype.ops:
            self.check_op(op)
        return genotype

    def random_genotype(self, generator: torch.Generator) -> NB201Genotype:
        picks = torch.randint(len(self.ops), (self.num_edges,), generator=generator).tolist()
        return NB201Genotype(tuple(self.ops[k] for k in picks))

    def to_text(self, genotype: NB201Genotype) -> str:
        return str(self.validate(genotype))

    def from_text(self, text: str) -> NB201Genotype:
        """Parse `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`; each node must list every earlier node once, in order."""
        text = text.strip()
        if len(text) > 1000:
            raise InputError(f"a NAS-Bench-201 string is about 100 characters, got {len(text):,}")
        groups = text.split("+")
        if len(groups) != NODES - 1:
            raise InputError(f"a NAS-Bench-201 string has {NODES - 1} '+'-separated node groups, got {len(groups)}: "
                             f"{text!r}")
        ops = []
        for target, group in enumerate(groups, start=1):
            if not (group.startswith("|") and group.endswith("|") and len(group) > 1):
                raise InputError(f"node group {target} of the NAS-Bench-201 string must be '|op~j|...|', got {group!r}")
            items = group[1:-1].split("|")
            if len(items) != target:
                raise InputError(f"node {target} of a NAS-Bench-201 cell takes {target} inputs, got {len(items)} "
                                 f"in {group!r}")
            for source, item in enumerate(items):
                match = _ITEM.match(item)
                if not match:
                    raise InputError(f"malformed NAS-Bench-201 edge {item!r}: expected op~input")
                op, index = match.group(1), int(match.group(2))
                if index != source:
                    raise InputError(f"node {target} of the NAS-Bench-201 string must list inputs 0..{target - 1} "
                                     f"in order; got input {index} in position {source}")
                self.check_op(op)
                ops.append(op)
        return NB201Genotype(tuple(ops))

    def to_json(self, genotype: NB201Genotype) -> dict:
        return {"space": self.name, "arch": self.to_text(genotype)}

    def from_json(self, data: Mapping[str, Any]) -> NB201Genotype:
        if not isinstance(data.get("arch"), str):
            raise InputError("NAS-Bench-201 genotype JSON needs an 'arch' string")
        return self.from_text(data["arch"])
