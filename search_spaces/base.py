"""The interface every cell search space offers to the supernet, the controller and the command line."""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any, Mapping

import torch

from run_kit import InputError



class SearchSpace(ABC):
    """A cell search space: which cell types there are, their edges and candidate ops, and genotype forms.

    Architecture logits are a dict `cell_type -> tensor [num_edges, num_ops]`; columns follow `ops`.
    """

    name: str
    ops: tuple[str, ...]
    cell_types: tuple[str, ...]
    num_edges: int
    num_reductions: int  # spatial halvings of the macro skeleton; bounds the smallest usable image

    def logits_shapes(self) -> dict[str, tuple[int, int]]:
        return {cell_type: (self.num_edges, len(self.ops)) for cell_type in self.cell_types}

    def check_logits(self, logits: Mapping[str, torch.Tensor]) -> None:
        expected = self.logits_shapes()
        if set(logits) != set(expected):
            raise InputError(f"{self.name} logits need cell types {sorted(expected)}, got {sorted(logits)}")
        for cell_type, shape in expected.items():
            if tuple(logits[cell_type].shape) != shape:
                raise InputError(f"{self.name} logits for '{cell_type}' must have shape {shape}, "
                                 f"got {tuple(logits[cell_type].shape)}")

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
    def derive(self, logits: Mapping[str, torch.Tensor]) -> Any:
        """The discrete genotype the logits stand for (the space's own rule)."""

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

    def dumps(self, genotype: Any) -> str:
        return json.dumps(self.to_json(genotype), indent=1)

    def owns(self, genotype: Any) -> bool:
        """Whether the genotype object is of this space's type (not whether it is valid)."""
        return False
