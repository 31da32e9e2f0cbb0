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
from orchestrator.evidence import evidence_text
from orchestrator.models.base import create
from orchestrator.settings import Settings
from orchestrator.dashboard import record_decision
from orchestrator.storage import open_storage, storage_exists, storage_label, study_names
from orchestrator.objective import counts
from orchestrator.study import Job, check_setup, recorded_job, setup, work


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
    queue = [(job, w) for job in jobs for w in range(jobs_per_study)]
    gpus = _visible_gpus()
    context = multiprocessing.get_context("spawn")
    active: dict[int, tuple[multiprocessing.process.BaseProcess, Job]] = {}  # slot -> process
    launched = time.monotonic()
    with Live(_progress(runs, launched), console=console, refresh_per_second=2, transient=False) as live:
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
            live.update(_progress(runs, launched))
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


def _progress(runs: dict[str, StudyRun], launched: float) -> Table:
    table = Table(title="studies", title_justify="left")
    for header in ("study", "state", "finished/target", "best MAE", "incumbent MAE", "pruned", "failed", "trials/min"):
        table.add_column(header, justify="left" if header in ("study", "state") else "right", no_wrap=True)
    for row in _rows(runs):
        minutes = (time.monotonic() - launched) / 60
        table.add_row(row["study"], row["status"], f"{row['trials']}/{row['target']}", _fmt(row["best_mae"]),
                      _fmt(row["incumbent_mae"]), str(row["pruned"]), str(row["failed"]),
                      f"{row['new_trials'] / max(minutes, 1e-9):.1f}")
    return table


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.5f}"


def _rows(runs: dict[str, StudyRun]) -> list[dict[str, Any]]:
    """Each study's state read from the storage (never from files)."""
    rows = []
    storages: dict[str, optuna.storages.BaseStorage] = {}
    for name, run in runs.items():
        url = run.job.settings.storage
        storage = storages.setdefault(url, open_storage(url, run.job.settings))
        study = optuna.load_study(study_name=name, storage=storage)
        c = counts(study)
        attrs = study.user_attrs
        decision = attrs.get("decision") or {}
        try:
            best = study.best_trial
        except ValueError:
            best = None
        current = bool(decision) and best is not None and decision.get("trial") == best.number
        if current:
            status = "committed" if decision["committed"] else "kept incumbent"
        elif run.exit_codes and any(code != 0 for code in run.exit_codes):
            status = f"failed (exit {max(run.exit_codes)})"
        elif run.started is None:
            status = "waiting"
        elif len(run.exit_codes) == run.processes:
            status = "incomplete" if c.finished < attrs["target"] else "no complete trial"
        else:
            status = "running"
        rows.append({
            "study": name, "model": run.job.model, "symbol": run.job.symbol, "status": status,
            "trials": c.finished, "target": attrs.get("target"), "pruned": c.pruned, "failed": c.failed,
            "best_mae": best.value if best is not None else None,
            "validation_mae": decision.get("candidate_mae") if current else None,
            "test_mae": decision.get("candidate_test_mae") if current else None,
            "incumbent_mae": decision.get("incumbent_mae") if current else None,
            "naive_mae": (attrs.get("naive_mae") or {}).get("validation"),
            "committed": decision.get("committed") if current else None,
            "evidence": decision.get("evidence") if current else None,
            "beats_naive": decision.get("beats_naive") if current else None,
            "decision": decision.get("line") if current else None,
            "seconds": None if run.started is None else round((run.ended or time.monotonic()) - run.started, 1),
            "new_trials": c.finished - run.baseline,
        })
    return rows


def summary(runs: dict[str, StudyRun]) -> list[dict[str, Any]]:
    keys = ("model", "symbol", "status", "trials", "target", "validation_mae", "test_mae", "incumbent_mae",
            "naive_mae", "committed", "evidence", "beats_naive", "decision", "seconds")
    return [{k: row[k] for k in keys} for row in _rows(runs)]


def summary_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="summary", title_justify="left")
    for header in ("model", "symbol", "status", "trials", "validation MAE", "test MAE", "incumbent MAE", "naive MAE",
                   "committed", "evidence", "time (s)"):
        table.add_column(header, no_wrap=True)
    for r in rows:
        committed = {True: "yes", False: "no", None: "-"}[r["committed"]]
        if r["beats_naive"] is False:
            committed += " (not better than naive)"
        table.add_row(r["model"], r["symbol"], r["status"], f"{r['trials']}/{r['target']}", _fmt(r["validation_mae"]),
                      _fmt(r["test_mae"]), _fmt(r["incumbent_mae"]), _fmt(r["naive_mae"]), committed,
                      evidence_text(r["evidence"]), "-" if r["seconds"] is None else f"{r['seconds']:.0f}")
    return table


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
