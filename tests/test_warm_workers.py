"""Launch through warm workers, with real processes, a real SQLite file and SIGKILL: one process runs study after
study, keeps its models, survives a failing study, is replaced when killed, and keeps its output in the logs."""

from __future__ import annotations

import gc
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest

from conftest import cli_subprocess
from orchestrator.data import write_synthetic
from orchestrator.scoring.evaluation import EncodeCache
from orchestrator.launch.worker import run
from orchestrator.models.base import ModelOptions, create
from orchestrator.settings import load_settings
from orchestrator.lifecycle.study import prepare, setup
from test_launch import assert_exactly_at_target
from test_toto import SMALL_SPACE, TINY, write_checkpoint

HEADER = re.compile(r"^(\S+) worker \d+: pid (\d+), CUDA_VISIBLE_DEVICES=(.+)$", re.MULTILINE)


def headers(log: Path) -> list[tuple[str, int, str]]:
    """(study, pid, CUDA_VISIBLE_DEVICES) of each job a worker started with this log."""
    text = log.read_text() if log.exists() else ""
    return [(study, int(pid), gpu) for study, pid, gpu in HEADER.findall(text)]


def test_one_worker_runs_every_study_and_a_failing_study_does_not_stop_it(workdir: Path) -> None:
    write_synthetic(workdir / "trainingdata", ["AAA", "BBB", "CCC"], rows=700)
    settings = load_settings({"trials": 6, "transfer": False})
    job = prepare("fhs", "BBB", settings, ModelOptions(device="auto"))
    setup(job, create("fhs", job.options))
    # the first trial of fhs/BBB warns (a value out of the space) and then fails the study (an unknown aggregate)
    optuna.load_study(study_name="fhs/BBB", storage="sqlite:///studies/optuna.db").enqueue_trial(
        {"num_samples": 3, "aggregate": "no_such_aggregate"})
    proc = cli_subprocess("launch", "--models", "fhs", "--symbols", "AAA,BBB,CCC", "--workers", "1", "--trials", "6",
                          "--no-transfer", "--save-summary", "summary.json", cwd=workdir)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stdout + stderr  # a study failed
    rows = {row["symbol"]: row for row in json.loads((workdir / "summary.json").read_text())}
    assert rows["AAA"]["status"] == rows["CCC"]["status"] == "committed"
    assert rows["AAA"]["trials"] == rows["CCC"]["trials"] == 6
    assert rows["BBB"]["status"].startswith("failed: ValueError") and "no_such_aggregate" in rows["BBB"]["status"]
    logs = {s: (workdir / "studies" / "logs" / f"fhs_{s}_0.log") for s in ("AAA", "BBB", "CCC")}
    pids = {pid for log in logs.values() for _, pid, _ in headers(log)}
    assert len(pids) == 1  # one warm process ran all three studies, the one after the failure too
    text = {s: log.read_text() for s, log in logs.items()}
    assert sum(t.count("loaded fhs in") for t in text.values()) == 1
    assert "loaded by this worker for an earlier study" in text["CCC"]
    # Python's warning, Optuna's log line and the traceback went to the failing study's log, not to the terminal
    for line in ("UserWarning: Fixed parameter num_samples with value 3 is out of range",
                 "Trial 0 failed with parameters", "Traceback (most recent call last)"):
        assert line in text["BBB"], line
        assert line not in stdout + stderr, line
    assert not HEADER.search(stdout + stderr)


def test_a_killed_worker_is_replaced_and_its_job_requeued_at_most_twice(workdir: Path) -> None:
    """fhs/AAA's worker is killed once mid-study: the job is requeued and the study ends at its target. Every worker
    that starts fhs/BBB is killed: after the third death fhs/BBB is reported failed. fhs/CCC is not disturbed."""
    write_synthetic(workdir / "trainingdata", ["AAA", "BBB", "CCC"], rows=700)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": "7"}  # a GPU id only: runs on the CPU
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "launch", "--models", "fhs", "--symbols", "AAA,BBB,CCC", "--workers",
         "1", "--trials", "12", "--device", "cpu", "--no-transfer", "--save-summary", "summary.json"],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    logs = workdir / "studies" / "logs"
    killed: set[int] = set()
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        first = headers(logs / "fhs_AAA_0.log")[:1]
        if first and first[0][1] not in killed and finished_trials(workdir, "fhs/AAA") >= 2:
            os.kill(first[0][1], signal.SIGKILL)  # mid-study, with trials in the storage
            killed.add(first[0][1])
        for _, pid, _ in headers(logs / "fhs_BBB_0.log"):
            if pid not in killed:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
        time.sleep(0.05)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stdout + stderr
    rows = {row["symbol"]: row for row in json.loads((workdir / "summary.json").read_text())}
    assert rows["AAA"]["status"] == rows["CCC"]["status"] == "committed"
    assert rows["BBB"]["status"].startswith("failed: its worker died 3 times (killed by SIGKILL)")
    assert_exactly_at_target(workdir, ["fhs/AAA", "fhs/CCC"], 12)  # the killed trial failed, retried, counted once
    aaa, bbb = headers(logs / "fhs_AAA_0.log"), headers(logs / "fhs_BBB_0.log")
    assert len(aaa) == 2 and len({pid for _, pid, _ in aaa}) == 2  # requeued once, to a new worker
    assert len(bbb) == 3 and len({pid for _, pid, _ in bbb}) == 3  # run three times, never a fourth
    every = [h for log in logs.glob("*.log") for h in headers(log)]
    assert {gpu for _, _, gpu in every} == {"7"}  # a replacement keeps its slot's GPU
    history = [json.loads(line) for line in (workdir / "configs/best/history.jsonl").read_text().splitlines()]
    assert Counter(h["study"] for h in history) == Counter(["fhs/AAA", "fhs/CCC"])


def finished_trials(root: Path, name: str) -> int:
    db = root / "studies" / "optuna.db"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as con:
            return con.execute("SELECT COUNT(*) FROM trials t JOIN studies s ON s.study_id = t.study_id "
                               "WHERE s.study_name = ? AND t.state IN ('COMPLETE', 'PRUNED', 'FAIL')",
                               (name,)).fetchone()[0]
    except sqlite3.Error:
        return 0  # the schema is being created


def test_a_worker_keeps_each_model_it_loaded_and_releases_each_studys_cache(
    workdir: Path, request: pytest.FixtureRequest
) -> None:
    # pytest's log capture keeps every record, a failed trial's traceback and the failed study's frames with it;
    # a worker's log handler only writes them
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    request.addfinalizer(lambda: optuna.logging.set_verbosity(verbosity))
    weights = write_checkpoint(workdir / "toto", TINY)
    (workdir / "toto.toml").write_text(SMALL_SPACE)
    settings = load_settings({"trials": 3, "eval_runs": 1, "confirm_runs": 2, "transfer": False})
    toto = ModelOptions(device="cpu", weights=str(weights))
    jobs = [prepare("fhs", "BTCUSD", settings, ModelOptions(device="cpu")),
            prepare("toto", "BTCUSD", settings, toto, workdir / "toto.toml"),
            prepare("fhs", "ETHUSD", settings, ModelOptions(device="cpu")),
            prepare("toto", "ETHUSD", settings, toto, workdir / "toto.toml")]
    for job in jobs:
        setup(job, create(job.model, job.options))
    forecasters: dict = {}
    loaded = []
    for job in jobs:
        assert run(job, 0, forecasters) is None
        loaded.append(forecasters[job.model, job.options])
        assert not [c for c in gc.get_objects() if type(c) is EncodeCache and len(c)]  # released at the end
    assert len(forecasters) == 2 and loaded[0] is loaded[2] and loaded[1] is loaded[3]
    # a study that fails after its cache filled (its second trial): reported, and its cache released too
    write_synthetic(workdir / "trainingdata", ["XXX"], rows=700)
    failing = prepare("fhs", "XXX", settings, ModelOptions(device="cpu"))
    setup(failing, create("fhs", failing.options))
    study = optuna.load_study(study_name="fhs/XXX", storage="sqlite:///studies/optuna.db")
    study.enqueue_trial({"context_length": 64, "ewma_halflife": 10.0, "drift": False, "num_samples": 64,
                         "aggregate": "mean"})
    study.enqueue_trial({"aggregate": "no_such_aggregate"})
    assert "no_such_aggregate" in run(failing, 0, forecasters)
    assert not [c for c in gc.get_objects() if type(c) is EncodeCache and len(c)]
    storage = "sqlite:///studies/optuna.db"
    for job in jobs:
        study = optuna.load_study(study_name=job.name, storage=storage)
        assert len(study.trials) == 3 and study.user_attrs["decision"]["committed"]


WRITES = """
import os, sys, warnings
import optuna
from orchestrator.launch.worker import log_to
optuna.logging.set_verbosity(optuna.logging.WARNING)
log_to(__import__("pathlib").Path(sys.argv[1]))
print("a print")
warnings.warn("a Python warning")
optuna.logging.get_logger("optuna.study").warning("an Optuna warning")
os.write(2, b"written to file descriptor 2\\n")
raise RuntimeError("a traceback")
"""


def test_everything_a_worker_writes_goes_to_its_log(tmp_path: Path) -> None:
    """Optuna's handler was bound to stderr at import, before the worker chose its log: it still lands there."""
    log = tmp_path / "job.log"
    result = subprocess.run([sys.executable, "-c", WRITES, str(log)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stdout == "" and result.stderr == ""
    text = log.read_text()
    for line in ("a print", "UserWarning: a Python warning", "an Optuna warning", "written to file descriptor 2",
                 "RuntimeError: a traceback"):
        assert line in text, line


def test_a_mixed_launch_takes_weights_and_spaces_per_model(workdir: Path, tmp_path: Path) -> None:
    """`--models fhs,toto` with a local Toto checkpoint: `--weights toto=DIR --space toto=FILE` reach only Toto (one
    value for every model would hand Toto's weights and space to fhs), and one warm worker runs both models."""
    weights = write_checkpoint(tmp_path / "toto", TINY)
    (workdir / "toto.toml").write_text(SMALL_SPACE)
    common = ("launch", "--models", "fhs,toto", "--symbols", "BTCUSD", "--workers", "1", "--trials", "3",
              "--eval-runs", "1", "--confirm-runs", "1", "--device", "cpu", "--no-compile", "--no-transfer")
    bad = cli_subprocess(*common, "--weights", f"kronos={weights}", cwd=workdir)
    _, stderr = bad.communicate(timeout=300)
    assert bad.returncode == 2 and "--weights" in stderr and "MODEL=VALUE for one of --models fhs,toto" in stderr
    assert not (workdir / "studies").exists()
    proc = cli_subprocess(*common, "--weights", f"toto={weights}", "--space", "toto=toto.toml",
                          "--save-summary", "summary.json", cwd=workdir)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stdout + stderr
    rows = {row["model"]: row for row in json.loads((workdir / "summary.json").read_text())}
    assert rows["fhs"]["status"] == rows["toto"]["status"] == "committed"
    storage = "sqlite:///studies/optuna.db"
    toto = optuna.load_study(study_name="toto/BTCUSD", storage=storage)
    assert toto.user_attrs["options"]["weights"] == str(weights)
    assert {t.params["context_length"] for t in toto.trials} <= {64, 128}  # the given space, not the shipped one
    fhs = optuna.load_study(study_name="fhs/BTCUSD", storage=storage)
    assert fhs.user_attrs["options"]["weights"] is None and "ewma_halflife" in fhs.trials[0].params
    pids = {pid for log in (workdir / "studies" / "logs").glob("*.log") for _, pid, _ in headers(log)}
    assert len(pids) == 1  # one warm worker ran both models
