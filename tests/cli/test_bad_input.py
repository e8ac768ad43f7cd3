"""Every class of bad or hostile input: one line on stderr, a clear exit status, nothing half-written, nothing run
from a file, no absurd allocation. docs/bad_input.md lists each case with what the program does."""
import csv
import fcntl
import json
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from image_sets import load_dataset
from run_kit import InputError
from run_kit.files import UMASK
from tests.helpers import ROOT, TINY_SEARCH, run_cli

TINY_NB201 = ["--space", "nb201", "--layers", "1", "--init-channels", "4", "--no-progress"]


def assert_one_line(code, stderr, message, expected_code=2):
    assert code == expected_code, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in stderr, stderr


# --- security: checkpoints are data --------------------------------------------------------------------------------

class Payload:
    """Unpickling this runs `touch MARKER`: what a hostile checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def search_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bad") / "search"
    code, _, stderr = run_cli("search", *TINY_NB201, "--epochs", "2", "--stop-after-epoch", "1", "--out", str(out))
    assert code == 0, stderr
    return out


def _hostile_copy(run_dir, tmp_path, marker):
    hostile = tmp_path / "hostile"
    shutil.copytree(run_dir, hostile)
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    state["metrics"] = Payload(marker)
    torch.save(state, hostile / "checkpoint.pt")  # a real checkpoint with one hostile object in it
    return hostile


@pytest.mark.parametrize("command", ["derive", "resume", "meta", "meta-resume"])
def test_a_hostile_checkpoint_runs_nothing(search_run, tmp_path, command):
    marker = tmp_path / "pwned"
    hostile = _hostile_copy(search_run, tmp_path, marker)
    args = {"derive": ("derive", str(hostile)),
            "resume": ("search", "--out", str(hostile), "--resume", "--no-progress"),
            "meta": ("search", "--meta", str(hostile), "--out", str(tmp_path / "m")),
            "meta-resume": ("meta-train", "--out", str(hostile), "--resume")}[command]
    if command == "meta-resume":  # a meta-train run directory with the hostile checkpoint
        config = {"space": "nb201", "model": {"layers": 1, "init_channels": 4}}
        (hostile / "config.yaml").write_text(yaml.safe_dump(config))
    code, _, stderr = run_cli(*args)
    assert_one_line(code, stderr, "it asks to load posix.system, which could run code")
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):  # the payload is real: an unsafe load would have run it
        torch.load(hostile / "checkpoint.pt", weights_only=True)


def test_checkpoint_from_another_command_or_shape_is_refused(search_run, tmp_path):
    retrain = tmp_path / "retrain"
    assert run_cli("retrain", "--genotype", "DARTS_V2", "--layers", "3", "--init-channels", "4", "--epochs", "1",
                   "--no-progress", "--out", str(retrain))[0] == 0
    other = tmp_path / "other"
    shutil.copytree(search_run, other)
    shutil.copy(retrain / "checkpoint.pt", other / "checkpoint.pt")
    code, _, stderr = run_cli("search", "--out", str(other), "--resume", "--no-progress")
    assert_one_line(code, stderr, "was written by retrain, not search")
    deeper = tmp_path / "deeper"
    shutil.copytree(search_run, deeper)
    config = yaml.safe_load((deeper / "config.yaml").read_text())
    (deeper / "config.yaml").write_text(yaml.safe_dump({**config, "layers": 2}))
    code, _, stderr = run_cli("search", "--out", str(deeper), "--resume", "--no-progress")
    assert_one_line(code, stderr, "does not match this configuration")
    assert not (deeper / "log.txt").read_text().count("resumed")  # nothing was logged as resumed


# --- tiny inputs must not allocate absurdly --------------------------------------------------------------------------

def test_absurd_sizes_are_refused_before_allocation(tmp_path):
    code, _, stderr = run_cli("retrain", "--genotype", "Genotype(normal=[('sep_conv_3x3', 0)] , normal_concat="
                              "range(0, 1000000000), reduce=[], reduce_concat=[2])", "--out", str(tmp_path / "a"))
    assert_one_line(code, stderr, "range(0, 1000000000) has more entries than a cell has nodes")
    code, _, stderr = run_cli("search", "--image-size", "100000", "--out", str(tmp_path / "b"))
    assert_one_line(code, stderr, "--image-size must be between 1 and 4096")
    code, _, stderr = run_cli("search", "--init-channels", "4000", "--out", str(tmp_path / "c"))
    assert_one_line(code, stderr, "the supernet")
    assert "GiB" in stderr and not (tmp_path / "c").exists()
    code, _, stderr = run_cli("search", "--dataset", "npz:" + str(_npz(tmp_path, x=np.zeros((40, 8, 8), np.uint8),
                                                                        y=np.arange(40) % 2)),
                              "--image-size", "4000", "--out", str(tmp_path / "d"))
    assert_one_line(code, stderr, "a search step at batch 16 and 4000 px would need about")


SIZE_CASES = [(command, option) for command, options in {
    "search": ("--layers", "--init-channels"),
    "retrain": ("--layers", "--init-channels"),
    "meta-train": ("--layers", "--init-channels", "--channels", "--max-classes", "--embed-dim",
                   "--teacher-probe-layers"),
    "teachers": ("--layers", "--init-channels", "--channels"),
    "compare": ("--seeds", "--layers", "--init-channels", "--retrain-layers", "--retrain-channels"),
    "inspect": ("--layers", "--init-channels", "--num-classes", "--channels"),
}.items() for option in options]


@pytest.mark.parametrize("command, option", SIZE_CASES)
def test_every_size_option_past_its_limit_is_one_line_before_anything_is_built(tmp_path, command, option):
    """Past its SIZE_LIMITS entry a size option is refused when the config is read: a value of 10^9 once overflowed a
    tensor's size, took minutes to build on the meta device, or listed 10^9 compare pairs (killed for memory)."""
    from run_kit.config import SIZE_LIMITS

    name = option[2:].replace("-", "_")
    head = {"retrain": ["--genotype", "DARTS_V2"], "inspect": ["DARTS_V2"], "compare": ["--methods", "random"]}
    out = [] if command == "inspect" else ["--out", str(tmp_path / "run")]
    code, _, stderr = run_cli(command, *head.get(command, []), option, str(SIZE_LIMITS[name] + 1), *out)
    assert_one_line(code, stderr, f"{option} must be at most {SIZE_LIMITS[name]:,}, got {SIZE_LIMITS[name] + 1:,}")
    assert not (tmp_path / "run").exists()


def test_inspect_counts_without_allocating_and_refuses_an_image_size_past_the_limit():
    """inspect builds the network on the meta device: a 4096 px DARTS_V2 (whose forward pass once crashed this machine
    and which 24 GB cannot hold) is counted at once, with the parameters of the 32 px one; 100000 px is one line."""
    code, stdout, stderr = run_cli("inspect", "DARTS_V2", "--image-size", "4096")
    assert code == 0, stderr
    big, small = json.loads(stdout), json.loads(run_cli("inspect", "DARTS_V2")[1])
    assert big["params_m"] == small["params_m"] == 3.349342
    assert big["flops_m"] > 16_000 * small["flops_m"]  # (4096 / 32)^2 = 16,384 times the pixels
    code, _, stderr = run_cli("inspect", "DARTS_V2", "--image-size", "100000", "--num-classes", "10")
    assert_one_line(code, stderr, "--image-size must be between 1 and 4096, got 100000")


@pytest.mark.parametrize("arch, message", [
    ({"logits.cell": torch.zeros(3, 2)}, "must have shape (6, 5), got (3, 2)"),
    ({"logits.cell": "x"}, "the logits 'cell' are not a tensor of numbers"),
    ({"logits.cell": torch.zeros(6, 5, dtype=torch.long)}, "the logits 'cell' are not a tensor of numbers"),
    ([1, 2], "is not a search checkpoint"),
])
def test_derive_of_a_checkpoint_with_bad_logits_is_one_line(tmp_path, arch, message):
    path = tmp_path / "bad.pt"
    torch.save({"space": "nb201", "arch": arch}, path)
    code, stdout, stderr = run_cli("derive", str(path))
    assert_one_line(code, stderr, message)
    assert stdout == ""


def _npz(tmp_path, name="data.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_labels_far_apart_are_remapped_and_said_so(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (60, 8, 8), dtype=np.uint8)
    for labels in ([0, 1000, 2000], [0, 2**62]):
        path = _npz(tmp_path, x=x, y=np.array(labels)[np.arange(60) % len(labels)])
        data = load_dataset(f"npz:{path}")
        assert data.num_classes == len(labels) and sorted(data.y.unique().tolist()) == list(range(len(labels)))
        assert data.classes == [str(v) for v in labels] and "remapped" in data.notes[0]
    out = tmp_path / "run"
    code, _, stderr = run_cli("search", *TINY_SEARCH, "--dataset", f"npz:{path}", "--epochs", "1", "--out", str(out))
    assert code == 0, stderr
    assert "remapped in sorted order" in (out / "log.txt").read_text()


# --- a run that diverges stops loudly ------------------------------------------------------------------------------

def assert_stopped(code, stderr, message):
    """A run's log also goes to stderr; it ends with exactly one error line."""
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 3 and len(errors) == 1 and message in errors[0] and stderr.strip().endswith(errors[0]), stderr
    assert "Traceback" not in stderr


def test_a_diverging_search_stops_with_one_line_and_writes_no_genotype(tmp_path):
    out = tmp_path / "run"
    code, _, stderr = run_cli("search", *TINY_NB201, "--w-lr", "1e12", "--out", str(out))
    assert_stopped(code, stderr, "became non-finite at epoch 1, step")
    assert not (out / "genotype.json").exists() and not (out / "checkpoint.pt").exists()
    assert "stopped: the training loss became non-finite" in (out / "log.txt").read_text()


def test_divergence_after_a_good_epoch_keeps_its_checkpoint_and_genotype(search_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(search_run, out)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    state["weight_optimizer"]["param_groups"][0]["lr"] = 1e12  # the next epoch diverges
    torch.save(state, out / "checkpoint.pt")
    before = {name: (out / name).read_bytes() for name in ("checkpoint.pt", "genotype.json", "metrics.csv")}
    code, _, stderr = run_cli("search", "--out", str(out), "--resume", "--no-progress")
    assert_stopped(code, stderr, "became non-finite at epoch 2, step")
    assert {name: (out / name).read_bytes() for name in before} == before


@pytest.mark.parametrize("args, message", [
    (("search", "--w-lr", "nan"), "--w-lr must be a finite number, got nan"),
    (("search", "--logit-lr", "inf"), "--logit-lr must be a finite number"),
    (("search", "--w-lr", "-0.1"), "--w-lr must be greater than 0"),
    (("search", "--w-momentum", "-0.5"), "--w-momentum must be in [0, 1)"),
    (("search", "--w-momentum", "1.5"), "--w-momentum must be in [0, 1)"),
    (("search", "--w-weight-decay", "-1"), "--w-weight-decay must be at least 0"),
    (("retrain", "--lr", "-0.1"), "--lr must be greater than 0"),
    (("retrain", "--momentum", "2"), "--momentum must be in [0, 1)"),
    (("retrain", "--drop-path-prob", "1.5"), "--drop-path-prob must be in [0, 1)"),
    (("meta-train", "--meta-lr", "-1"), "--meta-lr must be greater than 0"),
    (("meta-train", "--inner-w-lr", "nan"), "--inner-w-lr must be a finite number"),
    (("meta-train", "--reptile-lr", "1.5"), "--reptile-lr must be in [0, 1]"),
    (("meta-train", "--meta-test-fraction", "1"), "--meta-test-fraction must be in [0, 1)"),
])
def test_learning_rates_and_momenta_must_be_finite_and_in_range(tmp_path, args, message):
    code, _, stderr = run_cli(*args, "--out", str(tmp_path / "out"))
    assert_one_line(code, stderr, message)
    assert not (tmp_path / "out").exists()


# --- one run per output folder -------------------------------------------------------------------------------------

def test_a_second_run_into_a_folder_in_use_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another run holds the folder
    try:
        code, _, stderr = run_cli("search", *TINY_NB201, "--epochs", "1", "--out", str(out))
    finally:
        os.close(fd)
    assert_one_line(code, stderr, "is in use by another run")
    assert list(out.iterdir()) == []


def test_two_searches_started_together_into_one_folder_do_not_interleave(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, str(ROOT / "train.py"), "search", *TINY_NB201, "--epochs", "2", "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert ("in use by another run" in refused or "already holds a run" in refused) and len(
        refused.strip().splitlines()) == 1
    log = (out / "log.txt").read_text()
    assert log.count("search nb201 on digits") == 1 and log.count("epoch 2/2") == 1


def test_a_failed_resume_leaves_no_log_and_orphan_temporary_files_are_cleared(search_run, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(search_run / "config.yaml", broken / "config.yaml")
    (broken / "checkpoint.pt").write_bytes(b"not a checkpoint")
    code, _, stderr = run_cli("search", "--out", str(broken), "--resume", "--no-progress")
    assert_one_line(code, stderr, "cannot read checkpoint")
    assert "refusing" not in stderr and not (broken / "log.txt").exists()
    resumable = tmp_path / "resumable"
    shutil.copytree(search_run, resumable)
    (resumable / ".checkpoint.pt.x1y2.tmp").write_bytes(b"half a checkpoint")  # an interrupted write
    assert run_cli("search", "--out", str(resumable), "--resume", "--no-progress")[0] == 0
    assert not list(resumable.glob(".*.tmp"))


# --- every bad input: one line, exit 2, nothing half-written --------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    ("epochs: ten\n", "--epochs must be a whole number, got 'ten'"),
    ("epochs: 2.5\n", "--epochs must be a whole number"),
    ("w_lr: [1, 2]\n", "--w-lr must be a finite number"),
    ("augment: 3\n", "--augment must be true or false"),
    ("logit_betas: 0.5\n", "--logit-betas must be a list of 2 values"),
    ("dataset: 5\n", "--dataset must be a string"),
    ("image_size: yes\n", "--image-size must be a whole number or null"),
    ("- 1\n- 2\n", "must hold a mapping"),
])
def test_yaml_values_of_the_wrong_type(tmp_path, content, message):
    config = tmp_path / "c.yaml"
    config.write_text(content)
    code, _, stderr = run_cli("search", "--config", str(config), "--out", str(tmp_path / "out"))
    assert_one_line(code, stderr, message)
    assert not (tmp_path / "out").exists()


V2 = {"space": "darts", "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]] * 4, "normal_concat": [2, 3, 4, 5],
      "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1]] * 4, "reduce_concat": [2, 3, 4, 5]}


@pytest.mark.parametrize("text, message", [
    (json.dumps({**V2, "normal": 5}), "'normal' needs 8 (op, input) pairs (2 per node, 4 nodes), got int"),
    (json.dumps({**V2, "space": 5}), "must be an object with a 'space' field"),
    (json.dumps([1, 2]), "must be an object with a 'space' field"),
    (json.dumps(V2).replace('"normal_concat": [2, 3, 4, 5]', '"normal_concat": [2, 3, 4, 1e400]'),
     "must be a list of whole node numbers"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
    (json.dumps({**V2, "reduce_concat": [0]}), "must list distinct intermediate nodes 2..5"),
    (json.dumps({**V2, "reduce_concat": [1, 2]}), "must list distinct intermediate nodes 2..5"),
    (json.dumps({**V2, "normal_concat": [2.5, 3]}), "must be a list of whole node numbers"),
    (json.dumps({**V2, "normal_concat": "2345"}), "must be a list of whole node numbers"),
    (json.dumps({"space": "nb201", "arch": {"a": 1}}), "needs an 'arch' string"),
])
def test_malformed_genotype_json(tmp_path, text, message):
    path = tmp_path / "genotype.json"
    path.write_text(text)
    code, _, stderr = run_cli("retrain", "--genotype", str(path), "--out", str(tmp_path / "out"))
    assert_one_line(code, stderr, message)
    assert not (tmp_path / "out").exists()


def test_genotype_strings_with_the_cells_own_inputs_or_odd_concats():
    from supernet.spaces import load_genotype
    text = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)] * 4, normal_concat=[2, 3, 4, 5], "
            "reduce=[], reduce_concat=[2])")
    with pytest.raises(InputError, match="must be a literal list"):
        load_genotype(text)
    good = load_genotype("DARTS_V2")[1]
    for concat, message in (([0], "intermediate nodes"), ([1, 2], "intermediate nodes"),
                            ("range(2, 6)", None), ([2.0, 3.0], "whole node numbers")):
        literal = concat if isinstance(concat, str) else repr(concat)
        line = repr(good).replace("reduce_concat=[2, 3, 4, 5]", f"reduce_concat={literal}")
        if message is None:
            assert load_genotype(line)[1].reduce_concat == [2, 3, 4, 5]
        else:
            with pytest.raises(InputError, match=message):
                load_genotype(line)


def test_corrupted_or_truncated_images_are_named(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for k in range(5):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / label / f"{k}.png")
    good = (tmp_path / "a" / "0.png").read_bytes()
    (tmp_path / "a" / "0.png").write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(InputError, match=r"cannot read image .*a/0\.png"):
        load_dataset(f"folder:{tmp_path}")
    (tmp_path / "a" / "0.png").write_bytes(b"\x89PNG garbage")  # corrupted
    code, _, stderr = run_cli("search", "--dataset", f"folder:{tmp_path}", "--out", str(tmp_path / "out"))
    assert_one_line(code, stderr, "a/0.png")


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros((20, 8, 8), np.uint8), "y": np.array(["cat", "dog"] * 10)}, "labels must be integers, got <U3"),
    ({"x": np.zeros((20, 8, 8), np.uint8), "y": np.arange(20, dtype=np.float32) % 2}, "labels are floating point"),
    ({"x": np.zeros((1, 8, 8), np.uint8), "y": np.array([0])}, "at least 2 classes"),
    ({"x": np.zeros((2, 8, 8), np.uint8), "y": np.array([0, 1])}, "too few for a 20 % test holdout"),
    ({"x": np.zeros((20, 8, 8), np.uint8), "y": np.zeros(20, int)}, "at least 2 classes, got 1"),
    ({"x": np.zeros((20, 8, 8), np.uint8), "y": np.arange(20) % 2, "x_test": np.zeros((0, 8, 8), np.uint8),
      "y_test": np.zeros(0, int)}, "no images"),
    ({"x": np.zeros((8, 8), np.uint8), "y": np.array([0])}, "must be [N,H,W] or [N,H,W,C]"),
])
def test_npz_files_with_bad_labels_or_too_few_images(tmp_path, arrays, message):
    path = _npz(tmp_path, **arrays)
    code, _, stderr = run_cli("search", "--dataset", f"npz:{path}", "--out", str(tmp_path / "out"))
    assert_one_line(code, stderr, message)
    assert not (tmp_path / "out").exists()


def test_npz_with_object_arrays_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.zeros((20, 8, 8), np.uint8), y=np.array([{"a": 1}] * 20, dtype=object))
    code, _, stderr = run_cli("search", "--dataset", f"npz:{path}", "--out", str(tmp_path / "out"))
    assert_one_line(code, stderr, "cannot read npz data set")


def test_an_out_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, stderr = run_cli("search", *TINY_NB201, "--epochs", "1", "--out", str(blocker / "run"))
    assert_one_line(code, stderr, "cannot create --out")
    code, _, stderr = run_cli("visualize", "DARTS_V2", "--out", str(blocker / "figures"))
    assert_one_line(code, stderr, "Not a directory")


def test_a_table_that_is_not_a_csv(tmp_path):
    table = tmp_path / "table.csv"
    table.write_bytes(bytes(range(256)) * 10)
    code, _, stderr = run_cli("nb201-lookup", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "--table", str(table))
    assert_one_line(code, stderr, "is not a NAS-Bench-201 table")


def test_a_batch_larger_than_the_data_is_said_and_recorded(tmp_path):
    out = tmp_path / "run"
    code, stdout, stderr = run_cli("search", *TINY_NB201, "--epochs", "1", "--batch-size", "5000", "--out", str(out))
    assert code == 0, stderr
    assert json.loads(stdout.splitlines()[-1])["batch_size"] == 719
    assert "batch 719 (--batch-size 5000 is more than a half of the data holds)" in (out / "log.txt").read_text()
    out = tmp_path / "retrain"
    code, stdout, stderr = run_cli("retrain", "--genotype", "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|"
                                   "nor_conv_3x3~2|", "--layers", "1", "--init-channels", "4", "--epochs", "1",
                                   "--batch-size", "5000", "--no-progress", "--out", str(out))
    assert code == 0, stderr
    assert json.loads((out / "result.json").read_text())["batch_size"] == 1438
    assert "batch 1438 (asked 5000" in (out / "log.txt").read_text()


# --- data ----------------------------------------------------------------------------------------------------------

def test_grey_image_folders_stay_grey_and_colour_ones_get_flips(tmp_path):
    rng = np.random.default_rng(0)
    for mode, shape in (("grey", (8, 8)), ("colour", (8, 8, 3))):
        for label in ("a", "b"):
            (tmp_path / mode / label).mkdir(parents=True)
            for k in range(5):
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(tmp_path / mode / label / f"{k}.png")
    grey, colour = load_dataset(f"folder:{tmp_path / 'grey'}"), load_dataset(f"folder:{tmp_path / 'colour'}")
    assert (grey.channels, grey.hflip) == (1, False) and (colour.channels, colour.hflip) == (3, True)


def test_outputs_follow_the_umask(search_run):
    expected = 0o666 & ~UMASK
    for name in ("config.yaml", "metrics.csv", "checkpoint.pt", "genotype.json"):
        assert (search_run / name).stat().st_mode & 0o777 == expected, name
    if not UMASK & 0o044:
        assert (search_run / "checkpoint.pt").stat().st_mode & 0o044 == 0o044  # group and others may read
    rows = list(csv.DictReader((search_run / "metrics.csv").open()))
    assert len(rows) == 1
