"""Seconds per trial: the KronosPredictor.predict loop (per window, per run) vs this project's Kronos trial.

One process, one random-weight model (sizes of the published checkpoints), the same windows, runs, sample_count and
sampling params on both sides. The trial goes through orchestrator.evaluation.Evaluator: cold (encode + sampling)
and warm (a sampling-only change: the encode is cached). Prints one JSON object.

    python tests/benchmarks/bench_kronos.py --arch tiny|small|base [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from kronos_finance._vendor.kronos_model import Kronos, KronosPredictor, KronosTokenizer

from orchestrator.data import load_series, make_windows, write_synthetic
from orchestrator.evaluation import EncodeCache, Evaluator, return_mae, run_seed
from orchestrator.models.base import ModelOptions
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


def save_random(arch: str, root: Path) -> tuple[str, str]:
    """Random model + tokenizer of `arch`, saved like the published checkpoints; returns their directories."""
    torch.manual_seed(0)
    tokenizer = KronosTokenizer(**TOKENIZERS["tiny" if arch == "tiny" else "base"], **DROPOUT, beta=0.05,
                                gamma0=1.0, gamma=1.1, zeta=0.05, group_size=4)
    model = Kronos(**MODELS[arch], **DROPOUT, token_dropout_p=0.0, learn_te=True)
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "tokenizer")
    return str(root / "model"), str(root / "tokenizer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(MODELS), required=True)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--windows", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sample-count", type=int, default=16)
    parser.add_argument("--max-context", type=int, default=256)
    parser.add_argument("--predict-windows", type=int, default=None,
                        help="time the predict loop on the first N windows only and scale (default: all)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench_kronos_"))
    weights, tokenizer = save_random(args.arch, root)
    forecaster = KronosForecaster(ModelOptions(device=args.device, weights=weights, tokenizer=tokenizer,
                                               compile=args.compile))
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

    print(json.dumps({
        "arch": args.arch, "device": str(forecaster.device), "torch_threads": torch.get_num_threads(),
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
    }, indent=2))


if __name__ == "__main__":
    main()
