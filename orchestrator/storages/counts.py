"""Which trials count toward a study's target, and how many there are in each state (no torch: `status` reads it)."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState


def counted(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that count toward the target: not a failure that was retried (its process died), nor a surplus
    trial that an earlier version recorded as failed."""
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
    return [t for t in trials
            if not (t.state == TrialState.FAIL and (t.number in retried or t.user_attrs.get("surplus")))]


@dataclass(frozen=True)
class Counts:
    complete: int
    pruned: int
    failed: int
    running: int
    waiting: int

    @property
    def finished(self) -> int:
        return self.complete + self.pruned + self.failed


def counts(study: optuna.Study) -> Counts:
    return tally(study.get_trials(deepcopy=False))


def tally(trials: list[FrozenTrial]) -> Counts:
    """The counts of a study's trials (all of them, as the storage returns them)."""
    by_state = {s: 0 for s in TrialState}
    for t in counted(trials):
        by_state[t.state] += 1
    return Counts(by_state[TrialState.COMPLETE], by_state[TrialState.PRUNED], by_state[TrialState.FAIL],
                  by_state[TrialState.RUNNING], by_state[TrialState.WAITING])
