"""Incumbent configs: read, confirm candidate vs incumbent on fresh runs, commit atomically under a lock, history."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna
from filelock import FileLock

from orchestrator import __version__
from orchestrator.data import Series, check_symbol
from orchestrator.errors import BadInput
from orchestrator.evaluation import Evaluation, Evaluator
from orchestrator.models.base import ForecastError

HISTORY = "history.jsonl"


def best_path(best_dir: Path, model: str, symbol: str) -> Path:
    return Path(best_dir) / model / f"{check_symbol(symbol)}.json"


def read_config(path: Path) -> dict[str, Any] | None:
    """A committed config, None when there is none; BadInput when the file is corrupt (it is never overwritten)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: unreadable incumbent ({exc}); fix it or move it away") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(
            f"{path}: corrupt incumbent ({exc}); it was left untouched: fix it, or move it away to start without one"
        ) from None
    if not isinstance(record, dict) or not isinstance(record.get("params"), dict):
        raise BadInput(
            f"{path}: corrupt incumbent (no 'params' object); it was left untouched: fix it, or move it away"
        )
    return record


def transfer_configs(best_dir: Path, model: str, symbol: str) -> list[tuple[str, dict[str, Any]]]:
    """(symbol, params) of the model's committed configs for other symbols, newest first; unreadable ones skipped."""
    found = []
    for path in sorted((Path(best_dir) / model).glob("*.json")):
        if path.stem == symbol:
            continue
        try:
            record = read_config(path)
        except BadInput:
            continue
        if record is not None:
            found.append((str(record.get("committed_at", "")), path.stem, record["params"]))
    return [(other, params) for _, other, params in sorted(found, key=lambda f: f[0], reverse=True)]


@dataclass
class Decision:
    study: str
    trial: int
    committed: bool
    candidate: dict[str, Any]
    incumbent: dict[str, Any] | None
    path: str
    time: str
    note: str = ""
    earlier: bool = False  # found in the history: this trial was decided before, nothing was redone

    @property
    def line(self) -> str:
        if self.earlier:
            verdict = "committed" if self.committed else "kept the incumbent"
            return (f"NOT updating {self.study}: best trial {self.trial} is unchanged since its decision at "
                    f"{self.time} ({verdict})")
        new = self.candidate["validation"]["mae"]
        if self.incumbent is None:
            return f"UPDATING {self.study}: MAE {new:.5f} (no incumbent){self.note}"
        old = self.incumbent["validation"]["mae"]
        if self.committed:
            change = f" ({(new - old) / old:+.2%})" if old == old and old not in (0, float("inf")) else ""
            return f"UPDATING {self.study}: MAE {old:.5f} -> {new:.5f}{change}{self.note}"
        return f"NOT updating {self.study}: candidate {new:.5f} >= incumbent {old:.5f}{self.note}"


def _scores(evaluator: Evaluator, params: dict[str, Any], runs: range) -> dict[str, Any]:
    def part(e: Evaluation) -> dict[str, Any]:
        return {"mae": e.mae, "sem": e.sem, "runs": len(e.run_maes), "windows": len(evaluator.windows.of(e.split)),
                "run_maes": e.run_maes}

    return {split: part(evaluator.evaluate(params, runs, split)) for split in ("validation", "test")}


def decide(
    study: optuna.Study,
    evaluator: Evaluator,
    series: Series,
    best_dir: Path,
    confirm_runs: range,
    storage_label: str,
) -> Decision | None:
    """Run the commit protocol for the study's best trial, once; None when no trial completed.

    Candidate and incumbent are scored on the same fresh runs (`confirm_runs`, common random numbers); the candidate
    is written iff its validation MAE is strictly lower. Everything after the candidate's scoring happens under the
    file lock: the incumbent is re-read (another worker may have committed), and a decision already in the history
    for this study and trial is returned as is (a rerun or a second worker never decides twice).
    """
    try:
        best = study.best_trial
    except ValueError:
        return None
    model, symbol = study.user_attrs["model"], study.user_attrs["symbol"]
    path = best_path(best_dir, model, symbol)
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = _scores(evaluator, best.params, confirm_runs)
    with FileLock(str(path) + ".lock"):
        uid = study.user_attrs.get("uid")
        decision = _from_history(Path(best_dir) / HISTORY, uid, best.number)
        if decision is None:
            decision = _decide_locked(study, best, evaluator, series, path, candidate, confirm_runs, storage_label)
            with open(Path(best_dir) / HISTORY, "a") as history:
                entry = {**asdict(decision), "study_uid": uid, "params": best.params, "data_sha256": series.sha256}
                history.write(json.dumps(entry) + "\n")
        study.set_user_attr("decision", {
            "trial": decision.trial, "committed": decision.committed, "time": decision.time,
            "candidate_mae": decision.candidate["validation"]["mae"],
            "candidate_test_mae": decision.candidate["test"]["mae"],
            "incumbent_mae": None if decision.incumbent is None else decision.incumbent["validation"]["mae"],
            "line": decision.line,
        })
    return decision


def _from_history(path: Path, study_uid: str | None, trial: int) -> Decision | None:
    if study_uid is None or not path.exists():
        return None
    fields = Decision.__dataclass_fields__
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if (entry.get("study_uid"), entry["trial"]) == (study_uid, trial):
            return Decision(**{**{k: v for k, v in entry.items() if k in fields}, "earlier": True})
    return None


def _decide_locked(study, best, evaluator, series, path, candidate, confirm_runs, storage_label) -> Decision:
    record = read_config(path)
    incumbent, note = None, ""
    if record is not None:
        try:
            incumbent = {"params": record["params"], **_scores(evaluator, record["params"], confirm_runs)}
        except (ForecastError, KeyError, ValueError, TypeError) as exc:
            incumbent = {"params": record["params"], "validation": {"mae": float("inf")}, "error": str(exc)}
            note = f" (incumbent could not be scored: {exc})"
    committed = incumbent is None or candidate["validation"]["mae"] < incumbent["validation"]["mae"]
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if committed:
        _write_atomic(path, _config_record(study, best, series, candidate, incumbent, storage_label, now))
    return Decision(study=study.study_name, trial=best.number, committed=committed, candidate=candidate,
                    incumbent=incumbent, path=str(path), time=now, note=note)


def _config_record(study, best, series, candidate, incumbent, storage_label, now) -> dict[str, Any]:
    attrs = study.user_attrs
    return {
        "symbol": attrs["symbol"],
        "model": attrs["model"],
        "params": best.params,
        "validation": candidate["validation"],
        "test": candidate["test"],
        "previous": None if incumbent is None else {"mae": incumbent["validation"]["mae"],
                                                    "params": incumbent["params"]},
        "search": {"mae": best.value, "runs": attrs["eval_runs"]},
        "naive": attrs.get("naive_mae"),
        "data": {"path": str(series.path), "sha256": series.sha256, "rows": series.rows,
                 "last_timestamp": series.last_timestamp},
        "study": {"name": study.study_name, "storage": storage_label, "trial": best.number, "seed": attrs["seed"]},
        "committed_at": now,
        "version": __version__,
    }


def _write_atomic(path: Path, record: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=2, default=str)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
