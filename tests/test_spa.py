"""The SPA test that accounts for the configs tried: Hansen's studentized statistic and consistent p-value by hand
and against arch, its size when no config is better, its power on a planted better config, and the `spa` rule."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from arch.bootstrap import SPA, StationaryBootstrap, optimal_block_length
from optuna.trial import TrialState

from orchestrator.decisions.commit import CommitRule, decide, tried_configs
from orchestrator.data import load_series, make_windows
from orchestrator.scoring.evaluation import Evaluator
from orchestrator.scoring.evidence import paired_evidence, spa_evidence, stationary_bootstrap_variance
from orchestrator.models.base import ModelOptions, create


def errors(seed: int, configs: int = 100, windows: int = 250, better: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-window absolute errors of an incumbent and `configs` configs that forecast one-step returns equally well.

    Returns are Student-t with GARCH volatility; each forecast is noise scaled by the volatility, the configs'
    noise half shared (configs resemble each other), the incumbent's its own: every forecast has the same
    distribution, so no config is better. `better` > 0 plants a better config 0: it also forecasts that share of
    the actual return.
    """
    rng = np.random.default_rng(seed)
    shocks = rng.standard_t(5, windows) / math.sqrt(5 / 3)
    variance, volatility = 1.0, np.empty(windows)
    for t in range(windows):
        variance = 0.05 + 0.1 * (shocks[t - 1] ** 2 if t else 1.0) + 0.85 * variance
        volatility[t] = math.sqrt(variance)
    actual = 0.01 * volatility * shocks
    shared = rng.standard_normal((windows, 1))

    def forecasts(n: int) -> np.ndarray:
        return 0.003 * volatility[:, None] * (0.5 * shared + math.sqrt(0.75) * rng.standard_normal((windows, n)))

    incumbent = np.abs(actual - 0.003 * volatility * rng.standard_normal(windows))
    predicted = forecasts(configs)
    predicted[:, 0] += better * actual
    return incumbent, np.abs(actual[:, None] - predicted)


def verdicts(seed: int, rules: tuple[CommitRule, ...], better: float = 0.0) -> list[bool]:
    """Each rule's verdict on one seed's errors, for the best config on these windows (the most selection there
    can be)."""
    incumbent, configs = errors(seed, better=better)
    candidate = int(np.argmin(configs.mean(axis=0)))
    evidence = paired_evidence(configs[:, candidate], incumbent)
    spa = spa_evidence(incumbent, configs, candidate, seed=seed)
    return [rule.passes(evidence, spa) for rule in rules]


def test_statistic_and_p_value_against_a_hand_computation() -> None:
    incumbent, configs = errors(1, configs=4, windows=60, better=0.3)
    result = spa_evidence(incumbent, configs, 0, seed=7, reps=300)
    d = incumbent[:, None] - configs
    n = len(d)
    block = max(1, round(float(np.median(optimal_block_length(d)["stationary"]))))
    assert (result.block, result.configs, result.reps) == (block, 4, 300)
    q, x = 1 - 1 / block, d - d.mean(axis=0)
    omega2 = (x * x).sum(axis=0) / n
    for i in range(1, n):  # Politis and Romano's stationary-bootstrap kernel, lag by lag
        kappa = (1 - i / n) * q ** i + (i / n) * q ** (n - i)
        omega2 += 2 * kappa * (x[: n - i] * x[i:]).sum(axis=0) / n
    omega = np.sqrt(omega2)
    np.testing.assert_allclose(stationary_bootstrap_variance(d, block), omega2, rtol=1e-10)
    t = math.sqrt(n) * d.mean(axis=0) / omega
    assert result.statistic == pytest.approx(t[0], rel=1e-10) and t[0] > 0
    valid = d.mean(axis=0) >= -np.sqrt(omega2 / n * 2 * math.log(math.log(n)))
    centre = np.where(valid, d.mean(axis=0), 0.0)
    bootstrap, beaten = StationaryBootstrap(block, d, seed=7), 0
    for (resampled,), _ in bootstrap.bootstrap(300):
        beaten += max(math.sqrt(n) * (resampled.mean(axis=0) - centre) / omega) > t[0]
    assert result.p_value == beaten / 300 and result.confidence == 1 - beaten / 300


def test_equals_arch_spa_on_studentized_columns_and_arch_alone_is_not_studentized() -> None:
    incumbent, configs = errors(2, configs=30, better=0.08)
    d = incumbent[:, None] - configs
    candidate = 0
    result = spa_evidence(incumbent, configs, candidate, seed=11)
    omega = np.sqrt(stationary_bootstrap_variance(d, result.block))
    assert np.argmax(d.mean(axis=0) / omega) == candidate  # the candidate has the largest statistic: Hansen's SPA
    studentized = SPA(np.zeros(len(d)), -d / omega, block_size=result.block, reps=result.reps, seed=11)
    studentized.compute()
    assert result.p_value == result.any_p_value == studentized.pvalues["consistent"]
    raw = SPA(incumbent, configs, block_size=result.block, reps=result.reps, seed=11, studentize=True)
    raw.compute()
    assert raw.pvalues["consistent"] != result.p_value  # arch's own statistic ignores `studentize`


def test_a_candidate_without_the_largest_statistic_gets_a_larger_p_value() -> None:
    incumbent, configs = errors(3, configs=20, better=0.06)
    d = incumbent[:, None] - configs
    statistics = d.mean(axis=0) / np.sqrt(stationary_bootstrap_variance(d, 1))
    top, other = np.argsort(statistics)[::-1][:2]
    best, second = spa_evidence(incumbent, configs, top, seed=0), spa_evidence(incumbent, configs, other, seed=0)
    assert second.p_value > best.p_value == best.any_p_value == second.any_p_value  # Hansen's: the largest statistic


def test_configs_equal_to_the_incumbent_carry_no_evidence_and_a_seed_repeats() -> None:
    incumbent, configs = errors(4, configs=10, better=0.1)
    with_copy = np.column_stack([configs, incumbent])
    assert spa_evidence(incumbent, with_copy, 0, seed=5).p_value == spa_evidence(incumbent, configs, 0, seed=5).p_value
    tie = spa_evidence(incumbent, with_copy, 10, seed=5)
    assert (tie.p_value, tie.statistic) == (0.5, 0.0)
    assert spa_evidence(incumbent, configs, 3, seed=9) == spa_evidence(incumbent, configs, 3, seed=9)


def test_when_no_config_is_better_spa_commits_in_at_most_8_percent_of_seeds() -> None:
    rules = (CommitRule("spa", 0.95), CommitRule("significant", 0.95))
    spa, significant = np.sum([verdicts(seed, rules) for seed in range(200)], axis=0)
    assert spa <= 16, f"{spa} of 200 seeds"
    assert significant >= 3 * spa  # the paired test of the best config alone: the search's bias


def test_a_planted_better_config_commits() -> None:
    commits = [verdicts(seed, (CommitRule("spa", 0.95),), better=0.2)[0] for seed in range(10)]
    assert sum(commits) >= 9


GOOD = {"context_length": 128, "ewma_halflife": 20.0, "drift": False, "num_samples": 1024, "aggregate": "median"}
OTHER = {**GOOD, "aggregate": "mean"}
THIRD = {**GOOD, "ewma_halflife": 10.0}
BAD = {"context_length": 32, "ewma_halflife": 2.0, "drift": True, "num_samples": 64, "aggregate": "quantile_0.1"}


def write_incumbent(best_dir: Path, params: dict) -> None:
    (best_dir / "fhs").mkdir(parents=True)
    (best_dir / "fhs" / "BTCUSD.json").write_text(json.dumps({"symbol": "BTCUSD", "model": "fhs", "params": params}))


def test_a_decision_tests_every_distinct_complete_config_rescored_on_the_confirm_runs(workdir: Path) -> None:
    series = load_series(Path("trainingdata"), "BTCUSD")
    evaluator = Evaluator(create("fhs", ModelOptions()), series, make_windows(series, 250, 60, 32), seed=0)
    configs = (GOOD, OTHER, THIRD, BAD)
    distributions = {k: optuna.distributions.CategoricalDistribution(sorted({c[k] for c in configs}, key=str))
                     for k in GOOD}
    study = optuna.create_study(direction="minimize")
    for key, value in {"model": "fhs", "symbol": "BTCUSD", "seed": 0, "eval_runs": 3}.items():
        study.set_user_attr(key, value)
    for params, value, state, attrs in ((GOOD, 0.010, TrialState.COMPLETE, {}),
                                        (GOOD, 0.010, TrialState.COMPLETE, {"reused_from": 0}),  # counts once
                                        (THIRD, None, TrialState.PRUNED, {}),  # partial runs: left out
                                        (OTHER, 0.011, TrialState.COMPLETE, {}),
                                        (BAD, 0.020, TrialState.COMPLETE, {})):  # the incumbent: the benchmark
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=value,
                                                  state=state, user_attrs=attrs))
    best_dir = workdir / "best"
    write_incumbent(best_dir, BAD)
    assert [t.number for t in tried_configs(study, BAD)] == [0, 3]
    decision = decide(study, evaluator, best_dir, range(3, 6), "memory", CommitRule("spa", 0.95),
                      {"data": {"rows": series.rows}, "options": {}})
    confirm = [evaluator.evaluate(p, range(3, 6)).window_errors for p in (GOOD, OTHER, BAD)]
    expected = spa_evidence(confirm[2], np.column_stack(confirm[:2]), 0, seed=0)
    spa = decision.evidence["spa"]
    assert (spa["configs"], spa["p_value"], spa["block"]) == (2, expected.p_value, expected.block)
    assert decision.committed == (decision.evidence["improvement"] > 0 and expected.confidence >= 0.95)
    assert decision.committed and "; best of 2 configs over 1 night: p=" in decision.line
    bounded_dir = workdir / "bounded"  # the same decision, testing only the best config
    write_incumbent(bounded_dir, BAD)
    bounded = decide(study, evaluator, bounded_dir, range(3, 6), "memory", CommitRule("spa", 0.95, 1),
                     {"data": {"rows": series.rows}, "options": {}})
    only_best = spa_evidence(confirm[2], np.column_stack(confirm[:1]), 0, seed=0)
    assert (bounded.evidence["spa"]["configs"], bounded.evidence["spa"]["tried"]) == (1, 2)
    assert bounded.evidence["spa"]["p_value"] == only_best.p_value and bounded.rule["spa_configs"] == 1
    assert "; best of 2 configs over 1 night (the 1 best tested): p=" in bounded.line
