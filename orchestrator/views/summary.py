"""What a user reads about each study, built in one place for `status`, `report` and `launch`: trial counts and
target, the best value of the search, the config in use now (read from the best dir), the last decision with its
evidence, and the naive forecast; the tables that show them; and the note on histories shorter than the contexts.
Imports no torch, so `status` starts fast."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optuna.trial import FrozenTrial, TrialState
from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from orchestrator.decisions.records import best_path, read_config
from orchestrator.storages.counts import tally
from orchestrator.errors import BadInput
from orchestrator.scoring.evidence import evidence_text, signed_percent
from orchestrator.settings import Settings
from orchestrator.storages.storage import check_storage_url, open_storage, storage_exists, study_names

if TYPE_CHECKING:
    from orchestrator.lifecycle.study import Job

STATUS_KEYS = ("study", "model", "symbol", "complete", "pruned", "failed", "running", "target", "best_value",
               "incumbent_value", "naive_mae", "committed", "evidence", "beats_naive", "decision", "incumbent")
"""`status --json`: `best_value` is the search's best trial; `incumbent_value` the incumbent's MAE that the last
decision measured; `incumbent` the config in use now (null when none is committed), with `last_checked`: when the
latest decision measured it, its MAE and the naive one; `beats_naive` whether it beat naive then (the study's last
decision's when the config has no `last_checked`)."""
LAUNCH_KEYS = {"study": "study", "model": "model", "symbol": "symbol", "status": "status", "trials": "trials",
               "target": "target", "search_mae": "best_value", "validation_mae": "confirm_mae",
               "test_mae": "confirm_test_mae", "incumbent_mae": "incumbent_value", "naive_mae": "naive_mae",
               "committed": "committed", "evidence": "evidence", "beats_naive": "beats_naive",
               "decision": "decision", "incumbent": "incumbent", "seconds": "seconds"}
"""Launch's summary (and `--save-summary`) key -> row key: `validation_mae` and `test_mae` come from the confirm
runs of the decision, `search_mae` from the search."""


@dataclass(frozen=True)
class LaunchState:
    """What `launch` knows about a study besides the storage."""

    phase: str = "waiting"  # "waiting", "running" or "ended": where the study's processes are
    failure: str | None = None  # why the study failed, e.g. "ValueError: ..." or "its worker died 3 times ..."
    seconds: float | None = None  # since its first process started
    baseline: int = 0  # finished trials before this launch


def summaries(url: str, settings: Settings, archived: bool = False) -> list[dict[str, Any]]:
    """A `study_row` per current study in the storage (and per archived one with `archived`); the config in use is
    read from `settings.best_dir`. Only the studies listed are loaded: hundreds of archives cost little."""
    check_storage_url(url)
    if not storage_exists(url):
        return []
    storage = open_storage(url, settings)
    rows = []
    for name in study_names(storage, archived):
        study_id = storage.get_study_id_from_name(name)  # one read of each study's trials: `status` stays fast
        rows.append(study_row(name, storage.get_study_user_attrs(study_id),
                              storage.get_all_trials(study_id, deepcopy=False), settings.best_dir))
    return rows


def study_row(name: str, attrs: dict[str, Any], trials: list[FrozenTrial], best_dir: Path,
              launch: LaunchState | None = None) -> dict[str, Any]:
    """One study (its user attrs and all its trials) as `status`, `report` and `launch` show it. With `launch`,
    also its state in this launch, and the decision only when it decided the current best trial (an older one is
    not this launch's)."""
    c = tally(trials)
    best = min((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value, default=None)
    decision = attrs.get("decision") or {}
    current = bool(decision) and best is not None and decision.get("trial") == best.number
    if launch is not None and not current:
        decision = {}
    use = in_use(best_dir, name, attrs)
    row = {
        "study": name, "model": attrs.get("model"), "symbol": attrs.get("symbol"),
        "complete": c.complete, "pruned": c.pruned, "failed": c.failed, "running": c.running,
        "trials": c.finished, "target": attrs.get("target"), "best_value": best.value if best is not None else None,
        "naive_mae": (attrs.get("naive_mae") or {}).get("validation"),
        "incumbent": use,
        "committed": decision.get("committed"), "evidence": decision.get("evidence"),
        "beats_naive": beats_naive(use, decision), "decision": decision.get("line"),
        "confirm_mae": decision.get("candidate_mae"), "confirm_test_mae": decision.get("candidate_test_mae"),
        "incumbent_value": decision.get("incumbent_mae"),
    }
    if launch is not None:
        new = c.finished - launch.baseline
        row.update({
            "status": _launch_status(current, decision, launch, c.finished, attrs.get("target")),
            "seconds": None if launch.seconds is None else round(launch.seconds, 1), "new_trials": new,
            "at_target_before": attrs.get("target") is not None and launch.baseline >= attrs["target"],
            "per_minute": new / launch.seconds * 60 if launch.seconds else None,
        })
    return row


def in_use(best_dir: Path, name: str, attrs: dict[str, Any]) -> dict[str, Any] | None:
    """The config in use now for the study's model and symbol (`<best_dir>/<model>/<SYMBOL>.json`): its validation
    MAE when committed, when, and which study and trial committed it; None when none is committed."""
    if not attrs.get("model") or not attrs.get("symbol"):
        return None
    try:
        path = best_path(best_dir, attrs["model"], attrs["symbol"])
    except BadInput:  # a study of a model this version does not know
        return None
    try:
        record = read_config(path)
    except BadInput as exc:
        return {"path": str(path), "error": str(exc)}
    if record is None:
        return None
    by = record.get("study") or {}
    return {
        "path": str(path), "validation_mae": (record.get("validation") or {}).get("mae"),
        "committed_at": record.get("committed_at"), "study": by.get("name"), "trial": by.get("trial"),
        # the uid names the committing study (an archive keeps it); configs from before uids were recorded: the name
        "this_study": by.get("uid") == attrs.get("uid") if by.get("uid") else by.get("name") == name,
        "last_checked": record.get("last_checked"), "params": record["params"],
    }


def beats_naive(use: dict[str, Any] | None, decision: dict[str, Any]) -> bool | None:
    """Whether the config in use beat the naive forecast when the latest decision measured it (`last_checked`);
    the study's last decision's verdict for a config committed before that was recorded."""
    checked = (use or {}).get("last_checked") or {}
    if checked.get("mae") is not None and checked.get("naive_mae") is not None:
        return checked["mae"] < checked["naive_mae"]
    return decision.get("beats_naive")


def launch_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Launch's summary rows, as `--save-summary` writes them."""
    return [{key: row[source] for key, source in LAUNCH_KEYS.items()} for row in rows]


def status_table(rows: list[dict[str, Any]]) -> Table:
    table = _table()
    table.add_column("study", overflow="fold")  # an archived study's long name folds first
    shown = short_names([r["study"] for r in rows])
    table.add_column("trials", no_wrap=True)
    for header in ("search\nMAE", "naive\nMAE"):
        table.add_column(header, justify="right", no_wrap=True)
    for header in ("in use", "last decision"):
        table.add_column(header, min_width=16)
    for r in rows:
        trials = f"{r['trials']}/{r['target'] if r['target'] is not None else '-'}"
        if r["running"]:
            trials += f" ({r['running']} running)"
        table.add_row(shown[r["study"]], trials, _fmt(r["best_value"]), _fmt(r["naive_mae"]), in_use_text(r),
                      decision_text(r, short=True))
    return table


def short_names(names: list[str]) -> dict[str, str]:
    """Study name -> as the status table shows it: an archive (`<model>/<SYMBOL>@<UTC time>`) on two lines, its time
    to the minute, or to the second or in full where that is needed to tell archives apart (`--json` and `--study`
    take the full name)."""
    shown = {}
    for name in names:
        base, at, time = name.partition("@")
        if not at:
            shown[name] = name
            continue
        others = [n.partition("@")[2] for n in names if n != name and n.partition("@")[0] == base]
        short = next((time[:n] for n in (13, 15) if not any(o[:n] == time[:n] for o in others)), time)
        shown[name] = f"{base}\n@{short}"
    return shown


def live_table(rows: list[dict[str, Any]]) -> Table:
    """Launch's live view: a line per study."""
    table = _table("studies")
    for header in ("study", "state", "trials", "search MAE", "in use", "trials/min"):
        table.add_column(header, justify="right" if header in ("trials", "search MAE") else "left", no_wrap=True)
    for r in rows:
        rate = "already at target" if r["at_target_before"] else _fmt(r["per_minute"], ".1f")
        table.add_row(r["study"], r["status"], f"{r['trials']}/{r['target']}", _fmt(r["best_value"]),
                      _fmt((r["incumbent"] or {}).get("validation_mae")), rate)
    return table


def summary_table(rows: list[dict[str, Any]]) -> Group:
    """Launch's summary (`launch_summary` rows): a line per study, then each study's decision line."""
    table = _table("summary")
    for header in ("study", "status", "trials", "search MAE", "confirm MAE", "naive MAE", "time"):
        table.add_column(header, justify="left" if header in ("study", "status") else "right")
    for r in rows:
        time = "-" if r["seconds"] is None else f"{r['seconds']:.0f} s"
        table.add_row(r["study"], r["status"], f"{r['trials']}/{r['target']}", _fmt(r["search_mae"]),
                      _fmt(r["validation_mae"]), _fmt(r["naive_mae"]), time)
    lines = [Text(r["decision"]) for r in rows if r["decision"]]
    note = Text("search MAE: best trial of the search; confirm MAE: fresh runs vs the incumbent",
                style="dim")
    return Group(table, note, *lines)


def in_use_text(row: dict[str, Any]) -> str:
    """'0.01093 (trial 12, 2025-06-01)': its validation MAE when the latest decision measured it (else when
    committed), by which trial of this study (or of an earlier study of the same name, or of another study) on which
    day; ', not better than naive' when it did not beat the naive forecast then."""
    use = row["incumbent"]
    if use is None:
        return "none"
    if "error" in use:
        return "unreadable (see `orchestrator best`)"
    checked = (use.get("last_checked") or {}).get("mae")  # how it stands today: the latest decision's measure
    value = checked if checked is not None else use["validation_mae"]
    mae = "no MAE recorded" if value is None else _fmt(value)
    if use["trial"] is None:
        by = []
    elif use["this_study"]:
        by = [f"trial {use['trial']}"]
    else:  # a study of the same name is an earlier one (--fresh or grown data archived it)
        by = [f"trial {use['trial']} of " + ("an earlier study" if use["study"] == row["study"] else use["study"])]
    when = [use["committed_at"][:10]] if use["committed_at"] else []
    text = f"{mae} ({', '.join(by + when)})" if by or when else mae
    return text + (", not better than naive" if row["beats_naive"] is False else "")


def decision_text(row: dict[str, Any], short: bool = False) -> str:
    """'committed: -0.49% ± 0.21%, p=0.011, 58% of 250 windows; best of 87 configs: p=0.012', 'kept incumbent: ...',
    or '-' before one; `short` leaves out the windows won ('...; best of 87: p=0.012')."""
    if row["committed"] is None:
        return "-"
    verdict = "committed" if row["committed"] else "kept incumbent"
    e = row["evidence"]
    if not e:
        return f"{verdict} without comparison"  # no incumbent, or one that could not be scored
    if short:
        p = "<0.001" if e["p_value"] < 0.001 else f"={e['p_value']:.2g}"
        spa = e.get("spa")  # the SPA test over the configs tried, when the decision ran it
        searched = "" if not spa else f"; best of {spa['configs']}: p" + (
            "<0.001" if spa["p_value"] < 0.001 else f"={spa['p_value']:.2g}")
        return f"{verdict}: {signed_percent(-e['improvement'])} ± {e['se']:.2%}, p{p}{searched}"
    return f"{verdict}: {evidence_text(e)}"


def short_history_note(jobs: Sequence[Job]) -> str | None:
    """One line for the studies whose longest context reaches back further than the bars before every validation
    window (so the longest contexts score alike), said as the expected thing it is; None when there are none."""
    short = [job for job in jobs if job.longest_context > int(job.windows.validation[-1])]
    if not short:
        return None
    if len(short) == 1:
        job = short[0]
        first, last = int(job.windows.validation[0]), int(job.windows.validation[-1])
        return (f"{job.name}: its validation windows have {first} to {last} bars before them; contexts up to "
                f"{job.longest_context} read the bars that exist (expected with {job.series.rows} rows), so "
                f"contexts above {last} score alike")
    longest = max(job.longest_context for job in short)
    return (f"{', '.join(job.name for job in short)}: every validation window has fewer bars before it than the "
            f"longest contexts (up to {longest}); they read the bars that exist (expected with short files), so "
            "the longest contexts score alike")


def _launch_status(current: bool, decision: dict[str, Any], launch: LaunchState, finished: int,
                   target: int | None) -> str:
    if current:
        return "committed" if decision["committed"] else "kept incumbent"
    if launch.failure is not None:
        return f"failed: {launch.failure}"
    if launch.phase == "ended":
        return "incomplete" if target is not None and finished < target else "no complete trial"
    return launch.phase


def _table(title: str | None = None) -> Table:
    """Two spaces between columns, a rule under the header, no border: rows fit 80 columns."""
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True,
                 pad_edge=False, show_edge=False)


def _fmt(value: float | None, spec: str = ".5f") -> str:
    return "-" if value is None else format(value, spec)
