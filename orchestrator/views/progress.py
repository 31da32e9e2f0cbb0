"""Live progress of one study in this process: two refreshing lines on a terminal (at most 80 columns), else the same
lines once per 10% of the target; after the last trial, the phase that confirms the candidate against the incumbent."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.live import Live
from rich.text import Text

from orchestrator.storages.counts import counted

if TYPE_CHECKING:
    from orchestrator.lifecycle.study import Job


class StudyProgress:
    """A callback for each finished trial (`study.optimize(callbacks=[...])`), used as a context manager."""

    def __init__(self, console: Console, job: Job) -> None:
        self.console = console
        self.job = job
        self.incumbent = job.space.normalize(job.incumbent["params"]) if job.incumbent else None
        self.live: Live | None = None
        self.start = time.monotonic()
        self.done_here = 0
        self.logged_tenth = 0

    def __enter__(self) -> StudyProgress:
        if self.console.is_terminal:
            self.live = Live(Text(f"{self.job.name}: starting"), console=self.console, refresh_per_second=4,
                             transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.done_here += 1
        trials = counted(study.get_trials(deepcopy=False))
        finished = sum(1 for t in trials if t.state.is_finished())
        target = int(study.user_attrs.get("target", finished))
        last = self.last(trials, finished, target)
        text = self.lines(study, trials, finished, target, last)
        if self.live is not None:
            self.live.update(Text(text), refresh=True)
            return
        tenth = min(10 * finished // max(target, 1), 10)
        if tenth > self.logged_tenth or last:
            self.logged_tenth = tenth
            self.console.print(text, highlight=False)

    def last(self, trials: list[FrozenTrial], finished: int, target: int) -> bool:
        """Whether the run loop stops after this trial (target, patience or budget reached): confirm runs follow."""
        settings = self.job.settings
        if finished >= target:
            return True
        if settings.budget is not None and time.monotonic() - self.start >= settings.budget:
            return True
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        if settings.patience is None or not complete:
            return False
        best = min(complete, key=lambda t: t.value).number
        return sum(1 for t in trials if t.number > best and t.state.is_finished()) >= settings.patience

    def lines(self, study: optuna.Study, trials: list[FrozenTrial], finished: int, target: int, last: bool) -> str:
        """'fhs/BTCUSD: 12/20 trials, 3.1 trials/s, ETA 0m03s' and the validation MAEs of best, incumbent, naive."""
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        best = min((t.value for t in complete), default=None)
        naive = (study.user_attrs.get("naive_mae") or {}).get("validation")
        if last:
            runs = f"on {self.job.settings.confirm_runs} fresh runs"
            against = f" vs incumbent {runs}" if self.job.incumbent else f" {runs} (no incumbent)"
            state = f"confirming candidate{against}"
        else:
            rate = self.done_here / max(time.monotonic() - self.start, 1e-9)
            eta = (target - finished) / rate if rate > 0 else 0.0
            state = f"{rate:.1f} trials/s, ETA {_duration(eta)}"
        return (f"{self.job.name}: {finished}/{target} trials, {state}\n"
                f"  validation MAE: best {_fmt(best)}, incumbent {_fmt(self.incumbent_value(complete), 'none')}, "
                f"naive {_fmt(naive)}")

    def incumbent_value(self, complete: list[FrozenTrial]) -> float | None:
        """The incumbent's MAE in this study (the trial with its params), else the MAE it was committed with."""
        if self.job.incumbent is None:
            return None
        same = next((t.value for t in complete if self.incumbent is not None and t.params == self.incumbent), None)
        return same if same is not None else (self.job.incumbent.get("validation") or {}).get("mae")


def _fmt(value: float | None, missing: str = "-") -> str:
    return missing if value is None else f"{value:.5f}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
