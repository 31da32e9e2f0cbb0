"""Do commit decisions hold on future bars? Real fhs studies through the library, each decision scored on the 250
bars after its history, for each commit rule (any, significant, spa) at several trial counts.

Run: python tests/benchmarks/bench_decisions.py [--series real|generated] [--cuts 8] [--trials 30 100 300]
     [--poor drift|quantile] [--incumbents plausible poor] [--jobs 2] [--save FILE] [--load FILE] [--quick]
Prints one JSON object on stdout (progress lines on stderr).

Setup
- Series (`--series real`, the default): daily bars that users have, as they have them, from the `arch` package's
  data sets (offline): the S&P 500 and NASDAQ Composite indices 1999-2018 (`arch.data.sp500`, `arch.data.nasdaq`:
  Yahoo's `Date,Open,High,Low,Close,Adj Close,Volume`, closes used) and WTI crude oil 1986-2019 (`arch.data.wti`:
  FRED's `observation_date,DCOILWTICO`, holidays as `.`, read with `drop_missing` as a user would). With
  `--series generated`, `--symbols` generated symbols instead: `regime_ohlcv` below (Markov calm / normal / turbulent
  volatility regimes, GJR-GARCH, Student-t shocks, jumps) alternating with the package's `synthetic_ohlcv`.
- Cuts: up to `--cuts` cut dates per series, spread evenly over the ones that fit (`--step` bars apart at least);
  each study sees the `--history` bars before its cut, written as the user's CSV (the rows between, `.` included),
  and is scored on the 250 bars after the cut, which it never saw.
- Incumbents, written as `<best_dir>/fhs/<SYMBOL>.json`: `plausible` (context 256, EWMA half-life 20, no drift,
  512 samples, median) and `poor` (drift from a 32-bar context, half-life 2, 64 samples, mean; or `--poor quantile`:
  the plausible config with a quantile_0.1 aggregate). For the poor incumbent a truly better config is planted and
  checked: the plausible config, scored on the same future bars.
- Studies: for every (series, cut, incumbent) one fhs study with the defaults (TPE, 3 eval runs, 3 confirm runs,
  250 validation and 60 test windows, seed 0, commit_rule "spa"), in its own SQLite file (tmpfs where /dev/shm
  exists). It runs to each `--trials` count in turn (30, then on to 100, ...: the study a user resumes with a
  higher target) and decides at each one through `work`, into a best dir of that count's own, so every count
  decides against the same incumbent.
- Rules, side by side on the same decisions: `any`, `significant` (0.95, 0.99) and `spa` (0.90, 0.95, 0.99) by the
  library's `CommitRule.passes` on the decision's recorded evidence (paired test and SPA test); the library's own
  verdict (spa 0.95) is asserted equal to the post hoc one in every decision. `spa-any` (no library rule): the
  candidate is better and Hansen's SPA p-value of the largest statistic (some config beats the incumbent, not
  necessarily the candidate) is at most 0.05. `... best M` (for `--bounds`): the SPA test over only the best M
  configs by search value, on the same rescored errors (the benchmark records the matrix the library tests, by
  wrapping `orchestrator.decisions.commit.spa_evidence`), i.e. what `spa_configs = M` would decide.
- Forward scoring: candidate (the study's best trial) and incumbent on the 250 future bars, `--forward-runs` runs
  (16), one seed for both (common random numbers). Forward change = candidate MAE / incumbent MAE - 1 (negative:
  the candidate is better); "worse" = a positive change.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FUTURE = 250
REAL = ("SP500", "NASDAQ", "WTI")
PLAUSIBLE = {"context_length": 256, "ewma_halflife": 20.0, "drift": False, "num_samples": 512, "aggregate": "median"}
POOR = {
    "drift": {"context_length": 32, "ewma_halflife": 2.0, "drift": True, "num_samples": 64, "aggregate": "mean"},
    "quantile": {**PLAUSIBLE, "aggregate": "quantile_0.1"},
}
RULES = ("any", "significant>=0.95", "significant>=0.99", "spa>=0.90", "spa>=0.95", "spa>=0.99", "spa-any>=0.95")
"""Rules side by side: `any`; `significant` and `spa` at a min_confidence; `spa-any` (not a library rule): the
candidate is better and Hansen's SPA p-value of the largest statistic (SpaEvidence.any_p_value: some config beats
the incumbent) is at most 1 - min_confidence. With " best M": the SPA test over the best M configs only."""
DEFAULT_RULE = "spa>=0.95"
FORWARD_SEED = 20240611  # not the studies' seed: the forward runs are draws no study has seen


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def regime_ohlcv(symbol: str, rows: int, seed: int = 0) -> pd.DataFrame:
    """Daily OHLCV bars with stronger regime changes than `synthetic_ohlcv`, closer to index / stock / oil series.

    Volatility is regime level x GJR-GARCH component: Markov regimes calm (0.6x), normal (1x) and turbulent (2.5x
    the symbol's base volatility, drawn in 0.8%-2.2% a day) switch the level at once (vol-of-vol), and the unit-mean
    GJR-GARCH(1,1) component (alpha 0.03, leverage gamma 0.09, beta 0.91) clusters within a regime. Shocks are
    Student-t (3.5-6 degrees of freedom, unit variance); about one bar in 250 adds a jump of 4 standard deviations'
    scale. Drifts are small (+0.05% calm, +0.02% normal, -0.15% turbulent a day), so trends are weak next to noise.
    """
    rng = np.random.default_rng([zlib.crc32(symbol.encode()), seed, 7])
    base = rng.uniform(0.008, 0.022)
    levels = base * np.array([0.6, 1.0, 2.5])
    drifts = np.array([0.0005, 0.0002, -0.0015])
    transition = np.array([[0.995, 0.005, 0.0], [0.004, 0.993, 0.003], [0.0, 0.03, 0.97]])
    alpha, gamma, beta = 0.03, 0.09, 0.91
    dof = rng.uniform(3.5, 6.0)
    scale = np.sqrt((dof - 2) / dof)
    regime, h, z = 1, 1.0, 0.0
    log_returns = np.empty(rows)
    for i in range(rows):
        regime = int(rng.choice(3, p=transition[regime]))
        h = (1 - alpha - gamma / 2 - beta) + (alpha + gamma * (z < 0)) * z * z + beta * h
        z = rng.standard_t(dof) * scale
        sigma = levels[regime] * np.sqrt(h)
        jump = rng.normal(0.0, 4 * sigma) if rng.random() < 0.004 else 0.0
        log_returns[i] = drifts[regime] + sigma * z + jump
    close = 20.0 * (1 + rng.random() * 9) * np.exp(np.cumsum(log_returns))
    open_ = np.concatenate([[close[0]], close[:-1]]) * np.exp(rng.normal(0, 0.2 * base, rows))
    spread = np.abs(log_returns) + base / 2
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.5, rows)) * spread)
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.5, rows)) * spread)
    volume = np.round(1e6 * np.exp(rng.normal(0, 0.3, rows)) * (1 + 40 * np.abs(log_returns)))
    timestamps = pd.bdate_range("2012-01-02", periods=rows, tz="UTC")
    return pd.DataFrame({"timestamp": timestamps.strftime("%Y-%m-%d"), "open": open_, "high": high, "low": low,
                         "close": close, "volume": volume})


def user_file(symbol: str, rows: int, seed: int) -> tuple[pd.DataFrame, bool]:
    """(the rows of the symbol's CSV as a user has it, whether it has missing cells to drop)."""
    if symbol in REAL:
        import arch.data.nasdaq
        import arch.data.sp500
        import arch.data.wti

        if symbol == "WTI":  # FRED: observation_date,DCOILWTICO with '.' on holidays
            frame = arch.data.wti.load()
            return pd.DataFrame({"observation_date": frame.index.strftime("%Y-%m-%d"),
                                 "DCOILWTICO": frame["DCOILWTICO"].map(lambda v: "." if pd.isna(v) else f"{v:.2f}")}), True
        frame = (arch.data.sp500 if symbol == "SP500" else arch.data.nasdaq).load()
        return frame.reset_index().assign(Date=lambda f: f["Date"].dt.strftime("%Y-%m-%d")), False
    from orchestrator.data import synthetic_ohlcv

    generated = regime_ohlcv(symbol, rows, seed) if symbol.startswith("RGM") else synthetic_ohlcv(symbol, rows, seed)
    return generated, False


def bar_rows(frame: pd.DataFrame) -> np.ndarray:
    """Row numbers of the file's bars (rows without a missing cell): bar i is row bar_rows[i]."""
    return np.flatnonzero(~frame.isin(["."]).any(axis=1).to_numpy())


def write_incumbent(best_dir: Path, symbol: str, params: dict[str, Any]) -> None:
    (best_dir / "fhs").mkdir(parents=True, exist_ok=True)
    record = {"symbol": symbol, "model": "fhs", "params": params}
    (best_dir / "fhs" / f"{symbol}.json").write_text(json.dumps(record))


class Recorder:
    """Wraps the library's SPA test and decision to keep what each decision tested (the rescored errors, best
    search value first) and how long it took: benchmark instrumentation only, installed once per process."""

    installed: Recorder | None = None

    @classmethod
    def install(cls) -> Recorder:
        cls.installed = cls.installed or cls()
        return cls.installed

    def __init__(self) -> None:
        import orchestrator.decisions.commit
        import orchestrator.lifecycle.study

        self.tested: tuple[np.ndarray, np.ndarray, int] | None = None
        self.seconds = 0.0
        spa_evidence, decide = orchestrator.decisions.commit.spa_evidence, orchestrator.lifecycle.study.decide

        def recording_spa(incumbent, configs, candidate, seed, **kwargs):
            self.tested = (incumbent, configs, seed)
            return spa_evidence(incumbent, configs, candidate, seed, **kwargs)

        def timed_decide(*args, **kwargs):
            start = time.perf_counter()
            try:
                return decide(*args, **kwargs)
            finally:
                self.seconds = time.perf_counter() - start

        orchestrator.decisions.commit.spa_evidence = recording_spa
        orchestrator.lifecycle.study.decide = timed_decide


def run_study(home: Path, data_dir: Path, symbol: str, incumbent: dict[str, Any], trial_counts: list[int],
              drop_missing: bool, forecaster, recorder: Recorder) -> list[dict[str, Any]]:
    """One real study through the library, decided at each trial count: decision, evidence, candidate, cost."""
    from orchestrator.decisions.records import read_history
    from orchestrator.models.base import ModelOptions
    from orchestrator.settings import Settings
    from orchestrator.lifecycle.study import prepare, raise_target, setup, work

    write_incumbent(home / f"best{trial_counts[0]}", symbol, incumbent)  # the warm start: trial 0
    settings = Settings(data_dir=data_dir, storage=f"sqlite:///{home / 'optuna.db'}",
                        best_dir=home / f"best{trial_counts[0]}", artifact_dir=home / "artifacts",
                        trials=trial_counts[0], commit_rule="spa", device="cpu", drop_missing=drop_missing,
                        transfer=False)
    job = prepare("fhs", symbol, settings, ModelOptions(device="cpu"))
    setup(job, forecaster)
    out = []
    for trials in trial_counts:
        best_dir = home / f"best{trials}"
        write_incumbent(best_dir, symbol, incumbent)
        counted = replace(job, settings=job.settings.model_copy(update={"trials": trials, "best_dir": best_dir}))
        raise_target(counted, trials)
        recorder.tested = None
        start = time.perf_counter()
        outcome = work(counted, forecaster=forecaster)
        decision = outcome.decision
        if decision is None or recorder.tested is None:
            raise RuntimeError(f"{home.name}: no decision with an SPA test at {trials} trials")
        entry = read_history(best_dir)[-1]
        out.append({"trials": trials, "committed": decision.committed, "evidence": decision.evidence,
                    "trial": decision.trial, "params": entry["params"], "tested": recorder.tested,
                    "decision_seconds": round(recorder.seconds, 2), "seconds": round(time.perf_counter() - start, 2),
                    "windows_used": len(job.windows.validation), "complete": outcome.counts.complete,
                    "pruned": outcome.counts.pruned, "failed": outcome.counts.failed})
    return out


def spa_confidences(evidence: dict[str, Any], tested: tuple[np.ndarray, np.ndarray, int],
                    bounds: list[int]) -> dict[str, dict[str, float]]:
    """1 - p of the library's SPA test ("candidate") and of Hansen's largest statistic ("any"), over all tested
    configs (as recorded by the decision) and over the best M of them (recomputed on the tested errors)."""
    from orchestrator.scoring.evidence import spa_evidence

    def both(p_value: float, any_p_value: float | None) -> dict[str, float]:
        return {"candidate": 1.0 - p_value, "any": 1.0 - (p_value if any_p_value is None else any_p_value)}

    out = {"all": {**both(evidence["spa"]["p_value"], evidence["spa"]["any_p_value"]),
                   "candidate": evidence["spa"]["confidence"]}}
    incumbent, configs, seed = tested
    for m in bounds:
        bounded = spa_evidence(incumbent, configs[:, :m], 0, seed=seed)
        out[str(m)] = both(bounded.p_value, bounded.any_p_value)
    return out


def verdict(record: dict[str, Any], name: str) -> bool:
    """A rule's verdict on a decision's record, by the library's CommitRule.passes on its recorded improvement and
    confidences ("spa>=0.95 best 10": the spa rule at 0.95 over the best 10 configs)."""
    from types import SimpleNamespace

    from orchestrator.decisions.commit import CommitRule

    head, _, bound = name.partition(" best ")
    kind, _, threshold = head.partition(">=")
    spa = record["spa"][bound or "all"]["any" if kind == "spa-any" else "candidate"]
    paired = SimpleNamespace(improvement=record["improvement"], confidence=record["confidence"])
    rule = CommitRule("spa" if kind == "spa-any" else kind, float(threshold or 0.95))
    return rule.passes(paired, SimpleNamespace(confidence=spa))


def unit(args: dict[str, Any]) -> list[dict[str, Any]]:
    """Every study of one (symbol, cut): history CSV, studies, forward scores."""
    import optuna
    import torch

    from orchestrator.data import Windows, load_series
    from orchestrator.scoring.evaluation import Evaluator
    from orchestrator.models.base import ModelOptions, create

    torch.set_num_threads(args["threads"])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    recorder = Recorder.install()
    symbol, cut, root = args["symbol"], args["cut"], Path(args["root"])
    frame, drop_missing = user_file(symbol, args["rows"], args["seed"])
    rows = bar_rows(frame)
    full_dir, data_dir = root / "full" / f"{symbol}_{cut}", root / "data" / f"{symbol}_{cut}"
    full_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    # Both files are written with the same float format, so the history's bars equal the full series' bars.
    frame.to_csv(full_dir / f"{symbol}.csv", index=False, float_format="%.6f")
    frame.iloc[rows[cut - args["history"]]: rows[cut]].to_csv(data_dir / f"{symbol}.csv", index=False,
                                                              float_format="%.6f")
    forecaster = create("fhs", ModelOptions(device="cpu"))
    series = load_series(full_dir, symbol, drop_missing=drop_missing)
    ends = np.arange(cut, cut + FUTURE)
    future = Evaluator(forecaster, series, Windows(validation=ends, test=ends), FORWARD_SEED)
    forward_cache: dict[str, float] = {}

    def forward(params: dict[str, Any]) -> float:
        key = json.dumps(params, sort_keys=True)
        if key not in forward_cache:
            forward_cache[key] = future.evaluate(params, range(args["forward_runs"]), "validation").mae
        return forward_cache[key]

    incumbents = {"plausible": PLAUSIBLE, "poor": POOR[args["poor"]]}
    planted = forward(PLAUSIBLE) / forward(incumbents["poor"]) - 1
    records = []
    for kind, params in incumbents.items():
        if kind not in args["incumbents"]:
            continue
        tag = f"{symbol}_{cut}_{kind}"
        decisions = run_study(root / "studies" / tag, data_dir, symbol, params, args["trials"], drop_missing,
                              forecaster, recorder)
        for d in decisions:
            change = forward(d["params"]) / forward(params) - 1
            evidence = d["evidence"]
            record = {
                "symbol": symbol, "cut": cut, "incumbent": kind, "trials": d["trials"],
                "windows_used": d["windows_used"], "trial": d["trial"], "same_as_incumbent": d["params"] == params,
                "params": d["params"], "improvement": evidence["improvement"], "confidence": evidence["confidence"],
                "spa": spa_confidences(evidence, d["tested"], args["bounds"]), "configs": evidence["spa"]["configs"],
                "block": evidence["spa"]["block"], "forward_change": change,
                "planted_change": planted if kind == "poor" else None,
                "counts": {"complete": d["complete"], "pruned": d["pruned"], "failed": d["failed"]},
                "decision_seconds": d["decision_seconds"], "seconds": d["seconds"],
            }
            if verdict(record, DEFAULT_RULE) != d["committed"]:
                raise AssertionError(f"{tag} at {d['trials']} trials: CommitRule('spa') gives "
                                     f"{verdict(record, DEFAULT_RULE)}, the library decided {d['committed']}")
            records.append(record)
            if args["matrices"]:  # the tested errors, for analyses this file does not make
                incumbent_errors, configs, seed = d["tested"]
                np.savez_compressed(Path(args["matrices"]) / f"{tag}_{d['trials']}.npz", incumbent=incumbent_errors,
                                    configs=configs, seed=seed, forward_change=change)
            log(f"{tag} {d['trials']} trials: improvement {evidence['improvement']:+.4f} confidence "
                f"{evidence['confidence']:.3f} spa {record['spa']['all']['candidate']:.3f} (any "
                f"{record['spa']['all']['any']:.3f}) over {evidence['spa']['configs']} "
                f"configs, forward {change:+.4f} ({d['seconds']:.0f}s, decision {d['decision_seconds']:.1f}s)")
    return records


def share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 5) if values else None


def summarize(records: list[dict[str, Any]], trial_counts: list[int], rules: list[str]) -> dict[str, Any]:
    cells, baseline, table = [], [], []
    for trials in trial_counts:
        for kind in ("plausible", "poor"):
            group = [r for r in records if r["trials"] == trials and r["incumbent"] == kind]
            if not group:
                continue
            changed = [r for r in group if not r["same_as_incumbent"]]
            baseline.append({"trials": trials, "incumbent": kind, "studies": len(group),
                             "candidate_is_incumbent": len(group) - len(changed),
                             "candidates_worse": sum(r["forward_change"] > 0 for r in group),
                             "mean_forward_change": mean([r["forward_change"] for r in group]),
                             "median_configs": statistics.median(r["configs"] for r in group),
                             "median_decision_seconds": statistics.median(r["decision_seconds"] for r in group)})
            planted = [r for r in group if kind == "poor" and r["planted_change"] < 0]
            for name in rules:
                commits = [r for r in group if verdict(r, name)]
                cell = {"trials": trials, "incumbent": kind, "rule": name, "studies": len(group),
                        "commits": len(commits), "commits_worse": sum(r["forward_change"] > 0 for r in commits),
                        "share_worse": share(sum(r["forward_change"] > 0 for r in commits), len(commits)),
                        "mean_forward_change_of_commits": mean([r["forward_change"] for r in commits]),
                        "mean_forward_change_per_study": mean([r["forward_change"] if verdict(r, name) else 0.0
                                                               for r in group])}
                if kind == "poor":
                    cell["planted_better_on_future"] = len(planted)
                    cell["committed_where_planted_better"] = sum(verdict(r, name) for r in planted)
                cells.append(cell)
        for name in rules:
            by_kind = {c["incumbent"]: c for c in cells if c["trials"] == trials and c["rule"] == name}
            text = {}
            for kind, c in by_kind.items():
                change = c["mean_forward_change_of_commits"]
                text[kind] = f"{c['commits']} / {c['commits_worse']}" + ("" if change is None else f", {change:+.2%}")
            table.append({"trials": trials, "rule": name, "studies": by_kind.get("plausible", {}).get("studies"),
                          "plausible": text.get("plausible"), "poor": text.get("poor"),
                          "poor_planted_committed": None if "poor" not in by_kind else
                          f"{by_kind['poor']['committed_where_planted_better']} of "
                          f"{by_kind['poor']['planted_better_on_future']}"})
    return {"table": table, "cells": cells, "no_rule_baseline": baseline}


def goals(cells: list[dict[str, Any]], trial_counts: list[int]) -> dict[str, Any]:
    """The issue's goal for the default rule at each trial count."""
    out = {}
    for trials in trial_counts:
        by_kind = {c["incumbent"]: c for c in cells if c["trials"] == trials and c["rule"] == DEFAULT_RULE}
        plausible, poor = by_kind.get("plausible"), by_kind.get("poor")
        goal: dict[str, Any] = {}
        if plausible:
            goal["at_most_1_in_4_worse"] = plausible["share_worse"] is None or plausible["share_worse"] <= 0.25
            change = plausible["mean_forward_change_of_commits"]
            goal["commits_better_on_average"] = None if change is None else change < 0
        if poor and poor["planted_better_on_future"]:
            goal["at_least_2_in_3_real_improvements_commit"] = (
                poor["committed_where_planted_better"] >= 2 / 3 * poor["planted_better_on_future"])
        out[str(trials)] = goal
    return out


def cut_points(total_bars: int, history: int, step: int, count: int) -> list[int]:
    """Up to `count` cuts (bar numbers) spread evenly over those that leave `history` bars before and 250 after."""
    possible = list(range(history, total_bars - FUTURE + 1, step))
    if len(possible) <= count:
        return possible
    return [possible[round(i * (len(possible) - 1) / (count - 1))] for i in range(count)] if count > 1 else possible[:1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", choices=("real", "generated"), default="real")
    parser.add_argument("--symbols", type=int, default=4, help="generated symbols (with --series generated)")
    parser.add_argument("--cuts", type=int, default=8, help="cut dates per series, at most")
    parser.add_argument("--trials", type=int, nargs="+", default=[30, 100], help="trial counts, one study each")
    parser.add_argument("--history", type=int, default=750, help="bars before each cut that its study sees")
    parser.add_argument("--step", type=int, default=250, help="bars between cut dates, at least")
    parser.add_argument("--rows", type=int, default=2250, help="bars of each generated series")
    parser.add_argument("--forward-runs", type=int, default=16)
    parser.add_argument("--poor", choices=sorted(POOR), default="drift", help="the poor incumbent")
    parser.add_argument("--incumbents", nargs="+", choices=("plausible", "poor"), default=["plausible", "poor"])
    parser.add_argument("--bounds", type=int, nargs="*", default=[10, 30], help="M of the 'spa best M' rows")
    parser.add_argument("--seed", type=int, default=0, help="data seed (generated series)")
    parser.add_argument("--jobs", type=int, default=1, help="processes, one (series, cut) each")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per process (1: on shared cores more only adds contention)")
    parser.add_argument("--details", action="store_true", help="also print every decision's record")
    parser.add_argument("--save", type=Path, help="append each decision's record to this JSON-lines file as it comes")
    parser.add_argument("--load", type=Path, help="summarize the records saved in this file instead of running")
    parser.add_argument("--matrices", type=Path, help="save each decision's tested errors here (.npz)")
    parser.add_argument("--quick", action="store_true", help="1 cut per series, trials 10 and 20")
    args = parser.parse_args()
    if args.quick:
        args.cuts, args.trials = 1, [10, 20]
    args.trials = sorted(args.trials)
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="bench_decisions_", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    if args.series == "real":
        symbols = list(REAL)
    else:
        symbols = [f"{'RGM' if i % 2 == 0 else 'SYN'}{i // 2 + 1}" for i in range(args.symbols)]
    units = []
    for symbol in symbols:
        frame, _ = user_file(symbol, args.rows, args.seed)
        for cut in cut_points(len(bar_rows(frame)), args.history, args.step, args.cuts):
            units.append({"symbol": symbol, "cut": cut, "root": str(root), "rows": args.rows, "seed": args.seed,
                          "history": args.history, "trials": args.trials, "forward_runs": args.forward_runs,
                          "poor": args.poor, "incumbents": args.incumbents, "threads": args.threads,
                          "bounds": args.bounds, "matrices": args.matrices and str(args.matrices)})
    log(f"bench_decisions: {len(units)} (series, cut) x {args.incumbents}, one study each decided at {args.trials} "
        f"trials, in {root}")
    if args.matrices:
        args.matrices.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []

    def keep(found: list[dict[str, Any]]) -> None:
        records.extend(found)
        if args.save:
            with open(args.save, "a") as saved:
                saved.writelines(json.dumps(r) + "\n" for r in found)

    try:
        if args.load:
            records = [json.loads(line) for line in args.load.read_text().splitlines() if line.strip()]
        elif args.jobs > 1:
            with ProcessPoolExecutor(args.jobs) as pool:
                for future in as_completed([pool.submit(unit, u) for u in units]):
                    keep(future.result())
        else:
            for u in units:
                keep(unit(u))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rules = [*RULES, *(f"{rule} best {m}" for rule in ("spa>=0.95", "spa-any>=0.95") for m in args.bounds)]
    summary = summarize(records, args.trials, rules)
    result = {
        "benchmark": "commit decisions scored on the 250 bars after them (fhs studies through the library)",
        "setup": {
            "series": args.series, "symbols": symbols, "histories": len(units),
            "cuts": {s: [u["cut"] for u in units if u["symbol"] == s] for s in symbols},
            "history_bars": args.history, "future_bars": FUTURE, "trials": args.trials,
            "forward_runs": args.forward_runs,
            "forward": "candidate vs incumbent on the future bars, common random numbers; change = candidate MAE / "
                       "incumbent MAE - 1",
            "incumbents": {"plausible": PLAUSIBLE, "poor": POOR[args.poor]}, "planted_better": {"poor": PLAUSIBLE},
            "rules": "post hoc on each decision's recorded evidence with orchestrator.decisions.commit.CommitRule.passes; the "
                     "studies decided with commit_rule='spa' (its verdict asserted equal to the library's in every "
                     "decision); 'spa>=0.95 best M': the SPA test over the best M configs by search value only",
            "study_settings": "Settings defaults (TPE, 3 eval runs, 3 confirm runs, 250 validation and 60 test "
                              "windows, seed 0) with trials, commit_rule='spa', transfer off; one SQLite file per "
                              "study, one best dir per trial count",
            "jobs": args.jobs,
        },
        "seconds": {"total": round(time.perf_counter() - started, 1),
                    "studies_summed": round(float(np.sum([r["seconds"] for r in records])), 1),
                    "per_study_and_count": round(float(np.mean([r["seconds"] for r in records])), 2)},
        "table": summary["table"],
        "cells": summary["cells"],
        "no_rule_baseline": summary["no_rule_baseline"],
        f"goal_{DEFAULT_RULE}": goals(summary["cells"], args.trials),
    }
    if args.details:
        result["decisions"] = records
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
