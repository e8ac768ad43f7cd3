"""What a teacher bank (or any set of searches) says about its data sets: whether searches end differently on
different data sets (a permutation test of the data-set labels), whether a data set's own vote predicts a search it
never saw better than the whole bank's, and how far one set of cells ends from another. Reported by `train.py
teachers` at the end of a bank, by benchmarks/teacher_signal.py and the meta benchmarks; nothing chooses a design
from them."""
from __future__ import annotations

import itertools
from typing import Any

import torch

from meta.teacher_bank import TeacherBank, pooled_targets
from run_kit import InputError
from supernet.spaces import get_space
from supernet.training_free import cell_one_hots, op_frequencies


def profile_distances(space, cells: list[str], reference: list[str]) -> tuple[float, float]:
    """How far a set of cells ends from a reference set (e.g. searches on a family): the total variation between their
    op shares over all edges, and the mean over edges of the total variation between their per-edge op distributions.
    Single cell type spaces (nb201)."""
    (ours,), (theirs,) = op_frequencies(space, cells).values(), op_frequencies(space, reference).values()
    return 0.5 * float((ours.mean(0) - theirs.mean(0)).abs().sum()), float(per_edge_distance(ours, theirs))


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
    profiles (profile_distances' second number); null: the statistic with the data-set labels shuffled (group sizes
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


def leave_one_out(space, groups: list[str], genotypes: list[str], priors: list[float]) -> dict[float, dict[str, float]]:
    """How well a pooled target predicts where a search it never saw ends: for each teacher k, the pooled target of k's
    data set from the *other* teachers (pooled_targets of their cells, prior w), its most likely op per edge (ties
    broken by the other teachers' mean) against k's cell. Per prior: edge_agreement (share of edges), cell_agreement
    (share of whole cells) and probability (the target's mean mass on k's op). Teachers alone in their data set are
    left out for every prior (w = 0 has no target for them)."""
    one_hot = _edges_one_hot(space, genotypes)
    scored = [k for k, group in enumerate(groups) if groups.count(group) > 1]
    if not scored or len(groups) < 3:
        raise InputError("leave-one-out needs a data set with at least 2 teachers and at least 3 teachers in all")
    results = {}
    for prior in priors:
        edges, cells, mass = [], [], []
        for k in scored:
            others = [j for j in range(len(groups)) if j != k]
            other_groups = [groups[j] for j in others]
            targets = pooled_targets(other_groups, [{"edges": one_hot[j]} for j in others], prior)
            target = targets[other_groups.index(groups[k])]["edges"]
            mean = one_hot[others].mean(0)
            hits = (target + 1e-6 * mean).argmax(-1) == one_hot[k].argmax(-1)
            edges.append(float(hits.float().mean()))
            cells.append(float(hits.all()))
            mass.append(float((target * one_hot[k]).sum(-1).mean()))
        results[prior] = {"edge_agreement": round(sum(edges) / len(edges), 4),
                          "cell_agreement": round(sum(cells) / len(cells), 4),
                          "probability": round(sum(mass) / len(mass), 4), "teachers": len(scored)}
    return results


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
                                        "beyond the bank's vote; see benchmarks/teacher_signal.py)"
                                        if test["p_value"] > 0.05 else ""))
