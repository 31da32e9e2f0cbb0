"""The run loop: trials until the study holds its target of finished trials, or patience or the wall-clock budget
stops it. Several workers (processes, machines) share one study's target; trials of a dead process are retried."""

from __future__ import annotations

import time
from collections.abc import Callable

import optuna
from optuna.storages import RDBStorage, fail_stale_trials
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState

from orchestrator.storages.counts import counted, counts
from orchestrator.search.objective import TRIAL_FAILURES
from orchestrator.storages.storage import fail_orphaned_trials, sync_wal

BOOKED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
"""Trials that take a place of the target: finished, or running in some process."""

class Patience:
    """Stops the study after `patience` finished trials without a new best value, counted from the study's trials
    (whichever worker ran them; retried trials do not count)."""

    def __init__(self, patience: int | None) -> None:
        self.patience = patience
        self.triggered = False

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.patience is None:
            return
        best = best_number(study)
        if best is None:
            return
        since = sum(1 for t in counted(study.get_trials(deepcopy=False)) if t.number > best and t.state.is_finished())
        if since >= self.patience:
            self.triggered = True
            study.stop()


def run_to_target(
    study: optuna.Study,
    storage: RDBStorage,
    objective: Callable[[optuna.Trial], float],
    target: int,
    patience: int | None = None,
    budget: float | None = None,
    poll_seconds: float = 1.0,
    callbacks: list[Callable[[optuna.Study, FrozenTrial], None]] = (),
) -> str:
    """Run trials until the study holds `target` finished trials, or patience / the wall-clock budget stops it;
    returns why it stopped.

    A new trial is asked for only while finished + running trials are fewer than the target (Optuna's
    `MaxTrialsCallback` counts them after each trial), so several workers on one study share the remainder instead
    of each running all of it; a rare race for the last trial may add one more. Trials RUNNING in another process
    are waited for; those of a dead process turn stale after the heartbeat's grace period, fail, and are retried
    here, so no trial is left RUNNING and none is counted twice.
    """
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
            # the callback counts every failure; those that do not count toward the target (retried) raise its limit
            uncounted = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,))) - now.failed
            enough = MaxTrialsCallback(target + uncounted, states=BOOKED)
            study.optimize(objective, n_trials=need, timeout=timeout, catch=TRIAL_FAILURES,
                           callbacks=[lambda *_: sync_wal(storage), stopper, enough, *callbacks])  # trials on disk
            continue
        if now.running == 0:
            return "target"
        time.sleep(poll_seconds)


def best_number(study: optuna.Study) -> int | None:
    try:
        return study.best_trial.number
    except ValueError:
        return None
