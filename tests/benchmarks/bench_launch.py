"""Throughput of fhs studies through the real launcher (1 vs 2 workers); the Optuna + SQLite overhead per trial
when a study holds 100 vs 1000 trials; and warm workers: 6 Toto studies through one worker slot against one study
alone, before and after, through the command line.

The warm-worker part (`toto`): a tiny Toto checkpoint built with toto-ts's own classes (152k parameters, random
weights), 6 generated series, `launch --workers 1` with pinned settings (10 trials, 2 eval runs, 60 validation and 20
test windows, one context length, CPU, no transfer), once with the first symbol alone and once with all 6, each in a
fresh directory, wall time of the whole command. "before" is `--before COMMIT` checked out into a temporary git
worktree and run with PYTHONPATH pointing there; "after" is this tree. Runs alternate, so the other load on a shared
machine falls on all alike.

Run from the repository root: PYTHONPATH=. python tests/benchmarks/bench_launch.py [--parts fhs,overhead,toto]
[--trials 60] [--big 1000] [--before d42d828] [--repeats 2]. Prints one JSON object; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from rich.console import Console

from orchestrator.data import write_synthetic
from orchestrator.scoring.evaluation import Evaluator
from orchestrator.launch.launcher import launch
from orchestrator.models.base import ModelOptions, create
from orchestrator.search.objective import Objective, TrialGuard
from orchestrator.settings import Settings
from orchestrator.search.space import load_space
from orchestrator.storages.storage import open_storage
from orchestrator.search.runloop import run_to_target
from orchestrator.lifecycle.study import prepare, setup

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
    write_synthetic(root / "data", ["AAA"])
    (root / "space.toml").write_text(CHEAP_SPACE)
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


TINY_TOTO = {  # tests/test_toto.py's tiny layout: the full model's architecture at toy size
    "patch_size": 16, "stride": 16, "embed_dim": 64, "num_layers": 2, "num_heads": 4, "mlp_hidden_dim": 128,
    "dropout": 0.0, "spacewise_every_n_layers": 2, "spacewise_first": False, "use_memory_efficient_attention": False,
    "scaler_cls": "<class 'model.scaler.CausalPatchStdMeanScaler'>",
    "output_distribution_classes": ["<class 'model.distribution.MixtureOfStudentTsOutput'>"],
    "output_distribution_kwargs": {"k_components": 4},
}
TOTO_SPACE = """
[context_length]
type = "categorical"
choices = [128]
[num_samples]
type = "int"
low = 64
high = 512
log = true
[aggregate]
type = "categorical"
choices = ["mean", "median", "trimmed_mean_10", "quantile_0.45"]
"""
SIX = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]
PINNED = ("--workers", "1", "--trials", "10", "--eval-runs", "2", "--val-windows", "60", "--test-windows", "20",
          "--device", "cpu", "--no-transfer")


def tiny_toto(directory: Path) -> Path:
    import safetensors.torch
    import torch
    from toto.model.toto import Toto

    torch.manual_seed(0)
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(TINY_TOTO))
    safetensors.torch.save_model(Toto(**TINY_TOTO), str(directory / "model.safetensors"))
    return directory


def toto_launch(tree: Path, work: Path, symbols: list[str], weights: Path, data: Path, space: Path) -> dict:
    """One `launch` through the command line of the code in `tree`, in the fresh directory `work`."""
    work.mkdir(parents=True)
    command = [sys.executable, "-m", "orchestrator", "launch", "--models", "toto", "--symbols", ",".join(symbols),
               *PINNED, "--weights", str(weights), "--data-dir", str(data), "--space", str(space),
               "--save-summary", "summary.json"]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{tree}: launch exited {result.returncode}: {result.stdout[-2000:]}{result.stderr[-2000:]}")
    rows = json.loads((work / "summary.json").read_text())
    logs = "".join(p.read_text() for p in (work / "studies" / "logs").glob("*.log"))
    return {"seconds": round(seconds, 2), "statuses": sorted({r["status"] for r in rows}),
            "trials": sum(r["trials"] for r in rows), "study_seconds": [r["seconds"] for r in rows],
            "worker_processes": len(set(re.findall(r"pid (\d+)", logs)))}


def warm_workers(root: Path, before: str, repeats: int) -> dict:
    """6 Toto studies through one worker slot against one study alone, before (commit `before`) and after."""
    here = Path(__file__).resolve().parents[2]
    old = root / "before"
    subprocess.run(["git", "-C", str(here), "worktree", "add", "--detach", str(old), before], check=True,
                   capture_output=True)
    try:
        weights = tiny_toto(root / "toto")
        data = root / "toto-data"
        write_synthetic(data, SIX, rows=400)
        space = root / "toto-space.toml"
        space.write_text(TOTO_SPACE)
        runs: dict[str, list[dict]] = {f"{tree}_{n}": [] for tree in ("before", "after") for n in (1, 6)}
        for repeat in range(repeats):
            for tree, path in (("before", old), ("after", here)):
                for n in (1, 6):
                    runs[f"{tree}_{n}"].append(toto_launch(path, root / f"run-{tree}-{n}-{repeat}", SIX[:n], weights,
                                                           data, space))
    finally:
        subprocess.run(["git", "-C", str(here), "worktree", "remove", "--force", str(old)], check=False)
    median = {name: statistics.median(r["seconds"] for r in found) for name, found in runs.items()}
    return {
        "setup": "tiny Toto (152k params, random weights), CPU, launch --workers 1, 10 trials, 2 eval runs, "
                 "60 validation + 20 test windows, context_length 128 only, no transfer; wall time of the command",
        "before_commit": before, "repeats": repeats, "median_seconds": median,
        "six_over_one": {tree: round(median[f"{tree}_6"] / median[f"{tree}_1"], 2) for tree in ("before", "after")},
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default="fhs,overhead,toto")
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--big", type=int, default=1000)
    parser.add_argument("--before", default="d42d828", help="commit to compare warm workers with")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    parts = args.parts.split(",")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    root = Path(tempfile.mkdtemp())
    result = {"benchmark": "launch: throughput, storage overhead, warm workers", "cpu_cores": os.cpu_count()}
    if "fhs" in parts:
        result["workers_1"] = throughput(root, 1, args.trials)
        result["workers_2"] = throughput(root, 2, args.trials)
    if "overhead" in parts:
        result["overhead_per_trial"] = overhead(root, args.big)
    if "toto" in parts:
        result["warm_workers"] = warm_workers(root, args.before, args.repeats)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
