"""Toto 2.0: the package's forecast per window (the prior way) vs this project's trial, in one process, on the same
random model and data.

    python tests/benchmarks/bench_toto2.py --arch tiny|22m|313m [--device cpu|cuda] [--compile]

Prior way: `Toto2Model.forecast` per window and per run (as the seed's loop ran every model `--runs` times), each
window's bars left-padded to whole patches; point forecast = the median. This project: `Evaluator.evaluate` with the
Toto 2.0 forecaster, cold (the batched encode + the point rule, empty encode cache) and warm (encode cached by an
earlier trial, another point rule); one run, whatever `--runs` says. Both score the same windows, and the MAEs are
printed side by side (they agree to float precision). Then a study of `--study-trials` trials (TPE, the project's
Objective) over configs/spaces/toto2.toml, timed after the model is loaded. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from orchestrator.data import Series, Windows, load_series, make_windows, write_synthetic
from orchestrator.scoring.evaluation import EncodeCache, Evaluator, return_mae
from orchestrator.models.base import ModelOptions
from orchestrator.models.toto2 import FORECAST_OPTIONS, Toto2Forecaster
from orchestrator.search.objective import Objective
from orchestrator.search.space import load_space

SPACE = Path(__file__).resolve().parents[2] / "configs" / "spaces" / "toto2.toml"
PUBLISHED = {  # the flags every published Toto-2.0 config.json shares
    "patch_size": 32, "num_variate_layers_per_group": 1, "variate_layer_first": False, "attn_bias": True,
    "mlp_bias": False, "qk_dim": 64, "v_dim": 64, "qk_norm": False, "per_dim_scale": True, "use_xpos": True,
    "residual_mult": 0.75, "norm_eps": 1e-4,
}
ARCHS = {
    "tiny": {"patch_size": 16, "d_model": 32, "num_heads": 2, "num_layers": 2, "layer_group_size": 2,
             "num_variate_layers_per_group": 1, "variate_layer_first": False, "attn_bias": True, "qk_norm": False,
             "per_dim_scale": True, "use_xpos": True, "residual_mult": 0.75, "norm_eps": 1e-4},
    "22m": {**PUBLISHED, "d_model": 512, "d_ff": 1368, "num_heads": 8, "num_layers": 6, "layer_group_size": 6},
    "313m": {**PUBLISHED, "d_model": 1024, "d_ff": 2736, "num_heads": 16, "num_layers": 24, "layer_group_size": 24},
}
SEED = 0


def write_random_checkpoint(directory: Path, config: dict[str, Any]) -> int:
    """A randomly initialised Toto2Model saved as the hub lays it out; returns its parameter count."""
    from toto2.configuration import Toto2ModelConfig
    from toto2.model import Toto2Model

    torch.manual_seed(SEED)
    ratio = Toto2ModelConfig.compute_residual_attn_ratio(4096, config["patch_size"])  # trained at 4096 steps
    model = Toto2Model(Toto2ModelConfig(**config, residual_attn_ratio=ratio))
    model.save_pretrained(directory)
    return sum(p.numel() for p in model.parameters())


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def package_trial(forecaster: Toto2Forecaster, series: Series, ends: np.ndarray, length: int, runs: int) -> list[float]:
    """The prior way: the package's forecast of each window on its own, every run; the MAE of each run."""
    model, close = forecaster.model, series.close
    patch = model.config.patch_size
    maes = []
    for _ in range(runs):
        points = []
        for end in ends:
            bars = torch.from_numpy(close[max(end - length, 0):end]).float()
            padded = -(-len(bars) // patch) * patch
            target = torch.zeros(1, 1, padded, device=forecaster.device)
            mask = torch.zeros_like(target, dtype=torch.bool)
            target[..., padded - len(bars):] = bars.to(forecaster.device)
            mask[..., padded - len(bars):] = True
            ids = torch.zeros(1, 1, dtype=torch.long, device=forecaster.device)
            with torch.inference_mode():
                quantiles = model.forecast({"target": target, "target_mask": mask, "series_ids": ids}, 1,
                                           **FORECAST_OPTIONS)
            points.append(float(quantiles[4, 0, 0, 0]))  # the 0.5 knot
        maes.append(return_mae(np.array(points), close[ends - 1], close[ends]))
    return maes


def study(forecaster: Toto2Forecaster, series: Series, windows: Windows, trials: int, runs: int) -> dict[str, Any]:
    """`trials` TPE trials over the shipped space through the project's Objective, fresh encode cache."""
    space = load_space(SPACE, Toto2Forecaster.params)
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
        "distinct_configs": len({tuple(sorted(t.params.items())) for t in done}),
        "encodes": len(evaluator.cache),
        "median_cached_trial_seconds": round(statistics.median(hits), 5) if hits else None,
        "best_value": run.best_value, "naive_mae": evaluator.naive_mae(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(ARCHS), required=True)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--windows", type=int, default=30)
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3, help="runs of the prior loop per trial (this trial makes one)")
    parser.add_argument("--study-trials", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "weights"
        parameters = write_random_checkpoint(directory, ARCHS[args.arch])
        load_seconds, forecaster = timed(lambda: Toto2Forecaster(
            ModelOptions(device=args.device, weights=str(directory), compile=args.compile)))
        write_synthetic(Path(tmp) / "data", ["BTCUSD"], rows=args.context + args.windows + 20 + 200)
        series = load_series(Path(tmp) / "data", "BTCUSD")
        windows = make_windows(series, args.windows, 20, Toto2Forecaster.min_context)
        ends = windows.validation
        params = {"context_length": args.context, "aggregate": "median"}

        prior_seconds, prior_maes = timed(lambda: package_trial(forecaster, series, ends, args.context, args.runs))
        evaluator = Evaluator(forecaster, series, windows, SEED, EncodeCache(2 << 30))
        cold_seconds, cold = timed(lambda: evaluator.evaluate(params, range(args.runs)))
        warm = [timed(lambda rule=rule: evaluator.evaluate({**params, "aggregate": rule}, range(args.runs)))
                for rule in ("mean", "trimmed_mean_20", "quantile_0.45", "quantile_0.55", "median")]
        warm_seconds = statistics.median(seconds for seconds, _ in warm)
        result = {
            "arch": args.arch, "parameters": parameters, "device": str(forecaster.device), "compiled": args.compile,
            "threads": torch.get_num_threads(),
            "windows": len(ends), "context": args.context, "prior_runs": args.runs, "trial_runs": len(cold.run_maes),
            "load_seconds": round(load_seconds, 2),
            "prior_trial_seconds": round(prior_seconds, 3),
            "prior_trial_seconds_one_run": round(prior_seconds / args.runs, 3),
            "trial_cold_seconds": round(cold_seconds, 4),
            "trial_warm_seconds": round(warm_seconds, 5),
            "speedup_cold": round(prior_seconds / cold_seconds, 1),
            "speedup_warm": round(prior_seconds / warm_seconds, 1),
            "mae_prior": prior_maes[0], "mae_trial": cold.mae,
            "mae_prior_runs_identical": len(set(prior_maes)) == 1,
            "warm_cache_hits": all(e.cache_hit for _, e in warm),
            "study": study(forecaster, series, windows, args.study_trials, args.runs),
            "model_info": forecaster.info(),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
