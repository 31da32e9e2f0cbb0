"""Study storage: URLs (checked, printed without passwords), opening (the SQLite recipe, PostgreSQL), the names of
its studies, trials whose process died before their first heartbeat, trials alive in other processes, and the guard
that makes a study's roll-forward one step whoever runs it."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from filelock import FileLock, Timeout
from optuna.storages._rdb.models import TrialHeartbeatModel, TrialModel
from optuna.trial import TrialState
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from orchestrator.errors import BadInput
from orchestrator.settings import Settings

# The package uses Optuna features marked experimental on purpose (the heartbeat and its retry callback, which every
# storage opened here has): their warnings would print on every command, so they are silenced once, here.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


_PASSWORD = re.compile(r"(://[^/?#]*?:)[^/?#]*@")  # user:password@ of a URL SQLAlchemy cannot parse


def storage_label(url: str) -> str:
    """The URL with any password masked: safe to print and to record."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _PASSWORD.sub(r"\1***@", url)


def check_storage_url(url: str) -> None:
    """BadInput unless `url` is a database URL that SQLAlchemy can open: it parses (a port is a number), names a
    database, and its driver is known (checked before anything is written; the password is never shown)."""
    example = "use e.g. sqlite:///studies/optuna.db or postgresql+psycopg://user@host/db"
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        reason = "the port is not a number" if isinstance(exc, ValueError) else "not a database URL"
        raise BadInput(f"--storage {storage_label(url)!r}: {reason}; {example}") from None
    if not parsed.database:
        raise BadInput(f"--storage {storage_label(url)!r}: names no database; {example}")
    try:
        parsed.get_dialect()
    except ArgumentError:
        raise BadInput(f"--storage {storage_label(url)!r}: unknown database or driver "
                       f"{parsed.drivername!r}; {example}") from None


def open_storage(url: str, settings: Settings) -> RDBStorage:
    """Optuna RDB storage with heartbeat + retry of trials whose process died; SQLite in WAL with a 30 s timeout.

    Creating the schema here, once, in the process that starts the work avoids the schema-creation race of
    several workers on a fresh SQLite file.

    SQLite with `settings.durability == "trial"` commits with `synchronous=NORMAL`: a commit reaches the OS (a killed
    process loses nothing) but is flushed to disk only by `sync_wal`, which the run loop calls after every trial.
    With "commit", SQLite's default `synchronous=FULL` flushes every commit (about 15 per trial).
    """
    check_storage_url(url)
    parsed = make_url(url)
    engine_kwargs: dict[str, Any]
    try:
        if parsed.get_backend_name() == "sqlite":
            engine_kwargs = {"connect_args": {"timeout": 30}}
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
                with sqlite3.connect(parsed.database, timeout=30) as con:
                    con.execute("PRAGMA journal_mode=WAL")
        else:
            engine_kwargs = {"pool_pre_ping": True}
        storage = RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=settings.heartbeat_interval,
            grace_period=settings.grace_period,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2),
        )
        if parsed.get_backend_name() == "sqlite" and settings.durability == "trial":
            sqlalchemy.event.listen(storage.engine, "connect", _synchronous_normal)
            storage.engine.dispose()  # connections opened by RDBStorage() itself reconnect with the pragma
        return storage
    except (SQLAlchemyError, sqlite3.Error, OSError, ImportError) as exc:
        reason = str(exc).splitlines()[0].replace(str(parsed.password or "\0"), "***")
        hint = "pip install 'orchestrator[postgres]'" if isinstance(exc, ImportError) else "check the URL and access"
        raise BadInput(f"--storage {storage_label(url)}: cannot open ({reason}); {hint}") from None


def _synchronous_normal(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def sync_wal(storage: Any) -> None:
    """Flush a SQLite storage's write-ahead log to disk, so every commit so far survives a power loss.

    In WAL mode each commit is appended to `<database>-wal` (and checkpoints copy it into the database file only
    after flushing it), so one `fdatasync` of that file makes all earlier commits durable. Other storages: nothing.
    """
    engine = getattr(storage, "engine", None)
    if engine is None or engine.url.get_backend_name() != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return
    try:
        fd = os.open(f"{engine.url.database}-wal", os.O_RDONLY)
    except FileNotFoundError:
        return  # no log: the last connection checkpointed it into the database file and flushed that
    try:
        getattr(os, "fdatasync", os.fsync)(fd)  # macOS has no fdatasync
    finally:
        os.close(fd)


def fail_orphaned_trials(study: optuna.Study, storage: RDBStorage) -> None:
    """Fail (and retry, through the storage's stale-trial callback) RUNNING trials whose process died before their
    first heartbeat: Optuna's own stale check skips trials that never recorded one. Storages without heartbeats
    (JournalStorage) have nothing to check."""
    if not isinstance(storage, RDBStorage) or storage.heartbeat_interval is None:
        return
    grace = storage.grace_period or 2 * storage.heartbeat_interval
    # Optuna 5 stores naive UTC but returns datetime_start as naive LOCAL time: compare with the local clock.
    cutoff = datetime.now() - timedelta(seconds=grace)
    old = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
           if t.datetime_start is not None and t.datetime_start < cutoff]
    if not old:
        return
    with storage.engine.connect() as connection:
        beating = set(connection.execute(
            sqlalchemy.select(TrialHeartbeatModel.trial_id).where(
                TrialHeartbeatModel.trial_id.in_([t._trial_id for t in old]))
        ).scalars())
    callback = storage.get_heartbeat_stale_trial_callback()
    for t in old:
        if t._trial_id in beating:
            continue
        try:
            if storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL) and callback is not None:
                callback(study, storage.get_trial(t._trial_id))
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another process finished or failed it first


def study_names(storage: optuna.storages.BaseStorage, archived: bool = False) -> list[str]:
    """Names of the studies in `storage`, without loading their trials: current studies only, unless `archived`
    (archives, named `<model>/<SYMBOL>@<time>`, are kept when a new study replaces one)."""
    return [name for name in optuna.get_all_study_names(storage) if archived or "@" not in name]


def storage_exists(url: str) -> bool:
    """False for a SQLite file that does not exist yet (reading commands must not create it); BadInput for a URL
    that `check_storage_url` refuses."""
    check_storage_url(url)
    parsed = make_url(url)
    return parsed.get_backend_name() != "sqlite" or not parsed.database or Path(parsed.database).exists()


def live_trials(storage: RDBStorage, study_id: int) -> list[int]:
    """Numbers of the study's RUNNING trials whose process is alive: a heartbeat within the grace period (by the
    database's clock, as Optuna's stale check), or none yet and started within it."""
    grace = timedelta(seconds=storage.grace_period or 2 * (storage.heartbeat_interval or 10))
    with storage.engine.connect() as connection:
        now = connection.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar_one().replace(tzinfo=None)
        rows = connection.execute(
            sqlalchemy.select(TrialModel.number, TrialModel.__table__.c.datetime_start, TrialHeartbeatModel.heartbeat)
            .outerjoin(TrialHeartbeatModel, TrialHeartbeatModel.trial_id == TrialModel.trial_id)
            .where(TrialModel.study_id == study_id, TrialModel.state == TrialState.RUNNING)
        ).all()
    start_now = datetime.now(timezone.utc).replace(tzinfo=None)  # the column holds naive UTC
    return [number for number, start, beat in rows
            if (beat is not None and now - beat.replace(tzinfo=None) <= grace)
            or (beat is None and start is not None and start_now - start <= grace)]


def wait_for_live_trials(storage: RDBStorage, name: str, grace: int) -> None:
    """Wait (at most `grace` seconds) until no trial of the study is alive in another process; BadInput if some
    still are: the study is left to finish, not archived under them."""
    study_id, deadline = storage.get_study_id_from_name(name), time.monotonic() + grace
    while live := live_trials(storage, study_id):
        if time.monotonic() >= deadline:
            raise BadInput(
                f"study {name}: trial(s) {', '.join(map(str, live))} still running in other processes (fresh "
                f"heartbeats after {grace} s), so it is not archived: it is left to finish; run again when they are "
                "done (`orchestrator status`)")
        time.sleep(0.2)


@contextmanager
def study_guard(storage: RDBStorage, name: str, timeout: float) -> Iterator[None]:
    """Hold the study's roll-forward guard: one process at a time per study, across processes and machines.

    SQLite: a file lock beside the storage file (`<file>.locks/<study>.lock`). PostgreSQL: `pg_advisory_xact_lock`
    in a transaction on a connection of its own, released when the transaction ends (nothing leaks through pooled
    connections, no lock file on a shared disk). Other storages: no guard. BadInput when another process holds it
    for longer than `timeout` seconds.
    """
    url = storage.engine.url
    backend = url.get_backend_name()
    busy = BadInput(f"study {name} in {url.render_as_string(hide_password=True)}: another process "
                    f"has held its roll-forward guard for over {timeout:.0f} s; run again when it is done")
    if backend == "sqlite" and url.database not in (None, "", ":memory:"):
        locks = Path(f"{url.database}.locks")
        locks.mkdir(exist_ok=True)
        lock = FileLock(str(locks / f"{re.sub(r'[^A-Za-z0-9._-]', '-', name)}.lock"))
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise busy from None
        try:
            yield
        finally:
            lock.release()
        return
    if backend != "postgresql":
        yield
        return
    key = int.from_bytes(hashlib.sha256(f"orchestrator roll-forward {name}".encode()).digest()[:8], "big", signed=True)
    with storage.engine.connect() as connection, connection.begin():
        connection.execute(sqlalchemy.text(f"SET LOCAL lock_timeout = {int(timeout * 1000)}"))
        try:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        except OperationalError:
            raise busy from None
        yield
