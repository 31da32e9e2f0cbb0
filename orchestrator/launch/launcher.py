"""Many studies through long-lived worker processes (one per GPU slot when several GPUs are visible), a live view and
a summary.

The parent owns a queue of (study, worker) jobs and at most `workers` worker processes (`worker.py`), each
running one job at a time and keeping its loaded models across jobs. A worker that dies is replaced; its job goes
back on the queue (at most MAX_REQUEUES times) and its running trial is retried through the heartbeat.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import optuna
from rich.console import Console
from rich.live import Live
from rich.table import Table

from orchestrator.errors import BadInput
from orchestrator.models.base import create
from orchestrator.settings import Settings
from orchestrator.storages.storage import open_storage, storage_exists, storage_label, study_names
from orchestrator.storages.counts import counts
from orchestrator.views.summary import LaunchState, launch_summary, live_table, study_row
from orchestrator.lifecycle.study import Job, check_setup, recorded_job, setup

MAX_REQUEUES = 2
"""A job whose worker died goes back on the queue at most this many times; then its study is reported failed, so a
job that kills every worker it runs on (an out-of-memory kill, say) cannot loop."""
WORKER = "import sys; sys.path[:] = {path!r}; from orchestrator.launch.worker import main; main()"
"""A worker's command (`python -c`): the parent's sys.path, as multiprocessing's spawn passes it, so that the worker
imports the same code as the parent."""


@dataclass
class StudyRun:
    """One study's jobs as seen by the parent."""

    job: Job
    processes: int  # jobs on this study (--jobs-per-study)
    baseline: int = 0  # finished trials before this launch (for trials per minute)
    started: float | None = None
    ended: float | None = None
    jobs_ended: int = 0
    failures: list[str] = field(default_factory=list)  # why a job of this study failed, one line each


@dataclass
class Worker:
    """A worker process, the parent's end of its pipe, and the job it runs with that job's log."""

    process: subprocess.Popen
    connection: Connection
    job: tuple[Job, int] | None = None
    log: Path | None = None


def launch(
    jobs: list[Job],
    workers: int,
    jobs_per_study: int,
    console: Console,
    log_dir: Path,
    fresh: bool = False,
    poll_seconds: float = 1.0,
) -> list[dict[str, Any]]:
    """Run every job's study to its target through at most `workers` worker processes; returns the summary rows.

    The parent creates the storage schema and every study (with its warm starts) before any worker starts: SQLite
    schema creation races and Optuna's enqueue is not process-safe. With GPUs visible, each worker slot gets its
    own GPU through CUDA_VISIBLE_DEVICES (a replacement worker keeps its slot's GPU).
    """
    forecasters = {(model, options): create(model, replace(options, device="cpu", compile=False))
                   for model, options in {(job.model, job.options) for job in jobs}}  # bad weights: refused first
    for job in jobs:  # every study is checked before any is written (grown data, changed data)
        check_setup(job, forecasters[job.model, job.options], fresh)
    for job in jobs:
        for note in setup(job, forecasters[job.model, job.options], fresh).notes:
            console.print(note, highlight=False)
    forecasters.clear()
    log_dir.mkdir(parents=True, exist_ok=True)
    runs = {job.name: StudyRun(job, jobs_per_study) for job in jobs}
    for row in _rows(runs):
        runs[row["study"]].baseline = row["trials"]
    queue = deque((job, w) for job in jobs for w in range(jobs_per_study))
    deaths: Counter[tuple[str, int]] = Counter()
    gpus = _visible_gpus()
    slots: list[Worker | None] = [None] * workers
    try:
        with Live(_progress(runs), console=console, refresh_per_second=2, transient=False) as live:
            while queue or any(w is not None and w.job is not None for w in slots):
                for slot, worker in enumerate(slots):
                    if queue and (worker is None or worker.job is None):
                        gpu = gpus[slot % len(gpus)] if gpus else None
                        slots[slot] = _dispatch(worker, queue.popleft(), gpu, log_dir, runs)
                busy = {w.connection: w for w in slots if w is not None and w.job is not None}
                for connection in wait(list(busy), timeout=poll_seconds):
                    worker = busy[connection]
                    if not _collect(worker, runs, queue, deaths):
                        slots[slots.index(worker)] = None  # a replacement starts with the next job
                live.update(_progress(runs))
    finally:
        _stop([w for w in slots if w is not None])
    return summary(runs)


def _dispatch(worker: Worker | None, item: tuple[Job, int], gpu: str | None, log_dir: Path,
              runs: dict[str, StudyRun]) -> Worker:
    """Send the job to the slot's idle worker, or to a new one when the slot has none or its worker died idle."""
    job, index = item
    log = log_dir / f"{job.model}_{job.symbol}_{index}.log"
    if worker is not None and worker.process.poll() is not None:
        worker.connection.close()
        worker = None
    worker = worker or _start_worker(gpu, log)
    worker.job, worker.log = item, log
    try:
        worker.connection.send((job, index, str(log)))
    except OSError:
        pass  # it died since: `_collect` finds its pipe closed and requeues the job
    run = runs[job.name]
    run.started = run.started or time.monotonic()
    return worker


def _start_worker(gpu: str | None, log: Path) -> Worker:
    ours, theirs = multiprocessing.Pipe()
    env = {**os.environ, **({"CUDA_VISIBLE_DEVICES": gpu} if gpu is not None else {})}  # before it touches CUDA
    with open(log, "ab") as output:  # what it writes before its first job (imports) goes to that job's log
        process = subprocess.Popen(
            [sys.executable, "-c", WORKER.format(path=sys.path), str(theirs.fileno())], pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL, stdout=output, stderr=output, env=env)
    theirs.close()
    return Worker(process, ours)


def _collect(worker: Worker, runs: dict[str, StudyRun], queue: deque, deaths: Counter) -> bool:
    """Take the worker's answer about its job; False when the worker died instead (the job goes back on the queue
    unless it was requeued MAX_REQUEUES times already; then its study fails with the reason)."""
    (job, index), worker.job = worker.job, None
    try:
        failure = worker.connection.recv()
        alive = True
    except (EOFError, OSError):
        code = worker.process.wait()
        worker.connection.close()
        deaths[job.name, index] += 1
        if deaths[job.name, index] <= MAX_REQUEUES:
            queue.append((job, index))
            return False
        failure = f"its worker died {deaths[job.name, index]} times ({_exit_text(code)}); see {worker.log}"
        alive = False
    run = runs[job.name]
    run.jobs_ended += 1
    run.ended = time.monotonic()
    if failure is not None:
        run.failures.append(failure)
    return alive


def _exit_text(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _stop(workers: list[Worker]) -> None:
    """Idle workers exit; busy ones (the parent is leaving early: an error, Ctrl-C) are killed, their running
    trials retried through the heartbeat by the next run."""
    for worker in workers:
        try:
            if worker.job is None:
                worker.connection.send(None)
            else:
                worker.process.kill()
        except OSError:
            pass  # already gone
    for worker in workers:
        try:
            worker.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
        worker.connection.close()


def _visible_gpus() -> list[str]:
    """GPU ids to hand out; torch.cuda.device_count() does not create a CUDA context in this (parent) process."""
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in visible.split(",") if g.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def _progress(runs: dict[str, StudyRun]) -> Table:
    return live_table(_rows(runs))


def _rows(runs: dict[str, StudyRun]) -> list[dict[str, Any]]:
    """Each study's row (`summary.study_row`): its trials from the storage, the config in use from the best dir, and
    its processes' state."""
    rows = []
    storages: dict[str, optuna.storages.BaseStorage] = {}
    for name, run in runs.items():
        url = run.job.settings.storage
        storage = storages.setdefault(url, open_storage(url, run.job.settings))
        study = optuna.load_study(study_name=name, storage=storage)
        rows.append(study_row(name, study.user_attrs, study.get_trials(deepcopy=False), run.job.settings.best_dir,
                              _state(run)))
    return rows


def _state(run: StudyRun) -> LaunchState:
    phase = "waiting" if run.started is None else "ended" if run.jobs_ended == run.processes else "running"
    seconds = None if run.started is None else (run.ended or time.monotonic()) - run.started
    return LaunchState(phase, run.failures[0] if run.failures else None, seconds, run.baseline)


def summary(runs: dict[str, StudyRun]) -> list[dict[str, Any]]:
    return launch_summary(_rows(runs))


def resumable_jobs(settings: Settings, console: Console) -> list[Job]:
    """A job per study in `settings.storage` that is below its target or has no decision for its best trial,
    rebuilt from what the study recorded."""
    url = settings.storage
    if not storage_exists(url):
        raise BadInput(f"--storage {storage_label(url)}: no such storage; nothing to resume")
    storage = open_storage(url, settings)
    jobs = []
    for name in study_names(storage):  # archived studies are never resumed
        study = optuna.load_study(study_name=name, storage=storage)
        attrs = study.user_attrs
        if "settings" not in attrs:
            console.print(f"{study.study_name}: never fully set up; run `orchestrator optimize` or `launch` for it")
            continue
        c = counts(study)
        decision = attrs.get("decision") or {}
        try:
            best = study.best_trial.number
        except ValueError:
            best = None
        if c.finished >= attrs["target"] and c.running == 0 and (best is None or decision.get("trial") == best):
            continue
        jobs.append(recorded_job(study.study_name, settings))
    return jobs
