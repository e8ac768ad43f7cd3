"""The scoring rule of every budgeted study (supernet/budget_scoring.py): every budget scores every method, and a
miss scores as a random cell that fits, never as the over-budget cell's own accuracy."""
import pytest
import torch

from supernet.budget_scoring import score_proposal

# five cells: cost and accuracy; the costliest is also the most accurate
COST = torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0], dtype=torch.float64)
ACCURACY = torch.tensor([50.0, 70.0, 60.0, 80.0, 99.0], dtype=torch.float64)


def test_a_cell_that_fits_scores_its_distance_to_the_best_cell_that_fits():
    score = score_proposal(ACCURACY, COST, 3.5, 1)
    assert score.met and score.best == 70.0 and score.regret == 0.0
    assert score_proposal(ACCURACY, COST, 3.5, 2).regret == 10.0
    assert score.guess == 70.0 - 60.0  # the mean of 50, 70, 60


def test_a_miss_scores_the_expected_regret_of_a_random_cell_that_fits_not_the_cell_itself():
    over = score_proposal(ACCURACY, COST, 3.5, 4)  # the 99 % cell costs 10, over the bound
    assert not over.met and over.regret == over.guess == 10.0
    assert over.regret > 0 > 70.0 - 99.0  # its own accuracy would have scored better than the best cell that fits
    none = score_proposal(ACCURACY, COST, 3.5, None)  # no cell proposed (the model predicted none fits)
    assert not none.met and none.regret == over.regret


def test_a_cell_at_the_bound_fits_and_a_bound_no_cell_meets_is_refused():
    assert score_proposal(ACCURACY, COST, 4.0, 3).met
    with pytest.raises(ValueError, match="no cell fits"):
        score_proposal(ACCURACY, COST, 0.5, 0)
