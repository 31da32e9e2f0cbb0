"""Past decisions scored on the bars that arrived after them: the only honest check that a commit paid off.

For each decision in `<best_dir>/history.jsonl` whose data file has grown, the two configs are scored on the new
bars with the decision's own aggregation, many runs and common random numbers: for a commit, the committed config
against the one it replaced (the naive zero-return forecast when there was none, or when the replaced config cannot
be scored any more); for a rejection, the kept incumbent against the rejected candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich import box
from rich.table import Table

from orchestrator.decisions.records import ADJUSTMENT, read_history
from orchestrator.data import Series, Windows, load_series
from orchestrator.data.adjust import earlier_rows
from orchestrator.errors import UNSCORABLE, BadInput, unscorable_reason
from orchestrator.scoring.evaluation import Evaluator, naive_errors
from orchestrator.scoring.evidence import Evidence, paired_evidence, signed_percent
from orchestrator.models.base import Forecaster, ModelOptions, create, forecaster_class

NAIVE = "naive zero return"
PAID_OFF, NO_CLEAR, DID_NOT = "paid off", "no clear difference", "did not pay off"
VERDICTS = (PAID_OFF, NO_CLEAR, DID_NOT)


class NotScored(Exception):
    """A decision that cannot be scored, for a reason that is no fault of the data: no new bars yet, or a config
    that this version cannot run."""


@dataclass
class Score:
    """One decision on the bars after it. `old`/`new`: for a commit the replaced and the committed config; for a
    rejection the kept incumbent and the rejected candidate."""

    study: str
    model: str
    symbol: str
    decided: str
    committed: bool
    bars: int
    old_mae: float
    new_mae: float
    old_errors: np.ndarray = field(repr=False)
    new_errors: np.ndarray = field(repr=False)
    old_label: str = "incumbent"
    note: str = ""
    times: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False)  # bars, ns
    until: int | None = None  # ns: the last bar of the lineage's next decision; later bars are that one's

    @property
    def in_force(self) -> np.ndarray:
        """Which of the bars the decision was in force on: up to the lineage's next decision's last bar."""
        return self.times <= self.until if self.until is not None else np.ones(len(self.times), dtype=bool)

    @cached_property
    def evidence(self) -> Evidence | None:
        """The new config's paired evidence against the old one on the bars after the decision (None below 2)."""
        return paired_evidence(self.new_errors, self.old_errors) if self.bars >= 2 else None

    @property
    def verdict(self) -> str:
        """PAID_OFF when the chosen config (the committed one, or the kept incumbent) did better than the other by
        more than one standard error of the paired difference, DID_NOT when worse by more, else NO_CLEAR."""
        e = self.evidence
        if e is None:
            return NO_CLEAR
        gain = e.improvement if self.committed else -e.improvement
        return PAID_OFF if gain > e.se else DID_NOT if gain < -e.se else NO_CLEAR

    @property
    def paid_off(self) -> bool:
        return self.verdict == PAID_OFF

    @property
    def chosen_errors(self) -> np.ndarray:
        return self.new_errors if self.committed else self.old_errors

    @property
    def other_errors(self) -> np.ndarray:
        return self.old_errors if self.committed else self.new_errors


def scorecard(
    best_dir: Path, data_dir: Path | None, runs: int, device: str, report: Callable[[str], None]
) -> tuple[list[Score], list[str]]:
    """(scores of the decisions with new bars, problems): a problem is a decision whose data cannot be trusted or
    read (a shrunk or rewritten file, other weights); `report` gets a line for each decision not scored, and for each
    one scored against the naive forecast because the config it replaced cannot be scored."""
    history = read_history(best_dir)
    if not history:
        raise BadInput(f"{Path(best_dir) / 'history.jsonl'}: no decisions yet; run `orchestrator optimize` first")
    scores, problems, adjustments = [], [], read_history(best_dir, ADJUSTMENT)
    forecasters: dict[tuple[str, ModelOptions], Forecaster] = {}
    for i, entry in enumerate(history):
        name = f"{entry.get('study')} decision at {entry.get('time')}"
        if "data" not in entry or "incumbent_params" not in entry:
            report(f"{name}: recorded by an older version without what the scorecard needs; not scored")
            continue
        try:
            score = _score(entry, data_dir, runs, device, forecasters, adjustments)
        except BadInput as exc:
            problems.append(f"{name}: {exc}")
            continue
        except NotScored as exc:
            report(f"{name}: {exc}")
            continue
        if score.note:
            report(f"{name}: {score.note}")
        later = [e for e in history[i + 1:] if _lineage(e) == _lineage(entry) and "data" in e]
        score.until = pd.Timestamp(later[0]["data"]["last_timestamp"]).value if later else None
        scores.append(score)
    return scores, problems


def _score(entry: dict[str, Any], data_dir: Path | None, runs: int, device: str,
           forecasters: dict[tuple[str, ModelOptions], Forecaster], adjustments: list[dict[str, Any]]) -> Score:
    data, model, symbol = entry["data"], entry["model"], entry["symbol"]
    path = Path(data["path"]) if data_dir is None else Path(data_dir) / Path(data["path"]).name
    cls = forecaster_class(model)
    series = load_series(path.parent, symbol, cls.required_columns, cls.optional_columns, price=data["price"],
                         drop_missing=data["drop_missing"], dayfirst=data["dayfirst"],
                         decimal=data.get("decimal", "auto"))
    rows = rows_then(series, data, adjustments)
    if rows == series.rows:
        raise NotScored(f"no bars after {data['last_timestamp']} yet")
    options = entry["options"]
    key = (model, ModelOptions(device=device, weights=options.get("weights"), tokenizer=options.get("tokenizer")))
    if key not in forecasters:
        forecasters[key] = create(*key)
    forecaster = forecasters[key]
    if forecaster.weights_id != options.get("weights_id"):
        raise BadInput(f"the weights changed since the decision ({options.get('weights_id')} -> "
                       f"{forecaster.weights_id}); pass the decision's weights to score it")
    ends = np.arange(rows, series.rows)
    evaluator = Evaluator(forecaster, series, Windows(validation=ends, test=ends), entry["seed"])

    def errors(params: dict[str, Any] | None, which: str) -> np.ndarray:
        if params is None:
            return naive_errors(series, ends)
        try:
            return evaluator.evaluate(params, range(runs), "validation").window_errors
        except UNSCORABLE as exc:
            raise NotScored(f"the {which} config cannot be scored: {unscorable_reason(exc)}") from None

    committed = bool(entry["committed"])
    new = errors(entry["params"], "committed" if committed else "rejected")
    old_params, note = entry["incumbent_params"], ""
    try:
        old = errors(old_params, "replaced" if committed else "kept")
    except NotScored as exc:
        if not committed:
            raise
        old_params, old, note = None, naive_errors(series, ends), f"{exc}; scored against the naive forecast instead"
    return Score(study=entry["study"], model=model, symbol=symbol, decided=entry["time"], committed=committed,
                 bars=len(ends), old_mae=float(old.mean()), new_mae=float(new.mean()), old_errors=old, new_errors=new,
                 old_label="incumbent" if old_params is not None else NAIVE, note=note,
                 times=pd.DatetimeIndex(series.frame["timestamp"].iloc[ends]).asi8)


def rows_then(series: Series, data: dict[str, Any], adjustments: list[dict[str, Any]] = ()) -> int:
    """How many of today's rows the file had at the decision; BadInput if those bars are not the same any more (or
    rescaled by a dividend or split adjustment that a roll-forward recognised: `data.adjust.earlier_rows`)."""
    return earlier_rows(series, data, adjustments)[0]


def summarize(scores: list[Score], history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per lineage (model/symbol) and one overall: decisions, how many got each verdict, turnover (of the
    `history`'s decisions with a config in use, how many replaced it), bars, and the chosen configs' MAE against the
    alternatives' with the change's standard error (paired, in % of the alternatives' MAE; negative: the decisions
    helped).

    Each bar counts once per lineage, from the decision in force on it (nightly decisions overlap: every one is
    scored on all the bars after it). Overall, lineages that share a date (fhs/AAA and toto/AAA, or AAA and BBB)
    are averaged per date before the paired test, so its windows are dates."""
    groups: dict[str, list[Score]] = {}
    for score in scores:
        groups.setdefault(f"{score.model}/{score.symbol}", []).append(score)
    if scores:
        groups["overall"] = scores
    rows = []
    for name, group in groups.items():
        times = np.concatenate([s.times[s.in_force] for s in group])
        chosen = np.concatenate([s.chosen_errors[s.in_force] for s in group])
        other = np.concatenate([s.other_errors[s.in_force] for s in group])
        dates, at = np.unique(times, return_inverse=True)  # sorted; one per bar within a lineage
        count = np.bincount(at, minlength=len(dates))
        chosen, other = (np.bincount(at, weights=e, minlength=len(dates)) / count for e in (chosen, other))
        evidence = paired_evidence(chosen, other) if len(dates) >= 2 else None
        lineages = {_lineage(e) for e in history} if name == "overall" else {tuple(name.split("/", 1))}
        decided = [e for e in history if _lineage(e) in lineages and e.get("incumbent") is not None]
        rows.append({
            "group": name, "decisions": len(group),
            **{verdict.replace(" ", "_"): sum(s.verdict == verdict for s in group) for verdict in VERDICTS},
            "turnover": {"changed": sum(bool(e.get("committed")) for e in decided), "nights": len(decided)},
            "bars": len(times), "dates": len(dates),
            "chosen_mae": float(chosen.mean()) if len(dates) else None,
            "alternative_mae": float(other.mean()) if len(dates) else None,
            "change": None if evidence is None else -evidence.improvement,
            "se": None if evidence is None else evidence.se,
        })
    return rows


def _lineage(entry: dict[str, Any]) -> tuple[Any, Any]:
    return entry.get("model"), entry.get("symbol")


def as_dict(score: Score) -> dict[str, Any]:
    """A JSON row for one scored decision."""
    evidence = score.evidence
    return {
        "study": score.study, "decided": score.decided, "committed": score.committed, "bars": score.bars,
        "old": score.old_label, "old_mae": score.old_mae, "new_mae": score.new_mae,
        "change": None if evidence is None else -evidence.improvement, "se": None if evidence is None else evidence.se,
        "verdict": score.verdict, "paid_off": score.paid_off,
    }


def tables(rows: list[dict[str, Any]], summary: list[dict[str, Any]]) -> list[Table]:
    """The decisions (`as_dict` rows) and the groups (`summarize` rows) as rich tables that fit 80 columns (two
    lines per row)."""
    decisions = plain_table("decisions on the bars after them (change: new vs old MAE; verdict: beyond one standard "
                            "error or not)", leading=1)
    decisions.add_column("study\ndecided", overflow="fold")
    decisions.add_column("decision")
    for header in ("bars", "old MAE", "new MAE", "change\n± se"):
        decisions.add_column(header, justify="right")
    decisions.add_column("verdict")
    for r in rows:
        decisions.add_row(f"{r['study']}\n{r['decided'][:10]}",
                          ("commit" if r["committed"] else "kept") + f"\nvs {_old(r['old'])}", str(r["bars"]),
                          f"{r['old_mae']:.5f}", f"{r['new_mae']:.5f}", _change(r), _VERDICT_LINES[r["verdict"]])
    groups = plain_table("chosen config vs the alternative (each bar once per model/symbol, from the decision "
                         "in force on it; changed: nights that replaced the config in use; negative change: "
                         "the decisions helped)")
    groups.add_column("model/\nsymbol", overflow="fold")
    for header in ("deci-\nsions", "paid off/\nunclear/\nnot", "changed", "bars", "chosen\nMAE", "other\nMAE",
                   "change\n± se"):
        groups.add_column(header, justify="right")
    mae = lambda v: "-" if v is None else f"{v:.5f}"  # noqa: E731
    for r in summary:
        verdicts = "/".join(str(r[v.replace(" ", "_")]) for v in VERDICTS)
        turnover = f"{r['turnover']['changed']} of {r['turnover']['nights']}"
        groups.add_row(r["group"], str(r["decisions"]), verdicts, turnover, str(r["bars"]), mae(r["chosen_mae"]),
                       mae(r["alternative_mae"]), _change(r))
    return [decisions, groups]


_VERDICT_LINES = {PAID_OFF: "paid off", NO_CLEAR: "no clear\ndifference", DID_NOT: "did not\npay off"}


def _old(label: str) -> str:
    return "naive" if label == NAIVE else label


def _change(row: dict[str, Any]) -> str:
    """'-2.76%' over '± 1.10%' ('-' without a change)."""
    if row["change"] is None:
        return "-"
    return signed_percent(row["change"]) + ("" if row["se"] is None else f"\n± {row['se']:.2%}")


def plain_table(title: str, **kwargs: Any) -> Table:
    """Two spaces between columns, a rule under the header, no border (as `status`), a blank line between rows of
    two lines: rows fit 80 columns."""
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True,
                 pad_edge=False, show_edge=False, **kwargs)
