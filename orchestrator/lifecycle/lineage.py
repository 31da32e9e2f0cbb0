"""A study's lineage in the storage: whether it can go on with today's inputs (the attrs that make its trial values
comparable; for a changed data file, whether bars were only appended, or earlier bars only rescaled by one factor
(a dividend or split adjustment), so that it rolls forward, or earlier bars changed), and archiving it as
`<model>/<SYMBOL>@<UTC time>` when a new study replaces it (--fresh, grown data), once, whoever runs it; what a
study rolled forward carries from the archived one (warm starts, `fed_until`) and the line that announces it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import os
import time

import optuna
import pandas as pd
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from orchestrator.decisions.records import HISTORY, append_history, latest, read_history
from orchestrator.data import Series
from orchestrator.data.adjust import Rescale, adjustment_entry, bars_record, rescaled
from orchestrator.errors import BadInput
from orchestrator.settings import LEGACY, STUDY_KEYS, Settings

COMPARABLE = ("model", "symbol", "data_sha256", "price", "drop_missing", "dayfirst", "decimal", "val_windows", "test_windows",
              "eval_runs", "space_hash", "seed", "scoring_version", "weights")
"""Study user attrs that make trial values comparable: resuming with another value of any of them is refused."""
LEGACY_ATTRS = {"price": "close", "drop_missing": False, "dayfirst": False, "decimal": "auto",
                "scoring_version": 1}
"""What studies made before an attr was recorded had; other attrs such a study lacks are not compared."""
READING = ("price", "drop_missing", "dayfirst", "decimal")
"""How the data file is read: a study rolled forward onto grown data keeps them (they say how to read this file)."""
BLOCKS = 64
"""A study records the fingerprints of up to this many consecutive blocks of its bars, to say where a changed file
first differs."""
ROLLED_CONFIGS = 5
"""A study rolled forward onto grown data enqueues (TPE) up to this many best distinct configs of the archived one."""
CMAES_WARM = 10
"""CMA-ES warm-starts from an archived study with at least this many complete trials (WS-CMA-ES: `make_sampler`)."""


def stored_attrs(storage: RDBStorage, name: str) -> dict[str, Any] | None:
    """The stored study's attrs, None when there is none."""
    try:
        return storage.get_study_user_attrs(storage.get_study_id_from_name(name))
    except KeyError:
        return None


def set_up_attrs(storage: RDBStorage, name: str) -> dict[str, Any] | None:
    """The stored study's attrs; None when there is none, or its setup was interrupted (no worker ever ran on it,
    so it is set up again)."""
    attrs = stored_attrs(storage, name)
    return attrs if attrs is not None and "settings" in attrs else None


PAUSE = "ORCHESTRATOR_TEST_PAUSE"
"""Test hook: `POINT:FILE` makes the process stop at POINT (see `pause_for_tests`) until FILE exists."""


def pause_for_tests(point: str) -> None:
    """Where the environment's ORCHESTRATOR_TEST_PAUSE names this point (`POINT:FILE`), create FILE.reached and wait
    until FILE exists (at most 120 s), so that tests force an interleaving of processes instead of hoping for it.
    Points: `guard` (before the roll-forward guard), `checked` (under it, before archiving), `copied` (the archive
    is complete, the original not deleted yet), `told` (after each trial a process finished)."""
    wanted, _, path = os.environ.get(PAUSE, "").partition(":")
    if wanted != point or not path:
        return
    Path(f"{path}.reached").touch()
    deadline = time.monotonic() + 120
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def archive(storage: RDBStorage, name: str) -> str:
    """Copy the study to `<name>@<UTC time>` and delete the original; returns the archive's name. A trial still
    RUNNING (its process died, or its heartbeat has not expired yet) is FAILED in the archive: nothing will run it.

    Idempotent: the copy is marked complete last (`archived_uid`, the study's uid); when the newest archive of
    `name` is a complete copy of this study (a process died between the copy and the delete), the original is only
    deleted; an incomplete one (died during the copy) is deleted and the study copied again. Call it under the
    study's guard (`storage.study_guard`): nothing else copies or deletes it meanwhile."""
    uid = stored_attrs(storage, name).get("uid")
    earlier = sorted(n for n in optuna.get_all_study_names(storage) if n.startswith(f"{name}@"))
    if earlier and uid is not None and stored_attrs(storage, earlier[-1]).get("uid") == uid:
        if stored_attrs(storage, earlier[-1]).get("archived_uid") == uid:
            optuna.delete_study(study_name=name, storage=storage)
            return earlier[-1]
        optuna.delete_study(study_name=earlier[-1], storage=storage)  # an interrupted copy
    archived = f"{name}@{datetime.now(timezone.utc):%Y%m%dT%H%M%S.%f}"
    optuna.copy_study(from_study_name=name, from_storage=storage, to_storage=storage, to_study_name=archived)
    archive_id = storage.get_study_id_from_name(archived)
    for trial in storage.get_all_trials(archive_id, states=(TrialState.RUNNING,)):
        storage.set_trial_user_attr(trial._trial_id, "fail_reason", "still running when the study was archived")
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    storage.set_study_user_attr(archive_id, "bars_record", None)  # only a current study needs its bars' values
    storage.set_study_user_attr(archive_id, "archived_uid", uid)  # last: the copy is complete
    pause_for_tests("copied")
    optuna.delete_study(study_name=name, storage=storage)
    return archived


def check_resumable(
    name: str, recorded: Mapping[str, Any], wanted: Mapping[str, Any], label: str, keys: Iterable[str] = COMPARABLE
) -> None:
    """BadInput naming the first comparability attr (of `keys`) that differs from the recorded study."""
    for key in keys:
        if key not in recorded and key not in LEGACY_ATTRS:
            continue
        before = recorded.get(key, LEGACY_ATTRS.get(key))
        if before == wanted[key]:
            continue
        if key == "data_sha256":  # `worker` and `commit` join a study on its own bars only
            raise BadInput(
                f"study {name} in {label}: its data file changed since the study was set up ({recorded.get('data_path')}"
                f"), so trial values would not be comparable; `orchestrator optimize`, `launch` or `resume` roll it "
                f"forward onto the grown file, or pass --fresh to start a new study"
            )
        why = " (this version of orchestrator scores the model differently)" if key == "scoring_version" else ""
        raise BadInput(
            f"study {name} in {label}: {key} was {before!r}, now {wanted[key]!r}{why}, so trial values "
            f"would not be comparable; rerun with the recorded setting, or pass --fresh to archive the old study "
            f"and start a new one"
        )


def bars_marks(series: Series) -> dict[str, Any]:
    """What a study records to recognise its bars in a later file: their count and fingerprint, the fingerprints
    of up to BLOCKS consecutive blocks of them, and their values (to recognise a rescale: `data.adjust`)."""
    return {"data_rows": series.rows, "bars_sha256": series.bars_sha256(),
            "bars_blocks": [series.bars_sha256(end, start)[:16] for start, end in _blocks(series.rows)],
            "bars_record": bars_record(series)}


@dataclass(frozen=True)
class Marks:
    """The bars a study was made on, as recorded: their count, fingerprint, block fingerprints and values (if
    any)."""

    rows: int
    sha256: str
    blocks: tuple[str, ...] = ()
    record: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Growth:
    """How a study's data file changed: `bars` appended, and the earlier bars rescaled (`rescale`) or not (None)."""

    bars: int
    rescale: Rescale | None = None


def recorded_marks(attrs: Mapping[str, Any], best_dir: Path) -> Marks | None:
    """The study's marks; for a study made before they were recorded, those of its last decision in the history
    (matched by the study's uid); None when neither exists."""
    if "bars_sha256" in attrs:
        return Marks(int(attrs["data_rows"]), attrs["bars_sha256"], tuple(attrs.get("bars_blocks", ())),
                     attrs.get("bars_record"))
    uid = attrs.get("uid")
    decisions = [e for e in read_history(best_dir) if uid is not None and e.get("study_uid") == uid
                 and e.get("kind", "decision") == "decision"]  # no `kind`: a decision of an earlier version
    data = (decisions[-1].get("data") if decisions else None) or {}
    if data.get("sha256") != attrs.get("data_sha256") or "bars_sha256" not in data or "rows" not in data:
        return None
    return Marks(int(data["rows"]), data["bars_sha256"])


def new_bars(name: str, series: Series, attrs: Mapping[str, Any], best_dir: Path) -> Growth:
    """How many bars were appended to the file since study `name` was made on its first bars (0: the same bars in a
    rewritten file), and whether those were rescaled by one factor (a dividend or split adjustment: returns
    unchanged; told by the values a study records since this version); BadInput when earlier bars changed
    otherwise, or when the study recorded nothing to tell by."""
    marks = recorded_marks(attrs, best_dir)
    if marks is None:
        raise BadInput(
            f"{series.path} changed since study {name}, which an earlier version of orchestrator created without "
            f"recording its bars (and it has no decision in {Path(best_dir) / HISTORY} to recognise them by), so "
            f"appended bars cannot be told from changed ones: pass --fresh to archive it and start a new study"
        )
    if series.rows < marks.rows:
        raise BadInput(
            f"{series.path} now has {series.rows} bars, fewer than the {marks.rows} study {name} was made on "
            f"(shrunk, or another file?): pass --fresh to start a new study on them"
        )
    if series.bars_sha256(marks.rows) == marks.sha256:
        return Growth(series.rows - marks.rows)
    rescale = rescaled(series, marks.record) if marks.record else None
    if rescale is not None:
        return Growth(series.rows - marks.rows, rescale)
    raise BadInput(
        f"the earlier bars of {series.path} changed since study {name} (re-adjusted prices, or another file?): "
        f"pass --fresh to start a new study on them{_first_change(series, marks)}"
    )


def record_rescale(best_dir: Path, series: Series, attrs: Mapping[str, Any], rescale: Rescale) -> None:
    """Append the rescale a roll-forward recognised (against the archived study's `attrs`) to the history, for each
    number of bars a decision on this symbol saw, so that decisions made before it are still scored."""
    rows = [entry["data"]["rows"] for entry in read_history(best_dir)
            if entry.get("symbol") == series.symbol and "rows" in entry.get("data", {})]
    append_history(best_dir, adjustment_entry(series, attrs["bars_record"], rescale, rows))


def changed_settings(recorded: Mapping[str, Any], settings: Settings) -> list[str]:
    """'--test-windows 60 (was 20)' for each study setting (and the target) that differs from what the stored study
    recorded: with `study.resumed_settings`, only a flag changes one."""
    before = {**{k: recorded["settings"].get(k, LEGACY.get(k)) for k in STUDY_KEYS
                 if k in recorded["settings"] or k in LEGACY}, "trials": recorded.get("target")}
    now = {**settings.model_dump(mode="json"), "trials": settings.trials}
    shown = lambda v: "on" if v is True else "off" if v is False else "none" if v is None else v  # noqa: E731
    return [f"--{key.replace('_', '-')} {shown(now[key])} (was {shown(value)})" for key, value in before.items()
            if value != now[key]]


def fed_until(series: Series, archived: Mapping[str, Any], grown: int) -> str:
    """The last bar that the warm starts of a study rolled forward from `archived` (its attrs) were selected on: the
    archive's last validation window, or an earlier archive's that fed it, whichever is later. The bars before the
    appended ones are the archive's, so its rows index today's series."""
    last = series.frame["timestamp"].iloc[series.rows - grown - int(archived["test_windows"]) - 1].isoformat()
    return latest(last, archived.get("fed_until"))


def rolled_line(name: str, series: Series, sampler: str, archived: str, grown: Growth, enqueued: int, complete: int,
                changed: list[str]) -> str:
    """One line, said before the first trial of study `name` rolled forward onto `series`: what grew (and how the
    earlier bars were rescaled, if they were), the archive, the new study, its warm starts, and the flags that
    changed a recorded setting (clauses joined by commas, so a note can be added)."""
    if sampler == "cmaes":
        warm = (f"CMA-ES warm-started from its {complete} complete trials" if complete >= CMAES_WARM else
                f"not warm-started from it: CMA-ES needs {CMAES_WARM} of its complete trials, it has {complete}")
    elif enqueued:
        warm = f"warm-started with its {enqueued} best config{'s' if enqueued > 1 else ''}"
    else:
        warm = "not warm-started from it: none of its complete trials is another config in the space"
    earlier = "earlier bars unchanged" if grown.rescale is None else grown.rescale.clause
    what = (f"{grown.bars} new bars since the last study ({earlier})" if grown.bars else
            f"{series.path} was rewritten with the same bars" if grown.rescale is None else
            f"{series.path}: {earlier}")
    kept = "kept its recorded settings" + (f" except {', '.join(changed)}" if changed else "")
    clauses = [f"archived it as {archived}", f"new study on {series.rows} rows", warm, kept]
    return f"{name}: {what}: {', '.join(clauses)}"


def _blocks(rows: int) -> list[tuple[int, int]]:
    size = -(-rows // BLOCKS)
    return [(start, min(start + size, rows)) for start in range(0, rows, size)]


def _first_change(series: Series, marks: Marks) -> str:
    """Where the first N bars first differ from the recorded ones, '' when the study recorded no blocks."""
    blocks = _blocks(marks.rows)
    if len(marks.blocks) != len(blocks):
        return ""
    for (start, end), digest in zip(blocks, marks.blocks):
        if series.bars_sha256(end, start)[:16] != digest:
            times = series.frame["timestamp"]
            if end - start == 1:
                return f" (the first change is at bar {start + 1}, {_when(times.iloc[start])})"
            return (f" (the first change is among bars {start + 1}-{end}, {_when(times.iloc[start])} to "
                    f"{_when(times.iloc[end - 1])})")
    return ""


def _when(timestamp: pd.Timestamp) -> str:
    return str(timestamp.date()) if timestamp == timestamp.normalize() else timestamp.isoformat()
