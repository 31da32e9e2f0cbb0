"""Synthetic data, windows and contexts: deterministic, realistic, and never leaking the scored bar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from orchestrator.data import Contexts, load_series, make_windows, synthetic_ohlcv, write_synthetic


def test_synthetic_data_is_deterministic_per_symbol_and_seed() -> None:
    a = synthetic_ohlcv("BTCUSD", 500, seed=1)
    assert a.equals(synthetic_ohlcv("BTCUSD", 500, seed=1))
    assert not a.equals(synthetic_ohlcv("BTCUSD", 500, seed=2))
    assert not a.equals(synthetic_ohlcv("ETHUSD", 500, seed=1))


def test_synthetic_data_has_fat_tails_volatility_clustering_and_valid_bars() -> None:
    bars = synthetic_ohlcv("BTCUSD", 3000)
    r = np.diff(np.log(bars["close"].to_numpy()))
    z = (r - r.mean()) / r.std()
    assert np.mean(z**4) > 4  # kurtosis well above the normal's 3
    a = np.abs(r - r.mean())
    assert np.corrcoef(a[:-1], a[1:])[0, 1] > 0.1  # |returns| cluster
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all() and (bars["low"] > 0).all()


def test_written_csv_loads_with_every_column(tmp_path: Path) -> None:
    write_synthetic(tmp_path, ["X"], rows=120)
    series = load_series(tmp_path, "X", ("close",), ("open", "high", "low", "volume"))
    assert list(series.frame.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
    assert series.rows == 120 and len(series.sha256) == 64


@pytest.fixture
def series(tmp_path: Path):
    write_synthetic(tmp_path, ["BTCUSD"], rows=200)
    return load_series(tmp_path, "BTCUSD")


def test_validation_windows_come_right_before_test_windows(series) -> None:
    w = make_windows(series, 30, 20, 64)
    assert list(w.test) == list(range(180, 200))
    assert list(w.validation) == list(range(150, 180))


def test_context_is_strictly_before_the_scored_bar(series) -> None:
    w = make_windows(series, 30, 20, 64)
    contexts = Contexts.of(series, w.validation)
    history = contexts.history("close", 64)
    close = series.close
    for i, t in enumerate(w.validation):
        np.testing.assert_array_equal(history[i], close[t - 64 : t])
    assert len(contexts.frame) == w.validation.max()  # the last scored bar is not even in the frame


def test_history_longer_than_the_data_is_left_padded(series) -> None:
    contexts = Contexts.of(series, np.array([10, 20]))
    history = contexts.history("close", 15)
    assert np.isnan(history[0, :5]).all() and not np.isnan(history[0, 5:]).any()
    assert not np.isnan(history[1]).any()
