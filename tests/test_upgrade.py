"""Studies created before many windows and the commit rule existed keep what they recorded; output goes on a
terminal-less stream as one line per 10% of the target."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import optuna

from conftest import cli

DB = Path("studies/optuna.db")
STORAGE = f"sqlite:///{DB}"
NEW_ATTRS = ("price", "drop_missing", "dayfirst", "scoring_version", "weights", "short_windows", "dropped_rows")
NEW_SETTINGS = ("commit_rule", "min_confidence", "price", "drop_missing", "dayfirst")


def make_it_old(name: str) -> None:
    """Rewrite the study's attrs to what the previous version stored: 30 / 20 windows, no rule, no new attrs."""
    with sqlite3.connect(DB) as con:
        (study_id,) = con.execute("SELECT study_id FROM studies WHERE study_name = ?", (name,)).fetchone()
        con.executemany("DELETE FROM study_user_attributes WHERE study_id = ? AND key = ?",
                        [(study_id, key) for key in NEW_ATTRS])
        (text,) = con.execute("SELECT value_json FROM study_user_attributes WHERE study_id = ? AND key = 'settings'",
                              (study_id,)).fetchone()
        settings = {k: v for k, v in json.loads(text).items() if k not in NEW_SETTINGS}
        con.execute("UPDATE study_user_attributes SET value_json = ? WHERE study_id = ? AND key = 'settings'",
                    (json.dumps(settings), study_id))


def test_an_older_study_resumes_with_its_windows_and_the_any_rule(workdir: Path) -> None:
    old = ("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--val-windows", "30", "--test-windows", "20")
    assert cli(*old, "--trials", "3").exit_code == 0
    make_it_old("fhs/BTCUSD")
    for path in Path("configs/best").rglob("*.json*"):  # decide again on resume, to see which rule it uses
        path.unlink()
    result = cli("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "6")  # today's defaults: 250 / 60
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="fhs/BTCUSD", storage=STORAGE)
    assert (study.user_attrs["val_windows"], study.user_attrs["test_windows"], study.user_attrs["target"]) == (30, 20, 6)
    assert study.user_attrs["settings"]["commit_rule"] == "any"
    decision = json.loads(Path("configs/best/history.jsonl").read_text().splitlines()[-1])
    assert decision["rule"]["rule"] == "any" and decision["candidate"]["validation"]["windows"] == 30
    refused = cli("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "8", "--val-windows", "250")
    assert refused.exit_code == 2 and "val_windows was 30, now 250" in refused.stderr and "--fresh" in refused.stderr
    assert cli("status", "--json").exit_code == 0 and cli("resume").exit_code == 0


def test_an_explicit_rule_applies_to_a_resumed_study(workdir: Path) -> None:
    assert cli("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "3", "--commit-rule", "any").exit_code == 0
    result = cli("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "5", "--commit-rule", "significant",
                 "--min-confidence", "0.9")
    assert result.exit_code == 0, result.output
    settings = optuna.load_study(study_name="fhs/BTCUSD", storage=STORAGE).user_attrs["settings"]
    assert (settings["commit_rule"], settings["min_confidence"]) == ("significant", 0.9)


def test_a_study_that_recorded_significant_keeps_it_and_new_studies_get_spa(workdir: Path) -> None:
    for symbol, rule in (("BTCUSD", ("--commit-rule", "significant")), ("ETHUSD", ())):
        assert cli("optimize", "--model", "fhs", "--symbol", symbol, "--trials", "3", *rule).exit_code == 0
    for path in Path("configs/best").rglob("*.json*"):  # decide again on resume, to see which rule it uses
        path.unlink()
    resumed = cli("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "5")  # no flags
    assert resumed.exit_code == 0, resumed.output
    settings = optuna.load_study(study_name="fhs/BTCUSD", storage=STORAGE).user_attrs["settings"]
    assert (settings["commit_rule"], settings["min_confidence"]) == ("significant", 0.95)
    decision = json.loads(Path("configs/best/history.jsonl").read_text().splitlines()[-1])
    assert (decision["study"], decision["rule"]["rule"]) == ("fhs/BTCUSD", "significant")
    assert optuna.load_study(study_name="fhs/ETHUSD", storage=STORAGE).user_attrs["settings"]["commit_rule"] == "spa"


def test_progress_is_a_line_per_tenth_of_the_target_off_a_terminal(workdir: Path) -> None:
    result = cli("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "20")
    assert result.exit_code == 0, result.output
    out = result.stdout.splitlines()
    lines = [i for i, x in enumerate(out) if x.startswith("fhs/BTCUSD: ") and " trials, " in x]
    assert [out[i].split(" trials")[0].split(": ")[1] for i in lines] == [f"{2 * k}/20" for k in range(1, 11)]
    assert all("trials/s" in out[i] and "ETA" in out[i] for i in lines[:-1]) and "confirming" in out[lines[-1]]
    assert all("naive 0." in out[i + 1] for i in lines)


def test_a_study_recorded_with_fewer_than_30_windows_is_refused_with_what_to_do(workdir: Path) -> None:
    """An earlier version accepted --val-windows below 30; resuming such a study is bad input (exit 2), not a crash."""
    assert cli("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "2", "--val-windows", "30").exit_code == 0
    with sqlite3.connect(DB) as con:
        (text,) = con.execute("SELECT value_json FROM study_user_attributes WHERE key = 'settings'").fetchone()
        con.execute("UPDATE study_user_attributes SET value_json = ? WHERE key = 'settings'",
                    (json.dumps({**json.loads(text), "val_windows": 20}),))
    for command in (("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "3"),
                    ("worker", "--study", "fhs/BTCUSD", "--trials", "3")):
        result = cli(*command)
        assert result.exit_code == 2, result.output
        assert "study fhs/BTCUSD recorded val_windows = 20" in result.stderr and "--fresh" in result.stderr
