"""One regression test (or a few) per case of issue 27, "Defects from a review and a newcomer's run"; each fails on
the code before the fix (b8bf852).

They drive the real CLI, real SQLite, PostgreSQL and Optuna storage, real files and real processes; nothing of
SQLite, PostgreSQL, Optuna or the OS is mocked (case 6 watches `os.fsync` calls and lets them through).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from conftest import REPO
from orchestrator.cli import app
from orchestrator.data import load_series, write_synthetic
from orchestrator.decisions import records
from orchestrator.decisions.leaderboard import tables as leaderboard_tables
from orchestrator.decisions.records import read_history, write_atomic
from orchestrator.decisions.scorecard import tables as scorecard_tables
from orchestrator.errors import BadInput
from orchestrator.views.summary import decision_text
from test_postgres import postgres_url  # noqa: F401 (the suite's PostgreSQL server, as a fixture)

STORAGE = "sqlite:///studies/optuna.db"
BEST = Path("configs/best/fhs/BTCUSD.json")
FHS = ("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "2", "--eval-runs", "1", "--confirm-runs", "1")
PASSWORD = "S3cretPW"


def run_cli(*args: str):
    """The CLI in-process; an unexpected exception becomes exit 1 (as in a shell)."""
    return CliRunner().invoke(app, list(args))


def shown(result) -> str:
    return f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}\n{result.exception!r}"


def subprocess_env(**extra: str) -> dict[str, str]:
    """Children import the package of the tree under test (not whatever the venv's editable install points at)."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO), **extra}


def refusal(tmp_path: Path, text: str, **kwargs) -> str:
    (tmp_path / "X.csv").write_text(text)
    with pytest.raises(BadInput) as caught:
        load_series(tmp_path, "X", **kwargs)
    return str(caught.value)


# 1 ------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["Date\tClose\n2024-01-01\t999\n2024-01-02\t1,000\n",
                                  'Date,Close\n2024-01-01,"999"\n2024-01-02,"1,000"\n'])
def test_a_thousands_separator_alone_is_refused_with_the_line_and_the_setting(tmp_path: Path, text: str) -> None:
    """Case 1: '1,000' was read as 1.0 with a decimal comma (a return of -99.9%), silently; nothing in the file says
    which it is, so it is refused until --decimal says."""
    message = refusal(tmp_path, text)
    assert "line 3, column 'Close': value '1,000' reads as a thousands separator or a decimal comma" in message
    assert "--decimal ." in message and "--decimal ," in message and "--fresh" in message
    assert load_series(tmp_path, "X", decimal=".").close.tolist() == [999.0, 1000.0]
    assert load_series(tmp_path, "X", decimal=",").close.tolist() == [999.0, 1.0]


def test_numbers_are_read_as_written_in_us_and_european_files(tmp_path: Path) -> None:
    """Case 1: a quoted US export with decimal points and thousands separators was refused ("'900.85' is not a number
    in this file's format (decimal comma ...)"), and '1,000.50' was no number."""
    export = ('Date,Open,High,Low,Close,Volume\n2020-01-01,"900.85","905.00","899.10","901.25","900,850"\n'
              '2020-01-02,"1,000.50","1,010.00","999.00","1,005.75","1,200,000"\n')
    (tmp_path / "US.csv").write_text(export)
    us = load_series(tmp_path, "US", optional=("open", "volume"))
    assert us.close.tolist() == [901.25, 1005.75] and us.frame["open"].tolist() == [900.85, 1000.5]
    assert us.frame["volume"].tolist() == [900850.0, 1200000.0] and us.notes == []
    (tmp_path / "USD.csv").write_text('Date,Close\n2024-01-01,"1,000.50"\n2024-01-02,999\n')
    assert load_series(tmp_path, "USD").close.tolist() == [1000.5, 999.0]
    (tmp_path / "EU.csv").write_text("Date;Close\n2024-01-01;1.000,50\n2024-01-02;999\n")
    eu = load_series(tmp_path, "EU")
    assert eu.close.tolist() == [1000.5, 999.0] and "decimal comma" in eu.notes[0]
    # the first number that shows its mark decides; a later one in the other format is refused with both lines
    message = refusal(tmp_path, "Date,Close\n2024-01-01,\"1,5\"\n2024-01-02,1.5\n")
    assert "line 3, column 'Close': value '1.5' is not a number in this file's format (decimal comma" in message
    assert "the decimal mark is that of line 2, column 'Close': value '1,5' (--decimal sets it)" in message


def test_decimal_is_a_setting_recorded_with_the_study_and_its_decisions(workdir: Path) -> None:
    """Case 1 through the CLI: `optimize` committed a config on closes read 1000x too small; now it refuses (exit 2,
    nothing written), `--decimal .` reads the file, and resume and the scorecard read it alike."""
    series = load_series(Path("trainingdata"), "BTCUSD")
    rows = [f"{t:%Y-%m-%d}\t{round(c * 1000):,}" for t, c in zip(series.frame["timestamp"], series.close)]
    assert all(len(row.split(",")[1]) == 3 for row in rows)  # 141,902 ...: every close reads both ways
    Path("trainingdata/BTCUSD.csv").write_text("Date\tClose\n" + "\n".join(rows) + "\n")
    refused = run_cli(*FHS)
    assert refused.exit_code == 2, shown(refused)
    first = rows[0].split("\t")[1]
    assert refused.stderr.startswith(f"error: trainingdata/BTCUSD.csv: line 2, column 'Close': value '{first}' reads")
    assert not Path("configs/best").exists() and not Path("studies/optuna.db").exists()
    made = run_cli(*FHS, "--decimal", ".")
    assert made.exit_code == 0, shown(made)
    (entry,) = read_history(Path("configs/best"))
    assert entry["data"]["decimal"] == "." and json.loads(BEST.read_text())["data"]["decimal"] == "."
    study = optuna.load_study(study_name="fhs/BTCUSD", storage=STORAGE)
    assert study.user_attrs["decimal"] == "." and study.user_attrs["settings"]["decimal"] == "."
    resumed = run_cli(*FHS[:5], "--trials", "3")  # no --decimal: the study's own
    assert resumed.exit_code == 0, shown(resumed)
    other = run_cli(*FHS, "--decimal", ",")
    assert other.exit_code == 2 and "decimal was '.', now ','" in other.stderr and "--fresh" in other.stderr
    card = run_cli("scorecard", "--json", "--runs", "2")  # the decision's reading options, not "auto"
    assert card.exit_code == 0, shown(card)
    report = json.loads(card.stdout)
    assert report["problems"] == [] and all("no bars after" in note for note in report["not_scored"])


# 2 ------------------------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def storage_commands(url: str) -> list[tuple[str, ...]]:
    """Every command that takes --storage (dashboard: separately), in an order that works on a fresh storage."""
    return [
        ("status", "--storage", url),
        (*FHS, "--storage", url),
        ("worker", "--study", "fhs/BTCUSD", "--trials", "3", "--storage", url),
        ("commit", "--study", "fhs/BTCUSD", "--storage", url),
        ("launch", "--models", "fhs", "--symbols", "ETHUSD", "--trials", "1", "--eval-runs", "1", "--confirm-runs", "1",
         "--storage", url),
        ("resume", "--storage", url),
        ("status", "--all", "--storage", url),
        ("report", "--out", "studies/report.html", "--storage", url),
    ]


def test_no_storage_password_in_any_output_or_file(workdir: Path, postgres_url: str) -> None:  # noqa: F811
    """Case 2: `status` on an empty PostgreSQL and `dashboard` printed the password; a bad port was a traceback (exit
    1). Every command that takes --storage, on a reachable server, an unreachable one and malformed URLs."""
    reachable = postgres_url.replace("://postgres@", f"://postgres:{PASSWORD}@", 1)  # trust auth ignores it
    outputs = []
    for args in storage_commands(reachable):
        result = run_cli(*args)
        assert result.exit_code == 0, (args, shown(result))
        outputs.append(result.stdout + result.stderr)
    assert "no studies in postgresql+psycopg://postgres:***@127.0.0.1" in outputs[0]
    port = free_port()
    dashboard = subprocess.Popen([sys.executable, "-m", "orchestrator", "dashboard", "--storage", reachable,
                                  "--port", str(port)], cwd=workdir, env=subprocess_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and dashboard.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.3)
    finally:
        dashboard.terminate()
        out, err = dashboard.communicate(timeout=30)
    assert f"for postgresql+psycopg://postgres:***@127.0.0.1:" in out, out + err
    outputs.append(out + err)
    bad = [f"postgresql+psycopg://alice:{PASSWORD}@127.0.0.1:1/optuna",  # nothing listens on port 1
           f"postgresql+psycopg://alice:{PASSWORD}@db:5432x/optuna", f"postgresql+nodriver://alice:{PASSWORD}@db/x",
           f"postgresql+psycopg://alice:{PASSWORD}@db"]
    for url in bad:
        for args in [*storage_commands(url), ("dashboard", "--storage", url)]:
            result = run_cli(*args)
            assert result.exit_code == 2 and result.stderr.startswith("error: "), (args, shown(result))
            assert len(result.stderr.splitlines()) == 1, (args, result.stderr)
            outputs.append(result.stdout + result.stderr)
    leaked = [text for text in outputs if PASSWORD in text]
    assert not leaked, leaked
    files = [p for p in workdir.rglob("*") if p.is_file()]
    assert any(p.parts[-3:-1] == ("studies", "logs") for p in files)  # launch's logs are among them
    assert [p for p in files if PASSWORD.encode() in p.read_bytes()] == []


# 3 ------------------------------------------------------------------------------------------------------------------

def test_model_and_symbol_are_checked_before_any_path_is_built(workdir: Path) -> None:
    """Case 3: `best --model ../outside --symbol X` printed the params of outside/X.json beside the best dir."""
    outside = Path("configs/outside/X.json")
    outside.parent.mkdir(parents=True)
    outside.write_text(json.dumps({"model": "fhs", "symbol": "X", "params": {"secret": 1}}))
    for args in (("best", "--model", "../outside", "--symbol", "X"), ("best", "--model", "fhs", "--symbol", "../X"),
                 ("optimize", "--model", "../outside", "--symbol", "BTCUSD"),
                 ("optimize", "--model", "fhs", "--symbol", "../BTCUSD"),
                 ("launch", "--models", "../outside", "--symbols", "BTCUSD"),
                 ("launch", "--models", "fhs", "--symbols", "../BTCUSD"),
                 ("leaderboard", "--models", "../outside"), ("leaderboard", "--symbols", "../X")):
        result = run_cli(*args)
        assert result.exit_code == 2 and "secret" not in result.stdout, (args, shown(result))
        assert result.stderr.startswith("error: ") and ("'../outside': unknown" in result.stderr or
                                                        "'../X'" in result.stderr or "'../BTCUSD'" in result.stderr)
    assert sorted(p.name for p in Path("configs").iterdir()) == ["orchestrator.toml", "outside"]


# 4 ------------------------------------------------------------------------------------------------------------------

def test_two_jobs_on_one_study_keep_the_line_that_decided(workdir: Path) -> None:
    """Case 4: the second job's "already decided" result replaced the study's decision, so launch's summary and
    --save-summary said `NOT updating fhs/AAA: best trial 1 is unchanged since its decision` for a fresh commit."""
    write_synthetic(workdir / "trainingdata", ["AAA"], rows=300)
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "launch", "--models", "fhs", "--symbols", "AAA", "--workers", "2",
         "--jobs-per-study", "2", "--trials", "2", "--eval-runs", "1", "--confirm-runs", "1",
         "--save-summary", "summary.json"],
        cwd=workdir, env=subprocess_env(), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (row,) = json.loads(Path("summary.json").read_text())
    assert row["decision"].startswith("UPDATING fhs/AAA: MAE ") and "(no incumbent)" in row["decision"], row
    assert "\nUPDATING fhs/AAA: MAE " in result.stdout and "unchanged since its decision" not in result.stdout
    (status,) = json.loads(run_cli("status", "--json").stdout)
    assert status["decision"] == row["decision"]
    # the decision note says what its confirm runs are (before: an unexplained "(from run 1)")
    from optuna_dashboard import get_note

    note = get_note(optuna.load_study(study_name="fhs/AAA", storage=STORAGE))
    assert "(runs 1 to 1 of the study's seed: the search's trials used the first 1, so no config" in note


# 5 ------------------------------------------------------------------------------------------------------------------

def test_no_minus_zero_in_status_scorecard_and_leaderboard() -> None:
    """Case 5: a change that rounds to zero printed `-0.00% ± 0.00%` (the decision line says `0.00%`)."""
    tiny = {"improvement": 1e-7, "se": 1e-6, "p_value": 0.6, "won": 0.5, "confidence": 0.4}
    assert decision_text({"committed": False, "evidence": tiny}, short=True).startswith("kept incumbent: 0.00% ± ")
    scored = {"study": "fhs/A", "decided": "2026-12-07T20:13:55+00:00", "committed": False, "bars": 30,
              "old": "incumbent", "old_mae": 0.01, "new_mae": 0.01, "change": -1e-7, "se": 1e-6,
              "verdict": "no clear difference"}
    group = {"group": "overall", "decisions": 1, "paid_off": 0, "no_clear_difference": 1, "did_not_pay_off": 0,
             "bars": 30, "chosen_mae": 0.01, "alternative_mae": 0.01, "change": -1e-7, "se": 1e-6,
             "turnover": {"changed": 0, "nights": 1}}
    board = {"symbol": "A", "windows": {"count": 60, "first": "2026-01-01", "last": "2026-03-01"}, "level": 0.9,
             "line": "A: no champion", "models": {"fhs": {"runs": 2, "mae": 0.01, "evidence": tiny,
                                                          "mcs_p_value": 1.0, "in_set": True},
                                                  "naive": {"mae": 0.01, "mcs_p_value": 0.9, "in_set": True}}}
    from rich.console import Console

    console = Console(width=80)
    with console.capture() as captured:
        for table in [*scorecard_tables([scored], [group]), *leaderboard_tables([board])]:
            console.print(table)
    text = captured.get()
    assert "0.00%" in text and "-0.00" not in text


def test_usage_errors_are_one_error_line() -> None:
    """Case 5: click's usage errors printed `Usage: ...`, `Try ...` and `Error: No such option` (ours: `error:`)."""
    for args in (("optimize", "--model", "fhs", "--symbol", "X", "--no-such-flag"), ("best", "--model", "fhs"),
                 ("status", "--storage")):
        result = run_cli(*args)
        assert result.exit_code == 2 and result.stderr.startswith("error: "), shown(result)
        assert len(result.stderr.splitlines()) == 1 and "Usage:" not in result.stderr, result.stderr


# 6 ------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_written_files_honour_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    """Case 6: configs and champions.json were created -rw------- whatever the umask (a trading process under
    another user could not read them)."""
    before = os.umask(umask)
    try:
        write_atomic(tmp_path / "X.json", {"params": {}})
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "X.json").stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == ["X.json"]  # no temp file left


def test_the_directory_is_fsynced_after_the_replace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Case 6: only the file was fsynced, so after a power loss the rename could be lost while the history already
    named the commit. `os.fsync` is watched (and still called)."""
    synced: list[tuple[bool, str]] = []
    real = os.fsync

    def watch(fd: int) -> None:
        synced.append((stat.S_ISDIR(os.fstat(fd).st_mode), os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fsync", watch)
    path = tmp_path / "fhs" / "X.json"
    path.parent.mkdir()
    write_atomic(path, {"params": {}})
    assert synced[-1] == (True, str(path.parent))  # after the file's own fsync
    assert synced[0][0] is False


def test_locks_live_in_a_hidden_folder_and_respect_the_old_lock(workdir: Path) -> None:
    """Case 6: lock files sat beside the configs (`BTCUSD.json.lock`, `history.jsonl.lock`) and showed in
    `git status`. They live in <best_dir>/.locks/ (ignored by git); where an old lock file exists, a process of the
    previous version holding it still keeps a commit out."""
    assert run_cli(*FHS).exit_code == 0
    best = Path("configs/best")
    assert sorted(str(p.relative_to(best)) for p in best.rglob("*")) == [
        ".locks", ".locks/.gitignore", ".locks/fhs.BTCUSD.json.lock", ".locks/history.jsonl.lock", "fhs",
        "fhs/BTCUSD.json", "history.jsonl"]
    assert (best / ".locks/.gitignore").read_text() == "*\n"
    assert stat.S_IMODE(BEST.stat().st_mode) == 0o666 & ~current_umask()
    from orchestrator.decisions.records import locked

    old = Path(f"{BEST}.lock")
    old.touch()  # as the previous version leaves it
    holder = subprocess.Popen(  # a process of the previous version, in the middle of its commit
        [sys.executable, "-c", f"from filelock import FileLock; import time; lock = FileLock({str(old)!r}); lock.acquire(); "
                               "print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        entered = threading.Event()

        def commit() -> None:
            with locked(best, BEST):
                entered.set()

        thread = threading.Thread(target=commit, daemon=True)
        thread.start()
        assert not entered.wait(1.5)  # waits for the old lock
    finally:
        holder.kill()
        holder.wait()
    assert entered.wait(10)
    thread.join()


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_records_module_builds_every_lock_path() -> None:
    """Case 6: lock paths were built in three places (commit, champions, history); now `records.locked` only. (The
    roll-forward's guard in `storages/storage.py` locks beside the storage file, not in the best dir.)"""
    package = REPO / "orchestrator"
    sources = {p.relative_to(package).as_posix(): p.read_text() for p in package.rglob("*.py")}
    assert [name for name, text in sources.items() if "FileLock(" in text and not name.startswith("storages/")] == [
        "decisions/records.py"]
