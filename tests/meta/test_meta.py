import copy
import csv
import json
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch.func import functional_call
from torch_geometric.data import Batch

from meta.adapt import adapt, split_batch
from meta.config import MetaConfig
from meta.controller import ArchController, PolicyGradient, sample_architecture
from meta.encoder import RunningStandardizer, TaskEncoder
from meta.meta_train import MetaTrainJob
from meta.model import TaskDARTS
from meta.task_graph import ATTRIBUTES, TaskGraphBuilder
from meta.tasks import SplitSizes, Task, build_distributions, whole_dataset_task
from meta.teacher_job import class_images
from supernet.spaces import get_space
from tests.helpers import ROOT, run_cli


def _config(**options) -> MetaConfig:
    """A meta-train config from flag-named options, as the command line makes one."""
    return MetaConfig.from_options(options)


# A meta-training run small enough for tests (NAS-Bench-201 supernet, 1 cell per stage, 4 channels, 8 px digits).
TINY_META = ["--space", "nb201", "--layers", "1", "--init-channels", "4", "--meta-batch", "2", "--inner-steps", "2",
             "--log-every", "1", "--no-progress"]


@pytest.fixture(scope="module")
def digits_tasks():
    meta_train, meta_test, split = build_distributions(["digits"], [], 3, SplitSizes(10, 10, 10, 10), 1, 8, 0.3, 0)
    return meta_train, meta_test, split


def test_class_split_is_disjoint_and_recorded(digits_tasks):
    meta_train, meta_test, split = digits_tasks
    assert not set(split.meta_train["digits"]) & set(split.meta_test["digits"])
    assert sorted(split.meta_train["digits"] + split.meta_test["digits"]) == list(range(10))
    task = meta_train.sample(random.Random(0))
    assert task.num_classes == 3 and sorted(task.data.y.unique().tolist()) == [0, 1, 2]
    splits = [set(getattr(task, name).tolist()) for name in Task.SPLITS]
    assert [len(s) for s in splits] == [30, 30, 30, 30]
    assert all(not a & b for i, a in enumerate(splits) for b in splits[i + 1:])
    originals = {int(c) for c in task.data.classes}
    assert originals <= set(split.meta_train["digits"])
    assert {int(c) for c in meta_test.sample(random.Random(1)).data.classes} <= set(split.meta_test["digits"])


def _encode(builder, encoder, images, labels, n):
    return encoder(Batch.from_data_list([builder(images, labels, n)]))[0]


@pytest.mark.parametrize("train_mode", [False, True])
def test_embedding_ignores_class_and_sample_order(digits_tasks, train_mode):
    torch.manual_seed(0)
    builder, encoder = TaskGraphBuilder(), TaskEncoder(TaskGraphBuilder().node_dim)
    builder.train(train_mode)
    encoder.train(train_mode)
    task = digits_tasks[0].sample(random.Random(3))
    x, y = task.data.x[task.support], task.data.y[task.support]
    perm, relabel = torch.randperm(len(y)), torch.tensor([2, 0, 1])
    z = _encode(builder, encoder, x, y, 3)
    z_shuffled = _encode(builder, encoder, x[perm], relabel[y[perm]], 3)
    assert torch.allclose(z, z_shuffled, atol=1e-5)


def test_same_attributes_different_classes_give_clearly_different_embeddings(digits_tasks):
    """Transposed digits have the same attributes (size, channels, counts, pixel statistics) but other classes.
    An attributes-only encoding would give both one embedding; ours moves several times further than when the
    same classes are re-drawn with other images."""
    torch.manual_seed(0)
    builder, encoder = TaskGraphBuilder(), TaskEncoder(TaskGraphBuilder().node_dim)
    builder.eval()
    task = digits_tasks[0].sample(random.Random(0))
    x, y = task.data.x[task.support], task.data.y[task.support]
    x_t = x.transpose(-1, -2).contiguous()
    n = len(ATTRIBUTES)
    assert torch.allclose(builder(x, y, 3).x[-n:], builder(x_t, y, 3).x[-n:], atol=1e-6)  # same attribute nodes
    z = _encode(builder, encoder, x, y, 3)
    z_other_classes = _encode(builder, encoder, x_t, y, 3)
    z_other_images = _encode(builder, encoder, task.data.x[task.query], task.data.y[task.query], 3)
    assert (z - z_other_classes).norm() > 3 * (z - z_other_images).norm()


def test_standardizer_keeps_two_kinds_of_task_at_unit_scale_when_batches_hold_one_kind():
    """Meta-batches of a few tasks often hold one kind only; their own spread is tiny, and standardising by it
    would blow z up. The running spread around the running mean keeps both kinds at unit scale, on either side."""
    torch.manual_seed(0)
    standardize = RunningStandardizer(4, momentum=0.05)
    kinds = [torch.tensor([10.0, 0.0, 5.0, -3.0]), torch.tensor([12.0, 1.0, 5.0, -1.0])]
    for step in range(400):
        standardize(kinds[step % 2] + 0.01 * torch.randn(3, 4))
    standardize.eval()
    z = standardize(torch.stack(kinds))
    assert z.abs().max() < 2.0
    assert torch.all(z[0, [0, 1, 3]] < -0.5) and torch.all(z[1, [0, 1, 3]] > 0.5)
    assert standardize(kinds[0][None]).shape == (1, 4)  # one task on its own works


def _one_step_toy(use_initializer: bool = False, reptile_lr: float = 0.5):
    """A meta-step with one inner step whose batches are whole splits (3-way, 10 images per class and split), no
    gradient clipping: small enough to redo by hand."""
    config = _config(space="nb201", layers=1, init_channels=4, meta_batch=2, inner_steps=1, inner_batch=30,
                    probe_tasks=1, grad_clip=1e9, reptile_lr=reptile_lr, use_initializer=use_initializer)
    torch.manual_seed(0)
    job = MetaTrainJob(config, torch.device("cpu"))
    rng = random.Random()
    rng.setstate(job.task_rng.getstate())
    tasks = [job.meta_train.sample(rng) for _ in range(config.meta.meta_batch)]
    before = copy.deepcopy(job.model)
    return job, before, tasks


def _inner_step_by_hand(model: TaskDARTS, z: torch.Tensor, task, config: MetaConfig):
    """alpha1 = alpha0 - lr_a * g / (|g| + eps)        (Adam's first step, g = dL_query/d alpha at W0, alpha0)
    W1 = W0 - lr_w * (dL_support/dW at (W0, alpha1) + wd * W0)   (SGD's first step: momentum buffer = gradient)
    returns alpha1, W1 and the first-order meta-gradient dL_outer(W1, alpha1)/d alpha1."""
    supernet = copy.deepcopy(model.supernet).train()
    alpha0 = {k: v[0].detach() for k, v in model.controller(z[None]).items()}
    w0 = {n: p.detach() for n, p in supernet.named_parameters()}
    support, query, outer = (split_batch(task, name) for name in ("support", "query", "outer"))

    def loss(weights, alphas, batch):
        out = functional_call(supernet, weights, (batch[0], alphas))[:, : task.num_classes]
        return F.cross_entropy(out, batch[1])

    alpha = {k: v.clone().requires_grad_(True) for k, v in alpha0.items()}
    grads = torch.autograd.grad(loss(w0, alpha, query), list(alpha.values()))
    alpha1 = {k: (a - config.adapt.inner_logit_lr * g / (g.abs() + 1e-8)).detach()
              for (k, a), g in zip(alpha.items(), grads)}
    w = {n: p.clone().requires_grad_(True) for n, p in w0.items()}
    grads = torch.autograd.grad(loss(w, alpha1, support), list(w.values()))
    w1 = {n: (p - config.adapt.inner_w_lr * (g + config.adapt.inner_w_weight_decay * p)).detach()
          for (n, p), g in zip(w.items(), grads)}
    alpha = {k: v.clone().requires_grad_(True) for k, v in alpha1.items()}
    meta_grad = torch.autograd.grad(loss(w1, alpha, outer), list(alpha.values()))
    return alpha1, w1, dict(zip(alpha, meta_grad))


def test_first_order_meta_gradient_equals_the_hand_computed_one():
    """The controller's output bias receives d alpha0 / d bias = identity, so its gradient must be the mean over the
    meta-batch of each task's first-order meta-gradient dL_outer(W1, alpha1)/d alpha1, computed here by hand."""
    job, before, tasks = _one_step_toy()
    z = before.embed(tasks)  # train mode, as in the meta-step (same standardiser update)
    expected = {ct: torch.stack([_inner_step_by_hand(before, z[i].detach(), t, job.config)[2][ct]
                                 for i, t in enumerate(tasks)]).mean(0) for ct in job.model.space.cell_types}
    job.run_unit(False)
    for ct, value in expected.items():
        got = job.model.controller.heads[ct].bias.grad.view_as(value)
        assert torch.allclose(got, value, rtol=1e-4, atol=1e-7), (got - value).abs().max()
        assert value.abs().max() > 1e-4  # not a vacuous comparison of zeros


def test_reptile_with_rate_one_moves_the_base_weights_to_the_mean_of_the_adapted_weights():
    job, before, tasks = _one_step_toy(reptile_lr=1.0)
    z = before.embed(tasks)
    adapted = [_inner_step_by_hand(before, z[i].detach(), t, job.config)[1] for i, t in enumerate(tasks)]
    job.run_unit(False)
    moved = False
    for name, p in job.model.supernet.named_parameters():
        mean = torch.stack([w[name] for w in adapted]).mean(0)
        assert torch.allclose(p, mean, rtol=1e-4, atol=1e-6), name
        moved |= not torch.allclose(mean, dict(before.supernet.named_parameters())[name])
    assert moved


def test_untrained_controller_gives_near_uniform_logits():
    space = get_space("darts")
    logits = ArchController(space)(torch.randn(4, 32))
    for value in logits.values():
        assert value.shape == (4, 14, 8) and value.abs().max() < 0.05


def _toy_task_embeddings():
    """Two tasks; on task 0 `nor_conv_3x3` is clearly the best op on every edge, on task 1 `avg_pool_3x3`."""
    space = get_space("nb201")
    z = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    best = torch.tensor([space.ops.index("nor_conv_3x3"), space.ops.index("avg_pool_3x3")])
    return space, z, best


def test_controller_learns_the_best_op_through_the_relaxation():
    space, z, best = _toy_task_embeddings()
    torch.manual_seed(0)
    controller = ArchController(space, embed_dim=8, hidden=32)
    optimizer = torch.optim.Adam(controller.parameters(), 0.01)
    for _ in range(200):
        probs = torch.softmax(controller(z)["cell"], -1)  # [tasks, edges, ops]
        reward = probs.gather(-1, best[:, None, None].expand(-1, 6, 1)).mean()  # expected reward, differentiable
        optimizer.zero_grad()
        (-reward).backward()
        optimizer.step()
    logits = controller(z)["cell"]
    for task in range(2):
        assert space.derive({"cell": logits[task]}).ops == (space.ops[best[task]],) * 6


def test_controller_learns_the_best_op_by_policy_gradient():
    space, z, best = _toy_task_embeddings()
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    controller = ArchController(space, embed_dim=8, hidden=32)
    optimizer = torch.optim.Adam(controller.parameters(), 0.01)
    policy = PolicyGradient(momentum=0.9, entropy_weight=1e-3)
    for _ in range(300):
        logits = controller(z)["cell"]
        optimizer.zero_grad()
        for task in range(2):
            own = {"cell": logits[task]}
            samples = [sample_architecture(own, generator) for _ in range(4)]
            rewards = torch.stack([s["cell"][:, best[task]].mean() for s, _ in samples])  # share of best-op edges
            (policy.loss(torch.stack([lp for _, lp in samples]), rewards, own) / 2).backward(retain_graph=True)
        optimizer.step()
    probs = torch.softmax(controller(z)["cell"], -1)
    for task in range(2):
        assert probs[task, :, best[task]].min() > 0.6
        assert space.derive({"cell": controller(z)["cell"][task]}).ops == (space.ops[best[task]],) * 6


def test_no_encoder_ablation_gives_every_task_the_same_start(digits_tasks):
    model = TaskDARTS(_config(space="nb201", layers=1, init_channels=4, use_encoder=False, use_initializer=False))
    tasks = [digits_tasks[0].sample(random.Random(k)) for k in range(3)]
    z = model.embed(tasks)
    assert torch.equal(z[0], z[1]) and torch.equal(z[1], z[2])
    weights = model.start(z[0]).weights
    assert all(torch.equal(weights[n], p) for n, p in model.supernet.named_parameters())


@pytest.fixture(scope="module")
def meta_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("meta") / "run"
    code, stdout, stderr = run_cli("meta-train", *TINY_META, "--meta-steps", "3", "--out", str(out))
    assert code == 0, stderr
    return out


def test_meta_train_run_directory(meta_run):
    names = {p.name for p in meta_run.iterdir()}
    assert {"config.yaml", "log.txt", "metrics.csv", "checkpoint.pt", "task_split.json"} <= names
    rows = list(csv.DictReader((meta_run / "metrics.csv").open()))
    assert [int(r["meta_step"]) for r in rows] == [1, 2, 3]
    assert {"support_loss", "logit_loss", "outer_loss", "outer_acc", "entropy", "distinct_genotypes"} <= set(rows[0])
    # the logged count is what the saved controller proposes over the (seeded) probe tasks
    saved = yaml.safe_load((meta_run / "config.yaml").read_text())
    job = MetaTrainJob(MetaConfig.from_dict(saved), torch.device("cpu"))
    job.load_state_dict(torch.load(meta_run / "checkpoint.pt", weights_only=True))
    assert job.distinct_genotypes() == int(rows[-1]["distinct_genotypes"])
    split = json.loads((meta_run / "task_split.json").read_text())
    assert not set(split["meta_train"]["digits"]) & set(split["meta_test"]["digits"])


def test_meta_train_resumes_to_identical_state(meta_run, tmp_path):
    out = tmp_path / "cut"
    assert run_cli("meta-train", *TINY_META, "--meta-steps", "3", "--out", str(out), "--stop-after-epoch", "1")[0] == 0
    code, _, stderr = run_cli("meta-train", "--out", str(out), "--resume", "--no-progress")
    assert code == 0, stderr
    a = torch.load(meta_run / "checkpoint.pt", weights_only=True)
    b = torch.load(out / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 3
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_ablations_run(tmp_path):
    code, stdout, stderr = run_cli("meta-train", *TINY_META, "--meta-steps", "2", "--no-encoder", "--no-initializer",
                                   "--out", str(tmp_path / "r"))
    assert code == 0, stderr
    rows = list(csv.DictReader((tmp_path / "r" / "metrics.csv").open()))
    assert int(rows[-1]["distinct_genotypes"]) == 1  # no encoder: one embedding, so one proposal for every task
    state = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    assert not any(k.startswith(("initializer", "graph_builder")) for k in state["model"])


@pytest.mark.parametrize("steps", [0, 2])
def test_search_from_a_meta_checkpoint(meta_run, tmp_path, steps):
    out = tmp_path / f"k{steps}"
    code, stdout, stderr = run_cli("search", "--meta", str(meta_run), "--adapt-steps", str(steps), "--out", str(out),
                                   "--no-progress")
    assert code == 0, stderr
    assert {"config.yaml", "log.txt", "metrics.csv", "checkpoint.pt", "genotype.json", "embedding.json"} <= \
        {p.name for p in out.iterdir()}
    genotype = json.loads((out / "genotype.json").read_text())
    assert genotype["space"] == "nb201"
    code, derived, _ = run_cli("derive", str(out), "--format", "nb201")
    assert code == 0 and derived.strip() == genotype["arch"]
    assert len(json.loads((out / "embedding.json").read_text())["z"]) == 32


def test_a_budgeted_proposal_is_the_most_likely_cell_that_fits(meta_run, tmp_path):
    """search --meta with --max-params-m / --max-flops-m: the unbudgeted proposal when it fits, else the most likely
    cell under the same logits that does; its costs are recorded and match the built evaluation network."""
    from supernet.costs import Budget, budgeted_derive, cell_costs, cost_terms
    from supernet.discrete import count_flops_m, count_parameters_m
    from supernet.spaces import create_network, get_space

    space = get_space("nb201")
    free = tmp_path / "free"
    assert run_cli("search", "--meta", str(meta_run), "--out", str(free), "--no-progress")[0] == 0
    logits = torch.load(free / "checkpoint.pt", weights_only=True)["arch"]
    logits = {key.split(".")[-1]: value for key, value in logits.items()}
    channels = yaml.safe_load((meta_run / "config.yaml").read_text())["task"]["channels"]
    costs = cell_costs("nb201", 10, channels, 32)
    proposal = space.from_json(json.loads((free / "genotype.json").read_text()))
    params = costs.of(proposal)[0]
    for bound in (params + 1.0, costs.fixed_params_m + 0.03):
        out = tmp_path / f"p{bound:.3f}"
        code, stdout, stderr = run_cli("search", "--meta", str(meta_run), "--max-params-m", str(bound), "--out",
                                       str(out), "--no-progress")
        assert code == 0, stderr
        cell = space.from_json(json.loads((out / "genotype.json").read_text()))
        row = next(csv.DictReader((out / "metrics.csv").open()))
        network = create_network(cell, 10, channels, 16, 5, image_size=32)
        assert float(row["params_m"]) == pytest.approx(count_parameters_m(network), abs=1e-6)
        assert float(row["params_m"]) <= bound
        assert float(row["flops_m"]) == pytest.approx(count_flops_m(network, channels, 32), abs=1e-3)
        assert cell == proposal or bound < params + 1.0  # a budget the proposal meets leaves it as it is
        assert cell == budgeted_derive(space, logits, cost_terms(costs), Budget(max_params_m=bound))
        assert "at most" in (out / "log.txt").read_text()
    out = tmp_path / "flops16"
    code, _, stderr = run_cli("search", "--meta", str(meta_run), "--max-flops-m", "3", "--budget-image-size", "16",
                              "--out", str(out), "--no-progress")
    assert code == 0, stderr
    assert float(next(csv.DictReader((out / "metrics.csv").open()))["flops_m"]) <= 3
    for profile in ("auto", "file"):  # a latency budget, from this machine's reference cells or from a profile file
        out = tmp_path / f"latency-{profile}"
        measured = tmp_path / "latency-auto" / "device_profile.csv"
        source = [] if profile == "auto" else ["--device-profile", str(measured)]
        code, _, stderr = run_cli("search", "--meta", str(meta_run), "--max-latency-ms", "1e5", *source, "--out",
                                  str(out), "--no-progress")
        assert code == 0, stderr
        row = next(csv.DictReader((out / "metrics.csv").open()))
        assert 0 < float(row["latency_ms"]) <= float(row["latency_bound_ms"]) <= 1e5
        if profile == "auto":  # the device is here: the proposal was measured too, under the profile's protocol
            assert 0 < float(row["latency_measured_ms"]) <= 1e5 and row["latency_tries"] == "1"
            assert (row["latency_device"], row["latency_threads"], row["latency_memory_format"]) == (
                "cpu", str(torch.get_num_threads()), "contiguous")
            assert float(row["latency_profile_drift"]) > 0
            # the reported seconds include profiling the device and measuring the proposal
            assert float(row["seconds"]) >= float(row["latency_profile_seconds"]) + float(
                row["latency_verify_seconds"]) > 0
        else:
            assert "latency_measured_ms" not in row and "latency_threads" not in row
        assert (out / "device_profile.csv").is_file()
        assert "latency model from" in (out / "log.txt").read_text() and "guard at confidence 0.95" in (
            out / "log.txt").read_text()


def test_a_latency_budget_from_a_profile_file_binds_the_proposal(meta_run, tmp_path):
    """A profile of a known additive device (3 ms + per-op costs, written by the test, so nothing here depends on this
    machine's speed): a budget under the free proposal's latency changes the cell to the most likely one whose guarded
    prediction fits (the guard is 1 on an exactly additive device)."""
    from supernet.costs import Budget, budgeted_derive, cell_costs, cost_terms
    from supernet.latency import fit_latency, profile_csv, reference_cells
    from supernet.spaces import get_space

    space = get_space("nb201")
    truth = {"none": 0.0, "skip_connect": 0.1, "nor_conv_1x1": 0.7, "nor_conv_3x3": 2.0, "avg_pool_3x3": 0.4}
    cells = reference_cells(space)
    latency = [3.0 + sum(truth[op] for op in space.edge_ops(c)) for c in cells]
    (tmp_path / "device.csv").write_text(profile_csv(space, cells, latency))
    free = tmp_path / "free"
    assert run_cli("search", "--meta", str(meta_run), "--out", str(free), "--no-progress")[0] == 0
    proposal = space.from_json(json.loads((free / "genotype.json").read_text()))
    free_ms = 3.0 + sum(truth[op] for op in space.edge_ops(proposal))
    bound = free_ms - 0.95  # costs step by 0.1 ms: a margin floating point cannot cross
    if bound <= 3.05:
        pytest.skip("the free proposal is nearly the cheapest cell; no budget below it binds")
    out = tmp_path / "bound"
    code, _, stderr = run_cli("search", "--meta", str(meta_run), "--max-latency-ms", str(bound), "--device-profile",
                              str(tmp_path / "device.csv"), "--out", str(out), "--no-progress")
    assert code == 0, stderr
    cell = space.from_json(json.loads((out / "genotype.json").read_text()))
    row = next(csv.DictReader((out / "metrics.csv").open()))
    assert cell != proposal and 3.0 + sum(truth[op] for op in space.edge_ops(cell)) <= bound
    assert float(row["latency_bound_ms"]) <= bound and float(row["latency_bound_ms"]) == pytest.approx(
        float(row["latency_ms"]))
    logits = {key.split(".")[-1]: value for key, value in
              torch.load(out / "checkpoint.pt", weights_only=True)["arch"].items()}
    channels = yaml.safe_load((meta_run / "config.yaml").read_text())["task"]["channels"]
    model = fit_latency(space, cells, latency, "device.csv")
    terms = cost_terms(cell_costs("nb201", 10, channels, 32), model.term(space))
    assert cell == budgeted_derive(space, logits, terms, Budget(max_latency_ms=bound))


@pytest.mark.parametrize("args, message", [
    (["--max-latency-ms", "5", "--latency-threads", "-1"], "--latency-threads must lie between 0"),
    (["--latency-threads", "2"], "--latency-threads need(s) --max-latency-ms with --device-profile auto"),
    (["--max-latency-ms", "5", "--device-profile", "x.csv", "--latency-memory-format", "channels_last"],
     "--latency-memory-format need(s) --max-latency-ms with --device-profile auto"),
    (["--max-params-m", "0.01"], "no cell fits at most 0.01 M parameters in the nb201 evaluation network"),
    (["--max-latency-ms", "0"], "--max-latency-ms must be a positive number of ms, got 0.0"),
    (["--max-latency-ms", "1", "--device-profile", "missing.csv"], "device profile missing.csv does not exist"),
    (["--device-profile", "auto"], "--device-profile needs --max-latency-ms"),
    (["--latency-confidence", "0.9"], "--latency-confidence needs --max-latency-ms"),
    (["--max-latency-ms", "1", "--latency-confidence", "1"], "--latency-confidence must lie in [0, 1) (0: no guard), "
                                                             "got 1.0"),
    (["--max-latency-ms", "1", "--latency-confidence", "nan"], "--latency-confidence must lie in [0, 1)"),
    (["--max-flops-m", "-5"], "--max-flops-m must be a positive number of millions, got -5.0"),
    (["--max-params-m", "nan"], "--max-params-m must be a positive number of millions, got nan"),
    (["--max-params-m", "1", "--budget-image-size", "0"], "--budget-image-size must lie between 1 and 1024, got 0"),
    (["--max-params-m", "1", "--budget-image-size", "2"], "too small"),
    (["--max-params-m", "1", "--warm-start"], "--max-params-m need(s) --meta META_CKPT without --warm-start"),
    (["--no-meta", "--max-flops-m", "10"], "--max-flops-m need(s) --meta META_CKPT"),
    (["--no-meta", "--max-images-per-class", "5"], "--max-images-per-class appl(ies) to --meta proposals only"),
    (["--eval-batch-size", "64"], "--eval-batch-size do(es) not apply to --meta searches"),
])
def test_bad_budgets_are_one_line_exit_2(meta_run, tmp_path, args, message):
    meta = [] if "--no-meta" in args else ["--meta", str(meta_run)]
    out = tmp_path / "bad"
    code, _, stderr = run_cli("search", *meta, *[a for a in args if a != "--no-meta"], "--out", str(out),
                              "--no-progress")
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not out.exists()


def test_meta_bad_input_is_clear(meta_run, tmp_path):
    code, _, stderr = run_cli("meta-train", "--tasks", "imagenet", "--out", str(tmp_path / "a"))
    assert code == 2 and "unknown data set 'imagenet'" in stderr and not (tmp_path / "a").exists()
    code, _, stderr = run_cli("search", "--meta", str(meta_run), "--space", "darts", "--out", str(tmp_path / "b"))
    assert code == 2 and "is for the nb201 space, not darts" in stderr and not (tmp_path / "b").exists()
    code, _, stderr = run_cli("search", "--meta", str(tmp_path / "missing"), "--out", str(tmp_path / "c"))
    assert code == 2 and "no such meta-run or checkpoint" in stderr
    search_run = tmp_path / "plain"
    assert run_cli("search", "--space", "nb201", "--layers", "1", "--init-channels", "4", "--epochs", "1",
                   "--no-progress", "--out", str(search_run))[0] == 0
    code, _, stderr = run_cli("search", "--meta", str(search_run), "--out", str(tmp_path / "d"))
    assert code == 2 and "not a TaskDARTS meta-checkpoint" in stderr
    code, _, stderr = run_cli("meta-train", "--ways", "12", "--out", str(tmp_path / "e"))
    assert code == 2 and "exceeds --max-classes" in stderr
    for flag in ("--split-seed", "--outers", "--regularizer-weight"):
        code, _, stderr = run_cli("meta-train", flag, "-1", "--out", str(tmp_path / "h"))
        assert code == 2 and flag in stderr and len(stderr.strip().splitlines()) == 1
    code, _, stderr = run_cli("search", "--meta", str(meta_run), "--order", "2", "--out", str(tmp_path / "f"))
    assert code == 2 and "--order do(es) not apply to --meta searches" in stderr
    code, _, stderr = run_cli("search", "--adapt-steps", "3", "--out", str(tmp_path / "g"))
    assert code == 2 and "--adapt-steps needs --meta" in stderr


# --- clean held-out evaluation ---------------------------------------------------------------------------------

def test_held_out_classes_never_meet_meta_training_classes_for_any_training_seed():
    """The class split depends on --split-seed alone: meta-runs with training seeds 0, 1, 2 (as the benchmark runs
    them) hold out the same classes, and the config's held-out pool of a data set holds exactly those."""
    splits = []
    for seed in (0, 1, 2):
        config = _config(space="nb201", layers=1, init_channels=4, seed=seed)
        job = MetaTrainJob(config, torch.device("cpu"))
        train, test = set(job.split.meta_train["digits"]), set(job.split.meta_test["digits"])
        assert train and test and not train & test
        for _ in range(20):
            assert {int(c) for c in job.meta_train.sample(job.task_rng).data.classes} <= train
        _, meta_test, _ = config.distributions()
        pool = next(pool for pool in meta_test.pools if "digits" in pool.spec)
        data = class_images(pool, pool.labels(), 60, seed=0)
        assert {int(c) for c in data.classes} == set(pool.labels()) == test
        splits.append(job.split.as_dict())
    assert splits[0] == splits[1] == splits[2]
    other = MetaTrainJob(_config(space="nb201", layers=1, init_channels=4, split_seed=1), torch.device("cpu"))
    assert other.split.as_dict() != splits[0]


def test_the_inner_loop_never_reads_the_outer_split(digits_tasks):
    """Replace the outer split's images and labels by noise: the adapted weights and logits stay bit-identical,
    while the outer loss (what the meta-gradient differentiates) changes."""
    config = _config(space="nb201", layers=1, init_channels=4, inner_steps=3, inner_batch=8)
    task = digits_tasks[0].sample(random.Random(5))
    noisy_data = copy.deepcopy(task.data)
    noisy_data.x[task.outer] = torch.randint(0, 256, noisy_data.x[task.outer].shape, dtype=noisy_data.x.dtype)
    noisy_data.y[task.outer] = (noisy_data.y[task.outer] + 1) % task.num_classes
    noisy = Task(task.name, noisy_data, task.support, task.query, task.outer, task.test)
    torch.manual_seed(0)
    model = TaskDARTS(config)
    z = model.embed([task])[0].detach()
    start = model.start(z)
    buffers = {n: b.clone() for n, b in model.supernet.named_buffers()}
    results = []
    for t in (task, noisy):
        work = copy.deepcopy(model.supernet)
        adapted = adapt(work, start.weights, buffers, {k: v.detach() for k, v in start.logits.items()}, t,
                        config.adapt.inner_steps, config.adapt, config.meta.grad_clip, seed=0)
        x, y = split_batch(t, "outer")
        outer = F.cross_entropy(adapted.model(x, adapted.logits()), y).item()
        results.append(([p.detach().clone() for p in work.parameters()], adapted.logits(), outer))
    (w_a, l_a, outer_a), (w_b, l_b, outer_b) = results
    assert all(torch.equal(a, b) for a, b in zip(w_a, w_b))
    assert all(torch.equal(l_a[k], l_b[k]) for k in l_a)
    assert outer_a != outer_b


def _stripes_npz(path, n_per_class=60, classes=4, size=8, seed=0):
    """A data set of oriented stripes: nothing like handwritten digits."""
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    grid = torch.arange(size).float()
    for c in range(classes):
        angle = c * 3.14159 / classes
        for _ in range(n_per_class):
            phase = torch.rand(1, generator=g).item() * 6.28
            wave = torch.sin(grid[:, None] * torch.cos(torch.tensor(angle)) * 1.5
                             + grid[None, :] * torch.sin(torch.tensor(angle)) * 1.5 + phase)
            xs.append(((wave + 1) * 127.5).clamp(0, 255).to(torch.uint8))
            ys.append(c)
    x, y = torch.stack(xs).numpy(), torch.tensor(ys).numpy()
    np.savez(path, x=x, y=y, x_test=x[:8], y_test=y[:8])
    return f"npz:{path}"


def test_task_embedding_is_stable_across_image_samples_and_differs_between_data_sets(tmp_path):
    """A whole data set is embedded from a seeded sample of its images (the first `shots` support images per
    class): other samples of the same set land close by, another data set lands far away. The class features
    use no batch statistics, so an image's features do not depend on the rest of its batch."""
    torch.manual_seed(0)
    config = _config(space="nb201", layers=1, init_channels=4)
    model = TaskDARTS(config).eval()
    stripes = _stripes_npz(tmp_path / "stripes.npz")

    def z(spec, seed):
        task = whole_dataset_task(spec, config.task.channels, config.task.image_size, seed, include_test=False,
                                  outer=False)
        with torch.no_grad():
            return model.embed([task])[0]

    digits = [z("digits", seed) for seed in range(4)]
    within = max((a - b).norm().item() for a in digits for b in digits)
    between = min((d - z(stripes, seed)).norm().item() for d in digits for seed in range(2))
    assert within < 0.25 * between, (within, between)
    extractor = model.graph_builder.extractor.train()
    images = whole_dataset_task("digits", 1, 8, 0, include_test=False).data.x[:16]
    with torch.no_grad():
        assert torch.allclose(extractor(images)[:4], extractor(images[:4]), atol=1e-5)


def test_search_meta_proposes_for_data_sets_with_more_classes_than_meta_training(tmp_path):
    """Meta-trained on 3-way tasks with a 3-output classifier; the 10 digit classes still get a zero-shot
    proposal and an adapted search with a grown classifier."""
    run = tmp_path / "meta3"
    code, _, stderr = run_cli("meta-train", *TINY_META, "--meta-steps", "1", "--max-classes", "3", "--out", str(run))
    assert code == 0, stderr
    for steps in ("0", "2"):
        out = tmp_path / f"k{steps}"
        code, _, stderr = run_cli("search", "--meta", str(run), "--dataset", "digits", "--adapt-steps", steps,
                                  "--out", str(out), "--no-progress")
        assert code == 0, stderr
        assert json.loads((out / "genotype.json").read_text())["space"] == "nb201"
        state = torch.load(out / "checkpoint.pt", weights_only=True)
        assert state["model"]["classifier.weight"].shape[0] == 10


def test_natural_task_config_is_valid_and_holds_cifar10_out_of_meta_training():
    values = yaml.safe_load((ROOT / "configs" / "meta_nb201_natural.yaml").read_text())
    config = MetaConfig.from_dict(values)
    config.validate()
    specs = config.task.tasks + config.task.test_tasks
    assert config.space == "nb201" and not any("cifar" in spec.lower() for spec in specs)
    assert {"tinyimagenet32", "gtsrb32", "omniglot_small", "mnist_test"} <= {spec.rsplit("/", 1)[-1].split(".")[0]
                                                                            for spec in specs}


def test_episodes_with_a_range_of_ways_cover_it_and_stay_in_the_meta_training_classes():
    sizes = SplitSizes(5, 5, 5, 5)
    meta_train, _, split = build_distributions(["digits"], [], 3, sizes, 1, 8, 0.3, 0, max_ways=6)
    rng, seen = random.Random(0), set()
    for _ in range(60):
        task = meta_train.sample(rng)
        n = task.num_classes
        seen.add(n)
        assert sorted(task.data.y.unique().tolist()) == list(range(n)) and len(task.support) == 5 * n
        assert {int(c) for c in task.data.classes} <= set(split.meta_train["digits"])
    assert seen == {3, 4, 5, 6}
    fixed, _, _ = build_distributions(["digits"], [], 3, sizes, 1, 8, 0.3, 0)
    assert {fixed.sample(rng).num_classes for _ in range(10)} == {3}


@pytest.mark.parametrize("max_ways", ["2", "11"])
def test_max_ways_outside_ways_and_max_classes_is_one_line_exit_2(tmp_path, max_ways):
    code, _, stderr = run_cli("meta-train", "--ways", "3", "--max-ways", max_ways, "--out", str(tmp_path / "x"))
    assert code == 2 and "--max-ways" in stderr and len(stderr.strip().splitlines()) == 1


def test_beta_regularizer_adds_exactly_its_gradient_to_the_proposal():
    """With no inner steps the adapted task is its start, so the only difference a beta-decay regularizer makes to
    the controller's output-bias gradient is the mean over the meta-batch of lambda * softmax(alpha0_i) / E_t."""
    grads = {}
    for regularizer in ("none", "beta"):
        config = _config(space="nb201", layers=1, init_channels=4, meta_batch=2, meta_steps=2, inner_steps=0,
                    probe_tasks=1, grad_clip=1e9, logit_regularizer=regularizer, regularizer_weight=7.0)
        torch.manual_seed(0)
        job = MetaTrainJob(config, torch.device("cpu"))
        job.done = 1  # the last meta-step: lambda at its full value
        rng = random.Random()
        rng.setstate(job.task_rng.getstate())
        tasks = [job.meta_train.sample(rng) for _ in range(config.meta.meta_batch)]
        before = copy.deepcopy(job.model)
        job.run_unit(False)
        grads[regularizer] = {ct: job.model.controller.heads[ct].bias.grad.clone() for ct in job.model.space.cell_types}
    z = before.embed(tasks)
    for ct, g in grads["beta"].items():
        alpha0 = before.controller(z.detach())[ct]  # [B, edges, ops]
        expected = (7.0 * torch.softmax(alpha0, -1) / alpha0.shape[1]).mean(0).reshape(g.shape)
        torch.testing.assert_close(g - grads["none"][ct], expected.detach(), rtol=1e-4, atol=1e-6)


def test_search_meta_takes_a_data_set_of_any_size(meta_run, tmp_path):
    """11 training images: halves of 6 and 5 (rounding both halves up, 6 + 6, once made the zero-shot search fail)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (11, 8, 8), generator=g, dtype=torch.uint8).numpy()
    y = np.array([0, 1, 2] * 3 + [0, 1])
    np.savez(tmp_path / "eleven.npz", x=x, y=y, x_test=x[:3], y_test=y[:3])
    code, _, stderr = run_cli("search", "--meta", str(meta_run), "--dataset", f"npz:{tmp_path / 'eleven.npz'}",
                              "--out", str(tmp_path / "zs"), "--no-progress")
    assert code == 0, stderr
    task = whole_dataset_task(f"npz:{tmp_path / 'eleven.npz'}", 1, 8, seed=0, include_test=False, outer=False)
    assert (len(task.support), len(task.query), len(task.outer)) == (6, 5, 0)


def test_every_proposal_option_reaches_the_meta_search_config(meta_run, tmp_path):
    """search --meta builds its MetaSearchConfig from the flags its fields generate: an option typed is an option
    recorded (here --max-images-per-class, --seed and --exclude-ops), the rest at the config's defaults."""
    out = tmp_path / "proposal"
    code, _, stderr = run_cli("search", "--meta", str(meta_run), "--dataset", "digits", "--max-images-per-class", "7",
                              "--seed", "3", "--exclude-ops", "avg_pool_3x3", "--out", str(out), "--no-progress")
    assert code == 0, stderr
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["max_images_per_class"] == 7 and saved["seed"] == 3 and saved["exclude_ops"] == ["avg_pool_3x3"]
    assert saved["adapt_steps"] == 0 and saved["device_profile"] == "auto" and saved["verify_epochs"] == 5
