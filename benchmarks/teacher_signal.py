#!/usr/bin/env python
"""Is there anything in a teacher bank for task conditioning to learn? Two measurements on the teachers' cells alone,
per bank and over all the banks given (they must share a space and a class split):

- dependence on the data set: a permutation test (evaluation/teacher_signal.py `dataset_dependence`): the mean
  per-edge distance
  between the data sets' op profiles against the same with the data-set labels shuffled, and its p-value;
- leave one teacher out (`leave_one_out`): how often the pooled target of a teacher's data set, built from the other
  teachers with prior w (`--imitate-prior`; w = inf is the bank's vote, what the `--no-encoder` ablation learns),
  puts the held-out teacher's op on an edge. A search the target never saw, on other classes of the same data set,
  is what a held-out family's own search is; if the data set's own vote predicts it no better than the bank's vote,
  conditioning on the data set cannot move a proposal toward it.

Training classes only (the teachers' own): a diagnostic of the bank, usable before any meta-training.

    python benchmarks/teacher_signal.py runs/teachers-probe-s0 runs/teachers-probe-s1 runs/teachers-probe-s2
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from evaluation.teacher_signal import dataset_dependence, leave_one_out
from meta.teacher_bank import TeacherBank
from run_kit import InputError
from supernet.spaces import get_space


def bank_signal(banks: list[TeacherBank], priors: list[float], shuffles: int, seed: int = 0) -> dict:
    """dataset_dependence and leave_one_out over the teachers of `banks` (grouped by data set)."""
    teachers = [teacher for bank in banks for teacher in bank.teachers]
    space = get_space(banks[0].space)
    groups = [Path(teacher.spec.split(":", 1)[-1]).stem for teacher in teachers]
    genotypes = [teacher.genotype for teacher in teachers]
    return {"dependence": dataset_dependence(space, groups, genotypes, shuffles, seed),
            "leave_one_out": leave_one_out(space, groups, genotypes, priors)}


def read_banks(paths: list[str]) -> list[TeacherBank]:
    banks = [TeacherBank.read(path) for path in paths]
    for path, bank in zip(paths[1:], banks[1:]):
        if (bank.space, bank.split) != (banks[0].space, banks[0].split):
            raise InputError(f"{path} has another space or class split than {paths[0]}: their data sets are not the "
                             f"same groups of classes")
    return banks


def table(rows: list[tuple[str, dict]], priors: list[float]) -> list[str]:
    names = ["inf (bank vote)" if math.isinf(w) else f"{w:g}" for w in priors]
    lines = ["| teachers | per data set | between data sets / shuffled | p | "
             + " | ".join(f"leave-one-out edges, w = {n}" for n in names) + " | cells, best w |",
             "|---|---|---|---|" + "---|" * len(priors) + "---|"]
    for name, signal in rows:
        dependence, loo = signal["dependence"], signal["leave_one_out"]
        best = max(priors, key=lambda w: (loo[w]["cell_agreement"], loo[w]["edge_agreement"]))
        counts = sorted(set(dependence["teachers_per_dataset"].values()))
        lines.append(f"| {name} | {'-'.join(map(str, counts))} | {dependence['statistic']:.3f} / "
                     f"{dependence['shuffled_mean']:.3f} | {dependence['p_value']:.3f} | "
                     + " | ".join(f"{loo[w]['edge_agreement']:.3f}" for w in priors)
                     + f" | {loo[best]['cell_agreement']:.3f} (w = {names[priors.index(best)]}) |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("banks", nargs="+", help="teacher banks (run directories of `train.py teachers` or their "
                                                 "teachers.json)")
    parser.add_argument("--priors", type=float, nargs="+", default=[0.0, 1.0, 4.0, 16.0, math.inf],
                        help="pseudo-teacher weights w of the pooled target to score (inf: the bank's vote)")
    parser.add_argument("--shuffles", type=int, default=2000, help="label shuffles of the permutation test")
    args = parser.parse_args()
    try:
        if args.shuffles < 1:
            raise InputError(f"--shuffles must be at least 1, got {args.shuffles}")
        if any(math.isnan(w) or w < 0 for w in args.priors):
            raise InputError(f"--priors must be non-negative (inf allowed), got {args.priors}")
        banks = read_banks(args.banks)
        rows = [(path, bank_signal([bank], args.priors, args.shuffles)) for path, bank in zip(args.banks, banks)]
        if len(banks) > 1:
            rows.append((f"all {len(banks)} banks", bank_signal(banks, args.priors, args.shuffles)))
    except InputError as err:
        print(f"teacher_signal.py: error: {err}", file=sys.stderr)
        sys.exit(2)
    print("\n".join(table(rows, args.priors)))


if __name__ == "__main__":
    main()
