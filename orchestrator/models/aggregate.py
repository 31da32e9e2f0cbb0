"""Aggregation rules: how a point forecast is read off samples (or predicted quantiles), shared by the models and
scoring. `parse_aggregate` validates a rule's name; `aggregate` applies it to [windows, n] samples."""

from __future__ import annotations

import re

import torch

_AGGREGATE = re.compile(
    r"(?P<kind>mean|median|trimmed_mean|lower_trimmed_mean|upper_trimmed_mean|quantile|winsorized_mean)"
    r"(?:_(?P<x>\d+(?:\.\d+)?))?"
)
_NEEDS_X = {"trimmed_mean", "lower_trimmed_mean", "upper_trimmed_mean", "quantile", "winsorized_mean"}


def parse_aggregate(name: str) -> tuple[str, float]:
    """('kind', fraction) for an aggregate name. X < 1 is a fraction, X >= 1 a percent: trimmed_mean_10 == _0.1.

    Raises ValueError for unknown names or fractions out of range.
    """
    match = _AGGREGATE.fullmatch(name)
    if not match or (match["kind"] in _NEEDS_X) != (match["x"] is not None):
        raise ValueError(
            f"unknown aggregate {name!r}: use mean, median, or trimmed_mean_X, lower_trimmed_mean_X, "
            "upper_trimmed_mean_X, quantile_X, winsorized_mean_X (X a fraction like 0.1 or a percent like 10)"
        )
    if match["x"] is None:
        return match["kind"], 0.0
    x = float(match["x"])
    fraction = x / 100 if x >= 1 else x
    limit = 1.0 if match["kind"] == "quantile" else 0.5
    if not 0 <= fraction <= limit or (match["kind"] != "quantile" and fraction >= 0.5):
        raise ValueError(f"aggregate {name!r}: X is out of range for {match['kind']}")
    return match["kind"], fraction


def aggregate(samples: torch.Tensor, name: str) -> torch.Tensor:
    """Reduce [windows, n] samples to [windows] point forecasts.

    Trimming drops floor(X * n) samples from a tail (as scipy.stats.trim_mean); winsorizing clips them to the
    nearest kept sample (as scipy.stats.mstats.winsorize); quantile interpolates linearly (as numpy.quantile).
    """
    kind, x = parse_aggregate(name)
    if kind == "mean":
        return samples.mean(dim=1)
    if kind == "quantile":
        return torch.quantile(samples, x, dim=1)
    ordered = samples.sort(dim=1).values
    n = ordered.shape[1]
    if kind == "median":
        return ordered.quantile(0.5, dim=1)
    k = int(x * n)
    if kind == "trimmed_mean":
        return ordered[:, k : n - k].mean(dim=1)
    if kind == "lower_trimmed_mean":  # drops the top X: keeps the lower part
        return ordered[:, : n - k].mean(dim=1)
    if kind == "upper_trimmed_mean":  # drops the bottom X
        return ordered[:, k:].mean(dim=1)
    low, high = ordered[:, k : k + 1], ordered[:, n - 1 - k : n - k]
    return ordered.clamp(min=low, max=high).mean(dim=1)
