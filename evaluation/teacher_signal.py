"""What a teacher bank (or any set of searches) says about its data sets: whether searches end differently on
different data sets (a permutation test of the data-set labels), whether a data set's own vote predicts a search it
never saw better than the whole bank's, and how far one set of cells ends from another. Reported by `train.py
teachers` at the end of a bank (and by the withdrawn studies' benchmarks, at commit 94710b7); nothing chooses a design
from them."""
from __future__ import annotations

import itertools
from typing import Any

import torch

from meta.teacher_bank import TeacherBank
from run_kit import InputError
from supernet.spaces import get_space
from supernet.training_free import cell_one_hots


def per_edge_distance(ours: torch.Tensor, theirs: torch.Tensor) -> torch.Tensor:
    """The mean over edges of the total variation between two op profiles [edges, ops] (a 0-d tensor)."""
    return 0.5 * (ours - theirs).abs().sum(-1).mean()


def _edges_one_hot(space, genotypes: list[str]) -> torch.Tensor:
    """[cells, edges of all cell types, ops]."""
    return torch.cat(list(cell_one_hots(space, genotypes).values()), dim=1)


def _between_groups(one_hot: torch.Tensor, labels: torch.Tensor, count: int) -> float:
    profiles = [one_hot[labels == g].mean(0) for g in range(count)]
    return float(torch.stack([per_edge_distance(a, b) for a, b in itertools.combinations(profiles, 2)]).mean())


def dataset_dependence(space, groups: list[str], genotypes: list[str], shuffles: int = 2000, seed: int = 0
                       ) -> dict[str, Any]:
    """Whether searches end in different places on different data sets, beyond the spread of one data set's searches:
    a permutation test. Statistic: the mean over pairs of data sets of the per-edge total variation between their op
    profiles (per_edge_distance); null: the statistic with the data-set labels shuffled (group sizes
    kept); p = (1 + #{shuffled >= observed}) / (1 + shuffles). What a task-conditioned proposal can learn from a bank
    beyond its overall vote is this difference; a large p says the bank shows none."""
    names = sorted(set(groups))
    if len(names) < 2:
        raise InputError("testing the teachers' dependence on the data set needs teachers of at least 2 data sets")
    one_hot = _edges_one_hot(space, genotypes)
    labels = torch.tensor([names.index(g) for g in groups])
    observed = _between_groups(one_hot, labels, len(names))
    generator = torch.Generator().manual_seed(seed)
    null = torch.tensor([_between_groups(one_hot, labels[torch.randperm(len(labels), generator=generator)],
                                         len(names)) for _ in range(shuffles)])
    return {"teachers_per_dataset": {name: groups.count(name) for name in names}, "statistic": round(observed, 4),
            "shuffled_mean": round(float(null.mean()), 4),
            "p_value": round((1 + int((null >= observed - 1e-9).sum())) / (1 + shuffles), 4), "shuffles": shuffles}


def bank_dependence(bank: TeacherBank) -> dict[str, Any] | None:
    """dataset_dependence of a bank's cells (None with fewer than 2 data sets: nothing to test)."""
    groups = [teacher.spec for teacher in bank.teachers]
    if len(set(groups)) < 2:
        return None
    return dataset_dependence(get_space(bank.space), groups, [teacher.genotype for teacher in bank.teachers])


def dependence_line(test: dict[str, Any]) -> str:
    """The line a finished `train.py teachers` run logs."""
    return (f"do the teachers end differently on different data sets? per-edge distance between the data sets' op "
            f"profiles {test['statistic']:.3f}, with the labels shuffled {test['shuffled_mean']:.3f}: p = "
            f"{test['p_value']:.3f}" + (" (no evidence at the 5 % level: task conditioning has little to learn here "
                                        "beyond the bank's vote)"
                                        if test["p_value"] > 0.05 else ""))
