"""Decisions on evidence: the paired Diebold-Mariano/HLN test, both commit rules, the naive flag, and the evidence in
every place a decision shows."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna_dashboard import get_note
from scipy import stats
from statsmodels.stats.sandwich_covariance import S_hac_simple

from conftest import cli, read_json
from orchestrator.decisions.commit import CommitRule, decide
from orchestrator.data import load_series, make_windows
from orchestrator.scoring.evaluation import Evaluator
from orchestrator.scoring.evidence import Evidence, evidence_text, newey_west_variance, paired_evidence
from orchestrator.models.base import ModelOptions, create

BEST = Path("configs/best/fhs/BTCUSD.json")
HISTORY = Path("configs/best/history.jsonl")
GOOD = {"context_length": 128, "ewma_halflife": 20.0, "drift": False, "num_samples": 1024, "aggregate": "median"}
BAD = {"context_length": 32, "ewma_halflife": 2.0, "drift": True, "num_samples": 64, "aggregate": "quantile_0.1"}


def test_newey_west_variance_matches_statsmodels() -> None:
    rng = np.random.default_rng(1)
    x = np.convolve(rng.standard_normal(260), [1.0, 0.6, 0.3], mode="valid")  # autocorrelated, 258 values
    lags = math.floor(len(x) ** (1 / 3))
    reference = S_hac_simple((x - x.mean())[:, None], nlags=lags)[0, 0] / len(x)  # Bartlett weights, sum / n
    assert newey_west_variance(x, lags) == pytest.approx(reference, rel=1e-12)


def test_dm_hln_statistic_and_one_sided_p_value() -> None:
    rng = np.random.default_rng(2)
    incumbent = np.abs(rng.standard_t(4, 250)) * 0.01
    candidate = incumbent * (1 - 0.03 * rng.random(250)) + 0.001 * rng.standard_normal(250)
    e = paired_evidence(candidate, incumbent)
    d = incumbent - candidate
    n = len(d)
    dm = d.mean() / math.sqrt(newey_west_variance(d, math.floor(n ** (1 / 3))) / n)
    assert e.statistic == pytest.approx(dm * math.sqrt((n - 1) / n))  # HLN for h = 1
    assert e.p_value == pytest.approx(stats.t.sf(e.statistic, df=n - 1))
    assert e.improvement == pytest.approx(d.mean() / incumbent.mean())
    assert e.won == pytest.approx(np.mean(candidate < incumbent)) and e.windows == 250
    swapped = paired_evidence(incumbent, candidate)  # the other way round: the same evidence against
    assert swapped.p_value == pytest.approx(1 - e.p_value) and swapped.improvement < 0


def test_identical_errors_are_a_tie() -> None:
    errors = np.linspace(0.01, 0.02, 50)
    e = paired_evidence(errors, errors)
    assert (e.improvement, e.se, e.p_value, e.won) == (0.0, 0.0, 0.5, 0.0)
    assert not CommitRule("any").passes(e) and not CommitRule("significant").passes(e)


def test_rules_on_constructed_evidence() -> None:
    rng = np.random.default_rng(3)
    incumbent = np.abs(rng.standard_normal(250)) * 0.01 + 0.002
    clearly_better = paired_evidence(incumbent * 0.9, incumbent)
    jitter = 0.002 * rng.standard_normal(250)
    noise = paired_evidence(incumbent + jitter - jitter.mean() - 0.00005, incumbent)  # better by 1/3 of a se
    assert clearly_better.confidence > 0.999
    assert 0 < noise.improvement and noise.confidence < 0.95
    for rule in (CommitRule("any"), CommitRule("significant", 0.95)):
        assert rule.passes(clearly_better)
    assert CommitRule("any").passes(noise) and not CommitRule("significant", 0.95).passes(noise)
    assert CommitRule("significant", noise.confidence - 1e-9).passes(noise)


def test_summary_line_format() -> None:
    e = Evidence(improvement=0.0049, se=0.0021, statistic=2.3, p_value=0.011, won=0.58, windows=250)
    assert e.summary() == "-0.49% ± 0.21%, p=0.011, 58% of 250 windows"


@pytest.fixture
def study_parts(workdir: Path):
    """A real fhs evaluator on BTCUSD's default windows and a function making a one-trial study with given params."""
    series = load_series(Path("trainingdata"), "BTCUSD")
    windows = make_windows(series, 250, 60, 32)

    def study_with(params: dict, seed: int) -> tuple[optuna.Study, Evaluator]:
        study = optuna.create_study(direction="minimize")
        study.set_user_attr("model", "fhs")
        study.set_user_attr("symbol", "BTCUSD")
        study.set_user_attr("seed", seed)
        study.set_user_attr("eval_runs", 3)
        study.add_trial(optuna.trial.create_trial(params=params, distributions=_distributions(params), value=0.01))
        return study, Evaluator(create("fhs", ModelOptions()), series, windows, seed)

    return study_with, series


def _distributions(params: dict) -> dict:
    return {k: optuna.distributions.CategoricalDistribution([v]) for k, v in params.items()}


def _decide(study, evaluator, series, rule: CommitRule, best_dir: Path):
    provenance = {"data": {"rows": series.rows}, "options": {}}
    return decide(study, evaluator, best_dir, range(3, 6), "memory", rule, provenance)


def _write_incumbent(best_dir: Path, params: dict) -> None:
    path = best_dir / "fhs" / "BTCUSD.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"symbol": "BTCUSD", "model": "fhs", "params": params}))


def test_a_clearly_better_config_commits_under_every_rule(study_parts, tmp_path: Path) -> None:
    study_with, series = study_parts
    for rule in (CommitRule("any"), CommitRule("significant", 0.95), CommitRule("spa", 0.95)):
        best_dir = tmp_path / rule.rule
        _write_incumbent(best_dir, BAD)
        study, evaluator = study_with(GOOD, seed=0)
        decision = _decide(study, evaluator, series, rule, best_dir)
        assert decision.committed and decision.evidence["confidence"] >= 0.95
        assert read_json(best_dir / "fhs" / "BTCUSD.json")["params"] == GOOD


def test_a_noise_level_improvement_commits_under_any_but_not_significant(study_parts, tmp_path: Path) -> None:
    study_with, series = study_parts
    nearly = {**GOOD, "num_samples": 1000}  # draws a few samples fewer than the incumbent: the same config in effect
    for seed in range(40):  # construct the case: a seed whose confirm runs favour the candidate by noise
        study, evaluator = study_with(nearly, seed)
        candidate = evaluator.evaluate(nearly, range(3, 6)).window_errors
        incumbent = evaluator.evaluate(GOOD, range(3, 6)).window_errors
        if paired_evidence(candidate, incumbent).improvement > 0:
            break
    else:
        pytest.fail("no seed gave the nearly identical candidate a positive improvement")
    decisions = {}
    for rule in (CommitRule("any"), CommitRule("significant", 0.95), CommitRule("spa", 0.95)):
        best_dir = tmp_path / rule.rule
        _write_incumbent(best_dir, GOOD)
        decisions[rule.rule] = _decide(study, evaluator, series, rule, best_dir)
    assert decisions["any"].committed and not decisions["significant"].committed and not decisions["spa"].committed
    line = decisions["significant"].line
    assert "but not significant" in line and "the rule needs confidence >= 0.95" in line
    assert "the rule needs confidence >= 0.95 over the configs tried" in decisions["spa"].line
    assert decisions["any"].evidence == decisions["significant"].evidence == decisions["spa"].evidence  # same runs


def test_a_committed_config_that_loses_to_the_naive_forecast_is_flagged(workdir: Path) -> None:
    Path("bad.toml").write_text('[context_length]\ntype = "int"\nlow = 32\nhigh = 32\n[ewma_halflife]\ntype = "float"\n'
                                'low = 2.0\nhigh = 2.0\n[num_samples]\ntype = "int"\nlow = 64\nhigh = 64\n'
                                '[aggregate]\ntype = "categorical"\nchoices = ["quantile_0.1"]\n')
    result = cli("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "2", "--space", "bad.toml")
    assert result.exit_code == 0, result.output
    assert "WARNING: the committed config does not beat the naive zero-return forecast" in result.stdout
    record = read_json(BEST)
    assert record["beats_naive"] is False and record["validation"]["mae"] > record["naive"]["validation"]
    assert "random walk" in record["decision_line"]
    assert json.loads(cli("status", "--json").stdout)[0]["beats_naive"] is False


def test_the_evidence_shows_in_every_place_a_decision_shows(workdir: Path) -> None:
    BEST.parent.mkdir(parents=True)
    BEST.write_text(json.dumps({"symbol": "BTCUSD", "model": "fhs", "params": BAD}))
    result = cli("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "6")
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if x.startswith("UPDATING fhs/BTCUSD"))
    record = read_json(BEST)
    evidence = record["evidence"]
    assert set(evidence) >= {"improvement", "se", "p_value", "confidence", "won", "windows"}
    assert evidence["windows"] == 250 and evidence["confidence"] >= 0.95 and evidence["improvement"] > 0
    summary = evidence_text(evidence)  # the paired evidence, then the SPA test over the configs tried
    assert summary.startswith(Evidence(**{k: evidence[k] for k in Evidence.__dataclass_fields__}).summary())
    assert f"; best of {evidence['spa']['configs']} configs over 1 night: p=" in summary
    assert evidence["spa"]["configs"] >= 2 and evidence["spa"]["nights"] == 1
    assert f"({summary})" in line and "of 250 windows" in line and "p=" in line and "±" in line
    assert record["decision_line"] == line and record["rule"]["rule"] == "spa"
    entry = json.loads(HISTORY.read_text().splitlines()[-1])
    assert entry["evidence"] == evidence and entry["incumbent_params"] == BAD and entry["params"] == record["params"]
    assert json.loads(cli("best", "--model", "fhs", "--symbol", "BTCUSD", "--json").stdout)["evidence"] == evidence
    assert summary in cli("best", "--model", "fhs", "--symbol", "BTCUSD").stdout
    (row,) = json.loads(cli("status", "--json").stdout)
    assert row["evidence"] == evidence and row["decision"] == line
    study = optuna.load_study(study_name="fhs/BTCUSD", storage="sqlite:///studies/optuna.db")
    note = get_note(study)
    assert "Paired evidence over 250 validation windows" in note and summary in note
    assert f"Hansen's SPA test over the {evidence['spa']['configs']} distinct configs tried" in note
    assert cli("report").exit_code == 0
    assert html.escape(summary) in Path("studies/report.html").read_text()
    launched = cli("launch", "--models", "fhs", "--symbols", "ETHUSD", "--trials", "4", "--save-summary", "s.json")
    assert launched.exit_code == 0, launched.output
    (eth,) = json.loads(Path("s.json").read_text())
    assert set(eth) >= {"evidence", "beats_naive", "decision"} and eth["decision"].startswith("UPDATING fhs/ETHUSD")
