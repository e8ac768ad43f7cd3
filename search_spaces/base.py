"""The genotype side of a cell search space: its cell types, edges and ops, the derivation rule, the genotype's
text and JSON forms, published genotypes and cell diagrams. Its network side (supernet, discrete network, retraining
recipe) is paired with it in the registry, supernet/spaces.py."""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from run_kit import InputError

Mixing = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class CellDiagram:
    """One cell drawn as a graph (search_spaces/plot.py): `name`.png shows `edges` (source, target, op label; an
    empty label is a plain connection) between nodes placed at `positions`, titled `title`."""

    name: str
    edges: Sequence[tuple[str, str, str]]
    positions: Mapping[str, tuple[float, float]]
    title: str


def edge_key(cell_type: str) -> str:
    """The key of a cell type's per-edge logits (PC-DARTS edge normalisation) in a logits dict."""
    return f"{cell_type}_edges"


class SearchSpace(ABC):
    """A cell search space: which cell types there are, their edges and candidate ops, and genotype forms.

    Architecture logits are a dict `cell_type -> tensor [num_edges, num_ops]`; columns follow `ops`. With edge
    normalisation (PC-DARTS) the dict also holds `<cell_type>_edges -> tensor [num_edges]`, one logit per edge.
    """

    name: str
    ops: tuple[str, ...]
    cell_types: tuple[str, ...]
    num_edges: int
    num_reductions: int  # spatial halvings of the macro skeleton; bounds the smallest usable image
    node_inputs: tuple[tuple[int, ...], ...]  # the states each node of a search cell reads, in logits-row order
    text_form: str  # how its one-line genotype text looks, for messages ("Genotype(...) string")
    one_op_per_edge: bool = False  # a genotype is one op per edge of a single cell type (edge_ops/with_edge_ops)
    baselines: tuple[str, ...] = ()  # the published genotypes compare's `published` method stands for

    def __init__(self, published: Mapping[str, Any] | None = None):
        """`published`: genotypes of the space published by name (retrain --genotype NAME, compare --methods NAME);
        the registry (supernet/spaces.py) gives each space its own."""
        self.published: dict[str, Any] = {name: self.validate(g) for name, g in (published or {}).items()}

    def logits_shapes(self, edge_logits: bool = False) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {ct: (self.num_edges, len(self.ops)) for ct in self.cell_types}
        if edge_logits:
            shapes.update({edge_key(ct): (self.num_edges,) for ct in self.cell_types})
        return shapes

    def check_logits(self, logits: Mapping[str, torch.Tensor]) -> None:
        expected = self.logits_shapes(edge_logits=edge_key(self.cell_types[0]) in logits)
        if set(logits) != set(expected):
            raise InputError(f"{self.name} logits need {sorted(expected)}, got {sorted(logits)}")
        for key, shape in expected.items():
            if tuple(logits[key].shape) != shape:
                raise InputError(f"{self.name} logits for '{key}' must have shape {shape}, "
                                 f"got {tuple(logits[key].shape)}")

    def edge_weights(self, logits: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
        """PC-DARTS edge normalisation: per node, softmax of the edge logits over that node's inputs,
        gamma_(i<-j) = exp(beta_(i<-j)) / sum_(j' in inputs(i)) exp(beta_(i<-j')). None without edge logits."""
        if edge_key(self.cell_types[0]) not in logits:
            return None
        out = {}
        for cell_type in self.cell_types:
            beta, parts, start = logits[edge_key(cell_type)], [], 0
            for inputs in self.node_inputs:
                parts.append(torch.softmax(beta[start:start + len(inputs)], dim=0))
                start += len(inputs)
            out[cell_type] = torch.cat(parts)
        return out

    def derive(self, logits: Mapping[str, torch.Tensor], mixing: Mixing | None = None,
               exclude_ops: Sequence[str] = ()) -> Any:
        """The genotype the logits stand for, by the space's rule applied to the op weights
        w_e = mixing(alpha_e) (softmax unless a relaxation gives its own expected weights, as DrNAS's Dirichlet
        mean), each scaled by its edge weight gamma_e under edge normalisation (which then enters the ranking).
        `exclude_ops` get weight 0, so the rule never picks them (a deployment target without their kernels)."""
        self.check_logits(logits)
        dropped = [self.ops.index(op) for op in self.check_excluded_ops(exclude_ops)]
        mixing = mixing or (lambda value: torch.softmax(value, dim=-1))
        edges = self.edge_weights(logits)
        weights = {}
        for cell_type in self.cell_types:
            w = mixing(logits[cell_type].detach().float().cpu())
            if edges is not None:
                w = w * edges[cell_type].detach().float().cpu()[:, None]
            w[:, dropped] = 0.0
            weights[cell_type] = w
        return self.derive_from_weights(weights)

    def check_excluded_ops(self, exclude_ops: Sequence[str]) -> tuple[str, ...]:
        """The ops a proposal may not use (`--exclude-ops`), checked: one line for an unknown op, for `none` (the
        absence of an edge, which the spaces need), or when no op but `none` would be left."""
        unknown = [op for op in exclude_ops if op not in self.ops]
        if unknown:
            raise InputError(f"--exclude-ops: unknown op(s) {', '.join(unknown)}; {self.name} ops are "
                             f"{', '.join(self.ops)}")
        if "none" in exclude_ops:
            raise InputError("--exclude-ops: `none` cannot be excluded (it is the absence of an edge)")
        if all(op in exclude_ops for op in self.ops if op != "none"):
            raise InputError(f"--exclude-ops leaves no op but `none`: every cell would compute nothing; keep one of "
                             f"{', '.join(op for op in self.ops if op != 'none')}")
        return tuple(dict.fromkeys(exclude_ops))

    def held_ops(self, genotype: Any) -> list[str]:
        """Every op the genotype's cells hold, once per chosen edge (what an additive latency model counts)."""
        return list(self.edge_ops(genotype))

    def ops_used(self, genotype: Any) -> set[str]:
        """The ops a genotype's cells hold."""
        return set(self.held_ops(genotype))

    def random_genotype_without(self, generator: torch.Generator, exclude_ops: Sequence[str],
                                draws: int = 100_000) -> Any:
        """A genotype drawn uniformly among those that use none of `exclude_ops` (by rejection)."""
        excluded = set(self.check_excluded_ops(exclude_ops))
        for _ in range(draws):
            genotype = self.random_genotype(generator)
            if not self.ops_used(genotype) & excluded:
                return genotype
        raise InputError(f"none of {draws:,} random {self.name} cells avoids {', '.join(sorted(excluded))}")

    def min_image_size(self) -> int:
        return 2 ** self.num_reductions

    def check_image_size(self, size: int) -> None:
        if size < self.min_image_size():
            raise InputError(f"image size {size} is too small for the {self.name} network, which halves it "
                             f"{self.num_reductions} times; use --image-size {self.min_image_size()} or more")

    def check_op(self, op: str) -> None:
        if op not in self.ops:
            raise InputError(f"unknown op '{op}' for the {self.name} space; known: {', '.join(self.ops)}")

    @abstractmethod
    def derive_from_weights(self, weights: Mapping[str, torch.Tensor]) -> Any:
        """The space's derivation rule on op weights {cell_type: [edges, ops]}."""

    @abstractmethod
    def logits_of(self, genotype: Any, strength: float = 10.0) -> dict[str, torch.Tensor]:
        """Logits that derive back to `genotype` (a discrete choice stored where a search stores its logits)."""

    @abstractmethod
    def validate(self, genotype: Any) -> Any:
        """Return the genotype if it belongs to this space, else raise InputError saying what is wrong."""

    @abstractmethod
    def random_genotype(self, generator: torch.Generator) -> Any:
        """A genotype drawn uniformly from the space's derivable genotypes."""

    @abstractmethod
    def to_text(self, genotype: Any) -> str:
        """The space's conventional one-line form (DARTS `Genotype(...)`, NAS-Bench-201 arch string)."""

    @abstractmethod
    def from_text(self, text: str) -> Any:
        ...

    @abstractmethod
    def to_json(self, genotype: Any) -> dict:
        """A JSON-ready dict that carries `"space"` so a file says which space it belongs to."""

    @abstractmethod
    def from_json(self, data: Mapping[str, Any]) -> Any:
        ...

    @abstractmethod
    def recognizes(self, text: str) -> bool:
        """Whether `text` is in this space's one-line form (then `from_text` parses it or says what is wrong)."""

    @abstractmethod
    def diagrams(self, genotype: Any) -> list[CellDiagram]:
        """The genotype's cells as graphs, one per cell type."""

    def active_edges(self, genotype: Any) -> int:
        """Edges per cell of the genotype's discrete network (a bound on its training memory)."""
        return self.num_edges

    def edge_ops(self, genotype: Any) -> tuple[str, ...]:
        """The op on every edge, in logits-row order (spaces with `one_op_per_edge` only)."""
        raise InputError(f"a {self.name} genotype is not one op per edge")

    def with_edge_ops(self, ops: Sequence[str]) -> Any:
        """The genotype with these ops on its edges, in logits-row order (spaces with `one_op_per_edge` only)."""
        raise InputError(f"a {self.name} genotype is not one op per edge")

    def dumps(self, genotype: Any) -> str:
        return json.dumps(self.to_json(genotype), indent=1)

    def owns(self, genotype: Any) -> bool:
        """Whether the genotype object is of this space's type (not whether it is valid)."""
        return False
