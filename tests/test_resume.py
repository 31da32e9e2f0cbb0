"""Kill -9 a running study (several times) and run the same command again: nothing is lost or counted twice."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from conftest import cli_subprocess, trial_rows

TARGET = 150
COMMAND = ("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", str(TARGET))


def finished(db: Path) -> dict[int, float | None]:
    if not db.exists():
        return {}
    try:
        return {n: v for n, state, v in trial_rows(db) if state in ("COMPLETE", "PRUNED")}
    except Exception:  # the schema is still being created
        return {}


def test_sigkill_then_rerun_reaches_exactly_the_target(workdir: Path) -> None:
    db = workdir / "studies" / "optuna.db"
    kept: dict[int, float | None] = {}
    for kill_after in (10, 40, 80):  # kill at several different moments of the study
        proc = cli_subprocess(*COMMAND, cwd=workdir)
        deadline = time.monotonic() + 120
        while len(finished(db)) < kill_after and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the study ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        now = finished(db)
        assert all(now[n] == v for n, v in kept.items())  # finished trials keep their values
        kept = now
    proc = cli_subprocess(*COMMAND, cwd=workdir)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr

    study = optuna.load_study(study_name="fhs/BTCUSD", storage=f"sqlite:///{db}")
    trials = study.get_trials()
    states = [t.state for t in trials]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
    counted = [t for t in trials if t.state != TrialState.FAIL or t.number not in retried]
    assert len(counted) == TARGET
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in counted)
    assert len({t.number for t in trials}) == len(trials)
    final = {t.number: t.value for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)}
    assert all(final[n] == v for n, v in kept.items())
    # a trial that was running when its process died failed and was re-run with the params it had drawn
    for t in trials:
        if "failed_trial" in t.system_attrs:
            assert trials[t.system_attrs["failed_trial"]].params.items() <= t.params.items()
    assert "UPDATING fhs/BTCUSD" in stdout
