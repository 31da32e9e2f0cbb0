"""Many studies in parallel processes (one GPU each when several are visible), with a live view and a summary."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
from rich.console import Console
from rich.live import Live
from rich.table import Table

from orchestrator.errors import BadInput
from orchestrator.models.base import create
from orchestrator.settings import Settings
from orchestrator.dashboard import record_decision
from orchestrator.storage import open_storage, storage_exists, storage_label
from orchestrator.objective import counts
from orchestrator.summary import LaunchState, launch_summary, live_table, study_row
from orchestrator.study import Job, recorded_job, setup, work


@dataclass
class StudyRun:
    """One study's processes as seen by the parent."""

    job: Job
    processes: int
    baseline: int = 0  # finished trials before this launch (for trials per minute)
    started: float | None = None
    ended: float | None = None
    exit_codes: list[int] = field(default_factory=list)


def launch(
    jobs: list[Job],
    workers: int,
    jobs_per_study: int,
    console: Console,
    log_dir: Path,
    fresh: bool = False,
    poll_seconds: float = 1.0,
) -> list[dict[str, Any]]:
    """Run every job's study to its target in worker processes, `workers` at a time; returns the summary rows.

    The parent creates the storage schema and every study (with its warm starts) before any worker starts: SQLite
    schema creation races and Optuna's enqueue is not process-safe. Workers are spawned (CUDA-safe); with GPUs
    visible, each concurrent worker slot gets its own GPU through CUDA_VISIBLE_DEVICES.
    """
    forecasters = {(model, options): create(model, replace(options, device="cpu", compile=False))
                   for model, options in {(job.model, job.options) for job in jobs}}  # bad weights: refused first
    for job in jobs:
        setup(job, forecasters[job.model, job.options], fresh)
    forecasters.clear()
    log_dir.mkdir(parents=True, exist_ok=True)
    runs = {job.name: StudyRun(job, jobs_per_study) for job in jobs}
    for row in _rows(runs):
        runs[row["study"]].baseline = row["trials"]
    queue = [(job, w) for job in jobs for w in range(jobs_per_study)]
    gpus = _visible_gpus()
    context = multiprocessing.get_context("spawn")
    active: dict[int, tuple[multiprocessing.process.BaseProcess, Job]] = {}  # slot -> process
    with Live(_progress(runs), console=console, refresh_per_second=2, transient=False) as live:
        while queue or active:
            for slot in range(workers):
                if slot in active or not queue:
                    continue
                job, worker = queue.pop(0)
                log = log_dir / f"{job.model}_{job.symbol}_{worker}.log"
                env = {"CUDA_VISIBLE_DEVICES": gpus[slot % len(gpus)]} if gpus else {}
                process = context.Process(target=_worker_main, args=(job, worker, str(log), env), daemon=False)
                process.start()
                active[slot] = (process, job)
                runs[job.name].started = runs[job.name].started or time.monotonic()
            for slot, (process, job) in list(active.items()):
                if process.exitcode is not None:
                    runs[job.name].exit_codes.append(process.exitcode)
                    runs[job.name].ended = time.monotonic()
                    del active[slot]
            live.update(_progress(runs))
            if active:
                time.sleep(poll_seconds)
    return summary(runs)


def _visible_gpus() -> list[str]:
    """GPU ids to hand out; torch.cuda.device_count() does not create a CUDA context in this (parent) process."""
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in visible.split(",") if g.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def _worker_main(job: Job, worker: int, log: str, env: dict[str, str]) -> None:
    """Entry point of a worker process: its output goes to its log; exit 2 on bad input, 1 on anything else."""
    os.environ.update(env)  # before this process touches CUDA
    with open(log, "a", buffering=1) as stream:
        sys.stdout = sys.stderr = stream
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        print(f"{job.name} worker {worker}: pid {os.getpid()}, "
              f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(not set)')}")
        try:
            outcome = work(job, worker, record=record_decision)
            print(outcome.decision_line)
        except BadInput as exc:
            print(f"error: {exc}")
            sys.exit(2)
        except BaseException:
            traceback.print_exc()
            sys.exit(1)


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
    failed = [code for code in run.exit_codes if code != 0]
    phase = "waiting" if run.started is None else "ended" if len(run.exit_codes) == run.processes else "running"
    seconds = None if run.started is None else (run.ended or time.monotonic()) - run.started
    return LaunchState(phase, f"exit {failed[-1]}" if failed else None, seconds, run.baseline)


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
    for summary_ in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if "@" in summary_.study_name:
            continue  # an archived study
        study = optuna.load_study(study_name=summary_.study_name, storage=storage)
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
