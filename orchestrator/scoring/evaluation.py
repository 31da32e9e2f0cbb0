"""Scoring: one-step return MAE, common-random-number runs and the encode cache."""

from __future__ import annotations

import contextlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from orchestrator.data import Contexts, Series, Windows
from orchestrator.models.aggregate import aggregate
from orchestrator.models.base import QUANTILE_LEVELS, Encoded, Forecaster, ForecastError

def return_errors(predicted: np.ndarray, previous: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Per window |predicted return - actual return|, returns relative to the previous close."""
    return np.abs((predicted - previous) / previous - (actual - previous) / previous)


def return_mae(predicted: np.ndarray, previous: np.ndarray, actual: np.ndarray) -> float:
    """Mean over windows of |predicted return - actual return|."""
    return float(np.mean(return_errors(predicted, previous, actual)))


def naive_errors(series: Series, ends: np.ndarray) -> np.ndarray:
    """Per window error of predicting a zero return (the next close = the last one): the random-walk baseline."""
    close = series.close
    return return_errors(close[ends - 1], close[ends - 1], close[ends])


def naive_mae(series: Series, ends: np.ndarray) -> float:
    return float(np.mean(naive_errors(series, ends)))


def run_seed(seed: int, run: int) -> int:
    """Generator seed of run `run`: the same in every trial of a study (common random numbers)."""
    return int(np.random.SeedSequence([seed, run]).generate_state(1, dtype=np.uint64)[0] >> 1)


@dataclass
class Evaluation:
    """MAE of each run of one config on one split, and each window's error averaged over the runs."""

    split: str
    runs: list[int]
    run_maes: list[float] = field(default_factory=list)
    window_errors: np.ndarray | None = None
    seconds: float = 0.0
    encode_seconds: float = 0.0
    cache_hit: bool = False

    @property
    def mae(self) -> float:
        return float(np.mean(self.run_maes))

    @property
    def std(self) -> float:
        return float(np.std(self.run_maes, ddof=1)) if len(self.run_maes) > 1 else 0.0

    @property
    def sem(self) -> float:
        return self.std / math.sqrt(len(self.run_maes)) if self.run_maes else 0.0


@dataclass(frozen=True)
class Prediction:
    """What one config forecasts for each window's scored bar, drawn exactly as `Evaluator.evaluate` draws it.

    `point` is what scoring scores: each run's aggregate (the config's `aggregate` rule over that run's draws),
    averaged over the runs. `quantiles` are next-bar closes at `levels` from `Forecaster.quantiles`: of the draws
    pooled over the runs for a sampling model, the levels it predicts for a deterministic one (NaN at a level it
    cannot give). `draws` keeps the pooled draws of a sampling model (None for a deterministic one), e.g. for CRPS.
    """

    point: np.ndarray  # [windows]
    levels: tuple[float, ...]
    quantiles: np.ndarray  # [windows, len(levels)]
    draws: np.ndarray | None  # [windows, runs * n]
    runs: list[int]


class EncodeCache:
    """Least-recently-used encode results, bounded by their total size in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, tuple[Encoded, int]] = OrderedDict()
        self.bytes = 0

    def get(self, key: tuple) -> Encoded | None:
        if key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key][0]

    def put(self, key: tuple, encoded: Encoded) -> None:
        size = sum(t.nelement() * t.element_size() for t in encoded.values())
        if size > self.max_bytes:
            return
        self._items[key] = (encoded, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, dropped) = self._items.popitem(last=False)
            self.bytes -= dropped

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)


class Evaluator:
    """Scores params of one forecaster on one series' windows, runs seeded from the study seed."""

    def __init__(
        self,
        forecaster: Forecaster,
        series: Series,
        windows: Windows,
        seed: int,
        cache: EncodeCache | None = None,
    ) -> None:
        self.forecaster = forecaster
        self.series = series
        self.windows = windows
        self.seed = seed
        self.cache = cache if cache is not None else EncodeCache(1 << 30)

    def encode(self, params: Mapping[str, Any], split: str) -> tuple[Encoded, bool]:
        """(encoded, cache hit) for the split's windows."""
        ends = self.windows.of(split)
        relevant = tuple(sorted((k, params[k]) for k in self.forecaster.encode_params if k in params))
        key = (self.forecaster.name, self.series.sha256, ends.tobytes(), relevant)
        encoded = self.cache.get(key)
        if encoded is not None:
            return encoded, True
        encoded = self.forecaster.encode(Contexts.of(self.series, ends), params)
        self.cache.put(key, encoded)
        return encoded, False

    def samples(self, params: Mapping[str, Any], split: str, run: int) -> torch.Tensor:
        """[windows, n] next-close samples of run `run` (float64, CPU)."""
        encoded, _ = self.encode(params, split)
        return self._draw(encoded, params, run)

    def _draw(self, encoded: Encoded, params: Mapping[str, Any], run: int) -> torch.Tensor:
        generator = torch.Generator(device=self.forecaster.device).manual_seed(run_seed(self.seed, run))
        n = int(params[self.forecaster.samples_param]) if self.forecaster.stochastic else 1
        drawn = self.forecaster.sample(encoded, n, params, generator)
        return drawn.detach().to("cpu", torch.float64)

    def runs(self, runs: range) -> range:
        """The runs to make: all of them for a sampling model, the first only for a deterministic one (every run
        would give the same forecast)."""
        return runs if self.forecaster.stochastic else runs[:1]

    def evaluate(
        self,
        params: Mapping[str, Any],
        runs: range,
        split: str = "validation",
        on_run: Callable[[int, float], None] | None = None,
        limit: Callable[[], contextlib.AbstractContextManager[None]] | None = None,
    ) -> Evaluation:
        """MAE per run (one run for a deterministic model); `on_run(step, running mean)` is called after each run
        (pruning hooks in there).

        `limit` (a context manager factory, e.g. the trial timeout) bounds the runs but not the encode, whose first
        call at a new shape also compiles.
        """
        runs = self.runs(runs)
        start = time.perf_counter()
        encoded, hit = self.encode(params, split)
        result = Evaluation(split=split, runs=list(runs), cache_hit=hit, encode_seconds=time.perf_counter() - start)
        ends = self.windows.of(split)
        previous, actual = self.series.close[ends - 1], self.series.close[ends]
        total = np.zeros(len(ends))
        with limit() if limit is not None else contextlib.nullcontext():
            for step, (_, point) in enumerate(self._points(encoded, params, runs)):
                errors = return_errors(point, previous, actual)
                total += errors
                result.run_maes.append(float(np.mean(errors)))
                if on_run is not None:
                    on_run(step, result.mae)
        result.window_errors = total / max(len(result.run_maes), 1)
        result.seconds = time.perf_counter() - start
        return result

    def predict(
        self, params: Mapping[str, Any], runs: range, split: str = "validation",
        levels: Sequence[float] = QUANTILE_LEVELS,
    ) -> Prediction:
        """The forecast `evaluate` scores for each window of `split` (same runs, seeds and draws), with quantiles at
        `levels`. A window's scored bar may lie after the series' last bar (a forecast of the next bar): only its
        context is read."""
        runs = self.runs(runs)
        encoded, _ = self.encode(params, split)
        draws, points = [], []
        for samples, point in self._points(encoded, params, runs):
            draws.append(samples)
            points.append(point)
        pooled = torch.cat(draws, dim=1)
        quantiles = self.forecaster.quantiles(encoded, pooled, params, levels)
        return Prediction(
            point=np.mean(points, axis=0), levels=tuple(levels), quantiles=quantiles.numpy(),
            draws=pooled.numpy() if self.forecaster.stochastic else None, runs=list(runs),
        )

    def _points(
        self, encoded: Encoded, params: Mapping[str, Any], runs: range
    ) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
        """(draws [windows, n], point forecasts [windows]) of each run: the one path `evaluate` and `predict` share."""
        name = str(params.get("aggregate", "mean"))
        for run in runs:
            samples = self._draw(encoded, params, run)
            if not torch.isfinite(samples).all():
                bad = int((~torch.isfinite(samples)).any(dim=1).sum())
                raise ForecastError(f"{bad} of {samples.shape[0]} windows have NaN/inf samples (run {run})")
            yield samples, aggregate(samples, name).numpy()

    def naive_mae(self, split: str = "validation") -> float:
        return naive_mae(self.series, self.windows.of(split))
