"""What the SPA test counts in a nightly lineage: a rolled-forward study's decision counts its own distinct configs
(the warm starts carried from the archive among them) over 1 night, not the archive's other configs; the lineage
null benchmark (tests/benchmarks/bench_lineage_null.py) measured that counting those is not needed to keep noise
out. The decision line and the history say how many configs were counted and over how many nights."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
from optuna.trial import TrialState

from conftest import cli
from orchestrator.data import synthetic_ohlcv
from orchestrator.decisions.commit import tried_configs
from orchestrator.scoring.evidence import SpaEvidence, evidence_text

STORAGE = "sqlite:///studies/optuna.db"


def write_bars(rows: int) -> None:
    Path("data").mkdir(exist_ok=True)
    synthetic_ohlcv("AAA", 700).iloc[:rows].to_csv("data/AAA.csv", index=False, float_format="%.6f")


def night(trials: int):
    result = cli("optimize", "--model", "fhs", "--symbol", "AAA", "--data-dir", "data", "--val-windows", "60",
                 "--test-windows", "20", "--trials", str(trials), "--eval-runs", "2", "--no-transfer")
    assert result.exit_code == 0, result.output
    return result


def test_a_two_night_lineage_counts_tonights_distinct_configs_over_one_night(workdir: Path) -> None:
    write_bars(690)
    night(12)
    write_bars(695)  # 5 bars a night
    result = night(10)
    (archived,) = set(optuna.get_all_study_names(STORAGE)) - {"fhs/AAA"}
    entries = [json.loads(line) for line in Path("configs/best/history.jsonl").read_text().splitlines()]
    entry = entries[-1]
    tonight = optuna.load_study(study_name="fhs/AAA", storage=STORAGE)
    assert any(t.user_attrs.get("warm_start") == "previous_study" for t in tonight.trials)
    configs = {json.dumps(t.params, sort_keys=True) for t in tried_configs(tonight, entry["incumbent_params"])}
    old = optuna.load_study(study_name=archived, storage=STORAGE).get_trials(states=(TrialState.COMPLETE,))
    assert {json.dumps(t.params, sort_keys=True) for t in old} - configs  # the archive's other configs: not counted
    spa = entry["evidence"]["spa"]
    assert (spa["configs"], spa["nights"]) == (len(configs), 1)
    counted = f"best of {len(configs)} configs over 1 night: p="
    assert counted in evidence_text(entry["evidence"]) and counted in result.stdout
    assert counted in tonight.user_attrs["decision"]["line"]


def test_the_line_says_over_how_many_nights_and_older_decisions_read_as_before() -> None:
    assert SpaEvidence(0.41, 0.2, 112, 1000, 3, nights=3).summary() == "best of 112 configs over 3 nights: p=0.41"
    assert SpaEvidence(0.02, 2.1, 30, 1000, 3, tried=87, nights=1).summary() == (
        "best of 87 configs over 1 night (the 30 best tested): p=0.02")
    recorded = {"improvement": 0.01, "se": 0.005, "statistic": 2.0, "p_value": 0.03, "won": 0.55, "windows": 250,
                "spa": {"p_value": 0.2, "statistic": 1.0, "configs": 40, "reps": 1000, "block": 2}}
    assert evidence_text(recorded).endswith("; best of 40 configs: p=0.2")  # a history line of an earlier version
