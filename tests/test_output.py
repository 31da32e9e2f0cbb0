"""What a newcomer reads, through the command line: the config in use in `status`, `--help` and the live line at 80
columns, notes that do not alarm, launch's summary, and a command line that starts without torch."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import optuna

from conftest import cli, read_json
from orchestrator.data import write_synthetic
from orchestrator.settings import Settings

BEST = Path("configs/best/fhs/BTCUSD.json")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
WORSE_SPACE = """
[context_length]
type = "int"
low = 32
high = 32
[ewma_halflife]
type = "float"
low = 2.0
high = 2.0
[num_samples]
type = "int"
low = 64
high = 64
[aggregate]
type = "categorical"
choices = ["quantile_0.2"]
"""


def orchestrator(*args: str, cwd: Path, columns: int = 80, **kwargs) -> subprocess.CompletedProcess:
    """The CLI in a subprocess whose terminal is `columns` wide (as click and rich read it from COLUMNS)."""
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, *kwargs.pop("python", []), "-m", "orchestrator", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300, **kwargs)


def in_terminal(*args: str, cwd: Path, columns: int = 80, timeout: float = 300) -> str:
    """The CLI in a pseudo-terminal `columns` wide; returns what it drew, as raw text with escape codes."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "xterm-256color"}
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", *args], cwd=cwd, env=env, stdin=slave,
                            stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([master], [], [], 1.0)[0]:
            if proc.poll() is not None:
                break
            continue
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=30) == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    return b"".join(chunks).decode(errors="replace")


def rows(drawn: str) -> list[str]:
    """The rows a terminal shows for `drawn`: escape codes removed, split at line feeds and carriage returns."""
    return [row for row in re.split(r"[\r\n]", ANSI.sub("", drawn)) if row.strip()]


def test_status_shows_the_config_in_use_and_the_last_decision(workdir: Path) -> None:
    assert cli("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "4").exit_code == 0
    committed = read_json(BEST)
    Path("worse.toml").write_text(WORSE_SPACE)  # a new study that cannot beat it: the decision keeps it
    kept = cli("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "3", "--space", "worse.toml", "--fresh")
    assert "NOT updating fhs/BTCUSD" in kept.stdout
    standing = ("beats_naive", "last_checked", "selected_until")  # updated by the decision that kept it
    assert {k: v for k, v in read_json(BEST).items() if k not in standing} == {
        k: v for k, v in committed.items() if k not in standing}
    assert [r["study"] for r in json.loads(cli("status", "--json").stdout)] == ["fhs/BTCUSD"]  # archives: --all
    listed = json.loads(cli("status", "--json", "--all").stdout)
    current = next(r for r in listed if r["study"] == "fhs/BTCUSD")
    archived = next(r for r in listed if r["study"].startswith("fhs/BTCUSD@"))
    # before: `incumbent -` and `committed no` although this config is committed and in use
    assert current["committed"] is False and current["decision"].startswith("NOT updating")
    for row in (current, archived):
        use = row["incumbent"]
        assert use["path"] == str(BEST) and use["params"] == committed["params"]
        assert use["validation_mae"] == committed["validation"]["mae"]
        assert (use["study"], use["trial"]) == ("fhs/BTCUSD", committed["study"]["trial"])
        assert use["committed_at"] == committed["committed_at"]
    assert archived["incumbent"]["this_study"] is True  # the archive is the committing study (same uid)
    assert current["incumbent"]["this_study"] is False
    table = cli("status", "--all").stdout.splitlines()
    at = next(i for i, x in enumerate(table) if x.startswith("@"))  # an archive's name: two lines, its time short
    assert table[at].split()[0] == "@" + archived["study"].split("@")[1][:13]
    line = next(x for i, x in enumerate(table) if x.startswith("fhs/BTCUSD ") and i != at - 1)
    assert f"{committed['validation']['mae']:.5f} (trial {committed['study']['trial']} of an earlier study, " in line
    assert "kept incumbent: " in line and "p=" in line
    archive_line = table[at - 1]
    assert f"{committed['validation']['mae']:.5f} (trial {committed['study']['trial']}, " in archive_line
    elsewhere = json.loads(cli("status", "--json", "--all", "--best-dir", "nowhere").stdout)
    assert [r["incumbent"] for r in elsewhere] == [None, None]  # null only when none is committed
    assert not Path("nowhere").exists()


def test_help_reads_at_80_columns_with_the_defaults_in_use(workdir: Path) -> None:
    config = workdir / "configs" / "orchestrator.toml"
    config.write_text(config.read_text() + "trials = 7\ncache_mb = 512\ntransfer = false\n")
    helps = {command: orchestrator(command, "--help", cwd=workdir)
             for command in ("optimize", "launch", "worker", "resume", "status", "report", "commit")}
    for command, shown in helps.items():
        assert shown.returncode == 0, shown.stderr
        assert max(len(line) for line in shown.stdout.splitlines()) <= 80, command
        assert "…" not in shown.stdout and "<bool>" not in shown.stdout and "<str>" not in shown.stdout, command
    optimize = helps["optimize"].stdout
    for name in Settings.model_fields:  # every setting is a flag of optimize and launch, never cut
        flag = "--" + name.replace("_", "-")
        assert re.search(rf"^  {flag}[ /]", optimize, re.M) and re.search(rf"^  {flag}[ /]", helps["launch"].stdout, re.M)
    entry = lambda text, flag: " ".join(text.split(f"  {flag} ")[1].split("\n  --")[0].split())  # noqa: E731
    assert "[default: 7]" in entry(optimize, "--trials")  # configs/orchestrator.toml, not the built-in 100
    assert "[default: off]" in entry(optimize, "--transfer")
    assert "[default: 250]" in entry(optimize, "--val-windows")
    for command in ("worker", "resume"):
        text = helps[command].stdout
        assert "[default: 512]" in entry(text, "--cache-mb")
        assert all(f"  --{flag} " in text for flag in ("heartbeat-interval", "grace-period", "durability"))
    assert "  --best-dir DIR" in helps["status"].stdout and "  --best-dir DIR" in helps["report"].stdout


def test_a_generated_flag_takes_effect(workdir: Path) -> None:
    other = Path("configs/best/fhs/ETHUSD.json")
    other.parent.mkdir(parents=True)
    params = {"context_length": 64, "ewma_halflife": 10.0, "drift": False, "num_samples": 128, "aggregate": "mean"}
    other.write_text(json.dumps({"symbol": "ETHUSD", "model": "fhs", "params": params}))
    result = cli("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "2", "--max-transfer", "0",
                 "--pruner-startup-trials", "100")
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="fhs/BTCUSD", storage="sqlite:///studies/optuna.db")
    assert study.user_attrs["settings"]["max_transfer"] == 0
    assert study.user_attrs["settings"]["pruner_startup_trials"] == 100  # no trial is pruned: all record cache_hit
    assert not any(t.user_attrs.get("warm_start") == "transfer" for t in study.trials)
    # a process setting given to `worker` replaces the recorded one: no encode cache, so no trial hits it
    joined = cli("worker", "--study", "fhs/BTCUSD", "--trials", "5", "--cache-mb", "0")
    assert joined.exit_code == 0, joined.output
    new = optuna.load_study(study_name="fhs/BTCUSD", storage="sqlite:///studies/optuna.db").trials[2:]
    assert [t.user_attrs["cache_hit"] for t in new] == [False, False, False]


def test_the_live_line_fits_80_columns_and_shows_the_incumbent(workdir: Path) -> None:
    assert cli("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "4").exit_code == 0
    incumbent = read_json(BEST)
    search_value = optuna.load_study(study_name="fhs/BTCUSD", storage="sqlite:///studies/optuna.db").trials[
        incumbent["study"]["trial"]].value
    drawn = in_terminal("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "14", cwd=workdir)
    shown = rows(drawn)
    progress = [row for row in shown if row.startswith("fhs/BTCUSD: ") and " trials, " in row]
    mae = [row for row in shown if row.startswith("  validation MAE: best ")]
    ending = [row for row in shown if row.startswith(("fhs/BTCUSD: 14/14 trials (", "search MAE "))]
    assert len(ending) == 2 and max(len(row) for row in progress + mae + ending) <= 80
    assert any(re.search(r"\d+\.\d trials/s, ETA \d+m\d\ds$", row) for row in progress)  # ETA on the same row
    assert progress[-1] == "fhs/BTCUSD: 14/14 trials, confirming candidate vs incumbent on 3 fresh runs"
    # the incumbent is a trial of this very study (before: `incumbent -`)
    assert mae and all(f"incumbent {search_value:.5f}," in row for row in mae)
    summary = next(line for line in drawn.splitlines() if line.startswith("search MAE "))
    assert not ANSI.search(summary) and "(best trial, mean of 3 runs)" in summary  # no colour on the runs


def test_short_history_notes_only_when_it_matters_and_once_in_a_launch(workdir: Path) -> None:
    plenty = cli("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "2")  # 700 rows
    assert plenty.exit_code == 0 and "bars before" not in plenty.stdout and "read the bars" not in plenty.stdout
    write_synthetic(workdir / "trainingdata", ["SPY", "QQQ"], rows=504)  # two years of daily bars
    launched = cli("launch", "--models", "fhs", "--symbols", "BTCUSD,SPY,QQQ", "--trials", "2", "--workers", "2")
    assert launched.exit_code == 0, launched.output
    out = launched.stdout
    notes = [line for line in out.splitlines() if "read the bars that exist" in line]
    assert len(notes) == 1 and notes[0].startswith("fhs/SPY, fhs/QQQ: ") and "expected" in notes[0]
    # launch's summary: each study's decision line, search and confirm MAE named as such
    assert re.search(r"^fhs/BTCUSD .* already at target$", out, re.M)  # it had its 2 trials before this launch
    assert re.search(r"^study\s+status\s+trials\s+search MAE\s+confirm MAE\s+naive MAE\s+time$", out, re.M)
    for symbol in ("BTCUSD", "SPY", "QQQ"):
        assert re.search(rf"^(UPDATING|NOT updating) fhs/{symbol}: ", out, re.M), symbol
    short = cli("optimize", "--model", "fhs", "--symbol", "SPY", "--trials", "2")  # one study: its numbers
    notes = [line for line in short.stdout.splitlines() if "read the bars that exist" in line]
    assert notes == ["fhs/SPY: its validation windows have 194 to 443 bars before them; contexts up to 512 read the "
                     "bars that exist (expected with 504 rows), so contexts above 443 score alike"]


def test_help_and_status_start_without_torch(workdir: Path) -> None:
    assert cli("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "2").exit_code == 0
    for args, heavy in ((("--help",), ("torch", "optuna", "scipy", "pandas", "sqlalchemy")),
                        (("status", "--json"), ("torch", "scipy.stats", "matplotlib", "arch", "optuna_dashboard"))):
        run = orchestrator(*args, cwd=workdir, python=["-X", "importtime"])
        assert run.returncode == 0, run.stderr
        imported = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
        assert not imported & set(heavy), (args, sorted(imported & set(heavy)))
    assert json.loads(run.stdout)[0]["incumbent"]["path"] == str(BEST)


def test_scorecard_leaderboard_best_and_status_all_fit_80_columns(workdir: Path, monkeypatch) -> None:
    """At 80 columns: `scorecard` says nothing to score in one line (before: two empty tables), then fits with every
    column whole (before: `fh…  2026-12-07T20:13:5…`); `leaderboard` skips a folder that is no model with one note
    (before: exit 2) and fits; `best` wraps; piped `status --all` honours COLUMNS (before: 200 columns) and shows an
    archive's name short and whole (before: folded over three lines), the full name in --json."""
    full = Path("trainingdata/BTCUSD.csv").read_text()
    Path("trainingdata/BTCUSD.csv").write_text("".join(full.splitlines(keepends=True)[:601]))  # 100 bars arrive later
    fhs = ("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "2", "--eval-runs", "1", "--confirm-runs", "1")
    assert cli(*fhs).exit_code == 0
    assert cli(*fhs, "--fresh", "--seed", "1").exit_code == 0  # the first study is archived
    piped = orchestrator("status", "--all", cwd=workdir)  # a pipe, COLUMNS=80
    shown = piped.stdout.splitlines()
    assert piped.returncode == 0 and max(map(len, shown)) <= 80 and "…" not in piped.stdout, piped.stdout
    (archive,) = [r["study"] for r in json.loads(cli("status", "--all", "--json").stdout) if "@" in r["study"]]
    assert sum(line.split()[0] in ("fhs/BTCUSD", "@" + archive.split("@")[1][:13]) for line in shown) == 3, shown
    from orchestrator import cli as command_line

    monkeypatch.setattr(command_line.out, "width", 80)  # as COLUMNS=80 sets it when the process starts

    def fits(*args: str) -> list[str]:
        run = cli(*args)
        assert run.exit_code == 0, run.output
        lines = run.stdout.splitlines()
        assert lines and max(len(line) for line in lines) <= 80 and "…" not in run.stdout, run.stdout
        return lines

    assert [line for line in fits("scorecard", "--runs", "2") if line.startswith("nothing to score yet: ")]
    assert any(line.startswith("decision: ") for line in fits("best", "--model", "fhs", "--symbol", "BTCUSD"))
    Path("configs/best/backup").mkdir()
    board = fits("leaderboard", "--runs", "2")
    assert board[0].startswith("configs/best: skipped backup: no model of that name")
    Path("trainingdata/BTCUSD.csv").write_text(full)
    card = fits("scorecard", "--runs", "2")
    assert any(line.startswith("fhs/BTCUSD ") for line in card) and any(line.startswith("overall ") for line in card)
