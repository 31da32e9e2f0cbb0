"""Earlier bars rescaled by one factor: the dividend or split adjustment of adjusted prices (Yahoo-style adjusted
closes rescale every bar before each event). Returns are unchanged by it, so a study's lineage and its decisions'
scores go on; any other change of earlier bars is refused.

A study records its bars (`bars_record`); `rescaled` checks a later file against that record (the roll-forward);
`earlier_rows` checks a later file against a decision's record of its bars (rows, last time, fingerprint), through
the adjustments recognised since (the scorecard, the leaderboard, forecasts).
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from orchestrator.data.read import PRICE_COLUMNS, Series
from orchestrator.errors import BadInput

MAX_DECIMALS = 10
"""Values with more decimals than this are compared as written to this many (float noise)."""


@dataclass(frozen=True)
class Rescale:
    """Earlier bars rescaled: prices by `factor`, volume by `volume_factor` (1.0: volume unchanged)."""

    factor: float
    volume_factor: float = 1.0

    @property
    def clause(self) -> str:
        """The words the roll-forward line carries."""
        volume = "" if self.volume_factor == 1.0 else f", volume by {self.volume_factor:.4g}"
        return (f"earlier bars rescaled by {self.factor:.4f}{volume} (a dividend or split adjustment; "
                "returns unchanged)")


def decimals(values: np.ndarray) -> int:
    """How many decimals the values were written with (the most any needs; MAX_DECIMALS at most)."""
    for places in range(MAX_DECIMALS):
        if np.all(np.abs(values - np.round(values, places)) <= 1e-9 * np.maximum(1.0, np.abs(values))):
            return places
    return MAX_DECIMALS


def bars_record(series: Series, rows: int | None = None) -> dict[str, Any]:
    """What a study records of its first `rows` bars (all by default) so that a later file can be checked for a
    rescale: the fingerprint of their times, and their values (float64, compressed: about 20 bytes per OHLCV bar)."""
    frame = series.frame.iloc[:rows]
    columns = list(frame.columns[1:])
    values = np.stack([frame[c].to_numpy(np.float64) for c in columns]) if columns else np.empty((0, 0))
    return {"rows": len(frame), "times_sha256": _times_sha256(frame), "columns": columns,
            "values": base64.b64encode(zlib.compress(values.astype("<f8").tobytes(), 9)).decode()}


def recorded_frame(record: Mapping[str, Any], series: Series) -> pd.DataFrame:
    """The recorded bars as a frame like `series.frame` (times from `series`, which `rescaled` checked)."""
    rows, columns = int(record["rows"]), list(record["columns"])
    values = np.frombuffer(zlib.decompress(base64.b64decode(record["values"])), "<f8").reshape(len(columns), rows)
    frame = pd.DataFrame({"timestamp": series.frame["timestamp"].iloc[:rows].reset_index(drop=True)})
    for column, column_values in zip(columns, values):
        frame[column] = column_values
    return frame


def rescaled(series: Series, record: Mapping[str, Any]) -> Rescale | None:
    """Whether the first bars of `series` are the recorded ones rescaled by one factor: the same times, every price
    (open, high, low, close) the recorded one times one factor, and volume times one factor or unchanged, each within
    half a unit of the last digit written in each file (so a file rewritten at 2 decimals passes). None when not."""
    rows = int(record["rows"])
    if series.rows < rows or list(record["columns"]) != list(series.frame.columns[1:]):
        return None
    now = series.frame.iloc[:rows]
    if _times_sha256(now) != record["times_sha256"]:
        return None
    before = recorded_frame(record, series)
    factor = _factor([(before[c].to_numpy(), now[c].to_numpy(np.float64))
                      for c in record["columns"] if c in PRICE_COLUMNS])
    if factor is None:
        return None
    volume_factor = 1.0
    if "volume" in record["columns"]:
        old, new = before["volume"].to_numpy(), now["volume"].to_numpy(np.float64)
        if not np.array_equal(old, new):
            volume_factor = _factor([(old, new)])
            if volume_factor is None:
                return None
    return Rescale(factor, volume_factor)


def _factor(columns: list[tuple[np.ndarray, np.ndarray]]) -> float | None:
    """The one factor f with |new - f * old| within half a unit of the last digit of each file (per column) for
    every (old, new) value, None when there is none: each value bounds f to an interval, and they must overlap."""
    low, high = 0.0, np.inf
    for old, new in columns:
        old_half, new_half = 0.5 * 10.0 ** -decimals(old), 0.5 * 10.0 ** -decimals(new)
        low = max(low, float(np.max((new - new_half) / (old + old_half))))
        bounded = old > old_half
        if bounded.any():
            high = min(high, float(np.min((new[bounded] + new_half) / (old[bounded] - old_half))))
    if not 0 < low <= high < np.inf:
        return None
    old, new = np.concatenate([c[0] for c in columns]), np.concatenate([c[1] for c in columns])
    return min(max(float(np.dot(old, new) / np.dot(old, old)), low), high)  # least squares, within the bounds


def _times_sha256(frame: pd.DataFrame) -> str:
    return hashlib.sha256(frame["timestamp"].to_numpy("datetime64[ns]").tobytes()).hexdigest()


def adjustment_entry(series: Series, record: Mapping[str, Any], rescale: Rescale, rows: Iterable[int]) -> dict:
    """What the history records of a rescale recognised in `series` against a study's `record`: per number of
    earlier rows (those that decisions saw, `rows`), the fingerprint of those bars before and after, so that
    `earlier_rows` can follow a decision's bars through it."""
    before = replace(series, frame=recorded_frame(record, series))
    kept = sorted({r for r in rows if 0 < r <= int(record["rows"])} | {int(record["rows"])})
    return {"kind": "adjustment", "symbol": series.symbol, "path": str(series.path.resolve()),
            "factor": rescale.factor, "volume_factor": rescale.volume_factor,
            "bars": [[r, before.bars_sha256(r), series.bars_sha256(r)] for r in kept]}


def earlier_rows(series: Series, data: Mapping[str, Any],
                 adjustments: Iterable[Mapping[str, Any]] = ()) -> tuple[int, float]:
    """(how many of today's rows the file had when `data` was recorded, the factor its earlier bars were rescaled by
    since: 1.0 when unchanged). `data` is a decision's record of its bars (rows, last_timestamp, bars_sha256);
    `adjustments` are the history's adjustment entries (`adjustment_entry`), oldest first: a decision's bars count as
    the same when they are today's bars, or became them through rescales the roll-forward recognised. BadInput when
    the file shrank, or when those bars changed otherwise."""
    last = pd.Timestamp(data["last_timestamp"])
    rows = int((series.frame["timestamp"] <= last).sum())  # timestamps are strictly increasing
    if rows < data["rows"]:
        raise BadInput(f"{series.path}: shrunk: {rows} rows up to {data['last_timestamp']}, the decision saw "
                       f"{data['rows']}; restore the file or pass --data-dir with the full history")
    fingerprint, factor = data["bars_sha256"], 1.0
    for entry in adjustments:
        for count, before, after in entry.get("bars", ()):
            if count == rows and before == fingerprint:
                fingerprint, factor = after, factor * float(entry["factor"])
                break
    if series.bars_sha256(rows) != fingerprint:
        raise BadInput(f"{series.path}: rewritten or re-adjusted: the bars up to {data['last_timestamp']} differ from "
                       "the ones the decision saw (not one factor on every earlier bar, as a recognised dividend or "
                       "split adjustment is), so the configs cannot be compared on its later bars")
    return rows, factor
