"""CRPS and interval coverage against hand-checked cases (orchestrator.scoring.probabilistic)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from orchestrator.scoring.probabilistic import (
    crps_ensemble, ensemble_scores, naive_draws, naive_quantiles, naive_scores, quantile_scores,
)


def test_fair_crps_of_a_three_member_ensemble_by_hand() -> None:
    # {-1, 0, 1}: E|X - y| - E|X - X'| / 2 with the fair pair mean (sum over i != j of |xi - xj|, 8, over 3 * 2)
    ensemble = np.array([[-1.0, 0.0, 1.0]] * 3)
    got = crps_ensemble(np.array([0.0, 0.5, 2.0]), ensemble)
    pair_half = 8 / 6 / 2
    assert got == pytest.approx([2 / 3 - pair_half, 2.5 / 3 - pair_half, 6 / 3 - pair_half])
    assert got == pytest.approx([0.0, 1 / 6, 4 / 3])


def test_fair_crps_does_not_favour_small_ensembles() -> None:
    """Averaged over many 4-member ensembles from N(0, 1), the fair CRPS matches the distribution's own CRPS (closed
    form), where the plain energy form overstates it by E|X - X'| / (2 n) = 0.141: so families with 64 and 4,096
    draws compare on the distribution, not on their sample counts."""
    rng = np.random.default_rng(7)
    actual = rng.normal(size=40_000)
    draws = rng.normal(size=(40_000, 4))
    exact = actual * (2 * norm.cdf(actual) - 1) + 2 * norm.pdf(actual) - 1 / math.sqrt(math.pi)
    fair = crps_ensemble(actual, draws)
    assert fair.mean() == pytest.approx(exact.mean(), abs=0.01)
    energy = np.abs(draws - actual[:, None]).mean(1) - np.abs(draws[:, :, None] - draws[:, None, :]).mean((1, 2)) / 2
    assert energy.mean() - exact.mean() == pytest.approx(2 / math.sqrt(math.pi) / 8, abs=0.01)


def test_crps_of_a_point_forecast_is_its_absolute_error() -> None:
    """Two equal draws, or one: no spread, so the CRPS is |forecast - actual|, the MAE's own error."""
    got = crps_ensemble(np.array([0.01, -0.02]), np.array([[0.005, 0.005], [0.0, 0.0]]))
    assert got == pytest.approx([0.005, 0.02])
    assert crps_ensemble(np.array([0.01, -0.02]), np.array([[0.005], [0.0]])) == pytest.approx([0.005, 0.02])


def test_coverage_of_an_ensemble_by_hand() -> None:
    # every window's draws are 0, 1, ..., 100: the 80% interval is [10, 90], the 90% one [5, 95]
    draws = np.tile(np.arange(101.0), (10, 1))
    actual = np.array([0, 7, 10, 30, 50, 50, 70, 90, 93, 100.0])
    scores = ensemble_scores(actual, draws)
    c80, c90 = scores.coverage(0.8), scores.coverage(0.9)
    assert (c80.inside, c80.bars, c80.rate) == (6, 10, 0.6)  # 10, 30, 50, 50, 70, 90
    assert c90.rate == 0.8  # also 7 and 93
    assert c80.se == pytest.approx(math.sqrt(0.8 * 0.2 / 10))
    assert c90.se == pytest.approx(math.sqrt(0.9 * 0.1 / 10))
    assert ensemble_scores(actual, draws).coverage(0.8).to_dict() == {"level": 0.8, "rate": 0.6,
                                                                     "se": c80.se, "bars": 10}


def test_sixty_bars_give_about_five_points_of_standard_error_at_80_percent() -> None:
    scores = ensemble_scores(np.zeros(60), np.tile([-1.0, 1.0], (60, 1)))
    assert scores.coverage(0.8).se == pytest.approx(0.0516, abs=1e-4)


def test_quantile_crps_is_twice_the_mean_pinball_loss_and_labelled_approximate() -> None:
    # levels 0.1, 0.5, 0.9 at -1, 0, 1; actual 0.5: pinball 0.1 * 1.5, 0.5 * 0.5, 0.1 * 0.5 -> mean 0.15, CRPS 0.3
    quantiles = {0.1: np.array([-1.0, -1.0]), 0.5: np.array([0.0, 0.0]), 0.9: np.array([1.0, 1.0])}
    scores = quantile_scores(np.array([0.5, 2.0]), quantiles)
    assert scores.crps[0] == pytest.approx(0.3)
    assert scores.crps[1] == pytest.approx(2 * (0.1 * 3 + 0.5 * 2 + 0.9 * 1) / 3)
    as_json = scores.to_dict()
    assert as_json["crps_approximate"] is True
    assert as_json["coverage"]["80"]["rate"] == 0.5
    assert as_json["coverage"]["90"] is None  # no 0.05 and 0.95 levels: no 90% figure


def test_naive_spread_is_the_demeaned_returns_before_each_bar() -> None:
    close = np.array([100.0, 110.0, 99.0, 99.0, 108.9, 100.0, 90.0])
    # returns of bars 1..4: +10%, -10%, 0%, +10%; the window scoring bar 5 reads those four, not bar 5's own
    (draws,) = naive_draws(close, np.array([5]))
    assert draws == pytest.approx(np.array([0.1, -0.1, 0.0, 0.1]) - 0.025)
    (last_two,) = naive_draws(close, np.array([5]), count=2)
    assert last_two == pytest.approx([-0.05, 0.05])
    later = naive_draws(close, np.array([5, 6]), count=4)[1]
    assert later == pytest.approx(np.array([-0.1, 0.0, 0.1, 100 / 108.9 - 1]) - np.mean([-0.1, 0.0, 0.1, 100 / 108.9 - 1]))
    scores = naive_scores(close, np.array([5, 6]), count=4)
    actual = close[[5, 6]] / close[[4, 5]] - 1
    assert scores.crps[0] == pytest.approx(crps_ensemble(actual[:1], draws[None])[0])
    assert scores.approximate is False
    quantiles = naive_quantiles(close, np.array([5]), [0.1, 0.9], count=4)
    assert quantiles[0.1][0] == pytest.approx(np.quantile(draws, 0.1))


def test_naive_spread_uses_fewer_returns_early_in_the_file() -> None:
    close = 100 * np.cumprod(1 + np.tile([0.01, -0.01, 0.02], 5))
    scores = naive_scores(close, np.array([3, 4, 14]), count=250)  # 2, 3 and 13 earlier returns
    assert np.isfinite(scores.crps).all()
    with pytest.raises(ValueError, match="at least 2 earlier returns"):
        naive_draws(close, np.array([2]))
