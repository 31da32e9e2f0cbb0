"""Which model for this symbol: every family's committed config and the naive zero-return forecast, scored on the
same bars that no compared config was selected on, with common random numbers; the model confidence set (Hansen,
Lunde and Nason) of the models the data cannot tell apart from the best; and the champion per symbol (on MAE).
Beside MAE, on the same windows and draws: CRPS and 80% / 90% interval coverage (`scoring.probabilistic`).

The bars: after the latest `selected_until` of the compared configs, the last bar that any decision chose or kept
a config on (its validation windows, and those of the archived studies whose warm starts fed it; a decision that
kept the incumbent re-chose it on its windows, so it counts), and never before the latest decision's test windows;
read from the file as the latest decisions read it, its bars checked against their fingerprint. With a decision
every night, that leaves at most `test_windows` bars.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table

from orchestrator import __version__
from orchestrator.decisions.records import ADJUSTMENT, finite, read_config, read_history
from orchestrator.data import MIN_VALIDATION_WINDOWS, Series, Windows, check_symbol, load_series
from orchestrator.errors import BadInput
from orchestrator.symbols import MODELS
from orchestrator.scoring.evaluation import Evaluator, naive_errors
from orchestrator.scoring.evidence import Evidence, paired_evidence, signed_percent
from orchestrator.scoring.probabilistic import Scores, evaluator_scores, naive_scores
from orchestrator.models.base import Forecaster, ForecastError, ModelOptions, create, forecaster_class
from orchestrator.decisions.scorecard import plain_table, rows_then

NAIVE = "naive"
MIN_WINDOWS = MIN_VALIDATION_WINDOWS
"""Fewer held-out windows than this cannot tell models apart: the symbol is skipped with a line saying so."""
MCS_METHOD = "R"
"""arch's MCS: 'R' standardises each pair's loss difference by its own bootstrap variance and eliminates the model
with the largest standardised loss against any other (HLN's T_R); 'max' compares each model with the set's average
loss under one variance per model, so a poor model moves the others' statistics."""
MCS_REPS = 1000


@dataclass(frozen=True)
class Compared:
    """One model's committed config of a symbol, and the decision that last chose it (what it was selected on)."""

    model: str
    path: Path
    params: dict[str, Any]
    record: dict[str, Any]
    data: dict[str, Any]
    test_windows: int
    options: dict[str, Any]


@dataclass(frozen=True)
class Ranking:
    """MAEs, paired evidence against naive, the model confidence set and the champion of one symbol."""

    maes: dict[str, float]
    evidence: dict[str, Evidence]
    pvalues: dict[str, float]
    members: list[str]
    level: float
    block_size: int
    seed: int

    @property
    def champion(self) -> str | None:
        """The best member by MAE; None when naive is in the set (no model beats a random walk there)."""
        return None if NAIVE in self.members else min(self.members, key=self.maes.__getitem__)

    @property
    def kind(self) -> str:
        """'clear' (the set has one member), 'tied' (several, naive not among them) or 'none' (naive is in it)."""
        return "none" if self.champion is None else "clear" if len(self.members) == 1 else "tied"

    @property
    def verdict(self) -> str:
        others = [m for m in self.members if m != self.champion]
        return {"none": "none: naive is as good", "clear": "clear", "tied": f"tied with {', '.join(others)}"}[self.kind]


def rank(errors: Mapping[str, np.ndarray], level: float, seed: int) -> Ranking:
    """Rank per-window errors (same windows for every name, `NAIVE` among them) with arch's model confidence set.

    The set is HLN's at `level` (size 1 - level), method `MCS_METHOD`, a stationary block bootstrap with arch's
    default block length (the square root of the windows), `MCS_REPS` replications, seeded with `seed`.
    """
    from arch.bootstrap import MCS

    losses = pd.DataFrame({name: np.asarray(e, dtype=float) for name, e in errors.items()})
    mcs = MCS(losses, size=1 - level, reps=MCS_REPS, method=MCS_METHOD, bootstrap="stationary", seed=seed)
    mcs.compute()
    naive = losses[NAIVE].to_numpy()
    return Ranking(
        maes={name: float(losses[name].mean()) for name in losses},
        evidence={name: paired_evidence(losses[name].to_numpy(), naive) for name in losses if name != NAIVE},
        pvalues={name: float(p) for name, p in mcs.pvalues["Pvalue"].items()},
        members=[name for name in losses if name in mcs.included],
        level=level,
        block_size=int(mcs.block_size),
        seed=seed,
    )


@dataclass
class Board:
    """One symbol's leaderboard: the held-out windows, what each model was scored with, and the ranking."""

    symbol: str
    series: Series
    ends: np.ndarray
    compared: dict[str, Compared]
    selected_until: dict[str, str]  # model -> timestamp of the last validation window it was selected on
    runs: dict[str, int]
    ranking: Ranking
    scores: dict[str, Scores]  # model (naive included) -> CRPS and interval coverage on the same windows
    not_compared: dict[str, str] = field(default_factory=dict)  # model -> why it is missing

    def timestamp(self, row: int) -> str:
        return self.series.frame["timestamp"].iloc[row].isoformat()

    @property
    def line(self) -> str:
        r = self.ranking
        members = f"{r.level:.0%} confidence set: {', '.join(r.members)}"
        if r.champion is None:
            return f"{self.symbol}: no champion: naive is as good ({members})"
        return f"{self.symbol}: champion {r.champion} ({r.verdict}; {members})"


def leaderboard(
    best_dir: Path,
    data_dir: Path | None,
    symbols: list[str] | None,
    models: list[str] | None,
    runs: int,
    level: float,
    device: str,
    seed: int,
    report: Callable[[str], None],
) -> tuple[list[Board], list[str]]:
    """(a board per symbol that could be scored, problems). A problem (an unknown symbol or model, a rewritten
    data file, weights that cannot load, families that read the file differently) is one line; a model with a
    problem is left out of its symbol's board and named in `not_compared`. `report` gets a line for each symbol
    with too few held-out windows (skipped, not a problem)."""
    problems: list[str] = []
    for symbol in symbols or []:
        check_symbol(symbol)  # before any path is built
    found = _committed(Path(best_dir), models, problems, report)
    if not found and not problems:
        raise BadInput(f"{best_dir}: no committed configs; run `orchestrator optimize` first or pass --best-dir DIR")
    for symbol in symbols or []:
        if symbol not in found:
            problems.append(f"symbol {symbol}: no committed config in {best_dir} for "
                            f"{', '.join(models) if models else 'any model'}; run `orchestrator optimize` first")
    chosen = [s for s in sorted(found) if symbols is None or s in symbols]
    every = _committed(Path(best_dir), None, []) if models is not None else found
    history = [e for e in read_history(best_dir) if e.get("kind", "decision") == "decision"]
    adjustments = read_history(best_dir, ADJUSTMENT)
    forecasters: dict[tuple[str, ModelOptions], Forecaster] = {}
    boards = []
    for symbol in chosen:
        board = _board(symbol, found[symbol], history, adjustments, data_dir, runs, level, device, seed, forecasters,
                       problems, report)
        if board is not None:
            board.not_compared.update({m: "left out by --models" for m in every[symbol] if m not in found[symbol]})
            boards.append(board)
    return boards, problems


def _committed(best_dir: Path, models: list[str] | None, problems: list[str],
               report: Callable[[str], None] | None = None) -> dict[str, dict[str, Path]]:
    """symbol -> model -> committed config path, for the chosen models (every model directory by default; `report`
    gets one line on the other folders, which are skipped)."""
    listed = models is not None
    if models is None:
        folders = sorted(p.name for p in best_dir.iterdir() if p.is_dir()) if best_dir.is_dir() else []
        models = [folder for folder in folders if folder in MODELS]
        others = [folder for folder in folders if folder not in MODELS and not folder.startswith(".")]
        if others and report is not None:
            report(f"{best_dir}: skipped {', '.join(others)}: no model of that name (models: {', '.join(MODELS)})")
    found: dict[str, dict[str, Path]] = {}
    for model in models:
        try:
            forecaster_class(model)
        except BadInput as exc:
            problems.append(str(exc))
            continue
        paths = sorted((best_dir / model).glob("*.json"))
        if listed and not paths:
            problems.append(f"model {model}: no committed configs in {best_dir / model}; run `orchestrator optimize`")
        for path in paths:
            found.setdefault(path.stem, {})[model] = path
    return found


def _board(symbol, paths, history, adjustments, data_dir, runs, level, device, seed, forecasters, problems, report):
    compared: dict[str, Compared] = {}
    not_compared: dict[str, str] = {}

    def drop(model: str, why: str) -> None:
        not_compared[model] = why
        problems.append(f"{model}/{symbol}: {why}")

    for model, path in paths.items():
        try:
            compared[model] = _compared(model, symbol, path, history)
        except BadInput as exc:
            drop(model, str(exc))
    try:
        series = _read_alike(symbol, compared, data_dir)
    except BadInput as exc:
        problems.append(f"{symbol}: {exc}")
        return None
    first: dict[str, int] = {}
    for model in list(compared):
        try:
            first[model] = max(rows_then(series[model], compared[model].data, adjustments) - compared[model].test_windows,
                               _selected_rows(series[model], compared[model], history))
        except BadInput as exc:
            drop(model, str(exc))
            del compared[model], series[model]
    if not compared:
        return None
    some = next(iter(series.values()))
    start = max(first.values())
    ends = np.arange(start, some.rows)
    stamp = some.frame["timestamp"]
    if len(ends) < MIN_WINDOWS:
        report(f"{symbol}: {len(ends)} windows after the last validation window of every compared config "
               f"({stamp.iloc[start - 1].isoformat()}); {MIN_WINDOWS} are needed: "
               f"{MIN_WINDOWS - len(ends)} more bars; skipped")
        return None
    errors, used, scores = {}, {}, {}
    for model, c in compared.items():
        try:
            errors[model], used[model], scores[model] = _errors(c, series[model], ends, runs, device, seed,
                                                                forecasters)
        except (BadInput, ForecastError, KeyError, ValueError) as exc:
            drop(model, f"cannot be scored ({exc or type(exc).__name__})")
    if not errors:
        return None
    errors[NAIVE], scores[NAIVE] = naive_errors(some, ends), naive_scores(some.close, ends)
    return Board(
        symbol=symbol, series=some, ends=ends, compared={m: compared[m] for m in used},
        selected_until={m: stamp.iloc[first[m] - 1].isoformat() for m in used}, runs=used,
        ranking=rank(errors, level, seed), scores=scores, not_compared=not_compared,
    )


def _compared(model: str, symbol: str, path: Path, history: list[dict[str, Any]]) -> Compared:
    """The committed config and what its latest decision saw (the committed JSON's own record when the history has
    no decision for it with that)."""
    record = read_config(path)
    if record is None:
        raise BadInput(f"{path}: removed while the leaderboard ran; run it again")
    latest = [e for e in history if (e.get("model"), e.get("symbol")) == (model, symbol)]
    source = latest[-1] if latest and "data" in latest[-1] else record
    test = (source.get("candidate", source).get("test") or {}).get("windows")
    if "data" not in source or test is None:
        raise BadInput(f"{path}: no record of the windows it was selected on (no data in it and no decision in "
                       "history.jsonl); re-run `orchestrator optimize` for it")
    return Compared(model=model, path=path, params=record["params"], record=record, data=source["data"],
                    test_windows=int(test), options=source.get("options") or {})


def _selected_rows(series: Series, c: Compared, history: list[dict[str, Any]]) -> int:
    """How many of the series' rows come up to the last bar that any decision chose or kept the config on (its
    `selected_until`: recorded by the decision and the config, or for a decision of an earlier version, its last
    validation window)."""
    params = json.dumps(c.params, sort_keys=True, default=str)
    stamps = series.frame["timestamp"]
    rows = [int((stamps <= pd.Timestamp(c.record["selected_until"])).sum())] if c.record.get("selected_until") else []
    for e in history:
        chose = e.get("params") if e.get("committed") else e.get("incumbent_params")
        if (e.get("model"), e.get("symbol")) != (c.model, series.symbol) or chose is None or \
                json.dumps(chose, sort_keys=True, default=str) != params:
            continue
        if e.get("selected_until"):
            rows.append(int((stamps <= pd.Timestamp(e["selected_until"])).sum()))
        elif "data" in e and ((e.get("candidate") or {}).get("test") or {}).get("windows") is not None:
            then = int((stamps <= pd.Timestamp(e["data"]["last_timestamp"])).sum())
            rows.append(then - int(e["candidate"]["test"]["windows"]))
    return max(rows, default=0)


def _read_alike(symbol: str, compared: dict[str, Compared], data_dir: Path | None) -> dict[str, Series]:
    """Each model's series as its decision read the file; BadInput unless every family has the same bars (times and
    closes), so that the windows align."""
    series = {}
    for model, c in compared.items():
        data = c.data
        path = Path(data["path"]) if data_dir is None else Path(data_dir) / Path(data["path"]).name
        cls = forecaster_class(model)
        series[model] = load_series(path.parent, symbol, cls.required_columns, cls.optional_columns,
                                    price=data["price"], drop_missing=data["drop_missing"], dayfirst=data["dayfirst"],
                                    decimal=data.get("decimal", "auto"))
    reference = next(iter(series), None)
    for model in series:
        a, b = series[reference], series[model]
        if a.path != b.path:
            raise BadInput(f"families read different files ({reference}: {a.path}, {model}: {b.path}); pass "
                           "--data-dir DIR to read one")
        if a.rows != b.rows or not (a.frame["timestamp"].equals(b.frame["timestamp"]) and
                                    np.array_equal(a.close, b.close)):
            raise BadInput(
                f"families read {a.path} differently ({reference}: price {a.price}, {a.rows} rows, "
                f"{len(a.dropped)} dropped; {model}: price {b.price}, {b.rows} rows, {len(b.dropped)} dropped): "
                "their errors are not on the same bars; re-tune them with the same --price and --drop-missing")
    return series


def _errors(c: Compared, series: Series, ends: np.ndarray, runs: int, device: str, seed: int,
            forecasters: dict[tuple[str, ModelOptions], Forecaster]) -> tuple[np.ndarray, int, Scores]:
    """(per-window errors averaged over the runs, runs, CRPS and coverage): `runs` runs for a sampling model, one
    for a deterministic one; run r draws from the same seed in every model (common random numbers). The CRPS and
    intervals are of the same draws, pooled over the runs (`Evaluator.predict`, as `orchestrator forecast` reads
    its quantiles)."""
    key = (c.model, ModelOptions(device=device, weights=c.options.get("weights"),
                                 tokenizer=c.options.get("tokenizer")))
    if key not in forecasters:
        forecasters[key] = create(*key)
    forecaster = forecasters[key]
    if "weights_id" in c.options and forecaster.weights_id != c.options["weights_id"]:
        raise BadInput(f"the weights at {c.options.get('weights') or 'the default id'} changed since the decision "
                       f"({c.options['weights_id']} -> {forecaster.weights_id}); restore them or re-tune this model")
    used = runs if forecaster.stochastic else 1
    evaluator = Evaluator(forecaster, series, Windows(validation=ends, test=ends), seed)
    errors = evaluator.evaluate(c.params, range(used), "validation").window_errors
    return errors, used, evaluator_scores(evaluator, c.params, range(used), ends)


def as_dict(board: Board) -> dict[str, Any]:
    """A symbol's leaderboard as JSON: what `<best_dir>/champions.json` holds per symbol and `--json` prints."""
    r, series = board.ranking, board.series
    champion = r.champion
    models = {}
    for name, mae in sorted(r.maes.items(), key=lambda item: item[1]):
        row: dict[str, Any] = {"mae": mae, "in_set": name in r.members, "mcs_p_value": r.pvalues[name],
                               **board.scores[name].to_dict()}
        if name != NAIVE:
            c = board.compared[name]
            row.update({
                "evidence": finite(r.evidence[name].to_dict()), "runs": board.runs[name], "config": str(c.path.resolve()),
                "params": c.params, "study": (c.record.get("study") or {}).get("name"),
                "study_uid": (c.record.get("study") or {}).get("uid"),
                "trial": (c.record.get("study") or {}).get("trial"),
                "committed_at": c.record.get("committed_at"), "selected_until": board.selected_until[name],
            })
        models[name] = row
    return {
        "symbol": board.symbol,
        "champion": champion,
        "verdict": r.kind,
        "line": board.line,
        "config": str(board.compared[champion].path.resolve()) if champion else None,
        "params": board.compared[champion].params if champion else None,
        "set": r.members,
        "level": r.level,
        "models": models,
        "windows": {"count": len(board.ends), "first": board.timestamp(int(board.ends[0])),
                    "last": board.timestamp(int(board.ends[-1]))},
        "data": {"path": str(series.path), "sha256": series.sha256, "rows": series.rows,
                 "last_timestamp": series.last_timestamp, "price": series.price,
                 "dropped_rows": len(series.dropped)},
        "mcs": {"method": MCS_METHOD, "bootstrap": "stationary", "block_size": r.block_size, "reps": MCS_REPS,
                "seed": r.seed},
        "not_compared": board.not_compared,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "version": __version__,
    }


def tables(rows: list[dict[str, Any]]) -> list[Table]:
    """One rich table per symbol (`as_dict` rows): MAE, change against naive, MCS p-value, set membership."""
    found = []
    for row in rows:
        w = row["windows"]
        runs = ", ".join(f"{m} {v['runs']}" for m, v in row["models"].items() if m != NAIVE)
        table = plain_table(f"{row['symbol']}: {w['count']} windows {w['first']} .. {w['last']} (after every "
                            f"compared config's validation windows); runs: {runs}",
                            caption=row["line"], caption_justify="left")
        table.add_column("model", overflow="fold")
        for header in ("MAE", "vs naive:\nchange ± se", "p", "windows\nwon", "MCS p", f"in {row['level']:.0%}\nset"):
            table.add_column(header, justify="right")
        for name, m in row["models"].items():
            e = m.get("evidence")
            change = ["-", "-", "-"] if name == NAIVE else [
                f"{signed_percent(-e['improvement'])} ± {e['se']:.2%}",
                f"{e['p_value']:.2g}" if e["p_value"] >= 0.001 else "<0.001", f"{e['won']:.0%}"]
            table.add_row(name, f"{m['mae']:.5f}", *change, f"{m['mcs_p_value']:.3f}", "yes" if m["in_set"] else "no")
        found.append(table)
    return found
