"""Generated daily OHLCV bars for the demo, the tests and the benchmarks (no download, deterministic)."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.data.read import csv_path

def synthetic_ohlcv(symbol: str, rows: int = 800, seed: int = 0, trend: float = 0.0) -> pd.DataFrame:
    """Deterministic daily OHLCV bars: Student-t shocks (fat tails), GARCH(1,1) volatility clustering and
    Markov-switching drift regimes (bull / flat / bear), plus a steady `trend` (log return per bar) when asked for.
    Same symbol + seed + trend -> same data."""
    rng = np.random.default_rng([zlib.crc32(symbol.encode()), seed])
    drifts = np.array([0.0012, 0.0, -0.0010])
    stay = 0.985
    omega, alpha, beta = 2e-6, 0.08, 0.9
    var = omega / (1 - alpha - beta)
    regime = 1
    log_returns = np.empty(rows)
    for i in range(rows):
        if rng.random() > stay:
            regime = int(rng.integers(3))
        shock = rng.standard_t(4) / np.sqrt(2.0)  # unit variance for 4 degrees of freedom
        log_returns[i] = trend + drifts[regime] + np.sqrt(var) * shock
        var = omega + alpha * (log_returns[i] - trend - drifts[regime]) ** 2 + beta * var
    close = 50.0 * (1 + rng.random() * 4) * np.exp(np.cumsum(log_returns))
    open_ = np.concatenate([[close[0]], close[:-1]]) * np.exp(rng.normal(0, 0.002, rows))
    spread = np.abs(log_returns) + 0.004
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.5, rows)) * spread)
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.5, rows)) * spread)
    volume = np.round(1e6 * np.exp(rng.normal(0, 0.3, rows)) * (1 + 40 * np.abs(log_returns)))
    timestamps = pd.date_range("2023-01-01", periods=rows, freq="D", tz="UTC")
    return pd.DataFrame(
        {"timestamp": timestamps.strftime("%Y-%m-%dT%H:%M:%SZ"), "open": open_, "high": high, "low": low,
         "close": close, "volume": volume}
    )


def write_synthetic(
    data_dir: Path, symbols: list[str], rows: int = 800, seed: int = 0, trend: float = 0.0
) -> list[Path]:
    """Write one synthetic CSV per symbol into `data_dir`."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for symbol in symbols:
        path = csv_path(data_dir, symbol)
        synthetic_ohlcv(symbol, rows, seed, trend).to_csv(path, index=False, float_format="%.6f")
        paths.append(path)
    return paths
