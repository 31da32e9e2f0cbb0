"""OHLCV CSVs: reading and validation, validation/test windows, model contexts, synthetic demo data."""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.errors import BadInput

PRICE_COLUMNS = ("open", "high", "low", "close")
ALL_COLUMNS = ("timestamp", *PRICE_COLUMNS, "volume")
_SYMBOL = re.compile(r"[A-Za-z0-9._-]+")


def check_symbol(symbol: str) -> str:
    """Return `symbol` if it is safe to use in file names, else raise BadInput."""
    if not _SYMBOL.fullmatch(symbol) or ".." in symbol:
        raise BadInput(
            f"symbol {symbol!r}: use only letters, digits, '.', '_' and '-' (and no '..'), e.g. BTCUSD"
        )
    return symbol


@dataclass(frozen=True)
class Series:
    """One symbol's validated bars, oldest first; `frame` has a RangeIndex."""

    symbol: str
    path: Path
    frame: pd.DataFrame
    sha256: str

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def last_timestamp(self) -> str:
        return self.frame["timestamp"].iloc[-1].isoformat()

    @property
    def close(self) -> np.ndarray:
        return self.frame["close"].to_numpy(dtype=np.float64)


def csv_path(data_dir: Path, symbol: str) -> Path:
    return Path(data_dir) / f"{check_symbol(symbol)}.csv"


def symbols_in(data_dir: Path) -> list[str]:
    """Every symbol with a CSV in `data_dir`."""
    found = sorted(p.stem for p in Path(data_dir).glob("*.csv"))
    if not found:
        raise BadInput(f"{data_dir}: no <SYMBOL>.csv files; pass --symbols or --data-dir DIR")
    return found


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_series(
    data_dir: Path, symbol: str, required: tuple[str, ...] = ("close",), optional: tuple[str, ...] = ()
) -> Series:
    """Read `<data_dir>/<symbol>.csv` and validate the columns a model needs.

    `required` columns must be present; `optional` ones are validated when present. Prices must be finite and > 0,
    volume finite and >= 0, timestamps parseable, strictly increasing and unique.
    """
    path = csv_path(data_dir, symbol)
    if not path.is_file():
        raise BadInput(f"{path}: no such file; put {symbol}'s bars there or pass --data-dir DIR")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: not a readable CSV ({str(exc).splitlines()[0]}); fix the file") from None
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    wanted = ("timestamp", *required)
    missing = [c for c in wanted if c not in raw.columns]
    if missing:
        raise BadInput(
            f"{path}: missing column(s) {', '.join(missing)}; the header needs {', '.join(wanted)}"
        )
    columns = [c for c in ALL_COLUMNS if c in wanted or (c in optional and c in raw.columns)]
    frame = pd.DataFrame({"timestamp": _timestamps(path, raw["timestamp"])})
    for column in columns[1:]:
        frame[column] = _numbers(path, raw, column)
    return Series(symbol=symbol, path=path, frame=frame, sha256=file_sha256(path))


def _where(path: Path, row: int, column: str, value: object) -> str:
    return f"{path}: line {row + 2}, column '{column}': value {value!r}"


def _timestamps(path: Path, text: pd.Series) -> pd.Series:
    parsed = pd.to_datetime(text.str.strip(), utc=True, errors="coerce", format="mixed")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if bad.size:
        raise BadInput(f"{_where(path, bad[0], 'timestamp', text.iloc[bad[0]])} is not a date/time; fix or remove the row")
    step = parsed.diff().dt.total_seconds().to_numpy()[1:]
    for problem, hits in (("duplicates the row before", step == 0), ("is earlier than the row before", step < 0)):
        where = np.flatnonzero(hits)
        if where.size:
            row = where[0] + 1
            raise BadInput(
                f"{_where(path, row, 'timestamp', text.iloc[row])} {problem}; sort the rows by time and drop duplicates"
            )
    return parsed


def _numbers(path: Path, raw: pd.DataFrame, column: str) -> np.ndarray:
    values = pd.to_numeric(raw[column].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    checks = [(~np.isfinite(values), "is not a finite number")]
    if column == "volume":
        checks.append((values < 0, "is negative"))
    else:
        checks.append((values <= 0, "is not a positive price"))
    for bad, problem in checks:
        where = np.flatnonzero(bad)
        if where.size:
            row = where[0]
            raise BadInput(f"{_where(path, row, column, raw[column].iloc[row])} {problem}; fix or remove the row")
    return values


@dataclass(frozen=True)
class Windows:
    """Indices of the scored bars: validation windows come before test windows."""

    validation: np.ndarray
    test: np.ndarray

    def of(self, split: str) -> np.ndarray:
        return {"validation": self.validation, "test": self.test}[split]


def make_windows(series: Series, val_windows: int, test_windows: int, max_context: int) -> Windows:
    """The last `test_windows` bars are test targets, the `val_windows` before them validation targets.

    Every window needs `max_context` bars strictly before its scored bar.
    """
    if val_windows < 1 or test_windows < 1:
        raise BadInput(f"windows: --val-windows ({val_windows}) and --test-windows ({test_windows}) must be >= 1")
    need = max_context + val_windows + test_windows
    if series.rows < need:
        raise BadInput(
            f"{series.path}: {series.rows} rows, but context {max_context} + {val_windows} validation + "
            f"{test_windows} test windows need {need}; add history or lower the windows / the space's context"
        )
    first = series.rows - test_windows - val_windows
    return Windows(
        validation=np.arange(first, first + val_windows),
        test=np.arange(series.rows - test_windows, series.rows),
    )


@dataclass(frozen=True)
class Contexts:
    """What a forecaster may see: the bars strictly before each scored bar `ends[i]`."""

    frame: pd.DataFrame
    ends: np.ndarray

    @classmethod
    def of(cls, series: Series, ends: np.ndarray) -> Contexts:
        # The frame stops before the last scored bar, so no target of the last window is ever visible.
        return cls(frame=series.frame.iloc[: int(ends.max())], ends=np.asarray(ends, dtype=np.int64))

    @property
    def windows(self) -> int:
        return len(self.ends)

    def history(self, column: str, length: int) -> np.ndarray:
        """[windows, length] values of rows [end - length, end); rows before the data start are NaN (left padding)."""
        values = self.frame[column].to_numpy(dtype=np.float64)
        index = self.ends[:, None] - length + np.arange(length)[None, :]
        out = np.full(index.shape, np.nan)
        real = index >= 0
        out[real] = values[index[real]]
        return out


def synthetic_ohlcv(symbol: str, rows: int = 800, seed: int = 0) -> pd.DataFrame:
    """Deterministic daily OHLCV bars: Student-t shocks (fat tails), GARCH(1,1) volatility clustering and
    Markov-switching drift regimes (bull / flat / bear). Same symbol + seed -> same data."""
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
        log_returns[i] = drifts[regime] + np.sqrt(var) * shock
        var = omega + alpha * (log_returns[i] - drifts[regime]) ** 2 + beta * var
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


def write_synthetic(data_dir: Path, symbols: list[str], rows: int = 800, seed: int = 0) -> list[Path]:
    """Write one synthetic CSV per symbol into `data_dir`."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for symbol in symbols:
        path = csv_path(data_dir, symbol)
        synthetic_ohlcv(symbol, rows, seed).to_csv(path, index=False, float_format="%.6f")
        paths.append(path)
    return paths
