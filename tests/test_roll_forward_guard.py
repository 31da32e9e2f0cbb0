"""One archive per roll-forward, whoever runs it: interleavings forced with the test hook (ORCHESTRATOR_TEST_PAUSE)
between the check and the archive and between the copy and the delete, with real processes on SQLite and
PostgreSQL; and earlier bars rescaled by a dividend or split adjustment keep the lineage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from conftest import cli
from orchestrator.data import Series, load_series, synthetic_ohlcv
from orchestrator.storages.counts import counted
from test_postgres import postgres_url  # noqa: F401 (the fixture: a throwaway PostgreSQL server)

STORAGE = "sqlite:///studies/optuna.db"
HISTORY = Path("configs/best/history.jsonl")
PAUSE = "ORCHESTRATOR_TEST_PAUSE"  # the test hook (lifecycle.lineage.pause_for_tests)
WINDOWS = ("--val-windows", "40", "--test-windows", "10", "--eval-runs", "2", "--confirm-runs", "4")


def write_bars(rows: int, factor: float = 1.0, decimals: int = 6, edit: int | None = None) -> None:
    """The first `rows` of AAA's generated bars to data/AAA.csv; the first 640 prices times `factor` (a dividend
    adjustment), written with `decimals`; with `edit`, that bar's close alone 1% higher."""
    frame = synthetic_ohlcv("AAA", 700).iloc[:rows].copy()
    frame.loc[:639, ["open", "high", "low", "close"]] *= factor
    if edit is not None:
        frame.loc[edit, "close"] *= 1.01
    Path("data").mkdir(exist_ok=True)
    frame.to_csv("data/AAA.csv", index=False, float_format=f"%.{decimals}f")


def command(name: str, storage: str) -> list[str]:
    return [name, "--data-dir", "data", "--trials", "4", "--storage", storage, *WINDOWS,
            *(["--model", "fhs", "--symbol", "AAA"] if name == "optimize" else ["--models", "fhs", "--symbols", "AAA"])]


def start(args: list[str], pause: str | None = None) -> subprocess.Popen:
    """The CLI in a subprocess; `pause` (`POINT:FILE`) stops it at POINT until FILE exists."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", PAUSE: pause or ""}
    return subprocess.Popen([sys.executable, "-m", "orchestrator", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def reached(flag: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while not Path(f"{flag}.reached").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert Path(f"{flag}.reached").exists(), f"the pause point was not reached: {proc.communicate()}"


def finished(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "Traceback" not in err, out + err
    return out


def studies(storage: str) -> dict[str, optuna.Study]:
    return {name: optuna.load_study(study_name=name, storage=storage) for name in optuna.get_all_study_names(storage)}


def archives(storage: str) -> list[str]:
    return sorted(n for n in optuna.get_all_study_names(storage) if n.startswith("fhs/AAA@"))


def decisions() -> list[dict]:
    return [e for e in map(json.loads, HISTORY.read_text().splitlines()) if e.get("kind", "decision") == "decision"]


def race(storage: str, first: str, second: str, tmp: Path) -> tuple[str, str]:
    """`second` checks the grown study (passes), then `first` takes the guard and stops before archiving; `second`
    goes on to the guard, then `first` archives and creates the new study: `second` must join it."""
    late, early = Path(f"{tmp}-late"), Path(f"{tmp}-early")
    b = start(command(second, storage), f"guard:{late}")
    reached(late, b)  # b saw the study as it was before the roll-forward
    a = start(command(first, storage), f"checked:{early}")
    reached(early, a)
    late.touch()
    time.sleep(0.5)  # b waits on the guard
    early.touch()
    return finished(a), finished(b)


def check_night(storage: str, night: int, before: dict[str, int]) -> dict[str, int]:
    """One more archive, holding every trial the study had; one decision for the new study; (name -> trials)."""
    now = studies(storage)
    assert len(archives(storage)) == night - 1
    newest = archives(storage)[-1]
    assert len(now[newest].trials) == before["fhs/AAA"]  # nothing lost, nothing copied twice
    assert now[newest].user_attrs["archived_uid"] == now[newest].user_attrs["uid"]
    current = now["fhs/AAA"]
    assert current.user_attrs["previous_study"] == newest and len(counted(current.trials)) >= 4
    assert [d["study_uid"] for d in decisions()].count(current.user_attrs["uid"]) == 1
    assert len(decisions()) == night
    return {name: len(study.trials) for name, study in now.items()}


def test_two_processes_roll_forward_once_on_sqlite(workdir: Path, tmp_path: Path) -> None:
    write_bars(600)
    assert cli(*command("optimize", STORAGE)).exit_code == 0
    trials = {"fhs/AAA": len(optuna.load_study(study_name="fhs/AAA", storage=STORAGE).trials)}
    write_bars(640)  # night 2: two `optimize`
    race(STORAGE, "optimize", "optimize", tmp_path / "2")
    trials = check_night(STORAGE, 2, trials)
    write_bars(660)  # night 3: `launch` beside `optimize`
    race(STORAGE, "launch", "optimize", tmp_path / "3")
    trials = check_night(STORAGE, 3, trials)

    write_bars(680)  # night 4: killed between the copy and the delete, then run again
    copied = tmp_path / "copied"
    killed = start(command("optimize", STORAGE), f"copied:{copied}")
    reached(copied, killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert len(archives(STORAGE)) == 3 and "fhs/AAA" in optuna.get_all_study_names(STORAGE)  # both left
    result = cli(*command("optimize", STORAGE))
    assert result.exit_code == 0, result.output
    check_night(STORAGE, 4, trials)


def test_two_processes_roll_forward_once_on_postgres(workdir: Path, tmp_path: Path, postgres_url: str) -> None:
    write_bars(600)
    assert cli(*command("optimize", postgres_url)).exit_code == 0
    trials = {"fhs/AAA": len(optuna.load_study(study_name="fhs/AAA", storage=postgres_url).trials)}
    write_bars(640)
    race(postgres_url, "optimize", "optimize", tmp_path)
    check_night(postgres_url, 2, trials)

    # a worker between two trials when the study is archived under it stops with one line
    told = tmp_path / "told"
    worker = start(["worker", "--study", "fhs/AAA", "--storage", postgres_url, "--trials", "50"], f"told:{told}")
    reached(told, worker)
    write_bars(660)
    assert cli(*command("optimize", postgres_url)).exit_code == 0
    told.touch()
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 2 and err.startswith("error: study fhs/AAA was archived under this process")
    assert len(err.splitlines()) == 1, err
    assert len(archives(postgres_url)) == 2


def test_trials_running_in_another_process_are_not_archived_under_it(workdir: Path) -> None:
    write_bars(600)
    assert cli(*command("optimize", STORAGE)).exit_code == 0
    storage = optuna.storages.RDBStorage(STORAGE)
    study = optuna.load_study(study_name="fhs/AAA", storage=storage)
    trial = study.ask()  # RUNNING in this process, its heartbeat kept fresh as a worker's is
    count, stop = len(study.trials), threading.Event()

    def heartbeat() -> None:
        while not stop.is_set():
            storage.record_heartbeat(trial._trial_id)
            stop.wait(0.5)

    beat = threading.Thread(target=heartbeat)
    beat.start()
    write_bars(640)
    try:
        left = cli(*command("optimize", STORAGE))
    finally:
        stop.set()
        beat.join()
    assert left.exit_code == 2 and left.stderr == (
        f"error: study fhs/AAA: trial(s) {trial.number} still running in other processes (fresh heartbeats after 3 s), "
        "so it is not archived: it is left to finish; run again when they are done (`orchestrator status`)\n")
    assert archives(STORAGE) == [] and len(study.trials) == count
    study.tell(trial, 0.5)
    assert cli(*command("optimize", STORAGE)).exit_code == 0
    (archived,) = archives(STORAGE)
    kept = optuna.load_study(study_name=archived, storage=STORAGE).trials[trial.number]
    assert (kept.state, kept.value) == (optuna.trial.TrialState.COMPLETE, 0.5)


def test_dividend_adjusted_file_rolls_forward_and_earlier_decisions_still_score(workdir: Path) -> None:
    write_bars(640, decimals=2)
    assert cli(*command("optimize", STORAGE)).exit_code == 0
    write_bars(700, factor=0.9873, decimals=2)  # a dividend: every earlier price x 0.9873, written at 2 decimals

    result = cli(*command("optimize", STORAGE))
    assert result.exit_code == 0, result.output
    assert ("fhs/AAA: 60 new bars since the last study (earlier bars rescaled by 0.9873 (a dividend or split "
            "adjustment; returns unchanged)): archived it as fhs/AAA@") in result.stdout
    scored = cli("scorecard", "--json", "--runs", "2")
    assert scored.exit_code == 0, scored.output
    rows = json.loads(scored.stdout)
    decided = [d["time"] for d in decisions()]
    assert [r["decided"] for r in rows["decisions"]] == decided[:1] and rows["decisions"][0]["bars"] == 60
    assert rows["problems"] == []
    # another model's latest decision (here: night 2's line taken out) saw the bars before the adjustment
    lines = HISTORY.read_text().splitlines()
    HISTORY.write_text("\n".join(line for line in lines if json.loads(line).get("time") != decided[1]) + "\n")
    board = cli("leaderboard", "--runs", "2")
    # night 1's bars are recognised through the adjustment (else: "rewritten or re-adjusted" on stderr); night 2
    # kept the config, so its held-out bars start after night 2's validation windows
    assert board.stderr == "" and "AAA: 10 windows after the last validation window" in board.stdout, board.output

    write_bars(700, factor=0.9873, decimals=2, edit=300)  # one earlier bar edited besides: refused
    before = {p: p.read_bytes() for p in (HISTORY, Path("studies/optuna.db"))}
    refused = cli(*command("optimize", STORAGE))
    assert refused.exit_code == 2
    assert refused.stderr.startswith("error: the earlier bars of data/AAA.csv changed since study fhs/AAA")
    assert {p: p.read_bytes() for p in before} == before


def series_of(frame: pd.DataFrame, decimals: int, tmp: Path) -> Series:
    frame.to_csv(tmp / "AAA.csv", index=False, float_format=f"%.{decimals}f")
    return load_series(tmp, "AAA", ("open", "high", "low", "close"), ("volume",))


def test_a_split_rescales_volume_too_and_other_changes_are_not_a_rescale(tmp_path: Path) -> None:
    from orchestrator.data import Rescale, bars_record, rescaled  # (imported here: this file also runs on main)

    bars = synthetic_ohlcv("AAA", 300)
    record = bars_record(series_of(bars.iloc[:250], 2, tmp_path))
    split = bars.copy()
    split.loc[:249, ["open", "high", "low", "close"]] /= 2  # a 2:1 split: prices halved, volume doubled
    split.loc[:249, "volume"] *= 2
    assert rescaled(series_of(split, 2, tmp_path), record) == Rescale(pytest.approx(0.5, abs=1e-4), 2.0)
    assert rescaled(series_of(bars, 2, tmp_path), record) == Rescale(1.0)  # rewritten, the same bars
    other = split.copy()
    other.loc[:249, "volume"] *= 1.0 + 0.01 * (other.index[:250] % 2)  # volume: not one factor
    assert rescaled(series_of(other, 2, tmp_path), record) is None
    halfway = bars.copy()
    halfway.loc[100:249, ["open", "high", "low", "close"]] *= 0.98  # only the bars from 101 on
    assert rescaled(series_of(halfway, 2, tmp_path), record) is None
    open_only = bars.copy()
    open_only.loc[:249, "open"] *= 0.98  # one column
    assert rescaled(series_of(open_only, 2, tmp_path), record) is None

