"""Remake the pretrained meta-model that ships (meta/pretrained/nb201_predictor.pt) from the tables under ../shared.

    python benchmarks/make_pretrained.py        # ~2 min on 2 CPU cores; deterministic

Trained on every task's accuracy column but CIFAR-10's and every device's latency column but three held-out HELP
devices' (meta/pretrained.py). Writes the model file and docs/results/data/pretrained/record.json: the command, the
config, the SHA-256 of every data file read, what was held out and how well the encoder predicts cells it was not
trained on.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch
from tqdm import tqdm

from meta.experience import load_experience
from meta.pretrained import PRETRAINED_FILE, PretrainConfig, fit_pretrained
from run_kit.files import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
CPU_LATENCY = ROOT / "docs" / "results" / "data" / "latency-budgets" / "nb201_latency_cpu.csv.gz"
COMMAND = "python benchmarks/make_pretrained.py"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nats", default=str(SHARED / "nb201" / "nats_bench.csv"))
    parser.add_argument("--hw360", default=str(SHARED / "hardware" / "nb201_hw_nas_bench_360.csv"))
    parser.add_argument("--help-latency", default=str(SHARED / "hardware" / "nb201_latency_help.csv"))
    parser.add_argument("--measured", default=str(CPU_LATENCY))
    parser.add_argument("--out", default=str(PRETRAINED_FILE))
    parser.add_argument("--record", default=str(ROOT / "docs" / "results" / "data" / "pretrained" / "record.json"))
    args = parser.parse_args()
    torch.set_num_threads(2)  # the encoder's fit is bit-reproducible at a fixed thread count
    config = PretrainConfig()
    experience = load_experience(args.nats, args.hw360, args.help_latency, (args.measured,))
    with tqdm(total=config.epochs, desc="encoder", leave=False) as bar:
        def progress(epoch: int, loss: float) -> None:
            bar.update()
            bar.set_postfix(loss=f"{loss:.4f}")

        model = fit_pretrained(experience, config, progress)
    data = {Path(p).name: sha256(Path(p)) for p in (args.nats, args.hw360, args.help_latency, args.measured)}
    model.record.update({"command": COMMAND, "data_sha256": data, "torch": str(torch.__version__), "threads": 2})
    model.save(args.out)
    record = {**model.record, "accuracy_designs": {k: str(d) for k, d in model.accuracy_designs.items()},
              "latency_design": str(model.latency_design), "file_bytes": Path(args.out).stat().st_size,
              "parameters": sum(p.numel() for p in model.encoder.parameters())}
    atomic_write_text(Path(args.record), json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
