"""Parallel studies with real processes and a real SQLite file: kills, resume, contention, commit races, guards."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
from optuna.trial import TrialState

from conftest import cli, cli_subprocess
from orchestrator.data import write_synthetic
from orchestrator.models.base import ModelOptions, create
from orchestrator.storages.counts import counted
from orchestrator.settings import load_settings
from orchestrator.lifecycle.study import prepare, setup, work

SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]
STORAGE = "sqlite:///studies/optuna.db"


def studies(root: Path) -> dict[str, list[optuna.trial.FrozenTrial]]:
    storage = f"sqlite:///{root}/studies/optuna.db"
    return {s.study_name: optuna.load_study(study_name=s.study_name, storage=storage).get_trials()
            for s in optuna.get_all_study_summaries(storage)}


def trials_in_db(root: Path) -> int:
    try:
        with sqlite3.connect(root / "studies" / "optuna.db") as con:
            return con.execute("SELECT COUNT(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED')").fetchone()[0]
    except sqlite3.Error:
        return 0


def assert_exactly_at_target(root: Path, names: list[str], target: int) -> None:
    found = studies(root)
    assert set(names) <= set(found)
    for name in names:
        trials = found[name]
        states = [t.state for t in trials]
        assert TrialState.RUNNING not in states and TrialState.WAITING not in states, name
        assert len(counted(trials)) == target, name
        assert len({t.number for t in trials}) == len(trials), name


def test_launch_killed_at_several_moments_then_resume(workdir: Path) -> None:
    write_synthetic(workdir / "trainingdata", SYMBOLS, rows=700)
    rng = random.Random(5)
    command = ("launch", "--models", "fhs", "--symbols", ",".join(SYMBOLS), "--workers", "2", "--trials", "40")
    for round_ in range(3):
        args = command if round_ == 0 else ("resume", "--workers", "2")
        proc = cli_subprocess(*args, cwd=workdir, start_new_session=True)
        seen = trials_in_db(workdir)
        deadline = time.monotonic() + 120
        while trials_in_db(workdir) <= seen and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # workers are running: the studies exist
        time.sleep(rng.uniform(0.0, 3.0))  # a random moment after that
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    proc = cli_subprocess("resume", "--workers", "2", "--save-summary", "summary.json", cwd=workdir)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stdout + stderr
    names = [f"fhs/{s}" for s in SYMBOLS]
    assert_exactly_at_target(workdir, names, 40)
    for symbol in SYMBOLS:
        record = json.loads((workdir / "configs" / "best" / "fhs" / f"{symbol}.json").read_text())
        assert record["symbol"] == symbol
    history = [json.loads(line) for line in (workdir / "configs" / "best" / "history.jsonl").read_text().splitlines()]
    assert Counter(h["study"] for h in history) == Counter(names)  # each study decided exactly once
    summary = json.loads((workdir / "summary.json").read_text())
    assert {row["symbol"]: row["status"] for row in summary} == {s: "committed" for s in SYMBOLS} or \
        all(row["trials"] == 40 for row in summary)


def test_eight_processes_on_one_sqlite_file(workdir: Path) -> None:
    write_synthetic(workdir / "trainingdata", SYMBOLS, rows=700)
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "launch", "--models", "fhs", "--symbols", ",".join(SYMBOLS),
         "--workers", "8", "--jobs-per-study", "2", "--trials", "30"],
        cwd=workdir, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    logs = "".join(p.read_text() for p in (workdir / "studies" / "logs").glob("*.log"))
    assert "database is locked" not in logs
    assert "Traceback" not in logs  # Optuna logs each failed trial with its traceback in the worker's log: none failed
    assert len(list((workdir / "studies" / "logs").glob("*.log"))) == 8
    found = studies(workdir)
    for name in [f"fhs/{s}" for s in SYMBOLS]:
        states = [t.state for t in found[name]]
        assert set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}, name  # no FAIL, none RUNNING or WAITING
        assert 30 <= len(states) <= 31, name  # two workers may both take the last trial: one more COMPLETE


BAD_SPACE = """
[context_length]
type = "int"
low = 64
high = 64
[ewma_halflife]
type = "float"
low = 3.0
high = 3.0
[num_samples]
type = "categorical"
choices = [64]
[aggregate]
type = "categorical"
choices = ["quantile_0.1"]
"""


def test_two_processes_committing_the_same_symbol_are_serialised(workdir: Path) -> None:
    (workdir / "bad.toml").write_text(BAD_SPACE)
    common = ("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "12")
    good = cli_subprocess(*common, "--storage", "sqlite:///good.db", cwd=workdir)
    bad = cli_subprocess(*common, "--storage", "sqlite:///bad.db", "--space", "bad.toml", cwd=workdir)
    for proc in (good, bad):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, out + err
    first, second = [json.loads(line) for line in (workdir / "configs/best/history.jsonl").read_text().splitlines()]
    assert first["incumbent"] is None and second["incumbent"] is not None  # the second saw the first's commit
    assert second["incumbent"]["params"] == first["params"]
    winner = min((first, second), key=lambda h: h["candidate"]["validation"]["mae"])
    record = json.loads((workdir / "configs/best/fhs/BTCUSD.json").read_text())
    assert record["params"] == winner["params"] and record["params"]["aggregate"] != "quantile_0.1"


def test_a_hanging_trial_is_stopped_and_the_study_goes_on(workdir: Path) -> None:
    settings = load_settings({"trials": 10, "timeout_min_seconds": 1.0, "timeout_factor": 2.0, "transfer": False})
    job = prepare("fhs", "BTCUSD", settings, ModelOptions(device="cpu"))
    setup(job, create("fhs", job.options))
    study = optuna.load_study(study_name=job.name, storage=STORAGE)
    base = {"context_length": 64, "ewma_halflife": 10.0, "drift": False, "aggregate": "median"}
    for n in (64, 80, 96, 112, 128, 144):
        study.enqueue_trial({**base, "num_samples": n})
    study.enqueue_trial({**base, "num_samples": 3_000_000})  # out of the space on purpose: takes far too long
    started = time.monotonic()
    outcome = work(job)
    trials = optuna.load_study(study_name=job.name, storage=STORAGE).get_trials()
    hung = trials[6]
    assert hung.state == TrialState.FAIL and "stopped after" in hung.user_attrs["fail_reason"]
    assert hung.duration.total_seconds() < 30
    assert [t.state for t in trials[7:]].count(TrialState.FAIL) == 0 and outcome.counts.finished == 10
    assert time.monotonic() - started < 120


def test_budget_stops_a_study_and_it_still_decides(workdir: Path) -> None:
    result = cli("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "100000", "--budget", "3")
    assert result.exit_code == 0, result.output
    assert "stopped: budget" in result.stdout and "UPDATING fhs/BTCUSD" in result.stdout


def test_launch_with_missing_weights_writes_nothing(workdir: Path) -> None:
    result = cli("launch", "--models", "toto", "--symbols", "BTCUSD", "--weights", str(workdir / "no-such-dir"),
                 "--space", str(Path(__file__).resolve().parent.parent / "configs" / "spaces" / "toto.toml"))
    assert result.exit_code == 2 and "--weights DIR" in result.stderr
    assert not (workdir / "studies").exists()


def test_each_worker_slot_gets_its_own_gpu(workdir: Path) -> None:
    write_synthetic(workdir / "trainingdata", SYMBOLS[:2], rows=700)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "3,5"}  # two GPUs visible (ids only: the studies run on the CPU)
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "launch", "--models", "fhs", "--symbols", ",".join(SYMBOLS[:2]),
         "--workers", "2", "--trials", "3", "--device", "cpu"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    firsts = [p.read_text().splitlines()[0] for p in sorted((workdir / "studies" / "logs").glob("*.log"))]
    assert sorted(line.rsplit("=", 1)[1] for line in firsts) == ["3", "5"]  # not every worker on GPU 0
