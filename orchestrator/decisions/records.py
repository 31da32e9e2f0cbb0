"""The files a commit leaves: committed configs (`<best_dir>/<model>/<SYMBOL>.json`: read, a corrupt one refused and
never overwritten, written atomically) and the history of every decision (`<best_dir>/history.jsonl`: appended under
a lock and fsynced, a torn tail skipped); the locks of the best dir's files, in `<best_dir>/.locks/`. Files are
created with the mode the umask gives (0644 under the usual 022), so a process of another user can read them."""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

from filelock import FileLock

from orchestrator.errors import BadInput
from orchestrator.symbols import check_model, check_symbol

HISTORY = "history.jsonl"
LOCKS = ".locks"
"""The best dir's folder of lock files (with a .gitignore of everything): readers never see them."""
DECISION = "decision"
"""The `kind` of a history line that records a commit decision; a line without `kind` is one (DESIGN.md)."""
ADJUSTMENT = "adjustment"
"""The `kind` of a history line that records a rescale of earlier bars a roll-forward recognised
(`data.adjust.adjustment_entry`): decisions made before it are still scored (`data.adjust.earlier_rows`)."""


def best_path(best_dir: Path, model: str, symbol: str) -> Path:
    """`<best_dir>/<model>/<SYMBOL>.json`; BadInput for a model not registered or an unsafe symbol."""
    return Path(best_dir) / check_model(model) / f"{check_symbol(symbol)}.json"


def read_config(path: Path) -> dict[str, Any] | None:
    """A committed config, None when there is none; BadInput when the file is corrupt (it is never overwritten)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: unreadable incumbent ({exc}); fix it or move it away") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(
            f"{path}: corrupt incumbent ({exc}); it was left untouched: fix it, or move it away to start without one"
        ) from None
    if not isinstance(record, dict) or not isinstance(record.get("params"), dict):
        raise BadInput(
            f"{path}: corrupt incumbent (no 'params' object); it was left untouched: fix it, or move it away"
        )
    return record


def transfer_configs(best_dir: Path, model: str, symbol: str) -> list[tuple[str, dict[str, Any]]]:
    """(symbol, params) of the model's committed configs for other symbols, newest first; unreadable ones skipped."""
    found = []
    for path in sorted((Path(best_dir) / model).glob("*.json")):
        if path.stem == symbol:
            continue
        try:
            record = read_config(path)
        except BadInput:
            continue
        if record is not None:
            found.append((str(record.get("committed_at", "")), path.stem, record["params"]))
    return [(other, params) for _, other, params in sorted(found, key=lambda f: f[0], reverse=True)]


def read_history(best_dir: Path, kind: str = DECISION) -> list[dict[str, Any]]:
    """Every decision (or line of another `kind`) in `<best_dir>/history.jsonl`, oldest first. Lines of other kinds
    are skipped, and so is a line that is not a whole JSON object (the torn tail of an append cut by a power
    loss)."""
    try:
        text = (Path(best_dir) / HISTORY).read_text()
    except FileNotFoundError:
        return []
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("kind", DECISION) == kind:
            entries.append(entry)
    return entries


def append_history(best_dir: Path, entry: dict[str, Any]) -> None:
    """Append one line to the history (one lock for every study of the best dir), fsynced."""
    append_lines(best_dir, HISTORY, [json.dumps(entry, allow_nan=False)])


def append_lines(best_dir: Path, name: str, lines: list[str]) -> Path:
    """Append lines to `<best_dir>/<name>` under its lock in one write, fsynced (the history, the forecast log).
    After a torn tail the first line starts on a line of its own."""
    path = Path(best_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(best_dir, path), open(path, "a+b") as log:
        torn = False
        if log.tell() > 0:
            log.seek(-1, os.SEEK_END)
            torn = log.read(1) != b"\n"
        new = log.tell() == 0
        log.write((b"\n" if torn else b"") + "".join(line + "\n" for line in lines).encode())
        log.flush()
        os.fsync(log.fileno())
    if new:
        fsync_dir(path.parent)  # the new file's name survives a power loss too
    return path


@contextmanager
def locked(best_dir: Path, path: Path) -> Iterator[None]:
    """Hold the lock of `path`, a file of `best_dir`: `<best_dir>/.locks/<its path, '/' as '.'>.lock`. Where a
    previous version locked the file (`<path>.lock` beside it, which that version creates and never removes), that
    lock is taken too, so a process of that version still running elsewhere cannot commit past this one."""
    locks = Path(best_dir) / LOCKS
    locks.mkdir(parents=True, exist_ok=True)
    if not (locks / ".gitignore").exists():
        (locks / ".gitignore").write_text("*\n")
    name = ".".join(Path(path).relative_to(best_dir).parts) + ".lock"
    legacy = Path(f"{path}.lock")
    with FileLock(str(locks / name)), FileLock(str(legacy)) if legacy.exists() else nullcontext():
        yield


def latest(*times: str | None) -> str | None:
    """The latest of ISO timestamps (None ones skipped), as written; None when there is none. `selected_until`
    and `fed_until` only ever move later through it."""
    given = [t for t in times if t is not None]
    return max(given, key=datetime.fromisoformat) if given else None


def finite(values: dict[str, Any]) -> dict[str, Any]:
    """Infinite or NaN floats as None: strict JSON has no Infinity."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()}


def write_atomic(path: Path, record: dict[str, Any]) -> None:
    """Write `record` as strict JSON to `path` through a temp file and a rename, the file and then its directory
    fsynced: readers see the old file or the new one, never a part, and after a power loss the new one stays. The
    file gets the mode the umask gives (0644 under 022)."""
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the kernel applies the umask
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=2, default=str, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """fsync a directory, so that the names created or replaced in it survive a power loss."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
