"""Budgets as part of the task: how tight a budget is (supernet/costs.py budget_share), teachers searched under FLOPs
budgets (meta/teacher_job.py), a budget-aware embedding (meta/model.py) and imitation that conditions on it."""
import dataclasses
import json
import random

import pytest
import torch

from evaluation.nb201_table import RESIDUAL_CONV
from meta.config import MetaConfig
from meta.model import TaskDARTS, load_meta
from meta.tasks import EpisodeDistribution
from meta.teacher_bank import TeacherBank
from meta.teacher_job import MIN_BUDGET_SHARE, TeacherJob, teacher_classes
from run_kit import InputError
from supernet.costs import Budget, bound_at_share, budget_share, cell_costs, cost_terms, every_cell
from supernet.search import SearchConfig
from supernet.spaces import get_space
from supernet.training_free import TrainingFreeJob
from tests.helpers import load_benchmark, run_cli
from tests.meta.test_teachers import CONV_CELL, POOL_CELL, TINY

SPACE = get_space("nb201")


@pytest.fixture(scope="module")
def terms():
    return cost_terms(cell_costs("nb201", 10, 3, 32))


def test_the_budget_share_is_the_share_of_all_cells_that_fit(terms):
    flops = terms["flops_m"].of_cells(every_cell(SPACE.num_edges, len(SPACE.ops)))
    assert budget_share(SPACE, terms, Budget()) == 1.0
    for bound in (8.0, 40.0, 100.0):
        assert budget_share(SPACE, terms, Budget(max_flops_m=bound)) == pytest.approx(
            float((flops <= bound).double().mean()))
    both = Budget(max_flops_m=100.0, max_params_m=0.5)
    params = terms["params_m"].of_cells(every_cell(SPACE.num_edges, len(SPACE.ops)))
    assert budget_share(SPACE, terms, both) == pytest.approx(float(((flops <= 100) & (params <= 0.5)).double().mean()))


@pytest.mark.parametrize("share", [0.03, 0.25, 0.5, 0.9, 1.0])
def test_the_bound_at_a_share_is_the_smallest_that_lets_that_share_through(terms, share):
    bound = bound_at_share(SPACE, terms["flops_m"], share)
    assert budget_share(SPACE, terms, Budget(max_flops_m=bound)) >= share
    flops = terms["flops_m"].of_cells(every_cell(SPACE.num_edges, len(SPACE.ops)))
    below = flops[flops < bound - 1e-9]
    assert len(below) == 0 or float((flops <= below.max()).double().mean()) < share


def test_the_share_does_not_depend_on_the_data_format():
    """Every edge's multiply-adds scale alike with the image size, so a budget's tightness is the same at 16 px
    and 40 classes (the teachers') as at 32 px and 10 classes (CIFAR-10's evaluation network)."""
    small, large = (cost_terms(cell_costs("nb201", c, 3, px)) for c, px in ((40, 16), (10, 32)))
    for share in (0.1, 0.4, 0.8):
        assert budget_share(SPACE, small, Budget(max_flops_m=bound_at_share(SPACE, small["flops_m"], share))) == \
            budget_share(SPACE, large, Budget(max_flops_m=bound_at_share(SPACE, large["flops_m"], share)))


@pytest.mark.parametrize("share", [0.0, -0.1, 1.5])
def test_a_share_outside_0_1_is_refused(terms, share):
    with pytest.raises(InputError, match="share of fitting cells"):
        bound_at_share(SPACE, terms["flops_m"], share)


def test_a_budget_aware_embedding_ends_with_the_share_and_a_blind_one_has_none():
    plain, aware = (MetaConfig.from_options({"space": "nb201", "layers": 1, "init_channels": 4, **extra})
                    for extra in ({}, {"budget_aware": True}))
    task = plain.distributions()[0].sample(random.Random(0))
    z_plain = TaskDARTS(plain).eval().embed([task])
    model = TaskDARTS(aware).eval()
    z = model.embed([task, dataclasses.replace(task, budget_share=0.25)])
    assert z_plain.shape[1] == plain.model.embed_dim and z.shape[1] == plain.model.embed_dim + 1
    assert z[:, -1].tolist() == [1.0, 0.25]
    assert torch.equal(z[0, :-1], z[1, :-1])  # the data's part does not depend on the budget
    assert model.start(z[1]).logits["cell"].shape == (SPACE.num_edges, len(SPACE.ops))


def test_a_training_free_search_with_a_budget_scores_only_cells_within_it(terms):
    from image_sets import load_dataset
    data = load_dataset("digits", "train")
    costs = cell_costs("nb201", data.num_classes, data.channels, data.image_size)
    bound = bound_at_share(SPACE, cost_terms(costs)["flops_m"], 0.1)
    search = TrainingFreeJob(SearchConfig(space="nb201", proxy="naswot", candidates=20, layers=1, init_channels=4,
                                          seed=0, device="cpu"), data, torch.device("cpu"),
                             fits=lambda g: costs.of(g)[1] <= bound + 1e-9)
    while search.done < search.total:
        search.run_unit(False)
    assert all(costs.of(SPACE.from_text(row["genotype"]))[1] <= bound + 1e-9 for row in search.metrics)
    assert len({row["genotype"] for row in search.metrics}) > 5  # a sample of the fitting cells, not one cell


def _config(**options):
    return MetaConfig.from_options({"space": "nb201", "layers": 1, "init_channels": 4, "teachers_per_dataset": 2,
                                    "teacher_images": 120, "teacher_method": "naswot-10", **options})


def test_budgeted_teachers_come_after_the_unbudgeted_ones_which_do_not_change():
    plain, budgeted = _config(), _config(teacher_budgets=3)
    split = plain.distributions()[2]
    before, after = teacher_classes(plain, split), teacher_classes(budgeted, split)
    assert after[:len(before)] == before and all(share is None for *_, share in before)
    extra = after[len(before):]
    assert len(extra) == 3 * len(before)
    assert [entry[:2] for entry in extra] == [entry[:2] for entry in before for _ in range(3)]
    shares = [share for *_, share in extra]
    assert all(MIN_BUDGET_SHARE <= s <= 1 for s in shares) and len(set(shares)) == len(shares)


def test_a_bank_with_budgets_keeps_every_budgeted_cell_within_its_budget_and_grows_an_unbudgeted_bank(tmp_path):
    base, grown = tmp_path / "base", tmp_path / "grown"
    flags = [*TINY, "--teachers-per-dataset", "2", "--teacher-images", "120", "--teacher-method", "naswot-10"]
    code, _, stderr = run_cli("teachers", *flags, "--out", str(base))
    assert code == 0, stderr
    code, _, stderr = run_cli("teachers", *flags, "--teacher-budgets", "2", "--out", str(grown))
    assert code == 0, stderr
    saved = json.loads((grown / "teachers.json").read_text())
    assert saved["budgets"] == 2 and len(saved["teachers"]) == 6
    unbudgeted = [t for t in saved["teachers"] if t["budget_share"] is None]
    assert [t["genotype"] for t in unbudgeted] == [t["genotype"] for t in json.loads(
        (base / "teachers.json").read_text())["teachers"]]
    for teacher in saved["teachers"][2:]:
        costs = cell_costs("nb201", len(teacher["labels"]), 1, 8)
        assert costs.of(SPACE.from_text(teacher["genotype"]))[1] <= teacher["max_flops_m"] + 1e-9
        assert teacher["budget_share"] == pytest.approx(budget_share(
            SPACE, cost_terms(costs), Budget(max_flops_m=teacher["max_flops_m"])), abs=1e-6)
    # growing the base bank takes its teachers over and runs only the budgeted ones
    config = _config(tasks=["digits"], teacher_budgets=2, device="cpu")
    job = TeacherJob(config, torch.device("cpu"))
    assert job.reuse(TeacherBank.read(base, "nb201").teachers) == 2
    assert job.reuse(TeacherBank.read(grown, "nb201").teachers[:1]) == 2  # nothing more to take: stops at the plan
    other = TeacherJob(_config(tasks=["digits"], teacher_budgets=2, seed=1), torch.device("cpu"))
    assert other.reuse(TeacherBank.read(base, "nb201").teachers) == 0  # another seed's teachers are other searches


@pytest.mark.parametrize("args, message", [
    (["--teacher-budgets", "-1"], "--teacher-budgets must be at least 0, got -1"),
    (["--teacher-budgets", "1", "--teacher-method", "pcdarts"], "--teacher-budgets needs a training-free"),
    (["--teacher-budgets", "1", "--teacher-method", "naswot-10", "--space", "darts"],
     "--teacher-budgets needs a space whose cells are costed"),
])
def test_bad_budget_teacher_options_are_one_line_exit_2(tmp_path, args, message):
    code, _, stderr = run_cli("teachers", *TINY, *args, "--out", str(tmp_path / "run"))
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not (tmp_path / "run").exists()


def test_budget_aware_meta_training_in_an_uncosted_space_is_one_line_exit_2(tmp_path):
    code, _, stderr = run_cli("meta-train", *TINY, "--space", "darts", "--budget-aware", "--out",
                              str(tmp_path / "run"))
    assert code == 2 and "--budget-aware needs a space whose cells are costed" in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def _budget_bank(tmp_path):
    """Digits teachers: unbudgeted ones ended at the convolution cell, budgeted ones (10 % of cells) at the pooling
    cell: what a search concludes depends on the budget alone."""
    split = _config(tasks=["digits"], ways=3).distributions()[2]
    labels = split.meta_train["digits"]
    teachers = [{"spec": "digits", "labels": labels, "seed": 0, "genotype": cell, "val_acc": None, "seconds": 1.0,
                 "weights": {k: torch.softmax(v, -1).tolist()
                             for k, v in SPACE.logits_of(SPACE.from_text(cell)).items()},
                 "budget_share": share, "max_flops_m": None if share is None else 1.0}
                for cell, share in ((CONV_CELL, None), (CONV_CELL, None), (POOL_CELL, 0.1), (POOL_CELL, 0.12))]
    bank_dir = tmp_path / "bank"
    bank_dir.mkdir()
    (bank_dir / "teachers.json").write_text(json.dumps({"space": "nb201", "split": split.as_dict(),
                                                        "teachers": teachers}))
    return bank_dir


@pytest.mark.parametrize("aware", [True, False])
def test_budget_aware_imitation_proposes_by_the_budget_and_the_blind_model_cannot(tmp_path, aware):
    bank_dir = _budget_bank(tmp_path)
    out = tmp_path / "meta"
    code, _, stderr = run_cli("meta-train", *TINY, "--tasks", "digits", "--ways", "3", "--objective", "imitate",
                              "--teachers", str(bank_dir), "--imitate-weight-steps", "0", "--meta-steps", "300",
                              "--meta-lr", "0.01", "--log-every", "50", "--out", str(out),
                              *(["--budget-aware"] if aware else []))
    assert code == 0, stderr
    meta = load_meta(str(out), torch.device("cpu")).eval()
    _, meta_test, _ = meta.config.distributions()
    episodes, rng = EpisodeDistribution(meta_test.pools, 3, meta.config.task.split_sizes), random.Random(0)
    proposed = {}
    for share in (1.0, 0.11):
        with torch.no_grad():  # held-out classes, told each budget
            tasks = [dataclasses.replace(episodes.sample(rng), budget_share=share) for _ in range(3)]
            proposed[share] = {SPACE.to_text(SPACE.derive(meta.start(z).logits)) for z in meta.embed(tasks)}
    if aware:
        assert proposed == {1.0: {CONV_CELL}, 0.11: {POOL_CELL}}
        # `search --meta` with a budget tells the graph its tightness
        code, _, stderr = run_cli("search", "--meta", str(out), "--dataset", "digits", "--max-flops-m", "0.5",
                                  "--budget-image-size", "8", "--out", str(tmp_path / "proposal"), "--no-progress")
        assert code == 0, stderr
        told = json.loads((tmp_path / "proposal" / "embedding.json").read_text())["budget_share"]
        costs = cell_costs("nb201", 10, 1, 8)
        assert told == pytest.approx(budget_share(SPACE, cost_terms(costs), Budget(max_flops_m=0.5))) and told < 1
    else:
        assert len(proposed[1.0] | proposed[0.11]) == 1


def test_the_random_residual_cells_of_the_budget_benchmark_keep_the_residual_edge():
    regret = load_benchmark("budget_regret")
    constant = SPACE.edge_ops(SPACE.from_text(RESIDUAL_CONV))  # the all-3x3 cell agrees with RESIDUAL_EDGE
    assert constant[regret.RESIDUAL_EDGE] == "skip_connect"
    assert {op for k, op in enumerate(constant) if k != regret.RESIDUAL_EDGE} == {"nor_conv_3x3"}
    generator = torch.Generator().manual_seed(0)
    cells = [SPACE.edge_ops(regret.random_residual_conv(generator)) for _ in range(50)]
    assert all(ops[regret.RESIDUAL_EDGE] == "skip_connect" for ops in cells)
    others = {op for ops in cells for k, op in enumerate(ops) if k != regret.RESIDUAL_EDGE}
    assert others == {"nor_conv_1x1", "nor_conv_3x3"} and len({tuple(c) for c in cells}) > 10
