"""Overhead per trial outside scoring for a real fhs study, driven by the project's own run loop: before and after
issue 12, and on Optuna's JournalStorage; plus the search quality of the before and after samplers.

Run from the repository root: PYTHONPATH=. python tests/benchmarks/bench_trial_cost.py [--trials 1000] [--chunk 20]
[--repeats 3] [--quality-seeds 5] [--quality-trials 300]. Prints one JSON object; asserts nothing about time.

What runs: one process holds three fhs studies on the same synthetic series, windows, space and seeds, each set up
by `setup` and worked as `work` does it (`load_study` with `make_pruner`/`make_sampler`, the Evaluator, TrialGuard and
Objective, `run_to_target`):
  before   the code path before issue 12, kept in this file: SQLite with synchronous=FULL (every commit flushed),
           TPESampler(group=True) with Optuna's own log_ndtr, the run loop without the per-trial flush, the Objective
           reading the study's trials from the storage
  after    the project's code path now: `open_storage` with the default settings, `make_sampler`, `run_to_target`
  journal  the project's code path now on Optuna's JournalStorage(JournalFileBackend) (no heartbeat in Optuna 5)
The studies advance `--chunk` trials at a time in turn, so the other load on this machine falls on all alike.

How the overhead is measured: for trial k, overhead = (time trial k's objective returned - time trial k-1's objective
returned) - scoring time of trial k. Scoring = `Evaluator.evaluate`'s time minus the time spent in its per-run
callback (trial.report and should_prune: storage and pruner work, so overhead). The interval holds trial k-1's tell and
callbacks, the run loop, stale-trial checks, ask, sampling, suggest, heartbeat, reports and user attrs: everything but
scoring. The first trial of a chunk is left out (its interval starts with a `run_to_target` call). Reported per
repeat (fresh studies) and as the median over repeats: mean and median over trial numbers 0-99 ("1-100") and 900-999
("901-1000"), all wall clock; within that, the time in the sampler (infer_relative_search_space, sample_relative,
sample_independent) and the pruner, and the calls to the study's storage with their time (the sampler's and the
pruner's storage calls count in their times too; record_heartbeat runs in Optuna's heartbeat thread, beside the trial).
Also per repeat: one SQLite commit with synchronous=FULL and NORMAL and one fdatasync of the WAL, on the same disk.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.samplers._tpe import _truncnorm

OPTUNA_LOG_NDTR = _truncnorm._log_ndtr  # before importing the project, which may replace it

from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials  # noqa: E402
from optuna.storages.journal import JournalFileBackend, JournalStorage  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

import orchestrator  # noqa: E402
from orchestrator.data import write_synthetic  # noqa: E402
from orchestrator.scoring.evaluation import EncodeCache, Evaluator  # noqa: E402
from orchestrator.models.base import ModelOptions, create  # noqa: E402
from orchestrator.models.base import ForecastError  # noqa: E402
from orchestrator.storages.counts import counted  # noqa: E402
from orchestrator.search.objective import TRIAL_FAILURES, Objective, TrialGuard, TrialTimeout, time_limit  # noqa: E402
from orchestrator.search.sampling import make_pruner, make_sampler  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402
from orchestrator.storages.storage import fail_orphaned_trials, open_storage  # noqa: E402
from orchestrator.storages.counts import counts  # noqa: E402
from orchestrator.search.runloop import Patience, run_to_target  # noqa: E402
from orchestrator.lifecycle.study import prepare, setup  # noqa: E402

PROJECT_LOG_NDTR = _truncnorm._log_ndtr


# ---- the code path before issue 12 (commit fca0211), kept as it was ----

def open_storage_before(url: str, settings: Settings) -> RDBStorage:
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path, timeout=30) as con:
        con.execute("PRAGMA journal_mode=WAL")
    return RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 30}},
                      heartbeat_interval=settings.heartbeat_interval, grace_period=settings.grace_period,
                      heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2))


def sampler_before(settings: Settings, worker: int = 0) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=settings.seed + worker, group=True)


def run_to_target_before(study, storage, objective, target, patience=None, budget=None, poll_seconds=1.0) -> str:
    stopper = Patience(patience)
    deadline = None if budget is None else time.monotonic() + budget
    while True:
        fail_stale_trials(study)
        fail_orphaned_trials(study, storage)
        now = counts(study)
        if stopper.triggered:
            return "patience"
        if deadline is not None and time.monotonic() >= deadline:
            return "budget"
        need = target - now.finished - now.running
        if need > 0:
            timeout = None if deadline is None else deadline - time.monotonic()
            study.optimize(objective, n_trials=need, timeout=timeout, catch=(*TRIAL_FAILURES, Surplus),
                           callbacks=[stopper])
            continue
        if now.running == 0:
            return "target"
        time.sleep(poll_seconds)


class Surplus(Exception):
    """Before issue 16, a trial that started after the target was reached failed as a surplus."""


class ObjectiveBefore(Objective):
    def __init__(self, *args, target: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.target = target

    def __call__(self, trial: optuna.Trial) -> float:
        trials = trial.study.get_trials(deepcopy=False)
        if sum(1 for t in counted(trials) if t.number < trial.number) >= self.target:
            trial.set_user_attr("surplus", True)
            raise Surplus(f"the study reached its target of {self.target} trials before trial {trial.number}")
        params = self.space.suggest(trial)
        same = next((t for t in trials if t.state == TrialState.COMPLETE and t.params == params), None)
        if same is not None:
            trial.set_user_attr("reused_from", same.number)
            return same.value
        limit = self.guard.time_limit(trials) if self.guard is not None else None
        try:
            with time_limit(limit):
                result = self.evaluator.evaluate(params, self.runs, "validation", on_run=self._reporter(trial))
        except torch.OutOfMemoryError as exc:
            trial.set_user_attr("fail_reason", f"out of memory: {str(exc).splitlines()[0]}")
            raise ForecastError(str(exc)) from exc
        except (ForecastError, TrialTimeout) as exc:
            trial.set_user_attr("fail_reason", str(exc))
            raise
        for key, value in (("run_maes", result.run_maes), ("std", result.std), ("sem", result.sem),
                           ("seconds", result.seconds), ("cache_hit", result.cache_hit),
                           ("device", str(self.evaluator.forecaster.device))):
            trial.set_user_attr(key, value)
        return result.mae


# ---- measurement ----

STORAGE_CALLS = ("get_all_trials", "get_trial", "create_new_trial", "set_trial_param", "set_trial_system_attr",
                 "set_trial_user_attr", "set_trial_intermediate_value", "set_trial_state_values", "record_heartbeat",
                 "_get_stale_trial_ids")


@dataclass
class Trial:
    end: float = 0.0  # when its objective returned
    scoring: float = 0.0
    spent: dict[str, float] = field(default_factory=dict)  # seconds in the sampler, the pruner, each storage call
    calls: dict[str, int] = field(default_factory=dict)
    chunk_first: bool = False


@dataclass
class Run:
    """One study worked through a run loop, with every trial timed."""

    name: str
    study: optuna.Study
    storage: Any
    objective: Any
    loop: Any
    log_ndtr: Any
    trials: list[Trial] = field(default_factory=list)
    current: Trial = field(default_factory=Trial)

    def advance(self, target: int) -> None:
        _truncnorm._log_ndtr = self.log_ndtr
        self.current.chunk_first = True
        self.loop(self.study, self.storage, self.objective, target)

    def window(self, first: int, last: int) -> dict[str, Any]:
        """ms per trial over trial numbers first..last (0-based), chunk-first trials left out."""
        rows = [(self.trials[i - 1], self.trials[i]) for i in range(max(first, 1), min(last, len(self.trials) - 1) + 1)
                if not self.trials[i].chunk_first]
        overhead = [(t.end - p.end - t.scoring) * 1e3 for p, t in rows]
        mean = lambda values: round(statistics.mean(values), 2)  # noqa: E731
        return {
            "trials_measured": len(rows), "overhead_mean": mean(overhead),
            "overhead_median": round(statistics.median(overhead), 2),
            "scoring_mean": mean(t.scoring * 1e3 for _, t in rows),
            "within_overhead_ms": {k: mean(t.spent.get(k, 0.0) * 1e3 for _, t in rows) for k in ("sampler", "pruner")},
            "storage_calls": {k: {"per_trial": mean(t.calls.get(k, 0) for _, t in rows),
                                  "ms": mean(t.spent.get(k, 0.0) * 1e3 for _, t in rows)}
                              for k in STORAGE_CALLS if any(k in t.calls for _, t in rows)},
        }


def instrument(run: Run, evaluator: Evaluator, objective) -> None:
    """Time scoring and the sampler, pruner and storage calls of every trial, through wrappers on these instances
    (nothing else changes)."""
    def add(obj, name: str, slot: str) -> None:
        inner = getattr(obj, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                trial = run.current
                trial.spent[slot] = trial.spent.get(slot, 0.0) + time.perf_counter() - start
                trial.calls[slot] = trial.calls.get(slot, 0) + 1

        setattr(obj, name, timed)

    for name in ("infer_relative_search_space", "sample_relative", "sample_independent"):
        add(run.study.sampler, name, "sampler")
    add(run.study.pruner, "prune", "pruner")
    for name in STORAGE_CALLS:
        if hasattr(run.study._storage, name):
            add(run.study._storage, name, name)
    evaluate = evaluator.evaluate

    def scored(params, runs, split="validation", on_run=None, limit=None):
        inside = [0.0]

        def hook(step: int, mean: float) -> None:
            start = time.perf_counter()
            try:
                on_run(step, mean)
            finally:
                inside[0] += time.perf_counter() - start

        start = time.perf_counter()
        try:
            return evaluate(params, runs, split, on_run=hook if on_run else None, limit=limit)
        finally:
            run.current.scoring += time.perf_counter() - start - inside[0]

    evaluator.evaluate = scored

    def timed_objective(trial: optuna.Trial) -> float:
        try:
            return objective(trial)
        finally:
            run.current.end = time.perf_counter()
            run.trials.append(run.current)
            run.current = Trial()

    run.objective = timed_objective


def build(name: str, root: Path, trials: int, worker: int = 0, storage_kind: str | None = None) -> Run:
    """A set-up fhs study worked the way `work` does, with the code path of `name` (before / after / journal)."""
    kind = storage_kind or name
    settings = Settings(data_dir=root / "data", storage=f"sqlite:///{root}/{kind}-{name}-{worker}.db",
                        best_dir=root / "best", trials=trials, device="cpu")
    job = prepare("fhs", "BTCUSD", settings, ModelOptions(device="cpu"))
    forecaster = create("fhs", job.options)
    setup(job, forecaster)
    if kind == "before":
        storage = open_storage_before(settings.storage, settings)
    elif kind == "journal":
        storage = JournalStorage(JournalFileBackend(str(root / f"journal-{name}-{worker}.log")))
        optuna.copy_study(from_study_name=job.name, from_storage=open_storage(settings.storage, settings),
                          to_storage=storage)
    else:
        storage = open_storage(settings.storage, settings)
    sampler = sampler_before(settings, worker) if name == "before" else make_sampler(settings, job.space, None, [], worker)[0]
    study = optuna.load_study(study_name=job.name, storage=storage, pruner=make_pruner(settings), sampler=sampler)
    evaluator = Evaluator(forecaster, job.series, job.windows, settings.seed,
                          EncodeCache(settings.cache_mb << 20))
    guard = TrialGuard(settings.timeout_percentile, settings.timeout_factor, settings.timeout_min_seconds)
    runs = range(settings.eval_runs)
    objective = ObjectiveBefore(job.space, evaluator, runs, guard, target=trials) if name == "before" else \
        Objective(job.space, evaluator, runs, guard)
    run = Run(name, study, storage, objective, run_to_target_before if name == "before" else run_to_target,
              OPTUNA_LOG_NDTR if name == "before" else PROJECT_LOG_NDTR)
    instrument(run, evaluator, objective)
    return run


def sqlite_write_ms(root: Path, reps: int = 200) -> dict[str, float]:
    """One small SQLite commit in WAL mode with synchronous=FULL vs NORMAL, and one fdatasync of the WAL, interleaved."""
    path = root / "writes.db"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE t (x)")
    times: dict[str, list[float]] = {"commit_synchronous_full": [], "commit_synchronous_normal": [],
                                     "fdatasync_wal_after_normal_commit": []}
    for i in range(reps):
        for mode in ("FULL", "NORMAL"):
            con.execute(f"PRAGMA synchronous={mode}")
            start = time.perf_counter()
            con.execute("INSERT INTO t VALUES (?)", (i,))
            times[f"commit_synchronous_{mode.lower()}"].append(time.perf_counter() - start)
        start = time.perf_counter()
        fd = os.open(f"{path}-wal", os.O_RDONLY)
        os.fdatasync(fd)
        os.close(fd)
        times["fdatasync_wal_after_normal_commit"].append(time.perf_counter() - start)
    con.close()
    return {k: round(statistics.median(v) * 1e3, 3) for k, v in times.items()}


def quality(root: Path, seeds: int, trials: int) -> dict[str, Any]:
    """Best value after `trials` trials with the before and the after sampler, per sampler seed (same study seed,
    so the same objective); both on the after storage, which does not change the search."""
    best: dict[str, list[float]] = {"before": [], "after": []}
    for seed in range(seeds):
        for name in ("before", "after"):
            run = build(name, root / "quality", trials, worker=seed, storage_kind="after")
            run.advance(trials)
            best[name].append(run.study.best_value)
    return {
        "trials": trials, "sampler_seeds": list(range(seeds)),
        "best_value_before": best["before"], "best_value_after": best["after"],
        "mean_before": statistics.mean(best["before"]), "mean_after": statistics.mean(best["after"]),
        "seeds_after_better": sum(a < b for a, b in zip(best["after"], best["before"])),
        "seeds_equal": sum(a == b for a, b in zip(best["after"], best["before"])),
    }


def measure(root: Path, variants: list[str], trials: int, chunk: int) -> dict[str, Any]:
    """One interleaved run of the variants' studies to `trials` trials."""
    write_synthetic(root / "data", ["BTCUSD"], rows=800)
    runs = [build(name, root, trials) for name in variants]
    started = time.perf_counter()
    for target in range(chunk, trials + chunk, chunk):
        for run in runs:
            run.advance(min(target, trials))
    seconds = time.perf_counter() - started
    windows = {"trials_1_100": (0, 99)}
    if trials >= 1000:
        windows["trials_901_1000"] = (900, 999)
    return {
        "seconds": round(seconds, 1),
        "ms_per_trial": {run.name: {w: run.window(*span) for w, span in windows.items()} for run in runs},
        "best_value": {run.name: {"after_100": min((t.value for t in run.study.get_trials(deepcopy=False)[:100]
                                                    if t.state == TrialState.COMPLETE), default=None),
                                  "after_all": run.study.best_value} for run in runs},
        "finished_trials": {run.name: counts(run.study).finished for run in runs},
        "sqlite_write_ms": sqlite_write_ms(root),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--variants", default="before,after,journal")
    parser.add_argument("--quality-seeds", type=int, default=0)
    parser.add_argument("--quality-trials", type=int, default=300)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    root = Path(tempfile.mkdtemp())
    variants = args.variants.split(",")
    repeats = [measure(root / f"repeat{i}", variants, args.trials, args.chunk) for i in range(args.repeats)]
    medians = {name: {w: {k: round(statistics.median(r["ms_per_trial"][name][w][k] for r in repeats), 2)
                          for k in ("overhead_mean", "overhead_median", "scoring_mean")}
                      for w in repeats[0]["ms_per_trial"][name]}
               for name in variants}
    result: dict[str, Any] = {
        "benchmark": "fhs: overhead per trial outside scoring, real run loop",
        "orchestrator": str(Path(orchestrator.__file__).parent), "optuna": optuna.__version__,
        "cpu_count": os.cpu_count(), "trials": args.trials, "chunk": args.chunk, "val_windows": 250, "eval_runs": 3,
        "median_over_repeats": medians, "repeats": repeats,
    }
    if args.quality_seeds:
        (root / "quality").mkdir()
        write_synthetic(root / "quality" / "data", ["BTCUSD"], rows=800)
        result["search_quality"] = quality(root, args.quality_seeds, args.quality_trials)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
