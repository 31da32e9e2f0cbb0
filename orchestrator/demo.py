"""The embedded default job: the built-in model on generated data, everything under studies/demo/."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console

from orchestrator.dashboard import record_decision
from orchestrator.data import write_synthetic
from orchestrator.models.base import ModelOptions
from orchestrator.settings import Settings
from orchestrator.study import optimize, prepare

ROOT = Path("studies/demo")
SYMBOLS = ["DEMO_A", "DEMO_B"]


def run_demo(console: Console, rounds: tuple[int, ...] = (30, 60)) -> None:
    """Two symbols, two rounds each: the first commits (no incumbent yet); the second extends the study and commits
    only if its best config beats the committed one on fresh runs."""
    shutil.rmtree(ROOT, ignore_errors=True)
    write_synthetic(ROOT / "trainingdata", SYMBOLS)
    storage = f"sqlite:///{ROOT}/optuna.db"
    for symbol in SYMBOLS:
        for target in rounds:
            settings = Settings(data_dir=ROOT / "trainingdata", storage=storage, best_dir=ROOT / "best",
                                artifact_dir=ROOT / "artifacts", trials=target, device="cpu")
            outcome, _ = optimize(prepare("fhs", symbol, settings, ModelOptions(device="cpu")), record=record_decision)
            c = outcome.counts
            console.print(
                f"{outcome.study}: {c.finished} trials (pruned {c.pruned}), best {outcome.best_value:.5f}, "
                f"naive {outcome.naive_mae:.5f}", highlight=False,
            )
            console.print(f"  {outcome.decision_line}", highlight=False)
    console.print("\ncommitted configs:")
    for path in sorted((ROOT / "best" / "fhs").glob("*.json")):
        console.print(f"  {path}")
    console.print(
        "\nlook at the results:\n"
        f"  orchestrator status --storage {storage}\n"
        f"  orchestrator best --model fhs --symbol DEMO_A --best-dir {ROOT / 'best'}\n"
        f"  orchestrator dashboard --storage {storage} --artifact-dir {ROOT / 'artifacts'}\n"
        f"  orchestrator report --storage {storage} --artifact-dir {ROOT / 'artifacts'} --out {ROOT / 'report.html'}\n"
        f"  history of every commit decision: {ROOT / 'best' / 'history.jsonl'}",
        highlight=False,
    )
