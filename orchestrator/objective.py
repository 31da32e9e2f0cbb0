"""The trial function: suggest params, score them over the eval runs, report each run to the pruner."""

from __future__ import annotations

import optuna
import torch

from orchestrator.evaluation import Evaluator
from orchestrator.models.base import ForecastError
from orchestrator.space import Space


class Objective:
    """Mean validation MAE over `runs`; the running mean after run r is reported as step r (MedianPruner input)."""

    def __init__(self, space: Space, evaluator: Evaluator, runs: range) -> None:
        self.space = space
        self.evaluator = evaluator
        self.runs = runs

    def __call__(self, trial: optuna.Trial) -> float:
        params = self.space.suggest(trial)
        last = len(self.runs) - 1

        def report(step: int, running_mean: float) -> None:
            trial.report(running_mean, step)
            if step < last and trial.should_prune():
                raise optuna.TrialPruned(f"running mean {running_mean:.6g} after {step + 1} run(s)")

        try:
            result = self.evaluator.evaluate(params, self.runs, "validation", on_run=report)
        except torch.OutOfMemoryError as exc:
            trial.set_user_attr("fail_reason", f"out of memory: {str(exc).splitlines()[0]}")
            raise ForecastError(str(exc)) from exc
        except ForecastError as exc:
            trial.set_user_attr("fail_reason", str(exc))
            raise
        for key, value in (("run_maes", result.run_maes), ("std", result.std), ("sem", result.sem),
                           ("seconds", result.seconds), ("cache_hit", result.cache_hit),
                           ("device", str(self.evaluator.forecaster.device))):
            trial.set_user_attr(key, value)
        return result.mae
