"""Throughput of fhs studies through the real launcher (1 vs 2 workers), and the Optuna + SQLite overhead per trial
when a study holds 100 vs 1000 trials.

Run: python tests/benchmarks/bench_launch.py [--trials 60] [--big 1000]. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import optuna
from rich.console import Console

from orchestrator.data import write_synthetic
from orchestrator.evaluation import Evaluator
from orchestrator.launcher import launch
from orchestrator.models.base import ModelOptions, create
from orchestrator.objective import Objective, TrialGuard
from orchestrator.settings import Settings
from orchestrator.space import load_space
from orchestrator.storage import open_storage
from orchestrator.study import prepare, run_to_target, setup

CHEAP_SPACE = """
[context_length]
type = "int"
low = 32
high = 256
log = true
[ewma_halflife]
type = "float"
low = 2.0
high = 60.0
log = true
[num_samples]
type = "int"
low = 64
high = 128
[aggregate]
type = "categorical"
choices = ["mean", "median"]
"""


def throughput(root: Path, workers: int, trials: int) -> dict[str, float]:
    symbols = ["AAA", "BBB", "CCC", "DDD"]
    write_synthetic(root / "data", symbols)
    (root / "space.toml").write_text(CHEAP_SPACE)
    settings = Settings(data_dir=root / "data", storage=f"sqlite:///{root}/w{workers}.db", best_dir=root / f"best{workers}",
                        trials=trials, device="cpu")
    jobs = [prepare("fhs", s, settings, ModelOptions(device="cpu"), root / "space.toml") for s in symbols]
    start = time.perf_counter()
    launch(jobs, workers, 1, Console(file=open(os.devnull, "w")), root / "logs")
    seconds = time.perf_counter() - start
    return {"studies": len(symbols), "trials": len(symbols) * trials, "seconds": round(seconds, 2),
            "trials_per_second": round(len(symbols) * trials / seconds, 2)}


def overhead(root: Path, big: int) -> dict[str, float]:
    """ms per trial spent outside scoring (Optuna, SQLite, our guards), early in a study and after `big` trials."""
    settings = Settings(data_dir=root / "data", storage=f"sqlite:///{root}/big.db", best_dir=root / "bestbig",
                        trials=big + 50, device="cpu")
    job = prepare("fhs", "AAA", settings, ModelOptions(device="cpu"), root / "space.toml")
    forecaster = create("fhs", job.options)
    setup(job, forecaster)
    storage = open_storage(settings.storage, settings)
    study = optuna.load_study(study_name=job.name, storage=storage, sampler=optuna.samplers.TPESampler(seed=0))
    evaluator = Evaluator(forecaster, job.series, job.windows, seed=0)
    objective = Objective(load_space(root / "space.toml"), evaluator, range(3), TrialGuard())
    scoring: list[float] = []
    evaluate = evaluator.evaluate

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return evaluate(*args, **kwargs)
        finally:
            scoring.append(time.perf_counter() - start)

    evaluator.evaluate = timed
    result = {}
    for at in (100, big):
        run_to_target(study, storage, objective, at)
        scoring.clear()
        start = time.perf_counter()
        run_to_target(study, storage, objective, at + 50)
        per_trial = (time.perf_counter() - start) / 50
        result[f"at_{at}_trials"] = {"trial_ms": round(per_trial * 1000, 2),
                                     "scoring_ms": round(sum(scoring) / 50 * 1000, 2),
                                     "overhead_ms": round((per_trial - sum(scoring) / 50) * 1000, 2)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--big", type=int, default=1000)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    root = Path(tempfile.mkdtemp())
    print(json.dumps({
        "benchmark": "launch throughput and storage overhead (fhs, SQLite WAL)",
        "cpu_cores": os.cpu_count(),
        "workers_1": throughput(root, 1, args.trials),
        "workers_2": throughput(root, 2, args.trials),
        "overhead_per_trial": overhead(root, args.big),
    }, indent=2))


if __name__ == "__main__":
    main()
