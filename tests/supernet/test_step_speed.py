"""The faster search step computes what the straightforward one computes: shared per-state work, the undilated
form of stride-2 dilated convolutions, recomputed cells, and bf16 autocast (the one change of values, by design)."""
import copy

import pytest
import torch
import torch.nn.functional as F

from search_spaces import darts
from search_spaces.operations import DARTS_OPS, NB201_OPS, RELU_FIRST, DepthwiseConv2d
from supernet.bilevel import BilevelOptimizer
from supernet.darts_networks import DartsSearchCell, darts_cells
from supernet.model import ArchLogits, CellWeights
from supernet.skeleton import cell_walk
from supernet.spaces import create_supernet, get_space
from tests.helpers import run_cli


def _grads(loss, tensors):
    return torch.autograd.grad(loss, tensors, allow_unused=True)


@pytest.mark.parametrize("reduction", [False, True])
@pytest.mark.parametrize("partial", [1, 2])
def test_shared_state_work_equals_computing_every_edge_on_its_own(reduction, partial):
    torch.manual_seed(0)
    slot = next(s for s in darts_cells(8, 3, 3, 4, 4) if s.reduction == reduction)
    shared = DartsSearchCell(get_space("darts").ops, slot, partial)
    alone = copy.deepcopy(shared)
    s0 = torch.randn(3, slot.c_prev_prev, 8, 8, requires_grad=True)
    s1 = torch.randn(3, slot.c_prev, 8, 8, requires_grad=True)
    w = CellWeights(torch.randn(14, 8).softmax(-1).requires_grad_(), None, None)

    out_shared = shared(s0, s1, w)
    states = [alone.preprocess0(s0), alone.preprocess1(s1)]  # a fresh tensor per edge call: nothing is shared
    out_alone = torch.cat(cell_walk(states, darts.NODE_INPUTS, lambda k, h: alone.edges[k](h, w.ops[k], None))[2:], 1)

    assert torch.equal(out_shared, out_alone)
    g = torch.randn_like(out_shared)
    inputs = lambda cell: [s0, s1, w.ops, *cell.parameters()]  # noqa: E731
    for a, b in zip(_grads((out_shared * g).sum(), inputs(shared)), _grads((out_alone * g).sum(), inputs(alone))):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * b.abs().max().item())
    for a, b in zip(shared.buffers(), alone.buffers()):  # every edge's pool BN statistics, updated exactly once
        assert torch.equal(a, b)


@pytest.mark.parametrize("op", [op for op in {**DARTS_OPS, **NB201_OPS}])
@pytest.mark.parametrize("stride", [1, 2])
def test_after_relu_is_the_op_without_its_opening_relu(op, stride):
    registry = DARTS_OPS if op in DARTS_OPS else NB201_OPS
    module = registry[op](6, stride, False)
    if not isinstance(module, RELU_FIRST):
        return
    x = torch.randn(2, 6, 9, 9)
    assert isinstance(module.opening, torch.nn.ReLU)
    assert torch.equal(module(x), module.after_relu(module.opening(x)))


@pytest.mark.parametrize("size", [7, 8, 15, 16])
@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_stride_two_dilated_conv_in_its_undilated_form_is_the_same_convolution(size, kernel, layout):
    torch.manual_seed(0)
    conv = DepthwiseConv2d(6, kernel, stride=2, padding=kernel - 1, dilation=2)
    assert conv.reads_every_sth
    x = torch.randn(2, 6, size, size).contiguous(memory_format=layout).requires_grad_()
    fast = conv(x)
    plain = F.conv2d(x, conv.weight, None, 2, kernel - 1, 2, 6)
    assert fast.shape == plain.shape and torch.equal(fast, plain)
    g = torch.randn_like(plain)
    for a, b in zip(_grads((fast * g).sum(), [x, conv.weight]), _grads((plain * g).sum(), [x, conv.weight])):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert not DepthwiseConv2d(6, 3, stride=1, padding=2, dilation=2).reads_every_sth
    assert not DepthwiseConv2d(6, 5, stride=2, padding=2, dilation=1).reads_every_sth


@pytest.mark.parametrize("space_name, layers", [("darts", 3), ("nb201", 1)])
@pytest.mark.parametrize("order", [1, 2])
def test_recomputed_cells_give_the_same_bilevel_step(space_name, layers, order):
    space = get_space(space_name)
    runs = []
    for recompute in (False, True):
        torch.manual_seed(0)
        model = create_supernet(space, 5, 3, 4, layers, recompute=recompute)
        arch = ArchLogits.random(space, 1.0)
        w_opt = torch.optim.SGD(model.parameters(), 0.1, momentum=0.9, weight_decay=3e-4)
        a_opt = torch.optim.Adam(arch.parameters(), 0.1)
        bilevel = BilevelOptimizer(model, arch, w_opt, a_opt, order=order)
        gen = torch.Generator().manual_seed(1)
        batch = lambda: (torch.randn(4, 3, 8, 8, generator=gen), torch.randint(0, 5, (4,), generator=gen))  # noqa
        losses = [bilevel.step(batch(), batch(), lr=0.1) for _ in range(2)]
        runs.append((losses, [p.detach() for p in arch.parameters()], [p.detach() for p in model.parameters()],
                     list(model.buffers())))
    (loss_a, arch_a, w_a, buf_a), (loss_b, arch_b, w_b, buf_b) = runs
    for a, b in zip(loss_a, loss_b):
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6)
    for a, b in zip(arch_a + w_a, arch_b + w_b):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    for a, b in zip(buf_a, buf_b):  # BN statistics updated once per forward, not again by the recomputation
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-5, atol=1e-6)


def test_bf16_autocasts_the_supernet_and_returns_float32_scores():
    space = get_space("darts")
    torch.manual_seed(0)
    fp32 = create_supernet(space, 5, 3, 4, 3)
    bf16 = copy.deepcopy(fp32)
    bf16.precision = "bf16"
    arch = ArchLogits.random(space, 1.0)
    x = torch.randn(4, 3, 8, 8)
    seen = []
    hook = bf16.cells[0].edges[0].ops[4][0][1].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    out16, out32 = bf16(x, arch()), fp32(x, arch())
    hook.remove()
    assert seen == [torch.bfloat16] and out16.dtype == torch.float32
    assert not torch.equal(out16, out32)
    torch.testing.assert_close(out16, out32, rtol=0.1, atol=0.1)  # bf16 keeps 8 bits of mantissa
    out16.sum().backward()
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in bf16.parameters())


def test_search_and_retrain_run_in_bf16_and_record_it(tmp_path):
    for command in (["search", "--space", "nb201", "--epochs", "1", "--layers", "1", "--init-channels", "4"],
                    ["retrain", "--genotype", "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+"
                                              "|skip_connect~0|none~1|avg_pool_3x3~2|", "--epochs", "1",
                     "--layers", "1", "--init-channels", "4"]):
        out = tmp_path / command[0]
        code, _, err = run_cli(*command, "--precision", "bf16", "--dataset", "digits", "--out", str(out),
                               "--no-progress")
        assert code == 0, err
        assert "precision: bf16" in (out / "config.yaml").read_text()


@pytest.mark.parametrize("command", ["search", "retrain", "meta-train"])
def test_unknown_precision_is_one_line_exit_2(tmp_path, command):
    code, _, err = run_cli(command, "--precision", "fp8", "--out", str(tmp_path / "x"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "fp8" in err


def test_second_order_in_bf16_is_refused(tmp_path):
    """w +- eps v moves weights by ~1e-5 of their size: bfloat16 would round the finite difference away."""
    code, _, err = run_cli("search", "--order", "2", "--precision", "bf16", "--out", str(tmp_path / "x"))
    assert code == 2 and "--order 2 needs --precision fp32" in err and not (tmp_path / "x").exists()
