"""The nightly re-tune through the CLI: bars appended to a file roll its study forward (archived, warm-started from
the archive, decided again); changed earlier bars are refused with nothing written; a study killed mid-run then
grown is rolled forward by `resume`; a study from before the roll-forward is recognised by its last decision."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from conftest import cli, cli_subprocess, trial_rows
from orchestrator.data import synthetic_ohlcv
from orchestrator.storages.counts import counted

DB = Path("studies/optuna.db")
STORAGE = f"sqlite:///{DB}"
HISTORY = Path("configs/best/history.jsonl")
ROLLED = "{name}: 60 new bars since the last study (earlier bars unchanged): archived it as {name}@"
WINDOWS = ("--val-windows", "60", "--test-windows", "20")  # fewer windows than the defaults: quicker trials


def write_bars(symbol: str, rows: int, scale_from: int | None = None) -> None:
    """The first `rows` of the symbol's generated bars to data/<symbol>.csv; prices from row `scale_from` on
    re-adjusted (x 0.98), as after a dividend adjustment."""
    frame = synthetic_ohlcv(symbol, 700).iloc[:rows].copy()
    if scale_from is not None:
        frame.loc[scale_from:, ["open", "high", "low", "close"]] *= 0.98
    Path("data").mkdir(exist_ok=True)
    frame.to_csv(f"data/{symbol}.csv", index=False, float_format="%.6f")


def optimize(symbol: str, *flags: str):
    return cli("optimize", "--model", "fhs", "--symbol", symbol, "--data-dir", "data", *WINDOWS, *flags)


def names() -> set[str]:
    return set(optuna.get_all_study_names(STORAGE))


def history() -> list[dict]:
    return [json.loads(line) for line in HISTORY.read_text().splitlines()]


def written() -> dict[str, str]:
    """Every file under studies/ and configs/best/ with its sha256."""
    files = [p for root in ("studies", "configs/best") for p in Path(root).rglob("*") if p.is_file()]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_grown_file_rolls_forward_warm_started_and_decides_again(workdir: Path) -> None:
    write_bars("AAA", 640)
    assert optimize("AAA", "--trials", "12", "--eval-runs", "2").exit_code == 0
    incumbent = json.loads(Path("configs/best/fhs/AAA.json").read_text())["params"]
    write_bars("AAA", 700)  # 60 bars appended

    result = optimize("AAA", "--trials", "10")
    assert result.exit_code == 0, result.output
    assert ROLLED.format(name="fhs/AAA") in result.stdout
    assert ("new study on 700 rows, warm-started with its 5 best configs, kept its recorded settings except "
            "--trials 10 (was 12)\n") in result.stdout
    (archived,) = names() - {"fhs/AAA"}
    assert archived.startswith("fhs/AAA@") and f"archived it as {archived}," in result.stdout

    old = optuna.load_study(study_name=archived, storage=STORAGE)
    assert len(counted(old.get_trials())) == 12 and old.user_attrs["data_rows"] == 640
    new = optuna.load_study(study_name="fhs/AAA", storage=STORAGE)
    attrs = new.user_attrs
    # the recorded --eval-runs 2 carries over; --trials 10 is a flag
    assert (attrs["data_rows"], attrs["target"], attrs["eval_runs"], attrs["previous_study"]) == (700, 10, 2, archived)
    trials = new.get_trials()
    assert trials[0].user_attrs["warm_start"] == "incumbent" and trials[0].params == incumbent
    warm = trials[1:6]
    assert all(t.user_attrs["warm_start"] == "previous_study" for t in warm)
    assert trials[6].user_attrs.get("warm_start") is None
    # the archived study's 5 best distinct configs other than the incumbent, best first
    sources = [old.trials[t.user_attrs["previous_trial"]] for t in warm]
    assert [s.params for s in sources] == [t.params for t in warm]
    values = [s.value for s in sources]
    assert values == sorted(values)
    chosen = [incumbent, *(s.params for s in sources)]
    assert not [t for t in old.get_trials(states=(TrialState.COMPLETE,)) if t.value < values[-1] and t.params not in chosen]

    decisions = history()
    assert len(decisions) == 2 and decisions[0]["study_uid"] != decisions[1]["study_uid"] == attrs["uid"]
    assert (decisions[0]["data"]["rows"], decisions[1]["data"]["rows"]) == (640, 700)

    listed = cli("status", "--json")
    assert [row["study"] for row in json.loads(listed.stdout)] == ["fhs/AAA"]
    every = cli("status", "--json", "--all")
    assert {row["study"] for row in json.loads(every.stdout)} == {"fhs/AAA", archived}


def test_changed_earlier_bars_are_refused_and_nothing_is_written(workdir: Path) -> None:
    for symbol in ("AAA", "BBB"):
        write_bars(symbol, 640)
        assert optimize(symbol, "--trials", "4").exit_code == 0
    write_bars("AAA", 700)  # grown: would roll forward, but BBB's refusal stops the whole launch first
    write_bars("BBB", 700, scale_from=300)  # bar 301 on re-adjusted, and 60 bars appended
    before = written()

    launched = cli("launch", "--models", "fhs", "--symbols", "AAA,BBB", "--data-dir", "data", "--trials", "4")
    assert launched.exit_code == 2
    message = ("error: the earlier bars of data/BBB.csv changed since study fhs/BBB (re-adjusted prices, or another "
               "file?): pass --fresh to start a new study on them (the first change is among bars 301-310, "
               "2023-10-28 to 2023-11-06)\n")
    assert launched.stderr == message
    assert optimize("BBB").stderr == message
    write_bars("BBB", 600)
    shrunk = optimize("BBB")
    assert shrunk.exit_code == 2 and "data/BBB.csv now has 600 bars, fewer than the 640 study fhs/BBB" in shrunk.stderr
    assert written() == before and names() == {"fhs/AAA", "fhs/BBB"}


def test_killed_mid_run_then_grown_then_resume_rolls_forward(workdir: Path) -> None:
    write_bars("AAA", 640)
    proc = cli_subprocess("optimize", "--model", "fhs", "--symbol", "AAA", "--data-dir", "data", *WINDOWS,
                          "--trials", "20", cwd=workdir)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if sum(state in ("COMPLETE", "PRUNED") for _, state, _ in trial_rows(DB)) >= 4:
                break
        except sqlite3.Error:  # the schema is still being created
            pass
        time.sleep(0.05)
    assert proc.poll() is None, "the study ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = {t.number: (t.state, t.value) for t in optuna.load_study(study_name="fhs/AAA", storage=STORAGE).trials}
    write_bars("AAA", 700)

    result = cli("resume")
    assert result.exit_code == 0, result.output
    assert ROLLED.format(name="fhs/AAA") in result.stdout and "new study on 700 rows" in result.stdout
    (archived,) = names() - {"fhs/AAA"}
    old = optuna.load_study(study_name=archived, storage=STORAGE).trials
    for t in old:  # finished trials kept as they were; the one running when killed is failed, not left RUNNING
        assert t.state == killed[t.number][0] or (t.state, killed[t.number][0]) == (TrialState.FAIL, TrialState.RUNNING)
        assert t.value == killed[t.number][1] or t.state == TrialState.FAIL
    new = optuna.load_study(study_name="fhs/AAA", storage=STORAGE)
    assert new.user_attrs["target"] == 20 and len(counted(new.get_trials())) == 20  # the recorded settings
    assert (new.user_attrs["val_windows"], new.user_attrs["data_rows"]) == (60, 700)
    assert [d["study_uid"] for d in history()] == [new.user_attrs["uid"]]


def make_it_old(name: str) -> None:
    """Drop what the study records to recognise its bars, as studies made before the roll-forward lack it."""
    with sqlite3.connect(DB) as con:
        (study_id,) = con.execute("SELECT study_id FROM studies WHERE study_name = ?", (name,)).fetchone()
        con.executemany("DELETE FROM study_user_attributes WHERE study_id = ? AND key = ?",
                        [(study_id, key) for key in ("data_rows", "bars_sha256", "bars_blocks", "previous_study")])


def test_a_study_from_before_is_rolled_forward_by_its_last_decision(workdir: Path) -> None:
    for symbol in ("AAA", "BBB"):
        write_bars(symbol, 640)
        assert optimize(symbol, "--trials", "4").exit_code == 0
        make_it_old(f"fhs/{symbol}")
    uid = {d["symbol"]: d["study_uid"] for d in history()}
    # a later kind of history line is skipped; BBB's decision is gone (its history was moved away)
    lines = [json.dumps({"kind": "note", "study_uid": uid["AAA"], "data": {"rows": 1, "bars_sha256": "x"}}),
             *(json.dumps(d) for d in history() if d["symbol"] == "AAA")]
    HISTORY.write_text("\n".join(lines) + "\n")
    for symbol in ("AAA", "BBB"):
        write_bars(symbol, 700)

    result = optimize("AAA", "--trials", "4")
    assert result.exit_code == 0, result.output
    assert ROLLED.format(name="fhs/AAA") in result.stdout
    refused = optimize("BBB", "--trials", "4")
    assert refused.exit_code == 2
    assert refused.stderr == (
        "error: data/BBB.csv changed since study fhs/BBB, which an earlier version of orchestrator created without "
        "recording its bars (and it has no decision in configs/best/history.jsonl to recognise them by), so appended "
        "bars cannot be told from changed ones: pass --fresh to archive it and start a new study\n")
