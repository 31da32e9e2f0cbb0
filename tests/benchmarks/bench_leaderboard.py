"""Does the leaderboard name the right champion? Generated symbols where the truly best model is known, each family
scored as the leaderboard scores it, ranked by the leaderboard's own `rank` (arch's MCS, method R) and, side by side
on the same errors, by arch's method "max" and by two rules without a confidence set.

Run: python tests/benchmarks/bench_leaderboard.py [--symbols 100] [--windows 60,250] [--runs 16] [--quick]
Prints one JSON object on stdout (progress on stderr).

What is planted
- Returns: GARCH(1,1) volatility (alpha 0.08, beta 0.90, 1% a day on average) with Student-t(5) shocks, plus one of
  - `ar`: an AR(1) term, r_t = 0.25 r_(t-1) + e_t: yesterday's return predicts today's;
  - `trend`: a constant drift of 0.25 of the average daily volatility (unrealistically strong for a market, so that
    a year of bars can show it);
  - `random_walk`: nothing: the next return cannot be predicted, so no model beats the naive zero-return forecast.
- Families (one committed config each, as the leaderboard compares them):
  - `ar`: a planted deterministic family (defined here through the Forecaster contract, `stochastic = False`, so it
    is scored with one run as Toto 2 would be) that predicts 0.25 times the last return: the right model for `ar`;
  - `fhs_drift`: the built-in fhs, drift on (the mean return of a 256-bar context, 512 samples, mean): the right
    model for `trend`;
  - `fhs`: the built-in fhs without drift (256 bars, half-life 20, 512 samples, median): a sensible model that
    knows nothing (about naive everywhere);
  - `naive`: the zero-return forecast.
- Truth: each family's MAE on 20 x 1,000 windows of the same process (`truth` in the JSON): the truly best is `ar` on
  `ar`, `fhs_drift` on `trend`, `naive` on `random_walk`.
- Per symbol: a fresh series, 600 bars of history, then `--windows` held-out windows; `fhs` and `fhs_drift` with
  `--runs` common-random-number runs, `ar` with one.

Rules compared (the set's level is 0.90)
- `mcs_R` (the leaderboard): champion = the best member of arch's MCS, method R; none when naive is a member.
- `mcs_max`: the same with arch's method "max".
- `dm_vs_naive`: champion = the lowest-MAE model whose paired DM/HLN test against naive gives p < 0.05; else none.
- `lowest_mae`: champion = the lowest MAE, naive included (what comparing MAEs does).

Metrics per scenario and rule: `right` (champion = the truly best; for `random_walk` that is "none"), `wrong_model`
(a champion that is not the truly best), `none` (no champion), `clear` (one-member set), and for the MCS rules
`truth_excluded` (the set leaves out the truly best: at most about 10% at level 0.90 if the set keeps its promise).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from arch.bootstrap import MCS

from orchestrator.data import Contexts, Series, Windows
from orchestrator.scoring.evaluation import Evaluator, naive_errors
from orchestrator.scoring.evidence import paired_evidence
from orchestrator.decisions.leaderboard import MCS_REPS, NAIVE, rank
from orchestrator.models.base import Encoded, Forecaster, ModelOptions
from orchestrator.models.fhs import FHSForecaster

PHI, DRIFT = 0.25, 0.25
HISTORY = 600
LEVEL = 0.90
TRUTH_SERIES, TRUTH_WINDOWS = 20, 1000
SCENARIOS = {"ar": "ar", "trend": "fhs_drift", "random_walk": None}  # scenario -> truly best family (None: naive)
CONFIGS = {
    "fhs": {"context_length": 256, "ewma_halflife": 20.0, "drift": False, "num_samples": 512, "aggregate": "median"},
    "fhs_drift": {"context_length": 256, "ewma_halflife": 20.0, "drift": True, "num_samples": 512, "aggregate": "mean"},
    "ar": {"phi": PHI, "num_samples": 1},
}
RULES = ("mcs_R", "mcs_max", "dm_vs_naive", "lowest_mae")


class PlantedAR(Forecaster):
    """The planted family: next close = last close * exp(phi * last log return), deterministic."""

    name = "ar"
    encode_params = frozenset()
    context_param = "context_length"
    min_context = 2
    stochastic = False
    params = frozenset({"phi", "num_samples"})

    def encode(self, contexts: Contexts, params: Mapping[str, Any]) -> Encoded:
        close = torch.from_numpy(contexts.history("close", 2))
        return {"last": close[:, 1], "return": torch.log(close[:, 1] / close[:, 0])}

    def sample(self, encoded: Encoded, n: int, params: Mapping[str, Any], generator: torch.Generator) -> torch.Tensor:
        point = encoded["last"] * torch.exp(float(params["phi"]) * encoded["return"])
        return point[:, None].expand(-1, n)


def returns(scenario: str, rows: int, rng: np.random.Generator) -> np.ndarray:
    """Log returns of the scenario: GARCH(1,1) with Student-t(5) shocks, plus the planted AR term or drift."""
    omega, alpha, beta, nu = 1e-4 * 0.02, 0.08, 0.90, 5
    var = omega / (1 - alpha - beta)  # 1e-4: 1% a day
    shocks = rng.standard_t(nu, rows) / np.sqrt(nu / (nu - 2))
    out = np.empty(rows)
    previous = 0.0
    for i in range(rows):
        e = np.sqrt(var) * shocks[i]
        var = omega + alpha * e**2 + beta * var
        mean = PHI * previous if scenario == "ar" else DRIFT * 0.01 if scenario == "trend" else 0.0
        out[i] = previous = mean + e
    return out


def series_of(r: np.ndarray) -> Series:
    close = 100.0 * np.exp(np.cumsum(r))
    frame = pd.DataFrame({"timestamp": pd.date_range("2000-01-01", periods=len(r), freq="D", tz="UTC"),
                          "close": close})
    return Series(symbol="GEN", path=Path("generated.csv"), frame=frame, sha256=str(hash(close.tobytes())))


def family_errors(series: Series, ends: np.ndarray, runs: int, seed: int,
                  forecasters: dict[str, Forecaster]) -> dict[str, np.ndarray]:
    """Each family's per-window errors as the leaderboard computes them (one run for the deterministic family)."""
    errors = {}
    for name, forecaster in forecasters.items():
        evaluator = Evaluator(forecaster, series, Windows(ends, ends), seed)
        used = runs if forecaster.stochastic else 1
        errors[name] = evaluator.evaluate(CONFIGS[name], range(used)).window_errors
    errors[NAIVE] = naive_errors(series, ends)
    return errors


def champions(errors: dict[str, np.ndarray], seed: int) -> dict[str, dict[str, Any]]:
    """Each rule's champion (None: naive is as good) and, for the MCS rules, its set."""
    ranking = rank(errors, LEVEL, seed)
    maximum = MCS(pd.DataFrame(errors), size=1 - LEVEL, reps=MCS_REPS, method="max", seed=seed)
    maximum.compute()
    maes = {name: float(e.mean()) for name, e in errors.items()}
    max_members = list(maximum.included)
    significant = [n for n in errors if n != NAIVE and paired_evidence(errors[n], errors[NAIVE]).p_value < 0.05]
    lowest = min(maes, key=maes.__getitem__)
    return {
        "mcs_R": {"champion": ranking.champion, "set": ranking.members},
        "mcs_max": {"champion": None if NAIVE in max_members else min(max_members, key=maes.__getitem__),
                    "set": max_members},
        "dm_vs_naive": {"champion": min(significant, key=maes.__getitem__) if significant else None},
        "lowest_mae": {"champion": None if lowest == NAIVE else lowest},
    }


def truth(runs: int, forecasters: dict[str, Forecaster]) -> dict[str, dict[str, float]]:
    """Each family's MAE relative to naive on TRUTH_SERIES series of TRUTH_WINDOWS windows per scenario."""
    found = {}
    for i, scenario in enumerate(SCENARIOS):
        pooled: dict[str, list[np.ndarray]] = {}
        for j in range(TRUTH_SERIES):
            series = series_of(returns(scenario, HISTORY + TRUTH_WINDOWS, np.random.default_rng([99, i, j])))
            errors = family_errors(series, np.arange(HISTORY, series.rows), min(runs, 2), j, forecasters)
            for name, e in errors.items():
                pooled.setdefault(name, []).append(e)
        naive = np.concatenate(pooled[NAIVE]).mean()
        found[scenario] = {n: round(float(np.concatenate(e).mean() / naive), 4) for n, e in pooled.items()}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=100, help="generated symbols per scenario")
    parser.add_argument("--windows", default="60,250", help="held-out window counts")
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="10 symbols, 2 runs: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.symbols, args.runs = 10, 2
    torch.set_num_threads(1)  # small tensors: more threads only contend (and the CI machine is shared)
    start = time.perf_counter()
    forecasters = {"fhs": FHSForecaster(ModelOptions()), "fhs_drift": FHSForecaster(ModelOptions()),
                   "ar": PlantedAR(ModelOptions(device="cpu"))}
    population = truth(args.runs, forecasters)
    for scenario, best in SCENARIOS.items():
        winner = min(population[scenario], key=population[scenario].__getitem__)
        assert winner == (best or NAIVE), f"{scenario}: the truly best is {winner}, not {best or NAIVE}"
    results: dict[str, Any] = {}
    for windows in (int(w) for w in args.windows.split(",")):
        for s, (scenario, best) in enumerate(SCENARIOS.items()):
            counts = {rule: {"right": 0, "wrong_model": 0, "none": 0, "clear": 0, "truth_excluded": 0}
                      for rule in RULES}
            for k in range(args.symbols):
                rng = np.random.default_rng([windows, s, k])
                series = series_of(returns(scenario, HISTORY + windows, rng))
                errors = family_errors(series, np.arange(HISTORY, series.rows), args.runs, k, forecasters)
                for rule, outcome in champions(errors, seed=k).items():
                    c, champion = counts[rule], outcome["champion"]
                    c["right"] += champion == best
                    c["wrong_model"] += champion is not None and champion != best
                    c["none"] += champion is None
                    if "set" in outcome:
                        c["clear"] += champion is not None and len(outcome["set"]) == 1
                        c["truth_excluded"] += (best or NAIVE) not in outcome["set"]
            for c in counts.values():
                c.update({f"{key}_rate": round(value / args.symbols, 3) for key, value in list(c.items())})
            results[f"{scenario}, {windows} windows"] = counts
            print(f"{scenario}, {windows} windows: {json.dumps({r: counts[r]['right_rate'] for r in RULES})}",
                  file=sys.stderr)
    print(json.dumps({
        "setup": {"symbols_per_scenario": args.symbols, "runs": args.runs, "history": HISTORY, "level": LEVEL,
                  "mcs": {"reps": MCS_REPS, "bootstrap": "stationary", "block_size": "sqrt(windows)"},
                  "phi": PHI, "drift_in_daily_vols": DRIFT, "truly_best": {s: b or NAIVE for s, b in SCENARIOS.items()}},
        "truth_mae_vs_naive": population,
        "results": results,
        "seconds": round(time.perf_counter() - start, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
