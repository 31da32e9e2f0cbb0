"""The embedded default job: the built-in model on generated data, everything under studies/demo/.

Four decisions, each showing one thing: a first commit (a deliberately weak config, with nothing to compare it
with), a commit on evidence (a full search beats it), a kept incumbent (more trials find nothing clearly better), and
a trending symbol where the tuned config beats the naive zero-return forecast. The closing lines say which is which,
from the decisions themselves.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console

from orchestrator.decisions.commit import Decision
from orchestrator.views.dashboard import record_decision
from orchestrator.data import write_synthetic
from orchestrator.models.base import ModelOptions
from orchestrator.settings import Settings
from orchestrator.lifecycle.study import optimize, prepare

ROOT = Path("studies/demo")
TREND = 0.003
"""DEMO_TREND's drift: 0.3% per bar, about a quarter of a bar's volatility; only a model that uses drift sees it."""
WEAK_SPACE = """# The demo's deliberately weak starting point: 32 bars of context, a 2-bar volatility half-life, 64 samples.
[context_length]
type = "int"
low = 32
high = 32
[ewma_halflife]
type = "float"
low = 2.0
high = 2.0
[drift]
type = "categorical"
choices = [true]
[num_samples]
type = "int"
low = 64
high = 64
[aggregate]
type = "categorical"
choices = ["quantile_0.4"]
"""


def run_demo(console: Console, trials: int = 30) -> None:
    """Run the four studies (`trials` trials each, twice as many in the third) and say what each decision shows."""
    shutil.rmtree(ROOT, ignore_errors=True)
    data = ROOT / "trainingdata"
    write_synthetic(data, ["DEMO_A"])
    write_synthetic(data, ["DEMO_TREND"], trend=TREND)
    weak = ROOT / "weak_space.toml"
    weak.write_text(WEAK_SPACE)
    storage = f"sqlite:///{ROOT}/optuna.db"
    steps = [  # (name, what it is, symbol, target, space file, fresh)
        ("DEMO_A, weak start", "a space that allows only a deliberately weak config", "DEMO_A", 2, weak, False),
        ("DEMO_A, full search", "a new study on the default space", "DEMO_A", trials, None, True),
        ("DEMO_A, more trials", "the same study with twice the trials", "DEMO_A", 2 * trials, None, False),
        ("DEMO_TREND", f"a symbol that trends {TREND:.1%} a bar", "DEMO_TREND", trials, None, False),
    ]
    decisions = []
    for name, what, symbol, target, space, fresh in steps:
        settings = Settings(data_dir=data, storage=storage, best_dir=ROOT / "best", artifact_dir=ROOT / "artifacts",
                            trials=target, device="cpu")
        outcome, _ = optimize(prepare("fhs", symbol, settings, ModelOptions(device="cpu"), space), fresh=fresh,
                              record=record_decision)
        c = outcome.counts
        console.print(f"\n{name} ({what})\n  {c.finished} trials ({c.pruned} pruned), best {outcome.best_value:.5f}, "
                      f"naive {outcome.naive_mae:.5f}\n  {outcome.decision_line}", highlight=False)
        decisions.append((name, outcome.decision))
    console.print("\nwhat each decision shows:")
    for name, decision in decisions:
        console.print(f"  {name + ':':21}{lesson(decision)}", highlight=False)
    console.print(
        "\nlook at the results:\n"
        f"  orchestrator status --storage {storage} --best-dir {ROOT / 'best'}\n"
        f"  orchestrator best --model fhs --symbol DEMO_A --best-dir {ROOT / 'best'}\n"
        f"  orchestrator dashboard --storage {storage} --artifact-dir {ROOT / 'artifacts'}\n"
        f"  orchestrator report --storage {storage} --artifact-dir {ROOT / 'artifacts'} --best-dir {ROOT / 'best'} "
        f"--out {ROOT / 'report.html'}\n"
        f"  history of every commit decision: {ROOT / 'best' / 'history.jsonl'}\n"
        "use what the night chose (the champion per symbol, then its next-bar forecast, logged):\n"
        f"  orchestrator leaderboard --best-dir {ROOT / 'best'}\n"
        f"  orchestrator forecast --best-dir {ROOT / 'best'} --out {ROOT / 'forecasts.csv'}",
        highlight=False,
    )


def lesson(decision: Decision | None) -> str:
    """What a decision shows a newcomer, in a few words: which kind of decision it is, and against naive."""
    if decision is None:
        return "no trial completed"
    if decision.committed and decision.incumbent is None:
        kind = "a first commit (nothing to compare with)"
    elif decision.committed and decision.evidence is None:
        kind = "committed without comparison (the incumbent could not be scored)"
    elif decision.committed:
        spa = decision.evidence.get("spa") or {}
        also = f", best of {spa['configs']} configs: p={spa['p_value']:.2g}" if spa else ""
        kind = f"a commit on evidence (p={decision.evidence['p_value']:.2g}{also}): a good commit looks like this"
    else:
        kind = "incumbent kept: the candidate was not clearly better"
    naive = {True: "; beats naive", False: "; no better than naive", None: ""}[decision.beats_naive]
    return kind + naive
