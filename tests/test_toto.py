"""Toto's backbone-once fast path against the toto-ts package, on a tiny random checkpoint built with its own classes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import safetensors.torch
import torch
from scipy import stats

from orchestrator.decisions.commit import _spa
from orchestrator.data import Contexts, load_series, make_windows, synthetic_ohlcv, write_synthetic
from orchestrator.errors import BadInput
from orchestrator.scoring.evaluation import EncodeCache, Evaluator
from orchestrator.models.base import Encoded, ForecastError, ModelOptions
from orchestrator.models.toto import DEFAULT_WEIGHTS, TotoForecaster
from orchestrator.search.objective import Objective
from orchestrator.search.space import load_space

TINY = {  # 152k parameters; the full model's layout at toy size
    "patch_size": 16, "stride": 16, "embed_dim": 64, "num_layers": 2, "num_heads": 4, "mlp_hidden_dim": 128,
    "dropout": 0.0, "spacewise_every_n_layers": 2, "spacewise_first": False, "use_memory_efficient_attention": False,
    "scaler_cls": "<class 'model.scaler.CausalPatchStdMeanScaler'>",
    "output_distribution_classes": ["<class 'model.distribution.MixtureOfStudentTsOutput'>"],
    "output_distribution_kwargs": {"k_components": 4},
}
SMALL_SPACE = """
[context_length]
type = "categorical"
choices = [64, 128]

[num_samples]
type = "int"
low = 64
high = 512
log = true

[aggregate]
type = "categorical"
choices = ["mean", "median", "trimmed_mean_10", "quantile_0.45"]
"""
HOW_TO = ("--weights DIR", "config.json", "model.safetensors", "HF_HUB_OFFLINE=1")


def write_checkpoint(directory: Path, config: dict, seed: int = 0) -> Path:
    """A random Toto saved as the Hugging Face repo lays it out: config.json + model.safetensors.

    The mixture's components get distinct weights and locations, so that a sampler that mixes them wrongly shows.
    """
    from toto.model.toto import Toto

    torch.manual_seed(seed)
    model = Toto(**config)
    head = model.model.output_distribution
    with torch.no_grad():
        head.mixture_weights.bias.copy_(torch.tensor([2.0, 0.0, -1.0, 1.0]))
        head.loc_proj.bias.copy_(torch.tensor([-2.0, 0.0, 1.0, 3.0]))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    safetensors.torch.save_model(model, str(directory / "model.safetensors"))
    return directory


@pytest.fixture(scope="session")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from toto.model.toto import Toto

    directory = write_checkpoint(tmp_path_factory.mktemp("toto") / "tiny", TINY)
    saved = safetensors.torch.load_file(str(directory / "model.safetensors"))
    reloaded = Toto.load_from_checkpoint(str(directory), strict=True).state_dict()
    assert all(torch.equal(saved[k], reloaded[k]) for k in saved)
    return directory


@pytest.fixture(scope="session")
def forecaster(weights: Path) -> TotoForecaster:
    return TotoForecaster(ModelOptions(device="cpu", weights=str(weights)))


@pytest.fixture(scope="session")
def contexts() -> Contexts:
    """Three windows; the first has only 40 bars of history, so 24 of its 64 context bars are padding."""
    frame = synthetic_ohlcv("BTCUSD", rows=400)
    return Contexts(frame=frame, ends=np.array([40, 200, 399]))


def package_inputs(contexts: Contexts, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The same left-padded series and padding mask, [windows, 1, length], as a user of the package would build."""
    close = torch.from_numpy(contexts.history("close", length)).float()
    observed = torch.isfinite(close)
    return torch.where(observed, close, 0.0)[:, None], observed[:, None]


def moments(encoded: Encoded) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of the encoded mixture, in closed form."""
    w, df, loc, scale = (encoded[k].double() for k in ("weights", "df", "loc", "scale"))
    mean = (w * loc).sum(1)
    var = (w * (scale**2 * df / (df - 2) + loc**2)).sum(1) - mean**2
    shift, factor = encoded["scaler_loc"].double(), encoded["scaler_scale"].double()
    return shift + factor * mean, factor * var.sqrt()


def test_next_step_distribution_is_the_package_forecasters(forecaster: TotoForecaster, contexts: Contexts) -> None:
    from toto.inference.forecaster import TotoForecaster as PackageForecaster

    series, observed = package_inputs(contexts, 64)
    patch = TINY["patch_size"]
    with torch.inference_mode():
        out = forecaster.backbone(series, observed, torch.zeros_like(series, dtype=torch.int), None, series.shape[-1])
        package = PackageForecaster.create_affine_transformed(out.distribution, out.loc, out.scale)
        want_mean, want_std = package.mean[:, 0, -patch], package.stddev[:, 0, -patch]
    mean, std = moments(forecaster.encode(contexts, {"context_length": 64}))
    torch.testing.assert_close(mean.float(), want_mean, rtol=1e-6, atol=0)
    torch.testing.assert_close(std.float(), want_std, rtol=1e-5, atol=0)


def test_samples_match_the_package_forecaster(forecaster: TotoForecaster, contexts: Contexts) -> None:
    from toto.data.util.dataset import MaskedTimeseries
    from toto.inference.forecaster import TotoForecaster as PackageForecaster

    series, observed = package_inputs(contexts, 64)
    inputs = MaskedTimeseries(
        series=series, padding_mask=observed, id_mask=torch.zeros_like(series, dtype=torch.int),
        timestamp_seconds=torch.zeros_like(series, dtype=torch.int),
        time_interval_seconds=torch.full(series.shape[:2], 86400, dtype=torch.int),
    )
    torch.manual_seed(0)  # the package samples with the global generator
    theirs = PackageForecaster(forecaster.backbone).forecast(
        inputs, prediction_length=1, num_samples=4096, samples_per_batch=512
    ).samples[:, 0, 0, :]
    encoded = forecaster.encode(contexts, {"context_length": 64})
    ours = forecaster.sample(encoded, 8192, {}, torch.Generator().manual_seed(0))
    assert ours.shape == (3, 8192) and torch.isfinite(ours).all()
    for window in range(3):
        assert stats.ks_2samp(ours[window].numpy(), theirs[window].numpy()).pvalue > 0.001
    # Samples are prices (rescaled by the causal scaler), not the network's standardised units.
    assert np.allclose(ours.median(1).values.numpy(), contexts.history("close", 1)[:, 0], rtol=0.5)


def test_samples_depend_only_on_the_generator(forecaster: TotoForecaster, contexts: Contexts) -> None:
    encoded = forecaster.encode(contexts, {"context_length": 64})

    def draw(seed: int) -> torch.Tensor:
        return forecaster.sample(encoded, 1000, {}, torch.Generator().manual_seed(seed))

    torch.manual_seed(123)
    first = draw(1)
    global_draw = torch.rand(4)
    torch.manual_seed(123)
    assert torch.equal(draw(1), first)
    assert torch.equal(torch.rand(4), global_draw)  # the global generator was not touched
    assert not torch.equal(draw(2), first)


def test_sampling_params_reuse_the_encode(
    forecaster: TotoForecaster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_synthetic(tmp_path, ["BTCUSD"], rows=300)
    series = load_series(tmp_path, "BTCUSD")
    evaluator = Evaluator(forecaster, series, make_windows(series, 30, 20, 128), seed=0)
    calls = []
    encode = forecaster.encode
    monkeypatch.setattr(forecaster, "encode", lambda contexts, params: calls.append(params) or encode(contexts, params))

    first = evaluator.evaluate({"context_length": 64, "num_samples": 128, "aggregate": "mean"}, range(2))
    other = evaluator.evaluate({"context_length": 64, "num_samples": 1024, "aggregate": "median"}, range(2))
    again = evaluator.evaluate({"context_length": 64, "num_samples": 128, "aggregate": "mean"}, range(2))
    longer = evaluator.evaluate({"context_length": 128, "num_samples": 128, "aggregate": "mean"}, range(2))

    assert [e.cache_hit for e in (first, other, again, longer)] == [False, True, True, False]
    assert [p["context_length"] for p in calls] == [64, 128]
    assert other.run_maes != first.run_maes
    assert again.run_maes == first.run_maes  # common random numbers: same params, same runs, same MAEs
    assert all(np.isfinite(e.mae) and e.mae > 0 for e in (first, other, longer))


def test_out_of_memory_fails_the_trial_and_the_study_goes_on(
    forecaster: TotoForecaster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_synthetic(tmp_path, ["BTCUSD"], rows=300)
    series = load_series(tmp_path, "BTCUSD")
    evaluator = Evaluator(forecaster, series, make_windows(series, 30, 20, 128), seed=0)
    next_step = forecaster._next_step

    def long_contexts_run_out_of_memory(series: torch.Tensor, observed: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if series.shape[-1] > 64:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return next_step(series, observed)

    monkeypatch.setattr(forecaster, "_next_step", long_contexts_run_out_of_memory)
    space_file = tmp_path / "space.toml"
    space_file.write_text(SMALL_SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(Objective(load_space(space_file, TotoForecaster.params), evaluator, range(2)), n_trials=8,
                   catch=(ForecastError,))
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert {t.params["context_length"] for t in failed} == {128} and len(failed) + len(complete) == 8
    assert {t.params["context_length"] for t in complete} == {64}
    assert all("out of memory in toto encode of 30 windows x 128 bars" in t.user_attrs["fail_reason"] for t in failed)


def _corrupt(directory: Path, what: str) -> Path:
    if what == "no such directory":
        return directory / "missing"
    write_checkpoint(directory, TINY)
    if what == "no config.json":
        (directory / "config.json").unlink()
    elif what == "bad config.json":
        (directory / "config.json").write_text("{not json")
    elif what == "garbage safetensors":
        (directory / "model.safetensors").write_bytes(b"\x00garbage" * 100)
    elif what == "missing tensor":
        state = safetensors.torch.load_file(str(directory / "model.safetensors"))
        state.pop(next(k for k in state if "unembed" in k))
        safetensors.torch.save_file(state, str(directory / "model.safetensors"))
    elif what == "other architecture":
        (directory / "config.json").write_text(json.dumps({**TINY, "embed_dim": 32}))
    return directory


@pytest.mark.parametrize(
    "what",
    ["no such directory", "no config.json", "bad config.json", "garbage safetensors", "missing tensor",
     "other architecture"],
)
def test_missing_or_unreadable_weights_say_how_to_provide_them(tmp_path: Path, what: str) -> None:
    directory = _corrupt(tmp_path / "weights", what)
    with pytest.raises(BadInput) as error:
        TotoForecaster(ModelOptions(device="cpu", weights=str(directory)))
    message = str(error.value)
    assert "\n" not in message and all(part in message for part in HOW_TO), message


def _python(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


LOAD_DEFAULT = """
from orchestrator.errors import BadInput
from orchestrator.models.base import ModelOptions
from orchestrator.models.toto import TotoForecaster
try:
    print(TotoForecaster(ModelOptions(device="cpu")).info()["weights"])
except BadInput as exc:
    print("BadInput:", exc)
"""


def test_default_weights_load_offline_from_a_populated_hugging_face_cache(weights: Path, tmp_path: Path) -> None:
    snapshot = tmp_path / "hub" / f"models--{DEFAULT_WEIGHTS.replace('/', '--')}" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (snapshot / name).write_bytes((weights / name).read_bytes())
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)

    loaded = _python(LOAD_DEFAULT, {"HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}, tmp_path)
    assert loaded.stdout.strip() == DEFAULT_WEIGHTS, loaded.stdout + loaded.stderr

    empty = _python(LOAD_DEFAULT, {"HF_HOME": str(tmp_path / "empty"), "HF_HUB_OFFLINE": "1"}, tmp_path)
    assert empty.stdout.startswith("BadInput:") and all(part in empty.stdout for part in HOW_TO), empty.stdout


def _optimize(tmp_path: Path, weights: str, *extra: str) -> subprocess.CompletedProcess:
    data = tmp_path / "data"
    write_synthetic(data, ["BTCUSD"])
    space = tmp_path / "toto.toml"
    space.write_text(SMALL_SPACE)
    command = [
        sys.executable, "-m", "orchestrator", "optimize", "--model", "toto", "--weights", weights,
        "--symbol", "BTCUSD", "--data-dir", str(data), "--storage", f"sqlite:///{tmp_path / 'optuna.db'}",
        "--best-dir", str(tmp_path / "best"), "--space", str(space), *extra,
    ]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)


def test_cli_optimize_end_to_end_commits(weights: Path, tmp_path: Path) -> None:
    done = _optimize(tmp_path, str(weights), "--trials", "6", "--eval-runs", "2", "--confirm-runs", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    committed = json.loads((tmp_path / "best" / "toto" / "BTCUSD.json").read_text())
    assert set(committed["params"]) == {"context_length", "num_samples", "aggregate"}
    assert committed["params"]["context_length"] in (64, 128)
    study = optuna.load_study(study_name="toto/BTCUSD", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert study.user_attrs["model_info"]["compiled"] is False and study.user_attrs["model_info"]["recompiles"] == 0


@pytest.mark.parametrize("weights", ["missing-dir/", DEFAULT_WEIGHTS])
def test_cli_missing_weights_exit_2_with_how_to(tmp_path: Path, weights: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    done = _optimize(tmp_path, weights, "--trials", "1")
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and all(part in lines[0] for part in HOW_TO), done.stderr
    assert not (tmp_path / "best").exists()


def test_compiled_encode_matches_eager_and_compiles_once_per_context_length(
    weights: Path, forecaster: TotoForecaster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    compiled = TotoForecaster(ModelOptions(device="cpu", weights=str(weights), compile=True))
    write_synthetic(tmp_path, ["BTCUSD"], rows=400)
    series = load_series(tmp_path, "BTCUSD")
    windows = make_windows(series, 250, 60, 64)
    for length in (64, 128):
        for split in ("validation", "test"):  # 250 and 60 windows: batches of 32 rows, one compiled shape
            contexts = Contexts.of(series, windows.of(split))
            params = {"context_length": length}
            got, want = compiled.encode(contexts, params), forecaster.encode(contexts, params)
            for key in want:
                torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5)
    info = compiled.info()
    assert info["compiled"] and info["compiles"] == 2 and info["recompiles"] == 0 and info["compile_seconds"] > 0


def test_a_decision_rescores_the_configs_tried_with_one_encode_per_context_length(
    forecaster: TotoForecaster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_synthetic(tmp_path, ["BTCUSD"], rows=300)
    series = load_series(tmp_path, "BTCUSD")
    windows = make_windows(series, 60, 20, 64)
    one_key = sum(t.nelement() * t.element_size()
                  for t in Evaluator(forecaster, series, windows, 0).encode({"context_length": 128}, "validation")[0].values())
    evaluator = Evaluator(forecaster, series, windows, 0, EncodeCache(one_key))  # room for one encode only
    tried = [(64, 128, "mean"), (128, 128, "median"), (64, 256, "median"), (128, 64, "mean"), (64, 64, "quantile_0.45")]
    space = load_space(_space_file(tmp_path), TotoForecaster.params)
    study = optuna.create_study(direction="minimize")
    study.set_user_attr("seed", 0)
    for value, (length, samples, name) in enumerate(tried):
        params = {"context_length": length, "num_samples": samples, "aggregate": name}
        distributions = {name: space.param(name).distribution for name in params}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=value))
    incumbent = {"context_length": 128, "num_samples": 256, "aggregate": "mean"}
    runs = range(2, 4)
    candidate = evaluator.evaluate(study.best_trial.params, runs).window_errors
    benchmark = evaluator.evaluate(incumbent, runs).window_errors
    encoded, encode = [], forecaster.encode
    monkeypatch.setattr(forecaster, "encode", lambda contexts, params: encoded.append(params["context_length"])
                        or encode(contexts, params))
    spa = _spa(study, study.best_trial, evaluator, runs, incumbent, candidate, benchmark, None)
    assert spa.configs == spa.tried == 5 and 0 <= spa.p_value <= 1
    # each context length encoded at most once; in the search order (64, 128, 64, 128) 64 is encoded twice
    assert sorted(encoded) == sorted(set(encoded))


def _space_file(tmp_path: Path) -> Path:
    path = tmp_path / "toto.toml"
    path.write_text(SMALL_SPACE)
    return path
