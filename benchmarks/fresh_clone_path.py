"""The deployment path as a new user runs it: a fresh clone of this repository's HEAD in a directory with no
../shared beside it, a fresh virtual environment, `pip install -e .` (its dependencies from the package index), then
the README's three commands (pretrained proposal under a FLOPs budget -> retrain -> export). Records each step's exit
status and wall time.

    python benchmarks/fresh_clone_path.py       # ~4 min on 2 CPU cores (most of it pip); then render_results.py

Writes docs/results/data/fresh-clone-path/steps.csv (step, command, exit status, seconds, what it printed last).
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from evaluation.study_tables import fresh_clone_tables, write_rows

ROOT = Path(__file__).resolve().parent.parent
STEPS = (  # (step, as the user types it, as run here from the work directory)
    ("clone", "git clone REPO taskdarts", "git clone --quiet {repo} taskdarts"),
    ("venv", "python -m venv venv", "{python} -m venv venv"),
    ("install", "venv/bin/pip install -e taskdarts", "venv/bin/python -m pip install --quiet -e taskdarts"),
    ("propose", "python train.py search --meta pretrained --dataset digits --max-flops-m 20 --out runs/cell",
     "venv/bin/python taskdarts/train.py search --meta pretrained --dataset digits --max-flops-m 20 --out runs/cell"),
    ("retrain", "python train.py retrain --genotype runs/cell --dataset digits --epochs 20 --out runs/net",
     "venv/bin/python taskdarts/train.py retrain --genotype runs/cell --dataset digits --epochs 20 --no-progress "
     "--out runs/net"),
    ("export", "python train.py export runs/net --format pt2 --out net.pt2",
     "venv/bin/python taskdarts/train.py export runs/net --format pt2 --out net.pt2"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "docs" / "results" / "data" / "fresh-clone-path"))
    args = parser.parse_args()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory(prefix="fresh-clone-") as work:
        assert not (Path(work).parent / "shared").exists(), "the clone must not see ../shared"
        for step, shown, template in STEPS:
            command = template.format(repo=shlex.quote(str(ROOT)), python=shlex.quote(sys.executable))
            started = time.perf_counter()
            done = subprocess.run(command, shell=True, cwd=work, capture_output=True, text=True)
            seconds = time.perf_counter() - started
            last = (done.stdout.strip().splitlines() or done.stderr.strip().splitlines() or [""])[-1]
            if step in ("clone", "venv", "install") and done.returncode == 0:
                last = ""  # what pip prints is about the machine's package index, not the step's result
            if step == "propose" and done.returncode == 0:
                report = json.loads(last)
                last = f"proposal seconds {report['seconds']}, genotype {report['genotype']['arch']}"
            elif step == "retrain" and done.returncode == 0:
                last = "test accuracy {test_acc:.4f}".format(**json.loads((Path(work) / "runs/net/result.json")
                                                                          .read_text()))
            elif step == "export" and done.returncode == 0:
                report = json.loads(last)
                last = f"{report['bytes']:,} bytes, max |exported - PyTorch| {report['max_abs_difference']:.2g}"
            rows.append({"step": step, "command": shown, "exit": done.returncode, "seconds": f"{seconds:.1f}",
                         "commit": commit, "result": last[:200]})
            print(rows[-1], flush=True)
            if done.returncode != 0:
                print(done.stderr[-2000:], file=sys.stderr)
                break
    write_rows(Path(args.data) / "steps.csv", rows)
    print(fresh_clone_tables(Path(args.data)))


if __name__ == "__main__":
    main()
