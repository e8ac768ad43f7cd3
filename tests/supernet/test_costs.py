"""The cell cost model (supernet/costs.py): its additive sums equal the built networks' counts, and the budgeted
decoding returns the most likely cell that fits, or one line when none does."""
import math
from dataclasses import replace

import pytest
import torch

from run_kit import InputError
from supernet.costs import Budget, budgeted_derive, cell_costs, cost_terms
from supernet.discrete import count_flops_m, count_parameters_m
from supernet.spaces import create_network, get_space

NB201 = get_space("nb201")


@pytest.fixture(scope="module")
def costs():
    return cell_costs("nb201", 10, 3, 32)


def _derive(logits, costs, budget):
    return budgeted_derive(NB201, logits, cost_terms(costs), budget, costs.describe())


def test_the_sums_over_edges_equal_the_built_networks(costs):
    generator = torch.Generator().manual_seed(0)
    cells = [NB201.random_genotype(generator) for _ in range(4)]
    cells.append(NB201.with_edge_ops(["nor_conv_3x3"] * 6))
    for cell in cells:
        network = create_network(cell, 10, 3, 16, 5, image_size=32)
        params, flops = costs.of(cell)
        assert params == pytest.approx(count_parameters_m(network), abs=1e-9), NB201.to_text(cell)
        assert flops == pytest.approx(count_flops_m(network, 3, 32), abs=1e-6), NB201.to_text(cell)
    assert costs.of(NB201.with_edge_ops(["none"] * 6)) == (costs.fixed_params_m, costs.fixed_flops_m)


def _prefer(first: str, second: str) -> dict[str, torch.Tensor]:
    """Logits that rank `first` on every edge, then `second`, the rest far below."""
    row = torch.full((len(NB201.ops),), -10.0)
    row[NB201.ops.index(first)], row[NB201.ops.index(second)] = 0.0, -1.0
    return {"cell": row.repeat(NB201.num_edges, 1)}


def test_a_loose_budget_decodes_as_the_space_does_and_a_tight_one_gives_up_the_least(costs):
    logits = {"cell": torch.randn(NB201.num_edges, len(NB201.ops), generator=torch.Generator().manual_seed(1))}
    assert _derive(logits, costs, Budget(max_params_m=100.0)) == NB201.derive(logits)
    preferred = _prefer("nor_conv_3x3", "nor_conv_1x1")
    big = costs.of(NB201.with_edge_ops(["nor_conv_3x3"] * 6))
    small = costs.of(NB201.with_edge_ops(["nor_conv_1x1"] * 6))
    one_swap = small[0] + (big[0] - small[0]) / 6  # room for exactly one 3x3 edge among 1x1s (edges cost alike)
    cell = _derive(preferred, costs, Budget(max_params_m=one_swap + 1e-6))
    assert NB201.edge_ops(cell).count("nor_conv_3x3") == 1 and NB201.edge_ops(cell).count("nor_conv_1x1") == 5
    assert costs.of(cell)[0] <= one_swap + 1e-6
    by_flops = _derive(preferred, costs, Budget(max_flops_m=small[1] + 1e-6))
    assert NB201.edge_ops(by_flops) == ("nor_conv_1x1",) * 6
    both = _derive(preferred, costs, Budget(max_params_m=big[0], max_flops_m=small[1] + 1e-6))
    assert both == by_flops


def test_a_budget_no_cell_meets_and_bad_values_are_one_line(costs):
    with pytest.raises(InputError, match=r"no cell fits at most 0.001 M parameters in the nb201 evaluation network .* "
                                         r"the smallest has 0.07331 M parameters, 7.783 M FLOPs"):
        _derive(_prefer("none", "skip_connect"), costs, Budget(max_params_m=0.001))
    with pytest.raises(InputError, match="a latency_ms budget needs its cost model"):
        _derive(_prefer("none", "skip_connect"), costs, Budget(max_latency_ms=5.0))
    for value in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(InputError, match="--max-flops-m must be a positive number of millions"):
            Budget(max_flops_m=value)
        with pytest.raises(InputError, match="--max-latency-ms must be a positive number of ms"):
            Budget(max_latency_ms=value)
    with pytest.raises(InputError, match="budgets need a space with one op per edge"):
        cell_costs("darts", 10)


def test_the_decoding_enumerates_every_cell_once():
    from supernet.costs import every_cell

    cells = every_cell(NB201.num_edges, len(NB201.ops))
    assert cells.shape == (5**6, 6)
    assert len({tuple(row) for row in cells.tolist()}) == 5**6


def test_a_latency_model_fits_a_profile_it_can_and_bounds_the_decoding(tmp_path, costs):
    """The non-negative fit recovers an additive device exactly; a negative op cost is held at 0; the decoding keeps
    the most likely cell whose predicted latency fits; bad profiles are one line."""
    from supernet.latency import TimingProtocol, fit_latency, measure_latency, read_profile, reference_cells

    truth = {"none": 0.0, "skip_connect": 0.1, "nor_conv_1x1": 0.7, "nor_conv_3x3": 2.0, "avg_pool_3x3": 0.4}
    cells = reference_cells(NB201)
    assert len(cells) == 20 and cells == reference_cells(NB201)  # the same on every machine
    measured = [3.0 + sum(truth[op] for op in NB201.edge_ops(c)) for c in cells]
    model = fit_latency(NB201, cells, measured, "test")
    assert model.intercept_ms == pytest.approx(3.0) and all(model.per_op_ms[op] == pytest.approx(v)
                                                             for op, v in truth.items())
    assert model.guard == pytest.approx(1.0)  # an exactly additive device needs no guard
    skewed = [m - 0.3 * NB201.edge_ops(c).count("skip_connect") for m, c in zip(measured, cells)]  # skip "costs" < 0
    assert fit_latency(NB201, cells, skewed, "test").per_op_ms["skip_connect"] == 0.0
    terms = cost_terms(costs, model.term(NB201))
    preferred = _prefer("nor_conv_3x3", "nor_conv_1x1")
    bound = 3.0 + 5 * 0.7 + 2.0  # one 3x3 among 1x1s
    cell = budgeted_derive(NB201, preferred, terms, Budget(max_latency_ms=bound + 0.05))  # costs step by 0.1 ms
    assert NB201.edge_ops(cell).count("nor_conv_3x3") == 1 and model.predict(NB201, cell) <= bound + 0.05
    with pytest.raises(InputError, match="at least 5 cells whose op counts tell the 4 ops apart"):
        fit_latency(NB201, cells[:3], measured[:3], "short.csv")
    with pytest.raises(InputError, match="a latency guard at confidence 0.95 needs a profile of at least 19 cells; "
                                         "ten.csv has 10"):
        fit_latency(NB201, cells[:10], measured[:10], "ten.csv")
    assert fit_latency(NB201, cells[:10], measured[:10], "ten.csv", confidence=0).guard == 1.0
    for value in (1.0, -0.1, math.nan):
        with pytest.raises(InputError, match=r"--latency-confidence must lie in \[0, 1\)"):
            fit_latency(NB201, cells, measured, "test", confidence=value)
    threads = torch.get_num_threads()
    protocol = TimingProtocol.here(torch.device("cpu"), threads=1, memory_format="channels_last")
    assert protocol.record() == {"latency_device": "cpu", "latency_threads": 1,
                                 "latency_memory_format": "channels_last"}
    assert TimingProtocol.here(torch.device("cpu")).threads == threads  # 0: the count here, recorded as a number
    ms = measure_latency(NB201, cells[:2], 10, 3, 8, replace(protocol, repeats=2, warmup=1))
    assert len(ms) == 2 and all(math.isfinite(v) and v > 0 for v in ms)
    assert torch.get_num_threads() == threads  # the timing's thread count does not leak into the run
    for bad, message in (({"threads": -1}, "--latency-threads must lie between 0"),
                         ({"memory_format": "nhwc"}, "--latency-memory-format must be one of")):
        with pytest.raises(InputError, match=message):
            TimingProtocol.here(torch.device("cpu"), **bad)
    bad = {"header.csv": "cell,ms\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,1\n",
           "cell.csv": "arch,latency_ms\n|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|,1\n",
           "value.csv": "arch,latency_ms\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,-2\n"}
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(InputError, match=f"device profile {tmp_path / name}"):
            read_profile(str(tmp_path / name), NB201)
    with pytest.raises(InputError, match="does not exist"):
        read_profile(str(tmp_path / "missing.csv"), NB201)


def test_the_latency_guard_meets_its_confidence_on_a_noisy_device():
    """On a device whose latencies are an additive model times log-normal noise (10 %), a budget on the bare
    prediction is met by about half of new cells; the leave-one-out guard at 0.95, chosen from 20 profile cells,
    covers new cells at about 0.95 on average over profiles (split-conformal: >= 0.95 in expectation)."""
    from supernet.latency import fit_latency

    truth = {"none": 0.0, "skip_connect": 0.1, "nor_conv_1x1": 0.7, "nor_conv_3x3": 2.0, "avg_pool_3x3": 0.4}

    def device(cell, generator) -> float:
        noise = float(torch.exp(0.1 * torch.randn(1, generator=generator, dtype=torch.float64)))
        return (3.0 + sum(truth[op] for op in NB201.edge_ops(cell))) * noise

    generator = torch.Generator().manual_seed(1)
    new_cells = [NB201.random_genotype(generator) for _ in range(1000)]
    guarded, bare = [], []
    for trial in range(10):
        generator = torch.Generator().manual_seed(100 + trial)
        cells = [NB201.random_genotype(generator) for _ in range(20)]
        measured = [device(c, generator) for c in cells]
        model, plain = fit_latency(NB201, cells, measured, "noisy"), fit_latency(NB201, cells, measured, "noisy", 0)
        assert model.guard > 1.0 and plain.guard == 1.0
        latencies = [device(c, generator) for c in new_cells]
        guarded.append(sum(ms <= model.bound(NB201, c) for ms, c in zip(latencies, new_cells)) / len(new_cells))
        bare.append(sum(ms <= plain.predict(NB201, c) for ms, c in zip(latencies, new_cells)) / len(new_cells))
    assert sum(guarded) / len(guarded) >= 0.94 and min(guarded) >= 0.85
    assert sum(bare) / len(bare) < 0.7


def test_where_the_device_is_at_hand_a_proposal_measured_over_its_budget_is_replaced(costs):
    """verified_derive measures each decoded cell and leaves out those measured over the bound, so the next most likely
    cell that fits is tried; a device that misses every time is one line. The device is simulated: the additive
    truth of the model, 30 % slower than predicted on cells with more than one 3x3 convolution."""
    from supernet.latency import fit_latency, reference_cells, verified_derive

    truth = {"none": 0.0, "skip_connect": 0.1, "nor_conv_1x1": 0.7, "nor_conv_3x3": 2.0, "avg_pool_3x3": 0.4}
    cells = reference_cells(NB201)
    model = fit_latency(NB201, cells, [3.0 + sum(truth[op] for op in NB201.edge_ops(c)) for c in cells], "test")
    terms = cost_terms(costs, model.term(NB201))
    # two 3x3 among 1x1s (9.8 ms) fit, with a margin that floating point cannot cross: every cell's latency is a
    # multiple of 0.1 ms, so 0.05 ms lies between the cells that fit and the next costlier ones
    bound = 3.0 + 2 * 2.0 + 4 * 0.7 + 0.05
    budget = Budget(max_latency_ms=bound)
    preferred = _prefer("nor_conv_3x3", "nor_conv_1x1")

    def decode(excluded):
        return budgeted_derive(NB201, preferred, terms, budget, exclude=excluded)

    def device(cell) -> float:  # the truth itself, not the fitted model, so the measured value has no fitting error
        ops = NB201.edge_ops(cell)
        return (3.0 + sum(truth[op] for op in ops)) * (1.3 if ops[-1] == "nor_conv_3x3" else 1.0)

    first = decode(())
    assert NB201.edge_ops(first).count("nor_conv_3x3") == 2 and device(first) > bound
    second = decode([first])
    assert second != first and NB201.edge_ops(second).count("nor_conv_3x3") == 2
    cell, measured, tries = verified_derive(decode, device, bound)
    assert measured == device(cell) <= bound and NB201.edge_ops(cell)[-1] != "nor_conv_3x3"
    assert NB201.edge_ops(cell).count("nor_conv_3x3") == 2 and tries == 3  # (4, 5) and (3, 5) measured over it
    with pytest.raises(InputError, match=r"the 5 most likely cells under .* ms \(guarded prediction\) all measured "
                                         r"over it here"):
        verified_derive(decode, lambda c: 2 * bound, bound)
    only = NB201.with_edge_ops(["none"] * 6)
    with pytest.raises(InputError, match="once the 1 measured over it are left out"):
        budgeted_derive(NB201, preferred, terms, Budget(max_latency_ms=model.predict(NB201, only) + 0.05),
                        exclude=[only])
