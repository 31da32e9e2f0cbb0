"""Per-trial cost of an fhs study: scoring with and without the encode cache, and Optuna + SQLite overhead.

Run: python tests/benchmarks/bench_trial_cost.py [--trials 200]. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import optuna

from orchestrator.data import load_series, make_windows, write_synthetic
from orchestrator.evaluation import EncodeCache, Evaluator
from orchestrator.models.base import ModelOptions, create
from orchestrator.objective import Objective
from orchestrator.settings import PACKAGE_CONFIGS, Settings
from orchestrator.space import load_space
from orchestrator.storage import open_storage


def per_trial(study: optuna.Study, objective, trials: int) -> float:
    start = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return (time.perf_counter() - start) / trials


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tmp = Path(tempfile.mkdtemp())
    write_synthetic(tmp, ["BTCUSD"], rows=800)
    series = load_series(tmp, "BTCUSD")
    space = load_space(PACKAGE_CONFIGS / "spaces" / "fhs.toml")
    windows = make_windows(series, 30, 20, int(space.high("context_length")))
    forecaster = create("fhs", ModelOptions())
    runs = range(3)

    def scoring_only(cache_bytes: int) -> float:
        evaluator = Evaluator(forecaster, series, windows, seed=0, cache=EncodeCache(cache_bytes))
        sampler = optuna.samplers.RandomSampler(seed=1)
        return per_trial(optuna.create_study(sampler=sampler), Objective(space, evaluator, runs), args.trials)

    cached, uncached = scoring_only(1 << 30), scoring_only(0)

    class Free(Objective):  # same suggest + user attrs + reports as a real trial, no scoring
        def __call__(self, trial: optuna.Trial) -> float:
            self.space.suggest(trial)
            for step in runs:
                trial.report(0.0, step)
            for key in ("run_maes", "std", "sem", "seconds", "cache_hit", "device"):
                trial.set_user_attr(key, 0.0)
            return 0.0

    def overhead(storage) -> float:
        study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=1))
        return per_trial(study, Free(space, None, runs), args.trials)

    in_memory = overhead(None)
    sqlite = overhead(open_storage(f"sqlite:///{tmp}/bench.db", Settings()))
    evaluator = Evaluator(forecaster, series, windows, seed=0)
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp}/full.db", Settings()),
                                sampler=optuna.samplers.TPESampler(seed=0))
    full = per_trial(study, Objective(space, evaluator, runs), args.trials)
    ms = lambda s: round(s * 1000, 3)  # noqa: E731
    print(json.dumps({
        "benchmark": "fhs trial cost", "trials": args.trials, "windows": 30, "runs": 3,
        "scoring_ms_per_trial": {"encode_cached": ms(cached), "encode_every_trial": ms(uncached),
                                 "ratio": round(uncached / cached, 2)},
        "optuna_overhead_ms_per_trial": {"in_memory": ms(in_memory), "sqlite_wal_heartbeat": ms(sqlite)},
        "full_trial_ms_sqlite_tpe": ms(full),
    }, indent=2))


if __name__ == "__main__":
    main()
