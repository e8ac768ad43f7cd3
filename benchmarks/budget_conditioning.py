#!/usr/bin/env python
"""Budget-conditioned meta-training: teachers searched under FLOPs budgets, a task graph told each budget's tightness.

Results: benchmarks/budget_regret.py scores these runs' proposals where they exist (docs/results/budgets.md).

For each seed s, next to the seed's runs of benchmarks/meta_zero_shot.py under --out:
- teachers-budget: the seed's teacher bank grown with --teacher-budgets K (default 1): its 16 unbudgeted teachers
  (taken over from seed{s}/teachers, the same searches) and K more per class draw, each the teachers' own method
  (NASWOT over 500 cells, then the skip probe) among only the cells within a FLOPs budget that lets a seeded share
  ~ U(0.03, 1) of the space's cells through. No teacher reads the table.
- taskdarts-budget: imitation of that bank with --budget-aware (z = [E(G(task)); s], s the share of the space's cells
  the task's budget lets through; 1 for the unbudgeted teachers), encoder on;
- no-encoder-budget: the --no-encoder ablation on the same bank, also --budget-aware (z = [constant; s]: it sees the
  budget and not the data, so it measures what the encoder adds).
Both without start weights (--imitate-weight-steps 0: a proposal is all a budget changes). The runs are made here;
budget_regret.py scores their proposals at held-out budgets (quantiles of all cells' FLOPs, not the teachers' draws).

    python benchmarks/budget_conditioning.py --seeds 3 --out runs/meta-zero-shot    # ~20 min a seed on 2 CPU cores
"""
from __future__ import annotations

import argparse
from pathlib import Path

import meta_zero_shot as zs
import torch

from meta.teacher_bank import TEACHERS_FILE, TeacherBank
from meta.teacher_job import TeacherJob
from run_kit.device import seed_everything
from run_kit.loop import run_job
from run_kit.run_dir import RunDir

BUDGET_METHODS = {"taskdarts-budget": {"use_encoder": True, "budget_aware": True},
                  "no-encoder-budget": {"use_encoder": False, "budget_aware": True}}
"""The budget-conditioned meta-runs: name -> their design (on top of the natural config)."""


def ensure_budget_bank(args, seed: int, out: Path) -> Path:
    """The seed's bank with budgeted teachers, its unbudgeted teachers taken over from the seed's finished bank."""
    run = out / f"seed{seed}" / "teachers-budget"
    if (run / TEACHERS_FILE).is_file():
        return run
    config = zs.natural_config(args, seed, teacher_budgets=args.teacher_budgets)
    seed_everything(config.seed)
    job = TeacherJob(config, torch.device("cpu"))
    resume = (run / "checkpoint.pt").is_file()
    if not resume:
        base = zs.ensure_teachers(args, seed, out)
        base_config = zs.natural_config(args, seed)
        if base_config.teacher != config.teacher.__class__(**{**vars(config.teacher), "teacher_budgets": 0}):
            raise SystemExit(f"error: {base} was made with other teacher settings")
        taken = job.reuse(TeacherBank.read(base, "nb201").teachers)
        print(f"seed {seed}: {taken} unbudgeted teachers taken over from {base}", flush=True)
    run_job(job, RunDir(run), resume=resume, progress=False)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(zs.ROOT / "configs" / "meta_nb201_natural.yaml"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--teacher-budgets", type=int, default=1)
    parser.add_argument("--out", default="runs/meta-zero-shot")
    args = parser.parse_args()
    for name in zs.CONFIG_OVERRIDES:
        setattr(args, name, None)
    out = Path(args.out)
    for seed in range(args.seeds):
        bank = ensure_budget_bank(args, seed, out)
        for method, design in BUDGET_METHODS.items():
            zs.ensure_meta(args, seed, method, bank, out, imitate_weight_steps=0, **design)
            print(f"seed {seed}: {method} ready", flush=True)


if __name__ == "__main__":
    main()
