"""The morning after the night: each symbol's forecast of the bar after its data file's last bar, from its champion's
committed config (`<best_dir>/champions.json`) or a chosen family's, and the log `<best_dir>/forecasts.jsonl` that
every forecast is appended to, so it can be scored against the bar that came.

The forecast is the evaluated forecast: the Evaluator scores the config on a one-window set of windows whose scored
bar is the bar after the file's end (the same runs, seeds, draws and aggregate as scoring). Every check runs before
anything is written: bad input writes nothing, not even a log line.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich import box
from rich.table import Table

from orchestrator.data import Series, Windows, check_symbol, earlier_rows, load_series
from orchestrator.decisions.champions import CHAMPIONS, NAIVE, read_champions
from orchestrator.decisions.records import ADJUSTMENT, append_lines, best_path, read_config, read_history
from orchestrator.errors import UNSCORABLE, BadInput, unscorable_reason
from orchestrator.models.base import QUANTILE_LEVELS, Forecaster, ModelOptions, create, forecaster_class
from orchestrator.scoring.evaluation import Evaluator
from orchestrator.settings import load_settings
from orchestrator.symbols import MODELS

LOG = "forecasts.jsonl"
CHOSEN = "--model"
"""The champion status of a row whose family was chosen with --model rather than by the leaderboard."""
LOADED: dict[tuple[str, ModelOptions], Forecaster] = {}
"""Forecasters loaded in this process, kept for later calls (a second `forecast` does not reload the models)."""


@dataclass
class Choice:
    """Which committed config forecasts a symbol (model None: no champion, the naive forecast) and why."""

    symbol: str
    model: str | None
    status: str  # clear, tied, none (naive is as good), or CHOSEN
    params: dict[str, Any] | None = None
    record: dict[str, Any] | None = None  # the committed config
    path: Path | None = None
    data: dict[str, Any] = field(default_factory=dict)  # how its study read the file
    study: dict[str, Any] = field(default_factory=dict)  # the study (name, uid, trial) the params come from
    notes: list[str] = field(default_factory=list)


def forecasts(
    best_dir: Path, data_dir: Path | None = None, symbols: list[str] | None = None, model: str | None = None,
    runs: int = 16, seed: int = 0, device: str = "auto", weights: dict[str, str | None] | None = None,
) -> list[dict[str, Any]]:
    """A forecast row per symbol (the log's format), appended to `<best_dir>/forecasts.jsonl`; BadInput (nothing
    written) on any bad input. `weights`: model -> weights id or directory replacing the one the config recorded."""
    best_dir = Path(best_dir)
    if runs < 1:
        raise BadInput(f"--runs {runs}: must be >= 1")
    rows = [_forecast(choice, data_dir, runs, seed, device, weights or {})
            for choice in choices(best_dir, symbols, model)]
    append_log(best_dir, rows)
    return rows


def choices(best_dir: Path, symbols: list[str] | None, model: str | None) -> list[Choice]:
    """The config of each symbol: `model`'s committed one, else the champion's in champions.json."""
    for symbol in symbols or []:
        check_symbol(symbol)
    if model is not None:
        forecaster_class(model)  # an unknown name is refused
        committed = sorted(p.stem for p in (best_dir / model).glob("*.json"))
        chosen = symbols if symbols else committed
        if not chosen:
            raise BadInput(f"{best_dir / model}: no committed {model} configs; run `orchestrator optimize` first")
        return [_committed(best_dir, model, symbol, CHOSEN, None, None) for symbol in chosen]
    champions = read_champions(best_dir).get("symbols")
    if not champions:
        raise BadInput(f"{best_dir / CHAMPIONS}: no champions; run `orchestrator leaderboard` first, or pass --model "
                       "NAME to forecast with that family's committed configs")
    found = []
    for symbol in symbols or sorted(champions):
        entry = champions.get(symbol)
        if entry is None:
            raise BadInput(f"symbol {symbol}: not in {best_dir / CHAMPIONS}; run `orchestrator leaderboard` for it, "
                           "or pass --model NAME")
        if entry.get("champion") is None:
            found.append(_naive(best_dir, symbol, entry))
        else:
            found.append(_committed(best_dir, entry["champion"], symbol, entry["verdict"], entry["params"],
                                    entry["models"].get(entry["champion"], {})))
    return found


def _committed(best_dir: Path, model: str, symbol: str, status: str, params: dict[str, Any] | None,
               listed: dict[str, Any] | None) -> Choice:
    path = best_path(best_dir, model, symbol)
    record = read_config(path)
    if record is None:
        raise BadInput(f"{path}: no committed config for {model}/{symbol}; run `orchestrator optimize` first")
    if "data" not in record or "study" not in record:
        raise BadInput(f"{path}: no record of the data it was tuned on (written by an earlier version); re-run "
                       "`orchestrator optimize` for it")
    study = record["study"]
    choice = Choice(symbol, model, status, params if params is not None else record["params"], record, path,
                    record["data"], dict(study))
    if listed is not None:
        now = {"params": record["params"], "study_uid": study.get("uid"), "trial": study.get("trial"),
               "committed_at": record.get("committed_at")}
        changed = [key for key in now if key in listed and listed[key] != now[key]]
        if changed:  # the row names the config the leaderboard chose
            choice.study.update(name=listed.get("study"), uid=listed.get("study_uid"), trial=listed.get("trial"))
            choice.notes.append(f"{symbol}: the committed {model} config changed since the leaderboard chose it "
                                f"({', '.join(changed)}); the champion's params were used: run `orchestrator "
                                "leaderboard` again")
    return choice


def _naive(best_dir: Path, symbol: str, entry: dict[str, Any]) -> Choice:
    """The naive row of a symbol without a champion, reading the file as its compared configs read it."""
    data = {**entry.get("data", {}), "drop_missing": False, "dayfirst": False}
    for name in entry.get("models", {}):
        record = read_config(best_path(best_dir, name, symbol)) if name != NAIVE else None
        if record is not None and "data" in record:
            data = record["data"]
            break
    return Choice(symbol, None, "none", data=data,
                  notes=[f"{symbol}: no champion (naive is as good): the naive zero-return forecast"])


def _series(choice: Choice, data_dir: Path | None) -> Series:
    data = choice.data
    path = Path(data["path"]) if data_dir is None else Path(data_dir) / Path(data["path"]).name
    cls = forecaster_class(choice.model) if choice.model else None
    return load_series(path.parent, choice.symbol, cls.required_columns if cls else ("close",),
                       cls.optional_columns if cls else (), price=data.get("price"),
                       drop_missing=bool(data.get("drop_missing", False)), dayfirst=bool(data.get("dayfirst", False)),
                       decimal=data.get("decimal", "auto"))


def _forecast(choice: Choice, data_dir: Path | None, runs: int, seed: int, device: str,
              weights: dict[str, str | None]) -> dict[str, Any]:
    series = _series(choice, data_dir)
    last = float(series.close[-1])
    row: dict[str, Any] = {
        "kind": "forecast", "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "symbol": choice.symbol, "model": choice.model or NAIVE, "study_uid": None, "trial": None, "params": None,
        "seed": seed, "runs": 0, "champion": choice.status,
        "last_bar": {"timestamp": series.last_timestamp, "close": last},
        "point": {"return": 0.0, "close": last},
        "quantiles": dict.fromkeys(map(str, QUANTILE_LEVELS)),
        "quantile_closes": dict.fromkeys(map(str, QUANTILE_LEVELS)),
        "data": {"file": str(series.path), "rows": series.rows, "price": series.price,
                 "drop_missing": bool(choice.data.get("drop_missing", False)),
                 "dayfirst": bool(choice.data.get("dayfirst", False)), "decimal": choice.data.get("decimal", "auto")},
        "notes": choice.notes,
    }
    if choice.model is None:
        return row
    study = choice.study
    name = study.get("name") or f"{choice.model}/{choice.symbol}"
    cls = forecaster_class(choice.model)
    context = int(choice.params.get(cls.context_param, 0))
    needed = min(context, int(choice.data.get("rows", context)))  # a study on fewer bars scored what it had
    if series.rows < needed:
        raise BadInput(f"{series.path}: {series.rows} rows, fewer than the {needed} bars the {choice.model} config "
                       f"of {choice.symbol} reads ({cls.context_param} {context}, its study had "
                       f"{choice.data.get('rows')} bars); pass the file with its history")
    if "bars_sha256" not in choice.data:
        raise BadInput(f"{choice.path}: no fingerprint of the bars it was tuned on (written by an earlier version); "
                       "re-run `orchestrator optimize` for it")
    try:  # the bars the study saw, unchanged or rescaled by adjustments a roll-forward recognised (as optimize's)
        seen, factor = earlier_rows(series, choice.data, read_history(choice.path.parent.parent, ADJUSTMENT))
    except BadInput as exc:
        raise BadInput(f"forecast {choice.model}/{choice.symbol}: {exc}") from None
    behind = series.rows - seen
    if factor != 1.0:
        choice.notes.append(f"{choice.symbol}: earlier bars rescaled by {factor:.4f} since the {choice.model} config "
                            "was tuned (a dividend or split adjustment; returns unchanged)")
    if behind:
        choice.notes.append(f"{choice.symbol}: the {choice.model} config is {behind} bars behind (its study saw "
                            f"{seen} of {series.rows})")
    forecaster = _forecaster(choice, device, weights)
    unknown = sorted(set(choice.params) - forecaster.params)
    if unknown:
        raise BadInput(f"{choice.path}: params {', '.join(unknown)} are unknown to this version's {choice.model}; "
                       "re-tune it with `orchestrator optimize --fresh`")
    ends = np.array([series.rows])
    evaluator = Evaluator(forecaster, series, Windows(validation=ends, test=ends), seed)
    try:
        prediction = evaluator.predict(choice.params, range(runs))
    except UNSCORABLE as exc:
        raise BadInput(f"{choice.path}: this version cannot run its params ({unscorable_reason(exc)}); re-tune it "
                       "with `orchestrator optimize --fresh`") from None
    point = float(prediction.point[0])
    closes = [None if math.isnan(q) else float(q) for q in prediction.quantiles[0]]
    levels = [str(level) for level in prediction.levels]
    row.update({
        "study_uid": study.get("uid"), "trial": study.get("trial"), "params": choice.params,
        "runs": len(prediction.runs), "point": {"return": point / last - 1, "close": point},
        "quantiles": {k: None if q is None else q / last - 1 for k, q in zip(levels, closes)},
        "quantile_closes": dict(zip(levels, closes)),
        "config": str(choice.path.resolve()), "study": name,
    })
    row["data"]["bars_after_study"] = behind
    return row


def _forecaster(choice: Choice, device: str, weights: dict[str, str | None]) -> Forecaster:
    """The model loaded once per process with the weights the config recorded (or --weights); BadInput when they
    are missing or are not the ones the config was tuned with."""
    options = choice.record.get("options") or {}
    key = (choice.model, ModelOptions(device=device, weights=weights.get(choice.model) or options.get("weights"),
                                      tokenizer=options.get("tokenizer")))
    if key not in LOADED:
        LOADED[key] = create(*key)
    forecaster = LOADED[key]
    if options.get("weights_id") and forecaster.weights_id != options["weights_id"]:
        raise BadInput(f"{choice.path}: the weights at {key[1].weights or 'the default id'} are not the ones it was "
                       f"tuned with ({options['weights_id']} -> {forecaster.weights_id}); pass those with --weights "
                       f"{choice.model}=DIR or re-tune it")
    return forecaster


def append_log(best_dir: Path, rows: list[dict[str, Any]]) -> Path:
    """Append one JSON line per row to `<best_dir>/forecasts.jsonl`, under its lock in one write, fsynced."""
    return append_lines(best_dir, LOG, [json.dumps(row) for row in rows])


def flat(row: dict[str, Any]) -> dict[str, Any]:
    """One row of the CSV / DataFrame: the log row's fields, nested ones spread into columns."""
    return {
        "symbol": row["symbol"], "model": row["model"], "champion": row["champion"],
        "last_timestamp": row["last_bar"]["timestamp"], "last_close": row["last_bar"]["close"],
        "return": row["point"]["return"], "close": row["point"]["close"],
        **{f"q{level}": value for level, value in row["quantiles"].items()},
        **{f"close_q{level}": value for level, value in row["quantile_closes"].items()},
        "study_uid": row["study_uid"], "trial": row["trial"], "seed": row["seed"], "runs": row["runs"],
        "bars_after_study": row["data"].get("bars_after_study"), "file": row["data"]["file"],
        "params": None if row["params"] is None else json.dumps(row["params"]), "notes": "; ".join(row["notes"]),
    }


def forecast(
    best_dir: str | Path | None = None, data_dir: str | Path | None = None, symbols: list[str] | None = None,
    model: str | None = None, runs: int = 16, seed: int = 0, device: str = "auto",
    weights: str | dict[str, str | None] | None = None,
) -> pd.DataFrame:
    """`orchestrator forecast` in Python: a DataFrame with the CSV's columns, one row per symbol, logged as the
    command logs it. `best_dir` defaults to configs/orchestrator.toml's; `weights` is one id or directory for every
    model, or {model: id or directory}. Models stay loaded for later calls in this process. Raises BadInput."""

    if best_dir is None:
        best_dir = load_settings({}).best_dir
    if not isinstance(weights, dict):
        weights = dict.fromkeys(MODELS, weights)
    rows = forecasts(Path(best_dir), None if data_dir is None else Path(data_dir), symbols, model, runs, seed,
                     device, weights)
    return pd.DataFrame([flat(row) for row in rows])


def table(rows: list[dict[str, Any]]) -> Table:
    """The forecasts at 80 columns: the bar forecast (after the last bar), its close and return, and the 10%..90%
    range of the return (levels every family gives; --out and --json have every level and the last close)."""
    shown = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    for header in ("symbol", "model", "champion", "last bar", "forecast", "return", "10%..90% return"):
        shown.add_column(header, no_wrap=True, justify="left" if header in ("symbol", "model", "champion") else "right")
    for row in rows:
        q = row["quantiles"]
        spread = "-" if q["0.1"] is None else f"{q['0.1']:+.2%}..{q['0.9']:+.2%}"
        stamp = pd.Timestamp(row["last_bar"]["timestamp"])
        when = str(stamp.date()) if stamp == stamp.normalize() else stamp.isoformat(timespec="minutes")[:16]
        shown.add_row(row["symbol"], row["model"], row["champion"], when, f"{row['point']['close']:.6g}",
                      f"{row['point']['return']:+.2%}", spread)
    return shown
