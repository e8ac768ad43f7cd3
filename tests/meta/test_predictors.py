"""The cell-ranking predictors (meta/experience.py, meta/accuracy_predictor.py, meta/latency_predictor.py) on
synthetic tables over every NAS-Bench-201 cell: held-out targets never reach training, probes condition the proposal,
a profile adapts the latency predictor."""
from __future__ import annotations

import math

import pytest
import torch

from meta.accuracy_predictor import AccuracyPredictor, PredictorDesign, choose_design, proposal_regret
from meta.experience import NUM_CELLS, SPACE, Experience, cell_texts, read_latency_columns, split
from meta.latency_predictor import LatencyDesign, LatencyPredictor, choose_latency_design
from run_kit import InputError
from run_kit.ranking import average_ranks, spearman
from supernet.costs import every_cell

CELLS = every_cell(SPACE.num_edges, len(SPACE.ops))


def _edge_effects(seed: int) -> torch.Tensor:
    """A synthetic column: per (edge, op) effects plus an interaction of the first two edges, over every cell."""
    generator = torch.Generator().manual_seed(seed)
    effects = torch.randn(SPACE.num_edges, len(SPACE.ops), generator=generator, dtype=torch.float64)
    pair = torch.randn(len(SPACE.ops), len(SPACE.ops), generator=generator, dtype=torch.float64)
    values = effects.gather(1, CELLS.T).sum(0) + pair[CELLS[:, 0], CELLS[:, 1]]
    return values


def _tasks() -> dict[str, torch.Tensor]:
    """Four earlier tasks; three of them are ranked mostly by the same factor, `b` by another."""
    base = [_edge_effects(seed) for seed in range(3)]
    return {"a": 70 + 5 * base[0], "b": 40 + 3 * base[1], "c": base[0] + 0.5 * base[2], "d": base[0] - 0.3 * base[1]}


def _devices() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    factors = [(_edge_effects(seed) / 10).exp() for seed in (10, 11, 12)]
    devices = {}
    for k in range(6):
        w = torch.rand(3, generator=generator, dtype=torch.float64) + 0.1
        devices[f"dev{k}"] = sum(wi * f for wi, f in zip(w, factors))
    return devices


def test_average_ranks_share_ties_and_spearman_matches_definition():
    assert average_ranks(torch.tensor([3.0, 1.0, 3.0, 2.0])).tolist() == [2.5, 0.0, 2.5, 1.0]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # values that float32 would round together stay apart: no invented ties
    assert spearman([1.0, 1.0 + 1e-12, 1.0 + 2e-12], [1.0, 2.0, 3.0]) == pytest.approx(1.0)


def test_split_removes_the_target_and_nothing_fitted_reads_it():
    experience = Experience(_tasks(), _devices())
    held = split(experience, task="a", device="dev0")
    assert "a" not in held.training.accuracy and "dev0" not in held.training.latency_ms
    assert set(held.training.accuracy) == {"b", "c", "d"}
    # scramble the held-out columns in the full experience: what is fitted on the split cannot change
    scrambled = Experience({**experience.accuracy, "a": torch.rand(NUM_CELLS, dtype=torch.float64)},
                           {**experience.latency_ms, "dev0": torch.rand(NUM_CELLS, dtype=torch.float64) + 1})
    again = split(scrambled, task="a", device="dev0")
    design = PredictorDesign(ridge=0.3, probe_rule="spread", probe_pool=0.25, caution=0.0)
    probes = {k: float(held.target_accuracy[k]) for k in range(0, NUM_CELLS, 997)}
    assert torch.equal(AccuracyPredictor(held.training, design).scores(probes),
                       AccuracyPredictor(again.training, design).scores(probes))
    profile = list(range(0, NUM_CELLS, 601))
    latency = [float(held.target_latency_ms[k]) for k in profile]
    assert torch.equal(LatencyPredictor(held.training).adapt(profile, latency, "x").predicted_ms,
                       LatencyPredictor(again.training).adapt(profile, latency, "x").predicted_ms)
    # and the scored column is a copy: writing into it leaves the experience alone
    held.target_accuracy.zero_()
    assert float(experience.accuracy["a"].abs().sum()) > 0
    with pytest.raises(InputError, match="unknown task"):
        split(experience, task="cifar10")


def test_without_probes_the_proposal_is_the_constant_prior_and_respects_the_budget():
    experience = Experience(_tasks())
    predictor = AccuracyPredictor(experience, PredictorDesign(transform="zscore"))
    prior = sum((v - v.mean()) / v.std() for v in experience.accuracy.values()) / 4
    assert predictor.propose({}) == int(torch.argmax(prior))
    fits = CELLS[:, 0] == 1  # a budget that lets through only the cells with op 1 on the first edge
    proposed = predictor.propose({}, fits)
    assert bool(fits[proposed]) and proposed == int(torch.argmax(prior.masked_fill(~fits, -math.inf)))
    assert predictor.propose({}, torch.zeros(NUM_CELLS, dtype=torch.bool)) is None


def test_probes_teach_which_earlier_task_the_new_one_resembles():
    """A new task that is earlier task `b` on another scale: the prior (the mean of four unlike tasks) misses its best
    cell, and 20 probes chosen by the predictor find it exactly."""
    experience = Experience(_tasks())
    target = 3 * experience.accuracy["b"] - 100  # a new task ranked like b, on its own scale
    design = PredictorDesign(transform="zscore", ridge=0.03, probe_rule="spread", probe_pool=0.25, caution=0.0)
    predictor = AccuracyPredictor(experience, design)
    prior_regret = proposal_regret(predictor, target, 0, torch.zeros(NUM_CELLS), [])[0]
    probed_regret = proposal_regret(predictor, target, 20, torch.zeros(NUM_CELLS), [])[0]
    assert prior_regret > 1.0 and probed_regret == pytest.approx(0.0, abs=1e-9)
    probes = predictor.choose_probes(20)
    assert len(set(probes)) == 20
    fits = CELLS[:, 2] == 3
    assert all(bool(fits[k]) for k in predictor.choose_probes(10, fits))


def test_a_measured_probe_outranks_a_cautious_prediction():
    """With caution, a probe measured better than every other cell's lower bound is proposed itself."""
    experience = Experience(_tasks())
    predictor = AccuracyPredictor(experience, PredictorDesign(caution=100.0))
    probes = {k: float(experience.accuracy["a"][k]) for k in predictor.choose_probes(10)}
    assert predictor.propose(probes) == max(probes, key=probes.get)


def test_design_is_chosen_by_leave_one_task_out_from_the_grid():
    experience = Experience(_tasks())
    grid = [PredictorDesign(caution=100.0), PredictorDesign(transform="zscore", caution=0.0, ridge=0.03)]
    design, means = choose_design(experience, 10, torch.zeros(NUM_CELLS), [], grid)
    assert design in grid and len(means) == 2 and all(v >= 0 for v in means.values())
    assert means[str(design.__dict__)] == min(means.values())
    with pytest.raises(InputError, match="at least two"):
        choose_design(Experience({"a": experience.accuracy["a"]}), 10, torch.zeros(NUM_CELLS), [], grid)


def test_a_profile_adapts_the_latency_predictor_beyond_the_additive_model():
    """A held-out device whose latencies mix the earlier devices' (with interactions the op counts cannot express):
    20 profile cells give a near-perfect ranking of all cells, and the guard covers the profile's error."""
    devices = _devices()
    held = split(Experience({}, devices), device="dev5")
    profile = torch.randperm(NUM_CELLS, generator=torch.Generator().manual_seed(0))[:20].tolist()
    measured = held.target_latency_ms
    model = LatencyPredictor(held.training, LatencyDesign(components=3, ridge=0.01, op_counts=False)).adapt(
        profile, measured[profile].tolist(), "dev5", confidence=0.95)
    assert spearman(model.predicted_ms, measured) > 0.99
    assert model.guard >= 1.0 and torch.equal(model.guarded_ms, model.guard * model.predicted_ms)
    # leave-one-device-out among the training devices: the design that ranks them and guards them best wins
    score = _tasks()["a"]
    design, means = choose_latency_design(held.training, profile, score, grid=[LatencyDesign(0, 0.1, True),
                                                                               LatencyDesign(3, 0.01, False)])
    assert design == LatencyDesign(3, 0.01, False) and len(means) == 2
    assert means[str(design)]["spearman"] > means[str(LatencyDesign(0, 0.1, True))]["spearman"]
    by_profile = LatencyPredictor(held.training, LatencyDesign(by_profile="error"))
    chosen = by_profile.adapt(profile, measured[profile].tolist(), "dev5")
    assert not chosen.design.by_profile and spearman(chosen.predicted_ms, measured) > 0.99
    with pytest.raises(InputError, match="at least 5"):
        LatencyPredictor(held.training).adapt([1, 2, 3], [1.0, 2.0, 3.0], "tiny")
    # a guard per cell: never below the point prediction, wider for cells the profile says less about
    per_cell = LatencyPredictor(held.training, LatencyDesign(components=2, ridge=0.01, op_counts=False,
                                                             interval=True)).adapt(profile, measured[profile].tolist(),
                                                                                   "dev5")
    factors = per_cell.guarded_ms / per_cell.predicted_ms
    assert per_cell.per_cell_ms is not None and bool((factors >= 1).all()) and float(factors.max()) > float(
        factors.min())


def test_latency_tables_are_read_whole_or_refused(tmp_path):
    texts = cell_texts()
    path = tmp_path / "device.csv"
    path.write_text("arch,phone_ms\n" + "".join(f"{t},{k + 1}\n" for k, t in enumerate(texts)))
    index = {t: k for k, t in enumerate(texts)}
    assert read_latency_columns(path, index)["phone"][5].item() == 6.0
    path.write_text("arch,phone_ms\n" + f"{texts[0]},1\n")
    with pytest.raises(InputError, match="lacks phone"):
        read_latency_columns(path, index)
    path.write_text("name,value\nx,1\n")
    with pytest.raises(InputError, match="not a latency table"):
        read_latency_columns(path, index)


def test_the_policy_trained_on_the_predictor_agrees_with_it():
    """REINFORCE on the predictor's reward under a budget: the policy's most likely cell fits and is among the
    predictor's best, and the policy ranks the cells that fit like the predictor does."""
    from meta.predictor_policy import cell_indices, fit_policy

    assert torch.equal(cell_indices(SPACE, CELLS[[0, 7, NUM_CELLS - 1]]), torch.tensor([0, 7, NUM_CELLS - 1]))
    scores = _tasks()["a"]
    fits = CELLS[:, 0] != 2  # op 2 on the first edge is over the budget
    logits = fit_policy(SPACE, scores, fits, steps=200, seed=0)["cell"]
    top = int(cell_indices(SPACE, logits.argmax(-1)[None])[0])
    assert bool(fits[top])
    rank_among_fitting = int((scores[fits] > scores[top]).sum())
    assert rank_among_fitting < 0.01 * int(fits.sum())
    log_pi = torch.log_softmax(logits.double(), -1).gather(1, CELLS.T).sum(0)
    assert spearman(log_pi[fits], scores[fits]) > 0.5


def test_probe_files_are_parsed_and_bad_ones_refused_in_one_line(tmp_path):
    from meta.probes import read_probe_accuracies

    texts = cell_texts()
    path = tmp_path / "probes.csv"
    path.write_text(f"arch,accuracy\n{texts[3]},71.5\n{texts[9]},-0.25\n")
    assert read_probe_accuracies(path, SPACE) == {texts[3]: 71.5, texts[9]: -0.25}
    for content, message in ((f"arch,accuracy\n{texts[3]},1\n{texts[3]},2\n", "appears twice"),
                             (f"arch,accuracy\n{texts[3]},nan\n", "finite"),
                             ("arch,accuracy\n|bogus~0|,1\n", "line 2"),
                             ("cell,score\nx,1\n", "header arch,accuracy")):
        path.write_text(content)
        with pytest.raises(InputError, match=message):
            read_probe_accuracies(path, SPACE)
    with pytest.raises(InputError, match="does not exist"):
        read_probe_accuracies(tmp_path / "missing.csv", SPACE)


def test_verify_keeps_the_candidate_that_learns_the_task(tmp_path):
    """Two candidates trained briefly on the training images' 80 %, scored on their other 20 %: a cell of convolutions
    beats the cell that cuts every edge (none), whose network cannot see the image."""
    from image_sets import load_dataset
    from supernet.verify import verify_candidates

    train = load_dataset("digits", "train", image_size=8)
    cut = SPACE.with_edge_ops(["none"] * SPACE.num_edges)
    convs = SPACE.with_edge_ops(["nor_conv_3x3"] * SPACE.num_edges)
    result = verify_candidates(SPACE, [cut, convs], train, tmp_path / "verify", epochs=10, layers=1, init_channels=8,
                               device="cpu")
    assert result.best == 1 and result.accuracies[1] > result.accuracies[0] + 0.2
    assert len(result.seconds) == 2 and (tmp_path / "verify" / "candidate1" / "result.json").is_file()
    again = verify_candidates(SPACE, [cut, convs], train, tmp_path / "verify", epochs=10, layers=1, init_channels=8,
                              device="cpu")  # finished candidates are read back, not retrained
    assert again.accuracies == result.accuracies
    with pytest.raises(InputError, match="no candidate"):
        verify_candidates(SPACE, [], train, tmp_path / "none")
