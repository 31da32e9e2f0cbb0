"""Toto 2.0: the batched encode against the toto-2 package's own forecast, deterministic quantiles, one run per trial,
on a tiny random checkpoint built with the package's own classes."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

from conftest import cli, read_json
from orchestrator.data import Contexts, load_series, make_windows, synthetic_ohlcv, write_synthetic
from orchestrator.errors import BadInput
from orchestrator.scoring.evaluation import Evaluator
from orchestrator.models.base import ModelOptions
from orchestrator.models.toto2 import DEFAULT_WEIGHTS, FORECAST_OPTIONS, Toto2Forecaster, point_forecast
from orchestrator.search.objective import Objective
from orchestrator.search.space import load_space

TINY = {  # 62k parameters; the published checkpoints' flags (rotary xPos, per-dim scale, attention bias) at toy size
    "patch_size": 16, "d_model": 32, "num_heads": 2, "num_layers": 2, "layer_group_size": 2,
    "num_variate_layers_per_group": 1, "variate_layer_first": False, "attn_bias": True, "qk_norm": False,
    "per_dim_scale": True, "use_xpos": True, "residual_mult": 0.75, "norm_eps": 1e-4,
}
SMALL_SPACE = """
[context_length]
type = "categorical"
choices = [64, 128]

[aggregate]
type = "categorical"
choices = ["median", "mean", "trimmed_mean_20", "quantile_0.45"]
"""
HOW_TO = ("--weights DIR", "config.json", "model.safetensors", "HF_HUB_OFFLINE=1")


def write_checkpoint(directory: Path, seed: int = 0) -> Path:
    """A random Toto2Model saved as the Hugging Face repos lay it out (config.json + model.safetensors)."""
    from toto2.configuration import Toto2ModelConfig
    from toto2.model import Toto2Model

    torch.manual_seed(seed)
    ratio = Toto2ModelConfig.compute_residual_attn_ratio(512, TINY["patch_size"])
    Toto2Model(Toto2ModelConfig(**TINY, residual_attn_ratio=ratio)).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("toto2") / "tiny")


@pytest.fixture(scope="session")
def forecaster(weights: Path) -> Toto2Forecaster:
    return Toto2Forecaster(ModelOptions(device="cpu", weights=str(weights)))


def package_forecast(model: torch.nn.Module, bars: np.ndarray) -> torch.Tensor:
    """The package's own forecast of one window as a user would call it: the window's bars, left-padded to whole
    patches and masked; the nine next-bar quantiles."""
    patch = model.config.patch_size
    series = torch.zeros(1, 1, -(-len(bars) // patch) * patch)
    mask = torch.zeros_like(series, dtype=torch.bool)
    series[..., series.shape[-1] - len(bars):] = torch.from_numpy(bars).float()
    mask[..., series.shape[-1] - len(bars):] = True
    inputs = {"target": series, "target_mask": mask, "series_ids": torch.zeros(1, 1, dtype=torch.long)}
    return model.forecast(inputs, 1, **FORECAST_OPTIONS)[:, 0, 0, 0]


@pytest.mark.parametrize("length", [64, 72])
def test_encode_equals_the_package_forecast_of_each_window(forecaster: Toto2Forecaster, length: int) -> None:
    # Windows with 38 and 40 bars of history read fewer bars than the context: one whole padded patch, then a patch
    # with 6 (scaling backfilled) or 8 observed bars. 72 is not a multiple of the patch size 16: 8 more bars masked.
    frame = synthetic_ohlcv("BTCUSD", rows=400)
    contexts = Contexts(frame=frame, ends=np.array([38, 40, 70, 200, 399]))
    ours = forecaster.encode(contexts, {"context_length": length})["quantiles"]
    assert ours.shape == (5, 9) and torch.all(ours[:, 1:] >= ours[:, :-1])
    close = frame["close"].to_numpy()
    with torch.inference_mode():
        theirs = torch.stack([package_forecast(forecaster.model, close[max(end - length, 0):end])
                              for end in contexts.ends])
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    other = forecaster.encode(contexts, {"context_length": 128})["quantiles"]
    assert not torch.allclose(other[2:], ours[2:])  # the context length reaches the network


def test_the_point_rules_read_the_nine_quantiles() -> None:
    knots = torch.tensor([[1.0, 2, 3, 4, 5, 6, 7, 8, 20]])
    expected = {
        "median": 5.0, "mean": 56 / 9, "quantile_0.1": 1.0, "quantile_0.45": 4.5, "quantile_0.5": 5.0,
        "quantile_0.85": 14.0, "quantile_0.9": 20.0, "trimmed_mean_20": 5.0, "trimmed_mean_40": 5.0,
        "lower_trimmed_mean_20": 4.5, "upper_trimmed_mean_20": 55 / 8,
    }
    for rule, value in expected.items():
        assert point_forecast(knots, rule).item() == pytest.approx(value), rule
    for outside in ("quantile_0.05", "quantile_0.95"):
        with pytest.raises(ValueError, match="0.1 to 0.9"):
            point_forecast(knots, outside)


def test_forecasts_are_deterministic_and_a_trial_makes_one_run(
    forecaster: Toto2Forecaster, weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_synthetic(tmp_path, ["BTCUSD"], rows=300)
    series = load_series(tmp_path, "BTCUSD")
    windows = make_windows(series, 60, 20, 64)
    contexts = Contexts.of(series, windows.validation)
    encoded = forecaster.encode(contexts, {"context_length": 64})
    again = Toto2Forecaster(ModelOptions(device="cpu", weights=str(weights))).encode(contexts, {"context_length": 64})
    assert torch.equal(again["quantiles"], encoded["quantiles"])
    torch.manual_seed(5)
    state = torch.random.get_rng_state()
    one, two = (forecaster.sample(encoded, 1, {"aggregate": "mean"}, torch.Generator().manual_seed(s)) for s in (1, 2))
    assert one.shape == (60, 1) and torch.equal(one, two)
    assert torch.equal(torch.random.get_rng_state(), state)  # no global randomness either

    calls = []
    network = forecaster._forecast
    monkeypatch.setattr(forecaster, "_forecast", lambda *a: calls.append(a[0].shape) or network(*a))
    evaluator = Evaluator(forecaster, series, windows, seed=0)
    first = evaluator.evaluate({"context_length": 64, "aggregate": "median"}, range(3))
    assert first.runs == [0] and len(first.run_maes) == 1 and first.sem == 0.0
    other = evaluator.evaluate({"context_length": 64, "aggregate": "quantile_0.45"}, range(3, 6))
    assert other.cache_hit and other.runs == [3] and other.mae != first.mae
    assert len(calls) == 1  # a new point rule costs no network call

    space = tmp_path / "space.toml"
    space.write_text(SMALL_SPACE)
    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=0, n_warmup_steps=0),
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(Objective(load_space(space, Toto2Forecaster.params), evaluator, range(3)), n_trials=8)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)  # one report: nothing to prune
    assert all(len(t.intermediate_values) == 1 for t in study.trials if "reused_from" not in t.user_attrs)


def test_compiled_encode_is_one_graph_per_context_length(
    weights: Path, forecaster: Toto2Forecaster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Dynamo's tracing decides graphs, breaks and recompiles; Inductor's C++ code generation would add a minute on
    # 2 CPU cores and is exercised on a GPU by tests/benchmarks/bench_gpu.py.
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled = Toto2Forecaster(ModelOptions(device="cpu", weights=str(weights), compile=True))
    write_synthetic(tmp_path, ["BTCUSD"], rows=400)
    series = load_series(tmp_path, "BTCUSD")
    windows = make_windows(series, 250, 60, 64)
    for split in ("validation", "test"):  # 250 and 60 windows: batches of 32 rows, one compiled shape
        contexts = Contexts.of(series, windows.of(split))
        got, want = (f.encode(contexts, {"context_length": 64}) for f in (compiled, forecaster))
        torch.testing.assert_close(got["quantiles"], want["quantiles"], rtol=1e-5, atol=1e-5)
    info = compiled.info()
    assert info["compiled"] and info["compiles"] == 1 and info["recompiles"] == 0
    assert not torch._dynamo.utils.counters["graph_break"]  # Python 3.11's cached_property lock is kept out


def _study(name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage="sqlite:///studies/optuna.db")


def test_cli_one_run_per_trial_resume_worker_commit_and_the_views(workdir: Path, weights: Path) -> None:
    full = Path("trainingdata/BTCUSD.csv").read_text()
    Path("trainingdata/BTCUSD.csv").write_text("".join(full.splitlines(keepends=True)[:601]))  # 100 bars come later
    Path("toto2.toml").write_text(SMALL_SPACE)
    incumbent = Path("configs/best/toto2/BTCUSD.json")
    incumbent.parent.mkdir(parents=True)
    incumbent.write_text(json.dumps({"symbol": "BTCUSD", "model": "toto2",
                                     "params": {"context_length": 128, "aggregate": "quantile_0.45"}}))
    args = ("--model", "toto2", "--symbol", "BTCUSD", "--weights", str(weights), "--space", "toto2.toml")
    first = cli("optimize", *args, "--trials", "6")  # the config's default eval runs (3) and confirm runs (3)
    assert first.exit_code == 0, first.output
    assert first.stdout.count("does not sample") == 1 and "(best trial, one run)" in first.stdout
    study = _study("toto2/BTCUSD")
    attrs = study.user_attrs
    assert (attrs["eval_runs"], attrs["settings"]["eval_runs"], attrs["settings"]["confirm_runs"]) == (1, 1, 1)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert all(len(t.user_attrs.get("run_maes", [0])) == 1 for t in study.trials)
    decision = json.loads(Path("configs/best/history.jsonl").read_text().splitlines()[0])
    assert decision["candidate"]["validation"]["runs"] == decision["incumbent"]["validation"]["runs"] == 1
    assert decision["evidence"]["windows"] == decision["candidate"]["validation"]["windows"] == 250
    plots = {m.filename for m in optuna.artifacts.get_all_artifact_meta(study)}
    assert f"forecast_trial{decision['trial']}.png" in plots

    resumed = cli("optimize", *args, "--trials", "9", "--eval-runs", "3")  # not a mismatch: the study records 1
    assert resumed.exit_code == 0, resumed.output
    assert sum(t.state.is_finished() for t in _study("toto2/BTCUSD").trials) == 9
    worked = cli("worker", "--study", "toto2/BTCUSD", "--trials", "11")
    assert worked.exit_code == 0, worked.output
    committed = cli("commit", "--study", "toto2/BTCUSD")
    assert committed.exit_code == 0 and "toto2/BTCUSD" in committed.stdout, committed.output

    (row,) = json.loads(cli("status", "--json").stdout)
    assert (row["study"], row["model"], row["complete"]) == ("toto2/BTCUSD", "toto2", 11)
    best = read_json(incumbent)
    assert best["validation"]["runs"] == best["test"]["runs"] == best["search"]["runs"] == 1
    assert "toto2/BTCUSD" in cli("best", "--model", "toto2", "--symbol", "BTCUSD").stdout
    assert cli("report", "--out", "report.html").exit_code == 0 and "toto2/BTCUSD" in Path("report.html").read_text()
    Path("trainingdata/BTCUSD.csv").write_text(full)
    scored = cli("scorecard", "--json")
    assert scored.exit_code == 0, scored.output
    rows = json.loads(scored.stdout)["decisions"]
    assert rows and all((r["study"], r["bars"]) == ("toto2/BTCUSD", 100) for r in rows)

    # the leaderboard scores the quantiles: CRPS approximated from the nine levels (twice the mean pinball loss,
    # by hand here), the 80% interval 0.1 .. 0.9 and no 90% figure
    board = cli("leaderboard", "--json")
    assert board.exit_code == 0, board.output
    (row,) = json.loads(board.stdout)["symbols"]
    series = load_series(Path("trainingdata"), "BTCUSD")
    stamps = [t.isoformat() for t in series.frame["timestamp"]]
    ends = np.arange(stamps.index(row["windows"]["first"]), stamps.index(row["windows"]["last"]) + 1)
    forecaster = Toto2Forecaster(ModelOptions(device="cpu", weights=str(weights)))
    quantiles = forecaster.encode(Contexts.of(series, ends), read_json(incumbent)["params"])["quantiles"]
    previous = series.close[ends - 1][:, None]
    q, y = quantiles.double().numpy() / previous - 1, series.close[ends] / series.close[ends - 1] - 1
    levels = np.arange(1, 10) / 10
    pinball = np.where(y[:, None] >= q, levels * (y[:, None] - q), (1 - levels) * (q - y[:, None]))
    toto2 = row["models"]["toto2"]
    assert toto2["crps"] == pytest.approx(2 * pinball.mean(), rel=1e-6) and toto2["crps_approximate"] is True
    assert toto2["coverage"]["80"]["rate"] == np.mean((q[:, 0] <= y) & (y <= q[:, 8]))
    assert toto2["coverage"]["90"] is None and row["models"]["naive"]["crps_approximate"] is False
    assert "~" in cli("leaderboard").stdout  # the table marks the approximation


def test_cli_bad_space_and_missing_weights_exit_2_and_write_nothing(workdir: Path, weights: Path) -> None:
    Path("bad.toml").write_text(SMALL_SPACE.replace('"quantile_0.45"', '"quantile_0.05"'))
    bad_space = cli("optimize", "--model", "toto2", "--symbol", "BTCUSD", "--weights", str(weights), "--space",
                    "bad.toml")
    assert bad_space.exit_code == 2 and "[aggregate] quantile_0.05" in bad_space.stderr, bad_space.output
    missing = cli("optimize", "--model", "toto2", "--symbol", "BTCUSD", "--weights", str(workdir / "nowhere"))
    lines = missing.stderr.strip().splitlines()
    assert missing.exit_code == 2 and len(lines) == 1 and all(part in lines[0] for part in HOW_TO), missing.output
    assert not Path("studies").exists() and not Path("configs/best").exists()


@pytest.mark.parametrize("what", ["no config.json", "garbage safetensors", "missing tensor", "other architecture"])
def test_unreadable_weights_say_how_to_provide_them(weights: Path, tmp_path: Path, what: str) -> None:
    import safetensors.torch

    directory = tmp_path / "weights"
    directory.mkdir()
    for name in ("config.json", "model.safetensors"):
        (directory / name).write_bytes((weights / name).read_bytes())
    if what == "no config.json":
        (directory / "config.json").unlink()
    elif what == "garbage safetensors":
        (directory / "model.safetensors").write_bytes(b"\x00garbage" * 100)
    elif what == "missing tensor":
        state = safetensors.torch.load_file(str(directory / "model.safetensors"))
        state.pop(next(iter(state)))
        safetensors.torch.save_file(state, str(directory / "model.safetensors"))
    else:
        (directory / "config.json").write_text(json.dumps({**read_json(directory / "config.json"), "d_model": 64}))
    with pytest.raises(BadInput) as error:
        Toto2Forecaster(ModelOptions(device="cpu", weights=str(directory)))
    message = str(error.value)
    assert "\n" not in message and all(part in message for part in HOW_TO), message


LOAD = """
import sys
from orchestrator.errors import BadInput
from orchestrator.models.base import ModelOptions
from orchestrator.models.toto2 import Toto2Forecaster
for weights in sys.argv[1:]:
    try:
        print(Toto2Forecaster(ModelOptions(device="cpu", weights=weights)).info()["weights"])
    except BadInput as exc:
        print("BadInput:", exc)
"""


def test_a_hugging_face_id_loads_offline_from_a_populated_cache(weights: Path, tmp_path: Path) -> None:
    snapshot = tmp_path / "hub" / f"models--{DEFAULT_WEIGHTS.replace('/', '--')}" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (snapshot / name).write_bytes((weights / name).read_bytes())
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    env = {**os.environ, "HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", LOAD, DEFAULT_WEIGHTS, "Datadog/Toto-2.0-22m"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    loaded, missing = done.stdout.strip().splitlines()
    assert loaded == DEFAULT_WEIGHTS, done.stdout + done.stderr
    assert missing.startswith("BadInput:") and all(part in missing for part in HOW_TO), missing


def test_launch_runs_a_toto2_study_in_a_worker_process(workdir: Path, weights: Path) -> None:
    Path("configs/spaces").mkdir()
    Path("configs/spaces/toto2.toml").write_text(SMALL_SPACE)
    done = cli("launch", "--models", "toto2", "--symbols", "ETHUSD", "--weights", str(weights), "--trials", "4",
               "--save-summary", "summary.json")
    assert done.exit_code == 0, done.output
    (row,) = read_json("summary.json")
    assert (row["model"], row["status"], row["trials"], row["target"]) == ("toto2", "committed", 4, 4)
    assert _study("toto2/ETHUSD").user_attrs["eval_runs"] == 1
