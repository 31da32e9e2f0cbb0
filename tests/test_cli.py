"""status, best and demo through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import cli, read_json
from test_forecast_scores import scores_through_the_cli


def test_status_json_reports_every_study_from_the_storage(workdir: Path) -> None:
    assert json.loads(cli("status", "--json").stdout) == []
    assert not Path("studies/optuna.db").exists()  # a reading command creates no storage
    assert cli("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "6").exit_code == 0
    assert cli("optimize", "--model", "fhs", "--symbol", "ETHUSD", "--trials", "4").exit_code == 0
    rows = {r["study"]: r for r in json.loads(cli("status", "--json").stdout)}
    assert set(rows) == {"fhs/BTCUSD", "fhs/ETHUSD"}
    btc = rows["fhs/BTCUSD"]
    assert set(btc) == {"study", "model", "symbol", "complete", "pruned", "failed", "running", "target",
                        "best_value", "incumbent_value", "naive_mae", "committed", "evidence", "beats_naive", "decision",
                        "incumbent"}
    assert btc["incumbent"]["validation_mae"] == read_json(Path("configs/best/fhs/BTCUSD.json"))["validation"]["mae"]
    assert btc["committed"] is True and btc["evidence"] is None  # nothing to compare with: committed
    assert btc["beats_naive"] == (btc["best_value"] is not None and btc["decision"].find("WARNING") < 0)
    assert (btc["model"], btc["symbol"], btc["target"], btc["running"]) == ("fhs", "BTCUSD", 6, 0)
    assert btc["complete"] + btc["pruned"] + btc["failed"] == 6
    assert btc["incumbent_value"] is None  # no incumbent existed when its decision was made
    table = cli("status")
    assert "fhs/ETHUSD" in table.stdout


def test_stale_stored_mae_of_the_incumbent_is_never_used(workdir: Path) -> None:
    path = Path("configs/best/fhs/BTCUSD.json")
    path.parent.mkdir(parents=True)
    params = {"context_length": 32, "ewma_halflife": 2.0, "drift": True, "num_samples": 64, "aggregate": "quantile_0.1"}
    path.write_text(json.dumps({"params": params, "validation": {"mae": 1e-9}}))  # measured elsewhere, long ago
    result = cli("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "6")
    assert "UPDATING" in result.stdout
    assert read_json(path)["previous"]["mae"] > 1e-3  # re-evaluated here, on these windows and seeds
    rows = json.loads(cli("status", "--json").stdout)
    assert rows[0]["incumbent_value"] == read_json(path)["previous"]["mae"]


def test_best_prints_the_committed_config(workdir: Path) -> None:
    missing = cli("best", "--model", "fhs", "--symbol", "BTCUSD")
    assert missing.exit_code == 2 and "no committed config" in missing.stderr
    assert cli("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "4").exit_code == 0
    shown = cli("best", "--model", "fhs", "--symbol", "BTCUSD", "--json")
    assert json.loads(shown.stdout) == read_json(Path("configs/best/fhs/BTCUSD.json"))
    assert "validation MAE" in cli("best", "--model", "fhs", "--symbol", "BTCUSD").stdout


def test_demo_runs_everything_under_studies_demo(workdir: Path) -> None:
    before = {p for p in workdir.rglob("*")}
    result = cli("demo")
    assert result.exit_code == 0, result.output
    written = {p for p in workdir.rglob("*")} - before
    assert written and all(Path("studies/demo") in p.relative_to(workdir).parents or
                           p.relative_to(workdir) in (Path("studies"), Path("studies/demo")) for p in written)
    for symbol in ("DEMO_A", "DEMO_TREND"):
        assert read_json(Path(f"studies/demo/best/fhs/{symbol}.json"))["symbol"] == symbol
    history = [entry for entry in map(json.loads, Path("studies/demo/best/history.jsonl").read_text().splitlines())
               if entry.get("kind", "decision") == "decision"]
    weak, better, more, trend = history
    beats_naive = lambda entry: entry["candidate"]["validation"]["mae"] < entry["naive_mae"]  # noqa: E731
    assert weak["committed"] and weak["incumbent"] is None and not beats_naive(weak)  # the weak start
    assert better["committed"] and better["evidence"]["confidence"] >= 0.95  # a commit on evidence
    assert beats_naive(better) and better["study"] == more["study"] == "fhs/DEMO_A"
    assert trend["study"] == "fhs/DEMO_TREND" and trend["committed"] and beats_naive(trend)  # beats a random walk
    closing = result.stdout.split("what each decision shows:")[1]
    assert "DEMO_A, full search: a commit on evidence (p=" in closing and "DEMO_TREND:" in closing
    assert closing.count("beats naive") >= 2 and "no better than naive" in closing
    assert "orchestrator status --storage" in closing
    scores_through_the_cli(Path("studies/demo/best"))  # leaderboard, forecast, a bar comes, scorecard
