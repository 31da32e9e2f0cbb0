"""How long `orchestrator forecast` takes the morning after: 24 symbols per family from a cold start.

Setup (not timed): generated daily bars for `--symbols` symbols, and a night of studies (`orchestrator launch`, 2
trials each, small windows) for fhs and for a tiny random-weight Toto (the test suite's architecture at toy size), so
that every symbol has a committed config of each family.

Measured per family, side by side in one run:
- `new`: one `orchestrator forecast --model F --runs 16` process for all symbols (each model loaded once): wall
  seconds, CPU seconds (user + system of the process), and wall after the interpreter starts (wall minus the median
  `python -c pass` start measured here);
- `reference`: one process per symbol (`--symbols S`, a loop a user might write): the sum of their wall and CPU
  seconds;
- `in_process`: `orchestrator.forecast(...)` in one Python process, first call (loads the model) and second call
  (models kept loaded).

Run: python tests/benchmarks/bench_forecast.py [--symbols 24] [--families fhs,toto] [--device cpu]
Prints one JSON object on stdout (progress on stderr). `bench_gpu.py --part forecast` reuses `night` and `measure`
with full-size Toto on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from orchestrator.data import write_synthetic  # noqa: E402

TOTO_SPACE = """
[context_length]
type = "categorical"
choices = [128]
[num_samples]
type = "int"
low = 256
high = 256
[aggregate]
type = "categorical"
choices = ["median"]
"""
IN_PROCESS = """
import json, sys, time
start = time.perf_counter()
import orchestrator
model, symbols, device, weights = sys.argv[1], sys.argv[2].split(","), sys.argv[3], sys.argv[4] or None
times = []
for _ in range(2):
    t = time.perf_counter()
    orchestrator.forecast(best_dir="configs/best", model=model, symbols=symbols, device=device, weights=weights)
    times.append(time.perf_counter() - t)
print(json.dumps({"first_call_seconds": round(times[0], 3), "second_call_seconds": round(times[1], 3)}))
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}", "PYTHONUNBUFFERED": "1"}


def timed(command: list[str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, CPU seconds of the child, the finished process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env(), capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[2:5])}: exit {done.returncode}: {done.stderr[-1000:]}")
    return wall, cpu, done


def night(work: Path, model: str, symbols: list[str], device: str, extra: list[str]) -> None:
    """Committed configs of `model` for every symbol: one `orchestrator launch`, 2 trials a study."""
    if not (work / "data").exists():
        write_synthetic(work / "data", symbols, rows=400)
    command = [sys.executable, "-m", "orchestrator", "launch", "--models", model, "--symbols", ",".join(symbols),
               "--trials", "2", "--eval-runs", "1", "--confirm-runs", "2", "--val-windows", "30", "--test-windows",
               "20", "--data-dir", str(work / "data"), "--device", device, "--no-transfer", *extra]
    wall, _, _ = timed(command, work)
    log(f"night of {model}: {len(symbols)} studies in {wall:.0f} s")


def interpreter_start() -> float:
    return statistics.median(timed([sys.executable, "-c", "pass"], ROOT)[0] for _ in range(3))


def measure(work: Path, model: str, symbols: list[str], device: str, weights: str | None, start: float,
            reference: bool = True) -> dict[str, Any]:
    """One process for all symbols, then (if `reference`) one process per symbol, then in-process calls."""
    base = [sys.executable, "-m", "orchestrator", "forecast", "--model", model, "--runs", "16", "--device", device,
            "--json", *(["--weights", weights] if weights else [])]
    wall, cpu, done = timed([*base, "--symbols", ",".join(symbols)], work)
    rows = json.loads(done.stdout)
    result: dict[str, Any] = {
        "symbols": len(symbols), "rows": len(rows),
        "new": {"wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
                "wall_after_interpreter_start": round(wall - start, 2)},
    }
    log(f"{model}: one process for {len(symbols)} symbols: {wall:.1f} s wall, {cpu:.1f} s CPU")
    if reference:
        walls, cpus = [], []
        for symbol in symbols:
            w, c, _ = timed([*base, "--symbols", symbol], work)
            walls.append(w)
            cpus.append(c)
        result["reference"] = {"wall_seconds": round(sum(walls), 2), "cpu_seconds": round(sum(cpus), 2)}
        log(f"{model}: one process per symbol: {sum(walls):.1f} s wall, {sum(cpus):.1f} s CPU")
    _, _, done = timed([sys.executable, "-c", IN_PROCESS, model, ",".join(symbols), device, weights or ""], work)
    result["in_process"] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=24)
    parser.add_argument("--families", default="fhs,toto")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-reference", action="store_true", help="skip the one-process-per-symbol loop")
    args = parser.parse_args()
    from test_toto import TINY, write_checkpoint

    work = Path(tempfile.mkdtemp(prefix="bench_forecast."))
    symbols = [f"S{i:02d}" for i in range(args.symbols)]
    toto = write_checkpoint(work / "toto", TINY)
    (work / "toto.toml").write_text(TOTO_SPACE)
    extra = {"fhs": [], "toto": ["--weights", str(toto), "--space", str(work / "toto.toml")]}
    weights = {"fhs": None, "toto": str(toto)}
    families = args.families.split(",")
    for model in families:
        night(work, model, symbols, args.device, extra[model])
    start = interpreter_start()
    report = {"machine": {"cpus": os.cpu_count(), "device": args.device, "python": sys.version.split()[0]},
              "interpreter_start_seconds": round(start, 3),
              "families": {m: measure(work, m, symbols, args.device, weights[m], start, not args.no_reference)
                           for m in families}}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
