"""Live progress of one study in this process: a refreshing rich line on a terminal, else a line per 10% of the target."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.live import Live
from rich.text import Text

from orchestrator.objective import counted

if TYPE_CHECKING:
    from orchestrator.study import Job


class StudyProgress:
    """A callback for each finished trial (`study.optimize(callbacks=[...])`), used as a context manager."""

    def __init__(self, console: Console, job: Job) -> None:
        self.console = console
        self.name = job.name
        self.live: Live | None = None
        self.start = time.monotonic()
        self.done_here = 0
        self.logged_tenth = 0

    def __enter__(self) -> StudyProgress:
        if self.console.is_terminal:
            self.live = Live(Text(f"{self.name}: starting"), console=self.console, refresh_per_second=4,
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
        line = self.line(study, trials, finished, target)
        if self.live is not None:
            self.live.update(Text(line))
            return
        tenth = min(10 * finished // max(target, 1), 10)
        if tenth > self.logged_tenth:
            self.logged_tenth = tenth
            self.console.print(line, highlight=False)

    def line(self, study: optuna.Study, trials: list[FrozenTrial], finished: int, target: int) -> str:
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        best = min((t.value for t in complete), default=None)
        incumbent = next((t.value for t in complete if t.user_attrs.get("warm_start") == "incumbent"), None)
        naive = (study.user_attrs.get("naive_mae") or {}).get("validation")
        rate = self.done_here / max(time.monotonic() - self.start, 1e-9)
        eta = (target - finished) / rate if rate > 0 and finished < target else 0.0
        return (f"{self.name}: {finished}/{target} trials | best {_fmt(best)} | incumbent {_fmt(incumbent)} | "
                f"naive {_fmt(naive)} | {rate:.1f} trials/s | ETA {_duration(eta)}")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.5f}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
