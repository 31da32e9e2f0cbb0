"""Forecasts scored against what happened: each line of `<best_dir>/forecasts.jsonl` (written by `orchestrator
forecast`) whose bar has since arrived in its data file, per symbol and model, beside the naive forecast on the same
bars. Shown by `orchestrator scorecard`, which judges decisions on the bars after them in the same way.

A forecast is scored on the return from its last bar to the next bar of the file as it is now (a file re-adjusted by
a constant factor since has the same returns). The same bar forecast more than once by one model counts once, its
latest forecast. MAE: |point return - return|. CRPS: the quantile approximation over the levels the line logged
(`probabilistic.crps_quantiles`; approximate). Coverage: of the 80% and 90% central intervals where both ends were
logged. Naive: a zero return, and the quantiles at the same levels of the demeaned returns before the bar
(`probabilistic.naive_quantiles`), scored the same way. The models are never run: no weights are needed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table

from orchestrator.data import Series, load_series
from orchestrator.decisions.scorecard import plain_table
from orchestrator.errors import BadInput
from orchestrator.models.base import forecaster_class
from orchestrator.scoring.evidence import paired_evidence
from orchestrator.scoring.probabilistic import INTERVALS, Coverage, coverage_text, naive_quantiles, quantile_scores

FORECASTS = "forecasts.jsonl"
NAIVE = "naive"


@dataclass
class Bar:
    """One forecast whose bar arrived: the bar's return, what the model and the naive forecast said of it."""

    timestamp: str
    actual: float
    point: float
    quantiles: dict[float, float]
    naive_quantiles: dict[float, float]


@dataclass
class Group:
    """The scored forecasts of one model for one symbol, oldest bar first, and how many still wait for their bar."""

    symbol: str
    model: str
    bars: list[Bar] = field(default_factory=list)
    pending: int = 0

    def as_dict(self) -> dict[str, Any]:
        actual = np.array([b.actual for b in self.bars])
        errors, naive = np.abs(np.array([b.point for b in self.bars]) - actual), np.abs(actual)
        evidence = paired_evidence(errors, naive) if len(self.bars) >= 2 else None
        return {
            "symbol": self.symbol, "model": self.model, "bars": len(self.bars), "pending": self.pending,
            "first": self.bars[0].timestamp if self.bars else None,
            "last": self.bars[-1].timestamp if self.bars else None,
            "mae": _mean(errors), "naive_mae": _mean(naive),
            "vs_naive": None if evidence is None else {"change": -evidence.improvement, "se": evidence.se,
                                                       "p_value": evidence.p_value},
            **_spread(self.bars, "quantiles"), "naive": _spread(self.bars, "naive_quantiles"),
        }


def score_forecasts(best_dir: Path, data_dir: Path | None, report: Callable[[str], None]) -> tuple[
        list[dict[str, Any]], list[str]]:
    """(a row per symbol and model with a forecast in the log, problems); [] without a log. A problem (a data file
    that cannot be read, a forecast's last bar missing from its file) leaves that forecast out; `report` gets a line
    for each forecast scored on a file whose closes changed since (re-adjusted or rewritten)."""
    path = Path(best_dir) / FORECASTS
    if not path.is_file():
        return [], []
    groups: dict[tuple[str, str], Group] = {}
    latest: dict[tuple[str, str, str], dict[str, Any]] = {}
    problems: list[str] = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if entry.get("kind", "forecast") != "forecast":
                continue
            key = (str(entry["symbol"]), str(entry["model"]), str(entry["last_bar"]["timestamp"]))
        except (json.JSONDecodeError, AttributeError, KeyError, TypeError) as exc:
            problems.append(f"{path}:{number}: not a forecast line ({exc}); fix or remove it")
            continue
        latest[key] = entry  # a later forecast of the same bar by the same model replaces an earlier one
    series: dict[tuple, Series | str] = {}
    for (symbol, model, _), entry in sorted(latest.items(), key=lambda item: item[0]):
        group = groups.setdefault((symbol, model), Group(symbol, model))
        try:
            bar = _bar(entry, data_dir, series, report)
        except BadInput as exc:
            problems.append(f"{symbol} forecast by {model} after {entry['last_bar']['timestamp']}: {exc}")
            continue
        if bar is None:
            group.pending += 1
        else:
            group.bars.append(bar)
    for group in groups.values():
        group.bars.sort(key=lambda b: pd.Timestamp(b.timestamp))
    return [g.as_dict() for g in groups.values()], problems


def _bar(entry: dict[str, Any], data_dir: Path | None, cache: dict[tuple, Series | str],
         report: Callable[[str], None]) -> Bar | None:
    """The forecast's bar scored, or None when the file has no bar after the forecast's last bar yet."""
    data, symbol, last = entry.get("data") or {}, entry["symbol"], entry["last_bar"]
    if "file" not in data:
        raise BadInput("the log line names no data file")
    file = Path(data["file"]) if data_dir is None else Path(data_dir) / Path(data["file"]).name
    model = entry["model"]
    key = (str(file), model, data.get("price"), bool(data.get("drop_missing")), bool(data.get("dayfirst")))
    if key not in cache:  # read as the forecast read it: the model's columns (rows dropped for any of them)
        try:
            cls = forecaster_class(model) if model != NAIVE else None
            cache[key] = load_series(file.parent, symbol, cls.required_columns if cls else ("close",),
                                     cls.optional_columns if cls else (), price=data.get("price"),
                                     drop_missing=bool(data.get("drop_missing")), dayfirst=bool(data.get("dayfirst")))
        except BadInput as exc:
            cache[key] = str(exc)
    series = cache[key]
    if isinstance(series, str):
        raise BadInput(series)
    stamps = series.frame["timestamp"]
    when = pd.Timestamp(last["timestamp"])
    if when.tzinfo is None and stamps.dt.tz is not None:
        when = when.tz_localize(stamps.dt.tz)
    rows = np.flatnonzero(stamps == when)
    if not len(rows):
        raise BadInput(f"{series.path} has no bar at {last['timestamp']} any more (rewritten, or another file); "
                       "pass --data-dir DIR with the file the forecast read")
    t = int(rows[0]) + 1  # the forecast's bar
    if t >= series.rows:
        return None
    close = series.close
    if not math.isclose(close[t - 1], float(last["close"]), rel_tol=1e-9):
        report(f"{symbol} forecast by {model} after {last['timestamp']}: {series.path} now has close "
               f"{close[t - 1]:g} there, the forecast read {last['close']:g} (re-adjusted?); scored on the file's "
               "own return")
    quantiles = {float(q): float(v) for q, v in (entry.get("quantiles") or {}).items() if v is not None}
    naive = naive_quantiles(close, np.array([t]), sorted(quantiles)) if quantiles else {}
    return Bar(timestamp=stamps.iloc[t].isoformat(), actual=float(close[t] / close[t - 1] - 1),
               point=float((entry.get("point") or {}).get("return") or 0.0), quantiles=quantiles,
               naive_quantiles={q: float(v[0]) for q, v in naive.items()})


def _spread(bars: list[Bar], which: str) -> dict[str, Any]:
    """CRPS (approximate; over the bars with logged quantiles) and coverage of each central interval."""
    crps: list[float] = []
    inside: dict[float, list[float]] = {level: [] for level in INTERVALS}
    for bar in bars:
        quantiles = getattr(bar, which)
        if not quantiles:
            continue
        scores = quantile_scores(np.array([bar.actual]), {q: np.array([v]) for q, v in quantiles.items()})
        crps.append(float(scores.crps[0]))
        for level in INTERVALS:
            if scores.inside[level] is not None:
                inside[level].append(float(scores.inside[level][0]))
    coverage = {f"{level:.0%}".rstrip("%"): Coverage(level, sum(hits), len(hits)).to_dict() if hits else None
                for level, hits in inside.items()}
    return {"crps": _mean(crps), "crps_approximate": True, "crps_bars": len(crps), "coverage": coverage}


def _mean(values: Any) -> float | None:
    return float(np.mean(values)) if len(values) else None


def table(rows: list[dict[str, Any]]) -> Table:
    """The rows of `score_forecasts`, each model's with the naive forecast on the same bars under it (within 80
    columns)."""
    result = plain_table("logged forecasts on the bars that came, naive on the same bars",
                         caption="CRPS~ from logged quantiles (approximate); in: ± binomial se",
                         caption_justify="left")
    for header in ("symbol", "model"):
        result.add_column(header, overflow="fold")
    for header in ("bars", "wait", "MAE", "CRPS~", "80% in", "90% in"):
        result.add_column(header, justify="right")
    for r in rows:
        lines = [(r["symbol"], r["model"], str(r["pending"]), r["mae"], r)]
        if r["model"] != NAIVE:  # a symbol without a champion logged the naive forecast itself
            lines.append(("", NAIVE, "", r["naive_mae"], r["naive"]))
        for symbol, name, pending, mae, spread in lines:
            result.add_row(symbol, name, str(r["bars"]), pending, _number(mae), _number(spread["crps"]),
                           *(coverage_text(spread["coverage"][k]) for k in ("80", "90")))
    return result


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.5f}"
