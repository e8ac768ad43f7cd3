import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from supernet.bilevel import BilevelOptimizer, second_order_logit_grads
from supernet.model import ArchLogits, MixedOp
from supernet.relaxation import GumbelRelaxation, SoftmaxRelaxation, create_relaxation, gumbel_tau
from supernet.spaces import create_supernet, get_space


@pytest.mark.parametrize("space_name, layers", [("darts", 3), ("nb201", 1)])
@pytest.mark.parametrize("relax", ["softmax", "gumbel"])
def test_supernet_forward_takes_logits_and_returns_class_scores(space_name, layers, relax):
    torch.manual_seed(0)
    space = get_space(space_name)
    model = create_supernet(space, num_classes=5, in_channels=1, C=4, layers=layers,
                            relaxation=create_relaxation(relax))
    arch = ArchLogits.random(space)
    with torch.no_grad():  # a hard sample of 'none' on every edge into a node would zero the cell and its gradients
        for value in arch.parameters():
            value[:, space.ops.index("none")] = -10.0
    out = model(torch.randn(3, 1, 8, 8), arch())
    assert out.shape == (3, 5)
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in arch.parameters())


def test_supernet_owns_no_architecture_parameters_and_logits_are_in_a_state_dict():
    space = get_space("darts")
    model = create_supernet(space, 10, 3, 4, 3)
    assert not any("logit" in name or "alpha" in name for name, _ in model.named_parameters())
    arch = ArchLogits.random(space)
    state = arch.state_dict()
    assert set(state) == {"logits.normal", "logits.reduce"} and state["logits.normal"].shape == (14, 8)
    arch64 = arch.to(torch.float64)
    assert all(v.dtype == torch.float64 for v in arch64().values())
    fresh = ArchLogits.random(space)
    fresh.load_state_dict(state)
    assert all(torch.equal(fresh()[k], arch()[k]) for k in state_keys(space))


def state_keys(space):
    return space.cell_types


def test_same_weights_different_logits_give_different_outputs():
    space = get_space("nb201")
    model = create_supernet(space, 4, 1, 4, 1).eval()
    x = torch.randn(2, 1, 8, 8)
    a = {"cell": torch.zeros(6, 5)}
    b = {"cell": torch.full((6, 5), -5.0).index_fill_(1, torch.tensor([3]), 5.0)}
    assert not torch.allclose(model(x, a), model(x, b))


def test_gumbel_relaxation_runs_only_the_sampled_op_on_each_edge(monkeypatch):
    space = get_space("darts")
    model = create_supernet(space, 10, 1, 4, 3, relaxation=GumbelRelaxation(tau=1.0))
    calls = []
    run = MixedOp.run
    monkeypatch.setattr(MixedOp, "run", lambda self, k, source: calls.append(k) or run(self, k, source))
    arch = ArchLogits.random(space)
    out = model(torch.randn(2, 1, 8, 8), arch())
    edges = sum(isinstance(m, MixedOp) for m in model.modules())
    assert len(calls) == edges  # one op per edge, not eight
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in arch.parameters())  # straight-through


def test_gumbel_forward_is_one_hot_and_backward_is_soft():
    logits = torch.randn(14, 8, requires_grad=True)
    weights = GumbelRelaxation(tau=2.0)(logits)
    assert torch.equal(weights.sum(-1), torch.ones(14)) and set(weights.detach().unique().tolist()) <= {0.0, 1.0}
    (weights * torch.randn(14, 8)).sum().backward()
    assert (logits.grad != 0).float().mean() > 0.5
    assert torch.equal(GumbelRelaxation()(logits, sample=False).argmax(-1), logits.argmax(-1))
    assert gumbel_tau(0, 10) == 10.0 and gumbel_tau(9, 10) == pytest.approx(0.1)
    assert torch.allclose(SoftmaxRelaxation()(logits), torch.softmax(logits, -1))


def _unrolled_exact(model, logits, weight_batch, logit_batch, lr, optimizer):
    """d/d alpha of L_val(w - lr * (grad_w L_train(w, alpha) + mu m + lambda w), alpha), by autograd."""
    names = [n for n, _ in model.named_parameters()]
    params = [p for _, p in model.named_parameters()]
    group = optimizer.param_groups[0]
    train_loss = F.cross_entropy(model(weight_batch[0], logits), weight_batch[1])
    grads = torch.autograd.grad(train_loss, params, create_graph=True)
    unrolled = {n: p.detach() - lr * (g + group["weight_decay"] * p.detach()
                                      + group["momentum"] * optimizer.state[p]["momentum_buffer"])
                for n, p, g in zip(names, params, grads)}
    val_loss = F.cross_entropy(functional_call(model, unrolled, (logit_batch[0], logits)), logit_batch[1])
    first_order = F.cross_entropy(functional_call(model, {n: u.detach() for n, u in unrolled.items()},
                                                  (logit_batch[0], logits)), logit_batch[1])
    return (torch.autograd.grad(val_loss, list(logits.values())),
            torch.autograd.grad(first_order, list(logits.values())))


def _tiny_problem(space_name):
    torch.manual_seed(0)
    space = get_space(space_name)
    model = create_supernet(space, 3, 1, 4, 3 if space_name == "darts" else 1).double()
    arch = ArchLogits.random(space, init_std=0.5).double()
    batch = lambda: (torch.randn(8, 1, 8, 8, dtype=torch.float64), torch.randint(0, 3, (8,)))  # noqa: E731
    weight_batch, logit_batch = batch(), batch()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=3e-4)
    F.cross_entropy(model(weight_batch[0], {k: v.detach() for k, v in arch().items()}), weight_batch[1]).backward()
    optimizer.step()  # so a momentum buffer exists and enters w'
    optimizer.zero_grad()
    return model, arch, weight_batch, logit_batch, optimizer


def _relative_error(a, b):
    return max(((x - y).norm() / y.norm()).item() for x, y in zip(a, b))


@pytest.mark.parametrize("space_name", ["darts", "nb201"])
def test_second_order_gradient_matches_autograd_through_the_unrolled_step(space_name):
    model, arch, weight_batch, logit_batch, optimizer = _tiny_problem(space_name)
    exact, first_order = _unrolled_exact(model, arch(), weight_batch, logit_batch, 0.5, optimizer)
    approx, _ = second_order_logit_grads(model, arch(), weight_batch, logit_batch, 0.5, optimizer, fd_radius=1e-6)
    assert _relative_error(approx, exact) < 1e-6
    assert _relative_error(first_order, exact) > 0.1  # the second-order term is not negligible here
    # the weights are back where they were after the finite differences
    again, _ = second_order_logit_grads(model, arch(), weight_batch, logit_batch, 0.5, optimizer, fd_radius=1e-6)
    assert _relative_error(again, approx) < 1e-7


def test_second_order_with_darts_eps_is_accurate_where_the_loss_is_smooth():
    """With DARTS's eps = 0.01/||v|| the central difference is O(eps^2): accurate on a smooth network. NAS-Bench-201
    has no max-pool, so swapping ReLU for Softplus makes its supernet smooth."""
    model, arch, weight_batch, logit_batch, optimizer = _tiny_problem("nb201")
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(module, name, nn.Softplus())
    exact, _ = _unrolled_exact(model, arch(), weight_batch, logit_batch, 0.5, optimizer)
    approx, _ = second_order_logit_grads(model, arch(), weight_batch, logit_batch, 0.5, optimizer)
    assert _relative_error(approx, exact) < 1e-3


@pytest.mark.parametrize("order", [1, 2])
def test_bilevel_step_moves_logits_and_weights_on_their_own_splits(order):
    space = get_space("nb201")
    model = create_supernet(space, 3, 1, 4, 1)
    arch = ArchLogits.random(space)
    w_opt = torch.optim.SGD(model.parameters(), 0.05, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(arch.parameters(), 0.01, betas=(0.5, 0.999))
    bilevel = BilevelOptimizer(model, arch, w_opt, a_opt, order=order)
    weights_before = [p.detach().clone() for p in model.parameters()]
    logits_before = arch()["cell"].detach().clone()
    batch = (torch.randn(8, 1, 8, 8), torch.randint(0, 3, (8,)))
    result = bilevel.step(batch, batch, lr=0.05)
    assert set(result) == {"logit_loss", "weight_loss", "weight_acc"} and result["logit_loss"] > 0
    assert not torch.equal(arch()["cell"], logits_before)
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), weights_before))


def test_gumbel_samples_come_from_the_relaxations_own_seeded_generator():
    """Data-parallel ranks agree on the sampled cell because the noise depends on the relaxation's seed only, not on
    the global random stream (which ranks may consume differently), and a checkpoint carries the generator."""
    logits = torch.randn(6, 5)
    torch.manual_seed(1)
    a = GumbelRelaxation(seed=3)
    first = [a(logits).argmax(-1) for _ in range(5)]
    torch.manual_seed(2)
    b = GumbelRelaxation(seed=3)
    assert all(torch.equal(x, b(logits).argmax(-1)) for x in first)
    state = a.state_dict()
    expected = a(logits).argmax(-1)
    c = GumbelRelaxation(seed=99)
    c.load_state_dict(state)
    assert torch.equal(c(logits).argmax(-1), expected)
    assert len({tuple(x.tolist()) for x in first}) > 1  # it does sample
