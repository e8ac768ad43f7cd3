import contextlib
import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

# A DARTS-space search small enough for tests: 3 cells of 4 channels on native 8 px digits.
TINY_SEARCH = ["--space", "darts", "--layers", "3", "--init-channels", "4", "--batch-size", "64", "--no-progress"]


def load_benchmark(name: str):
    """A script of benchmarks/ as a module (they are scripts, not a package); its imports of sibling scripts resolve
    as when it runs."""
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.append(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(*args: str) -> tuple[int, str, str]:
    """Run train.main in-process; returns (exit status, stdout, stderr)."""
    import train

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = train.main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def run_cli_process(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run train.py in a fresh interpreter, as a user does (real exit status, real stderr)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=300)


