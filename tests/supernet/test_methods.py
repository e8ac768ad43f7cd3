"""The search methods beyond DARTS/GDAS: PC-DARTS, beta-DARTS, DrNAS and the training-free proxies."""
import copy
import csv
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from supernet.bilevel import BilevelOptimizer
from supernet.model import ArchLogits, CellWeights, MixedOp
from supernet.regularizers import BetaDecay
from supernet.relaxation import DirichletRelaxation
from supernet.spaces import create_network, create_supernet, get_space
from supernet.training_free import first_occurrences, naswot_score, synflow_score
from tests.helpers import run_cli

TINY_NB201 = ["--space", "nb201", "--layers", "1", "--init-channels", "4", "--no-progress"]


@pytest.mark.parametrize("space_name, layers", [("darts", 3), ("nb201", 1)])
def test_partial_channels_one_without_edge_weights_is_plain_darts(space_name, layers):
    space = get_space(space_name)
    torch.manual_seed(0)
    plain = create_supernet(space, 5, 1, 8, layers)
    partial = create_supernet(space, 5, 1, 8, layers, partial=1)
    partial.load_state_dict(plain.state_dict())
    logits = ArchLogits.random(space, init_std=1.0)()
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(plain(x, logits), partial(x, logits))


def test_edge_normalisation_weighs_each_edge_by_a_softmax_over_its_nodes_inputs():
    space = get_space("nb201")
    beta = torch.tensor([0.3, -1.0, 2.0, 0.5, 0.0, -0.7])
    gamma = space.edge_weights({"cell": torch.zeros(6, 5), "cell_edges": beta})["cell"]
    # node 1 reads node 0 (edge 0); node 2 reads 0, 1 (edges 1, 2); node 3 reads 0, 1, 2 (edges 3, 4, 5)
    expected = torch.cat([torch.ones(1), torch.softmax(beta[1:3], 0), torch.softmax(beta[3:6], 0)])
    assert torch.allclose(gamma, expected)
    torch.manual_seed(0)
    cell = create_supernet(space, 3, 1, 4, 1).cells[0]
    alpha = torch.randn(6, 5)
    ops = torch.softmax(alpha, -1)
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        got = cell(x, CellWeights(ops, None, gamma))
        states = [x]  # node_i = sum_j gamma_(i<-j) * mixed_(i<-j)(node_j), by hand
        k = 0
        for target in range(1, 4):
            total = 0
            for j in range(target):
                total = total + gamma[k] * cell.edges[k](states[j], ops[k], None)
                k += 1
            states.append(total)
    assert torch.allclose(got, states[-1], atol=1e-6)
    with torch.no_grad():  # edge weights all 1 are the plain DARTS cell
        assert torch.equal(cell(x, CellWeights(ops, None, torch.ones(6))), cell(x, CellWeights(ops, None, None)))


def test_channel_shuffle_is_a_permutation_and_bypass_channels_pass_unchanged():
    op = MixedOp({"skip": lambda C, stride, affine: nn.Identity()}, ["skip"], C=8, stride=1, bn_after_pool=False,
                 partial=4)
    x = torch.arange(8.0).view(1, 8, 1, 1).expand(2, 8, 3, 3).contiguous()
    out = op(x, torch.tensor([0.5]), None)  # the 2 mixed channels are halved, the 6 others bypass
    values = out[0, :, 0, 0].tolist()
    # input channel g * (C/K) + c goes to output c * K + g (PC-DARTS's channel_shuffle with K groups)
    expected = [0.0] * 8
    for g in range(4):
        for c in range(2):
            source = g * 2 + c
            expected[c * 4 + g] = source * (0.5 if source < 2 else 1.0)
    assert values == expected
    unmixed = op(x, torch.tensor([1.0]), None)[0, :, 0, 0]
    assert sorted(unmixed.tolist()) == list(range(8))  # a permutation of the channels


def test_partial_channel_supernets_run_at_stride_two_and_odd_sizes():
    space = get_space("darts")
    model = create_supernet(space, 3, 1, 8, 3, partial=4)
    logits = ArchLogits.random(space, edge_logits=True)()
    assert model(torch.randn(2, 1, 15, 15), logits).shape == (2, 3)
    plain = sum(p.numel() for p in create_supernet(space, 3, 1, 8, 3).parameters())
    assert sum(p.numel() for p in model.parameters()) < plain / 2  # the ops carry 1/4 of the channels


def test_beta_regularisation_adds_exactly_its_gradient_to_the_logits():
    """d/d alpha of lambda * sum_t mean_e logsumexp(alpha_(t,e)) = lambda * softmax(alpha_(t,e)) / E_t."""
    space = get_space("darts")
    torch.manual_seed(0)
    model = create_supernet(space, 3, 1, 4, 3)
    arch = ArchLogits.random(space, init_std=1.0)
    batch = (torch.randn(8, 1, 8, 8), torch.randint(0, 3, (8,)))
    grads = {}
    for weight in (0.0, 7.0):
        m, a = copy.deepcopy(model), copy.deepcopy(arch)
        regularizer = BetaDecay(space, max_weight=weight)
        regularizer.set_epoch(1, 2)  # lambda = max_weight at the last epoch
        bilevel = BilevelOptimizer(m, a, torch.optim.SGD(m.parameters(), 0.1), torch.optim.SGD(a.parameters(), 0.0),
                                   regularizer=regularizer)
        bilevel.logit_step(batch, batch, lr=0.1)
        grads[weight] = {k: p.grad.clone() for k, p in a.logits.items()}
    for cell_type in space.cell_types:
        alpha = arch.logits[cell_type].detach()
        expected = 7.0 * torch.softmax(alpha, -1) / alpha.shape[0]
        assert torch.allclose(grads[7.0][cell_type] - grads[0.0][cell_type], expected, atol=1e-6)


def test_dirichlet_weights_sample_from_the_relaxations_seed_and_carry_gradients():
    logits = torch.randn(6, 5, requires_grad=True)
    a, b = DirichletRelaxation(seed=1), DirichletRelaxation(seed=1)
    torch.manual_seed(0)
    first = a(logits)
    torch.manual_seed(99)
    assert torch.equal(first, b(logits))  # independent of the global random stream
    assert torch.allclose(first.sum(-1), torch.ones(6)) and not torch.equal(first, a(logits))
    (first[:, 2]).sum().backward()
    assert logits.grad.abs().sum() > 0  # pathwise gradient
    concentration = F.elu(logits.detach()) + 1
    assert torch.allclose(a(logits, sample=False), concentration / concentration.sum(-1, keepdim=True))


def test_naswot_score_of_a_hand_built_network_equals_the_hand_computed_value():
    """One ReLU layer of 3 units on 3 inputs. Pre-activations W x: units fire as codes
    c_1 = (1, 0, 1), c_2 = (1, 1, 0), c_3 = (0, 0, 1); K_H[i, j] = 3 - Hamming(c_i, c_j)."""
    net = nn.Sequential(nn.Linear(2, 3, bias=False), nn.ReLU())
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
    x = torch.tensor([[1.0, -2.0], [2.0, 1.0], [-1.0, -1.0]])
    # by hand: Hamming(c1, c2) = 2, (c1, c3) = 1, (c2, c3) = 3
    kernel = torch.tensor([[3.0, 1.0, 2.0], [1.0, 3.0, 0.0], [2.0, 0.0, 3.0]], dtype=torch.float64)
    assert naswot_score(net, x) == pytest.approx(math.log(abs(torch.linalg.det(kernel).item())))
    assert naswot_score(net, x) == pytest.approx(math.log(3 * 9 - 1 * 3 + 2 * (0 - 6)))  # det = 12


def test_naswot_search_drops_repeated_images_from_its_batch(tmp_path):
    """A repeated image repeats a row of the kernel, so every cell would score log 0 = -inf and none could be ranked
    (omniglot_small.npz holds 5,840 drawings, 4,840 distinct). The search keeps the first of each, in order."""
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [5.0, 6.0], [3.0, 4.0]])
    assert first_occurrences(x).tolist() == [0, 1, 3]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 8, 8), dtype=np.uint8)
    images = np.concatenate([images, images])  # every image twice
    labels = np.tile(np.arange(4), 6)
    np.savez(tmp_path / "twice.npz", x=images, y=labels)
    code, stdout, stderr = run_cli("search", *TINY_NB201, "--proxy", "naswot", "--candidates", "3", "--dataset",
                                   f"npz:{tmp_path / 'twice.npz'}", "--out", str(tmp_path / "run"))
    assert code == 0, stderr
    assert all(math.isfinite(float(row["score"])) for row in csv.DictReader((tmp_path / "run" / "metrics.csv").open()))


def test_synflow_of_a_two_layer_linear_network_is_twice_its_output():
    """R = sum_i |W2_i| sum_j |W1_ij| on an all-ones input; sum |theta * dR/dtheta| over both layers = 2 R."""
    net = nn.Sequential(nn.Linear(3, 2, bias=False), nn.BatchNorm1d(2), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [-1.0, 3.0, 1.0]]))
        net[2].weight.copy_(torch.tensor([[-0.5, 2.0]]))
    r = 0.5 * 3.5 + 2.0 * 5.0
    assert synflow_score(net, (3,)) == pytest.approx(2 * r)
    assert net[0].weight[0, 1] == -2.0  # the network itself is left as it was


def test_synflow_of_an_all_none_cell_is_zero():
    space = get_space("nb201")
    empty = create_network(space.from_text("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"), 10, 3, 8, 1)
    conv = create_network(space.from_text("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_3x3~2|"),
                          10, 3, 8, 1)
    assert synflow_score(empty, (3, 16, 16)) == 0.0 and synflow_score(conv, (3, 16, 16)) > 0


def test_training_free_search_writes_a_search_run_directory_and_is_deterministic(tmp_path):
    args = ("search", *TINY_NB201, "--proxy", "naswot", "--candidates", "12")
    code, stdout, stderr = run_cli(*args, "--out", str(tmp_path / "a"))
    assert code == 0, stderr
    assert {"config.yaml", "log.txt", "metrics.csv", "checkpoint.pt", "genotype.json"} <= \
        {p.name for p in (tmp_path / "a").iterdir()}
    rows = list(csv.DictReader((tmp_path / "a" / "metrics.csv").open()))
    best = max(rows, key=lambda r: float(r["score"]))
    summary = json.loads(stdout.splitlines()[-1])
    assert summary["genotype"]["arch"] == best["genotype"] and summary["score"] == pytest.approx(float(best["score"]))
    assert json.loads(run_cli("derive", str(tmp_path / "a"))[1])["arch"] == best["genotype"]
    assert run_cli(*args, "--out", str(tmp_path / "b"), "--stop-after-epoch", "5")[0] == 0  # stop after 5 candidates
    assert run_cli("search", "--out", str(tmp_path / "b"), "--resume", "--no-progress")[0] == 0
    again = list(csv.DictReader((tmp_path / "b" / "metrics.csv").open()))
    assert [(r["genotype"], r["score"]) for r in again] == [(r["genotype"], r["score"]) for r in rows]


@pytest.mark.parametrize("method", ["pcdarts", "beta-darts", "drnas"])
def test_gradient_methods_search_and_resume_exactly(tmp_path, method):
    flags = {"pcdarts": ("--partial-channels", "4", "--edge-normalization", "--logit-warmup-epochs", "1",
                         "--init-channels", "8"),
             "beta-darts": ("--logit-regularizer", "beta"), "drnas": ("--relax", "dirichlet")}[method]
    args = ("search", *TINY_NB201, "--epochs", "3", *flags)
    assert run_cli(*args, "--out", str(tmp_path / "full"))[0] == 0
    assert run_cli(*args, "--out", str(tmp_path / "cut"), "--stop-after-epoch", "2")[0] == 0
    assert run_cli("search", "--out", str(tmp_path / "cut"), "--resume", "--no-progress")[0] == 0
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert all(torch.equal(a["arch"][k], b["arch"][k]) for k in a["arch"])
    rows = list(csv.DictReader((tmp_path / "full" / "metrics.csv").open()))
    if method == "pcdarts":
        assert "logits.cell_edges" in a["arch"] and rows[0]["logit_loss"] == "" and rows[1]["logit_loss"] != ""
    if method == "beta-darts":
        assert [float(r["regularizer_weight"]) for r in rows] == [0.0, 25.0, 50.0]


@pytest.mark.parametrize("args, message", [
    (("search", "--partial-channels", "3"), "--partial-channels 3 must divide --init-channels 8"),
    (("search", "--proxy", "naswot", "--candidates", "0"), "--candidates must be at least 1"),
    (("search", "--relax", "dirichlet", "--order", "2"), "--order 2 needs --relax softmax"),
    (("search", "--logit-regularizer", "l1"), "invalid choice"),
    (("search", "--regularizer-weight", "-1"), "--regularizer-weight must be at least 0"),
    (("search", "--proxy", "zico"), "invalid choice"),
    (("compare", "--methods", "naswot-x"), "unknown method 'naswot-x'"),
    (("compare", "--methods", "synflow-10", "--candidates", "0"), "--candidates must be at least 1"),
    (("search", "--method", "enas"), "--method must be a search method (darts1, darts2, gdas, pcdarts"),
    (("search", "--method", "gdas-5"), "--method must be a search method"),
    (("search", "--method", "gdas", "--meta", "runs/none"), "--method do(es) not apply to --meta searches"),
    (("teachers", "--teacher-method", "DARTS_V2"), "--teacher-method must be a search method"),
])
def test_bad_method_options_are_one_line_exit_2(tmp_path, args, message):
    code, _, stderr = run_cli(*args, "--out", str(tmp_path / "out"))
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and message in stderr, stderr
    assert not (tmp_path / "out").exists()


def test_a_method_is_one_registry_entry_that_search_compare_and_teachers_read(tmp_path):
    """`search --method` lays the registry's settings under --config and the flags; compare's and the teachers'
    settings are the same entry's (PC-DARTS: logits frozen for round(0.3 * epochs) epochs)."""
    from meta.config import MetaConfig
    from supernet.methods import METHODS, method_settings

    code, _, stderr = run_cli("search", *TINY_NB201, "--method", "pcdarts", "--epochs", "2", "--init-channels", "8",
                              "--out", str(tmp_path / "pc"))
    assert code == 0, stderr
    saved = yaml.safe_load((tmp_path / "pc" / "config.yaml").read_text())
    expected = method_settings("pcdarts", 2, 100)
    assert expected == {"logit_lr": 3e-4, "logit_lr_schedule": "constant", "partial_channels": 4,
                        "edge_normalization": True, "logit_warmup_epochs": 1}
    assert {key: saved[key] for key in expected} == expected
    code, _, stderr = run_cli("search", *TINY_NB201, "--method", "naswot-7", "--candidates", "3", "--out",
                              str(tmp_path / "nw"))  # a flag wins over the method's count
    assert code == 0, stderr
    saved = yaml.safe_load((tmp_path / "nw" / "config.yaml").read_text())
    assert (saved["proxy"], saved["candidates"]) == ("naswot", 3)
    assert method_settings("naswot-7", 10, 100)["candidates"] == 7
    teacher = MetaConfig.from_options({"space": "nb201", "teacher_method": "pcdarts", "teacher_epochs": 10})
    search = teacher.teacher_search(0)
    assert (search.partial_channels, search.logit_warmup_epochs, search.logit_lr) == (4, 3, 3e-4)
    code, stdout, _ = run_cli("compare", "--help")
    assert all(name in " ".join(stdout.split()) for name in METHODS)


@pytest.mark.parametrize("settings", [{"epochs": 2}, {"proxy": "naswot", "candidates": 6}])
def test_a_search_in_memory_ends_where_the_same_search_in_a_run_directory_ends(tmp_path, settings):
    """supernet/search.search_in_memory (the teachers' searches) runs the job run_search runs, without the run
    directory: the same seed gives the same cell; its op weights are the final logits relaxed (gradient) or the op
    shares of the best tenth of scored cells (training-free), each a distribution per edge."""
    from image_sets import load_dataset
    from run_kit.device import seed_everything
    from run_kit.run_dir import RunDir
    from supernet.search import SearchConfig, run_search, search_in_memory

    config = SearchConfig(space="nb201", layers=1, init_channels=4, batch_size=32, device="cpu", **settings)
    data = load_dataset("digits", "train").subset(torch.arange(200))
    on_disk = run_search(config, data, RunDir(tmp_path / "run"), progress=False)
    seed_everything(config.seed)
    outcome = search_in_memory(config, data, torch.device("cpu"))
    space = get_space("nb201")
    assert space.to_json(outcome.genotype) == on_disk["genotype"]
    weights = torch.tensor(outcome.op_weights["cell"])
    assert weights.shape == (space.num_edges, len(space.ops)) and torch.allclose(weights.sum(-1), torch.ones(6))
    assert (outcome.val_acc is None) == ("proxy" in settings)
    with pytest.raises(ValueError, match="training-free"):
        search_in_memory(SearchConfig(space="nb201"), data, torch.device("cpu"), fits=lambda genotype: True)
