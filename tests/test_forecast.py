"""`orchestrator forecast` and `orchestrator.forecast`: the next bar from each symbol's champion, exactly as the
Evaluator scores it (parity per family on tiny real-architecture checkpoints), logged to forecasts.jsonl; bad input
is one line, exit 2, and writes nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import FAST_CONFIG, cli, read_json
from test_leaderboard import KRONOS_SPACE, TOTO_SPACE
from test_toto import TINY, write_checkpoint
from test_toto2 import SMALL_SPACE as TOTO2_SPACE
from test_toto2 import write_checkpoint as write_toto2

import orchestrator
from orchestrator.data import Windows, load_series, write_synthetic
from orchestrator.lifecycle import forecasts
from orchestrator.models.base import QUANTILE_LEVELS, ModelOptions, create
from orchestrator.models.toto2 import point_forecast
from orchestrator.scoring.evaluation import Evaluator

DRIFT_SPACE = """
[context_length]
type = "int"
low = 128
high = 256
[ewma_halflife]
type = "float"
low = 20.0
high = 60.0
[drift]
type = "categorical"
choices = [true]
[num_samples]
type = "int"
low = 256
high = 512
[aggregate]
type = "categorical"
choices = ["mean"]
"""
ROWS, TUNED = 320, 260  # AAA's bars, and how many of them the studies were made on
WINDOWS = ("--val-windows", "30", "--test-windows", "20", "--eval-runs", "1", "--confirm-runs", "2")
LOG = Path("configs/best/forecasts.jsonl")
KEYS = {"kind", "time", "symbol", "model", "study_uid", "trial", "params", "seed", "runs", "champion", "last_bar",
        "point", "quantiles", "quantile_closes", "data"}


def optimize(model: str, symbol: str, *extra: str) -> None:
    result = cli("optimize", "--model", model, "--symbol", symbol, *WINDOWS, *extra)
    assert result.exit_code == 0, result.output


def keep_rows(path: Path, rows: int, full: str) -> None:
    path.write_text("".join(full.splitlines(keepends=True)[: rows + 1]))


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """AAA (320 bars) and BBB (300 bars, trending 1% a bar): fhs studies made on their first 260 bars (BBB's with
    drift, so that it beats naive); AAA also has toto, toto2 and kronos configs (tiny random checkpoints)."""
    from kronos_finance._vendor.kronos_model import Kronos, KronosTokenizer

    root = tmp_path_factory.mktemp("forecast")
    weights = {"toto": write_checkpoint(root / "toto", TINY), "toto2": write_toto2(root / "toto2")}
    import torch

    torch.manual_seed(0)
    Kronos(s1_bits=4, s2_bits=4, n_layers=2, d_model=32, n_heads=4, ff_dim=64, ffn_dropout_p=0.0, attn_dropout_p=0.0,
           resid_dropout_p=0.0, token_dropout_p=0.0, learn_te=True).save_pretrained(root / "kronos")
    KronosTokenizer(d_in=6, d_model=32, n_heads=4, ff_dim=64, n_enc_layers=2, n_dec_layers=2, ffn_dropout_p=0.0,
                    attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=4, s2_bits=4, beta=0.05, gamma0=1.0, gamma=1.1,
                    zeta=0.05, group_size=4).save_pretrained(root / "tokenizer")
    weights["kronos"] = root / "kronos"
    work = root / "work"
    write_synthetic(work / "full", ["AAA"], rows=ROWS)
    write_synthetic(work / "full", ["BBB"], rows=300, seed=1, trend=0.01)  # a drift model beats naive
    (work / "trainingdata").mkdir()
    (work / "configs").mkdir()
    (work / "configs" / "orchestrator.toml").write_text(FAST_CONFIG)
    for name, text in {"toto": TOTO_SPACE, "toto2": TOTO2_SPACE, "kronos": KRONOS_SPACE, "drift": DRIFT_SPACE}.items():
        (work / f"{name}.toml").write_text(text)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        for symbol in ("AAA", "BBB"):
            keep_rows(Path(f"trainingdata/{symbol}.csv"), TUNED, Path(f"full/{symbol}.csv").read_text())
        optimize("fhs", "AAA", "--trials", "3")
        optimize("fhs", "BBB", "--trials", "2", "--space", "drift.toml")
        for model in ("toto", "toto2", "kronos"):
            tokenizer = ("--tokenizer", str(root / "tokenizer")) if model == "kronos" else ()
            optimize(model, "AAA", "--trials", "1", "--space", f"{model}.toml", "--weights", str(weights[model]),
                     *tokenizer, "--device", "cpu")
        yield {"work": work, "weights": weights}


@pytest.fixture
def tuned(night: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The night's directory as the working directory, the data files as the studies saw them, no champions.json
    and no forecast log."""
    monkeypatch.chdir(night["work"])
    for symbol in ("AAA", "BBB"):
        keep_rows(Path(f"trainingdata/{symbol}.csv"), TUNED, Path(f"full/{symbol}.csv").read_text())
    for name in ("champions.json", "forecasts.jsonl"):
        Path("configs/best", name).unlink(missing_ok=True)
    return night


def log_lines() -> list[dict]:
    return [json.loads(line) for line in LOG.read_text().splitlines()] if LOG.exists() else []


def forecast(*args: str):
    return cli("forecast", "--json", "--device", "cpu", *args)


@pytest.mark.parametrize("model", ["fhs", "toto", "toto2", "kronos"])
def test_the_forecast_is_the_evaluators_prediction_of_the_next_bar(tuned: dict, model: str) -> None:
    """forecast with seed s on the file ending at bar t == the Evaluator's one-window prediction with seed s on the
    file through bar t+1 for the window whose target is bar t+1; with one run, |forecast return - actual return| is
    the error `evaluate` scores that window with."""
    weights = () if model == "fhs" else ("--weights", f"{model}={tuned['weights'][model]}")
    result = forecast("--model", model, "--symbols", "AAA", "--runs", "3", "--seed", "5", *weights)
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)[0]
    config = read_json(f"configs/best/{model}/AAA.json")
    assert row["params"] == config["params"] and row["study_uid"] == config["study"]["uid"]
    assert row["trial"] == config["study"]["trial"] and row["last_bar"]["timestamp"] == config["data"]["last_timestamp"]
    cls = type(forecasts.LOADED[next(k for k in forecasts.LOADED if k[0] == model)])
    series = load_series(Path("full"), "AAA", cls.required_columns, cls.optional_columns)
    options = ModelOptions("cpu", None if model == "fhs" else str(tuned["weights"][model]),
                           str(tuned["work"].parent / "tokenizer") if model == "kronos" else None)
    ends = np.array([TUNED])
    evaluator = Evaluator(create(model, options), series, Windows(ends, ends), seed=5)
    expected = evaluator.predict(config["params"], range(3))
    assert row["runs"] == len(expected.runs) == (1 if model == "toto2" else 3)
    assert row["point"]["close"] == expected.point[0]
    closes = [row["quantile_closes"][str(level)] for level in QUANTILE_LEVELS]
    assert closes == [None if np.isnan(q) else q for q in expected.quantiles[0]]
    if model == "toto2":  # what it predicts: 0.1 .. 0.9, 0.25 and 0.75 read as quantile_X reads them
        assert closes[0] is None and closes[-1] is None
        knots = evaluator.encode(config["params"], "validation")[0]["quantiles"]
        assert closes[2] == float(point_forecast(knots, "quantile_0.25")[0])
    else:  # the pooled draws of every run, read as numpy.quantile reads them
        assert expected.draws.shape[1] % 3 == 0
        assert closes == list(np.quantile(expected.draws[0], QUANTILE_LEVELS))
    one = forecast("--model", model, "--symbols", "AAA", "--runs", "1", "--seed", "5", *weights)
    point = json.loads(one.stdout)[0]["point"]["return"]
    previous, actual = series.close[TUNED - 1], series.close[TUNED]
    scored = evaluator.evaluate(config["params"], range(1)).window_errors[0]
    assert abs(point - (actual / previous - 1)) == pytest.approx(scored, rel=1e-12, abs=1e-15)


def test_the_morning_after_forecasts_every_champion_logs_and_writes_csv(tuned: dict) -> None:
    for symbol in ("AAA", "BBB"):
        shutil.copy(f"full/{symbol}.csv", f"trainingdata/{symbol}.csv")  # the bars of today
    board = cli("leaderboard", "--runs", "2", "--device", "cpu")
    assert board.exit_code == 0, board.output
    champions = read_json("configs/best/champions.json")["symbols"]
    result = cli("forecast", "--device", "cpu", "--runs", "4", "--out", "forecasts.csv")
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.stdout.splitlines()) <= 80, result.stdout
    lines = log_lines()
    assert [line["symbol"] for line in lines] == ["AAA", "BBB"] and all(KEYS <= set(line) for line in lines)
    frame = pd.read_csv("forecasts.csv")
    for line, (_, csv) in zip(lines, frame.iterrows()):
        entry = champions[line["symbol"]]
        assert line["champion"] == entry["verdict"] and csv["champion"] == entry["verdict"]
        assert line["last_bar"] == {"timestamp": entry["data"]["last_timestamp"],
                                    "close": float(pd.read_csv(f"full/{line['symbol']}.csv")["close"].iloc[-1])}
        if entry["champion"] is None:
            assert line["model"] == "naive" and line["point"]["return"] == 0.0 and line["quantiles"]["0.5"] is None
            assert "no champion" in result.stdout
        else:
            assert line["model"] == entry["champion"] and line["params"] == entry["params"]
            assert line["runs"] == (1 if line["model"] == "toto2" else 4)
            assert line["data"]["bars_after_study"] == entry["data"]["rows"] - TUNED
            assert f"{entry['data']['rows'] - TUNED} bars behind" in result.stdout
            q = [v for v in line["quantiles"].values() if v is not None]
            assert q == sorted(q) and csv["close_q0.5"] == pytest.approx(line["quantile_closes"]["0.5"])
        assert csv["return"] == pytest.approx(line["point"]["return"])


def test_python_forecast_returns_the_csv_columns_and_keeps_models_loaded(tuned: dict) -> None:
    toto = str(tuned["weights"]["toto"])
    first = orchestrator.forecast(model="toto", symbols=["AAA"], runs=2, device="cpu", weights={"toto": toto})
    loaded = dict(forecasts.LOADED)
    second = orchestrator.forecast(model="toto", symbols=["AAA"], runs=2, device="cpu", weights={"toto": toto})
    assert all(forecasts.LOADED[key] is model for key, model in loaded.items())  # not loaded again
    assert list(first.columns) == list(forecasts.flat(log_lines()[0])) and len(log_lines()) == 2
    pd.testing.assert_frame_equal(first.drop(columns="notes"), second.drop(columns="notes"))
    light = subprocess.run([sys.executable, "-c", "import sys, orchestrator; print('torch' in sys.modules, "
                            "'pandas' in sys.modules)"],
                           capture_output=True, text=True, check=True)
    assert light.stdout.split() == ["False", "False"]


def test_a_changed_config_is_flagged_against_champions_json(tuned: dict) -> None:
    assert cli("leaderboard", "--runs", "2", "--symbols", "BBB", "--device", "cpu", "--data-dir", "full").exit_code == 0
    entry = read_json("configs/best/champions.json")["symbols"]["BBB"]
    assert entry["champion"] == "fhs"
    path = Path("configs/best/fhs/BBB.json")
    before = path.read_text()
    config = json.loads(before)
    # a later night that kept it rewrites its bookkeeping (commit.standing, selected_until): not a change
    path.write_text(json.dumps({**config, "beats_naive": True, "selected_until": "2030-01-01T00:00:00+00:00",
                                "last_checked": {"time": "2030-01-02T00:00:00+00:00", "study": "fhs/BBB"}}))
    result = cli("forecast", "--symbols", "BBB", "--device", "cpu", "--runs", "2", "--data-dir", "full")
    assert result.exit_code == 0 and "changed" not in result.stdout, result.output
    config["params"]["num_samples"] += 1
    config["study"]["trial"] += 100
    path.write_text(json.dumps(config))
    try:
        result = cli("forecast", "--symbols", "BBB", "--device", "cpu", "--runs", "2", "--data-dir", "full")
        assert result.exit_code == 0, result.output
        assert "changed since the leaderboard chose it (params, trial)" in result.stdout
        line = log_lines()[-1]  # the champion's config, as champions.json names it
        assert line["params"] == entry["params"] and line["trial"] == entry["models"]["fhs"]["trial"]
    finally:
        path.write_text(before)


def test_a_dividend_adjustment_the_roll_forward_recognised_is_accepted(tuned: dict) -> None:
    """Earlier bars rescaled by one factor: refused until a roll-forward recognised the adjustment (as the lineage
    accepts it), then forecast from the config tuned before it, on today's adjusted bars."""
    write_synthetic(Path("full"), ["CCC"], rows=300, seed=2, trend=0.01)
    full = Path("full/CCC.csv").read_text()
    keep_rows(Path("trainingdata/CCC.csv"), TUNED, full)
    optimize("fhs", "CCC", "--trials", "1", "--space", "drift.toml")
    config = read_json("configs/best/fhs/CCC.json")
    adjusted = pd.read_csv("full/CCC.csv").head(TUNED + 10)
    adjusted[["open", "high", "low", "close"]] *= 0.98  # a 2% dividend folded into every earlier bar
    adjusted.to_csv("trainingdata/CCC.csv", index=False, float_format="%.2f")  # written at 2 decimals
    refused = forecast("--model", "fhs", "--symbols", "CCC", "--runs", "2")
    assert refused.exit_code == 2 and "rewritten or re-adjusted" in refused.stderr and not LOG.exists()
    optimize("fhs", "CCC", "--trials", "1", "--space", "drift.toml")  # the night: rolls forward, recognises it
    kept = read_json("configs/best/fhs/CCC.json")  # one trial, the incumbent's own params: kept
    assert (kept["params"], kept["study"], kept["committed_at"]) == (config["params"], config["study"],
                                                                      config["committed_at"])
    result = cli("forecast", "--model", "fhs", "--symbols", "CCC", "--runs", "2", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "earlier bars rescaled by 0.98" in result.stdout and "10 bars behind" in result.stdout
    (line,) = log_lines()
    assert line["last_bar"]["close"] == round(float(adjusted["close"].iloc[-1]), 2)
    assert line["data"]["bars_after_study"] == 10


def edit(path: str, change) -> None:
    config = read_json(path)
    change(config)
    Path(path).write_text(json.dumps(config))


@pytest.mark.parametrize("case", ["no champions", "unknown model", "changed bars", "short file", "cannot run",
                                  "missing weights", "bad out", "bad weights"])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tuned: dict, case: str, tmp_path: Path) -> None:
    args, expected = {
        "no champions": ((), "run `orchestrator leaderboard` first, or pass --model"),
        "unknown model": (("--model", "prophet"), "model 'prophet': unknown"),
        "changed bars": (("--model", "fhs", "--data-dir", str(tmp_path)), "rewritten or re-adjusted"),
        "short file": (("--model", "fhs", "--symbols", "AAA", "--data-dir", str(tmp_path)), "25 rows, fewer than the"),
        "cannot run": (("--model", "fhs", "--symbols", "BBB"), "this version cannot run its params"),
        "missing weights": (("--model", "toto", "--weights", f"toto={tmp_path / 'none'}"), "weights"),
        "bad out": (("--model", "fhs", "--out", str(tmp_path / "f.txt")), "write FILE.csv or FILE.json"),
        "bad weights": (("--model", "fhs", "--weights", "prophet=x"), "is not MODEL=VALUE"),
    }[case]
    configs = {p: p.read_text() for p in Path("configs/best").rglob("*.json")}
    if case == "changed bars":
        frame = pd.read_csv("trainingdata/AAA.csv")
        frame.loc[10, "close"] *= 1.01  # one earlier bar edited
        frame.to_csv(tmp_path / "AAA.csv", index=False, float_format="%.6f")
        shutil.copy("trainingdata/BBB.csv", tmp_path / "BBB.csv")
    elif case == "short file":  # the last 25 bars only: fewer than any fhs config reads (32 at least)
        pd.read_csv("trainingdata/AAA.csv").tail(25).to_csv(tmp_path / "AAA.csv", index=False, float_format="%.6f")
    elif case == "cannot run":
        edit("configs/best/fhs/BBB.json", lambda c: c["params"].update(aggregate="mode"))
    try:
        result = cli("forecast", "--device", "cpu", "--out", "out.csv", *args) if case != "bad out" else \
            cli("forecast", "--device", "cpu", *args)
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
        assert not LOG.exists() and not Path("out.csv").exists() and not (tmp_path / "f.txt").exists()
    finally:
        for path, text in configs.items():
            path.write_text(text)
