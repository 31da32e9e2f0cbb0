"""One regression test (or a few) per defect of issue 16, "Ten defects found in review"; each fails on the code
before the fix (d42d828).

They drive the real CLI, real SQLite/Optuna storage and real processes (killed with os._exit, launched workers);
nothing of SQLite, Optuna or the OS is mocked.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import traceback
from collections import Counter
from pathlib import Path

import numpy as np
import optuna
import pytest
import statsmodels.api as sm
from typer.testing import CliRunner

from conftest import REPO
from orchestrator.cli import app
from orchestrator.decisions.commit import Decision
from orchestrator.decisions.records import read_history
from orchestrator.data import load_series, write_synthetic
from orchestrator.errors import BadInput
from orchestrator.scoring.evidence import paired_evidence

STORAGE = "sqlite:///studies/optuna.db"
BEST = Path("configs/best/fhs/BTCUSD.json")
HISTORY = Path("configs/best/history.jsonl")
FHS = ("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "3", "--eval-runs", "1")
GOOD = {"context_length": 128, "ewma_halflife": 20.0, "drift": False, "num_samples": 256, "aggregate": "median"}


def run_cli(*args: str):
    """The CLI in-process; an unexpected exception becomes exit 1 (as in a shell)."""
    return CliRunner().invoke(app, list(args))


def shown(result) -> str:
    text = f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        text += "\n" + "".join(traceback.format_exception(*result.exc_info))
    return text


def subprocess_env() -> dict[str, str]:
    """Children import the package of the tree under test (not whatever the venv's editable install points at)."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}


def write_incumbent(params: dict) -> bytes:
    BEST.parent.mkdir(parents=True, exist_ok=True)
    BEST.write_text(json.dumps({"symbol": "BTCUSD", "model": "fhs", "params": params}))
    return BEST.read_bytes()


def refusal(tmp_path: Path, text: str) -> str:
    (tmp_path / "X.csv").write_text(text)
    with pytest.raises(BadInput) as info:
        load_series(tmp_path, "X")
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(tmp_path / "X.csv"))
    return message


# 1 ------------------------------------------------------------------------------------------------------------------

KILLED_COMMIT = """
import json, os, sys
import orchestrator.decisions.commit as commit

def die(best_dir, entry):
    '''The process dies after writing the config, before (or while) appending the history line.'''
    if sys.argv[1] == "torn":
        with open(os.path.join(best_dir, "history.jsonl"), "a") as history:
            history.write(json.dumps(entry)[:300])  # half a line reaches the file
    os._exit(9)

commit.append_history = die
from orchestrator.cli import app
app(args=sys.argv[2:], prog_name="orchestrator")
"""


def killed_commit(workdir: Path, where: str) -> dict:
    """Run `optimize` in a process that dies between writing the config and appending its history line; returns the
    committed file it left."""
    result = subprocess.run([sys.executable, "-c", KILLED_COMMIT, where, *FHS], cwd=workdir, env=subprocess_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 9, result.stdout + result.stderr
    assert "UPDATING" not in result.stdout  # it died before it could say anything
    return json.loads(BEST.read_text())


@pytest.mark.parametrize("where", ["after the config", "torn"])
def test_a_commit_killed_before_its_history_line_is_recorded_on_the_rerun(workdir: Path, where: str) -> None:
    """Defect 1: the rerun compared the committed config with itself and recorded `committed: false` ("kept the
    incumbent"); the real commit vanished from the history and `status`. Now the rerun recognises its study's own
    commit (uid and trial in the file) and records it, whatever point between the two writes the kill hit."""
    record = killed_commit(workdir, where)
    committed = BEST.read_bytes()
    uid = optuna.load_study(study_name="fhs/BTCUSD", storage=STORAGE).user_attrs["uid"]

    rerun = run_cli(*FHS)
    assert rerun.exit_code == 0, shown(rerun)
    assert "UPDATING fhs/BTCUSD" in rerun.stdout and "(no incumbent)" in rerun.stdout, rerun.stdout
    assert "NOT updating" not in rerun.stdout
    assert BEST.read_bytes() == committed
    (decision,) = read_history(Path("configs/best"))
    assert (decision["committed"], decision["incumbent"], decision["study_uid"]) == (True, None, uid)
    assert decision["kind"] == "decision" and decision["trial"] == record["study"]["trial"]
    assert decision["params"] == record["params"] and decision["time"] == record["committed_at"]
    # the history line tells what the killed process decided: the same line, and the note that it came late
    line = Decision(**{k: v for k, v in decision.items() if k in Decision.__dataclass_fields__}).line
    assert line.startswith(record["decision_line"]) and "recorded late" in line
    status = {row["study"]: row for row in json.loads(run_cli("status", "--json").stdout)}
    assert status["fhs/BTCUSD"]["committed"] is True
    again = run_cli(*FHS)  # decided once: a third run finds it in the history
    assert "unchanged since its decision" in again.stdout and len(read_history(Path("configs/best"))) == 1


def test_a_fresh_study_after_the_kill_records_the_lost_commit_before_its_own(workdir: Path) -> None:
    """Defect 1 (names are reused): `--fresh` makes a new study of the same name, trial numbers restart; it must not
    take the killed study's config for its own commit, and the killed commit still reaches the history."""
    record = killed_commit(workdir, "after the config")
    fresh = run_cli(*FHS, "--fresh")
    assert fresh.exit_code == 0, shown(fresh)
    lost, new = read_history(Path("configs/best"))
    assert (lost["study_uid"], lost["committed"], lost["incumbent"]) == (record["study"]["uid"], True, None)
    new_uid = optuna.load_study(study_name="fhs/BTCUSD", storage=STORAGE).user_attrs["uid"]
    assert new["study_uid"] == new_uid != lost["study_uid"]
    assert new["incumbent_params"] == record["params"]  # the fresh study compared itself with the killed commit
    assert new["incumbent"]["validation"] is not None and new["evidence"] is not None


# 2 ------------------------------------------------------------------------------------------------------------------

def cut(symbol: str, rows: int) -> str:
    path = Path(f"trainingdata/{symbol}.csv")
    full = path.read_text()
    path.write_text("".join(full.splitlines(keepends=True)[: rows + 1]))
    return full


def test_scorecard_scores_a_commit_whose_replaced_config_cannot_be_scored(workdir: Path) -> None:
    """Defect 2: an incumbent with a param this version does not know (`samples`) is replaced without a comparison;
    later `scorecard` died with `KeyError: 'num_samples'` (exit 1, nothing scored). Now that decision is scored
    against the naive forecast and says so in one line, the others are scored as usual, exit 0."""
    btc, eth = cut("BTCUSD", 500), cut("ETHUSD", 500)
    write_incumbent({"context_length": 64, "ewma_halflife": 10.0, "drift": False, "samples": 256, "aggregate": "mean"})
    replaced = run_cli(*FHS)
    assert replaced.exit_code == 0 and "the incumbent could not be scored" in replaced.stdout
    assert run_cli(*FHS[:4], "ETHUSD", *FHS[5:]).exit_code == 0
    Path("trainingdata/BTCUSD.csv").write_text(btc)
    Path("trainingdata/ETHUSD.csv").write_text(eth)

    result = run_cli("scorecard", "--json", "--runs", "2")
    assert result.exit_code == 0, shown(result)
    report = json.loads(result.stdout)
    rows = {r["study"]: r for r in report["decisions"]}
    assert set(rows) == {"fhs/BTCUSD", "fhs/ETHUSD"} and report["problems"] == []
    assert rows["fhs/BTCUSD"]["old"] == "naive zero return" and rows["fhs/BTCUSD"]["bars"] == 200
    (note,) = report["not_scored"]
    assert note.startswith("fhs/BTCUSD decision at") and note.endswith(
        "the replaced config cannot be scored: no 'num_samples' param; scored against the naive forecast instead")


# 3, 6, 9 -------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rows", [["100,5", "101,25", "102,75", "103,4"], ["100,5", "99,25", "98,75"]])
def test_decimal_commas_in_a_comma_separated_file_are_refused_with_the_line(tmp_path: Path, rows: list[str]) -> None:
    """Defect 3: rising integer parts were read as an index plus epoch seconds (timestamps 1970-01-01 00:01:40,
    closes 5, 25, 75), falling ones crashed with `ValueError: invalid literal for int()`."""
    text = "Date,Close\n" + "".join(f"2024-01-0{i + 1},{value}\n" for i, value in enumerate(rows))
    message = refusal(tmp_path, text)
    assert "line 2: 3 fields ('2024-01-01,100,5'), but the header has 2 ('Date,Close')" in message
    assert "decimal commas? write numbers with '.' (100.5), or separate the fields with ';'" in message


def test_semicolon_and_tab_files_with_decimal_commas_are_read_and_said_so(tmp_path: Path) -> None:
    """Defect 3: semicolon- and tab-separated files got "no time column; found headers Date;Close"."""
    european = "Date;Open;Close;Volume\n2024-01-02;1.234,50;1.240,25;1.000\n2024-01-03;1.240,25;1.250;2.500\n"
    (tmp_path / "EU.csv").write_text(european)
    series = load_series(tmp_path, "EU", optional=("open", "volume"))
    assert series.close.tolist() == [1240.25, 1250.0] and series.frame["open"].tolist() == [1234.5, 1240.25]
    assert series.frame["volume"].tolist() == [1000.0, 2500.0]  # '.' groups thousands in this file
    assert series.notes == [f"{tmp_path / 'EU.csv'}: read as semicolon-separated, numbers with a decimal comma "
                            "('1.234,56' is 1234.56)"]
    (tmp_path / "TAB.csv").write_text("Date\tClose\n2024-01-02\t100.5\n2024-01-03\t101\n")
    tab = load_series(tmp_path, "TAB")
    assert tab.close.tolist() == [100.5, 101.0] and tab.notes == [f"{tmp_path / 'TAB.csv'}: read as tab-separated"]
    message = refusal(tmp_path, "Date;Close\n2024-01-02;100,5\n2024-01-03;100.5\n")  # one format per file
    assert "line 3, column 'Close': value '100.5' is not a number in this file's format (decimal comma" in message


def test_a_european_file_runs_through_optimize(workdir: Path) -> None:
    """Defect 3, as a user meets it: a `;`-separated export with decimal commas runs, and optimize says how it read
    the file."""
    lines = Path("trainingdata/BTCUSD.csv").read_text().splitlines()
    european = [lines[0].replace(",", ";")] + [row.replace(",", ";").replace(".", ",") for row in lines[1:]]
    Path("trainingdata/BTCUSD.csv").write_text("\n".join(european) + "\n")
    result = run_cli(*FHS)
    assert result.exit_code == 0, shown(result)
    assert "BTCUSD.csv: read as semicolon-separated, numbers with a decimal comma" in result.stdout


@pytest.mark.parametrize(("header", "first", "second"),
                         [("Date,Close,Close", "Close", "Close"), ("Date,Date,Close", "Date", "Date"),
                          ("date,Close,close", "Close", "close")])
def test_duplicate_headers_are_refused_naming_both_as_written(
    tmp_path: Path, header: str, first: str, second: str
) -> None:
    """Defect 6: `Date,Close,Close` silently used the first Close, `Date,Date,Close` ignored the second Date
    (pandas had renamed them `Close.1`, `Date.1`)."""
    message = refusal(tmp_path, f"{header}\n2024-01-02,1,2\n2024-01-03,3,4\n")
    assert f"headers '{first}' and '{second}' both read as '{first.lower()}'; rename or remove one" in message
    assert ".1" not in message


def test_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    """Defect 9: after a blank line the reported line was one short (line 4 for line 5)."""
    message = refusal(tmp_path, "Date,Close\n2024-01-01,1\n\n2024-01-02,2\n2024-01-03,abc\n")
    assert "line 5, column 'Close': value 'abc' is not a finite number" in message
    message = refusal(tmp_path, "\nDate,Close\n2024-01-01,1\n\n\n2024-01-02,.\n")
    assert "line 6, column 'Close': value '.' is not a finite number (a missing value)" in message


# 4 ------------------------------------------------------------------------------------------------------------------

def test_fewer_than_30_validation_windows_are_bad_input(workdir: Path) -> None:
    """Defect 4: `--val-windows 1` made `paired_evidence` raise, which commit.py took for "the incumbent cannot be
    scored": a good incumbent was replaced without a comparison. Now it is refused before anything is written."""
    before = write_incumbent(GOOD)
    result = run_cli(*FHS, "--val-windows", "1")
    assert result.exit_code == 2, shown(result)
    assert result.stderr.strip() == "error: --val-windows 1: input should be greater than or equal to 30"
    assert BEST.read_bytes() == before and not HISTORY.exists() and not Path("studies").exists()


def test_a_statistics_error_never_replaces_the_incumbent(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 4: errors of the paired test were caught with those of scoring the incumbent, so any statistics error
    became "the incumbent could not be scored; replaced without a comparison". Only scoring failures do now."""
    before = write_incumbent(GOOD)

    def broken(candidate, incumbent):
        raise ValueError("a statistics bug")

    monkeypatch.setattr("orchestrator.decisions.commit.paired_evidence", broken)
    result = run_cli(*FHS)
    assert result.exit_code == 1 and isinstance(result.exception, ValueError), shown(result)
    assert BEST.read_bytes() == before and not HISTORY.exists()


# 5 ------------------------------------------------------------------------------------------------------------------

def test_two_workers_per_study_finish_the_target_without_failed_trials(workdir: Path) -> None:
    """Defect 5: with `--jobs-per-study 2` each worker asked for the whole remainder, and about (N-1)/N of the new
    trials were stored as FAILED "surplus" (14-15 beside 30 COMPLETE per study). One study and two processes show
    it (on the old code about 20 FAIL beside 20 COMPLETE)."""
    write_synthetic(workdir / "trainingdata", ["AAA"], rows=400)
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "launch", "--models", "fhs", "--symbols", "AAA", "--workers", "2",
         "--jobs-per-study", "2", "--trials", "20", "--eval-runs", "1"],
        cwd=workdir, env=subprocess_env(), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    trials = optuna.load_study(study_name="fhs/AAA", storage=STORAGE).get_trials()
    states = [t.state.name for t in trials]
    assert set(states) <= {"COMPLETE", "PRUNED"}, Counter(states)  # no FAIL, none left RUNNING or WAITING
    assert 20 <= len(trials) <= 21, Counter(states)  # a race for the last trial may add one COMPLETE trial


# 7 ------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("n", "lag"), [(64, 4), (125, 5)])
def test_newey_west_lag_and_standard_error_match_statsmodels_hac(n: int, lag: int) -> None:
    """Defect 7: floor(n ** (1/3)) gave lag 3 for 64 and 4 for 125; and the shown standard error lacked the HLN
    factor, so improvement / se was not the tested statistic. Reference: statsmodels' HAC (Bartlett, no small-sample
    correction) of the mean difference, scaled by the HLN factor for horizon 1."""
    rng = np.random.default_rng(n)
    incumbent = np.abs(rng.standard_t(4, n)) * 0.01 + 0.001
    d = np.convolve(rng.standard_normal(n + 2), [1.0, 0.6, 0.3], mode="valid") * 0.002  # autocorrelated
    candidate = incumbent - d
    hac = sm.OLS(d, np.ones(n)).fit(cov_type="HAC", cov_kwds={"maxlags": lag, "use_correction": False})
    se = float(hac.bse[0]) / math.sqrt((n - 1) / n)  # HLN: the statistic is DM * sqrt((n - 1) / n)
    e = paired_evidence(candidate, incumbent)
    assert e.statistic == pytest.approx(d.mean() / se, rel=1e-10), "not the lag statsmodels uses"
    assert e.se * incumbent.mean() == pytest.approx(se, rel=1e-10), "not the standard error the test uses"
    assert e.improvement / e.se == pytest.approx(e.statistic, rel=1e-10)


# 8 ------------------------------------------------------------------------------------------------------------------

def test_ordinary_commands_print_no_experimental_warnings(workdir: Path) -> None:
    """Defect 8: `status`, `report` and others printed two Optuna ExperimentalWarning lines (the heartbeat) on
    stderr; `status --json 2>&1 | jq` broke."""
    assert run_cli(*FHS).exit_code == 0
    status = subprocess.run([sys.executable, "-m", "orchestrator", "status", "--json"], cwd=workdir,
                            env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=300)
    assert status.returncode == 0, status.stdout
    assert json.loads(status.stdout)[0]["study"] == "fhs/BTCUSD", status.stdout  # stdout + stderr: still just JSON


# 10 -----------------------------------------------------------------------------------------------------------------

def test_a_change_that_rounds_to_zero_has_no_sign() -> None:
    """Defect 10: a tie printed as "-0.00%" (so did any change that rounds to zero)."""
    errors = np.linspace(0.01, 0.02, 50)
    assert paired_evidence(errors, errors).summary().startswith("0.00% ± 0.00%, p=0.5")
    tiny = paired_evidence(errors * (1 - 1e-6), errors)  # better by 0.0001%
    assert tiny.improvement > 0 and tiny.summary().startswith("0.00% ± ")
    assert paired_evidence(errors * 0.99, errors).summary().startswith("-1.00% ± ")
    assert paired_evidence(errors * 1.011, errors).summary().startswith("+1.10% ± ")
