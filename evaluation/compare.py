"""`train.py compare`: every method searches with the same data, seeds and budget; every genotype is retrained with
the same recipe and seeds on the same split; one table.

Layout of the output directory:
  results.csv, results.json    one row per method x seed
  report.md                    per method: mean ± std over seeds and the seeds' spread
  accuracy_vs_search_cost.png
  <method>/seed<S>/{search/, retrain/, genotype.json, cells/*.png}
Finished method/seed pairs are never redone: `--resume` skips them, and an interrupted search or retraining continues
from its own checkpoint.
"""
from __future__ import annotations

import csv
import io
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

import meta.proposers  # noqa: F401  (registers the meta-learned proposers)
from image_sets import DataOptions
from run_kit import InputError
from run_kit.cli import option
from run_kit.config import Config, require_at_least
from run_kit.files import atomic_write_text
from run_kit.run_dir import RunDir
from search_spaces.plot import plot_genotype
from supernet.proposers import ProposalRequest, create_proposer, proposer_names
from supernet.retrain import RetrainConfig, run_retrain
from supernet.spaces import get_space, space_names

from .nb201_table import TABLE_SPACE, NB201Table


def method_help() -> str:
    """What `--methods` takes: every registered proposer (supernet/proposers.py), and `published`."""
    return proposer_names()


@dataclass
class CompareConfig(DataOptions, Config):
    kind = "compare"

    space: str = option("darts", choices=space_names)
    methods: list[str] = option(default_factory=lambda: ["darts1", "gdas", "random"], help=method_help,
                                metavar="METHOD")
    seeds: int = option(3)
    search_epochs: int = option(8)
    candidates: int = option(100, "cells the training-free methods (naswot, synflow) score")
    layers: int = option(5, "the searches' supernet: cells (darts) or cells per stage (nb201)")
    init_channels: int = option(8)
    batch_size: int = option(64)
    retrain_epochs: int = option(10)
    retrain_layers: int = option(8)
    retrain_channels: int = option(16)
    retrain_batch_size: int | None = option(None, "None: the space's recipe (DARTS 96, NAS-Bench-201 256)")
    auxiliary: bool = option(False)
    cutout: bool = option(False)
    meta: str | None = option(None, "meta-checkpoint for the taskdarts-K methods", metavar="META_CKPT")
    exclude_ops: list[str] = option(default_factory=list, help="ops no method's cell may use", metavar="OP")
    nb201_table: str | None = option(None, "NATS-Bench topology CSV: add benchmark accuracies", metavar="PATH")
    device: str = option("auto", "auto (CUDA if available), cpu, cuda, cuda:N")


    def validate(self) -> None:
        super().validate()
        self.expanded_methods()

    def expanded_methods(self) -> list[str]:
        """Method names with `published` expanded; validated against the space."""
        space = get_space(self.space)
        require_at_least(self, 1, "seeds", "search_epochs", "layers", "init_channels", "batch_size",
                         "retrain_layers", "retrain_channels", "candidates")
        if self.retrain_batch_size is not None:
            require_at_least(self, 1, "retrain_batch_size")
        require_at_least(self, 0, "retrain_epochs")
        methods: list[str] = []
        for method in self.methods:
            if method == "published" and not space.baselines:
                raise InputError(f"method 'published' does not fit --space {space.name}: it has no published genotypes")
            names = list(space.baselines) if method == "published" else [method]
            for name in names:
                if create_proposer(name, space).needs_meta and not self.meta:
                    raise InputError(f"method '{name}' needs --meta META_CKPT")
                if name not in methods:
                    methods.append(name)
        if not methods:
            raise InputError("--methods is empty")
        if self.retrain_epochs == 0 and not self.nb201_table:
            raise InputError("--retrain-epochs 0 leaves nothing to compare; give --nb201-table for NAS-Bench-201 "
                             "benchmark accuracies, or retrain")
        if self.nb201_table and self.space != TABLE_SPACE:
            raise InputError(f"--nb201-table applies to --space {TABLE_SPACE} only")
        return methods


class Comparison:
    def __init__(self, config: CompareConfig, out: Path, progress: bool = True):
        self.config = config
        self.methods = config.expanded_methods()
        self.space = get_space(config.space)
        self.out = out
        self.progress = progress
        self.table = None
        if config.nb201_table:
            self.table = NB201Table.load(config.nb201_table)
        self.rows: list[dict[str, Any]] = []

    def pairs(self) -> list[tuple[str, int]]:
        return [(method, seed) for seed in range(self.config.seeds) for method in self.methods]

    def load_rows(self) -> None:
        path = self.out / "results.json"
        if path.is_file():
            try:
                saved = json.loads(path.read_text())
                rows, space = saved["rows"], saved["config"]["space"]
            except (ValueError, KeyError, TypeError):
                raise InputError(f"{path} is not a comparison's results file") from None
            if space != self.config.space:
                raise InputError(f"{path} belongs to a comparison in another space")
            self.rows = rows

    def done(self, method: str, seed: int) -> bool:
        return any(r["method"] == method and r["seed"] == seed for r in self.rows)

    def run(self, resume: bool) -> list[dict[str, Any]]:
        c = self.config
        run = RunDir(self.out, marker="config.yaml")
        run.check(resume)
        train, test = c.load("train"), c.load("test")
        self.space.check_image_size(train.image_size)
        with run.claim(resume):
            if resume:
                self.load_rows()
            else:
                run.save_config(asdict(self.config))
            return self._run_pairs(train, test)

    def _run_pairs(self, train, test) -> list[dict[str, Any]]:
        todo = [pair for pair in self.pairs() if not self.done(*pair)]
        started = time.time()
        bar = tqdm(todo, desc="compare", disable=not self.progress, unit="run")
        for k, (method, seed) in enumerate(bar):
            bar.set_description(f"compare {method} seed {seed}")
            if k:
                elapsed = time.time() - started
                bar.write(f"{method} seed {seed}: {k}/{len(todo)} done, about {elapsed / k * (len(todo) - k) / 60:.1f} "
                          f"min left")
            self.rows.append(self.run_pair(method, seed, train, test))
            self.write()
        bar.close()
        self.write(final=True)
        return self.rows

    def run_pair(self, method: str, seed: int, train, test) -> dict[str, Any]:
        c = self.config
        pair_dir = self.out / method / f"seed{seed}"
        search_dir = pair_dir / "search"
        request = ProposalRequest(space=self.space, dataset=c.dataset, data_root=c.data_root, seed=seed,
                                  device=c.device, search_epochs=c.search_epochs, candidates=c.candidates,
                                  layers=c.layers, init_channels=c.init_channels, batch_size=c.batch_size,
                                  image_size=c.image_size, meta=c.meta, exclude_ops=tuple(c.exclude_ops))
        proposal = create_proposer(method, self.space).propose(request, train, search_dir)
        genotype, search_seconds = proposal.genotype, proposal.search_seconds
        atomic_write_text(pair_dir / "genotype.json", self.space.dumps(genotype) + "\n")
        plot_genotype(self.space, genotype, pair_dir / "cells")
        row: dict[str, Any] = {"method": method, "seed": seed, "genotype": self.space.to_text(genotype),
                               "search_seconds": round(search_seconds, 2)}
        if c.retrain_epochs > 0:
            retrain_dir = pair_dir / "retrain"
            config = RetrainConfig(genotype=str(pair_dir / "genotype.json"), dataset=c.dataset, data_root=c.data_root,
                                   image_size=c.image_size, epochs=c.retrain_epochs, layers=c.retrain_layers,
                                   init_channels=c.retrain_channels, batch_size=c.retrain_batch_size, seed=seed,
                                   auxiliary=c.auxiliary, cutout=c.cutout, device=c.device)
            result = run_retrain(config, train, test, RunDir(retrain_dir),
                                 resume=(retrain_dir / "checkpoint.pt").exists(), progress=False)
            row.update({"retrain_seconds": result["train_seconds"], "test_acc": result["test_acc"],
                        "params_m": result["params_m"], "flops_m": result["flops_m"]})
        if self.table is not None:
            row.update({f"nb201_{k}": v for k, v in self.table.lookup(genotype).as_dict().items()})
        return row

    def write(self, final: bool = False) -> None:
        atomic_write_text(self.out / "results.json", json.dumps({"config": asdict(self.config), "rows": self.rows},
                                                                indent=1) + "\n")
        if self.rows:
            fields = list(dict.fromkeys(key for row in self.rows for key in row))
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=fields)
            writer.writeheader()
            writer.writerows(self.rows)
            atomic_write_text(self.out / "results.csv", buffer.getvalue())
        if final and self.rows:
            atomic_write_text(self.out / "report.md", self.report())
            self.plot()

    def metric(self) -> tuple[str, str]:
        if self.config.retrain_epochs > 0:
            return "test_acc", "test accuracy (retrained)"
        return "nb201_cifar10", "NAS-Bench-201 CIFAR-10 test accuracy (%)"

    def report(self) -> str:
        c = self.config
        retrain = (f"retrain {c.retrain_epochs} epochs ({c.retrain_layers} cells, C={c.retrain_channels}"
                   f"{', auxiliary' if c.auxiliary else ''}{', cutout' if c.cutout else ''})" if c.retrain_epochs
                   else "no retraining (NAS-Bench-201 table accuracies)")
        lines = [f"# Comparison: {c.space} space on {c.dataset}", "",
                 f"{c.seeds} seeds; search {c.search_epochs} epochs ({c.layers} cells, C={c.init_channels}); "
                 f"{retrain}. Mean ± std over seeds; spread = min..max over seeds. Search seconds exclude data "
                 f"loading and meta-training.", ""]
        lines += comparison_table(c, self.rows, self.table is not None)
        lines += ["", "Genotypes:", ""]
        lines += [f"- {r['method']} seed {r['seed']}: `{r['genotype']}`" for r in self.rows]
        return "\n".join(lines) + "\n"

    def plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        key, label = self.metric()
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for method in self.methods:
            rows = [r for r in self.rows if r["method"] == method]
            if not rows:
                continue
            cost = [r["search_seconds"] + 1 for r in rows]
            values = [r[key] for r in rows]
            ax.errorbar(statistics.mean(cost), statistics.mean(values),
                        yerr=statistics.stdev(values) if len(values) > 1 else 0, fmt="o", capsize=4, label=method)
            ax.scatter(cost, values, s=10, alpha=0.4)
        ax.set_xscale("log")
        ax.set_xlabel("search cost: seconds + 1 (log)")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        tmp = self.out / ".accuracy_vs_search_cost.tmp.png"
        fig.savefig(tmp, dpi=120)
        plt.close(fig)
        tmp.replace(self.out / "accuracy_vs_search_cost.png")


def comparison_table(config: CompareConfig, rows: list[dict[str, Any]], with_table: bool) -> list[str]:
    """The per-method table of a comparison (report.md, and docs/results' studies rendered from results.json):
    mean ± std over seeds of each column, and the seeds' spread of the metric."""
    columns = [("search_seconds", "search s")]
    if config.retrain_epochs > 0:
        columns += [("test_acc", "test acc"), ("params_m", "params M"), ("flops_m", "FLOPs M"),
                    ("retrain_seconds", "retrain s")]
    if with_table:
        columns += [("nb201_cifar10", "NB201 CIFAR-10"), ("nb201_cifar100", "NB201 CIFAR-100"),
                    ("nb201_imagenet16_120", "NB201 ImageNet16-120")]
    key = "test_acc" if config.retrain_epochs > 0 else "nb201_cifar10"
    lines = ["| method | " + " | ".join(label for _, label in columns) + f" | spread of {key} |",
             "|---|" + "---|" * (len(columns) + 1)]
    for method in config.expanded_methods():
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        cells = [mean_std([r[k] for r in mine]) for k, _ in columns]
        values = [r[key] for r in mine]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {min(values):.4g}..{max(values):.4g} |")
    return lines


def mean_std(values, mean_format: str = ".4g", std_format: str = ".2g") -> str:
    """'mean ± std' over seeds (sample std), one value as itself, none as '-': every report's number format."""
    values = [float(v) for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:{mean_format}}"
    return f"{statistics.mean(values):{mean_format}} ± {statistics.stdev(values):{std_format}}"
