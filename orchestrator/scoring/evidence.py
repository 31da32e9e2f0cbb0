"""Paired evidence that one config beats another, window by window: a Diebold-Mariano test with the
Harvey-Leybourne-Newbold small-sample correction, for one-step-ahead forecasts and absolute-error loss; and evidence
that the best of many configs tried beats it: Hansen's test for superior predictive ability (SPA)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Evidence:
    """How much lower the candidate's errors are than the incumbent's, over the same windows and runs.

    `improvement` and `se` are fractions of the incumbent's MAE (0.0049 = 0.49% better); `se` is the standard error
    the test uses (HLN-corrected), so `statistic` = improvement / se; `p_value` is one-sided (small: the candidate is
    better), `confidence` = 1 - p_value; `won` is the share of windows where the candidate's error is strictly lower.
    """

    improvement: float
    se: float
    statistic: float
    p_value: float
    won: float
    windows: int

    @property
    def confidence(self) -> float:
        return 1.0 - self.p_value

    def summary(self) -> str:
        """'-0.49% ± 0.21%, p=0.01, 58% of 250 windows': the MAE change (negative = better) ± one standard error."""
        return (f"{signed_percent(-self.improvement)} ± {self.se:.2%}, p={_p(self.p_value)}, {self.won:.0%} of "
                f"{self.windows} windows")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "confidence": self.confidence}


def evidence_text(evidence: dict[str, Any] | None) -> str:
    """The summary of recorded evidence (`Evidence.to_dict()`, with the SPA test's `SpaEvidence.to_dict()` under
    "spa" when it was run), '-' for none."""
    if not evidence:
        return "-"
    text = Evidence(**{k: evidence[k] for k in Evidence.__dataclass_fields__}).summary()
    spa = evidence.get("spa")
    if not spa:
        return text
    return f"{text}; {SpaEvidence(**{k: spa[k] for k in SpaEvidence.__dataclass_fields__ if k in spa}).summary()}"


def signed_percent(value: float) -> str:
    """'+1.10%', '-0.49%', and '0.00%' (no sign) for a value that rounds to zero."""
    text = f"{value:+.2%}"
    return text[1:] if float(text[1:-1]) == 0 else text


def paired_evidence(candidate: np.ndarray, incumbent: np.ndarray) -> Evidence:
    """Diebold-Mariano / HLN on per-window absolute errors (each averaged over the same runs).

    d_t = incumbent_t - candidate_t (positive: the candidate is better). Its long-run variance is Newey-West with
    Bartlett weights and lag floor(cube root of n); the DM statistic is scaled by the HLN factor for horizon 1,
    sqrt((n - 1) / n), and compared with Student's t with n - 1 degrees of freedom. The standard error returned is
    the one that scaling implies: sqrt(lrv / n) / sqrt((n - 1) / n), so that statistic = mean / se.
    """
    candidate, incumbent = np.asarray(candidate, dtype=float), np.asarray(incumbent, dtype=float)
    if candidate.shape != incumbent.shape or candidate.ndim != 1 or len(candidate) < 2:
        raise ValueError("paired evidence needs two equally long 1-d error series of at least 2 windows")
    d = incumbent - candidate
    n = len(d)
    mean = float(d.mean())
    lrv = newey_west_variance(d, newey_west_lag(n))
    se = math.sqrt(lrv / n) / math.sqrt((n - 1) / n)  # HLN correction for h = 1: (n + 1 - 2h + h(h-1)/n) / n
    scale = float(incumbent.mean()) or 1.0
    won = float(np.mean(candidate < incumbent))
    if se == 0.0:  # identical errors on every window (or a constant difference): no noise to test against
        p = 0.5 if mean == 0 else (0.0 if mean > 0 else 1.0)
        return Evidence(mean / scale, 0.0, math.copysign(math.inf, mean) if mean else 0.0, p, won, n)
    from scipy import stats  # here, not at the top: `status` shows evidence without loading scipy.stats (0.5 s)

    statistic = mean / se
    p = float(stats.t.sf(statistic, df=n - 1))
    return Evidence(mean / scale, se / scale, statistic, p, won, n)


def newey_west_lag(n: int) -> int:
    """floor(n^(1/3)) computed in integers: 4 for 64 and 5 for 125, where the float cube root falls just short."""
    lag = round(n ** (1 / 3))
    while lag**3 > n:
        lag -= 1
    while (lag + 1) ** 3 <= n:
        lag += 1
    return lag


def newey_west_variance(x: np.ndarray, lags: int) -> float:
    """Long-run variance of x's mean: gamma_0 + 2 sum_{k=1..lags} (1 - k / (lags + 1)) gamma_k (biased autocovariances)."""
    x = np.asarray(x, dtype=float) - np.mean(x)
    n = len(x)
    variance = float(x @ x) / n
    for k in range(1, min(lags, n - 1) + 1):
        variance += 2 * (1 - k / (lags + 1)) * float(x[k:] @ x[:-k]) / n
    return max(variance, 0.0)


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else "<0.001"


SPA_REPS = 1000
"""Bootstrap replications of the SPA test: the p-value's own sampling error is about 0.007 at p = 0.05."""


@dataclass(frozen=True)
class SpaEvidence:
    """Whether the candidate beats the incumbent once the search is accounted for: Hansen's test for superior
    predictive ability (SPA) over the `configs` configs tried, the candidate among them.

    `p_value` is one-sided and selection-adjusted: the share of bootstrap replications in which the largest
    studentized statistic of all configs, recentred under the null that none beats the incumbent, exceeds the
    candidate's own `statistic`. It is Hansen's consistent SPA p-value when the candidate has the largest statistic,
    and larger otherwise (the best trial by search value is often not the best on the confirm runs).
    """

    p_value: float
    statistic: float
    configs: int
    reps: int
    block: int
    any_p_value: float | None = None
    """Hansen's SPA p-value of the largest statistic: that no config beats the incumbent (<= p_value)."""
    tried: int | None = None
    """Distinct configs the study tried, when only the best `configs` of them were tested."""
    nights: int | None = None
    """Nights of the study's lineage whose configs were counted: 1, this study's own (its archives' configs need not
    be counted: docs/nightly.md); None in decisions made before it was recorded."""

    @property
    def confidence(self) -> float:
        return 1.0 - self.p_value

    def summary(self) -> str:
        """'best of 87 configs over 1 night: p=0.012', 'best of 112 configs over 3 nights: p=0.41', or
        'best of 87 configs over 1 night (the 30 best tested): p=0.02'."""
        over = "" if self.nights is None else f" over {self.nights} night{'s' if self.nights != 1 else ''}"
        bounded = f" (the {self.configs} best tested)" if (self.tried or 0) > self.configs else ""
        return f"best of {max(self.tried or 0, self.configs)} configs{over}{bounded}: p={_p(self.p_value)}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "confidence": self.confidence}


def spa_evidence(incumbent: np.ndarray, configs: np.ndarray, candidate: int, seed: int,
                 reps: int = SPA_REPS) -> SpaEvidence:
    """Hansen's SPA test (studentized, consistent p-value, stationary block bootstrap) of `configs` against the
    incumbent, read for the candidate (column `candidate`).

    `incumbent` [windows] and `configs` [windows, configs] are per-window absolute errors on the same windows and
    runs. d_k = incumbent - config k; t_k = sqrt(n) mean(d_k) / omega_k, omega_k^2 the stationary bootstrap's
    long-run variance of d_k. Each of `reps` replications resamples the windows with arch's StationaryBootstrap
    (`seed` makes it repeat; expected block length: the median over configs of Politis and White's optimal one,
    arch's `optimal_block_length`), recentres each config by its mean unless that mean lies below
    -omega_k sqrt(2 log log n / n) (a clearly worse config keeps its negative mean), and studentizes by omega_k.
    A config whose errors differ from the incumbent's by the same amount on every window has no noise to test
    against and is left out (as the candidate, its p-value is 0, 0.5 or 1, as for the paired test).
    """
    from arch.bootstrap import StationaryBootstrap, optimal_block_length  # here: `status` loads no pandas

    incumbent, configs = np.asarray(incumbent, dtype=float), np.asarray(configs, dtype=float)
    n, k = configs.shape
    if incumbent.shape != (n,) or not 0 <= candidate < k or n < 10:
        raise ValueError("the SPA test needs [windows] and [windows, configs] errors, at least 10 windows, and the "
                         "candidate's column")
    d = incumbent[:, None] - configs
    keep = np.ptp(d, axis=0) > 0
    if not keep[candidate]:  # the candidate's errors differ from the incumbent's by a constant: no noise to test
        c = float(d[0, candidate])
        return SpaEvidence(0.5 if c == 0 else float(c < 0), math.copysign(math.inf, c) if c else 0.0, k, reps, 0)
    column = int(np.sum(keep[:candidate]))
    d = d[:, keep]
    block = max(1, round(float(np.median(optimal_block_length(d)["stationary"]))))
    omega = np.sqrt(np.maximum(stationary_bootstrap_variance(d, block), np.finfo(float).tiny))
    mean = d.mean(axis=0)
    statistics = math.sqrt(n) * mean / omega
    statistic, largest = float(statistics[column]), float(statistics.max())
    if largest <= 0:
        return SpaEvidence(1.0, statistic, k, reps, block, 1.0)
    recentre = np.where(mean >= -omega * math.sqrt(2 * math.log(math.log(n)) / n), mean, 0.0)
    bootstrap = StationaryBootstrap(block, d, seed=seed)
    rows = np.stack([bootstrap.update_indices() for _ in range(reps)])  # [reps, n] resampled window indices
    counts = np.bincount((rows + n * np.arange(reps)[:, None]).ravel(), minlength=reps * n).reshape(reps, n)
    simulated = (math.sqrt(n) * (counts @ d / n - recentre) / omega).max(axis=1)  # [reps]: the largest statistic
    p = float(np.mean(simulated > statistic)) if statistic > 0 else 1.0
    return SpaEvidence(p, statistic, k, reps, block, float(np.mean(simulated > largest)))


def stationary_bootstrap_variance(x: np.ndarray, block: int) -> np.ndarray:
    """Per column, the long-run variance of the mean's sqrt(n) multiple under the stationary bootstrap with expected
    block length `block`: gamma_0 + 2 sum_i kappa_i gamma_i, kappa_i = (1 - i/n)(1-p)^i + (i/n)(1-p)^(n-i),
    p = 1/block (Politis and Romano 1994; the kernel of arch's SPA)."""
    x = np.asarray(x, dtype=float)
    x = x - x.mean(axis=0)
    n = len(x)
    spectrum = np.fft.rfft(x, 2 * n, axis=0)
    gamma = np.fft.irfft(spectrum * spectrum.conj(), 2 * n, axis=0)[:n] / n  # biased autocovariances, lags 0..n-1
    i = np.arange(1, n)
    q = 1.0 - 1.0 / block
    kappa = (1 - i / n) * q ** i + (i / n) * q ** (n - i)
    return gamma[0] + 2 * kappa @ gamma[1:]
