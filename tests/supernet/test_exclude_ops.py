"""`--exclude-ops`: ops a deployment target lacks are left out of the cell by every proposer that decodes one (the
space's derivation, training-free and random sampling, the budgeted decoding, published cells refused), and a list
that leaves nothing is one line."""
import json

import pytest
import torch

from run_kit import InputError
from supernet.costs import Budget, budgeted_derive, cell_costs, cost_terms
from supernet.proposers import ProposalRequest, create_proposer
from supernet.spaces import get_space
from tests.helpers import run_cli

NB201, DARTS = get_space("nb201"), get_space("darts")
TINY_NB201 = ["--space", "nb201", "--layers", "1", "--init-channels", "4", "--epochs", "1", "--no-progress"]


def _prefer(space, op: str) -> dict[str, torch.Tensor]:
    """Logits under which `op` wins every edge by far."""
    return {name: torch.zeros(shape).index_fill(-1, torch.tensor([space.ops.index(op)]), 5.0)
            for name, shape in space.logits_shapes().items()}


@pytest.mark.parametrize("space, op", [(NB201, "avg_pool_3x3"), (DARTS, "sep_conv_3x3")])
def test_the_derivation_never_picks_an_excluded_op(space, op):
    logits = _prefer(space, op)
    assert op in space.ops_used(space.derive(logits))
    assert op not in space.ops_used(space.derive(logits, exclude_ops=[op]))


def test_budgeted_and_random_decodings_leave_excluded_ops_out():
    costs = cost_terms(cell_costs("nb201", 10, 3, 32))
    cell = budgeted_derive(NB201, _prefer(NB201, "nor_conv_3x3"), costs, Budget(max_flops_m=1000.0),
                           exclude_ops=("nor_conv_3x3",))
    assert "nor_conv_3x3" not in NB201.ops_used(cell)
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        assert not {"sep_conv_3x3", "dil_conv_5x5"} & DARTS.ops_used(
            DARTS.random_genotype_without(generator, ("sep_conv_3x3", "dil_conv_5x5")))


def test_every_registered_family_honours_it():
    request = ProposalRequest(NB201, "digits", "data", 0, "cpu", 1, 2, 1, 4, 64, exclude_ops=("nor_conv_3x3",))
    assert "nor_conv_3x3" not in NB201.ops_used(create_proposer("random", NB201).propose(request, None, None).genotype)
    darts_request = ProposalRequest(DARTS, "digits", "data", 0, "cpu", 1, 2, 1, 4, 64, exclude_ops=("sep_conv_3x3",))
    with pytest.raises(InputError, match="DARTS_V2' uses sep_conv_3x3"):
        create_proposer("DARTS_V2", DARTS).propose(darts_request, None, None)


@pytest.mark.parametrize("method", ["darts1", "naswot-4"])
def test_a_search_derives_without_the_excluded_ops(tmp_path, method):
    out = tmp_path / method
    code, stdout, stderr = run_cli("search", *TINY_NB201, "--method", method, "--exclude-ops", "skip_connect",
                                   "avg_pool_3x3", "--out", str(out))
    assert code == 0, stderr
    arch = json.loads((out / "genotype.json").read_text())["arch"]
    assert "skip_connect" not in arch and "avg_pool_3x3" not in arch


@pytest.mark.parametrize("ops, message", [
    (["skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"], "leaves no op but `none`"),
    (["none"], "`none` cannot be excluded"),
    (["conv_9x9"], "unknown op(s) conv_9x9"),
])
def test_a_list_that_leaves_nothing_or_names_no_op_is_one_line(tmp_path, ops, message):
    code, _, stderr = run_cli("search", *TINY_NB201, "--exclude-ops", *ops, "--out", str(tmp_path / "x"))
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
