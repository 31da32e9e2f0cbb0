"""A `launch` worker: one long-lived process that runs the (study, worker) jobs its parent sends, one after another.

It keeps every forecaster it loaded (keyed by model and options) for its later jobs, so a night of 24 symbols costs
one model load and one compile per shape, not 24. Everything the process writes (print, Optuna's log handler,
warnings, tracebacks, C libraries) goes to the log of the job it is running: file descriptors 1 and 2 are pointed at
that log, so nothing from a worker reaches the parent's terminal. A job that fails is reported to the parent and the
worker takes the next one.

`launcher.py` starts it with `main()` (its `WORKER` command), file descriptor FD as the only argument: this end of a
`multiprocessing.Pipe`.
"""

from __future__ import annotations

import faulthandler
import gc
import os
import sys
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path

import optuna

from orchestrator.views.dashboard import record_decision
from orchestrator.errors import BadInput
from orchestrator.models.base import Forecaster, ModelOptions, create
from orchestrator.lifecycle.study import Job, work

Forecasters = dict[tuple[str, ModelOptions], Forecaster]


def serve(connection: Connection) -> None:
    """Run jobs `(job, worker, log)` from `connection` until it sends None or closes; answer each job with None
    (done) or the reason it failed, in one line."""
    forecasters: Forecasters = {}
    while True:
        try:
            message = connection.recv()
        except EOFError:
            return  # the parent is gone
        if message is None:
            return
        job, worker, log = message
        log_to(Path(log))
        connection.send(run(job, worker, forecasters))


def log_to(log: Path) -> None:
    """Send this process's stdout and stderr, at the file-descriptor level, to the end of `log`."""
    sys.stdout.flush()
    sys.stderr.flush()
    with open(log, "ab") as stream:
        os.dup2(stream.fileno(), 1)
        os.dup2(stream.fileno(), 2)


def run(job: Job, worker: int, forecasters: Forecasters) -> str | None:
    """Work the job's study to its target and decide; None when done, else why it failed (also in the log)."""
    print(f"{job.name} worker {worker}: pid {os.getpid()}, "
          f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(not set)')}")
    try:
        forecaster = forecasters.get((job.model, job.options))
        if forecaster is None:
            start = time.perf_counter()
            forecaster = forecasters[job.model, job.options] = create(job.model, job.options)
            print(f"loaded {job.model} in {time.perf_counter() - start:.1f} s; "
                  f"this worker keeps {len(forecasters)} model(s) loaded")
        else:
            print(f"{job.model}: loaded by this worker for an earlier study")
        outcome = work(job, worker, forecaster=forecaster, record=record_decision)
        print(outcome.decision_line)
        return None
    except BadInput as exc:
        print(f"error: {exc}")
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - one study's failure must not stop the others' jobs
        traceback.print_exc()
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    finally:
        gc.collect()  # a failed study's encode cache too: the frames of its traceback held it
        sys.stdout.flush()
        sys.stderr.flush()


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # logs read while the worker runs
    faulthandler.enable()  # a hard crash (segfault) leaves its traceback in the log
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    serve(Connection(int(sys.argv[1])))
