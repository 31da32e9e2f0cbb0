"""What the spread is worth: CRPS and central-interval coverage of one-step return forecasts, in MAE's units.

- A sampling model's draws are scored with the ensemble CRPS of `scoringrules`, "fair" estimator (unbiased for the
  CRPS of the distribution the draws come from, so models with different sample counts compare fairly). It is
  computed in scoringrules' probability-weighted-moment form, which is the same number (Zamo and Naveau 2018) in
  O(n log n) rather than the energy form's O(n^2) memory: 4,096 draws on 250 windows would need 33 GB.
- A quantile model (Toto 2.0) is scored with scoringrules' quantile approximation, twice the mean pinball loss over
  its predicted levels: approximate (it leaves out the tails beyond its outer levels), so labelled as such.
- Coverage: the share of bars inside the central 80% (levels 0.1-0.9) and 90% (0.05-0.95) intervals, with the
  binomial standard error at the nominal rate, sqrt(p (1 - p) / bars): how far a calibrated interval's coverage
  strays on that many bars (about 5 points at 80% on 60 bars). A model without both levels has no figure.
- Naive: zero centre, and the spread of the last `NAIVE_RETURNS` returns before each bar, demeaned (untuned).

All inputs are one-step returns relative to the previous close, as MAE scores them. scoringrules (and scipy) are
imported on first use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from orchestrator.scoring.evaluation import Evaluator, Prediction

INTERVALS = {0.8: (0.1, 0.9), 0.9: (0.05, 0.95)}
"""Central interval -> its lower and upper quantile levels."""
SCORED_LEVELS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
"""Levels asked of a quantile model (Toto 2.0 gives 0.1 ... 0.9): its CRPS is approximated over the ones it gives."""
NAIVE_RETURNS = 250
"""The naive interval reads the spread of this many returns before each bar (about a year of daily bars)."""


@dataclass(frozen=True)
class Coverage:
    """How often the bar fell inside a central interval: `inside` bars of `bars`."""

    level: float
    inside: float
    bars: int

    @property
    def rate(self) -> float:
        return self.inside / self.bars

    @property
    def se(self) -> float:
        """Binomial standard error at the nominal rate: the spread of a calibrated interval's coverage."""
        return math.sqrt(self.level * (1 - self.level) / self.bars)

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "rate": self.rate, "se": self.se, "bars": self.bars}


@dataclass(frozen=True)
class Scores:
    """Per-window CRPS and, per central interval, whether each window's bar fell inside it (1.0 or 0.0; None: the
    model has no such interval)."""

    crps: np.ndarray
    inside: Mapping[float, np.ndarray | None]
    approximate: bool = False

    def coverage(self, level: float) -> Coverage | None:
        inside = self.inside.get(level)
        return None if inside is None else Coverage(level, float(np.sum(inside)), len(inside))

    def to_dict(self) -> dict[str, Any]:
        """{"crps", "crps_approximate", "coverage": {"80": {...} or None, "90": ...}}"""
        coverage = {f"{level:.0%}".rstrip("%"): self.coverage(level) for level in INTERVALS}
        return {"crps": float(np.mean(self.crps)), "crps_approximate": self.approximate,
                "coverage": {k: None if c is None else c.to_dict() for k, c in coverage.items()}}


def coverage_text(coverage: dict[str, Any] | None) -> str:
    """'78% ± 5%' for a `Coverage.to_dict()`: the share of bars inside ± its binomial standard error; '-' for none."""
    return "-" if coverage is None else f"{coverage['rate']:.0%} ± {coverage['se']:.0%}"


def crps_ensemble(actual: np.ndarray, draws: np.ndarray, is_sorted: bool = False) -> np.ndarray:
    """Per window fair CRPS of `draws` [windows, n] (sorted along each row if `is_sorted`) for the `actual` [windows]
    values; with a single draw, its absolute error (the CRPS of a point forecast)."""
    import scoringrules

    draws = np.asarray(draws, dtype=float)
    if draws.shape[1] == 1:
        return np.abs(draws[:, 0] - actual)
    return np.asarray(scoringrules.crps_ensemble(np.asarray(actual, dtype=float), draws, estimator="pwm",
                                                 sorted_ensemble=is_sorted, backend="numpy"))


def crps_quantiles(actual: np.ndarray, quantiles: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """Per window approximate CRPS from predicted `quantiles` [windows, len(levels)]: twice the mean pinball loss."""
    import scoringrules

    return np.asarray(scoringrules.crps_quantile(np.asarray(actual, dtype=float), np.asarray(quantiles, dtype=float),
                                                 np.asarray(levels, dtype=float), backend="numpy"))


def ensemble_scores(actual: np.ndarray, draws: np.ndarray) -> Scores:
    """Draws [windows, n] of returns: fair CRPS and whether each bar is inside each central interval
    (its ends the draws' empirical quantiles, interpolated linearly as numpy.quantile and the `quantile_X` rule)."""
    ordered = np.sort(np.asarray(draws, dtype=float), axis=1)  # once, for the quantiles and the CRPS
    inside = {}
    for level, (low, high) in INTERVALS.items():
        lo, hi = _sorted_quantile(ordered, low), _sorted_quantile(ordered, high)
        inside[level] = ((lo <= actual) & (actual <= hi)).astype(float)
    return Scores(crps_ensemble(actual, ordered, is_sorted=True), inside)


def _sorted_quantile(ordered: np.ndarray, level: float) -> np.ndarray:
    """numpy.quantile's linear rule on rows that are already sorted."""
    position = (ordered.shape[1] - 1) * level
    below = int(np.floor(position))
    above = min(below + 1, ordered.shape[1] - 1)
    return ordered[:, below] + (position - below) * (ordered[:, above] - ordered[:, below])


def quantile_scores(actual: np.ndarray, quantiles: Mapping[float, np.ndarray]) -> Scores:
    """Predicted quantiles (level -> [windows] returns): approximate CRPS over the given levels, and coverage of each
    central interval whose both levels are given."""
    levels = sorted(quantiles)
    crps = crps_quantiles(actual, np.stack([quantiles[q] for q in levels], axis=1), levels)
    inside = {level: (((quantiles[low] <= actual) & (actual <= quantiles[high])).astype(float)
                      if low in quantiles and high in quantiles else None)
              for level, (low, high) in INTERVALS.items()}
    return Scores(crps, inside, approximate=True)


def prediction_scores(prediction: Prediction, previous: np.ndarray, actual: np.ndarray) -> Scores:
    """Scores of an `Evaluator.predict` result on its windows' bars (closes `actual`, after `previous`): the fair
    CRPS and intervals of the draws pooled over the runs for a sampling model; for a deterministic one, the quantile
    approximation over the levels it gives (a level NaN in any window is left out)."""
    returns = actual / previous - 1
    if prediction.draws is not None:
        return ensemble_scores(returns, prediction.draws / previous[:, None] - 1)
    quantiles = prediction.quantiles / previous[:, None] - 1
    given = {level: quantiles[:, i] for i, level in enumerate(prediction.levels) if np.isfinite(quantiles[:, i]).all()}
    if not given:
        raise ValueError("the model gives no quantiles to score")
    return quantile_scores(returns, given)


def evaluator_scores(evaluator: Evaluator, params: Mapping[str, Any], runs: range, ends: np.ndarray) -> Scores:
    """Scores of `evaluator`'s forecaster with `params` on its validation windows ending at bars `ends`: a sampling
    model on its draws pooled over `runs`, a deterministic one on its quantiles at SCORED_LEVELS
    (`prediction_scores`, as `orchestrator forecast` reads its quantiles)."""
    levels = () if evaluator.forecaster.stochastic else SCORED_LEVELS  # a sampling model is scored on its draws
    prediction = evaluator.predict(params, runs, "validation", levels)
    close = evaluator.series.close
    return prediction_scores(prediction, close[ends - 1], close[ends])

def naive_draws(close: np.ndarray, ends: np.ndarray, count: int = NAIVE_RETURNS) -> list[np.ndarray]:
    """Per window ending at bar t: the returns of the `count` bars before t (fewer where the file has fewer, at
    least 2), minus their mean: the naive forecast's spread around its zero centre."""
    close = np.asarray(close, dtype=float)
    returns = close[1:] / close[:-1] - 1  # returns[i]: bar i + 1 against bar i
    found = []
    for t in np.asarray(ends):
        past = returns[max(t - 1 - count, 0): t - 1]
        if len(past) < 2:
            raise ValueError(f"bar {t}: the naive interval needs at least 2 earlier returns, found {len(past)}")
        found.append(past - past.mean())
    return found


def naive_scores(close: np.ndarray, ends: np.ndarray, count: int = NAIVE_RETURNS) -> Scores:
    """The naive forecast's scores on the bars `ends`: its spread is `naive_draws`, scored as an ensemble."""
    close = np.asarray(close, dtype=float)
    ends = np.asarray(ends)
    actual = close[ends] / close[ends - 1] - 1
    draws = naive_draws(close, ends, count)
    crps = np.empty(len(ends))
    inside = {level: np.empty(len(ends)) for level in INTERVALS}
    for size in {len(d) for d in draws}:  # one batch per ensemble size (all of them but early bars share one)
        rows = [i for i, d in enumerate(draws) if len(d) == size]
        scores = ensemble_scores(actual[rows], np.stack([draws[i] for i in rows]))
        crps[rows] = scores.crps
        for level in INTERVALS:
            inside[level][rows] = scores.inside[level]
    return Scores(crps, inside)


def naive_quantiles(close: np.ndarray, ends: np.ndarray, levels: Sequence[float],
                    count: int = NAIVE_RETURNS) -> dict[float, np.ndarray]:
    """The naive forecast's quantiles at `levels` (level -> [windows] returns), to score it as a quantile model is
    scored (on the same levels)."""
    draws = naive_draws(close, ends, count)
    return {q: np.array([np.quantile(d, q) for d in draws]) for q in levels}
