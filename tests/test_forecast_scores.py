"""Forecasts scored against what happened (orchestrator.decisions.forecast_scores), on hand-checked logs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import cli

from orchestrator.decisions.forecast_scores import score_forecasts, table
from orchestrator.scoring.probabilistic import naive_quantiles

CLOSES = [100.0, 110.0, 99.0, 99.0, 108.9, 100.0]  # returns +10%, -10%, 0%, +10%, then -8.17% (bar 5)
LEVELS = ("0.05", "0.1", "0.25", "0.5", "0.75", "0.9", "0.95")


def write_file(directory: Path, closes: list[float]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    rows = [f"2024-01-{day + 1:02d},{c}" for day, c in enumerate(closes)]
    (directory / "AAA.csv").write_text("timestamp,close\n" + "\n".join(rows) + "\n")
    return directory / "AAA.csv"


def forecast(file: Path, day: int, close: float, point: float, quantiles: dict[str, float | None],
             model: str = "fhs", time: str = "2024-01-10T00:00:00+00:00") -> dict:
    """A log line as `orchestrator forecast` writes it."""
    return {"kind": "forecast", "time": time, "symbol": "AAA", "model": model, "study_uid": "u", "trial": 3,
            "seed": 0, "runs": 16, "last_bar": {"timestamp": f"2024-01-{day:02d}T00:00:00+00:00", "close": close},
            "point": {"return": point, "close": close * (1 + point)}, "quantiles": quantiles,
            "quantile_closes": {q: None if v is None else close * (1 + v) for q, v in quantiles.items()},
            "data": {"file": str(file), "rows": day}}


def write_log(best: Path, lines: list[dict]) -> None:
    best.mkdir(parents=True, exist_ok=True)
    (best / "forecasts.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def spread(low: float, high: float, step: float = 0.0) -> dict[str, float | None]:
    """Quantiles 0.05 .. 0.95: the 90% interval [low, high], the 80% one [low + step, high - step], median 0."""
    return {"0.05": low, "0.1": low + step, "0.25": low / 2, "0.5": 0.0, "0.75": high / 2, "0.9": high - step,
            "0.95": high}


def test_forecasts_whose_bar_came_are_scored_by_hand(tmp_path: Path) -> None:
    file = write_file(tmp_path / "data", CLOSES)
    best = tmp_path / "best"
    write_log(best, [
        # after bar 4 (day 5, close 108.9): bar 5 came, return 100 / 108.9 - 1 = -8.17%
        forecast(file, 5, 108.9, 0.01, spread(-0.1, 0.1, 0.05)),
        # after bar 3 (day 4, close 99): bar 4 came, return +10%: outside both intervals
        forecast(file, 4, 99.0, -0.02, spread(-0.06, 0.06, 0.02)),
        # after the last bar: nothing to score yet
        forecast(file, 6, 100.0, 0.0, spread(-0.1, 0.1)),
        # Toto 2.0 logs no 0.05 / 0.95
        forecast(file, 5, 108.9, -0.05, {**spread(-0.1, 0.1, 0.05), "0.05": None, "0.95": None}, model="toto2"),
    ])
    rows, problems = score_forecasts(best, None, lambda line: None)
    assert problems == []
    fhs, toto2 = sorted(rows, key=lambda r: r["model"])
    actual = np.array([0.1, 100 / 108.9 - 1])  # bar 4, then bar 5
    assert (fhs["bars"], fhs["pending"], fhs["first"][:10], fhs["last"][:10]) == (2, 1, "2024-01-05", "2024-01-06")
    assert fhs["mae"] == pytest.approx(np.mean(np.abs([-0.02 - 0.1, 0.01 - actual[1]])))
    assert fhs["naive_mae"] == pytest.approx(np.mean(np.abs(actual)))
    # coverage: bar 4 (+10%) is outside [-0.04, 0.04] and [-0.06, 0.06]; bar 5 (-8.17%) is inside [-0.1, 0.1] (90%)
    # but outside [-0.05, 0.05] (80%)
    assert fhs["coverage"]["80"]["rate"] == 0.0 and fhs["coverage"]["90"]["rate"] == 0.5
    assert fhs["coverage"]["80"]["se"] == pytest.approx(np.sqrt(0.8 * 0.2 / 2))
    # CRPS of bar 5 by hand: twice the mean pinball loss over the seven levels
    levels = np.array([0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95])
    q5 = np.array([-0.1, -0.05, -0.05, 0.0, 0.05, 0.05, 0.1])
    y = actual[1]
    pinball = np.where(y >= q5, levels * (y - q5), (1 - levels) * (q5 - y))
    q4 = np.array([-0.06, -0.04, -0.03, 0.0, 0.03, 0.04, 0.06])
    pinball4 = np.where(0.1 >= q4, levels * (0.1 - q4), (1 - levels) * (q4 - 0.1))
    assert fhs["crps"] == pytest.approx(np.mean([2 * pinball4.mean(), 2 * pinball.mean()]))
    assert fhs["crps_approximate"] is True
    # naive on the same bars and levels: the demeaned returns before each bar
    close = np.array(CLOSES)
    n5 = naive_quantiles(close, np.array([5]), list(levels))
    n5 = np.array([n5[q][0] for q in levels])
    naive_pinball = np.where(y >= n5, levels * (y - n5), (1 - levels) * (n5 - y))
    assert fhs["naive"]["crps_bars"] == 2
    assert fhs["naive"]["coverage"]["90"]["bars"] == 2
    n4 = naive_quantiles(close, np.array([4]), list(levels))
    n4 = np.array([n4[q][0] for q in levels])
    naive_pinball4 = np.where(0.1 >= n4, levels * (0.1 - n4), (1 - levels) * (n4 - 0.1))
    assert fhs["naive"]["crps"] == pytest.approx(np.mean([2 * naive_pinball4.mean(), 2 * naive_pinball.mean()]))
    # Toto 2.0: one bar, an 80% figure, no 90% one, CRPS over its five levels
    assert (toto2["bars"], toto2["pending"], toto2["vs_naive"]) == (1, 0, None)
    assert toto2["coverage"]["80"]["rate"] == 0.0 and toto2["coverage"]["90"] is None
    keep = [1, 2, 3, 4, 5]
    assert toto2["crps"] == pytest.approx(2 * pinball[keep].mean())
    assert toto2["naive"]["coverage"]["90"] is None  # naive is scored on the model's own levels


def test_a_bar_forecast_twice_counts_once_and_a_rescaled_file_keeps_its_returns(tmp_path: Path) -> None:
    file = write_file(tmp_path / "data", CLOSES)
    best = tmp_path / "best"
    write_log(best, [forecast(file, 5, 108.9, 0.5, spread(-0.1, 0.1)),
                     forecast(file, 5, 108.9, 0.01, spread(-0.1, 0.1), time="2024-01-10T01:00:00+00:00")])
    rows, _ = score_forecasts(best, None, lambda line: None)
    assert rows[0]["bars"] == 1
    assert rows[0]["mae"] == pytest.approx(abs(0.01 - (100 / 108.9 - 1)))  # the later forecast
    write_file(tmp_path / "data", [c / 2 for c in CLOSES])  # a split: every close halved
    notes: list[str] = []
    again, problems = score_forecasts(best, None, notes.append)
    assert problems == [] and again[0]["mae"] == pytest.approx(rows[0]["mae"])
    assert len(notes) == 1 and "now has close 54.45" in notes[0] and "re-adjusted" in notes[0]


def test_a_forecast_whose_bar_is_not_in_the_file_is_a_problem_and_no_log_is_no_rows(tmp_path: Path) -> None:
    file = write_file(tmp_path / "data", CLOSES)
    best = tmp_path / "best"
    assert score_forecasts(best, None, print) == ([], [])
    line = forecast(file, 5, 108.9, 0.01, spread(-0.1, 0.1))
    line["last_bar"]["timestamp"] = "2024-02-20"
    write_log(best, [line, forecast(file, 5, 108.9, 0.01, spread(-0.1, 0.1))])
    rows, problems = score_forecasts(best, None, print)
    assert len(problems) == 1 and "no bar at 2024-02-20" in problems[0] and "--data-dir" in problems[0]
    assert rows[0]["bars"] == 1
    moved = tmp_path / "moved"
    write_file(moved, CLOSES)
    file.unlink()
    rows, problems = score_forecasts(best, moved, print)  # --data-dir: the file's name in that directory
    assert rows[0]["bars"] == 1 and len(problems) == 1


def test_the_table_fits_80_columns(tmp_path: Path) -> None:
    from rich.console import Console

    file = write_file(tmp_path / "data", CLOSES)
    best = tmp_path / "best"
    no_champion = forecast(file, 5, 108.9, 0.0, dict.fromkeys(LEVELS), model="naive")  # as `forecast` logs it
    write_log(best, [forecast(file, 5, 108.9, 0.01, spread(-0.1, 0.1, 0.05)),
                     forecast(file, 4, 99.0, -0.02, spread(-0.06, 0.06, 0.02)), no_champion])
    rows, _ = score_forecasts(best, None, print)
    naive = next(r for r in rows if r["model"] == "naive")
    assert (naive["bars"], naive["crps"], naive["coverage"]["80"]) == (1, None, None)
    assert naive["mae"] == naive["naive_mae"] == pytest.approx(abs(100 / 108.9 - 1))
    console = Console(width=80, record=True)
    console.print(table(rows))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    lines = [line.split() for line in text.splitlines()]
    at = lines.index(next(line for line in lines if line[:2] == ["AAA", "fhs"]))
    assert lines[at][2:4] == ["2", "0"] and lines[at][-6:] == ["0%", "±", "28%", "50%", "±", "21%"]
    assert lines[at + 1][:2] == ["naive", "2"] and lines[at + 2][:4] == ["AAA", "naive", "1", "0"]  # no 2nd naive


def scores_through_the_cli(best: Path) -> None:
    """On a best dir with decided fhs studies (the demo's): the leaderboard carries CRPS and coverage in --json and
    champions.json; `forecast --model fhs` logs each symbol's forecast; a bar arrives (+1%); `scorecard` scores the
    logged forecasts against it, by hand here from the log. Called by tests/test_cli.py on the demo's output."""
    board = cli("leaderboard", "--best-dir", str(best), "--runs", "2", "--json")
    assert board.exit_code == 0, board.output
    rows = json.loads(board.stdout)["symbols"]
    saved = json.loads((best / "champions.json").read_text())["symbols"]
    assert rows and {row["symbol"] for row in rows} == set(saved)
    for row in rows:
        for name, m in row["models"].items():
            assert m["crps"] > 0 and m["crps_approximate"] is False
            assert m["coverage"]["80"]["bars"] == m["coverage"]["90"]["bars"] == row["windows"]["count"]
            assert saved[row["symbol"]]["models"][name]["coverage"] == m["coverage"]
    assert "80% in" in cli("leaderboard", "--best-dir", str(best), "--runs", "2").stdout
    forecast = cli("forecast", "--best-dir", str(best), "--model", "fhs", "--runs", "2")
    assert forecast.exit_code == 0, forecast.output
    logged = [json.loads(line) for line in (best / "forecasts.jsonl").read_text().splitlines()]
    assert scores_of(cli("scorecard", "--best-dir", str(best), "--runs", "1", "--json")) == {
        (line["symbol"], "fhs"): (0, 1) for line in logged}  # (bars scored, waiting): no bar has come yet
    for line in logged:  # the next bar comes, 1% above the last close
        file = Path(line["data"]["file"])
        when = pd.Timestamp(line["last_bar"]["timestamp"]) + pd.Timedelta(days=1)
        close = line["last_bar"]["close"] * 1.01
        with file.open("a") as f:
            f.write(f"{when.strftime('%Y-%m-%dT%H:%M:%SZ')},{close},{close},{close},{close},1000\n")
    result = cli("scorecard", "--best-dir", str(best), "--runs", "1", "--json")
    assert result.exit_code == 0, result.output
    scored = {(r["symbol"], r["model"]): r for r in json.loads(result.stdout)["forecasts"]}
    levels = np.array([0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95])
    for line in logged:
        r = scored[(line["symbol"], "fhs")]
        q = np.array([line["quantiles"][str(level)] for level in levels])
        y = line["last_bar"]["close"] * 1.01 / line["last_bar"]["close"] - 1
        assert (r["bars"], r["pending"]) == (1, 0)
        assert r["mae"] == pytest.approx(abs(line["point"]["return"] - y)) and r["naive_mae"] == pytest.approx(y)
        assert r["crps"] == pytest.approx(2 * np.where(y >= q, levels * (y - q), (1 - levels) * (q - y)).mean())
        assert r["coverage"]["80"]["rate"] == float(q[1] <= y <= q[5])
        assert r["coverage"]["90"]["rate"] == float(q[0] <= y <= q[6])
        assert r["naive"]["crps"] > 0 and r["naive"]["coverage"]["80"]["bars"] == 1
    text = cli("scorecard", "--best-dir", str(best), "--runs", "1").stdout
    assert "logged forecasts on the bars that came" in text and "CRPS~" in text


def scores_of(result) -> dict[tuple[str, str], tuple[int, int]]:
    assert result.exit_code == 0, result.output
    return {(r["symbol"], r["model"]): (r["bars"], r["pending"]) for r in json.loads(result.stdout)["forecasts"]}
