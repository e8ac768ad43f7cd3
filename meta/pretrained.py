"""The pretrained meta-model that ships: a CellEncoder (meta/cell_encoder.py) that has learned, over every
NAS-Bench-201 cell, what the earlier tasks and devices measured of it, and the predictor designs chosen for it.

    tables (training tasks and devices only) --fit_pretrained--> PretrainedModel --save--> meta/pretrained/*.pt
    PretrainedModel --accuracy(K)--> AccuracyPredictor   (learned columns instead of the tables)
    PretrainedModel --latency()-->   LatencyPredictor     (learned device components instead of the tables)

What it is trained on is fixed by construction: every accuracy column but the held-out task's (CIFAR-10, the task on
which every figure of the model is scored) and every latency column but the held-out devices' (one HELP GPU, one HELP
server CPU and one HELP phone or edge board, drawn with their own seed), removed by meta/experience.split before
anything is fitted. A share of the cells (seeded) is kept out of the encoder's training to measure how well it
predicts cells it has not seen; the record of all this travels inside the file and is written to docs by
benchmarks/make_pretrained.py, which remakes the file.

The file holds only tensors, numbers and strings, and is loaded with weights_only=True.
"""
from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from run_kit import InputError
from run_kit.ranking import spearman
from supernet.costs import every_cell

from .accuracy_predictor import AccuracyPredictor, PredictorDesign, transform_column
from .cell_encoder import CellEncoder
from .experience import SPACE, Experience
from .latency_predictor import LatencyDesign, LatencyPredictor, device_components

PRETRAINED_DIR = Path(__file__).with_name("pretrained")
PRETRAINED_FILE = PRETRAINED_DIR / "nb201_predictor.pt"
FORMAT = 1
HELD_OUT_TASK = "cifar10"
MAX_PRETRAINED_BYTES = 50_000_000
# HELP's devices by kind, so that the held-out devices are one of each (meta/experience.py names the columns)
DEVICE_KINDS = {"gpu": ("1080ti", "2080ti", "titan"), "server cpu": ("gold", "silver"),
                "phone or edge": ("essential", "pixel2", "raspi", "samsung")}


@dataclass(frozen=True)
class PretrainConfig:
    held_out_seed: int = 0  # draws the held-out devices
    cell_split_seed: int = 0  # draws the cells kept out of the encoder's training
    held_out_cells: float = 0.1
    seed: int = 0  # the encoder's initialisation and batch order
    hidden: int = 256
    layers: int = 3
    epochs: int = 200
    batch_size: int = 256
    lr: float = 3e-3
    latency_components: int = 8
    probe_counts: tuple[int, ...] = (0, 10, 20)  # a design is chosen for each; a request uses the nearest


def held_out_devices(devices: Sequence[str], seed: int) -> list[str]:
    """One HELP device of each kind (DEVICE_KINDS), drawn with `seed`."""
    draw = random.Random(seed)
    chosen = []
    for prefixes in DEVICE_KINDS.values():
        kind = sorted(d for d in devices if d.startswith(prefixes))
        if kind:
            chosen.append(draw.choice(kind))
    return chosen


def learned_columns(training: Experience, components: int) -> dict[str, torch.Tensor]:
    """What the encoder learns, each column on unit variance: per training task its rank-normal and standardised
    accuracies (the two transforms a PredictorDesign may use), and the training devices' latency components."""
    columns = {}
    for task, column in training.accuracy.items():
        for transform in ("rank", "zscore"):
            columns[f"{task}:{transform}"] = transform_column(column, transform)
    if training.latency_ms:
        latency = device_components(training, min(components, len(training.latency_ms)))
        columns.update({f"latency:{j}": latency[:, j] for j in range(latency.shape[1])})
    return columns


def fit_encoder(columns: dict[str, torch.Tensor], config: PretrainConfig,
                progress: Callable[[int, float], None] | None = None) -> tuple[CellEncoder, dict[str, float]]:
    """The encoder trained on the columns over all but the held-out share of cells; (encoder, column -> Spearman of
    its prediction on the held-out cells)."""
    cells = every_cell(SPACE.num_edges, len(SPACE.ops))
    target = torch.stack([c.float() for c in columns.values()], 1)
    order = torch.randperm(len(cells), generator=torch.Generator().manual_seed(config.cell_split_seed))
    kept = round(config.held_out_cells * len(cells))
    unseen, seen = order[:kept], order[kept:]
    torch.manual_seed(config.seed)
    encoder = CellEncoder(SPACE.num_edges, len(SPACE.ops), target.shape[1], config.hidden, config.layers)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=config.lr)
    steps = config.epochs * math.ceil(len(seen) / config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    shuffle = torch.Generator().manual_seed(config.seed)
    for epoch in range(config.epochs):
        total = 0.0
        for batch in seen[torch.randperm(len(seen), generator=shuffle)].split(config.batch_size):
            loss = torch.nn.functional.mse_loss(encoder(cells[batch]), target[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        if progress is not None:
            progress(epoch, total / len(seen))
    encoder.eval()
    with torch.no_grad():
        predicted = encoder(cells[unseen]).double()
    fit = {name: spearman(predicted[:, j], column[unseen]) if kept else math.nan
           for j, (name, column) in enumerate(columns.items())}
    return encoder, fit


@dataclass
class PretrainedModel:
    encoder: CellEncoder
    columns: list[str]
    accuracy_designs: dict[int, PredictorDesign]
    latency_design: LatencyDesign
    record: dict[str, Any] = field(default_factory=dict)  # provenance: config, data, held-out task, devices, fit

    @property
    def tasks(self) -> list[str]:
        return sorted({c.split(":")[0] for c in self.columns if not c.startswith("latency:")},
                      key=lambda t: self.columns.index(f"{t}:rank"))

    @property
    def devices(self) -> list[str]:
        return list(self.record.get("trained_devices", []))

    @functools.cached_property
    def outputs(self) -> torch.Tensor:
        """[cells, columns] the encoder's prediction of every cell (float64)."""
        with torch.no_grad():
            return self.encoder.eval()(every_cell(SPACE.num_edges, len(SPACE.ops))).double()

    def design_for(self, probe_count: int) -> PredictorDesign:
        """The accuracy design chosen for the nearest probe count (ties: the smaller)."""
        return self.accuracy_designs[min(self.accuracy_designs, key=lambda k: (abs(k - probe_count), k))]

    def accuracy(self, probe_count: int) -> AccuracyPredictor:
        """The accuracy predictor on the encoder's columns, with the design chosen for `probe_count` probes."""
        design = self.design_for(probe_count)
        learned = {t: self.outputs[:, self.columns.index(f"{t}:{design.transform}")] for t in self.tasks}
        return AccuracyPredictor(None, design, learned)

    def latency(self) -> LatencyPredictor:
        """The latency predictor on the encoder's device components (adapt it to a profile)."""
        index = [j for j, c in enumerate(self.columns) if c.startswith("latency:")]
        if not index:
            raise InputError("this pretrained model has learned no latency")
        components = self.outputs[:, index]
        return LatencyPredictor(Experience(), self.latency_design, components / components.std(0))

    def save(self, path: str | Path) -> None:
        from run_kit.files import save_checkpoint

        shape = {"num_edges": self.encoder.num_edges, "num_ops": self.encoder.num_ops,
                 "outputs": len(self.columns), "hidden": self.encoder.out.in_features,
                 "layers": sum(isinstance(m, torch.nn.Linear) for m in self.encoder.body)}
        save_checkpoint({"format": FORMAT, "kind": "taskdarts-pretrained", "space": SPACE.name, "shape": shape,
                         "encoder": self.encoder.state_dict(), "columns": list(self.columns),
                         "accuracy_designs": {str(k): asdict(d) for k, d in self.accuracy_designs.items()},
                         "latency_design": asdict(self.latency_design), "record": self.record}, Path(path))


def fit_pretrained(experience: Experience, config: PretrainConfig = PretrainConfig(),
                   progress: Callable[[int, float], None] | None = None) -> PretrainedModel:
    """The pretrained model from the tables: hold out the task HELD_OUT_TASK and one HELP device of each kind
    (meta/experience.split: their columns never reach anything fitted), choose the accuracy design for each probe
    count by leave-one-task-out and the latency design by leave-one-device-out among the training columns (as
    benchmarks/predictor_study.py does: 5 FLOPs budgets of the 10-class 32 px evaluation network; the 20 reference
    cells as the profile), then fit the encoder to the training columns."""
    from supernet.budget_scoring import quantile_bounds
    from supernet.costs import cell_costs, cost_terms
    from supernet.latency import reference_cells

    from .accuracy_predictor import TRANSFORMS, choose_design
    from .experience import cell_index, split
    from .latency_predictor import choose_latency_design

    if HELD_OUT_TASK not in experience.accuracy:
        raise InputError(f"the experience lacks the held-out task {HELD_OUT_TASK}")
    devices = held_out_devices(list(experience.latency_ms), config.held_out_seed)
    training = split(experience, task=HELD_OUT_TASK).training.without(devices=tuple(devices))
    flops = cost_terms(cell_costs(SPACE.name, 10, 3, 32))["flops_m"].of_cells(every_cell(SPACE.num_edges,
                                                                                          len(SPACE.ops)))
    bounds = quantile_bounds(flops, 5)
    designs = {}
    for count in config.probe_counts:
        grid = [PredictorDesign(transform=t) for t in TRANSFORMS] if count == 0 else None
        designs[count] = choose_design(training, count, flops, bounds, grid)[0]
    references = [cell_index(g) for g in reference_cells(SPACE)]
    prior = AccuracyPredictor(training, designs[min(designs)])
    latency_design = (choose_latency_design(training, references, prior.predict(prior.prior_z))[0]
                      if len(training.latency_ms) >= 2 else LatencyDesign())
    columns = learned_columns(training, config.latency_components)
    encoder, fit = fit_encoder(columns, config, progress)
    record = {"config": asdict(config), "held_out_task": HELD_OUT_TASK, "held_out_devices": devices,
              "trained_tasks": list(training.accuracy), "trained_devices": list(training.latency_ms),
              "unseen_cell_spearman": {k: round(v, 4) for k, v in fit.items()},
              "latency_profile_cells": len(references)}
    return PretrainedModel(encoder, list(columns), designs, latency_design, record)


def load_pretrained(path: str | Path = PRETRAINED_FILE) -> PretrainedModel:
    """A pretrained model file (weights_only: data, never code); one line when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"pretrained model {path} does not exist")
    if path.stat().st_size > MAX_PRETRAINED_BYTES:
        raise InputError(f"{path} is {path.stat().st_size:,} bytes; a pretrained model is a few MB at most")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same bad input
        raise InputError(f"{path} is not a pretrained model file ({type(err).__name__})") from None
    if not isinstance(saved, dict) or saved.get("kind") != "taskdarts-pretrained" or saved.get("format") != FORMAT:
        raise InputError(f"{path} is not a TaskDARTS pretrained model (format {FORMAT})")
    shape = saved["shape"]
    encoder = CellEncoder(shape["num_edges"], shape["num_ops"], shape["outputs"], shape["hidden"], shape["layers"])
    encoder.load_state_dict(saved["encoder"])
    return PretrainedModel(encoder, list(saved["columns"]),
                           {int(k): PredictorDesign(**d) for k, d in saved["accuracy_designs"].items()},
                           LatencyDesign(**saved["latency_design"]), saved["record"])
