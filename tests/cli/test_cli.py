import csv
import json

import pytest
import torch
import yaml

from search_spaces import PUBLISHED
from supernet.search import SearchConfig
from supernet.spaces import get_space
from tests.helpers import TINY_SEARCH, run_cli, run_cli_process

NB201_EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.fixture(scope="module")
def search_run(tmp_path_factory):
    """One short DARTS-space search on digits, shared by the tests that read its outputs."""
    out = tmp_path_factory.mktemp("search") / "run"
    code, stdout, stderr = run_cli("search", *TINY_SEARCH, "--epochs", "3", "--seed", "1", "--out", str(out))
    assert code == 0, stderr
    return out, json.loads(stdout.strip().splitlines()[-1])


def test_search_run_directory_holds_everything(search_run):
    out, summary = search_run
    files = {p.name for p in out.iterdir()}
    assert {"config.yaml", "log.txt", "metrics.csv", "checkpoint.pt", "genotype.json"} <= files
    # config.yaml is the whole resolved config (defaults included) and reads back to the same object
    saved = SearchConfig.from_dict(yaml.safe_load((out / "config.yaml").read_text()))
    assert saved == SearchConfig(space="darts", epochs=3, seed=1, layers=3, init_channels=4, batch_size=64)
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    columns = {"train_loss", "train_acc", "val_loss", "val_acc", "entropy_normal", "entropy_reduce", "genotype"}
    assert columns <= set(rows[0])
    assert rows[-1]["genotype"].startswith("Genotype(")
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert {"model", "arch", "weight_optimizer", "logit_optimizer", "scheduler", "epoch", "rng"} <= set(state)
    genotype = json.loads((out / "genotype.json").read_text())
    assert genotype == summary["genotype"] and genotype["space"] == "darts"
    assert not list(out.glob("*.tmp"))


def test_short_search_on_digits_is_clearly_above_chance(search_run):
    out, summary = search_run
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert float(rows[-1]["val_acc"]) > 0.5  # 10 classes: chance is 0.1
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"])


def test_interrupted_search_resumes_to_the_identical_result(search_run, tmp_path):
    full, _ = search_run
    out = tmp_path / "interrupted"
    args = ("search", *TINY_SEARCH, "--epochs", "3", "--seed", "1", "--out", str(out))
    assert run_cli(*args, "--stop-after-epoch", "1")[0] == 0
    assert len(list(csv.DictReader((out / "metrics.csv").open()))) == 1
    code, _, stderr = run_cli("search", "--out", str(out), "--resume", "--no-progress")
    assert code == 0, stderr
    a, b = torch.load(full / "checkpoint.pt", weights_only=True), torch.load(out / "checkpoint.pt", weights_only=True)
    for key in a["arch"]:
        assert torch.equal(a["arch"][key], b["arch"][key])
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert (full / "genotype.json").read_text() == (out / "genotype.json").read_text()
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(csv.DictReader((full / "metrics.csv").open())) == strip(csv.DictReader((out / "metrics.csv").open()))


def test_gumbel_search_on_nb201_resumes_exactly(tmp_path):
    """Gumbel noise comes from the relaxation's own generator, so this also checks that its state is checkpointed."""
    args = ("search", "--space", "nb201", "--relax", "gumbel", "--layers", "1", "--init-channels", "4",
            "--epochs", "2", "--no-progress")
    assert run_cli(*args, "--out", str(tmp_path / "full"))[0] == 0
    assert run_cli(*args, "--out", str(tmp_path / "cut"), "--stop-after-epoch", "1")[0] == 0
    assert run_cli("search", "--out", str(tmp_path / "cut"), "--resume", "--no-progress")[0] == 0
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert torch.equal(a["arch"]["logits.cell"], b["arch"]["logits.cell"])
    rows = list(csv.DictReader((tmp_path / "full" / "metrics.csv").open()))
    assert float(rows[0]["tau"]) == 10.0 and float(rows[1]["tau"]) == pytest.approx(0.1)


def test_second_order_search_runs_and_writes_a_genotype(tmp_path):
    code, stdout, stderr = run_cli("search", "--space", "nb201", "--order", "2", "--layers", "1", "--init-channels",
                                   "4", "--epochs", "1", "--no-progress", "--out", str(tmp_path / "run"))
    assert code == 0, stderr
    assert json.loads(stdout.splitlines()[-1])["genotype"]["arch"].startswith("|")


def test_derive_prints_every_format(search_run):
    out, summary = search_run
    code, stdout, _ = run_cli("derive", str(out), "--format", "darts")
    assert code == 0
    line = stdout.strip()
    assert line.startswith("Genotype(normal=[") and "normal_concat=[2, 3, 4, 5]" in line
    assert get_space("darts").to_json(get_space("darts").from_text(line)) == summary["genotype"]
    assert json.loads(run_cli("derive", str(out / "checkpoint.pt"))[1]) == summary["genotype"]
    code, _, stderr = run_cli("derive", str(out), "--format", "nb201")
    assert code == 2 and "does not fit" in stderr


def test_config_file_supplies_defaults_and_flags_win(tmp_path):
    config = tmp_path / "search.yaml"
    config.write_text("space: nb201\nlayers: 1\ninit-channels: 4\nepochs: 5\nseed: 7\n")
    code, _, stderr = run_cli("search", "--config", str(config), "--epochs", "1", "--no-progress",
                              "--out", str(tmp_path / "run"))
    assert code == 0, stderr
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["space"] == "nb201" and saved["seed"] == 7 and saved["epochs"] == 1 and saved["init_channels"] == 4


def test_retrain_reports_accuracy_size_and_flops_and_resumes(tmp_path, search_run):
    search_dir, _ = search_run
    args = ("retrain", "--genotype", str(search_dir), "--layers", "3", "--init-channels", "8", "--epochs", "2",
            "--auxiliary", "--cutout", "--seed", "3", "--no-progress")
    code, stdout, stderr = run_cli(*args, "--out", str(tmp_path / "full"))
    assert code == 0, stderr
    result = json.loads((tmp_path / "full" / "result.json").read_text())
    assert result == {k: v for k, v in json.loads(stdout.splitlines()[-1]).items() if k != "run_dir"}
    rows = list(csv.DictReader((tmp_path / "full" / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and float(rows[-1]["test_acc"]) == result["test_acc"]
    assert float(rows[1]["drop_path_prob"]) == pytest.approx(0.1)  # ramped 0 -> 0.2 over the epochs
    # size and FLOPs are those of the network `inspect` builds from the same genotype (auxiliary head excluded)
    inspected = json.loads(run_cli("inspect", str(search_dir), "--layers", "3", "--init-channels", "8",
                                   "--channels", "1", "--image-size", "8")[1])
    assert (result["params_m"], result["flops_m"]) == (inspected["params_m"], inspected["flops_m"])
    assert run_cli(*args, "--out", str(tmp_path / "cut"), "--stop-after-epoch", "1")[0] == 0
    assert not (tmp_path / "cut" / "result.json").exists()
    assert run_cli("retrain", "--out", str(tmp_path / "cut"), "--resume", "--no-progress")[0] == 0
    resumed = json.loads((tmp_path / "cut" / "result.json").read_text())
    assert resumed["test_acc"] == result["test_acc"] and resumed["test_loss"] == result["test_loss"]


def test_retrain_nb201_string_learns_digits(tmp_path):
    code, stdout, stderr = run_cli("retrain", "--genotype", NB201_EXAMPLE, "--layers", "1", "--init-channels", "8",
                                   "--epochs", "4", "--batch-size", "96", "--no-progress",
                                   "--out", str(tmp_path / "run"))
    assert code == 0, stderr
    assert json.loads(stdout.splitlines()[-1])["test_acc"] > 0.5


def test_inspect_darts_v2_at_paper_size():
    code, stdout, _ = run_cli("inspect", "DARTS_V2", "--layers", "20", "--init-channels", "36", "--num-classes", "10",
                              "--image-size", "32")
    result = json.loads(stdout)
    assert code == 0 and result["params_m"] == pytest.approx(3.349342) and 520 < result["flops_m"] < 540
    assert result["genotype"] == get_space("darts").to_text(PUBLISHED["DARTS_V2"])


def test_inspect_random_and_nb201():
    code, stdout, _ = run_cli("inspect", "random", "--space", "nb201", "--seed", "2")
    assert code == 0 and json.loads(stdout)["space"] == "nb201"
    code, stdout, _ = run_cli("inspect", NB201_EXAMPLE, "--channels", "1", "--image-size", "28")
    assert code == 0 and json.loads(stdout)["image_size"] == 28


def test_visualize_writes_one_png_per_cell_type(tmp_path):
    assert run_cli("visualize", "DARTS_V1", "--out", str(tmp_path / "d"))[0] == 0
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["normal.png", "reduce.png"]
    assert run_cli("visualize", NB201_EXAMPLE, "--out", str(tmp_path / "n"))[0] == 0
    assert (tmp_path / "n" / "cell.png").read_bytes()[:4] == b"\x89PNG"


BAD_INPUTS = [
    (("search", "--dataset", "imagenet"), "unknown data set 'imagenet'"),
    (("search", "--space", "nasnet"), "invalid choice"),
    (("search", "--dataset", "npz:/nonexistent/x.npz"), "does not exist"),
    (("search", "--image-size", "3"), "too small"),
    (("search", "--order", "2", "--relax", "gumbel"), "--order 2 needs --relax softmax"),
    (("search", "--epochs", "0"), "--epochs must be at least 1"),
    (("retrain", "--genotype", "DARTS_V9"), "cannot read genotype"),
    (("retrain", "--genotype", "Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=[2], reduce=[], "
                               "reduce_concat=[2])"), "needs 8"),
    (("retrain", "--genotype", "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~3|+|skip_connect~0|nor_conv_3x3~1|"
                               "skip_connect~2|"), "must list inputs"),
    (("retrain", "--genotype", "|conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|"), "unknown op 'conv_9x9'"),
    (("inspect", "DARTS_V2", "--image-size", "2"), "too small"),
    (("inspect", "DARTS_V2", "--space", "nb201"), "not nb201"),
    (("derive", "/nonexistent/run"), "does not exist"),
    (("visualize", "/nonexistent/genotype.json", "--out", "x"), "cannot read genotype"),
]


@pytest.mark.parametrize("args, message", BAD_INPUTS, ids=[" ".join(a)[:40] for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_no_output(tmp_path, args, message):
    out = tmp_path / "out"
    extra = ("--out", str(out)) if args[0] in ("search", "retrain") else ()
    code, stdout, stderr = run_cli(*args, *extra)
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1 and message in stderr, stderr
    assert "Traceback" not in stderr and not out.exists()


def test_resume_without_a_run_and_malformed_config_are_clear(tmp_path):
    code, _, stderr = run_cli("search", "--out", str(tmp_path / "none"), "--resume")
    assert code == 2 and "cannot resume" in stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1\n")
    code, _, stderr = run_cli("search", "--config", str(bad))
    assert code == 2 and "malformed YAML" in stderr
    bad.write_text("epoch: 3\n")
    code, _, stderr = run_cli("search", "--config", str(bad))
    assert code == 2 and "unknown search config keys: epoch" in stderr


def test_a_run_on_images_handed_over_in_memory_says_so_and_is_not_resumed_on_a_guess(tmp_path):
    """A benchmark or teacher hands a search a class sample in memory: its config.yaml records what the images were
    (not the default data set), its retrain hint does not name a data set it never saw, and `--resume` refuses with
    one line instead of continuing on the default digits."""
    from image_sets import in_memory, load_dataset
    from run_kit.run_dir import RunDir
    from supernet.search import run_search

    data = load_dataset("digits")
    data = data.subset(torch.nonzero(data.y < 3).flatten()[:90])
    config = SearchConfig(space="nb201", proxy="naswot", candidates=4, layers=1, init_channels=4,
                          dataset=in_memory("digits classes 0-2, 90 images"), device="cpu")
    out = tmp_path / "run"
    run_search(config, data, RunDir(out), progress=False, stop_after_epoch=2)
    assert yaml.safe_load((out / "config.yaml").read_text())["dataset"] == "in-memory: digits classes 0-2, 90 images"
    code, _, stderr = run_cli("search", "--out", str(out), "--resume", "--no-progress")
    assert code == 2 and len(stderr.strip().splitlines()) == 1, stderr
    assert "handed to it in memory (digits classes 0-2, 90 images)" in stderr
    run_search(config, data, RunDir(out), resume=True, progress=False)  # its maker can resume it
    hint = next(line for line in (out / "log.txt").read_text().splitlines() if "retrain it:" in line)
    assert "--dataset D " in hint and "(in-memory: digits classes 0-2, 90 images)" in hint


def test_a_finished_run_is_not_overwritten(search_run):
    out, _ = search_run
    code, _, stderr = run_cli("search", *TINY_SEARCH, "--out", str(out))
    assert code == 2 and "already holds a run" in stderr


def test_real_process_exit_status_and_single_line(tmp_path):
    result = run_cli_process("retrain", "--genotype", "Genotype(normal=[", "--out", str(tmp_path / "r"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "malformed DARTS genotype" in result.stderr
    assert not (tmp_path / "r").exists()
