"""Budgets where cells cannot be enumerated (DARTS): the most likely of the logits' sampled candidates whose counted
evaluation network fits (supernet/sampled_budget.py), through `search --meta RUN` in the DARTS space."""
import csv
import json

import pytest
import torch

from run_kit import InputError
from supernet.costs import Budget
from supernet.sampled_budget import CountedCosts, candidates, log_probability, sampled_budgeted_derive
from supernet.spaces import get_space
from tests.helpers import run_cli

DARTS = get_space("darts")
COSTS = CountedCosts("darts", 10, 3, 32)


def _logits(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(shape, generator=generator) for name, shape in DARTS.logits_shapes().items()}


def test_candidates_start_at_the_derivation_and_are_ranked_by_likelihood():
    logits = _logits(0)
    ranked = candidates(DARTS, logits, samples=40)
    assert DARTS.to_text(ranked[0][1]) == DARTS.to_text(DARTS.derive(logits))
    scores = [score for score, _ in ranked]
    assert scores == sorted(scores, reverse=True) and len(ranked) > 5
    assert scores[0] == pytest.approx(log_probability(DARTS, logits, DARTS.derive(logits)))


def test_the_proposal_is_the_most_likely_candidate_that_fits():
    logits = _logits(1)
    ranked = candidates(DARTS, logits, samples=40)
    flops = [COSTS.of(g)[1] for _, g in ranked[:8]]
    bound = sorted(flops)[2]  # three of the eight most likely fit, not necessarily the first
    genotype, costed, drawn = sampled_budgeted_derive(DARTS, logits, COSTS, Budget(max_flops_m=bound), samples=40,
                                                      max_costed=8)
    first = next(k for k, f in enumerate(flops) if f <= bound)
    assert DARTS.to_text(genotype) == DARTS.to_text(ranked[first][1]) and costed == first + 1
    assert drawn == len(ranked) and COSTS.of(genotype)[1] <= bound
    with pytest.raises(InputError, match="none of the 8 most likely .* meets at most 1.0 M FLOPs"):
        sampled_budgeted_derive(DARTS, logits, COSTS, Budget(max_flops_m=1.0), samples=40, max_costed=8)
    with pytest.raises(InputError, match="needs a device profile's latency model"):
        sampled_budgeted_derive(DARTS, logits, COSTS, Budget(max_latency_ms=5.0))


TRUTH_MS = {"none": 0.0, "max_pool_3x3": 0.2, "avg_pool_3x3": 0.2, "skip_connect": 0.05, "sep_conv_3x3": 1.0,
            "sep_conv_5x5": 1.5, "dil_conv_3x3": 0.7, "dil_conv_5x5": 0.9}
"""A simulated device: 3 ms plus these per op held (both cell types)."""


def _device_ms(genotype) -> float:
    return 3.0 + sum(TRUTH_MS[op] for op in DARTS.held_ops(genotype))


def test_a_latency_budget_in_darts_bounds_the_profiles_guarded_prediction_and_skips_measured_misses():
    from supernet.latency import fit_latency, reference_cells

    cells = reference_cells(DARTS)
    model = fit_latency(DARTS, cells, [_device_ms(c) for c in cells], "simulated")
    assert model.predict(DARTS, cells[0]) == pytest.approx(_device_ms(cells[0]), rel=1e-6)
    logits = _logits(2)
    ranked = candidates(DARTS, logits, samples=40)
    bound = sorted(model.bound(DARTS, g) for _, g in ranked[:8])[3]
    genotype, costed, _ = sampled_budgeted_derive(DARTS, logits, COSTS, Budget(max_latency_ms=bound), samples=40,
                                                  max_costed=8, latency=model)
    assert model.bound(DARTS, genotype) <= bound
    assert all(model.bound(DARTS, g) > bound for _, g in ranked[:costed - 1])  # the most likely that fits
    again, _, _ = sampled_budgeted_derive(DARTS, logits, COSTS, Budget(max_latency_ms=bound), samples=40,
                                          max_costed=8, latency=model, exclude=[genotype])
    assert DARTS.to_text(again) != DARTS.to_text(genotype) and model.bound(DARTS, again) <= bound


@pytest.fixture(scope="module")
def darts_meta(tmp_path_factory):
    out = tmp_path_factory.mktemp("darts-meta") / "run"
    code, _, stderr = run_cli("meta-train", "--space", "darts", "--layers", "1", "--init-channels", "4",
                              "--meta-batch", "2", "--inner-steps", "1", "--meta-steps", "2", "--no-progress",
                              "--out", str(out))
    assert code == 0, stderr
    return out


def test_a_darts_meta_model_proposes_under_a_flops_budget(tmp_path, darts_meta):
    loose = tmp_path / "loose"
    code, stdout, stderr = run_cli("search", "--meta", str(darts_meta), "--dataset", "digits", "--max-flops-m",
                                   "100000", "--out", str(loose))
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["candidates_costed"] == 1  # the derivation itself fits a loose budget
    row = next(csv.DictReader((loose / "metrics.csv").open()))
    bound = 0.9 * float(row["flops_m"])  # below the derivation's: another candidate, or one line
    tight = tmp_path / "tight"
    code, stdout, stderr = run_cli("search", "--meta", str(darts_meta), "--dataset", "digits", "--max-flops-m",
                                   str(bound), "--out", str(tight))
    assert code == 0, stderr  # a less likely candidate fits (the run is seeded)
    assert json.loads(stdout)["flops_m"] <= bound and json.loads(stdout)["candidates_costed"] > 1
    code, _, stderr = run_cli("search", "--meta", str(darts_meta), "--dataset", "digits", "--max-flops-m", "1",
                              "--out", str(tmp_path / "impossible"))
    assert code == 2 and "sampled cells meets at most 1.0 M FLOPs" in stderr and not (tmp_path / "impossible").exists()
    # a latency budget from a profile FILE of DARTS cells (their text holds commas: quoted in the CSV)
    from supernet.latency import profile_csv, reference_cells

    cells = reference_cells(DARTS)
    profile = tmp_path / "darts-device.csv"
    profile.write_text(profile_csv(DARTS, cells, [_device_ms(c) for c in cells]))
    bound = sorted(_device_ms(c) for c in cells)[10]
    code, stdout, stderr = run_cli("search", "--meta", str(darts_meta), "--dataset", "digits", "--max-latency-ms",
                                   str(bound), "--device-profile", str(profile), "--out", str(tmp_path / "latency"))
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["latency_bound_ms"] <= bound and (tmp_path / "latency" / "device_profile.csv").is_file()
