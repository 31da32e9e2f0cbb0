"""Toto: the prior per-window package loop vs this project's trial, in one process, on the same random model and data.

    python tests/benchmarks/bench_toto.py --arch tiny|full [--device cpu|cuda] [--compile]

Prior loop: `toto.inference.forecaster.TotoForecaster.forecast` per window per run (global RNG seeded per run),
`samples_per_batch` samples per backbone pass. This project: `Evaluator.evaluate` with the backbone-once forecaster,
cold (encode + sample, empty encode cache) and warm (encode cached by an earlier trial). Both draw `num_samples` per
window per run over the same windows and runs, and score the mean of the samples. Then a study of `--study-trials`
trials (TPE, median pruner, the project's Objective) over configs/spaces/toto.toml, timed after the model is loaded.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import safetensors.torch
import torch

from orchestrator.data import Contexts, Series, Windows, load_series, make_windows, write_synthetic
from orchestrator.models.aggregate import aggregate
from orchestrator.scoring.evaluation import EncodeCache, Evaluator, return_mae, run_seed
from orchestrator.models.base import ModelOptions
from orchestrator.models.toto import TotoForecaster
from orchestrator.search.objective import Objective
from orchestrator.search.space import load_space

SPACE = Path(__file__).resolve().parents[2] / "configs" / "spaces" / "toto.toml"
COMMON = {
    "dropout": 0.1, "spacewise_first": False, "use_memory_efficient_attention": False,
    "scaler_cls": "<class 'model.scaler.CausalPatchStdMeanScaler'>",
    "output_distribution_classes": ["<class 'model.distribution.MixtureOfStudentTsOutput'>"],
    "stabilize_with_global": True, "scale_factor_exponent": 10.0,
}
ARCHS = {  # full: Toto-Open-Base-1.0's architecture (151M parameters)
    "tiny": {**COMMON, "patch_size": 16, "stride": 16, "embed_dim": 64, "num_layers": 2, "num_heads": 4,
             "mlp_hidden_dim": 128, "spacewise_every_n_layers": 2, "output_distribution_kwargs": {"k_components": 4}},
    "full": {**COMMON, "patch_size": 64, "stride": 64, "embed_dim": 768, "num_layers": 12, "num_heads": 12,
             "mlp_hidden_dim": 3072, "spacewise_every_n_layers": 12, "output_distribution_kwargs": {"k_components": 24}},
}
SEED = 0


def write_random_checkpoint(directory: Path, config: dict[str, Any]) -> None:
    from toto.model.toto import Toto

    torch.manual_seed(SEED)
    (directory / "config.json").write_text(json.dumps(config))
    safetensors.torch.save_model(Toto(**config), str(directory / "model.safetensors"))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def package_trial(forecaster: TotoForecaster, evaluator: Evaluator, length: int, num_samples: int,
                  samples_per_batch: int, runs: int) -> list[float]:
    """The prior system's trial: the package forecaster per window per run; the MAE of each run."""
    from toto.data.util.dataset import MaskedTimeseries
    from toto.inference.forecaster import TotoForecaster as PackageForecaster

    package = PackageForecaster(forecaster.backbone)
    ends = evaluator.windows.validation
    contexts = Contexts.of(evaluator.series, ends)
    close = torch.from_numpy(contexts.history("close", length)).float().to(forecaster.device)
    previous, actual = evaluator.series.close[ends - 1], evaluator.series.close[ends]
    maes = []
    for run in range(runs):
        torch.manual_seed(run_seed(SEED, run))
        samples = []
        for row in close:
            series = row[None]
            inputs = MaskedTimeseries(
                series=series, padding_mask=torch.ones_like(series, dtype=torch.bool),
                id_mask=torch.zeros_like(series, dtype=torch.int),
                timestamp_seconds=torch.zeros_like(series, dtype=torch.int),
                time_interval_seconds=torch.full((1,), 86400, dtype=torch.int, device=series.device),
            )
            with torch.inference_mode():
                forecast = package.forecast(inputs, prediction_length=1, num_samples=num_samples,
                                            samples_per_batch=samples_per_batch)
            samples.append(forecast.samples[0, 0, 0].double().cpu())
        point = aggregate(torch.stack(samples), "mean").numpy()
        maes.append(return_mae(point, previous, actual))
    return maes


def study(forecaster: TotoForecaster, series: Series, windows: Windows, trials: int, runs: int) -> dict[str, Any]:
    """`trials` TPE trials over the shipped space through the project's Objective, fresh encode cache."""
    space = load_space(SPACE, TotoForecaster.params)
    evaluator = Evaluator(forecaster, series, windows, SEED, EncodeCache(2 << 30))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=SEED),
                              pruner=optuna.pruners.MedianPruner(n_startup_trials=5))
    seconds, _ = timed(lambda: run.optimize(Objective(space, evaluator, range(runs)), n_trials=trials))
    done = [t for t in run.trials if t.state == optuna.trial.TrialState.COMPLETE]
    hits = [t.user_attrs["seconds"] for t in done if t.user_attrs.get("cache_hit")]  # not trials reusing a value
    return {
        "trials": trials, "seconds": round(seconds, 2), "complete": len(done),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in run.trials),
        "encodes": len(evaluator.cache), "median_cached_trial_seconds": round(statistics.median(hits), 5) if hits else None,
        "best_value": run.best_value, "naive_mae": evaluator.naive_mae(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(ARCHS), required=True)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--compile", action="store_true", help="torch.compile the fast path's encode")
    parser.add_argument("--context-length", type=int, default=512)
    parser.add_argument("--num-samples", type=int, default=None, help="default: 1024 on GPU or tiny, 64 full on CPU")
    parser.add_argument("--samples-per-batch", type=int, default=None, help="package loop; default min(num_samples, 128)")
    parser.add_argument("--windows", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warm-repeats", type=int, default=5)
    parser.add_argument("--study-trials", type=int, default=100)
    args = parser.parse_args()
    num_samples = args.num_samples or (64 if args.arch == "full" and args.device == "cpu" else 1024)
    samples_per_batch = args.samples_per_batch or min(num_samples, 128)

    with tempfile.TemporaryDirectory() as tmp:
        weights, data = Path(tmp) / "weights", Path(tmp) / "data"
        weights.mkdir()
        write_random_checkpoint(weights, ARCHS[args.arch])
        max_context = max(load_space(SPACE).high("context_length"), args.context_length)
        write_synthetic(data, ["BENCH"], rows=max_context + args.windows + 20 + 100)
        series = load_series(data, "BENCH")
        windows = make_windows(series, args.windows, 20, max_context)
        load_seconds, forecaster = timed(
            lambda: TotoForecaster(ModelOptions(device=args.device, weights=str(weights), compile=args.compile)))

    params = {"context_length": args.context_length, "num_samples": num_samples, "aggregate": "mean"}
    runs = range(args.runs)

    def cold() -> Any:
        return Evaluator(forecaster, series, windows, SEED, EncodeCache(1 << 30)).evaluate(params, runs)

    first_seconds, first = timed(cold)  # includes the compile when compiled
    cold_seconds = statistics.median(timed(cold)[0] for _ in range(3))
    warm_evaluator = Evaluator(forecaster, series, windows, SEED, EncodeCache(1 << 30))
    warm_evaluator.evaluate(params, runs)
    warm_seconds = statistics.median(timed(lambda: warm_evaluator.evaluate(params, runs))[0]
                                     for _ in range(args.warm_repeats))
    package_seconds, package_maes = timed(
        lambda: package_trial(forecaster, warm_evaluator, args.context_length, num_samples, samples_per_batch, args.runs))
    result = {
        "arch": args.arch,
        "parameters": sum(p.numel() for p in forecaster.backbone.parameters()),
        "device": str(forecaster.device),
        "torch_threads": torch.get_num_threads(),
        "compiled": forecaster.compiled,
        "windows": args.windows, "runs": args.runs, "context_length": args.context_length,
        "num_samples": num_samples, "samples_per_batch": samples_per_batch,
        "load_seconds": round(load_seconds, 2),
        "package_loop": {"seconds_per_trial": round(package_seconds, 3), "windows_timed": args.windows,
                         "runs_timed": args.runs, "scaled": False, "mae": statistics.fmean(package_maes)},
        "fast_path": {"first_trial_seconds": round(first_seconds, 4), "cold_seconds_per_trial": round(cold_seconds, 4),
                      "warm_seconds_per_trial": round(warm_seconds, 5), "mae": first.mae},
        "ratio_cold": round(package_seconds / cold_seconds, 1),
        "ratio_warm": round(package_seconds / warm_seconds, 1),
    }
    if args.study_trials:
        result["study"] = study(forecaster, series, windows, args.study_trials, args.runs)
    result["model_info"] = forecaster.info()
    result["load_average_1min"] = round(os.getloadavg()[0], 2)  # other work on the machine slows both sides
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
