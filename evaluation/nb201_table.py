"""NAS-Bench-201 ground truth: test accuracy after 200 epochs on CIFAR-10, CIFAR-100 and ImageNet16-120 for every
one of the 15,625 cells, read from the NATS-Bench topology CSV
(`CIFAR10TestAccuracy200Epochs, CIFAR100TestAccuracy200Epochs, ImageNetTestAccuracy200Epochs, ArchitectureString,
UniqueString`). A NAS-Bench-201 comparison can then be read without retraining."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch

from run_kit import InputError
from search_spaces.nb201 import NB201Genotype, NB201Space
from supernet.costs import CellCosts, cost_terms, every_cell

COLUMNS = {"cifar10": "CIFAR10TestAccuracy200Epochs", "cifar100": "CIFAR100TestAccuracy200Epochs",
           "imagenet16_120": "ImageNetTestAccuracy200Epochs"}
ARCH_COLUMN = "ArchitectureString"
TABLE_SPACE = NB201Space.name  # the space whose cells the table scores
NUM_CELLS = 5 ** 6
RESIDUAL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
"""The all-3x3 + residual cell: the best constant cell a user would try first (every edge a 3x3 convolution but the
input-to-output edge, a skip connection); the budget studies decode it as a constant proposal."""


@dataclass(frozen=True)
class NB201Accuracy:
    cifar10: float
    cifar100: float
    imagenet16_120: float

    def as_dict(self) -> dict[str, float]:
        return {"cifar10": self.cifar10, "cifar100": self.cifar100, "imagenet16_120": self.imagenet16_120}


class NB201Table:
    """The validated table: every NAS-Bench-201 cell exactly once, accuracies in percent."""

    def __init__(self, rows: dict[NB201Genotype, NB201Accuracy], source: str):
        self.rows = rows
        self.source = source

    @classmethod
    def load(cls, path: str | Path) -> NB201Table:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"NAS-Bench-201 table {path} does not exist")
        try:
            rows = cls._read(path)
        except (UnicodeDecodeError, csv.Error) as err:
            raise InputError(f"{path} is not a NAS-Bench-201 table (not a CSV text file: "
                             f"{str(err).splitlines()[0][:120]})") from None
        if len(rows) != NUM_CELLS:
            raise InputError(f"{path} holds {len(rows)} architectures; a NAS-Bench-201 table has all {NUM_CELLS}")
        return cls(rows, str(path))

    @staticmethod
    def _read(path: Path) -> dict[NB201Genotype, NB201Accuracy]:
        space = NB201Space()
        rows: dict[NB201Genotype, NB201Accuracy] = {}
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in (*COLUMNS.values(), ARCH_COLUMN) if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(f"{path} is not a NAS-Bench-201 table: missing column(s) {', '.join(missing)}")
            for line, row in enumerate(reader, start=2):
                try:
                    genotype = space.from_text(row[ARCH_COLUMN])
                    accuracy = NB201Accuracy(*(float(row[c]) for c in COLUMNS.values()))
                except (InputError, ValueError, TypeError, AttributeError) as err:
                    raise InputError(f"{path}, line {line}: {err}") from None
                if genotype in rows:
                    raise InputError(f"{path}, line {line}: architecture {row[ARCH_COLUMN]} appears twice")
                if len(rows) >= NUM_CELLS:
                    raise InputError(f"{path} holds more than the {NUM_CELLS} architectures of NAS-Bench-201")
                rows[genotype] = accuracy
        return rows

    def lookup(self, genotype: NB201Genotype) -> NB201Accuracy:
        return self.rows[NB201Space().validate(genotype)]

    def best(self, dataset: str = "cifar10") -> tuple[NB201Genotype, float]:
        genotype = max(self.rows, key=lambda g: getattr(self.rows[g], dataset))
        return genotype, getattr(self.rows[genotype], dataset)


def every_cell_accuracy(table: NB201Table, costs: CellCosts) -> tuple[list[NB201Genotype], torch.Tensor,
                                                                      torch.Tensor]:
    """(genotypes, FLOPs M, CIFAR-10 test accuracy) of all cells, in the budgeted decoding's enumeration order
    (supernet/costs.every_cell): what the budget studies score a proposal against."""
    space = NB201Space()
    cells = every_cell(space.num_edges, len(space.ops))
    genotypes = [space.with_edge_ops([space.ops[k] for k in row]) for row in cells.tolist()]
    flops = cost_terms(costs)["flops_m"].of_cells(cells)
    accuracy = torch.tensor([table.lookup(g).cifar10 for g in genotypes], dtype=torch.float64)
    return genotypes, flops, accuracy
