"""Cell search spaces, the genotype side: ops, cell types and edges, derivation, genotypes and their text and JSON
forms, published genotypes, cell diagrams.

Which spaces a run can use, and their networks, is the registry's business (supernet/spaces.py: `get_space`,
`load_genotype`); this package defines what each space is.
"""
from .base import CellDiagram, SearchSpace
from .darts import DartsSpace, Genotype
from .nb201 import NB201Genotype, NB201Space
from .published import PUBLISHED

__all__ = ["CellDiagram", "SearchSpace", "DartsSpace", "NB201Space", "Genotype", "NB201Genotype", "PUBLISHED"]
