"""How fast the command line answers: `orchestrator --help` against `python -c "import torch"`, and `orchestrator
status` on a storage of 20 studies of 100 trials (with their committed configs), before and after issue 18, in one run.

Run from the repository root: PYTHONPATH=. python tests/benchmarks/bench_cli.py [--before d42d828] [--repeats 5]
[--studies 20] [--trials 100]. Prints one JSON object; asserts nothing about time.

"Before" is the commit given by --before, checked out with `git worktree add --detach` under the temp dir (removed at
the end) and run with PYTHONPATH pointing at it; "after" is this working tree. Every command is a fresh Python
process (`python -m orchestrator ...`), timed wall clock; the kinds of runs are interleaved within each repeat, so
the other load on the machine falls on all alike, and medians are reported. The storage is built once by this tree
(`build_storage`) and read by both versions. `python -X importtime` gives the
modules that cost the most (cumulative milliseconds, top-level imports) for `--help` and `status`, before and after.
Wall and CPU (user + system) seconds are both reported: on a machine shared with other work, CPU time is steadier.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def build_storage(root: Path, studies: int, trials: int) -> str:
    """`studies` decided fhs studies of `trials` trials each, with their committed configs in root/best: one real
    study (3 runs per trial, as by default), copied with Optuna's `copy_study` under the other symbols' names."""
    sys.path.insert(0, str(REPO))
    import optuna

    from orchestrator.data import write_synthetic
    from orchestrator.models.base import ModelOptions
    from orchestrator.settings import Settings
    from orchestrator.lifecycle.study import optimize, prepare

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    write_synthetic(root / "data", ["SYM00"], rows=300)
    storage = f"sqlite:///{root}/optuna.db"
    settings = Settings(data_dir=root / "data", storage=storage, best_dir=root / "best", trials=trials,
                        val_windows=60, test_windows=20, device="cpu")
    optimize(prepare("fhs", "SYM00", settings, ModelOptions(device="cpu")))
    config = json.loads((root / "best" / "fhs" / "SYM00.json").read_text())
    for i in range(1, studies):
        symbol = f"SYM{i:02d}"
        optuna.copy_study(from_study_name="fhs/SYM00", from_storage=storage, to_storage=storage,
                          to_study_name=f"fhs/{symbol}")
        optuna.load_study(study_name=f"fhs/{symbol}", storage=storage).set_user_attr("symbol", symbol)
        config.update(symbol=symbol, study={**config["study"], "name": f"fhs/{symbol}"})
        (root / "best" / "fhs" / f"{symbol}.json").write_text(json.dumps(config))
    return storage


def timed(command: list[str], pythonpath: Path, cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one run; on a shared machine the CPU time is the steadier one."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "COLUMNS": "80"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def importtime(args: list[str], pythonpath: Path, cwd: Path, top: int = 8) -> list[dict[str, object]]:
    """The `top` modules by cumulative import time (top-level imports only, i.e. not nested in another listed one)."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "COLUMNS": "80"}
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "orchestrator", *args], cwd=cwd, env=env,
                         capture_output=True, text=True, check=True)
    entries = []
    for line in run.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        depth = (len(name) - len(name.lstrip()) - 1) // 2  # two spaces per level below the first
        entries.append({"module": name.strip(), "cumulative_ms": round(int(cumulative) / 1000, 1), "depth": depth})
    shallow = [e for e in entries if e["depth"] <= 1]
    return [{"module": e["module"], "cumulative_ms": e["cumulative_ms"]}
            for e in sorted(shallow, key=lambda e: -e["cumulative_ms"])[:top]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="d42d828")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--trials", type=int, default=100, help="per study")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_cli_") as tmp:
        tmp = Path(tmp)
        before = tmp / "before"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(before), args.before],
                       check=True)
        try:
            built = time.perf_counter()
            storage = build_storage(tmp / "store", args.studies, args.trials)
            build_seconds = time.perf_counter() - built
            cwd = tmp / "store"  # no configs/orchestrator.toml here: both versions use their built-in defaults
            status = ["status", "--storage", storage, "--best-dir", str(tmp / "store" / "best")]
            runs = {
                "import_torch": ([sys.executable, "-c", "import torch"], REPO),
                "help_before": ([sys.executable, "-m", "orchestrator", "--help"], before),
                "help_after": ([sys.executable, "-m", "orchestrator", "--help"], REPO),
                "status_before": ([sys.executable, "-m", "orchestrator", *status[:3]], before),  # no --best-dir then
                "status_after": ([sys.executable, "-m", "orchestrator", *status], REPO),
            }
            seconds: dict[str, list[float]] = {name: [] for name in runs}
            cpu: dict[str, list[float]] = {name: [] for name in runs}
            for _ in range(args.repeats):
                for name, (command, path) in runs.items():
                    wall, used = timed(command, path, cwd)
                    seconds[name].append(wall)
                    cpu[name].append(used)
            median = {name: round(statistics.median(values), 3) for name, values in seconds.items()}
            median_cpu = {name: round(statistics.median(values), 3) for name, values in cpu.items()}
            result = {
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other sessions)",
                "before": args.before, "repeats": args.repeats, "studies": args.studies, "trials_per_study": args.trials,
                "median_seconds": median,
                "median_cpu_seconds": median_cpu,
                "help_over_import_torch": {"before": round(median["help_before"] / median["import_torch"], 2),
                                           "after": round(median["help_after"] / median["import_torch"], 2)},
                "status_speedup": round(median["status_before"] / median["status_after"], 2),
                "all_seconds": {name: [round(v, 3) for v in values] for name, values in seconds.items()},
                "all_cpu_seconds": {name: [round(v, 3) for v in values] for name, values in cpu.items()},
                "importtime_top": {
                    "help_before": importtime(["--help"], before, cwd),
                    "help_after": importtime(["--help"], REPO, cwd),
                    "status_before": importtime(status[:3], before, cwd),
                    "status_after": importtime(status, REPO, cwd),
                },
                "storage_build_seconds": round(build_seconds, 1),
            }
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(before)], check=False)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
