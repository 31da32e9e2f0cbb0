"""The commit protocol through the CLI: fair comparison, ties keep the incumbent, atomic files, history, warm starts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna

from conftest import cli, read_json

BEST = Path("configs/best/fhs/BTCUSD.json")
HISTORY = Path("configs/best/history.jsonl")
GOOD = {"context_length": 128, "ewma_halflife": 20.0, "drift": False, "num_samples": 1024, "aggregate": "median"}
BAD = {"context_length": 32, "ewma_halflife": 2.0, "drift": True, "num_samples": 64, "aggregate": "quantile_0.1"}
ONE_CONFIG = """
[context_length]
type = "int"
low = 64
high = 64
[ewma_halflife]
type = "float"
low = 10.0
high = 10.0
[num_samples]
type = "categorical"
choices = [256]
[aggregate]
type = "categorical"
choices = ["median"]
"""


def optimize(*extra: str, trials: int = 8):
    return cli("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", str(trials), *extra)


def history() -> list[dict]:
    return [json.loads(line) for line in HISTORY.read_text().splitlines()]


def kept(record: dict) -> dict:
    """A committed record without what each decision that keeps it updates (how it stands, what it was selected
    on): a kept config's params, scores and commit time never change."""
    return {k: v for k, v in record.items() if k not in ("beats_naive", "last_checked", "selected_until")}


def write_incumbent(params: dict) -> bytes:
    BEST.parent.mkdir(parents=True, exist_ok=True)
    BEST.write_text(json.dumps({"symbol": "BTCUSD", "model": "fhs", "params": params}))
    return BEST.read_bytes()


def test_first_study_commits_a_complete_record(workdir: Path) -> None:
    result = optimize()
    assert result.exit_code == 0, result.output
    assert "UPDATING fhs/BTCUSD: MAE" in result.stdout and "(no incumbent)" in result.stdout
    record = read_json(BEST)
    for key in ("symbol", "model", "params", "validation", "test", "previous", "data", "study", "committed_at",
                "version"):
        assert key in record
    assert record["previous"] is None
    assert {"mae", "sem", "runs", "windows"} <= set(record["validation"]) and record["validation"]["windows"] == 250
    assert {"mae", "sem", "runs", "windows"} <= set(record["test"]) and record["test"]["windows"] == 60
    assert record["validation"]["runs"] == 3
    assert set(record["data"]) >= {"path", "sha256", "rows", "last_timestamp"} and record["data"]["rows"] == 700
    assert record["study"]["name"] == "fhs/BTCUSD" and record["study"]["storage"] == "sqlite:///studies/optuna.db"
    study = optuna.load_study(study_name="fhs/BTCUSD", storage="sqlite:///studies/optuna.db")
    assert record["params"] == study.trials[record["study"]["trial"]].params
    assert [h["committed"] for h in history()] == [True]


def test_better_candidate_replaces_incumbent_and_records_previous_mae(workdir: Path) -> None:
    write_incumbent(BAD)
    result = optimize()
    assert result.exit_code == 0, result.output
    assert "UPDATING fhs/BTCUSD: MAE" in result.stdout and "->" in result.stdout
    record, (decision,) = read_json(BEST), history()
    assert record["params"] != BAD
    assert record["previous"]["mae"] == decision["incumbent"]["validation"]["mae"]
    assert record["validation"]["mae"] < record["previous"]["mae"]
    # both were scored on the same confirm runs (fresh seeds: not the search runs)
    assert decision["candidate"]["validation"]["runs"] == decision["incumbent"]["validation"]["runs"] == 3


def test_better_incumbent_is_kept_byte_for_byte(workdir: Path) -> None:
    before = write_incumbent(GOOD)
    bad_space = ONE_CONFIG.replace('choices = ["median"]', 'choices = ["quantile_0.1", "quantile_0.2"]')
    Path("bad.toml").write_text(bad_space)
    result = optimize("--space", "bad.toml")
    assert result.exit_code == 0, result.output
    assert "NOT updating fhs/BTCUSD: candidate" in result.stdout and ">= incumbent" in result.stdout
    assert kept(read_json(BEST)) == json.loads(before)  # only how it stands tonight was added
    assert read_json(BEST)["last_checked"]["mae"] == history()[0]["incumbent"]["validation"]["mae"]
    (decision,) = history()
    assert decision["committed"] is False
    assert decision["candidate"]["validation"]["mae"] >= decision["incumbent"]["validation"]["mae"]


def test_a_tie_does_not_commit(workdir: Path) -> None:
    Path("one.toml").write_text(ONE_CONFIG)
    assert optimize("--space", "one.toml", trials=3).exit_code == 0
    committed = BEST.read_bytes()
    result = optimize("--space", "one.toml", "--fresh", trials=3)
    assert result.exit_code == 0, result.output
    assert "NOT updating" in result.stdout
    assert kept(read_json(BEST)) == kept(json.loads(committed))
    first, second = history()
    assert (first["committed"], second["committed"]) == (True, False)
    assert second["candidate"]["validation"]["mae"] == second["incumbent"]["validation"]["mae"]


def test_rerun_of_a_finished_study_decides_once(workdir: Path) -> None:
    assert optimize().exit_code == 0
    committed = BEST.read_bytes()
    result = optimize()
    assert result.exit_code == 0
    assert "unchanged since its decision at" in result.stdout
    assert len(history()) == 1 and BEST.read_bytes() == committed


def test_incumbent_is_the_first_trial_and_other_symbols_transfer(workdir: Path) -> None:
    write_incumbent(GOOD)
    assert optimize().exit_code == 0
    result = cli("optimize", "--model", "fhs", "--symbol", "ETHUSD", "--trials", "5")
    assert result.exit_code == 0, result.output
    storage = "sqlite:///studies/optuna.db"
    btc = optuna.load_study(study_name="fhs/BTCUSD", storage=storage)
    assert btc.trials[0].params == GOOD and btc.trials[0].user_attrs["warm_start"] == "incumbent"
    eth = optuna.load_study(study_name="fhs/ETHUSD", storage=storage)
    committed = read_json(BEST)["params"]
    assert eth.trials[0].params == committed
    assert eth.trials[0].user_attrs == {**eth.trials[0].user_attrs, "warm_start": "transfer", "transfer_from": "BTCUSD"}


def test_no_transfer_flag(workdir: Path) -> None:
    write_incumbent(GOOD)
    assert optimize(trials=3).exit_code == 0
    assert cli("optimize", "--model", "fhs", "--symbol", "ETHUSD", "--trials", "3", "--no-transfer").exit_code == 0
    eth = optuna.load_study(study_name="fhs/ETHUSD", storage="sqlite:///studies/optuna.db")
    assert all("warm_start" not in t.user_attrs for t in eth.trials)


def test_incomparable_resume_is_refused_and_fresh_archives(workdir: Path) -> None:
    assert optimize(trials=4).exit_code == 0
    refused = optimize("--eval-runs", "2", trials=4)
    assert refused.exit_code == 2
    assert "eval_runs was 3, now 2" in refused.stderr and "--fresh" in refused.stderr
    fresh = optimize("--eval-runs", "2", "--fresh", trials=4)
    assert fresh.exit_code == 0, fresh.output
    names = {s.study_name for s in optuna.get_all_study_summaries("sqlite:///studies/optuna.db")}
    assert "fhs/BTCUSD" in names and any(n.startswith("fhs/BTCUSD@") for n in names)


def test_cmaes_starts_at_the_incumbent(workdir: Path) -> None:
    write_incumbent({**GOOD, "context_length": 400})
    result = optimize("--sampler", "cmaes", trials=12)
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="fhs/BTCUSD", storage="sqlite:///studies/optuna.db")
    assert len(study.trials) == 12 and study.trials[0].params["context_length"] == 400
    # CMA-ES's first generation is centred on the incumbent (400), not on the log-space middle of [32, 512] (128)
    lengths = [t.params["context_length"] for t in study.trials[1:7]]
    assert abs(np.log(np.median(lengths)) - np.log(400)) < abs(np.log(np.median(lengths)) - np.log(128))


def test_cmaes_fresh_study_warm_starts_from_the_archived_one(workdir: Path) -> None:
    assert optimize("--sampler", "cmaes", trials=6).exit_code == 0  # too few complete trials to warm-start from
    small = optimize("--sampler", "cmaes", "--fresh", trials=30)
    assert small.exit_code == 0, small.output
    again = optimize("--sampler", "cmaes", "--fresh", trials=6)  # 30 archived trials: WS-CMA-ES source
    assert again.exit_code == 0, again.output
    names = {s.study_name for s in optuna.get_all_study_summaries("sqlite:///studies/optuna.db")}
    assert len([n for n in names if n.startswith("fhs/BTCUSD@")]) == 2
