#!/usr/bin/env python
"""Zero-shot cells against searching from scratch: the NAS-Bench-201 TaskDARTS on held-out data.

Results: withdrawn (no raw results were kept; docs/results/withdrawn.md). Its runs feed budget_regret.py.

For each seed s, from configs/meta_nb201_natural.yaml (CIFAR-10 never in meta-training; the held-out classes of
every data set fixed by --split-seed, the same for all seeds):
  teachers (seed s) -> imitation meta-training of TaskDARTS (seed s) and of its --no-encoder ablation (same bank,
  same budget).
(a) CIFAR-10: the cell proposed for the whole CIFAR-10 *training* set (../shared/data/cifar10_train.npz) zero-shot
    and after 20 and 100 adaptation steps, next to DARTS (first order), GDAS and PC-DARTS searches on the same images at
    the same supernet scale (compare's settings and seeds), and to 100 random cells per seed; every cell scored by
    its NAS-Bench-201 CIFAR-10 test accuracy (table lookup). Search seconds per method.
(b) Held-out MNIST and GTSRB classes (no table): a seeded 80/20 split of their images; the zero-shot cell (TaskDARTS
    and the ablation) and a DARTS search's cell, each retrained with the same small recipe and seeds (--retrain-seeds
    retrainings per cell, averaged); test accuracy.
(c) Conditioning: zero-shot cells for --episodes episodes of every data set's held-out classes, how many distinct
    cells, and each family's op profile (share of edges per op, and per edge) next to where teacher-style searches on
    that family's held-out classes end (--family-searches per seed) and where its teachers ended.
When the teachers end with the skip probe (`teacher_probe_epochs`), the teachers' whole method also runs on each
target as a peer: "naswot-500 search + skip probe" in (a) (the probe on a teacher-sized sample of the CIFAR-10 training
images) and (b), and the families' own searches in (c) end with it.
Everything is run to report; nothing here chooses a design (benchmarks/meta_validation.py is for that). Finished
parts in --out are reused, so an interrupted run continues where it stopped.

    python benchmarks/meta_zero_shot.py --family-searches 4 --retrain-seeds 3 --out runs/meta-zero-shot   # ~110 min
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import torch
import yaml

from evaluation.compare import CompareConfig, Comparison, mean_std
from evaluation.nb201_table import NB201Table
from evaluation.teacher_signal import dataset_dependence, profile_distances
from image_sets import ImageData, in_memory, load_dataset, split_indices
from meta import proposers as _registers_taskdarts  # noqa: F401  (taskdarts-K in the registry)
from meta.config import MetaConfig
from meta.meta_train import run_meta_train
from meta.model import load_meta
from meta.skip_probe import skip_probe
from meta.tasks import EpisodeDistribution, search_task
from meta.teacher_bank import TEACHERS_FILE, op_frequencies
from meta.teacher_job import class_images, run_teachers
from run_kit.device import seed_everything
from run_kit.run_dir import RunDir
from supernet.methods import method_settings
from supernet.proposers import ProposalRequest, create_proposer
from supernet.retrain import RetrainConfig, run_retrain
from supernet.search import SearchConfig, run_search
from supernet.spaces import get_space

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
SPACE = get_space("nb201")
METHODS = {"taskdarts": True, "no-encoder": False}  # imitation meta-runs: name -> use_encoder
# options that replace the config's value when given
CONFIG_OVERRIDES = ("teacher_method", "teacher_probe_epochs", "imitate_pool", "meta_steps",
                    "max_ways", "dataset_loss", "imitate_weight_steps")


def natural_config(args, seed: int, **overrides) -> MetaConfig:
    options = {name: getattr(args, name) for name in CONFIG_OVERRIDES if getattr(args, name) is not None}
    config = MetaConfig.from_dict(yaml.safe_load(Path(args.config).read_text())).with_options(
        **options, seed=seed, device="cpu", **overrides)
    config.validate()
    return config


def finished(run: Path, marker: str) -> bool:
    return (run / marker).is_file()


def retrained_with(run: Path, epochs: int) -> bool:
    """Whether `run` holds a finished retraining of `epochs` epochs. A retraining of another length, finished or not,
    is removed: a rerun with another --retrain-epochs redoes it rather than reporting (or resuming) the old recipe."""
    config = run / "config.yaml"
    if config.is_file() and (yaml.safe_load(config.read_text()) or {}).get("epochs") != epochs:
        shutil.rmtree(run)
    return finished(run, "result.json")


def ensure_teachers(args, seed: int, out: Path) -> Path:
    run = out / f"seed{seed}" / "teachers"
    if not finished(run, TEACHERS_FILE):
        run_teachers(natural_config(args, seed), RunDir(run), resume=finished(run, "checkpoint.pt"), progress=False)
    return run


def ensure_meta(args, seed: int, method: str, bank: Path, out: Path, **overrides) -> Path:
    """The seed's finished imitation meta-run `method` (of METHODS, or named by the caller with its `overrides`)."""
    run = out / f"seed{seed}" / method
    design = {"use_encoder": METHODS[method]} if method in METHODS else {}
    config = natural_config(args, seed, objective="imitate", teachers=str(bank), **{**design, **overrides})
    checkpoint = run / "checkpoint.pt"
    state = torch.load(checkpoint, weights_only=True) if checkpoint.is_file() else None
    # options added since the run was made count at their defaults
    made_with = None if state is None else MetaConfig.from_dict(state["config"]).as_dict()
    if made_with is not None and made_with != config.as_dict():  # made with another design: redo it, and what was
        shutil.rmtree(run)                                       # proposed with it
        for proposal in (out / f"seed{seed}" / "cifar10").glob(f"{method}-*"):
            shutil.rmtree(proposal)
        state = None
    if state is None or state["step"] < config.meta.meta_steps:
        run_meta_train(config, RunDir(run), resume=state is not None, progress=False)
    return run


def propose(meta_run: Path, dataset: str, steps: int, seed: int, run: Path) -> dict:
    """search --meta on a whole data set, through the proposer registry (taskdarts-K): genotype and seconds
    (embedding, controller, K steps, derivation); an interrupted proposal is redone."""
    request = ProposalRequest(SPACE, dataset, seed=seed, device="cpu", meta=str(meta_run))
    proposal = create_proposer(f"taskdarts-{steps}", SPACE).propose(request, None, run)
    return {"genotype": SPACE.to_text(proposal.genotype), "seconds": proposal.search_seconds}


def probed_cell(config: MetaConfig, genotype, data: ImageData, seed: int, record: Path) -> tuple[object, float]:
    """The teachers' skip probe (the config's epochs and depth) of a searched cell on `data`, kept in `record` for
    reruns: the cell it ends at and its seconds."""
    saved = json.loads(record.read_text()) if record.is_file() else {}
    if saved.get("searched") != str(genotype):
        started = time.time()
        winner, trials = skip_probe(SPACE, genotype, data, config.teacher.teacher_probe_epochs,
                                    config.teacher.teacher_probe_layers, config.model.init_channels, seed, "cpu")
        saved = {"searched": str(genotype), "genotype": str(winner), "trials": trials,
                 "seconds": round(time.time() - started, 2)}
        record.parent.mkdir(parents=True, exist_ok=True)
        record.with_suffix(".tmp").write_text(json.dumps(saved, indent=1) + "\n")
        record.with_suffix(".tmp").replace(record)
    return SPACE.from_text(saved["genotype"]), saved["seconds"]


def cifar10(args, out: Path, table: NB201Table) -> dict:
    """(a): rows of method -> per-seed NB201 CIFAR-10 accuracy and search seconds."""
    rows = {}
    for seed in range(args.seeds):
        for method in METHODS:
            meta_run = out / f"seed{seed}" / method
            for steps in args.adapt_steps:
                found = propose(meta_run, f"npz:{args.cifar10}", steps, seed, out / f"seed{seed}" / "cifar10" /
                                f"{method}-{steps}")
                name = f"{method} zero-shot" if steps == 0 else f"{method} + {steps} steps"
                rows.setdefault(name, []).append({"seed": seed, "genotype": found["genotype"],
                                                  "acc": table.lookup(SPACE.from_text(found["genotype"])).cifar10,
                                                  "seconds": found["seconds"]})
        random_accs = [table.lookup(SPACE.random_genotype(torch.Generator().manual_seed(seed * 1000 + k))).cifar10
                       for k in range(args.random_cells)]
        rows.setdefault(f"random (mean of {args.random_cells} cells)", []).append(
            {"seed": seed, "genotype": "", "acc": statistics.mean(random_accs), "seconds": 0.0})
    compare = Comparison(CompareConfig(space="nb201", dataset=f"npz:{args.cifar10}", image_size=16,
                                       methods=args.baselines, seeds=args.seeds, search_epochs=args.search_epochs,
                                       layers=1, init_channels=8, retrain_epochs=0, nb201_table=args.table,
                                       device="cpu"), out / "cifar10-baselines", progress=False)
    for row in compare.run(resume=finished(out / "cifar10-baselines", "config.yaml")):
        rows.setdefault(f"{row['method']} search", []).append({"seed": row["seed"], "genotype": row["genotype"],
                                                               "acc": row["nb201_cifar10"],
                                                               "seconds": row["search_seconds"]})
    config = natural_config(args, 0)
    if config.teacher.teacher_probe_epochs and f"{config.teacher.teacher_method} search" in rows:
        # the teachers' whole method run on the target: its search, then the skip probe on a teacher-sized sample
        images = load_dataset(f"npz:{args.cifar10}", "train", image_size=16)
        for searched in rows[f"{config.teacher.teacher_method} search"]:
            seed = searched["seed"]
            sample = images.subset(torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[
                                   :config.teacher.teacher_images])
            cell, seconds = probed_cell(config, SPACE.from_text(searched["genotype"]), sample, seed,
                                        out / f"seed{seed}" / "cifar10" / "skip-probe.json")
            rows.setdefault(f"{config.teacher.teacher_method} search + skip probe", []).append(
                {"seed": seed, "genotype": SPACE.to_text(cell), "acc": table.lookup(cell).cifar10,
                 "seconds": searched["seconds"] + seconds})
    return rows


def held_out_data(config: MetaConfig, family: str, max_images: int) -> tuple[ImageData, list[int]]:
    """All held-out classes of `family` (the run's meta-test classes), relabelled, capped per class; and their labels
    in the data set."""
    _, meta_test, _ = config.distributions()
    pool = next(pool for pool in meta_test.pools if family in pool.spec)
    return class_images(pool, pool.labels(), max_images, seed=0), pool.labels()


def retrain_comparison(args, out: Path) -> dict:
    """(b): family -> method -> per-seed retrained test accuracy and search seconds."""
    results: dict = {}
    for family in args.retrain_families:
        meta_config = natural_config(args, 0)
        data, labels = held_out_data(meta_config, family, args.retrain_images)
        train_index, test_index = split_indices(len(data), [0.8, 0.2], seed=0)
        train, test = data.subset(train_index), data.subset(test_index)
        recorded = in_memory(f"{data.name} held-out classes {labels}, {len(data)} images: 80 % to search and train, "
                             f"20 % to test (benchmarks/meta_zero_shot.py (b))")
        for seed in range(args.seeds):
            base = out / f"seed{seed}" / f"held-out-{family}"
            cells = {}
            for method in METHODS:
                meta = load_meta(str(out / f"seed{seed}" / method), torch.device("cpu")).eval()
                started = time.time()
                with torch.no_grad():
                    logits = meta.start(meta.embed([search_task(train, seed)])[0]).logits
                cells[method] = (SPACE.derive(logits), time.time() - started)
            for method in args.retrain_searches:
                search_dir = base / f"{method}-search"
                settings = method_settings(method, args.search_epochs, 100)
                found = run_search(SearchConfig(space="nb201", epochs=args.search_epochs, layers=1, init_channels=8,
                                                seed=seed, device="cpu", dataset=recorded, **settings), train,
                                   RunDir(search_dir),
                                   resume=finished(search_dir, "checkpoint.pt"), progress=False)
                cells[f"{method} search"] = (SPACE.from_json(found["genotype"]), found["search_seconds"])
                if meta_config.teacher.teacher_probe_epochs and method == meta_config.teacher.teacher_method:
                    cell, seconds = probed_cell(meta_config, cells[f"{method} search"][0], train, seed,
                                                base / f"{method}-skip-probe.json")
                    cells[f"{method} search + skip probe"] = (cell, found["search_seconds"] + seconds)
            for method, (genotype, seconds) in cells.items():
                name = method.replace(" ", "-")
                cell_file = base / f"{name}.json"
                # retraining r of the cell: seed `seed + 100 r` (r = 0: the seed itself), its own run directory
                runs = [base / (f"retrain-{name}" + (f"-r{r}" if r else "")) for r in range(args.retrain_seeds)]
                if cell_file.is_file() and cell_file.read_text() != SPACE.dumps(genotype) + "\n":
                    for run in [base / f"retrain-{name}", *base.glob(f"retrain-{name}-r*")]:  # another cell than
                        shutil.rmtree(run, ignore_errors=True)                            # the one retrained there
                base.mkdir(parents=True, exist_ok=True)
                cell_file.write_text(SPACE.dumps(genotype) + "\n")
                accs = []
                for r, run in enumerate(runs):
                    if not retrained_with(run, args.retrain_epochs):
                        config = RetrainConfig(genotype=str(cell_file), dataset=recorded, epochs=args.retrain_epochs,
                                               layers=2, init_channels=16, batch_size=64, seed=seed + 100 * r,
                                               device="cpu")
                        run_retrain(config, train, test, RunDir(run), resume=finished(run, "checkpoint.pt"),
                                    progress=False)
                    accs.append(json.loads((run / "result.json").read_text())["test_acc"])
                results.setdefault(family, {}).setdefault(method, []).append(
                    {"seed": seed, "genotype": SPACE.to_text(genotype), "test_acc": statistics.mean(accs),
                     "retrain_accs": accs, "seconds": seconds})
    return results


def conditioning(args, out: Path) -> dict:
    """(c): per family, the zero-shot cells of both meta-runs over held-out episodes and the family's own search."""
    results: dict = {}
    for seed in range(args.seeds):
        config = natural_config(args, seed)
        _, meta_test, _ = config.distributions()
        metas = {m: load_meta(str(out / f"seed{seed}" / m), torch.device("cpu")).eval() for m in METHODS}
        for pool in meta_test.pools:
            family = Path(pool.spec.split(":", 1)[-1]).stem
            episodes = EpisodeDistribution([pool], config.task.ways, config.task.split_sizes)
            rng = random.Random(seed * 7 + 1)
            tasks = [episodes.sample(rng) for _ in range(args.episodes)]
            entry = results.setdefault(family, {})
            for method, meta in metas.items():
                with torch.no_grad():
                    cells = [SPACE.to_text(SPACE.derive(meta.start(meta.embed([t])[0]).logits)) for t in tasks]
                entry.setdefault(method, []).extend(cells)
            for k in range(args.family_searches):  # k > 0: another image sample and search seed
                search_seed, suffix = seed + 1000 * k, f"-{k}" if k else ""
                run = out / f"seed{seed}" / f"family-search-{family}{suffix}"
                data = class_images(pool, pool.labels(), config.teacher.teacher_images, search_seed)
                seed_everything(search_seed)
                recorded = in_memory(f"{data.name} held-out classes {pool.labels()}, {len(data)} images drawn with "
                                     f"seed {search_seed} (benchmarks/meta_zero_shot.py (c))")
                found = run_search(replace(config.teacher_search(search_seed), dataset=recorded), data,
                                   RunDir(run),
                                   resume=finished(run, "checkpoint.pt"), progress=False)
                cell = SPACE.from_json(found["genotype"])
                if config.teacher.teacher_probe_epochs:  # the family's search ends as a teacher's does
                    cell, _ = probed_cell(config, cell, data, search_seed,
                                          run.parent / f"family-probe-{family}{suffix}.json")
                entry.setdefault("family search", []).append(SPACE.to_text(cell))
            bank = json.loads((out / f"seed{seed}" / "teachers" / TEACHERS_FILE).read_text())["teachers"]
            entry.setdefault("family teachers", []).extend(t["genotype"] for t in bank if t["spec"] == pool.spec)
    return results


def report(args, a: dict, b: dict, c: dict, out: Path) -> list[str]:
    """The report of the parts that ran (a part not asked for has no section)."""
    lines = [f"Seeds: {args.seeds}; NAS-Bench-201 supernet C=8, 1 cell per stage, 16 px; mean ± std over seeds."]
    if a:
        lines += ["", "(a) CIFAR-10 (held out of meta-training), cells for the CIFAR-10 training images, NAS-Bench-201 "
                  "CIFAR-10 test accuracy (%):", "", "| method | NB201 CIFAR-10 | search seconds | cells |",
                  "|---|---|---|---|"]
    for method, rows in a.items():
        cells = len({r["genotype"] for r in rows if r["genotype"]})
        lines.append(f"| {method} | {mean_std([r['acc'] for r in rows], '.2f', '.2f')} | "
                     f"{mean_std([r['seconds'] for r in rows], '.3g', '.2g')} | {cells or '-'} distinct |")
    if b:
        lines += ["", f"(b) Held-out classes, retrained (2 cells per stage, C=16, {args.retrain_epochs} epochs, same "
                  f"recipe and seeds per method; {args.retrain_seeds} retraining(s) per cell and seed, averaged), test "
                  "accuracy:", "", "| family | method | test accuracy | search seconds |", "|---|---|---|---|"]
    for family, methods in b.items():
        for method, rows in methods.items():
            lines.append(f"| {family} | {method} | {mean_std([r['test_acc'] for r in rows], '.4f', '.4f')} | "
                         f"{mean_std([r['seconds'] for r in rows], '.3g', '.2g')} |")
    if not c:
        return lines
    lines += ["", f"(c) Zero-shot cells over {args.episodes} episodes of each family's held-out classes per seed, and "
              "the op shares (over all edges of those cells) next to where the family's own searches end: "
              f"{args.family_searches} on its held-out classes per seed (family search) and the teachers on its "
              "meta-train classes (family teachers). Distances to each: total variation between the op shares, and "
              "the mean over edges of the total variation between the per-edge op distributions (per edge):", "",
              "| family | source | distinct cells | " + " | ".join(SPACE.ops)
              + " | to family search: shares / per edge | to family teachers: shares / per edge |",
              "|---|---|---|" + "---|" * (len(SPACE.ops) + 2)]
    for family, sources in c.items():
        for source, cells in sources.items():
            distances = [profile_distances(SPACE, cells, sources[ref]) for ref in ("family search", "family teachers")]
            shares = op_frequencies(SPACE, cells)["cell"].mean(0)
            lines.append(f"| {family} | {source} | {len(set(cells))} | "
                         + " | ".join(f"{share:.2f}" for share in shares)
                         + "".join(f" | {whole:.2f} / {per_edge:.2f}" for whole, per_edge in distances) + " |")
    if len(c) > 1:
        lines.append("\nDo the families' own searches end in different places at all? Permutation test of the family "
                     "labels (evaluation/teacher_signal.py dataset_dependence: mean per-edge distance between the "
                     "families' "
                     "profiles against the same with the labels shuffled, 2,000 shuffles):")
        for source in ("family search", "family teachers"):
            groups = [family for family, sources in c.items() for _ in sources[source]]
            test = dataset_dependence(SPACE, groups, [cell for sources in c.values() for cell in sources[source]])
            lines.append(f"- {source}: {test['statistic']:.3f} against {test['shuffled_mean']:.3f} shuffled, "
                         f"p = {test['p_value']:.3f}")
    for method in METHODS:
        every = {cell for sources in c.values() for cell in sources[method]}
        modal = [len({Counter(sources[method][seed * args.episodes:(seed + 1) * args.episodes]).most_common(1)[0][0]
                      for sources in c.values()}) for seed in range(args.seeds)]
        lines.append(f"\n{method}: {len(every)} distinct zero-shot cells over all families and seeds; per seed, "
                     f"distinct most frequent cells of the {len(c)} families: {modal}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "meta_nb201_natural.yaml"))
    parser.add_argument("--cifar10", default=str(SHARED / "cifar10_train.npz"))
    parser.add_argument("--table", default=str(SHARED / "nb201" / "nats_bench.csv"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--meta-steps", type=int, help="imitation meta-steps instead of the config's")
    parser.add_argument("--imitate-pool", choices=("teacher", "dataset"), help="instead of the config's")
    parser.add_argument("--max-ways", type=int,
                        help="largest imitation episode instead of the config's (5: 5-way only)")
    parser.add_argument("--dataset-loss", type=float, help="weight of the data-set naming loss instead of the config's "
                                                           "(0: off)")
    parser.add_argument("--teacher-method", help="instead of the config's (also the families' own searches in (c))")
    parser.add_argument("--teacher-probe-epochs", type=int, help="instead of the config's (0: teachers without the "
                                                                 "skip probe)")
    parser.add_argument("--imitate-weight-steps", type=int, help="instead of the config's (0: the proposal alone, no "
                                                                 "start weights; ~40x faster meta-runs)")
    parser.add_argument("--meta-only", action="store_true", help="make the teachers and meta-runs, then stop (what "
                                                                 "budget_regret.py and latency_budgets.py read)")
    parser.add_argument("--adapt-steps", type=int, nargs="+", default=[0, 20, 100])
    parser.add_argument("--baselines", nargs="+", default=["darts1", "gdas", "pcdarts", "naswot-500"],
                        help="compare methods searched on the CIFAR-10 training images (naswot-500: the teachers' "
                             "own search, run on the target directly)")
    parser.add_argument("--retrain-searches", nargs="+", default=["darts1", "naswot-500"])
    parser.add_argument("--search-epochs", type=int, default=10)
    parser.add_argument("--random-cells", type=int, default=100)
    parser.add_argument("--retrain-families", nargs="+", default=["mnist", "gtsrb"])
    parser.add_argument("--retrain-images", type=int, default=2000)
    parser.add_argument("--retrain-epochs", type=int, default=10)
    parser.add_argument("--retrain-seeds", type=int, default=1,
                        help="(b): retrainings of each cell (seeds s, s + 100, ...); a seed's accuracy is their mean")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--family-searches", type=int, default=1,
                        help="(c): searches per seed on each family's held-out classes (another image sample each)")
    parser.add_argument("--parts", nargs="+", default=["a", "b", "c"], choices=("a", "b", "c"))
    parser.add_argument("--out", default="runs/meta-zero-shot")
    args = parser.parse_args()
    if args.retrain_seeds < 1:
        print(f"meta_zero_shot.py: error: --retrain-seeds must be at least 1, got {args.retrain_seeds}",
              file=sys.stderr)
        sys.exit(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = NB201Table.load(args.table)
    started = time.time()
    for seed in range(args.seeds):
        bank = ensure_teachers(args, seed, out)
        for method in METHODS:
            ensure_meta(args, seed, method, bank, out)
        print(f"seed {seed}: teachers and meta-runs ready ({time.time() - started:.0f}s)", flush=True)
    if args.meta_only:
        return
    a = cifar10(args, out, table) if "a" in args.parts else {}
    print(f"(a) done ({time.time() - started:.0f}s)", flush=True)
    c = conditioning(args, out) if "c" in args.parts else {}
    print(f"(c) done ({time.time() - started:.0f}s)", flush=True)
    b = retrain_comparison(args, out) if "b" in args.parts else {}
    costs = {f"seed{s}": {"teachers": sum(t["seconds"] for t in json.loads(
        (out / f"seed{s}" / "teachers" / TEACHERS_FILE).read_text())["teachers"]),
        **{m: sum(r["seconds"] for r in
                  torch.load(out / f"seed{s}" / m / "checkpoint.pt", weights_only=True)["metrics"])
           for m in METHODS}} for s in range(args.seeds)}
    # a run of some parts only writes its own files (results-c.json, report-c.md): it never blanks the full report
    suffix = "" if set(args.parts) == {"a", "b", "c"} else "-" + "".join(sorted(set(args.parts)))
    (out / f"results{suffix}.json").write_text(json.dumps({"args": vars(args), "a": a, "b": b, "c": c,
                                                           "one_off_seconds": costs}, indent=1) + "\n")
    lines = report(args, a, b, c, out)
    lines += ["", "One-off costs per seed (seconds): " + json.dumps(costs)]
    (out / f"report{suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
