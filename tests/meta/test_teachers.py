"""Teacher searches and the imitate meta-objective (meta/teacher_job.py, teacher_bank.py, skip_probe.py,
objectives.Imitate) and what a bank says about its data sets (evaluation/teacher_signal.py)."""
import json
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evaluation.teacher_signal import dataset_dependence, per_edge_distance
from image_sets import load_dataset
from meta.config import MetaConfig
from meta.controller import imitation_loss
from meta.model import load_meta
from meta.skip_probe import probed_weights, skip_probe
from meta.tasks import EpisodeDistribution
from meta.teacher_bank import pooled_targets
from run_kit import InputError
from supernet.spaces import get_space
from supernet.training_free import op_frequencies, top_cell_frequencies
from tests.helpers import run_cli

TINY = ["--space", "nb201", "--layers", "1", "--init-channels", "4", "--no-progress"]
TINY_TEACHERS = [*TINY, "--teachers-per-dataset", "2", "--teacher-epochs", "1", "--teacher-images", "120"]


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    out = tmp_path_factory.mktemp("teachers") / "bank"
    code, stdout, stderr = run_cli("teachers", *TINY_TEACHERS, "--out", str(out))
    assert code == 0, stderr
    (out / "stdout.json").write_text(stdout)
    return out


def test_a_finished_bank_reports_whether_its_teachers_depend_on_the_data_set(bank, tmp_path):
    """The permutation test over the bank's own cells, in the log and the result (the numbers: tests below); a bank
    of one data set has nothing to test."""
    assert "dataset_dependence_p" not in json.loads((bank / "stdout.json").read_text())
    stripes = _stripes_npz(tmp_path / "stripes.npz")
    out = tmp_path / "two"
    code, stdout, stderr = run_cli("teachers", *TINY_TEACHERS, "--tasks", "digits", stripes, "--out", str(out))
    assert code == 0, stderr
    saved = json.loads((out / "teachers.json").read_text())
    assert {t["spec"] for t in saved["teachers"]} == {"digits", stripes}
    expected = dataset_dependence(get_space("nb201"), [t["spec"] for t in saved["teachers"]],
                                  [t["genotype"] for t in saved["teachers"]])
    assert json.loads(stdout)["dataset_dependence_p"] == expected["p_value"]
    assert f"p = {expected['p_value']:.3f}" in (out / "log.txt").read_text()


def test_teachers_search_only_meta_training_classes(bank):
    saved = json.loads((bank / "teachers.json").read_text())
    split = saved["split"]
    assert len(saved["teachers"]) == 2 and saved["method"] == "pcdarts"
    held_out = set(split["meta_test"]["digits"])
    for teacher in saved["teachers"]:
        assert teacher["spec"] == "digits" and teacher["labels"]
        assert not set(teacher["labels"]) & held_out
        assert set(teacher["labels"]) <= set(split["meta_train"]["digits"])
        get_space("nb201").from_text(teacher["genotype"])
    config = MetaConfig.from_dict({"space": "nb201"})
    assert saved["split"] == config.distributions()[2].as_dict()


def test_an_interrupted_teacher_bank_resumes_to_the_same_teachers(bank, tmp_path):
    out = tmp_path / "cut"
    assert run_cli("teachers", *TINY_TEACHERS, "--out", str(out), "--stop-after-epoch", "1")[0] == 0
    assert not (out / "teachers.json").exists()
    code, _, stderr = run_cli("meta-train", *TINY, "--objective", "imitate", "--teachers", str(out), "--out",
                              str(tmp_path / "early"))
    assert code == 2 and "unfinished" in stderr and not (tmp_path / "early").exists()
    code, _, stderr = run_cli("teachers", "--out", str(out), "--resume", "--no-progress")
    assert code == 0, stderr
    resumed, whole = (json.loads((run / "teachers.json").read_text()) for run in (out, bank))
    for saved in (resumed, whole):
        for teacher in saved["teachers"]:
            teacher.pop("seconds")  # wall-clock time, the one thing that may differ
    assert resumed == whole


def test_imitation_loss_is_the_per_edge_negative_log_likelihood_of_the_teacher_cell():
    torch.manual_seed(0)
    logits = {"normal": torch.randn(2, 3, 4), "reduce": torch.randn(2, 5, 4)}
    cells = [{"normal": [0, 1, 2], "reduce": [3, 3, 0, 1, 2]}, {"normal": [3, 0, 0], "reduce": [1, 1, 1, 1, 1]}]
    one_hot = [{k: F.one_hot(torch.tensor(v), 4).float() for k, v in cell.items()} for cell in cells]
    by_hand = 0.0
    for i, cell in enumerate(cells):
        for cell_type, value in logits.items():
            log_p = F.log_softmax(value[i], -1)
            by_hand -= sum(log_p[e, op] for e, op in enumerate(cell[cell_type]))
    assert torch.allclose(imitation_loss(logits, one_hot), by_hand / (2 * 8))
    # soft targets (a teacher's op weights): the cross-entropy, minimised where the policy equals the target
    soft = [{k: torch.softmax(torch.randn(v.shape[1:]), -1) for k, v in logits.items()} for _ in range(2)]
    at_target = {k: torch.stack([t[k] for t in soft]).log().requires_grad_() for k in logits}
    (grad,) = torch.autograd.grad(imitation_loss(at_target, soft), [at_target["normal"]])
    assert grad.abs().max() < 1e-6


def test_training_free_teachers_weigh_ops_by_their_frequency_among_the_top_tenth():
    space = get_space("nb201")
    conv = CONV_CELL
    pool = POOL_CELL
    rows = [{"score": 10.0 - k, "genotype": conv if k < 2 else pool} for k in range(20)]
    rows.append({"score": float("-inf"), "genotype": conv})
    weights = top_cell_frequencies(space, rows, 0.2)  # the best 4 of the 20 finite scores: 2 conv, 2 pool cells
    ops = space.ops
    for edge in weights["cell"]:
        assert edge[ops.index("nor_conv_3x3")] == edge[ops.index("avg_pool_3x3")] == 0.5 and sum(edge) == 1.0


def _stripes_npz(path, classes=8, n_per_class=50, size=8, seed=0):
    """Oriented stripes at `classes` angles: a kind of task nothing like handwritten digits."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.arange(size).float()
    xs, ys = [], []
    for c in range(classes):
        angle = torch.tensor(c * 3.14159 / classes)
        for _ in range(n_per_class):
            phase = torch.rand(1, generator=g).item() * 6.28
            wave = torch.sin(grid[:, None] * torch.cos(angle) * 1.5 + grid[None, :] * torch.sin(angle) * 1.5 + phase)
            xs.append(((wave + 1) * 127.5).clamp(0, 255).to(torch.uint8))
            ys.append(c)
    x, y = torch.stack(xs).numpy(), np.array(ys)
    np.savez(path, x=x, y=y, x_test=x[:8], y_test=y[:8])
    return f"npz:{path}"


def _hand_made_bank(tmp_path, stripes, cells):
    """A teacher bank whose end points are data: teachers of digits tasks ended at the first half of `cells`,
    teachers of stripes tasks at the second half."""
    options = {"space": "nb201", "layers": 1, "init_channels": 4, "tasks": ["digits", stripes], "ways": 3}
    split = MetaConfig.from_options(options).distributions()[2]
    space, half = get_space("nb201"), len(cells) // 2
    teachers = [{"spec": spec, "labels": split.meta_train[spec], "seed": 0, "genotype": cell, "val_acc": 1.0,
                 "seconds": 1.0, "weights": {k: torch.softmax(v, -1).tolist()
                                             for k, v in space.logits_of(space.from_text(cell)).items()}}
                for spec, cell in zip(["digits"] * half + [stripes] * half, cells)]
    bank_dir = tmp_path / "bank"
    bank_dir.mkdir()
    (bank_dir / "teachers.json").write_text(json.dumps({"space": "nb201", "split": split.as_dict(),
                                                        "teachers": teachers}))
    return bank_dir


CONV_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
POOL_CELL = "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|"


@pytest.mark.parametrize("encoder, pool", [(True, "teacher"), (False, "teacher"), (True, "dataset")])
def test_imitation_gives_each_kind_of_task_its_teachers_cell_and_the_ablation_one_cell(tmp_path, encoder, pool):
    """Teachers of digit tasks ended at a convolution cell, teachers of stripe tasks at a pooling cell (a hand-made
    bank: the teachers' end points are data). After imitation, episodes of *held-out* classes of each kind get their
    kind's cell zero-shot; without the encoder every task gets one cell. With `--imitate-pool dataset` each kind has
    a dissenting teacher (the other kind's cell) and its held-out classes still get the majority's cell."""
    stripes = _stripes_npz(tmp_path / "stripes.npz")
    cells = [CONV_CELL, CONV_CELL, POOL_CELL, POOL_CELL, POOL_CELL, CONV_CELL] if pool == "dataset" else [
        CONV_CELL, POOL_CELL]  # pooled: two agreeing teachers and one dissenting teacher per kind
    bank_dir = _hand_made_bank(tmp_path, stripes, cells)
    out = tmp_path / "imitate"
    flags = ["--tasks", "digits", stripes, "--ways", "3", "--objective", "imitate", "--teachers", str(bank_dir),
             "--log-every", "50", "--imitate-pool", pool, "--imitate-prior", "1", "--out", str(out),
             "--imitate-weight-steps", "0",  # the controller's test: the start weights have their own (test_warm_start)
             # the pooled targets (5/8 against 3/8) pull the two kinds apart a quarter as hard as one-hot targets do
             *(["--meta-steps", "200", "--meta-lr", "0.003"] if pool == "teacher" else
               ["--meta-steps", "300", "--meta-lr", "0.01"])]
    code, stdout, stderr = run_cli("meta-train", *TINY, *flags, *([] if encoder else ["--no-encoder"]))
    assert code == 0, stderr
    meta = load_meta(str(out), torch.device("cpu")).eval()
    _, meta_test, _ = meta.config.distributions()
    space, rng = meta.space, random.Random(1)
    proposed = {}
    for pool in meta_test.pools:
        episodes = EpisodeDistribution([pool], 3, meta.config.task.split_sizes)
        with torch.no_grad():
            cells = {space.to_text(space.derive(meta.start(meta.embed([episodes.sample(rng)])[0]).logits))
                     for _ in range(4)}
        proposed[pool.spec] = cells
    if encoder:
        assert proposed == {"digits": {CONV_CELL}, stripes: {POOL_CELL}}
        # and the command line proposes from the imitation checkpoint, zero-shot or after adaptation
        code, _, stderr = run_cli("search", "--meta", str(out), "--dataset", "digits", "--adapt-steps", "2", "--out",
                                  str(tmp_path / "proposal"), "--no-progress")
        assert code == 0, stderr
    else:  # one cell for both kinds: it fits one kind's target, not the other's
        assert len(proposed["digits"] | proposed[stripes]) == 1


@pytest.mark.parametrize("encoder", [True, False])
def test_the_dataset_loss_makes_z_name_the_data_set_of_held_out_classes(tmp_path, encoder):
    """Both kinds' teachers ended at one cell, so imitation alone gives z no reason to tell digits from stripes; with
    --dataset-loss the head trained on z names the data set of episodes of *held-out* classes of each kind. Without
    the encoder there is no z to name anything with: no head, no auxiliary loss."""
    stripes = _stripes_npz(tmp_path / "stripes.npz")
    bank_dir = _hand_made_bank(tmp_path, stripes, [CONV_CELL, CONV_CELL])
    out = tmp_path / "imitate"
    flags = ["--tasks", "digits", stripes, "--ways", "3", "--objective", "imitate", "--teachers", str(bank_dir),
             "--meta-steps", "150", "--log-every", "50", "--dataset-loss", "1", "--imitate-weight-steps", "0"]
    code, _, stderr = run_cli("meta-train", *TINY, *flags, "--out", str(out), *([] if encoder else ["--no-encoder"]))
    assert code == 0, stderr
    header, *rows = (out / "metrics.csv").read_text().splitlines()
    meta = load_meta(str(out), torch.device("cpu")).eval()
    if not encoder:
        assert meta.dataset_head is None and "dataset_acc" not in header
        return
    column = header.split(",").index("dataset_acc")
    assert all(float(row.split(",")[column]) == 1.0 for row in rows[-10:])
    cut = tmp_path / "cut"  # interrupted and resumed, the head and its optimiser state included: the same run
    assert run_cli("meta-train", *TINY, *flags, "--out", str(cut), "--stop-after-epoch", "50")[0] == 0
    code, _, stderr = run_cli("meta-train", "--out", str(cut), "--resume", "--no-progress")
    assert code == 0, stderr
    whole, resumed = (torch.load(run / "checkpoint.pt", weights_only=True)["model"] for run in (out, cut))
    assert any(key.startswith("dataset_head") for key in whole)
    assert all(torch.equal(whole[key], resumed[key]) for key in whole)
    _, meta_test, _ = meta.config.distributions()
    rng = random.Random(1)
    for pool in meta_test.pools:
        episodes = EpisodeDistribution([pool], 3, meta.config.task.split_sizes)
        with torch.no_grad():
            named = [meta.config.task.tasks[int(meta.dataset_head(meta.embed([episodes.sample(rng)])[0]).argmax())]
                     for _ in range(4)]
        assert named == [pool.spec] * 4
    # search --meta records how much a new data set resembles each meta-train data set (the head's probabilities)
    code, _, stderr = run_cli("search", "--meta", str(out), "--dataset", stripes, "--out", str(tmp_path / "zs"),
                              "--no-progress")
    assert code == 0, stderr
    resembles = json.loads((tmp_path / "zs" / "embedding.json").read_text())["resembles"]
    assert set(resembles) == {"digits", stripes} and resembles[stripes] > 0.5
    assert abs(sum(resembles.values()) - 1) < 1e-3


def test_op_profiles_and_their_distances_by_hand():
    """op_frequencies: per edge, the share of cells with each op; per_edge_distance: the mean over edges of the
    per-edge total variation. CONV against {CONV, POOL}: every edge is half 3x3 / half pooling in the reference, so
    per edge TV 0.5."""
    space = get_space("nb201")
    profile = op_frequencies(space, [CONV_CELL, POOL_CELL])["cell"]
    conv, pool = space.ops.index("nor_conv_3x3"), space.ops.index("avg_pool_3x3")
    assert torch.all(profile[:, conv] == 0.5) and torch.all(profile[:, pool] == 0.5) and profile.sum() == 6
    conv_only = op_frequencies(space, [CONV_CELL])["cell"]
    assert float(per_edge_distance(conv_only, profile)) == pytest.approx(0.5)
    assert float(per_edge_distance(conv_only, conv_only)) == 0.0
    one_edge = CONV_CELL.replace("|nor_conv_3x3~0|+", "|avg_pool_3x3~0|+", 1)  # the first edge pooled
    assert float(per_edge_distance(conv_only, op_frequencies(space, [one_edge])["cell"])) == pytest.approx(1 / 6)


def test_pooled_targets_are_each_data_sets_mean_shrunk_toward_the_banks():
    """q_d = (sum_{j in d} q_j + w qbar) / (n_d + w), by hand for three teachers of data set a and one of b."""
    one_hot = [{"cell": F.one_hot(torch.tensor([i]), 2).float()} for i in (0, 0, 1, 1)]
    groups = ["a", "a", "a", "b"]
    pooled = pooled_targets(groups, one_hot, prior=0.0)
    assert torch.allclose(pooled[0]["cell"], torch.tensor([[2 / 3, 1 / 3]])) and pooled[0] is pooled[2]
    assert torch.equal(pooled[3]["cell"], torch.tensor([[0.0, 1.0]]))
    pooled = pooled_targets(groups, one_hot, prior=2.0)  # qbar = [0.5, 0.5]
    assert torch.allclose(pooled[1]["cell"], torch.tensor([[3 / 5, 2 / 5]]))
    assert torch.allclose(pooled[3]["cell"], torch.tensor([[1 / 3, 2 / 3]]))
    assert all(torch.allclose(t["cell"].sum(-1), torch.ones(1)) for t in pooled)
    pooled = pooled_targets(groups, one_hot, prior=math.inf)  # the limit: every target is the bank's mean
    assert all(torch.equal(t["cell"], torch.tensor([[0.5, 0.5]])) for t in pooled)


def test_the_permutation_test_finds_data_set_dependence_only_where_the_cells_differ():
    """Five teachers per data set: all conv against all pooling (per-edge distance 1; only the 2 of the 252 label
    splits that separate them reach it), and the same mix of both cells in each data set (distance 0: p = 1)."""
    space, groups = get_space("nb201"), ["a"] * 5 + ["b"] * 5
    apart = dataset_dependence(space, groups, [CONV_CELL] * 5 + [POOL_CELL] * 5, shuffles=500)
    assert apart["statistic"] == 1.0 and apart["p_value"] < 0.05 and apart["shuffled_mean"] < 0.5
    assert apart["teachers_per_dataset"] == {"a": 5, "b": 5}
    mixed = [CONV_CELL, POOL_CELL, CONV_CELL, POOL_CELL, CONV_CELL] * 2
    together = dataset_dependence(space, groups, mixed, shuffles=500)
    assert together["statistic"] == 0.0 and together["p_value"] == 1.0
    with pytest.raises(InputError, match="at least 2 data sets"):
        dataset_dependence(space, ["a"] * 3, [CONV_CELL] * 3)


def test_a_bank_made_with_another_split_is_refused(bank, tmp_path):
    code, _, stderr = run_cli("meta-train", *TINY, "--objective", "imitate", "--teachers", str(bank), "--split-seed",
                              "1", "--out", str(tmp_path / "a"))
    assert code == 2 and "another class split" in stderr and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "a").exists()
    code, _, stderr = run_cli("meta-train", *TINY, "--objective", "imitate", "--out", str(tmp_path / "b"))
    assert code == 2 and "needs --teachers" in stderr


@pytest.mark.parametrize("args, message", [
    (["--teacher-epochs", "0"], "--teacher-epochs must be at least 1, got 0"),
    (["--teachers-per-dataset", "0"], "--teachers-per-dataset must be at least 1, got 0"),
    (["--teacher-classes", "0"], "--teacher-classes must be at least 1, got 0"),
    (["--teacher-images", "0"], "--teacher-images must be at least 1, got 0"),
    (["--teacher-logit-lr", "-1"], "--teacher-logit-lr must be greater than 0, got -1.0"),
    (["--teacher-method", "random"], "--teacher-method must be a search method"),
    (["--imitate-pool", "family"], "argument --imitate-pool: invalid choice: 'family'"),
    (["--imitate-prior", "-1"], "--imitate-prior must be at least 0, got -1.0"),
    (["--imitate-prior", "nan"], "--imitate-prior must be a finite number"),
    (["--dataset-loss", "-1"], "--dataset-loss must be at least 0, got -1.0"),
    (["--dataset-loss", "inf"], "--dataset-loss must be a finite number"),
    (["--objective", "distill"], "argument --objective: invalid choice: 'distill'"),
    (["--teacher-probe-epochs", "-1"], "--teacher-probe-epochs must be at least 0, got -1"),
    (["--teacher-probe-layers", "0"], "--teacher-probe-layers must be at least 1, got 0"),
    (["--teacher-probe-epochs", "1", "--space", "darts"],
     "--teacher-probe-epochs needs a space whose cells are one op per edge"),
])
@pytest.mark.parametrize("command", ["teachers", "meta-train"])
def test_bad_teacher_options_are_one_line_exit_2(tmp_path, command, args, message):
    code, _, stderr = run_cli(command, *TINY, *args, "--out", str(tmp_path / "run"))
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not (tmp_path / "run").exists()


def _bank_variant(bank, tmp_path, edit):
    saved = json.loads((bank / "teachers.json").read_text())
    edit(saved)
    path = tmp_path / "variant"
    path.mkdir()
    (path / "teachers.json").write_text(json.dumps(saved))
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda b: b["teachers"][0].update(labels=b["split"]["meta_test"]["digits"]),
     "outside this run's meta-train split"),
    (lambda b: b["teachers"][0].update(genotype="|conv_9x9~0|"), "teachers.json"),
    (lambda b: b["teachers"][0].update(weights={"cell": [[1.0]]}),
     "op weights must be non-negative arrays of shapes {'cell': [6, 5]}"),
    (lambda b: b["teachers"][0].pop("weights"), "is not a teacher bank"),
    (lambda b: b.update(teachers=[]), "holds no teachers"),
    (lambda b: b.update(space="darts"), "is for the darts space, not nb201"),
])
def test_a_malformed_or_leaking_bank_is_refused(bank, tmp_path, edit, message):
    variant = _bank_variant(bank, tmp_path, edit)
    code, _, stderr = run_cli("meta-train", *TINY, "--objective", "imitate", "--teachers", str(variant), "--out",
                              str(tmp_path / "run"))
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not (tmp_path / "run").exists()
    code, _, stderr = run_cli("meta-train", *TINY, "--objective", "imitate", "--teachers", str(tmp_path / "none"),
                              "--out", str(tmp_path / "run"))
    assert code == 2 and "make one with `train.py teachers`" in stderr


# --- the skip probe --------------------------------------------------------------------------------------------------

def test_the_skip_probe_keeps_the_best_of_the_cell_and_its_one_skip_variants():
    """Trials: the cell, then one variant per edge that is not a skip already, exactly that edge turned into a skip;
    the winner is the best-testing trial (the cell on a tie); a second probe with the same seed repeats every
    accuracy."""
    space = get_space("nb201")
    data = load_dataset("digits").subset(torch.arange(150))
    cell = space.from_text("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|")
    winner, trials = skip_probe(space, cell, data, epochs=1, layers=1, init_channels=4, seed=3, device="cpu")
    assert [t["edge"] for t in trials] == [None, 0, 2, 3, 4, 5] and trials[0]["genotype"] == str(cell)
    for trial in trials[1:]:
        ops = space.from_text(trial["genotype"]).ops
        assert ops[trial["edge"]] == "skip_connect"
        assert [op for k, op in enumerate(ops) if k != trial["edge"]] == \
            [op for k, op in enumerate(cell.ops) if k != trial["edge"]]
    best = max(t["accuracy"] for t in trials)
    assert all(0.0 <= t["accuracy"] <= 1.0 for t in trials)
    assert str(winner) == next(t["genotype"] for t in trials if t["accuracy"] == best)
    assert skip_probe(space, cell, data, epochs=1, layers=1, init_channels=4, seed=3, device="cpu")[1] == trials


def test_an_edge_the_probe_changed_becomes_one_hot_on_skip_in_the_op_weights():
    space = get_space("nb201")
    before = space.from_text("|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_1x1~1|none~2|")
    after = space.from_text("|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_1x1~1|none~2|")
    weights = {"cell": [[0.1, 0.1, 0.3, 0.4, 0.1]] * 6}
    probed = probed_weights(space, weights, before, after)["cell"]
    assert probed[3] == [float(op == "skip_connect") for op in space.ops]
    assert probed[:3] + probed[4:] == weights["cell"][:3] + weights["cell"][4:]


def test_a_probed_bank_records_its_trials_and_is_imitated(tmp_path):
    out = tmp_path / "probed"
    code, _, stderr = run_cli("teachers", *TINY, "--teachers-per-dataset", "2", "--teacher-images", "120",
                              "--teacher-method", "naswot-10", "--teacher-probe-epochs", "1",
                              "--teacher-probe-layers", "1", "--out", str(out))
    assert code == 0, stderr
    saved = json.loads((out / "teachers.json").read_text())
    assert saved["probe_epochs"] == 1 and saved["probe_layers"] == 1
    ops = get_space("nb201").ops
    for teacher in saved["teachers"]:
        trials = teacher["probe"]
        assert trials[0]["edge"] is None and len(trials) >= 2
        best = max(t["accuracy"] for t in trials)
        won = next(t for t in trials if t["accuracy"] == best)
        assert teacher["genotype"] == won["genotype"]
        if won["edge"] is not None:
            assert teacher["weights"]["cell"][won["edge"]] == [float(op == "skip_connect") for op in ops]
    code, _, stderr = run_cli("meta-train", *TINY, "--objective", "imitate", "--teachers", str(out), "--meta-steps",
                              "2", "--out", str(tmp_path / "meta"))
    assert code == 0, stderr
