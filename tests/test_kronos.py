"""Kronos forecaster on a tiny random model + tokenizer built with the package's own classes (CPU, no network)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from kronos_finance._vendor.kronos_model import Kronos, KronosPredictor, KronosTokenizer
from kronos_finance._vendor.kronos_model import kronos as upstream
from scipy.stats import chisquare

from orchestrator.data import (
    Contexts,
    Series,
    Windows,
    load_series,
    make_windows,
    write_synthetic,
)
from orchestrator.errors import BadInput
from orchestrator.scoring.evaluation import EncodeCache, Evaluator
from orchestrator.models import filtered_draws, kronos
from orchestrator.models.base import ForecastError, ModelOptions
from orchestrator.models.kronos import KronosForecaster

COLUMNS = ["open", "high", "low", "close", "volume"]
CLI_ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
"""The CLI in a subprocess imports this checkout's package, whatever the environment has installed."""
SMALL_SPACE_TOML = """
[temperature]
type = "float"
low = 0.2
high = 1.0
[filter]
type = "categorical"
choices = ["top_p", "top_k"]
[top_p]
type = "float"
low = 0.6
high = 0.95
when = { filter = "top_p" }
[top_k]
type = "int"
low = 1
high = 8
when = { filter = "top_k" }
[sample_count]
type = "int"
low = 8
high = 32
log = true
[max_context]
type = "int"
low = 64
high = 128
step = 64
[clip]
type = "float"
low = 2.0
high = 3.0
step = 1.0
[aggregate]
type = "categorical"
choices = ["mean", "median"]
"""


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(model dir, tokenizer dir) of a tiny random Kronos pair saved with save_pretrained."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("kronos")
    tokenizer = KronosTokenizer(d_in=6, d_model=32, n_heads=4, ff_dim=64, n_enc_layers=2, n_dec_layers=2,
                                ffn_dropout_p=0.0, attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=4, s2_bits=4,
                                beta=0.05, gamma0=1.0, gamma=1.1, zeta=0.05, group_size=4)
    model = Kronos(s1_bits=4, s2_bits=4, n_layers=2, d_model=32, n_heads=4, ff_dim=64, ffn_dropout_p=0.0,
                   attn_dropout_p=0.0, resid_dropout_p=0.0, token_dropout_p=0.0, learn_te=True)
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "tokenizer")
    return str(root / "model"), str(root / "tokenizer")


@pytest.fixture(scope="module")
def forecaster(weights: tuple[str, str]) -> KronosForecaster:
    return KronosForecaster(ModelOptions(device="cpu", weights=weights[0], tokenizer=weights[1]))


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Series:
    data = tmp_path_factory.mktemp("data")
    write_synthetic(data, ["BTCUSD"], rows=300)
    return load_series(data, "BTCUSD", KronosForecaster.required_columns, KronosForecaster.optional_columns)


def with_frame(series: Series, frame: pd.DataFrame) -> Series:
    return replace(series, frame=frame, sha256=str(hash(frame.to_numpy().tobytes())))


NETWORK_KEYS = ("bars", "s1_sorted", "s1_order", "last", "dep_k", "dep_v", "dec_k", "dec_v", "close_mean",
                "close_scale")
"""What encode computes from the data; the other keys are sampling memos."""


def unsorted(values: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Rows sorted by `encode` / `s2_rows` put back in token order."""
    return torch.empty_like(values).scatter_(-1, order.long(), values)


def s2_logits(forecaster: KronosForecaster, encoded: dict, window: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
    return unsorted(*forecaster.s2_rows(encoded, window, s1))


def package_filter(logits: torch.Tensor, params: dict) -> torch.Tensor:
    """The package's probabilities: softmax of logits / T after top_k_top_p_filtering (when a filter is on)."""
    top_k, top_p = params.get("top_k", 0), params.get("top_p", 1.0)
    logits = logits / params["temperature"]
    if top_k > 0 or top_p < 1.0:
        logits = upstream.top_k_top_p_filtering(logits, top_k=top_k, top_p=top_p)
    return torch.softmax(logits, dim=-1)


def test_cached_path_replays_the_package_draws_exactly(forecaster, series, monkeypatch):
    """Draws recorded during KronosPredictor.predict on each window's bars alone, replayed through encode + decode,
    give its prediction; early windows with fewer bars than max_context included."""
    length, clip = 96, 2.5
    ends = np.array([70, 95, 96, 241, 299])  # 70 and 95 bars before the scored bar, then full windows
    encoded = forecaster.encode(Contexts.of(series, ends), {"max_context": length, "clip": clip})
    predictor = KronosPredictor(forecaster.model, forecaster.tokenizer, device="cpu", max_context=length, clip=clip)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []  # (logits, draw) of each package sampling call

    def recording(logits, **kwargs):
        drawn = original(logits.clone(), **kwargs)
        seen.append((logits.clone(), drawn.clone()))
        return drawn

    original = upstream.sample_from_logits
    monkeypatch.setattr(upstream, "sample_from_logits", recording)
    frame = series.frame
    expected, s1, s2 = [], [], []
    for w, end in enumerate(ends):
        seen.clear()
        df = frame.iloc[end - min(end, length):end].reset_index(drop=True)
        prediction = predictor.predict(df[COLUMNS], df["timestamp"], frame["timestamp"].iloc[end:end + 1],
                                       pred_len=1, T=0.7, top_k=0, top_p=0.9, sample_count=1, verbose=False)
        (s1_logits, s1_drawn), (s2_logits_drawn, s2_drawn) = seen
        torch.testing.assert_close(unsorted(encoded["s1_sorted"][w], encoded["s1_order"][w]), s1_logits[0],
                                   atol=1e-4, rtol=0)
        torch.testing.assert_close(s2_logits(forecaster, encoded, torch.tensor([w]), s1_drawn[0]), s2_logits_drawn,
                                   atol=1e-4, rtol=0)
        expected.append(prediction["close"].iloc[0])
        s1.append(s1_drawn[0])
        s2.append(s2_drawn[0])
    ours = forecaster.decode(encoded, torch.stack(s1), torch.stack(s2))
    np.testing.assert_allclose(ours[:, 0].numpy(), expected, rtol=1e-5)


def test_s1_and_s2_logits_match_the_package_for_every_s1(forecaster, series):
    length, clip = 96, 2.0
    ends = np.array([80, 250])  # a short window and a full one
    encoded = forecaster.encode(Contexts.of(series, ends), {"max_context": length, "clip": clip})
    every = torch.arange(encoded["s2_slot"].shape[1])
    for w, end in enumerate(ends):
        df = series.frame.iloc[end - min(end, length):end]
        x = df[COLUMNS].assign(amount=df["volume"] * df[COLUMNS[:4]].mean(axis=1)).to_numpy(np.float32)
        x = np.clip((x - x.mean(axis=0)) / (x.std(axis=0) + 1e-5), -clip, clip)
        stamp = upstream.calc_time_stamps(df["timestamp"]).to_numpy(np.float32)
        with torch.no_grad():
            s1_ids, s2_ids = forecaster.tokenizer.encode(torch.from_numpy(x)[None], half=True)
            s1_logits, context = forecaster.model.decode_s1(s1_ids, s2_ids, torch.from_numpy(stamp)[None])
            table = forecaster.model.decode_s2(context.expand(len(every), -1, -1), every[:, None])[:, -1]
        torch.testing.assert_close(unsorted(encoded["s1_sorted"][w], encoded["s1_order"][w]), s1_logits[0, -1],
                                   atol=1e-4, rtol=0)
        torch.testing.assert_close(s2_logits(forecaster, encoded, torch.full_like(every, w), every), table,
                                   atol=1e-4, rtol=0)


def test_short_history_reads_the_bars_that_exist_down_to_min_context(forecaster, series):
    params = {"max_context": 128, "clip": 2.0}
    encoded = forecaster.encode(Contexts.of(series, np.array([64, 100, 200])), params)
    assert encoded["bars"].tolist() == [64, 100, 128]
    with pytest.raises(ForecastError, match="only 63 bars before its scored bar; Kronos needs at least 64"):
        forecaster.encode(Contexts.of(series, np.array([63, 200])), params)
    with pytest.raises(ForecastError, match="max_context 32: Kronos reads at least 64 bars"):
        forecaster.encode(Contexts.of(series, np.array([100, 200])), {**params, "max_context": 32})


@pytest.mark.parametrize("filters", [{}, {"top_p": 0.8}, {"top_p": 0.3}, {"top_k": 5}, {"top_k": 2, "top_p": 0.5}])
def test_draws_follow_the_package_filtered_softmax(filters):
    """Frequencies of many draws fit softmax(top_k_top_p_filtering(logits / T)) (chi-square), and no token that the
    package's filter removes is ever drawn."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 64, generator=generator) * 1.5
    params = {"temperature": 0.8, **filters}
    expected = package_filter(logits, params).double()
    draws = 100_000
    values, order = logits.sort(dim=1, descending=True, stable=True)
    row = torch.arange(3)[:, None].expand(-1, draws)
    position = filtered_draws.draw(values, row, torch.rand(3, draws, generator=generator), params)
    counts = torch.stack([torch.bincount(t, minlength=64) for t in order.gather(1, position)]).double()
    assert (counts[expected == 0] == 0).all()
    for r in range(3):
        kept = expected[r] > 0
        if kept.sum() == 1:
            assert counts[r, kept] == draws
            continue
        fit = chisquare(counts[r, kept], expected[r, kept] / expected[r, kept].sum() * draws)
        assert fit.pvalue > 1e-3, (r, fit)


def test_kept_tokens_are_the_package_filters():
    """On many rows and settings the tokens kept are exactly those top_k_top_p_filtering leaves finite; top-k keeps
    every token tied with the k-th. (Tokens tied at the top-p boundary may be broken differently: not tested.)"""
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(200, 1024, generator=generator) * torch.rand(200, 1, generator=generator) * 4
    for params in ({"temperature": 0.3, "top_p": 0.5}, {"temperature": 1.0, "top_p": 0.95},
                   {"temperature": 0.7, "top_k": 1}, {"temperature": 2.0, "top_k": 40, "top_p": 0.1}):
        x = logits.sort(dim=1, descending=True, stable=True)
        scaled = x.values / params["temperature"]
        cdf = torch.softmax(scaled, dim=-1).cumsum(dim=1)
        kept = filtered_draws.kept(scaled, cdf, params.get("top_k", 0), params.get("top_p", 1.0))
        ours = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, x.indices, torch.arange(1024) < kept[:, None])
        assert torch.equal(ours, package_filter(logits, params) > 0), params
    tied = logits[:1].clone()
    tied[0, :7] = tied.max() + 1
    scaled = tied.sort(dim=1, descending=True).values
    assert int(filtered_draws.kept(scaled, torch.softmax(scaled, dim=-1).cumsum(dim=1), 2, 1.0)) == 7
    assert int((package_filter(tied, {"temperature": 1.0, "top_k": 2}) > 0).sum()) == 7


def test_top_k_one_is_greedy_and_top_k_wins_over_top_p(forecaster, series):
    encoded = forecaster.encode(Contexts.of(series, np.array([150, 200])), {"max_context": 64, "clip": 3.0})
    s1 = encoded["s1_order"][:, 0].long()
    s2 = forecaster.s2_rows(encoded, torch.arange(2), s1)[1][:, 0].long()
    greedy = forecaster.decode(encoded, s1[:, None], s2[:, None])
    generator = torch.Generator().manual_seed(1)
    drawn = forecaster.sample(encoded, 50, {"temperature": 1.0, "top_k": 1, "top_p": 0.5}, generator)
    assert torch.equal(drawn, greedy.expand(-1, 50))


def test_context_never_contains_the_scored_bar(forecaster, series):
    """Changing the scored bar and later bars leaves a window's encoding alone; the bar before changes it."""
    params = {"max_context": 64, "clip": 2.0}
    end = 200
    base = forecaster.encode(Contexts.of(series, np.array([end])), params)
    later = series.frame.copy()
    later.loc[end:, ["open", "high", "low", "close"]] *= 1.5
    later.loc[end:, "volume"] += 1e6
    unchanged = forecaster.encode(Contexts.of(with_frame(series, later), np.array([end])), params)
    for key in NETWORK_KEYS:
        torch.testing.assert_close(base[key], unchanged[key], rtol=0, atol=0, msg=key)
    before = series.frame.copy()
    before.loc[end - 1, ["open", "high", "low", "close"]] *= 1.5
    changed = forecaster.encode(Contexts.of(with_frame(series, before), np.array([end])), params)
    assert not torch.equal(base["close_mean"], changed["close_mean"])
    assert not torch.equal(base["s1_sorted"], changed["s1_sorted"])


def test_close_only_data_reads_as_flat_bars_without_volume(forecaster, series):
    params, ends = {"max_context": 64, "clip": 2.0}, np.array([150, 220])
    close_only = series.frame[["timestamp", "close"]]
    flat = close_only.assign(open=close_only["close"], high=close_only["close"], low=close_only["close"], volume=0.0)
    a = forecaster.encode(Contexts.of(with_frame(series, close_only), ends), params)
    b = forecaster.encode(Contexts.of(with_frame(series, flat), ends), params)
    assert all(torch.equal(a[k], b[k]) for k in NETWORK_KEYS)


def test_each_trial_uses_its_own_max_context_and_clip(forecaster, series):
    """The prior system kept the first trial's max_context / clip; here every encode-param pair is its own."""
    windows = make_windows(series, 20, 10, 128)
    evaluator = Evaluator(forecaster, series, windows, seed=0, cache=EncodeCache(1 << 30))
    contexts = Contexts.of(series, windows.validation)
    first = {"max_context": 128, "clip": 1.5, "temperature": 1.0, "sample_count": 8}
    second = {"max_context": 64, "clip": 3.0, "temperature": 1.0, "sample_count": 8}
    a, hit_a = evaluator.encode(first, "validation")
    b, hit_b = evaluator.encode(second, "validation")
    assert not hit_a and not hit_b
    assert a["dec_k"].shape[-2] == 127 and b["dec_k"].shape[-2] == 63
    assert not torch.equal(a["s1_sorted"], b["s1_sorted"])
    for params, got in ((first, a), (second, b)):
        fresh = forecaster.encode(contexts, params)
        assert all(torch.equal(got[k], fresh[k]) for k in NETWORK_KEYS)
    again, hit = evaluator.encode({**first, "temperature": 0.3, "sample_count": 99}, "validation")
    assert hit and again is a
    assert evaluator.evaluate(first, range(2)).cache_hit


def test_samples_depend_only_on_the_generator(forecaster, series):
    encoded = forecaster.encode(Contexts.of(series, np.array([120, 180, 240])), {"max_context": 96, "clip": 2.0})
    params = {"temperature": 1.0, "top_p": 0.95}
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = forecaster.sample(encoded, 64, params, torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is never used
    forecaster.sample(encoded, 64, params, torch.Generator().manual_seed(8))  # fills more of the memo
    torch.manual_seed(999)
    second = forecaster.sample(encoded, 64, params, torch.Generator().manual_seed(7))
    other = forecaster.sample(encoded, 64, params, torch.Generator().manual_seed(8))
    assert first.shape == (3, 64) and torch.isfinite(first).all()
    assert torch.equal(first, second)
    assert not torch.equal(first, other)
    more = forecaster.sample(encoded, 100, params, torch.Generator().manual_seed(7))
    assert torch.equal(more[:, :64], first)  # a larger sample_count extends the draws of a smaller one


def test_draws_do_not_depend_on_earlier_trials_or_memo_room(forecaster, series, monkeypatch):
    """A run's draws are the same on a fresh encode, after other trials filled the memos, and with memos that hold
    only a few rows and tokens per window (recomputed values equal memoised ones)."""
    contexts = Contexts.of(series, np.arange(100, 300, 5))  # 40 windows: two sampling groups
    params, trial = {"max_context": 96, "clip": 2.0}, {"temperature": 0.9, "top_p": 0.95}
    fresh = forecaster.sample(forecaster.encode(contexts, params), 64, trial, torch.Generator().manual_seed(3))
    used = forecaster.encode(contexts, params)
    for seed, other in enumerate(({"temperature": 0.5}, {"temperature": 1.0, "top_k": 3}, {"temperature": 2.0})):
        forecaster.sample(used, 16 * (seed + 1), other, torch.Generator().manual_seed(seed))
    assert torch.equal(forecaster.sample(used, 64, trial, torch.Generator().manual_seed(3)), fresh)
    monkeypatch.setattr(kronos, "MEMO_ROWS", 2)
    monkeypatch.setattr(kronos, "MEMO_TOKENS", 3)
    cramped = forecaster.encode(contexts, params)
    for _ in range(2):
        assert torch.equal(forecaster.sample(cramped, 64, trial, torch.Generator().manual_seed(3)), fresh)
    assert int(cramped["s2_used"].max()) == 2 and int((cramped["decoded_key"] != kronos.NO_TOKEN).sum(1).max()) == 3


def test_a_full_memo_keeps_the_latest_calls_rows_and_tokens(forecaster, series, monkeypatch):
    monkeypatch.setattr(kronos, "MEMO_ROWS", 8)
    monkeypatch.setattr(kronos, "MEMO_TOKENS", 8)
    encoded = forecaster.encode(Contexts.of(series, np.array([150, 200])), {"max_context": 64, "clip": 2.0})
    window, first, second = torch.arange(12) // 6, torch.arange(12) % 6, torch.arange(12) % 6 + 6
    forecaster.s2_rows(encoded, window, first)
    rows = forecaster.s2_rows(encoded, window, second)  # 6 new rows, 2 free slots: the window keeps these 6
    forecaster.decode(encoded, first.view(2, 6), torch.zeros(2, 6, dtype=torch.long))
    closes = forecaster.decode(encoded, second.view(2, 6), torch.ones(2, 6, dtype=torch.long))
    assert encoded["s2_used"].tolist() == [6, 6]

    def fail(*args):
        raise AssertionError("recomputed")

    monkeypatch.setattr(forecaster, "_s2_step", fail)
    monkeypatch.setattr(forecaster, "_decode_step", fail)
    again = forecaster.s2_rows(encoded, window, second)
    assert torch.equal(again[0], rows[0]) and torch.equal(again[1], rows[1])
    assert torch.equal(forecaster.decode(encoded, second.view(2, 6), torch.ones(2, 6, dtype=torch.long)), closes)


def test_encode_bytes_are_fixed_at_encode(forecaster, series):
    """The encode cache sizes an encode once: sampling fills the memos in place and never grows or replaces them."""
    encoded = forecaster.encode(Contexts.of(series, np.array([150, 200, 250])), {"max_context": 64, "clip": 2.0})

    def tensors() -> dict:
        return {k: (v.data_ptr(), v.nelement() * v.element_size()) for k, v in encoded.items()}

    before = tensors()
    for seed in range(3):
        forecaster.sample(encoded, 200, {"temperature": 1.5}, torch.Generator().manual_seed(seed))
    assert tensors() == before
    assert int(encoded["s2_used"].min()) > 0 and int((encoded["decoded_key"] != kronos.NO_TOKEN).sum()) > 0


def test_missing_filter_params_mean_no_filtering(forecaster, series):
    encoded = forecaster.encode(Contexts.of(series, np.array([200])), {"max_context": 64, "clip": 2.0})
    drawn = forecaster.sample(encoded, 2000, {"temperature": 1.0}, torch.Generator().manual_seed(0))
    greedy = forecaster.sample(encoded, 2000, {"temperature": 1.0, "top_k": 1}, torch.Generator().manual_seed(0))
    assert drawn.unique().numel() > 10 and greedy.unique().numel() == 1


def test_out_of_memory_fails_the_trial_and_changes_nothing_later(forecaster, series, monkeypatch):
    contexts = Contexts.of(series, np.array([150, 200]))
    params = {"max_context": 64, "clip": 2.0}

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with monkeypatch.context() as patch:
        patch.setattr(forecaster.model, "decode_s1", oom)
        with pytest.raises(ForecastError, match="out of memory encoding 2 windows of 64 bars"):
            forecaster.encode(contexts, params)
    encoded = forecaster.encode(contexts, params)
    with monkeypatch.context() as patch:
        patch.setattr(forecaster, "_s2_step", oom)
        with pytest.raises(ForecastError, match="out of memory sampling 320"):
            forecaster.sample(encoded, 320, {"temperature": 1.0}, torch.Generator())
    assert forecaster.sample(encoded, 320, {"temperature": 1.0}, torch.Generator()).shape == (2, 320)


def test_missing_weights_say_how_to_provide_them(weights, tmp_path):
    with pytest.raises(BadInput) as caught:
        KronosForecaster(ModelOptions(device="cpu", weights=str(tmp_path / "nothing"), tokenizer=weights[1]))
    message = str(caught.value)
    assert "\n" not in message and "nothing" in message
    assert "--weights DIR --tokenizer DIR" in message and "HF_HUB_OFFLINE=1" in message
    with pytest.raises(BadInput, match="--tokenizer"):
        KronosForecaster(ModelOptions(device="cpu", weights=weights[0], tokenizer=weights[0]))


def test_compiled_encode_matches_eager_and_sampling_never_recompiles(weights, series, tmp_path, monkeypatch):
    """30 validation windows (the earliest shorter than max_context) and 20 test windows share one compiled shape."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    options = ModelOptions(device="cpu", weights=weights[0], tokenizer=weights[1])
    eager, compiled = KronosForecaster(options), KronosForecaster(replace(options, compile=True))
    windows = Windows(validation=np.arange(70, 100), test=np.arange(280, 300))
    evaluator = Evaluator(compiled, series, windows, seed=0)
    params = {"max_context": 96, "clip": 2.0, "temperature": 1.0, "top_p": 0.9, "sample_count": 16}
    encoded, _ = evaluator.encode(params, "validation")
    expected = eager.encode(Contexts.of(series, windows.validation), params)
    for key in ("s1_sorted", "last", "dep_k", "dep_v", "dec_k", "dec_v"):
        torch.testing.assert_close(encoded[key], expected[key], atol=1e-4, rtol=1e-4)
    evaluator.encode(params, "test")
    for change in ({"temperature": 0.5}, {"top_p": 0.6}, {"sample_count": 40}):
        evaluator.evaluate({**params, **change}, range(2))
    info = compiled.info()
    assert info["compiled"] and info["compile_seconds"] > 0 and (info["compiles"], info["recompiles"]) == (1, 0)
    evaluator.encode({**params, "max_context": 64}, "validation")  # a new shape: one compile, no more
    evaluator.encode({**params, "clip": 3.0}, "test")  # same shape as the first: no compile
    assert (compiled.info()["compiles"], compiled.info()["recompiles"]) == (2, 0)


def test_optimize_cli_end_to_end(weights, tmp_path):
    data, best = tmp_path / "trainingdata", tmp_path / "best"
    write_synthetic(data, ["BTCUSD"])
    space = tmp_path / "kronos_small.toml"
    space.write_text(SMALL_SPACE_TOML)
    run = subprocess.run(
        [sys.executable, "-m", "orchestrator", "optimize", "--model", "kronos", "--weights", weights[0],
         "--tokenizer", weights[1], "--symbol", "BTCUSD", "--data-dir", str(data),
         "--storage", "sqlite:///" + str(tmp_path / "optuna.db"), "--best-dir", str(best), "--trials", "6",
         "--eval-runs", "2", "--confirm-runs", "2", "--space", str(space)],
        cwd=tmp_path, env=CLI_ENV, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr
    record = json.loads((best / "kronos" / "BTCUSD.json").read_text())
    assert {"max_context", "clip", "temperature", "sample_count"} <= set(record["params"])


def test_optimize_cli_missing_weights_exits_2(weights, tmp_path):
    write_synthetic(tmp_path / "trainingdata", ["BTCUSD"])
    space = tmp_path / "kronos_small.toml"
    space.write_text(SMALL_SPACE_TOML)
    run = subprocess.run(
        [sys.executable, "-m", "orchestrator", "optimize", "--model", "kronos", "--weights", str(tmp_path / "none"),
         "--tokenizer", weights[1], "--symbol", "BTCUSD", "--storage", "sqlite:///" + str(tmp_path / "optuna.db"),
         "--space", str(space), "--trials", "1"],
        cwd=tmp_path, env=CLI_ENV, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 2
    assert "--weights DIR --tokenizer DIR" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "optuna.db").exists()
