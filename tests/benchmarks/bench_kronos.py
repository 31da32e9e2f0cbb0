"""Kronos benchmarks, each printing one JSON object; random weights with the sizes of the published checkpoints.

Default: seconds per trial, the KronosPredictor.predict loop (per window, per run) vs this project's Kronos trial.
One process, the same windows, runs, sample_count and sampling params on both sides. The trial goes through
orchestrator.scoring.evaluation.Evaluator: cold (encode + sampling) and warm (a sampling-only change: the encode is cached).

--sampling: warm-trial cost of the sampling path of scoring version 1 (kept below: the full s2 table at encode,
torch.multinomial over filtered rows, a dense [windows, V1 * V2] decoded memo) vs the current one, side by side on
one encode per window count, at several sample counts; and the bytes each stores per encode-cache key.
  - "memo_hit": a warm trial whose draws were drawn before (same sampling params: a trial that changes only the
    aggregate). Its memos are primed by one trial with the tokenizer decoder stubbed out, since the decoded values
    do not change the cost of looking them up. The best of --repeats trials, old and new alternated; wall and
    process CPU milliseconds (on a shared machine, CPU time with --threads 1 is the steadier comparison).
  - "new_draws": a warm trial with another temperature, so most tokens are new and go through the real decoder
    (the same decoder in both versions); only where windows x sample_count x runs <= --decode-budget.

    python tests/benchmarks/bench_kronos.py --arch tiny|small|base [--device cpu|cuda]
    python tests/benchmarks/bench_kronos.py --sampling [--arch small] [--window-counts 30,250]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from kronos_finance._vendor.kronos_model import Kronos, KronosPredictor, KronosTokenizer
from kronos_finance._vendor.kronos_model.kronos import top_k_top_p_filtering

from orchestrator.data import Contexts, load_series, make_windows, write_synthetic
from orchestrator.models import kronos
from orchestrator.models.aggregate import aggregate
from orchestrator.scoring.evaluation import EncodeCache, Evaluator, return_mae, run_seed
from orchestrator.models.base import Encoded, ModelOptions
from orchestrator.models.kronos import KronosForecaster

DROPOUT = dict(ffn_dropout_p=0.0, attn_dropout_p=0.0, resid_dropout_p=0.0)
TOKENIZERS = {
    "tiny": dict(d_in=6, d_model=32, n_heads=4, ff_dim=64, n_enc_layers=2, n_dec_layers=2, s1_bits=4, s2_bits=4),
    "base": dict(d_in=6, d_model=256, n_heads=4, ff_dim=512, n_enc_layers=4, n_dec_layers=4, s1_bits=10, s2_bits=10),
}
MODELS = {  # Kronos-small 24.7M, Kronos-base 102.3M parameters
    "tiny": dict(s1_bits=4, s2_bits=4, n_layers=2, d_model=32, n_heads=4, ff_dim=64),
    "small": dict(s1_bits=10, s2_bits=10, n_layers=8, d_model=512, n_heads=8, ff_dim=1024),
    "base": dict(s1_bits=10, s2_bits=10, n_layers=12, d_model=832, n_heads=16, ff_dim=2048),
}
PRIME = {"temperature": 1.0, "top_p": 0.9, "aggregate": "mean"}
"""Sampling params of the priming and memo-hit trials (the memo-hit trial changes only the aggregate)."""
NEW_DRAWS = {"temperature": 0.7, "top_p": 0.9, "aggregate": "mean"}
"""Params of the new-draws trials; the temperature moves by -0.05 per sample count, so no trial repeats draws."""

Sampler = Callable[[Encoded, int, Mapping[str, Any], torch.Generator], torch.Tensor]


def save_random(arch: str, root: Path) -> tuple[str, str]:
    """Random model + tokenizer of `arch`, saved like the published checkpoints; returns their directories."""
    torch.manual_seed(0)
    tokenizer = KronosTokenizer(**TOKENIZERS["tiny" if arch == "tiny" else "base"], **DROPOUT, beta=0.05,
                                gamma0=1.0, gamma=1.1, zeta=0.05, group_size=4)
    model = Kronos(**MODELS[arch], **DROPOUT, token_dropout_p=0.0, learn_te=True)
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "tokenizer")
    return str(root / "model"), str(root / "tokenizer")


def predict_loop(args: argparse.Namespace, forecaster: KronosForecaster, root: Path) -> dict[str, Any]:
    """The package's predict loop vs this project's trial, cold and warm."""
    write_synthetic(root / "data", ["BENCH"], rows=args.max_context + args.windows + 20)
    series = load_series(root / "data", "BENCH", forecaster.required_columns, forecaster.optional_columns)
    windows = make_windows(series, args.windows, 20, args.max_context)
    params = {"max_context": args.max_context, "clip": 2.0, "temperature": 1.0, "filter": "top_p", "top_p": 0.9,
              "sample_count": args.sample_count, "aggregate": "mean"}
    ends = windows.validation
    timed = ends[: args.predict_windows or len(ends)]

    predictor = KronosPredictor(forecaster.model, forecaster.tokenizer, device=args.device,
                                max_context=args.max_context, clip=params["clip"])
    frame, predictions = series.frame, []
    start = time.perf_counter()
    for run in range(args.runs):
        torch.manual_seed(run_seed(0, run))
        for end in timed:
            df = frame.iloc[end - args.max_context:end].reset_index(drop=True)
            out = predictor.predict(df[["open", "high", "low", "close", "volume"]], df["timestamp"],
                                    frame["timestamp"].iloc[end:end + 1], pred_len=1, T=params["temperature"],
                                    top_k=0, top_p=params["top_p"], sample_count=args.sample_count, verbose=False)
            predictions.append(out["close"].iloc[0])
    predict_seconds = (time.perf_counter() - start) * len(ends) / len(timed)
    close = series.close
    predict_mae = float(np.mean([
        return_mae(np.asarray(predictions[r * len(timed):(r + 1) * len(timed)]), close[timed - 1], close[timed])
        for r in range(args.runs)
    ]))

    evaluator = Evaluator(forecaster, series, windows, seed=0, cache=EncodeCache(8 << 30))
    cold = evaluator.evaluate(params, range(args.runs))
    warm = evaluator.evaluate({**params, "temperature": 0.7}, range(args.runs))
    assert not cold.cache_hit and warm.cache_hit
    return {
        "windows": len(ends), "runs": args.runs, "sample_count": args.sample_count, "max_context": args.max_context,
        "sampling": {"temperature": params["temperature"], "top_p": params["top_p"], "warm_temperature": 0.7},
        "predict_loop_seconds_per_trial": round(predict_seconds, 3),
        "predict_loop_timed_windows": len(timed),
        "predict_loop_scaled": len(timed) < len(ends),
        "trial_cold_seconds": round(cold.seconds, 3),
        "trial_warm_seconds": round(warm.seconds, 4),
        "speedup_cold": round(predict_seconds / cold.seconds, 1),
        "speedup_warm": round(predict_seconds / warm.seconds, 1),
        "mae_predict_loop": round(predict_mae, 6), "mae_trial_cold": round(cold.mae, 6),
        **{f"model_{k}": v for k, v in forecaster.info().items() if k != "device"},
    }


def compare_sampling(args: argparse.Namespace, forecaster: KronosForecaster, root: Path) -> dict[str, Any]:
    """Warm trials and bytes per key of scoring version 1's sampling vs the current one, side by side."""
    report: dict[str, Any] = {
        "load_average_at_start": os.getloadavg()[0], "runs_per_trial": args.runs, "max_context": args.max_context,
        "prime_params": PRIME, "new_draws_params": NEW_DRAWS, "memo_rows_per_window": kronos.MEMO_ROWS,
        "memo_tokens_per_window": kronos.MEMO_TOKENS, "bytes_per_key": {}, "encode_seconds": {},
        "warm_trial_ms": {}, "order_independent": None,
    }
    for windows in args.window_counts:
        symbol = f"W{windows}"
        write_synthetic(root / "data", [symbol], rows=args.max_context + windows + 20)
        series = load_series(root / "data", symbol, forecaster.required_columns, forecaster.optional_columns)
        ends = make_windows(series, windows, 20, args.max_context).validation
        start = time.perf_counter()
        new = forecaster.encode(Contexts.of(series, ends), {"max_context": args.max_context, "clip": 2.0})
        report["encode_seconds"][windows] = round(time.perf_counter() - start, 1)
        if report["order_independent"] is None:
            report["order_independent"] = order_independent(forecaster, new)
        old = version1_encoded(forecaster, new)
        report["bytes_per_key"][windows] = {"old": nbytes(old), "new": nbytes(new),
                                            "old_by_key": mib_by_key(old), "new_by_key": mib_by_key(new)}
        close = series.close
        truth = (close[ends - 1], close[ends])
        samplers: dict[str, tuple[Sampler, Encoded]] = {
            "old": (lambda e, n, p, g: version1_sample(forecaster, e, n, p, g), old),
            "new": (forecaster.sample, new),
        }
        results = report["warm_trial_ms"][windows] = {}
        for i, n in enumerate(args.sample_counts):
            row: dict[str, Any] = {}
            new_draws = {**NEW_DRAWS, "temperature": NEW_DRAWS["temperature"] - 0.05 * i}
            with stubbed_decoder(forecaster):
                for sample, encoded in samplers.values():
                    warm_trial(sample, encoded, n, PRIME, args.runs, truth)
            times: dict[str, list[tuple[float, float]]] = {name: [] for name in samplers}
            while len(times["old"]) < args.repeats and sum(t for name in times for t, _ in times[name]) < 20.0:
                for name, (sample, encoded) in samplers.items():  # alternated: both see the same machine load
                    times[name].append(warm_trial(sample, encoded, n, {**PRIME, "aggregate": "median"}, args.runs,
                                                  truth))
            for name, (sample, encoded) in samplers.items():
                row[f"memo_hit_{name}"] = round(min(wall for wall, _ in times[name]) * 1e3, 1)
                row[f"memo_hit_cpu_{name}"] = round(min(cpu for _, cpu in times[name]) * 1e3, 1)
                if windows * n * args.runs <= args.decode_budget:
                    wall, cpu = warm_trial(sample, encoded, n, new_draws, args.runs, truth)
                    row[f"new_draws_{name}"], row[f"new_draws_cpu_{name}"] = round(wall * 1e3), round(cpu * 1e3)
            for kind in ("memo_hit", "memo_hit_cpu", "new_draws", "new_draws_cpu"):
                if f"{kind}_new" in row:
                    row[f"{kind}_speedup"] = round(row[f"{kind}_old"] / row[f"{kind}_new"], 1)
            row["s2_rows_memoised_per_window"] = round(float(new["s2_used"].float().mean()), 1)
            results[n] = row
            print(json.dumps({"windows": windows, "sample_count": n, **row}), flush=True)
        del old, new
    if args.bytes_context:  # every stored tensor is per window: bytes scale exactly with the window count
        write_synthetic(root / "data", ["BYTES"], rows=args.bytes_context + kronos.ENCODE_ROWS)
        series = load_series(root / "data", "BYTES", forecaster.required_columns, forecaster.optional_columns)
        ends = np.arange(args.bytes_context, args.bytes_context + kronos.ENCODE_ROWS)
        new = forecaster.encode(Contexts.of(series, ends), {"max_context": args.bytes_context, "clip": 2.0})
        per_window = {"old": nbytes(version1_encoded(forecaster, new)) / len(ends), "new": nbytes(new) / len(ends)}
        report[f"bytes_per_key_at_max_context_{args.bytes_context}"] = {
            windows: {name: round(size * windows) for name, size in per_window.items()}
            for windows in args.window_counts}
    report["load_average_at_end"] = os.getloadavg()[0]
    return report


def warm_trial(sample: Sampler, encoded: Encoded, n: int, params: Mapping[str, Any], runs: int,
               truth: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    """(wall, process CPU) seconds of one trial on a cached encode: per run, draw with the run's seed, aggregate,
    score, as Evaluator does. CPU time does not count time the process waited for a core."""
    wall, cpu = time.perf_counter(), time.process_time()
    for run in range(runs):
        generator = torch.Generator(device=encoded["close_mean"].device).manual_seed(run_seed(0, run))
        samples = sample(encoded, n, params, generator).to("cpu", torch.float64)
        return_mae(aggregate(samples, params["aggregate"]).numpy(), *truth)
    return time.perf_counter() - wall, time.process_time() - cpu


def order_independent(forecaster: KronosForecaster, encoded: Encoded) -> bool:
    """Draws on an unused encode equal those on one where another trial drew first (memo correctness)."""
    params, other = {"temperature": 0.8, "top_p": 0.9}, {"temperature": 0.5, "top_k": 20}
    fresh, used = copy.deepcopy(encoded), copy.deepcopy(encoded)
    device = forecaster.device
    forecaster.sample(used, 64, other, torch.Generator(device).manual_seed(1))
    return torch.equal(forecaster.sample(used, 64, params, torch.Generator(device).manual_seed(2)),
                       forecaster.sample(fresh, 64, params, torch.Generator(device).manual_seed(2)))


@contextlib.contextmanager
def stubbed_decoder(forecaster: KronosForecaster) -> Iterator[None]:
    """Both versions' decoders return zeros, so memos fill without decoding."""

    def zeros(code: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(code, dtype=torch.float)

    with mock.patch(f"{__name__}._v1_decode_new", lambda f, e, window, code, v2: zeros(code)), \
            mock.patch.object(forecaster, "_decode_step", lambda e, lo, hi, code: zeros(code)):
        yield


def nbytes(encoded: Encoded) -> int:
    """What the encode cache counts for a key."""
    return sum(t.nelement() * t.element_size() for t in encoded.values())


def mib_by_key(encoded: Encoded) -> dict[str, float]:
    return {k: round(t.nelement() * t.element_size() / 2**20, 2) for k, t in encoded.items()
            if t.nelement() * t.element_size() >= 2**16}


# ---- scoring version 1's encode output and sampling path (project code at e964b0c), for comparison ----

def version1_encoded(forecaster: KronosForecaster, encoded: Encoded) -> Encoded:
    """What version 1's encode returned (full windows only), built from the current encode's parts: the s1 logits,
    the s2 logits of every s1 (version 1's `_s2_table`), the decoder cache [windows, layers, ...], a NaN memo."""
    dep, head = forecaster.model.dep_layer, forecaster.model.head
    s1_logits = torch.empty_like(encoded["s1_sorted"]).scatter_(1, encoded["s1_order"].long(),
                                                                encoded["s1_sorted"])
    windows, v1 = s1_logits.shape
    v2 = encoded["s2_sorted"].shape[2]
    table = s1_logits.new_empty((windows, v1, v2))
    q = forecaster._s2_queries.transpose(0, 1)[None]
    with torch.no_grad():
        for lo in range(0, windows, 8):
            hi = min(lo + 8, windows)
            o = F.scaled_dot_product_attention(q.expand(hi - lo, -1, -1, -1), encoded["dep_k"][lo:hi],
                                               encoded["dep_v"][lo:hi])
            x2 = dep.norm(encoded["last"][lo:hi, None] + dep.cross_attn.out_proj(o.transpose(1, 2).flatten(2)))
            table[lo:hi] = head.cond_forward(x2)
    return {"s1_logits": s1_logits, "s2_logits": table, "dec_k": encoded["dec_k"].transpose(0, 1).contiguous(),
            "dec_v": encoded["dec_v"].transpose(0, 1).contiguous(), "close_mean": encoded["close_mean"],
            "close_scale": encoded["close_scale"], "decoded": torch.full((windows, v1 * v2), math.nan,
                                                                         device=s1_logits.device)}


def version1_sample(f: KronosForecaster, encoded: Encoded, n: int, params: Mapping[str, Any],
                    generator: torch.Generator) -> torch.Tensor:
    with torch.no_grad():
        s1 = torch.multinomial(_v1_probs(encoded["s1_logits"], params), n, replacement=True, generator=generator)
        v1, v2 = encoded["s2_logits"].shape[1:]
        rows = torch.arange(s1.shape[0], device=s1.device)[:, None] * v1 + s1
        unique, inverse = torch.unique(rows, return_inverse=True)
        probs = _v1_probs(encoded["s2_logits"].reshape(-1, v2)[unique], params)
        s2 = torch.multinomial(probs[inverse.reshape(-1)], 1, generator=generator).reshape(s1.shape)
        return _v1_decode(f, encoded, s1, s2)


def _v1_decode(f: KronosForecaster, encoded: Encoded, s1: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
    v2 = encoded["s2_logits"].shape[2]
    memo = encoded["decoded"]
    codes = s1 * v2 + s2
    known = memo.gather(1, codes)
    if known.isnan().any():
        windows = torch.arange(codes.shape[0], device=codes.device)[:, None].expand_as(codes)
        todo = torch.unique((windows * memo.shape[1] + codes)[known.isnan()])
        memo.view(-1)[todo] = _v1_decode_new(f, encoded, todo // memo.shape[1], todo % memo.shape[1], v2)
        known = memo.gather(1, codes)
    return known * encoded["close_scale"][:, None] + encoded["close_mean"][:, None]


def _v1_decode_new(f: KronosForecaster, encoded: Encoded, window: torch.Tensor, code: torch.Tensor,
                   v2: int) -> torch.Tensor:
    chunk_size = 16
    count = torch.bincount(window, minlength=encoded["decoded"].shape[0])
    rank = torch.arange(len(window), device=window.device) - (torch.cumsum(count, 0) - count)[window]
    width = chunk_size * math.ceil(int(count.max()) / chunk_size)
    grid = torch.zeros(count.shape[0], width, dtype=torch.long, device=window.device)
    grid[window, rank] = code
    out = torch.cat([_v1_decode_step(f, encoded, chunk // v2, chunk % v2)
                     for chunk in grid.split(chunk_size, dim=1)], dim=1)
    return out[window, rank]


def _v1_decode_step(f: KronosForecaster, encoded: Encoded, s1: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
    z = f.tokenizer.post_quant_embed(f.tokenizer.indices_to_bits((s1, s2), half=True))
    position = encoded["dec_k"].shape[-2]
    for layer, keys, values in zip(f.tokenizer.decoder, encoded["dec_k"].unbind(1), encoded["dec_v"].unbind(1),
                                   strict=True):
        attn = layer.self_attn
        h = layer.norm1(z)
        q, k, v = (kronos._heads(proj(h), attn.n_heads) for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
        freqs = position * attn.rotary.inv_freq
        cos, sin = torch.cat((freqs, freqs)).cos(), torch.cat((freqs, freqs)).sin()
        q, k = q * cos + attn.rotary._rotate_half(q) * sin, k * cos + attn.rotary._rotate_half(k) * sin
        scores = torch.cat([q @ keys.transpose(-1, -2), (q * k).sum(-1, keepdim=True)], dim=-1)
        p = torch.softmax(scores / math.sqrt(attn.head_dim), dim=-1)
        o = p[..., :-1] @ values + p[..., -1:] * v
        z = z + attn.out_proj(o.transpose(1, 2).flatten(2))
        z = z + layer.ffn(layer.norm2(z))
    return f.tokenizer.head(z)[..., kronos.CLOSE]


def _v1_probs(logits: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
    top_k, top_p = int(params.get("top_k", 0)), float(params.get("top_p", 1.0))
    logits = logits / float(params.get("temperature", 1.0))
    if top_k > 0 or top_p < 1.0:
        logits = top_k_top_p_filtering(logits, top_k=top_k, top_p=top_p)
    return torch.softmax(logits, dim=-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(MODELS), default="small")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--windows", type=int, default=30)
    parser.add_argument("--runs", type=int, default=None, help="runs per trial (default: 3, --sampling: 1)")
    parser.add_argument("--sample-count", type=int, default=16)
    parser.add_argument("--max-context", type=int, default=256)
    parser.add_argument("--predict-windows", type=int, default=None,
                        help="time the predict loop on the first N windows only and scale (default: all)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--sampling", action="store_true", help="old vs new sampling instead of the predict loop")
    parser.add_argument("--window-counts", type=_ints, default=[30, 250])
    parser.add_argument("--sample-counts", type=_ints, default=[16, 96, 320, 1024])
    parser.add_argument("--repeats", type=int, default=3, help="memo-hit trials timed per version (fewer past 20 s)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--decode-budget", type=int, default=10_000,
                        help="new-draws trials only where windows x sample_count x runs <= this")
    parser.add_argument("--bytes-context", type=int, default=512,
                        help="also report bytes per key at this max_context (0: off)")
    args = parser.parse_args()
    args.runs = args.runs or (1 if args.sampling else 3)
    if args.threads:
        torch.set_num_threads(args.threads)

    root = Path(tempfile.mkdtemp(prefix="bench_kronos_"))
    weights, tokenizer = save_random(args.arch, root)
    forecaster = KronosForecaster(ModelOptions(device=args.device, weights=weights, tokenizer=tokenizer,
                                               compile=args.compile))
    start = time.perf_counter()
    result = (compare_sampling if args.sampling else predict_loop)(args, forecaster, root)
    print(json.dumps({"arch": args.arch, "device": str(forecaster.device), "torch_threads": torch.get_num_threads(),
                      **result, "bench_seconds": round(time.perf_counter() - start)}, indent=2))


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


if __name__ == "__main__":
    main()
