"""Which bars are scored (validation windows, then test windows) and what a forecaster may see before each."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from orchestrator.data.read import Series
from orchestrator.errors import BadInput

MIN_VALIDATION_WINDOWS = 30
"""Data that leave fewer validation windows cannot tell configs apart and are refused (unless fewer are asked for)."""


@dataclass(frozen=True)
class Windows:
    """Indices of the scored bars: validation windows come before test windows."""

    validation: np.ndarray
    test: np.ndarray

    def of(self, split: str) -> np.ndarray:
        return {"validation": self.validation, "test": self.test}[split]

    def short(self, context: int) -> int:
        """How many validation windows have fewer than `context` bars before them (they read the bars that exist)."""
        return int(np.sum(self.validation < context))


def make_windows(series: Series, val_windows: int, test_windows: int, min_context: int) -> Windows:
    """The last `test_windows` bars are test targets; before them come as many validation targets as the history
    allows, at most `val_windows`, each with at least `min_context` bars before it.
    """
    if val_windows < 1 or test_windows < 1:
        raise BadInput(f"windows: --val-windows ({val_windows}) and --test-windows ({test_windows}) must be >= 1")
    available = series.rows - test_windows - min_context
    needed = min(val_windows, MIN_VALIDATION_WINDOWS)
    if available < needed:
        raise BadInput(
            f"{series.path}: {series.rows} rows leave {max(available, 0)} validation windows after {test_windows} test "
            f"windows and the model's minimum context of {min_context} bars; {needed} are needed: add history "
            f"({min_context + test_windows + needed} rows) or lower --test-windows"
        )
    count = min(val_windows, available)
    first = series.rows - test_windows - count
    return Windows(
        validation=np.arange(first, first + count),
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
