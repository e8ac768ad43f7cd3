"""Run plumbing shared by every command: the user-facing errors, typed configs, atomic files and checkpoints, run
directories, device and RNG state, data parallelism, and the one resumable driver that search, retrain and
meta-train run through (`loop.run_job`)."""
from .errors import InputError, RunDiverged

__all__ = ["InputError", "RunDiverged"]
