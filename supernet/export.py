"""Export a network for deployment: the retrained network of a `train.py retrain` run (or, with `untrained`, a
genotype's network with random weights) as a torch.export program (`pt2`) or an ONNX model (`onnx`, with the optional
extra: pip install -e ".[onnx]").

The exported network takes what a deployment has, pixels in [0, 1] as float32 [N, C, H, W] (any N), and returns the
logits [N, classes]: the training's per-channel normalisation is part of it (DeployedNetwork), so nothing of the
training pipeline is needed beside the file. Before the file is written, the exported program is loaded back and run
on a seeded test batch; its outputs must equal the PyTorch network's within TOLERANCE, else nothing is written.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from image_sets.data import check_image_size
from run_kit import InputError
from run_kit.config import require_size
from run_kit.device import require_memory, require_model_fits
from run_kit.files import atomic_write_bytes, load_checkpoint

from .spaces import activation_bytes_lower_bound, create_network, entry_of, load_genotype

EXPORT_FORMATS = ("pt2", "onnx")
TOLERANCE = 1e-4  # largest |exported - PyTorch| logit accepted (float32 kernels differ by ~1e-6 here)
CHECK_BATCH = 4
MAX_RESULT_BYTES = 1_000_000
UNTRAINED_FORMAT = {"num_classes": 10, "channels": 3, "image_size": 32}  # an untrained export's defaults


class DeployedNetwork(nn.Module):
    """pixels in [0, 1] -> logits: (x - mean) / std through the network, its auxiliary head left out."""

    def __init__(self, network: nn.Module, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.network = network
        self.register_buffer("mean", mean.float().view(1, -1, 1, 1))
        self.register_buffer("std", std.float().view(1, -1, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.network((pixels - self.mean) / self.std)[0]


@dataclass
class ExportSource:
    network: DeployedNetwork
    space: str
    genotype: str
    channels: int
    image_size: int
    num_classes: int
    trained: bool


def _build(space, genotype, num_classes: int, channels: int, init_channels: int, layers: int, auxiliary: bool,
           image_size: int, precision: str = "fp32") -> nn.Module:
    """The network, once its sizes are known to fit: checked before anything is allocated (a result.json is data a
    user hands us, and --image-size may be absurd)."""
    for name, value in (("num_classes", num_classes), ("channels", channels), ("layers", layers),
                        ("init_channels", init_channels), ("image_size", image_size)):
        if not isinstance(value, int) or value < 1:
            raise InputError(f"--{name.replace('_', '-')} must be a whole number of at least 1, got {value}")
        require_size(name, value)
    check_image_size(image_size)
    space.check_image_size(image_size)
    build = lambda: create_network(genotype, num_classes, channels, init_channels, layers, auxiliary,  # noqa: E731
                                   image_size, precision)
    require_model_fits(build, "the network", copies=2)
    require_memory(4 * activation_bytes_lower_bound(space, init_channels, layers, space.active_edges(genotype),
                                                    CHECK_BATCH, image_size), f"exporting at {image_size} px")
    return build()


def _read_json(path: Path) -> dict[str, Any]:
    if path.stat().st_size > MAX_RESULT_BYTES:
        raise InputError(f"{path} is {path.stat().st_size:,} bytes; a run's result is a few hundred")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{path} is not a run's result.json") from None


def retrained_source(run: Path) -> ExportSource:
    """The retrained network of a retrain run directory, with its weights and its training's normalisation."""
    result = _read_json(run / "result.json")
    network = result.get("network")
    if not isinstance(network, dict):
        raise InputError(f"{run} was retrained before retrain recorded its network's input format; retrain it again "
                         f"(or export its genotype with --untrained)")
    config = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() else {}
    state = load_checkpoint(run)
    if "model" not in state or state.get("job") != "retrain":
        raise InputError(f"{run} holds no retrained weights (its checkpoint is not a retrain's)")
    space, genotype = load_genotype(str(run / "genotype.json") if (run / "genotype.json").is_file()
                                    else result["genotype"])
    try:
        sizes = [network[k] for k in ("num_classes", "channels", "init_channels", "layers", "auxiliary", "image_size",
                                      "pixel_mean", "pixel_std")]
    except KeyError as err:
        raise InputError(f"{run}/result.json lacks network.{err.args[0]}") from None
    model = _build(space, genotype, *sizes[:6], (config or {}).get("precision", "fp32"))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError:
        raise InputError(f"{run}: the checkpoint's weights do not fit the network its result describes") from None
    deployed = DeployedNetwork(model, torch.tensor(sizes[6], dtype=torch.float32),
                               torch.tensor(sizes[7], dtype=torch.float32))
    return ExportSource(deployed.eval(), space.name, space.to_text(genotype), network["channels"],
                        network["image_size"], network["num_classes"], True)


def untrained_source(spec: str, num_classes: int, channels: int, image_size: int, layers: int | None,
                     init_channels: int | None, seed: int = 0) -> ExportSource:
    """A genotype's evaluation network with random weights (seeded) and no normalisation (mean 0, std 1)."""
    space, genotype = load_genotype(spec)
    defaults = entry_of(space).inspect_defaults
    layers, init_channels = layers or defaults["layers"], init_channels or defaults["init_channels"]
    torch.manual_seed(seed)
    model = _build(space, genotype, num_classes, channels, init_channels, layers, False, image_size)
    deployed = DeployedNetwork(model, torch.zeros(channels), torch.ones(channels))
    return ExportSource(deployed.eval(), space.name, space.to_text(genotype), channels, image_size, num_classes,
                        False)


def export_source(spec: str, untrained: bool, num_classes: int = 10, channels: int = 3, image_size: int = 32,
                  layers: int | None = None, init_channels: int | None = None) -> ExportSource:
    """What `spec` names: a retrain run directory (its weights), or with `untrained` any genotype."""
    path = Path(spec)
    is_run = len(spec) < 4096 and path.is_dir()
    if is_run and (path / "result.json").is_file() and not untrained:
        return retrained_source(path)
    if not untrained:
        what = (f"{path} is not a retrain run (no result.json): it holds no trained weights" if is_run
                else f"{spec} is a genotype, not a retrain run: it has no trained weights")
        raise InputError(f"{what}; retrain it (train.py retrain --genotype ...) and export the retrain run, or pass "
                         f"--untrained to export the network with random weights")
    return untrained_source(spec, num_classes, channels, image_size, layers, init_channels)


def _check_writable(out: Path) -> None:
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise InputError(f"--out {out} is a directory; name the file to write")
    if not parent.is_dir():
        raise InputError(f"--out {out}: the directory {parent} does not exist")
    probe = parent / f".{out.name}.probe"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise InputError(f"--out {out} cannot be written ({err.strerror})") from None


def _pt2(network: nn.Module, example: torch.Tensor) -> tuple[bytes, torch.Tensor]:
    batch = torch.export.Dim("batch", min=1, max=65536)
    program = torch.export.export(network, (example,), dynamic_shapes={"pixels": {0: batch}})
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    data = buffer.getvalue()
    with torch.no_grad():
        return data, torch.export.load(io.BytesIO(data)).module()(example)


def _onnx(network: nn.Module, example: torch.Tensor) -> tuple[bytes, torch.Tensor]:
    try:
        import onnxruntime
        import onnxscript  # noqa: F401 - torch.onnx's exporter needs it
    except ImportError:
        raise InputError('--format onnx needs the onnx extra: pip install -e ".[onnx]" (onnx, onnxscript, '
                         'onnxruntime)') from None
    batch = torch.export.Dim("batch", min=1, max=65536)
    with contextlib.redirect_stdout(sys.stderr):  # the exporter reports its steps on stdout, which is our JSON's
        program = torch.onnx.export(network, (example,), dynamo=True, dynamic_shapes={"pixels": {0: batch}},
                                    input_names=["pixels"], output_names=["logits"], verbose=False)
    buffer = io.BytesIO()
    program.save(buffer)
    data = buffer.getvalue()
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    return data, torch.from_numpy(session.run(None, {"pixels": example.numpy()})[0])


def export_network(source: ExportSource, fmt: str, out: str | Path) -> dict[str, Any]:
    """Export, check the exported outputs against the network's on a seeded batch, then write `out` (atomically)."""
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"unknown export format {fmt!r}; one of {', '.join(EXPORT_FORMATS)}")
    out = Path(out)
    _check_writable(out)
    example = torch.rand(CHECK_BATCH, source.channels, source.image_size, source.image_size,
                         generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = source.network(example)
    data, exported = (_pt2 if fmt == "pt2" else _onnx)(source.network, example)
    difference = float((exported - expected).abs().max())
    if not difference <= TOLERANCE:
        raise InputError(f"the exported network's outputs differ from PyTorch's by {difference:.3g} (more than "
                         f"{TOLERANCE:g}) on the check batch; nothing written")
    atomic_write_bytes(out, data)
    return {"out": str(out), "format": fmt, "bytes": len(data), "space": source.space, "genotype": source.genotype,
            "trained": source.trained, "input": [source.channels, source.image_size, source.image_size],
            "num_classes": source.num_classes, "check_batch": CHECK_BATCH, "max_abs_difference": difference}
