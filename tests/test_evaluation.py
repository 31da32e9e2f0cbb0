"""Aggregations against numpy/scipy, the MAE, common random numbers and the encode cache."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from scipy import stats

from orchestrator.data import load_series, make_windows, write_synthetic
from orchestrator.models.aggregate import aggregate, parse_aggregate
from orchestrator.scoring.evaluation import EncodeCache, Evaluator, return_mae
from orchestrator.models.base import ModelOptions, create
from orchestrator.search.objective import Objective
from orchestrator.search.space import load_space

SPACES = sorted((Path(__file__).resolve().parent.parent / "configs" / "spaces").glob("*.toml"))
SHIPPED = sorted({c for f in SPACES for c in tomllib.loads(f.read_text()).get("aggregate", {}).get("choices", [])})


def reference(values: np.ndarray, name: str) -> float:
    """Independent computation with numpy / scipy."""
    kind, x = parse_aggregate(name)
    if kind == "mean":
        return float(np.mean(values))
    if kind == "median":
        return float(np.median(values))
    if kind == "quantile":
        return float(np.quantile(values, x))
    if kind == "trimmed_mean":
        return float(stats.trim_mean(values, x))
    if kind == "lower_trimmed_mean":
        return float(np.sort(values)[: len(values) - int(x * len(values))].mean())
    if kind == "upper_trimmed_mean":
        return float(np.sort(values)[int(x * len(values)):].mean())
    return float(stats.mstats.winsorize(values, limits=(x, x)).mean())


def test_every_shipped_space_has_aggregates() -> None:
    assert len(SPACES) >= 1 and len(SHIPPED) >= 10


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("n", [64, 101, 1000])
def test_shipped_aggregates_match_numpy_scipy(name: str, n: int) -> None:
    rng = np.random.default_rng(n)
    samples = rng.standard_t(3, size=(4, n)) * 10 + 100  # fat tails make trimming matter
    got = aggregate(torch.from_numpy(samples), name).numpy()
    want = [reference(row, name) for row in samples]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_lower_and_upper_trimmed_means_drop_the_right_tail() -> None:
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0, 100.0] * 2])  # 10 samples, two outliers at the top
    assert aggregate(values, "lower_trimmed_mean_20").item() == pytest.approx(2.5)  # drops the top 2
    assert aggregate(values, "upper_trimmed_mean_20").item() == pytest.approx(np.mean([2, 3, 3, 4, 4, 100, 100, 2]))


@pytest.mark.parametrize("name, parsed", [("trimmed_mean_10", ("trimmed_mean", 0.1)),
                                          ("trimmed_mean_0.1", ("trimmed_mean", 0.1)),
                                          ("quantile_0.25", ("quantile", 0.25)), ("quantile_75", ("quantile", 0.75)),
                                          ("winsorized_mean_5", ("winsorized_mean", 0.05)), ("mean", ("mean", 0.0))])
def test_parse_fraction_or_percent(name: str, parsed: tuple[str, float]) -> None:
    kind, fraction = parse_aggregate(name)
    assert kind == parsed[0] and fraction == pytest.approx(parsed[1])


@pytest.mark.parametrize("name", ["mode", "trimmed_mean", "median_5", "trimmed_mean_50", "quantile_150"])
def test_parse_refuses_bad_names(name: str) -> None:
    with pytest.raises(ValueError):
        parse_aggregate(name)


def test_return_mae_is_mean_absolute_return_error() -> None:
    prev, actual, pred = np.array([100.0, 50.0]), np.array([101.0, 49.0]), np.array([100.5, 50.0])
    assert return_mae(pred, prev, actual) == pytest.approx(np.mean([0.005, 0.02]))


@pytest.fixture
def evaluator(tmp_path: Path) -> Evaluator:
    write_synthetic(tmp_path, ["BTCUSD"], rows=700)
    series = load_series(tmp_path, "BTCUSD")
    return Evaluator(create("fhs", ModelOptions()), series, make_windows(series, 30, 20, 512), seed=7)


PARAMS = {"context_length": 128, "ewma_halflife": 20.0, "drift": False, "num_samples": 256, "aggregate": "median"}


def test_naive_baseline_is_zero_return_mae(evaluator: Evaluator) -> None:
    close = evaluator.series.close
    t = evaluator.windows.validation
    assert evaluator.naive_mae() == pytest.approx(np.mean(np.abs(close[t] - close[t - 1]) / close[t - 1]))


def test_common_random_numbers_same_params_same_value_in_two_trials(evaluator: Evaluator) -> None:
    fresh = Evaluator(evaluator.forecaster, evaluator.series, evaluator.windows, seed=7)  # no shared cache
    first, again = evaluator.evaluate(PARAMS, range(3)), fresh.evaluate(PARAMS, range(3))
    assert first.run_maes == again.run_maes
    assert len(set(first.run_maes)) == 3  # the runs themselves differ
    assert evaluator.evaluate({**PARAMS, "aggregate": "mean"}, range(3)).mae != first.mae


def test_a_repeated_config_reuses_the_earlier_value(evaluator: Evaluator) -> None:
    space = load_space(Path(SPACES[0]).parent / "fhs.toml")
    study = optuna.create_study()
    for params in (PARAMS, {**PARAMS, "aggregate": "mean"}, PARAMS):
        study.enqueue_trial(params)
    study.optimize(Objective(space, evaluator, range(3)), n_trials=3)
    first, other, again = study.trials
    assert again.value == first.value and again.user_attrs == {"reused_from": 0}
    assert "reused_from" not in other.user_attrs and other.value != first.value


def test_runs_differ_and_seed_changes_draws(evaluator: Evaluator) -> None:
    a = evaluator.samples(PARAMS, "validation", run=0)
    assert torch.equal(a, evaluator.samples(PARAMS, "validation", run=0))
    assert not torch.equal(a, evaluator.samples(PARAMS, "validation", run=1))
    other = Evaluator(evaluator.forecaster, evaluator.series, evaluator.windows, seed=8)
    assert not torch.equal(a, other.samples(PARAMS, "validation", run=0))


def test_sampling_only_change_hits_the_encode_cache(evaluator: Evaluator) -> None:
    calls = []
    encode = evaluator.forecaster.encode
    evaluator.forecaster.encode = lambda contexts, params: calls.append(1) or encode(contexts, params)
    first = evaluator.evaluate(PARAMS, range(2))
    second = evaluator.evaluate({**PARAMS, "num_samples": 512, "aggregate": "mean", "context_length": 64}, range(2))
    evaluator.evaluate(PARAMS, range(2), split="test")
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert len(calls) == 2  # validation once, test once


def test_cache_is_bounded_in_bytes() -> None:
    cache = EncodeCache(max_bytes=1000)
    for i in range(5):
        cache.put((i,), {"x": torch.zeros(50, dtype=torch.float64)})  # 400 bytes each
    assert len(cache) == 2 and cache.bytes == 800
    assert cache.get((4,)) is not None and cache.get((0,)) is None
