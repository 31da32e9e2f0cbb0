"""What a commit decision costs with the SPA test: every distinct config of the study rescored on the confirm runs,
next to the decision without it (candidate and incumbent only), per model, on CPU.

Run from the repository root: PYTHONPATH=. python tests/benchmarks/bench_decision_cost.py [--models fhs,toto,kronos]
[--trials 100] [--threads 1] [--kronos-arch tiny]. Prints one JSON object; asserts nothing about time.

What runs, per model: one real study through the library (`prepare`, `setup`, `work` without the commit) of
`--trials` trials with the model's default space and the default settings (250 validation and 60 test windows,
3 eval runs, 3 confirm runs) on generated bars, with an incumbent config written first (so it is trial 0). Random
weights built with the packages' own classes (`bench_toto.write_random_checkpoint`, `bench_kronos.save_random`).
Then the decision's parts, timed in this process, each on a fresh Evaluator (cold: as `orchestrator commit`, which
encodes again) and once more on the same Evaluator (warm: every encode cached, as in the worker that ran the
trials when its cache holds them):
  paired   the candidate (validation + test) and the incumbent scored on the confirm runs: the decision before SPA
  spa      every other distinct complete config rescored on the confirm runs and the SPA test (orchestrator.decisions.commit._spa)
Reported with the configs rescored, the distinct encode keys among them, and the study's median trial seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from orchestrator.decisions.commit import _score, _spa, tried_configs  # noqa: E402
from orchestrator.data import write_synthetic  # noqa: E402
from orchestrator.scoring.evaluation import EncodeCache, Evaluator  # noqa: E402
from orchestrator.models.base import ModelOptions, create  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402
from orchestrator.lifecycle.study import prepare, setup, work  # noqa: E402

INCUMBENTS = {
    "fhs": {"context_length": 256, "ewma_halflife": 20.0, "drift": False, "num_samples": 512, "aggregate": "median"},
    "toto": {"context_length": 256, "num_samples": 256, "aggregate": "median"},
    "kronos": {"max_context": 256, "clip": 2.0, "temperature": 1.0, "filter": "top_p", "top_p": 0.9,
               "sample_count": 32, "aggregate": "mean"},
}


def options(model: str, root: Path, kronos_arch: str) -> ModelOptions:
    if model == "toto":
        from bench_toto import ARCHS, write_random_checkpoint

        directory = root / "toto"
        directory.mkdir()
        write_random_checkpoint(directory, ARCHS["tiny"])
        return ModelOptions(device="cpu", weights=str(directory))
    if model == "kronos":
        from bench_kronos import save_random

        weights, tokenizer = save_random(kronos_arch, root / "kronos")
        return ModelOptions(device="cpu", weights=weights, tokenizer=tokenizer)
    return ModelOptions(device="cpu")


def timed(fn) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return round(time.perf_counter() - start, 3), result


def measure(model: str, trials: int, root: Path, kronos_arch: str) -> dict[str, Any]:
    write_synthetic(root / "data", ["BENCH"], rows=900)
    best_dir = root / "best"
    (best_dir / model).mkdir(parents=True)
    (best_dir / model / "BENCH.json").write_text(json.dumps({"model": model, "symbol": "BENCH",
                                                             "params": INCUMBENTS[model]}))
    settings = Settings(data_dir=root / "data", storage=f"sqlite:///{root / 'optuna.db'}", best_dir=best_dir,
                        artifact_dir=root / "artifacts", trials=trials, transfer=False)
    opts = options(model, root, kronos_arch)
    job = prepare(model, "BENCH", settings, opts)
    forecaster = create(model, opts)
    setup(job, forecaster)
    study_seconds, _ = timed(lambda: work(job, commit=False, forecaster=forecaster))
    study = optuna.load_study(study_name=job.name, storage=settings.storage)
    seconds = [t.user_attrs["seconds"] for t in study.trials if "seconds" in t.user_attrs]
    confirm = range(settings.eval_runs, settings.eval_runs + settings.confirm_runs)
    best = study.best_trial
    configs = tried_configs(study, INCUMBENTS[model])
    keys = {tuple(t.params.get(p) for p in sorted(forecaster.encode_params)) for t in configs}
    evaluator = Evaluator(forecaster, job.series, job.windows, settings.seed, EncodeCache(settings.cache_mb << 20))
    out: dict[str, Any] = {"model": model, "trials": trials, "study_seconds": study_seconds,
                           "median_trial_seconds": round(statistics.median(seconds), 4),
                           "configs": len(configs), "encode_keys": len(keys)}
    for case in ("cold", "warm"):
        paired, candidate = timed(lambda: (_score(evaluator, best.params, confirm),
                                                _score(evaluator, INCUMBENTS[model], confirm))[0])
        incumbent_errors = evaluator.evaluate(INCUMBENTS[model], confirm, "validation").window_errors
        spa_seconds, spa = timed(lambda: _spa(study, best, evaluator, confirm, INCUMBENTS[model], candidate[1],
                                              incumbent_errors, None))
        out[case] = {"paired_seconds": paired, "spa_seconds": spa_seconds,
                     "spa_per_config_ms": round(1000 * spa_seconds / max(len(configs) - 1, 1), 2),
                     "spa_in_trials": round(spa_seconds / statistics.median(seconds), 1),
                     "spa_p_value": spa.p_value, "spa_configs": spa.configs}
    print(json.dumps(out), file=sys.stderr, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="fhs,toto,kronos")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kronos-arch", default="tiny", choices=("tiny", "small", "base"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results = []
    for model in args.models.split(","):
        with tempfile.TemporaryDirectory(prefix=f"bench_decision_cost_{model}_") as tmp:
            results.append(measure(model, args.trials, Path(tmp), args.kronos_arch))
    print(json.dumps({"benchmark": "commit decision cost on CPU: paired test only vs every config rescored + SPA",
                      "threads": args.threads, "kronos_arch": args.kronos_arch, "results": results}, indent=2))


if __name__ == "__main__":
    main()
