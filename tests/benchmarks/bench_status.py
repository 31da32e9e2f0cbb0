"""`orchestrator status` on a storage that a year of nightly runs filled with archived studies: the code before the
roll-forward (which loaded every study, archives included) against this one (current studies only, `--all` for every
study), in one run, on the same SQLite file.

The storage holds 4 current fhs studies of 100 trials each, run through the real run loop, and 500 archives (125 per
symbol) copied from them row for row in SQL, as `archive` leaves them (`<model>/<SYMBOL>@<UTC time>`). "Before" runs
the `--before` commit's code from a temporary git worktree. Each command runs in its own process, `--repeats` times
interleaved; the JSON gives median seconds of the whole command and of the listing call alone (`summaries`, imports
excluded).

Run: python tests/benchmarks/bench_status.py [--archives 500] [--trials 100] [--repeats 3] [--before COMMIT].
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[2]
BEFORE = "d42d8280a52deaef1f6aee496a7e9742767465fb"  # main before the roll-forward and `status --all`
SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]
TRIAL_TABLES = ("trial_params", "trial_values", "trial_intermediate_values", "trial_user_attributes",
                "trial_system_attributes")
LISTING = """
import json, sys, time
from orchestrator.settings import Settings
from orchestrator.views.summary import summaries
start = time.perf_counter()
rows = summaries(sys.argv[1], Settings(), *(True for _ in sys.argv[2:]))
print(json.dumps({"seconds": time.perf_counter() - start, "rows": len(rows)}))
"""


def current_studies(root: Path, trials: int) -> str:
    from orchestrator.data import write_synthetic
    from orchestrator.models.base import ModelOptions
    from orchestrator.settings import Settings
    from orchestrator.lifecycle.study import optimize, prepare

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    write_synthetic(root / "data", SYMBOLS, rows=700)
    url = f"sqlite:///{root}/optuna.db"
    settings = Settings(data_dir=root / "data", storage=url, best_dir=root / "best", trials=trials, device="cpu",
                        val_windows=60, test_windows=20)
    for symbol in SYMBOLS:
        optimize(prepare("fhs", symbol, settings, ModelOptions(device="cpu")))
    return url


def add_archives(db: Path, archives: int) -> None:
    """Copy the current studies, every row of them, to `archives` archived studies (round robin over symbols)."""
    with sqlite3.connect(db) as con:
        current = con.execute("SELECT study_id, study_name FROM studies ORDER BY study_id").fetchall()
        night = datetime(2025, 1, 1)
        for k in range(archives):
            source, name = current[k % len(current)]
            when = night + timedelta(days=k // len(current))
            study = con.execute("INSERT INTO studies (study_name) VALUES (?)",
                                (f"{name}@{when:%Y%m%dT%H%M%S.%f}",)).lastrowid
            for table in ("study_directions", "study_user_attributes", "study_system_attributes"):
                columns = [c[1] for c in con.execute(f"PRAGMA table_info({table})")][1:]
                others = ", ".join(c for c in columns if c != "study_id")
                con.execute(f"INSERT INTO {table} (study_id, {others}) SELECT ?, {others} FROM {table} "
                            "WHERE study_id = ?", (study, source))
            for trial, number, state, start, end in con.execute(
                    "SELECT trial_id, number, state, datetime_start, datetime_complete FROM trials WHERE study_id = ?",
                    (source,)).fetchall():
                copy = con.execute("INSERT INTO trials (number, study_id, state, datetime_start, datetime_complete) "
                                   "VALUES (?, ?, ?, ?, ?)", (number, study, state, start, end)).lastrowid
                for table in TRIAL_TABLES:
                    columns = [c[1] for c in con.execute(f"PRAGMA table_info({table})")][1:]
                    others = ", ".join(c for c in columns if c != "trial_id")
                    con.execute(f"INSERT INTO {table} (trial_id, {others}) SELECT ?, {others} FROM {table} "
                                "WHERE trial_id = ?", (copy, trial))


def timed(command: list[str], tree: Path, cwd: Path) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--archives", type=int, default=500)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--before", default=BEFORE)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        old_tree = root / "before"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(old_tree), args.before],
                       check=True, capture_output=True)
        try:
            url = current_studies(root, args.trials)
            add_archives(root / "optuna.db", args.archives)
            cases = {
                "before: status": (old_tree, ["status", "--json"], []),
                "after: status": (REPO, ["status", "--json"], []),
                "after: status --all": (REPO, ["status", "--json", "--all"], ["all"]),
            }
            command = {k: [sys.executable, "-m", "orchestrator", *a, "--storage", url] for k, (_, a, _) in cases.items()}
            listing = {k: [sys.executable, "-c", LISTING, url, *extra] for k, (_, _, extra) in cases.items()}
            results: dict[str, dict[str, list]] = {k: {"command": [], "listing": [], "rows": []} for k in cases}
            for _ in range(args.repeats):
                for case, (tree, _, _) in cases.items():
                    seconds, out = timed(command[case], tree, root)
                    results[case]["command"].append(seconds)
                    results[case]["rows"].append(len(json.loads(out)))
                    _, out = timed(listing[case], tree, root)
                    results[case]["listing"].append(json.loads(out)["seconds"])
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old_tree)], check=False)
    print(json.dumps({
        "storage": {"current_studies": len(SYMBOLS), "archived_studies": args.archives,
                    "trials_per_study": args.trials, "before": args.before},
        "cpu_cores": os.cpu_count(),
        **{case: {"rows": r["rows"][0], "command_seconds": round(statistics.median(r["command"]), 3),
                  "listing_seconds": round(statistics.median(r["listing"]), 3)} for case, r in results.items()},
    }, indent=2))


if __name__ == "__main__":
    main()
