"""Many nights on one lineage through the CLI: a roll-forward keeps the study's recorded settings and says so before
its first trial; the leaderboard never scores a config on bars a decision selected it on; the scorecard counts each
bar once per lineage; a kept config that no longer beats the naive forecast says so everywhere."""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pandas as pd

from conftest import cli
from orchestrator.data import synthetic_ohlcv

STORAGE = "sqlite:///studies/optuna.db"
BEST = Path("configs/best/fhs/AAA.json")
HISTORY = Path("configs/best/history.jsonl")


def write_bars(symbol: str, rows: int, flat_from: int | None = None) -> None:
    """The first `rows` of a 400-bar file to data/<symbol>.csv; with `flat_from`, a steady uptrend (which the fhs
    drift forecasts well) until that bar and trendless bars after it (where the naive forecast is hard to beat)."""
    frame = synthetic_ohlcv(symbol, 400, trend=0.004 if flat_from else 0.0)
    if flat_from is not None:
        flat = synthetic_ohlcv(symbol, 400, seed=1)
        prices = ["open", "high", "low", "close"]
        flat[prices] *= frame["close"].iloc[flat_from - 1] / flat["close"].iloc[flat_from - 1]
        frame.iloc[flat_from:] = flat.iloc[flat_from:]
    Path("data").mkdir(exist_ok=True)
    frame.iloc[:rows].to_csv(f"data/{symbol}.csv", index=False, float_format="%.6f")


def optimize(symbol: str, *flags: str):
    result = cli("optimize", "--model", "fhs", "--symbol", symbol, "--data-dir", "data", *flags)
    assert result.exit_code == 0, result.output
    return result


def stamp(row: int) -> str:
    return pd.Timestamp(synthetic_ohlcv("AAA", 400)["timestamp"].iloc[row]).isoformat()


def history() -> list[dict]:
    return [json.loads(line) for line in HISTORY.read_text().splitlines()]


def test_night_two_keeps_the_settings_and_the_leaderboard_holds_out_only_unselected_bars(workdir: Path) -> None:
    """Night 1 selects on windows ending at bar 280 (2023-10-07); night 2, ten bars later, asks for 60 test windows.
    The leaderboard used to take its held-out bars from night 2 alone (60 from bar 251), 30 of them night 1's
    selection windows; and night 2 ran on the defaults (250 validation windows, 100 trials), its line printed after
    its trials."""
    write_bars("AAA", 300)
    optimize("AAA", "--trials", "8", "--val-windows", "60", "--test-windows", "20", "--eval-runs", "1",
             "--confirm-runs", "1")
    write_bars("AAA", 310)

    night = optimize("AAA", "--test-windows", "60").stdout
    rolled = night.index("fhs/AAA: 10 new bars since the last study (earlier bars unchanged): archived it as ")
    first_trial = re.search(r"^fhs/AAA: \d+/\d+ trials", night, re.MULTILINE).start()
    assert rolled < first_trial < night.index("confirming candidate vs incumbent")
    assert ", kept its recorded settings except --test-windows 60 (was 20)\n" in night[rolled:first_trial]
    attrs = optuna.load_study(study_name="fhs/AAA", storage=STORAGE).user_attrs
    assert (attrs["val_windows"], attrs["test_windows"], attrs["eval_runs"], attrs["target"]) == (60, 60, 1, 8)
    assert attrs["confirm_runs"] == 1
    # night 2 selected on bars up to 249, but its warm starts came from night 1's study, selected up to 279
    assert attrs["fed_until"] == stamp(279) and history()[-1]["selected_until"] == stamp(279)

    board = cli("leaderboard", "--runs", "2", "--json")
    assert board.exit_code == 0, board.output
    (row,) = json.loads(board.stdout)["symbols"]
    assert row["windows"] == {"count": 30, "first": stamp(280), "last": stamp(309)}
    assert row["models"]["fhs"]["selected_until"] == stamp(279)


def test_the_scorecard_counts_each_bar_once_per_lineage(workdir: Path) -> None:
    """Three nightly decisions on 300, 305 and 310 bars of what became a 400-bar file: 100 bars, not 100 + 95 + 90.
    A second lineage on the same dates (BBB) is averaged with it per date in the overall row."""
    for rows in (300, 305, 310):
        write_bars("AAA", rows)
        optimize("AAA", "--trials", "4", "--val-windows", "60", "--test-windows", "20", "--eval-runs", "1")
    write_bars("BBB", 300)
    optimize("BBB", "--trials", "4", "--val-windows", "60", "--test-windows", "20", "--eval-runs", "1")
    write_bars("AAA", 400)
    write_bars("BBB", 400)

    result = cli("scorecard", "--runs", "2", "--json")
    assert result.exit_code == 0, result.output
    scored = json.loads(result.stdout)
    assert [d["bars"] for d in scored["decisions"]] == [100, 95, 90, 100]  # per decision: every bar after it
    summary = {row["group"]: row for row in scored["summary"]}
    aaa, bbb, overall = summary["fhs/AAA"], summary["fhs/BBB"], summary["overall"]
    assert (aaa["decisions"], aaa["bars"], aaa["dates"]) == (3, 100, 100)
    assert (overall["decisions"], overall["bars"], overall["dates"]) == (4, 200, 100)
    # the same 100 dates in both lineages: the mean of the per-date means is the mean of the lineages' means
    for key in ("chosen_mae", "alternative_mae"):
        assert abs(overall[key] - (aaa[key] + bbb[key]) / 2) < 1e-12
    replaced = sum(d["committed"] for d in history()[1:3])  # nights 2 and 3 had a config in use
    assert aaa["turnover"] == {"changed": replaced, "nights": 2}
    assert bbb["turnover"] == {"changed": 0, "nights": 0}
    groups = cli("scorecard", "--runs", "2").stdout.split("chosen config vs the alternative")[1]
    assert f" {replaced} of 2 " in next(line for line in groups.splitlines() if line.strip().startswith("fhs/AAA "))


def test_a_kept_config_that_no_longer_beats_naive_says_so_everywhere(workdir: Path) -> None:
    """Night 1 commits a drift config on a trending file; 100 bars later the trend is gone, and night 2 keeps the
    config though it no longer beats the naive forecast. The committed JSON used to say `beats_naive: true`, the
    history line had none, and `status` contradicted itself."""
    write_bars("AAA", 300, flat_from=300)
    optimize("AAA", "--trials", "8", "--val-windows", "60", "--test-windows", "20")
    committed = json.loads(BEST.read_text())
    assert committed["beats_naive"] is True
    write_bars("AAA", 400, flat_from=300)

    night = optimize("AAA", "--trials", "8", "--val-windows", "60", "--test-windows", "20").stdout
    assert "NOT updating fhs/AAA" in night and "WARNING: the incumbent does not beat the naive" in night
    decision = history()[-1]
    kept = decision["incumbent"]["validation"]["mae"]
    assert decision["beats_naive"] is False and kept > decision["naive_mae"]
    record = json.loads(BEST.read_text())
    assert record["beats_naive"] is False
    assert record["last_checked"] == {"time": decision["time"], "study": "fhs/AAA", "mae": kept,
                                      "naive_mae": decision["naive_mae"]}
    assert {k: record[k] for k in ("params", "committed_at", "validation", "decision_line")} == {
        k: committed[k] for k in ("params", "committed_at", "validation", "decision_line")}
    # chosen on night 1 up to bar 279, kept on night 2's windows up to bar 379
    assert (committed["selected_until"], record["selected_until"]) == (stamp(279), stamp(379))

    (row,) = json.loads(cli("status", "--json").stdout)
    assert row["beats_naive"] is False and "beats_naive" not in row["incumbent"]
    assert row["incumbent"]["last_checked"] == record["last_checked"]
    assert f"{kept:.5f} (trial" in cli("status").stdout and "not better than naive" in cli("status").stdout
    shown = cli("best", "--model", "fhs", "--symbol", "AAA").stdout
    assert f"MAE {kept:.5f}, naive {decision['naive_mae']:.5f}: WARNING: does not beat the naive" in shown
