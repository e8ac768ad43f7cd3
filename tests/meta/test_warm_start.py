"""Meta-learned start weights and the warm-started search (`search --meta RUN --warm-start`), in both spaces; the
DARTS space end to end: meta-train, zero-shot, K-step adaptation and a warm-started search."""
import csv
import json

import pytest
import torch
import yaml

from image_sets import channel_stats, load_dataset
from meta.meta_search import task_start
from meta.model import load_meta
from meta.tasks import match_format
from supernet.search import SearchConfig, SearchJob
from tests.helpers import run_cli
from tests.meta.test_teachers import CONV_CELL, POOL_CELL, _hand_made_bank, _stripes_npz

# Meta-training runs small enough for tests: 8 px digits, 2 tasks a meta-step, 2 inner steps.
DARTS_META = ["--space", "darts", "--layers", "3", "--init-channels", "4", "--meta-batch", "2", "--inner-steps", "2",
              "--log-every", "1", "--no-progress"]
NB201_META = ["--space", "nb201", "--layers", "1", "--init-channels", "4", "--meta-batch", "2", "--log-every", "5",
              "--no-progress"]


@pytest.fixture(scope="module")
def darts_meta(tmp_path_factory):
    """An adapt-objective meta-model of the DARTS space, with a 12-way classifier (digits has 10 classes)."""
    out = tmp_path_factory.mktemp("darts-meta") / "run"
    code, _, stderr = run_cli("meta-train", *DARTS_META, "--meta-steps", "2", "--max-classes", "12", "--out", str(out))
    assert code == 0, stderr
    return out


@pytest.fixture(scope="module")
def imitation(tmp_path_factory):
    """Imitation runs of one hand-made bank, with and without the start weights' inner steps."""
    root = tmp_path_factory.mktemp("imitation")
    stripes = _stripes_npz(root / "stripes.npz")
    bank = _hand_made_bank(root, stripes, [CONV_CELL, POOL_CELL])
    runs = {}
    for steps in (0, 2):
        out = root / f"steps{steps}"
        code, _, stderr = run_cli("meta-train", *NB201_META, "--tasks", "digits", stripes, "--ways", "3",
                                  "--objective", "imitate", "--teachers", str(bank), "--meta-steps", "6",
                                  "--imitate-weight-steps", str(steps), "--out", str(out))
        assert code == 0, stderr
        runs[steps] = out
    return runs


def test_imitation_meta_learns_the_start_weights_and_zero_steps_leaves_them(imitation):
    """With inner weight steps the initializer's generator (zero at the start) and the base supernet move, and the
    outer split's accuracy is logged; with --imitate-weight-steps 0 both stay where they began."""
    models = {steps: torch.load(run / "checkpoint.pt", weights_only=True)["model"] for steps, run in imitation.items()}
    generator = [key for key in models[0] if key.startswith("initializer.generator")]
    supernet = [key for key in models[0] if key.startswith("supernet.") and models[0][key].is_floating_point()]
    assert generator and supernet
    assert all(not models[0][key].any() for key in generator)
    assert any(models[2][key].any() for key in generator)
    assert any(not torch.equal(models[0][key], models[2][key]) for key in supernet)
    rows = list(csv.DictReader((imitation[2] / "metrics.csv").open()))
    assert all(0 <= float(row["outer_acc"]) <= 1 for row in rows)
    assert "outer_acc" not in next(csv.DictReader((imitation[0] / "metrics.csv").open()))
    assert "start weights by 2 inner steps" in (imitation[2] / "log.txt").read_text()
    # the proposal is the imitation's alone: encoder, graph builder and controller as without the weight steps
    proposal = [key for key in models[0] if key.startswith(("encoder.", "graph_builder.", "controller."))]
    assert proposal and all(torch.equal(models[0][key], models[2][key]) for key in proposal)


def test_an_imitation_run_resumes_to_the_same_start_weights(imitation, tmp_path):
    saved = yaml.safe_load((imitation[2] / "config.yaml").read_text())
    cut = tmp_path / "cut"
    flags = ["--config", str(imitation[2] / "config.yaml"), "--no-progress", "--out", str(cut)]
    assert run_cli("meta-train", *flags, "--stop-after-epoch", "3")[0] == 0
    code, _, stderr = run_cli("meta-train", "--out", str(cut), "--resume", "--no-progress")
    assert code == 0, stderr
    assert saved["imitate"]["imitate_weight_steps"] == 2
    whole, resumed = (torch.load(run / "checkpoint.pt", weights_only=True)["model"] for run in (imitation[2], cut))
    assert all(torch.equal(whole[key], resumed[key]) for key in whole)


def test_a_warm_started_search_begins_at_the_task_conditioned_start(darts_meta):
    """The search's supernet holds the initializer's weights for the task (its 10-way classifier the first 10 rows of
    the meta-model's 12), its op logits are the controller's, and its pixels are normalised as meta-training's."""
    meta = load_meta(str(darts_meta), torch.device("cpu"))
    mc = meta.config
    data = match_format(load_dataset("digits", "train", image_size=mc.task.image_size), mc.task.channels,
                        mc.task.image_size)
    start = task_start(meta, data, seed=0)
    config = SearchConfig(space="darts", layers=mc.model.layers, init_channels=mc.model.init_channels, epochs=1,
                          warm_start_from=str(darts_meta))
    job = SearchJob(config, data, torch.device("cpu"), start=start)
    for name, p in job.model.named_parameters():
        assert torch.equal(p.detach(), start.weights[name][: p.shape[0]]), name
    assert start.weights["classifier.weight"].shape[0] == 12 and job.model.classifier.weight.shape[0] == 10
    for key, value in start.logits.items():
        assert torch.equal(job.arch()[key].detach(), value)
    assert float(job.train_preprocess.mean[0]) == 0.5 and float(job.train_preprocess.std[0]) == 0.25
    with torch.no_grad():  # the start is the task's own: the initializer's modulation of the base for z
        z = torch.tensor(json.loads(start.files["embedding.json"])["z"])
        assert torch.equal(meta.start(z).weights["classifier.weight"], start.weights["classifier.weight"])
    with pytest.raises(ValueError):  # a config naming a start, and none given
        SearchJob(config, data, torch.device("cpu"))


def test_the_warm_start_weight_options_ablate_the_task_conditioned_start(darts_meta):
    """base: the meta-learned base weights, unmodulated (the adapt objective has trained the initializer, so they
    differ from the task's); none: the search's own random weights and the data set's pixel statistics, exactly a
    search from scratch but for the controller's logits."""
    meta = load_meta(str(darts_meta), torch.device("cpu"))
    mc = meta.config
    data = match_format(load_dataset("digits", "train", image_size=mc.task.image_size), mc.task.channels,
                        mc.task.image_size)
    starts = {weights: task_start(meta, data, seed=0, weights=weights) for weights in ("task", "base", "none")}
    base = dict(meta.supernet.named_parameters())
    assert any(not torch.equal(starts["task"].weights[name], base[name]) for name in base)
    assert all(torch.equal(starts["base"].weights[name], base[name]) for name in base)
    assert starts["none"].weights is None and starts["none"].buffers is None
    for start in starts.values():
        assert all(torch.equal(start.logits[k], starts["task"].logits[k]) for k in start.logits)
        assert json.loads(start.files["embedding.json"])["weights"] in ("task", "base", "none")
    shape = dict(space="darts", layers=mc.model.layers, init_channels=mc.model.init_channels, epochs=1)
    torch.manual_seed(0)
    scratch = SearchJob(SearchConfig(**shape), data, torch.device("cpu"))
    jobs = {}
    for weights, start in starts.items():
        torch.manual_seed(0)
        jobs[weights] = SearchJob(SearchConfig(**shape, warm_start_from=str(darts_meta), warm_start_weights=weights),
                                  data, torch.device("cpu"), start=start)
    assert all(torch.equal(p.detach(), base[name][: p.shape[0]]) for name, p in jobs["base"].model.named_parameters())
    random_weights = dict(scratch.model.named_parameters())
    assert all(torch.equal(p, random_weights[name]) for name, p in jobs["none"].model.named_parameters())
    assert torch.equal(jobs["none"].train_preprocess.mean, channel_stats(data)[0])
    assert float(jobs["base"].train_preprocess.mean[0]) == 0.5
    assert "its own random weights" in jobs["none"].describe()


def test_the_darts_space_end_to_end(darts_meta, tmp_path):
    """A DARTS-space meta-model proposes zero-shot and after K adaptation steps, and warm-starts a full search (any
    gradient method) whose cell derives and retrains."""
    for steps in (0, 2):
        out = tmp_path / f"k{steps}"
        code, _, stderr = run_cli("search", "--meta", str(darts_meta), "--adapt-steps", str(steps), "--out", str(out),
                                  "--no-progress")
        assert code == 0, stderr
        assert json.loads((out / "genotype.json").read_text())["space"] == "darts"
    for method in ("darts1", "gdas"):
        out = tmp_path / f"warm-{method}"
        code, stdout, stderr = run_cli("search", "--meta", str(darts_meta), "--warm-start", "--method", method,
                                       "--epochs", "1", "--batch-size", "32", "--out", str(out), "--no-progress")
        assert code == 0, stderr
        assert {"config.yaml", "log.txt", "metrics.csv", "checkpoint.pt", "genotype.json", "embedding.json"} <= \
            {p.name for p in out.iterdir()}
        saved = yaml.safe_load((out / "config.yaml").read_text())
        assert saved["warm_start_from"] == str(darts_meta)
        assert (saved["space"], saved["layers"], saved["init_channels"], saved["image_size"]) == ("darts", 3, 4, 8)
        assert f"warm-started from {darts_meta}" in (out / "log.txt").read_text()
    code, derived, _ = run_cli("derive", str(tmp_path / "warm-darts1"), "--format", "darts")
    assert code == 0 and derived.startswith("Genotype(")
    code, _, stderr = run_cli("retrain", "--genotype", str(tmp_path / "warm-darts1"), "--dataset", "digits",
                              "--epochs", "1", "--layers", "2", "--init-channels", "4", "--out",
                              str(tmp_path / "retrain"), "--no-progress")
    assert code == 0, stderr


def test_compare_runs_warm_started_searches_beside_zero_shot_and_scratch_in_the_darts_space(darts_meta, tmp_path):
    """`compare --methods warm-darts1` searches the comparison's own search split from the meta-model's start (its
    supernet shape and image format), beside a scratch DARTS search and the zero-shot cell, and retrains all alike."""
    out = tmp_path / "cmp"
    code, _, stderr = run_cli("compare", "--space", "darts", "--dataset", "digits", "--methods", "darts1",
                              "taskdarts-0", "warm-darts1", "--meta", str(darts_meta), "--seeds", "1",
                              "--search-epochs", "1", "--layers", "3", "--init-channels", "4", "--image-size", "8",
                              "--retrain-epochs", "1", "--retrain-layers", "2", "--retrain-channels", "4",
                              "--no-progress", "--out", str(out))
    assert code == 0, stderr
    rows = {r["method"]: r for r in csv.DictReader((out / "results.csv").open())}
    assert set(rows) == {"darts1", "taskdarts-0", "warm-darts1"}
    assert float(rows["warm-darts1"]["search_seconds"]) > 0 and rows["warm-darts1"]["test_acc"] != ""
    search = out / "warm-darts1" / "seed0" / "search"
    saved = yaml.safe_load((search / "config.yaml").read_text())
    assert saved["warm_start_from"] == str(darts_meta) and (saved["layers"], saved["init_channels"]) == (3, 4)
    assert f"warm-started from {darts_meta}" in (search / "log.txt").read_text()


@pytest.mark.parametrize("methods, message", [
    (["warm-naswot"], "warm-METHOD with METHOD a gradient search"),
    (["warm-enas"], "warm-METHOD with METHOD a gradient search"),
    (["warm-pcdarts", "--meta", "m"], "do not fit a partial-channel supernet"),
    (["warm-darts1"], "needs --meta"),
])
def test_compare_rejects_bad_warm_methods_in_one_line(tmp_path, methods, message):
    code, _, stderr = run_cli("compare", "--space", "darts", "--methods", *methods, "--out", str(tmp_path / "out"))
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not (tmp_path / "out").exists()


def test_a_warm_started_nb201_search_from_imitation_resumes_exactly(imitation, tmp_path):
    flags = ["search", "--meta", str(imitation[2]), "--warm-start", "--epochs", "2", "--no-progress"]
    code, _, stderr = run_cli(*flags, "--out", str(tmp_path / "whole"))
    assert code == 0, stderr
    assert run_cli(*flags, "--out", str(tmp_path / "cut"), "--stop-after-epoch", "1")[0] == 0
    code, _, stderr = run_cli("search", "--out", str(tmp_path / "cut"), "--resume", "--no-progress")
    assert code == 0, stderr
    whole, cut = (torch.load(tmp_path / run / "checkpoint.pt", weights_only=True) for run in ("whole", "cut"))
    assert whole["epoch"] == cut["epoch"] == 2
    for part in ("model", "arch"):
        assert all(torch.equal(whole[part][key], cut[part][key]) for key in whole[part])
    assert json.loads((tmp_path / "whole" / "genotype.json").read_text())["space"] == "nb201"


@pytest.mark.parametrize("args, message", [
    (["--warm-start"], "--warm-start needs --meta META_CKPT"),
    (["--meta", "M", "--warm-start", "--adapt-steps", "2"], "a warm-started search runs --epochs of its method"),
    (["--meta", "M", "--warm-start", "--layers", "5"], "--layers do(es) not apply to --warm-start"),
    (["--meta", "M", "--warm-start", "--image-size", "16"], "--image-size do(es) not apply to --warm-start"),
    (["--meta", "M", "--warm-start", "--method", "naswot"], "--warm-start needs a gradient search"),
    (["--meta", "M", "--warm-start", "--method", "pcdarts"], "a --partial-channels supernet has other weight shapes"),
    (["--meta", "M", "--warm-start-weights", "base"], "--warm-start-weights needs --meta META_CKPT --warm-start"),
    (["--warm-start-weights", "none"], "--warm-start-weights needs --meta META_CKPT --warm-start"),
    (["--meta", "M", "--warm-start", "--warm-start-weights", "all"], "invalid choice: 'all'"),
])
def test_bad_warm_start_options_are_one_line_exit_2(darts_meta, tmp_path, args, message):
    args = [str(darts_meta) if a == "M" else a for a in args]
    out = tmp_path / "bad"
    code, _, stderr = run_cli("search", *args, "--epochs", "1", "--out", str(out), "--no-progress")
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not (out / "checkpoint.pt").exists()


def test_a_search_from_the_logits_alone_runs_and_records_its_option(imitation, tmp_path):
    out = tmp_path / "logits-only"
    code, _, stderr = run_cli("search", "--meta", str(imitation[2]), "--warm-start", "--warm-start-weights", "none",
                              "--epochs", "1", "--out", str(out), "--no-progress")
    assert code == 0, stderr
    assert yaml.safe_load((out / "config.yaml").read_text())["warm_start_weights"] == "none"
    assert "its own random weights" in (out / "log.txt").read_text()


