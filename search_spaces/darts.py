"""The DARTS cell space: 2 inputs, 4 intermediate nodes, 14 edges, 8 primitives, normal and reduction cells.

A genotype is the DARTS reference's namedtuple, so its repr pastes straight into the reference's genotypes.py.
"""
from __future__ import annotations

import ast
from collections import namedtuple
from collections.abc import Mapping
from typing import Any

import torch

from run_kit import InputError

from .base import CellDiagram, SearchSpace
from .operations import DARTS_OPS

Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")
"""`normal`/`reduce`: 2 `(op, input_index)` pairs per intermediate node; inputs 0, 1 are the cell inputs."""

STEPS = 4
MAX_TEXT = 10_000  # characters; a genotype string is a few hundred
CELL_TYPES = ("normal", "reduce")
NODE_INPUTS = tuple(tuple(range(2 + node)) for node in range(STEPS))
"""The states each intermediate node of a search cell reads: the 2 cell inputs and every earlier node."""


def edge_row(node: int, source: int) -> int:
    """Row of edge `source -> node` in a logits tensor (node 0 has rows 0-1, node 1 rows 2-4, ...)."""
    return sum(2 + i for i in range(node)) + source


class DartsSpace(SearchSpace):
    name = "darts"
    ops = tuple(DARTS_OPS)
    cell_types = CELL_TYPES
    num_edges = sum(2 + i for i in range(STEPS))
    num_reductions = 2
    node_inputs = NODE_INPUTS
    text_form = "Genotype(...) string"
    baselines = ("DARTS_V1", "DARTS_V2")

    def owns(self, genotype: Any) -> bool:
        return isinstance(genotype, Genotype)

    def recognizes(self, text: str) -> bool:
        return text.startswith("Genotype(")

    def held_ops(self, genotype: Genotype) -> list[str]:
        """The chosen (op, input) pairs' ops of both cell types."""
        return [op for cell in (genotype.normal, genotype.reduce) for op, _ in cell]

    def active_edges(self, genotype: Genotype) -> int:
        """A node keeps 2 of its inputs: 8 edges per cell, not 14."""
        return len(genotype.normal)

    def diagrams(self, genotype: Genotype) -> list[CellDiagram]:
        """Per cell type: the inputs c_{k-2}, c_{k-1} on the left, nodes 0-3 alternating above and below, and their
        concatenation c_{k} on the right."""
        genotype = self.validate(genotype)
        out = []
        for cell_type in self.cell_types:
            pairs = getattr(genotype, cell_type)
            concat = getattr(genotype, f"{cell_type}_concat")
            names = ["c_{k-2}", "c_{k-1}"] + [str(i) for i in range(len(pairs) // 2)]
            positions = {"c_{k-2}": (0.0, 0.8), "c_{k-1}": (0.0, -0.8), "c_{k}": (len(pairs) // 2 + 1.5, 0.0)}
            for i in range(len(pairs) // 2):
                positions[str(i)] = (1.0 + i, 0.9 if i % 2 == 0 else -0.9)
            edges = [(names[j], str(k // 2), op) for k, (op, j) in enumerate(pairs)]
            edges += [(names[i], "c_{k}", "") for i in concat]
            out.append(CellDiagram(cell_type, edges, positions, f"{cell_type} cell"))
        return out

    def derive_from_weights(self, weights: Mapping[str, torch.Tensor]) -> Genotype:
        """Per node, the 2 incoming edges whose best non-`none` weight is largest, each with that op.

        Ties go to the lower input index; the pairs of a node are listed strongest first, as the reference does.
        """
        none = self.ops.index("none")
        cells = {}
        for cell_type in self.cell_types:
            weights_t = weights[cell_type].clone()
            weights_t[:, none] = -1.0
            pairs = []
            for node in range(STEPS):
                rows = [weights_t[edge_row(node, j)] for j in range(2 + node)]
                strongest = sorted(range(2 + node), key=lambda j: -rows[j].max().item())[:2]
                pairs += [(self.ops[int(rows[j].argmax())], j) for j in strongest]
            cells[cell_type] = pairs
        concat = list(range(2, 2 + STEPS))
        return Genotype(cells["normal"], concat, cells["reduce"], list(concat))

    def validate(self, genotype: Any) -> Genotype:
        if not isinstance(genotype, Genotype):
            raise InputError(f"not a DARTS genotype: {genotype!r}")
        fields = {}
        for cell_type in self.cell_types:
            pairs = genotype._asdict()[cell_type]
            if not isinstance(pairs, (list, tuple)) or len(pairs) != 2 * STEPS:
                got = len(pairs) if isinstance(pairs, (list, tuple)) else type(pairs).__name__
                raise InputError(f"DARTS genotype '{cell_type}' needs {2 * STEPS} (op, input) pairs "
                                 f"(2 per node, {STEPS} nodes), got {got}")
            checked = []
            for k, pair in enumerate(pairs):
                if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not isinstance(pair[0], str) \
                        or isinstance(pair[1], bool) or not isinstance(pair[1], int):
                    raise InputError(f"DARTS genotype '{cell_type}' entry {k} must be (op, input_index), got "
                                     f"{pair!r}"[:300])
                op, source = pair
                self.check_op(op)
                if op == "none":
                    raise InputError(f"DARTS genotype '{cell_type}' entry {k}: 'none' cannot be a chosen op")
                node = k // 2
                if not 0 <= source < 2 + node:
                    raise InputError(f"DARTS genotype '{cell_type}' entry {k}: node {node} can take inputs "
                                     f"0..{1 + node}, got {source}")
                checked.append((op, source))
            concat = genotype._asdict()[f"{cell_type}_concat"]
            nodes = list(range(2, 2 + STEPS))
            if not isinstance(concat, (list, tuple)) or not all(
                    isinstance(i, int) and not isinstance(i, bool) for i in concat):
                raise InputError(f"DARTS genotype '{cell_type}_concat' must be a list of whole node numbers, "
                                 f"got {concat!r}"[:300])
            if not concat or any(i not in nodes for i in concat) or len(set(concat)) != len(concat):
                raise InputError(f"DARTS genotype '{cell_type}_concat' must list distinct intermediate nodes "
                                 f"{nodes[0]}..{nodes[-1]} (0 and 1 are the cell's inputs), got {list(concat)}"[:300])
            concat = list(concat)
            fields[cell_type], fields[f"{cell_type}_concat"] = checked, concat
        return Genotype(**fields)

    def logits_of(self, genotype: Genotype, strength: float = 10.0) -> dict[str, torch.Tensor]:
        """Chosen edges: their op at `strength` (+1 for a node's first pair, so the order survives), `none` at 0;
        every other edge: `none` at `strength`. Needs distinct inputs per node and the full concat."""
        genotype = self.validate(genotype)
        none = self.ops.index("none")
        out = {}
        for cell_type in self.cell_types:
            if list(getattr(genotype, f"{cell_type}_concat")) != list(range(2, 2 + STEPS)):
                raise InputError(f"a genotype with {cell_type}_concat other than {list(range(2, 2 + STEPS))} has no "
                                 f"logits form")
            logits = torch.zeros(self.num_edges, len(self.ops))
            logits[:, none] = strength
            pairs = getattr(genotype, cell_type)
            for k, (op, source) in enumerate(pairs):
                row = edge_row(k // 2, source)
                if logits[row, none] == 0:
                    raise InputError(f"node {k // 2} of the {cell_type} cell takes input {source} twice; such a "
                                     f"genotype has no logits form")
                logits[row, none] = 0.0
                logits[row, self.ops.index(op)] = strength + (1.0 if k % 2 == 0 else 0.0)
            out[cell_type] = logits
        return out

    def random_genotype(self, generator: torch.Generator) -> Genotype:
        """Per node 2 distinct inputs and for each a non-`none` op, uniformly (the DARTS random baseline)."""
        choices = [op for op in self.ops if op != "none"]
        cells = {}
        for cell_type in self.cell_types:
            pairs = []
            for node in range(STEPS):
                sources = torch.randperm(2 + node, generator=generator)[:2].tolist()
                ops = torch.randint(len(choices), (2,), generator=generator).tolist()
                pairs += [(choices[o], s) for o, s in zip(ops, sources)]
            cells[cell_type] = pairs
        concat = list(range(2, 2 + STEPS))
        return Genotype(cells["normal"], concat, cells["reduce"], list(concat))

    def to_text(self, genotype: Genotype) -> str:
        genotype = self.validate(genotype)
        return repr(genotype)

    def from_text(self, text: str) -> Genotype:
        """Parse `Genotype(normal=[...], normal_concat=..., reduce=[...], reduce_concat=...)` without eval.

        Concats may be lists or `range(a, b)`, as in the reference's genotypes.py.
        """
        if len(text) > MAX_TEXT:
            raise InputError(f"a DARTS genotype string is a few hundred characters, got {len(text):,}")
        try:
            tree = ast.parse(text.strip(), mode="eval").body
        except SyntaxError as err:
            raise InputError(f"malformed DARTS genotype string: {err.msg}") from None
        except (RecursionError, MemoryError, ValueError):
            raise InputError("malformed DARTS genotype string: nested too deeply") from None
        if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "Genotype"):
            raise InputError("a DARTS genotype string must look like Genotype(normal=[...], normal_concat=[...], "
                             "reduce=[...], reduce_concat=[...])")
        names = list(Genotype._fields)
        values = {}
        for position, node in enumerate(tree.args):
            if position >= len(names):
                raise InputError("too many arguments in DARTS genotype string")
            values[names[position]] = node
        for keyword in tree.keywords:
            if keyword.arg not in names or keyword.arg in values:
                raise InputError(f"unexpected or repeated field '{keyword.arg}' in DARTS genotype string")
            values[keyword.arg] = keyword.value
        missing = [n for n in names if n not in values]
        if missing:
            raise InputError(f"DARTS genotype string misses {', '.join(missing)}")
        return self.validate(Genotype(**{name: _literal(name, node) for name, node in values.items()}))

    def to_json(self, genotype: Genotype) -> dict:
        genotype = self.validate(genotype)
        out: dict[str, Any] = {"space": self.name}
        for cell_type in self.cell_types:
            out[cell_type] = [[op, j] for op, j in genotype._asdict()[cell_type]]
            out[f"{cell_type}_concat"] = list(genotype._asdict()[f"{cell_type}_concat"])
        return out

    def from_json(self, data: Mapping[str, Any]) -> Genotype:
        missing = [name for name in Genotype._fields if name not in data]
        if missing:
            raise InputError(f"DARTS genotype JSON misses {', '.join(missing)}")
        fields = {}
        for name in Genotype._fields:
            value = data[name]
            if name in self.cell_types and isinstance(value, list):
                value = [tuple(p) if isinstance(p, list) else p for p in value]
            fields[name] = value
        return self.validate(Genotype(**fields))


def _literal(name: str, node: ast.expr) -> Any:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        try:
            bounds = range(*[ast.literal_eval(arg) for arg in node.args])
        except (ValueError, TypeError):
            raise InputError(f"malformed range in DARTS genotype field '{name}'") from None
        if len(bounds) > 2 + STEPS:  # checked before the list is built: range(0, 10**9) must not allocate
            raise InputError(f"DARTS genotype field '{name}': {bounds} has more entries than a cell has nodes")
        return list(bounds)
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise InputError(f"DARTS genotype field '{name}' must be a literal list") from None
