"""The forward scorecard: past decisions scored on the bars that arrived after them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import cli
from orchestrator.data import Windows, load_series
from orchestrator.scoring.evaluation import Evaluator
from orchestrator.models.base import ModelOptions, create
from orchestrator.decisions.scorecard import Score

GOOD = {"context_length": 128, "ewma_halflife": 20.0, "drift": False, "num_samples": 1024, "aggregate": "median"}
BAD = {"context_length": 32, "ewma_halflife": 2.0, "drift": True, "num_samples": 64, "aggregate": "quantile_0.1"}
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


def cut(symbol: str, rows: int) -> str:
    """Keep only the first `rows` bars of trainingdata/<symbol>.csv; returns the full text to grow it back."""
    path = Path(f"trainingdata/{symbol}.csv")
    full = path.read_text()
    lines = full.splitlines(keepends=True)
    path.write_text("".join(lines[: rows + 1]))
    return full


def incumbent(params: dict, symbol: str = "BTCUSD") -> None:
    path = Path(f"configs/best/fhs/{symbol}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"symbol": symbol, "model": "fhs", "params": params}))


def optimize(*extra: str, symbol: str = "BTCUSD"):
    result = cli("optimize", "--model", "fhs", "--symbol", symbol, "--trials", "4", *extra)
    assert result.exit_code == 0, result.output
    return result


def scorecard(*extra: str):
    return cli("scorecard", "--json", "--runs", "8", *extra)


def test_a_commit_is_scored_on_the_bars_that_arrived_after_it(workdir: Path) -> None:
    full = cut("BTCUSD", 500)
    incumbent(BAD)
    optimize()
    committed = json.loads(Path("configs/best/fhs/BTCUSD.json").read_text())["params"]
    pending = scorecard()
    assert pending.exit_code == 0 and "no bars after" in json.loads(pending.stdout)["not_scored"][0]
    Path("trainingdata/BTCUSD.csv").write_text(full)  # 200 new bars arrive
    result = scorecard()
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    (row,) = report["decisions"]
    assert (row["study"], row["committed"], row["bars"], row["old"]) == ("fhs/BTCUSD", True, 200, "incumbent")
    # the same numbers as scoring both configs by hand on bars 500..699, 8 runs, the study's seed
    series = load_series(Path("trainingdata"), "BTCUSD")
    ends = np.arange(500, 700)
    evaluator = Evaluator(create("fhs", ModelOptions()), series, Windows(ends, ends), seed=0)
    old = evaluator.evaluate(BAD, range(8)).mae
    new = evaluator.evaluate(committed, range(8)).mae
    assert row["old_mae"] == pytest.approx(old) and row["new_mae"] == pytest.approx(new)
    assert row["change"] == pytest.approx(new / old - 1)
    assert row["verdict"] == expected_verdict(row) and row["paid_off"] == (row["verdict"] == "paid off")
    groups = {r["group"]: r for r in report["summary"]}
    assert set(groups) == {"fhs/BTCUSD", "overall"} and groups["overall"]["bars"] == 200
    overall = groups["overall"]
    assert overall[row["verdict"].replace(" ", "_")] == 1
    assert overall["paid_off"] + overall["no_clear_difference"] + overall["did_not_pay_off"] == 1
    table = cli("scorecard", "--runs", "8")
    assert table.exit_code == 0 and "fhs/BTCUSD" in table.stdout and row["verdict"] in table.stdout


def test_a_rejection_and_a_first_commit_against_the_naive_forecast(workdir: Path) -> None:
    full = cut("ETHUSD", 480)
    optimize(symbol="ETHUSD")  # no incumbent: compared with the naive zero-return forecast later
    incumbent(GOOD, "ETHUSD")
    Path("worse.toml").write_text(WORSE_SPACE)
    assert "NOT updating" in optimize("--space", "worse.toml", "--fresh", symbol="ETHUSD").stdout
    Path("trainingdata/ETHUSD.csv").write_text(full)
    first, second = json.loads(scorecard().stdout)["decisions"]
    assert first["old"] == "naive zero return" and first["committed"] is True and first["bars"] == 220
    assert second["committed"] is False and second["old"] == "incumbent"
    assert second["verdict"] == expected_verdict(second)  # keeping the incumbent was right?


def test_a_shrunk_or_rewritten_file_is_refused_and_the_others_still_scored(workdir: Path) -> None:
    btc, eth = cut("BTCUSD", 500), cut("ETHUSD", 500)
    optimize()
    optimize(symbol="ETHUSD")
    Path("trainingdata/ETHUSD.csv").write_text(eth)
    Path("trainingdata/BTCUSD.csv").write_text("".join(btc.splitlines(keepends=True)[:451]))  # 450 rows
    shrunk = scorecard()
    assert shrunk.exit_code == 2
    assert "fhs/BTCUSD decision at" in shrunk.stderr and "shrunk" in shrunk.stderr
    assert [r["study"] for r in json.loads(shrunk.stdout)["decisions"]] == ["fhs/ETHUSD"]
    lines = btc.splitlines(keepends=True)
    fields = lines[100].split(",")
    fields[4] = f"{float(fields[4]) * 1.01:.6f}"  # one close re-adjusted long before the decision
    lines[100] = ",".join(fields)
    Path("trainingdata/BTCUSD.csv").write_text("".join(lines))
    rewritten = scorecard()
    assert rewritten.exit_code == 2 and "rewritten or re-adjusted" in rewritten.stderr
    assert len(rewritten.stderr.strip().splitlines()) == 1  # one line per problem


def expected_verdict(row: dict) -> str:
    """The chosen config's change against the other beyond one standard error: paid off or did not; else unclear."""
    gain = -row["change"] if row["committed"] else row["change"]  # a rejection chose the old config
    return "paid off" if gain > row["se"] else "did not pay off" if gain < -row["se"] else "no clear difference"


def test_three_verdicts_from_the_paired_evidence() -> None:
    rng = np.random.default_rng(0)
    old = np.abs(rng.normal(0.01, 0.005, 200))
    noise = rng.normal(0, 0.0005, 200)
    noise -= noise.mean()  # "same": equal on average

    def verdict(new: np.ndarray, committed: bool) -> str:
        return Score("fhs/X", "fhs", "X", "2025-01-01", committed, 200, float(old.mean()), float(new.mean()),
                     old, new).verdict

    better, same, worse = old * 0.9 + noise, old + noise, old * 1.1 + noise
    assert [verdict(new, True) for new in (better, same, worse)] == ["paid off", "no clear difference",
                                                                     "did not pay off"]
    # a rejection kept the old config: it paid off when the rejected one would have done worse
    assert [verdict(new, False) for new in (better, same, worse)] == ["did not pay off", "no clear difference",
                                                                      "paid off"]


def test_no_history_is_bad_input(workdir: Path) -> None:
    result = cli("scorecard")
    assert result.exit_code == 2 and "no decisions yet" in result.stderr
