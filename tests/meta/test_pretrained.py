"""The pretrained meta-model that ships (meta/pretrained.py) and `search --meta pretrained` (meta/pretrained_search.py).

Every test here runs without ../shared: the model file is in the package, and the fitting tests build a synthetic
experience."""
import json
import pickle

import pytest
import torch

from meta.experience import SPACE, Experience, cell_genotype, cell_index
from meta.pretrained import (
    HELD_OUT_TASK,
    PRETRAINED_FILE,
    PretrainConfig,
    fit_pretrained,
    held_out_devices,
    load_pretrained,
)
from run_kit import InputError
from supernet.costs import every_cell
from tests.helpers import run_cli

CELLS = every_cell(SPACE.num_edges, len(SPACE.ops))
DEVICES = ("1080ti_1", "titanx_1", "gold_6226", "silver_4114", "pixel2", "raspi4")


@pytest.fixture(scope="module")
def shipped():
    return load_pretrained()


def synthetic_experience(seed: int) -> Experience:
    """Tasks whose accuracy is a noisy weighted op count, devices whose latency is a positive weighted op count."""
    generator = torch.Generator().manual_seed(seed)
    counts = torch.stack([(k == CELLS).sum(1).double() for k in range(len(SPACE.ops))], 1)
    accuracy = {task: counts @ torch.rand(len(SPACE.ops), generator=generator, dtype=torch.float64)
                + 0.1 * torch.randn(len(CELLS), generator=generator, dtype=torch.float64)
                for task in ("cifar10", "cifar100", "imagenet16_120", "ninapro")}
    latency = {device: 1 + counts @ torch.rand(len(SPACE.ops), generator=generator, dtype=torch.float64)
               for device in DEVICES}
    return Experience(accuracy, latency)


def test_the_shipped_model_never_learnt_from_the_held_out_task_or_devices(shipped):
    record = shipped.record
    assert record["held_out_task"] == HELD_OUT_TASK == "cifar10"
    assert HELD_OUT_TASK not in record["trained_tasks"] and HELD_OUT_TASK not in shipped.tasks
    assert not any(c.startswith(HELD_OUT_TASK + ":") for c in shipped.columns)
    assert len(record["held_out_devices"]) == 3
    assert not set(record["held_out_devices"]) & set(record["trained_devices"])
    assert PRETRAINED_FILE.stat().st_size < 5_000_000
    assert record["command"] == "python benchmarks/make_pretrained.py"
    # the encoder predicts cells it was not trained on (kept out by a seeded share)
    assert all(record["unseen_cell_spearman"][f"{t}:rank"] > 0.8 for t in shipped.tasks)


def test_held_out_task_and_devices_never_reach_the_fit():
    """fit_pretrained removes the held-out columns before anything is fitted: scrambling them changes nothing."""
    config = PretrainConfig(epochs=2, hidden=16, layers=1, probe_counts=(0,), latency_components=2)
    experience = synthetic_experience(0)
    held = held_out_devices(list(experience.latency_ms), config.held_out_seed)
    assert len(held) == 3 and len({d.split("_")[0] for d in held}) == 3  # one of each kind
    scrambled = Experience(
        {t: (v[torch.randperm(len(v))] if t == HELD_OUT_TASK else v) for t, v in experience.accuracy.items()},
        {d: (v.flip(0) if d in held else v) for d, v in experience.latency_ms.items()})
    first, second = fit_pretrained(experience, config), fit_pretrained(scrambled, config)
    assert first.record["trained_tasks"] == ["cifar100", "imagenet16_120", "ninapro"]
    assert set(first.record["trained_devices"]) == set(DEVICES) - set(held)
    assert torch.equal(first.outputs, second.outputs)
    assert first.accuracy_designs == second.accuracy_designs and first.latency_design == second.latency_design


def test_a_saved_model_loads_as_data_and_predicts_the_same(tmp_path, shipped):
    path = tmp_path / "model.pt"
    shipped.save(path)
    again = load_pretrained(path)
    assert torch.equal(again.outputs, shipped.outputs) and again.columns == shipped.columns
    assert again.accuracy_designs == shipped.accuracy_designs and again.latency_design == shipped.latency_design
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(InputError, match="not a pretrained model file"):
        load_pretrained(tmp_path / "junk.pt")

    class Payload:  # a pickle that would run code: refused, never executed
        def __reduce__(self):
            return (print, ("executed",))

    (tmp_path / "code.pt").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(InputError, match="not a pretrained model file"):
        load_pretrained(tmp_path / "code.pt")
    torch.save({"kind": "something else"}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not a TaskDARTS pretrained model"):
        load_pretrained(tmp_path / "other.pt")


def test_cell_rows_and_genotypes_map_both_ways():
    for index in (0, 1, 4, 5, 777, len(CELLS) - 1):
        genotype = cell_genotype(index)
        assert cell_index(genotype) == index
        assert [SPACE.ops.index(op) for op in SPACE.edge_ops(genotype)] == CELLS[index].tolist()


def _search(tmp_path, name, *flags):
    out = tmp_path / name
    code, stdout, stderr = run_cli("search", "--meta", "pretrained", "--out", str(out), *flags)
    return code, out, stdout, stderr


def _probe_file(tmp_path, probes: dict[int, float]):
    path = tmp_path / "probes.csv"
    path.write_text("arch,accuracy\n" + "".join(f"{SPACE.to_text(cell_genotype(k))},{v}\n" for k, v in probes.items()))
    return path


def test_a_proposal_from_images_alone_is_the_prior_and_a_run_directory_retrain_can_follow(tmp_path, shipped):
    code, out, stdout, _ = _search(tmp_path, "digits", "--dataset", "digits")
    assert code == 0
    result = json.loads(stdout)
    prior = shipped.accuracy(0)
    best = int(torch.argmax(prior.scores({})))
    assert result["genotype"]["arch"] == SPACE.to_text(cell_genotype(best))
    for name in ("config.yaml", "log.txt", "metrics.csv", "genotype.json", "checkpoint.pt"):
        assert (out / name).is_file()
    assert "constant prior" in (out / "log.txt").read_text()
    from supernet.spaces import load_genotype

    space, genotype = load_genotype(str(out))
    assert space.name == "nb201" and SPACE.to_text(genotype) == result["genotype"]["arch"]


def test_probes_condition_the_proposal(tmp_path, shipped):
    """Probes that say the opposite of the prior (its best cells measured worst) move the proposal off the prior's
    choice; probes that agree keep it."""
    prior = shipped.accuracy(0).scores({})
    order = torch.argsort(prior, descending=True)
    cells = order[torch.linspace(0, len(order) - 1, 20).long()].tolist()
    agree = {k: float(prior[k]) for k in cells}
    code, _, stdout, _ = _search(tmp_path, "agree", "--probe-accuracies", str(_probe_file(tmp_path, agree)))
    assert code == 0 and json.loads(stdout)["probes"] == 20
    agreed = cell_index(SPACE.from_text(json.loads(stdout)["genotype"]["arch"]))
    assert float(prior[agreed]) >= float(prior[order[100]])  # among the prior's best 100 of 15,625
    opposite = {k: -float(prior[k]) for k in cells}
    code, _, stdout, _ = _search(tmp_path, "opposite", "--probe-accuracies", str(_probe_file(tmp_path, opposite)))
    assert code == 0
    chosen = cell_index(SPACE.from_text(json.loads(stdout)["genotype"]["arch"]))
    assert float(prior[chosen]) < float(prior.median())  # the prior's worse half


def test_budgets_and_excluded_ops_bound_the_proposal(tmp_path, shipped):
    code, _, stdout, _ = _search(tmp_path, "flops", "--dataset", "digits", "--max-flops-m", "40",
                                 "--exclude-ops", "avg_pool_3x3", "skip_connect")
    assert code == 0
    result = json.loads(stdout)
    assert result["flops_m"] <= 40 and 0 < result["cells_that_fit"] < len(CELLS)
    assert not {"avg_pool_3x3", "skip_connect"} & set(SPACE.edge_ops(SPACE.from_text(result["genotype"]["arch"])))


def test_a_latency_budget_from_a_profile_file_bounds_the_guarded_prediction(tmp_path):
    """A device whose latency is 2 ms plus 1.5 ms per 3x3 convolution and 0.5 ms per 1x1: the pretrained predictor,
    adapted to 24 of its cells, keeps the proposal's guarded prediction within the bound."""
    generator = torch.Generator().manual_seed(1)
    rows = torch.randperm(len(CELLS), generator=generator)[:24].tolist()

    def ms(k: int) -> float:
        ops = CELLS[k].tolist()
        return 2 + 1.5 * ops.count(SPACE.ops.index("nor_conv_3x3")) + 0.5 * ops.count(SPACE.ops.index("nor_conv_1x1"))

    profile = tmp_path / "device.csv"
    profile.write_text("arch,latency_ms\n" + "".join(f"{SPACE.to_text(cell_genotype(k))},{ms(k)}\n" for k in rows))
    code, out, stdout, stderr = _search(tmp_path, "latency", "--dataset", "digits", "--max-latency-ms", "6",
                                        "--device-profile", str(profile))
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["latency_bound_ms"] <= 6 and result["latency_ms"] <= result["latency_bound_ms"]
    assert (out / "device_profile.csv").is_file()


@pytest.mark.parametrize("flags, message", [
    ((), "needs the task described"),
    (("--dataset", "digits", "--exclude-ops", "conv_7x7"), "unknown op"),
    (("--dataset", "digits", "--exclude-ops", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"),
     "leaves no op but `none`"),
    (("--dataset", "digits", "--max-flops-m", "0.001"), "no cell meets"),
    (("--dataset", "digits", "--adapt-steps", "3"), "does not apply to --meta pretrained"),
    (("--dataset", "digits", "--space", "darts"), "no pretrained model"),
    (("--dataset", "digits", "--warm-start"), "has no supernet"),
])
def test_bad_requests_are_one_line_and_write_nothing(tmp_path, flags, message):
    code, out, _, stderr = _search(tmp_path, "bad", *flags)
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_bad_probe_and_profile_files_are_one_line_and_write_nothing(tmp_path):
    cells = [SPACE.to_text(cell_genotype(k)) for k in range(0, 15625, 700)]
    small = tmp_path / "small.csv"
    small.write_text("arch,latency_ms\n" + "".join(f"{c},{1 + k}\n" for k, c in enumerate(cells[:19])))
    malformed = tmp_path / "malformed.csv"
    malformed.write_text("arch,latency_ms\n|bogus~0|,3\n")
    probes = tmp_path / "probes.csv"
    probes.write_text("arch,accuracy\n" + f"{cells[0]},nan\n")
    for flags, message in (
            (("--max-latency-ms", "5", "--device-profile", str(small)), "needs at least 20"),
            (("--max-latency-ms", "5", "--device-profile", str(malformed)), "line 2"),
            (("--max-latency-ms", "5", "--device-profile", str(tmp_path / "absent.csv")), "does not exist"),
            (("--probe-accuracies", str(probes)), "finite number")):
        code, out, _, stderr = _search(tmp_path, "bad", "--dataset", "digits", *flags)
        assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
        assert not out.exists()


def test_probes_need_the_pretrained_model(tmp_path):
    probes = _probe_file(tmp_path, {0: 1.0, 1: 2.0, 2: 3.0})
    code, _, stderr = run_cli("search", "--dataset", "digits", "--probe-accuracies", str(probes),
                              "--out", str(tmp_path / "x"))
    assert code == 2 and "need(s) --meta pretrained" in stderr and not (tmp_path / "x").exists()



def test_verify_trains_the_best_predicted_cells_and_keeps_the_best_on_held_out_training_images(tmp_path, shipped):
    code, out, stdout, stderr = _search(tmp_path, "verify", "--dataset", "digits", "--max-flops-m", "40",
                                        "--verify", "3", "--verify-epochs", "2")
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["verified"] == 3 and result["verify_seconds"] > 0
    accuracies = [json.loads((out / "verify" / f"candidate{k}" / "result.json").read_text()) for k in range(3)]
    best = max(range(3), key=lambda k: (accuracies[k]["test_acc"], -k))
    assert result["genotype"]["arch"] == accuracies[best]["genotype"]
    assert result["verify_best_acc"] == accuracies[best]["test_acc"]
    # the candidates are the predictor's three best cells within the budget
    scores = shipped.accuracy(0).scores({})
    from supernet.costs import cell_costs

    costs = cell_costs("nb201", 10, 1, 32)  # digits: 10 classes, 1 channel, costed at 32 px
    assert len({r["genotype"] for r in accuracies}) == 3
    assert all(costs.of(SPACE.from_text(r["genotype"]))[1] <= 40 for r in accuracies)
    assert float(scores[cell_index(SPACE.from_text(accuracies[0]["genotype"]))]) >= float(
        scores[cell_index(SPACE.from_text(accuracies[2]["genotype"]))])
    code, _, stderr = run_cli("search", "--meta", "pretrained", "--probe-accuracies",
                              str(_probe_file(tmp_path, {0: 1.0, 1: 2.0, 2: 3.0})), "--verify", "2",
                              "--out", str(tmp_path / "no-images"))
    assert code == 2 and "--verify K needs --dataset" in stderr and not (tmp_path / "no-images").exists()
