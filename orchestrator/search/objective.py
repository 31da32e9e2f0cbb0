"""The trial function: suggest params, score them over the eval runs, report each run to the pruner; and the guards
around it."""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from orchestrator.scoring.evaluation import Evaluator
from orchestrator.models.base import ForecastError
from orchestrator.search.space import Space


class TrialTimeout(Exception):
    """The trial ran far longer than earlier trials: stopped and recorded as failed."""


TRIAL_FAILURES = (ForecastError, TrialTimeout)
"""Exceptions that fail one trial (reason in its user attrs) while the study goes on."""


@dataclass(frozen=True)
class TrialGuard:
    """Per-trial limits derived from the study's earlier trials."""

    timeout_percentile: float = 95.0
    timeout_factor: float = 5.0
    timeout_min_seconds: float = 60.0

    def time_limit(self, trials: list[FrozenTrial]) -> float | None:
        """factor x the percentile of earlier complete trials' run times (at least the minimum); None before 5.

        It bounds the runs of a trial, never its encode: a new context length or a first compile may take far
        longer than the cache hits that make up most durations, and an encode that never finishes is never cached.
        """
        durations = [_run_seconds(t) for t in trials if t.state == TrialState.COMPLETE and t.duration]
        if len(durations) < 5:
            return None
        return max(self.timeout_min_seconds, self.timeout_factor * float(np.percentile(durations, self.timeout_percentile)))


def _run_seconds(trial: FrozenTrial) -> float:
    """Seconds of a trial's runs (without its encode); the whole duration for trials that did not record them."""
    if "seconds" in trial.user_attrs:
        return float(trial.user_attrs["seconds"]) - float(trial.user_attrs.get("encode_seconds", 0.0))
    return trial.duration.total_seconds()


class Objective:
    """Mean validation MAE over `runs`; the running mean after run r is reported as step r (MedianPruner input).

    A trial whose params equal a complete trial's reuses its value (same data, same seeds: same result), unless that
    trial ran on another device or with another compile setting (their numerics differ slightly).
    """

    def __init__(self, space: Space, evaluator: Evaluator, runs: range, guard: TrialGuard | None = None) -> None:
        self.space = space
        self.evaluator = evaluator
        self.runs = evaluator.runs(runs)  # one for a deterministic model: one report, so pruning never happens
        self.guard = guard

    def __call__(self, trial: optuna.Trial) -> float:
        # the trials as the sampler read them in this trial's ask (Optuna's per-trial cache): one storage read fewer
        trials = trial.study._get_trials(deepcopy=False, use_cache=True)
        params = self.space.suggest(trial)
        forecaster = self.evaluator.forecaster
        here = {"device": str(forecaster.device), "compiled": forecaster.compiled}
        same = next((t for t in trials if t.state == TrialState.COMPLETE and t.params == params
                     and all(t.user_attrs.get(k) == v for k, v in here.items())), None)
        if same is not None:
            trial.set_user_attr("reused_from", same.number)
            return same.value
        seconds = self.guard.time_limit(trials) if self.guard is not None else None
        try:
            result = self.evaluator.evaluate(params, self.runs, "validation", on_run=self._reporter(trial),
                                             limit=lambda: time_limit(seconds))
        except torch.OutOfMemoryError as exc:
            trial.set_user_attr("fail_reason", f"out of memory: {str(exc).splitlines()[0]}")
            raise ForecastError(str(exc)) from exc
        except (ForecastError, TrialTimeout) as exc:
            trial.set_user_attr("fail_reason", str(exc))
            raise
        for key, value in {"run_maes": result.run_maes, "std": result.std, "sem": result.sem,
                           "seconds": result.seconds, "encode_seconds": result.encode_seconds,
                           "cache_hit": result.cache_hit, **here}.items():
            trial.set_user_attr(key, value)
        return result.mae

    def _reporter(self, trial: optuna.Trial):
        last = len(self.runs) - 1

        def report(step: int, running_mean: float) -> None:
            trial.report(running_mean, step)
            if step < last and trial.should_prune():
                raise optuna.TrialPruned(f"running mean {running_mean:.6g} after {step + 1} run(s)")

        return report


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise TrialTimeout in this (main) thread after `seconds`; no limit for None or off the main thread."""
    if seconds is None or not math.isfinite(seconds) or threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame) -> None:
        raise TrialTimeout(f"stopped after {seconds:.1f} s of runs: longer than the timeout factor x the percentile "
                           "of earlier trials' run times (the encode is not limited)")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
