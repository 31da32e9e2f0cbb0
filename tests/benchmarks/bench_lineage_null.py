"""Does warm-starting each night from last night's best configs let noise through the SPA test? Commit rates of
nightly lineages where no config is better than another, night by night, for ways of counting the lineage's configs.

Run from the repository root: PYTHONPATH=. python tests/benchmarks/bench_lineage_null.py [--seeds 1000] [--nights 10]
[--counting tonight previous all] [--jobs 1] [--calibrate] [--real 0 --trials 20]
Prints one JSON object on stdout (progress on stderr); asserts nothing about rates.

The simulation (per-window errors, like the null simulation of tests/test_spa.py, carried over nights)
- One seed = one lineage of `--nights` nightly studies of one (model, symbol). The series has
  250 + 5 x (nights - 1) bars: actual returns are Student-t (5 degrees of freedom) shocks with GARCH(1,1) volatility.
  Night n's validation windows are bars 5(n-1) .. 5(n-1)+249: the file grows by `--step` (5) bars a night, so two
  consecutive nights share 245 of their 250 windows.
- Every config (the incumbent included) forecasts the return as 0.003 x volatility x (0.5 shared + sqrt(0.75)
  (sqrt(1 - q) own + sqrt(q) run)): `shared` is one draw per bar common to every config (configs resemble each
  other), `own` one draw per (config, bar) that stays the same every night (a config's forecast of a bar does not
  change when later bars arrive), `run` one draw per (config, bar, run, night) (the sampling noise of run r; the
  windows move, so the draws a bar gets differ each night). All forecasts have the same distribution: no config is
  better than another or than the incumbent. A per-window error is |actual - forecast| averaged over the runs.
  q (`--run-share`, 0.1) is chosen so that the correlation between two configs' per-window error differences on the
  search runs and on the confirm runs matches the one measured on random configs of the fhs space (0.95-0.96,
  `--calibrate`); `--run-share 0.35` gives 0.83: more sampling noise, less of the selection carried over.
- Each night, as the product does: the study tries the incumbent (trial 0), the archived study's 5 best distinct
  configs other than the incumbent (from night 2) and new configs, `--configs` (45) distinct non-incumbent configs in
  all (100-trial fhs studies have 35-51); search value = MAE on 3 eval runs; the candidate is the best search value;
  candidate, incumbent and the SPA set are scored on 3 fresh confirm runs; commit when the candidate's confirm MAE is
  lower and the SPA p-value is at most 0.05 (the default rule, spa 0.95). A commit makes the candidate tomorrow's
  incumbent.
- The SPA test is the library's (`orchestrator.scoring.evidence.spa_evidence`: the same block length, recentring,
  studentization, bootstrap indices from the study seed 0 and 1000 replications), computed here with the bootstrap
  counts cached per block length and Politis and White's block length vectorised over configs; the first decisions
  are checked against the library's function (`checked_against_library`).
- Counting (`--counting`), each on the same draws: `tonight` the study's own configs (the rule, which this
  benchmark found no reason to change); `previous` also every distinct config of last night's archive; `all` also
  every distinct config of every earlier night of the lineage whose windows overlap tonight's; the extra configs are
  rescored on tonight's confirm runs.
  Each counting runs its own lineage (its commits change tomorrow's incumbent).

Reported per counting: per night, commits / seeds with a 95% Clopper-Pearson interval and the median number of
configs the SPA test counted; the commit rate over nights 2..N averaged within each seed, with a 95% interval
across seeds (normal approximation); the issue's rule (the later nights' rate above night 1's interval or above 5%);
and the expected commits of noise per night for 24 symbols x 2 models (48 studies).

`--real K` adds a small real check: K lineages of `--nights` nights each through the CLI (`python -m orchestrator
optimize`), fhs on a planted null (see `real_check`), counting commits.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.scoring.evidence import SPA_REPS, spa_evidence, stationary_bootstrap_variance

WINDOWS, CARRIED, CONFIDENCE, STUDY_SEED = 250, 5, 0.95, 0
COUNTINGS = ("tonight", "previous", "all")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def block_lengths(x: np.ndarray) -> np.ndarray:
    """Politis and White's stationary-bootstrap block length of each column of x, as arch's
    `optimal_block_length(x)["stationary"]` computes it column by column (here all columns at once)."""
    n, k = x.shape
    eps = x - x.mean(axis=0)
    b_max = np.ceil(min(3 * np.sqrt(n), n / 3))
    kn = max(5, int(np.log10(n)))
    m_max = int(np.ceil(np.sqrt(n))) + kn
    cv = 2 * np.sqrt(np.log10(n) / n)
    acv = np.empty((m_max + 1, k))
    inside = np.empty((m_max + 1, k), dtype=bool)
    for i in range(m_max + 1):
        v1 = np.einsum("ij,ij->j", eps[i + 1:], eps[i + 1:])
        v2 = np.einsum("ij,ij->j", eps[: -(i + 1)], eps[: -(i + 1)])
        cross = np.einsum("ij,ij->j", eps[i:], eps[: n - i])
        acv[i] = cross / n
        inside[i] = np.abs(cross) / np.sqrt(v1 * v2) < cv
    # the first i >= kn whose kn autocorrelations before it are all inside the band gives opt_m = i - kn
    runs = np.stack([inside[i - kn: i].all(axis=0) for i in range(kn, m_max + 1)])  # [m_max + 1 - kn, k]
    found = runs.any(axis=0)
    m = np.where(found, 2 * np.maximum(np.argmax(runs, axis=0), 1), m_max)
    m = np.minimum(m, m_max)
    lags = np.arange(1, m_max + 1)[:, None]
    ratio = lags / m
    lam = np.where(lags <= m, np.where(ratio <= 0.5, 1.0, 2 * (1 - ratio)), 0.0)
    g = (2 * lam * lags * acv[1:]).sum(axis=0)
    lr = acv[0] + (2 * lam * acv[1:]).sum(axis=0)
    b = ((2 * g**2) / (2 * lr**2)) ** (1 / 3) * n ** (1 / 3)
    return np.minimum(b, b_max)


class Spa:
    """The library's SPA p-value of column 0 with the bootstrap counts of seed `STUDY_SEED` cached per block."""

    def __init__(self) -> None:
        self.counts: dict[tuple[int, int], np.ndarray] = {}

    def _counts(self, n: int, block: int) -> np.ndarray:
        if (n, block) not in self.counts:
            from arch.bootstrap import StationaryBootstrap

            bootstrap = StationaryBootstrap(block, np.zeros(n), seed=STUDY_SEED)
            rows = np.stack([bootstrap.update_indices() for _ in range(SPA_REPS)])
            counts = np.bincount((rows + n * np.arange(SPA_REPS)[:, None]).ravel(), minlength=SPA_REPS * n)
            self.counts[(n, block)] = counts.reshape(SPA_REPS, n).astype(float)
        return self.counts[(n, block)]

    def p_value(self, incumbent: np.ndarray, configs: np.ndarray) -> float:
        d = incumbent[:, None] - configs
        n = len(d)
        keep = np.ptp(d, axis=0) > 0
        if not keep[0]:
            return 0.5 if d[0, 0] == 0 else float(d[0, 0] < 0)
        d = d[:, keep]
        block = max(1, round(float(np.median(block_lengths(d)))))
        omega = np.sqrt(np.maximum(stationary_bootstrap_variance(d, block), np.finfo(float).tiny))
        mean = d.mean(axis=0)
        statistics = math.sqrt(n) * mean / omega
        if statistics.max() <= 0 or statistics[0] <= 0:
            return 1.0
        recentre = np.where(mean >= -omega * math.sqrt(2 * math.log(math.log(n)) / n), mean, 0.0)
        simulated = (math.sqrt(n) * (self._counts(n, block) @ d / n - recentre) / omega).max(axis=1)
        return float(np.mean(simulated > statistics[0]))


class Lineage:
    """One seed's series, configs and run draws; `errors(night, configs)` gives (search, confirm) per-window errors."""

    def __init__(self, seed: int, nights: int, step: int, configs: int, run_share: float) -> None:
        rng = np.random.default_rng([seed, 30])
        self.seed, self.step, self.configs, self.q = seed, step, configs, run_share
        bars = WINDOWS + step * (nights - 1)
        shocks = rng.standard_t(5, bars) / math.sqrt(5 / 3)
        variance, volatility = 1.0, np.empty(bars)
        for t in range(bars):
            variance = 0.05 + 0.1 * (shocks[t - 1] ** 2 if t else 1.0) + 0.85 * variance
            volatility[t] = math.sqrt(variance)
        self.actual = 0.01 * volatility * shocks
        self.scale = 0.003 * volatility
        self.shared = 0.5 * rng.standard_normal(bars)
        # config 0: the first incumbent; night 1 brings `configs` new ones, each later night `configs - 5`
        self.pool = 1 + configs + (nights - 1) * (configs - CARRIED)
        self.own = rng.standard_normal((self.pool, bars))
        self.run_seed = rng.integers(2**32)
        self.cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def new(self, night: int) -> list[int]:
        """The new configs that night's search draws (night 1: all of them)."""
        if night == 1:
            return list(range(1, 1 + self.configs))
        start = 1 + self.configs + (night - 2) * (self.configs - CARRIED)
        return list(range(start, start + self.configs - CARRIED))

    def errors(self, night: int) -> tuple[np.ndarray, np.ndarray]:
        """[configs, windows] errors of every config drawn by that night, on its windows: eval runs 0-2, confirm
        runs 3-5."""
        if night not in self.cache:
            existing = self.new(night)[-1] + 1
            bars = slice(self.step * (night - 1), self.step * (night - 1) + WINDOWS)
            rng = np.random.default_rng([self.seed, 30, night, int(self.run_seed)])
            run = rng.standard_normal((existing, WINDOWS, 6))
            forecast = self.scale[bars, None] * (
                self.shared[bars, None] + math.sqrt(0.75) * (
                    math.sqrt(1 - self.q) * self.own[:existing, bars, None] + math.sqrt(self.q) * run))
            errors = np.abs(self.actual[bars, None] - forecast)
            self.cache[night] = (errors[..., :3].mean(axis=2), errors[..., 3:].mean(axis=2))
        return self.cache[night]


def run_lineage(lineage: Lineage, nights: int, counting: str, spa: Spa, checks: list | None = None) -> list[dict]:
    """The nights of one lineage under one counting: per night, committed, configs counted, nights counted."""
    incumbent, carried, archives, out = 0, [], [], []
    for night in range(1, nights + 1):
        tonight = [incumbent] + carried + lineage.new(night)
        search, confirm = lineage.errors(night)
        values = search[tonight].mean(axis=1)
        ranked = [tonight[i] for i in np.argsort(values, kind="stable")]
        candidate = ranked[0]
        counted, nights_counted, committed = 0, 1, False
        if candidate != incumbent and confirm[incumbent].mean() > confirm[candidate].mean():
            tested = [candidate] + [c for c in ranked[1:] if c != incumbent]
            back = {"tonight": 0, "previous": 1, "all": len(archives)}[counting]
            earlier = [a for a in archives[len(archives) - back:] if back]
            for archive in earlier:
                tested += [c for c in archive if c != incumbent and c not in tested]
            nights_counted += len(earlier)
            counted = len(tested)
            p = spa.p_value(confirm[incumbent], confirm[tested].T)
            committed = 1.0 - p >= CONFIDENCE
            if checks is not None and len(checks) < 20:
                library = spa_evidence(confirm[incumbent], confirm[tested].T, 0, seed=STUDY_SEED).p_value
                checks.append(library == p)
        out.append({"night": night, "committed": committed, "configs": counted, "nights": nights_counted})
        archives.append(ranked)
        incumbent = candidate if committed else incumbent
        carried = [c for c in ranked if c != incumbent][:CARRIED]
    return out


def chunk(args: dict[str, Any]) -> dict[str, Any]:
    """Every counting's lineages for a range of seeds."""
    spa, checks = Spa(), []
    results = {counting: [] for counting in args["counting"]}
    for seed in range(args["start"], args["stop"]):
        lineage = Lineage(seed, args["nights"], args["step"], args["configs"], args["run_share"])
        for counting in args["counting"]:
            results[counting].append(run_lineage(lineage, args["nights"], counting, spa,
                                                 checks if seed == args["start"] else None))
        if (seed - args["start"]) % 50 == 49:
            log(f"seeds {args['start']}..{seed}")
    return {"results": results, "checks": checks}


def calibration(run_share: float, seeds: int = 20) -> float:
    """Median over config pairs of corr(per-window error difference on the search runs, on the confirm runs)."""
    values = []
    for seed in range(seeds):
        search, confirm = Lineage(seed, 1, 5, 10, run_share).errors(1)
        for a in range(1, 11):
            for b in range(a + 1, 11):
                values.append(np.corrcoef(search[a] - search[b], confirm[a] - confirm[b])[0, 1])
    return round(float(np.median(values)), 3)


def measured_fhs(pairs_of: int = 12) -> dict[str, float]:
    """The same correlation for real fhs configs: `pairs_of` random configs of the fhs space, scored by the library on
    250 validation windows of the S&P 500 and NASDAQ closes that ship with `arch` (their last 900 bars but 300), eval
    runs 0-2 against confirm runs 3-5; the median over pairs, per series."""
    import arch.data.nasdaq
    import arch.data.sp500
    import optuna

    from orchestrator.data import load_series, make_windows
    from orchestrator.models.base import ModelOptions, create
    from orchestrator.scoring.evaluation import Evaluator
    from orchestrator.search.space import load_space
    from orchestrator.settings import space_path

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(space_path("fhs"), None, ())
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    configs = [space.suggest(study.ask()) for _ in range(pairs_of)]
    out = {}
    with tempfile.TemporaryDirectory() as directory:
        for name, module in (("SP500", arch.data.sp500), ("NASDAQ", arch.data.nasdaq)):
            frame = module.load().reset_index()
            frame["Date"] = frame["Date"].dt.strftime("%Y-%m-%d")
            frame.iloc[-1200:-300].to_csv(Path(directory) / f"{name}.csv", index=False)
            series = load_series(Path(directory), name)
            evaluator = Evaluator(create("fhs", ModelOptions()), series, make_windows(series, WINDOWS, 60, 32), 0)
            search = [evaluator.evaluate(c, range(0, 3)).window_errors for c in configs]
            confirm = [evaluator.evaluate(c, range(3, 6)).window_errors for c in configs]
            out[name] = round(float(np.median([np.corrcoef(search[a] - search[b], confirm[a] - confirm[b])[0, 1]
                                               for a in range(pairs_of) for b in range(a + 1, pairs_of)])), 3)
    return out


def interval(commits: int, seeds: int) -> list[float]:
    from scipy.stats import binomtest

    ci = binomtest(commits, seeds).proportion_ci(0.95, method="exact")
    return [round(ci.low, 4), round(ci.high, 4)]


def summarize(lineages: list[list[dict]], nights: int) -> dict[str, Any]:
    seeds = len(lineages)
    per_night = []
    for n in range(nights):
        commits = sum(lineage[n]["committed"] for lineage in lineages)
        counted = [lineage[n]["configs"] for lineage in lineages if lineage[n]["configs"]]
        per_night.append({"night": n + 1, "commits": commits, "rate": round(commits / seeds, 4),
                          "ci95": interval(commits, seeds),
                          "expected_noise_commits_48": round(48 * commits / seeds, 2),
                          "median_configs_counted": float(np.median(counted)) if counted else None,
                          "nights_counted": max(lineage[n]["nights"] for lineage in lineages)})
    later = np.array([np.mean([night["committed"] for night in lineage[1:]]) for lineage in lineages])
    mean, se = float(later.mean()), float(later.std(ddof=1) / math.sqrt(seeds))
    first = per_night[0]
    above = mean - 1.96 * se > first["ci95"][1]
    return {
        "per_night": per_night,
        f"nights_2_{nights}": {"rate": round(mean, 4), "ci95": [round(mean - 1.96 * se, 4), round(mean + 1.96 * se, 4)],
                               "expected_noise_commits_48": round(48 * mean, 2)},
        "rule": {"above_night_1_interval": bool(above), "above_5_percent": bool(mean > 0.05),
                 "lineage_lets_noise_through": bool(above or mean > 0.05),
                 "back_within_night_1_interval_and_at_most_5_percent":
                     bool(first["ci95"][0] <= mean <= first["ci95"][1] and mean <= 0.05)},
    }


def table_row(counting: str, summary: dict[str, Any], nights: int) -> dict[str, Any]:
    """One line of the docs' table: night 1 and the later nights' rate with their intervals, noise commits per night
    for 48 studies, configs counted on the last night."""
    first, later, last = summary["per_night"][0], summary[f"nights_2_{nights}"], summary["per_night"][-1]
    return {"counting": counting,
            "night_1": f"{first['rate']:.1%} [{first['ci95'][0]:.1%}, {first['ci95'][1]:.1%}]",
            f"nights_2_{nights}": f"{later['rate']:.1%} [{later['ci95'][0]:.1%}, {later['ci95'][1]:.1%}]",
            "per_night": " ".join(f"{n['rate']:.1%}" for n in summary["per_night"]),
            "noise_commits_per_night_48":
                f"{first['expected_noise_commits_48']} / {later['expected_noise_commits_48']}",
            f"configs_counted_night_{nights}": last["median_configs_counted"],
            "lets_noise_through": summary["rule"]["lineage_lets_noise_through"]}


NULL_SPACE = """# the planted null: quantile 0.45 and 0.55 mirror each other, num_samples >= 1024 changes the noise only
[context_length]
type = "categorical"
choices = [256]
[ewma_halflife]
type = "categorical"
choices = [20.0]
[drift]
type = "categorical"
choices = [false]
[num_samples]
type = "int"
low = 1024
high = 2048
[aggregate]
type = "categorical"
choices = ["quantile_0.45", "quantile_0.55"]
"""
NULL_INCUMBENT = {"context_length": 256, "ewma_halflife": 20.0, "drift": False, "num_samples": 1500,
                  "aggregate": "quantile_0.45"}


def null_closes(seed: int, rows: int) -> np.ndarray:
    """Closes whose log returns are symmetric: GARCH(1,1) volatility (symmetric in the shocks) times Student-t
    shocks (5 degrees of freedom), no drift, about 1% a day."""
    rng = np.random.default_rng([seed, 31])
    shocks = rng.standard_t(5, rows) / math.sqrt(5 / 3)
    variance, returns = 1.0, np.empty(rows)
    for t in range(rows):
        variance = 0.05 + 0.1 * (shocks[t - 1] ** 2 if t else 1.0) + 0.85 * variance
        returns[t] = 0.01 * math.sqrt(variance) * shocks[t]
    return 100.0 * np.exp(np.cumsum(returns))


def real_check(lineages: int, nights: int, trials: int = 20, step: int = 5) -> dict[str, Any]:
    """`lineages` lineages of `nights` nights through the CLI on a planted null; counts commits.

    The null: fhs on closes with symmetric log returns (`null_closes`), in a space (`NULL_SPACE`) whose configs are
    the quantile 0.45 or 0.55 of 1024-2048 samples (context 256, half-life 20, no drift); the incumbent is one of
    them. Mirroring the series (every log return negated) turns each 0.45 forecast into the 0.55 one and back, and
    both series are equally likely, so the two quantiles have equal expected errors (up to the exp() of returns of
    about 1%, a relative difference near 1e-4); num_samples from 1024 up only changes a sample quantile's noise:
    the expected errors of 1024 and 2048 samples differ by about a twentieth of the standard error of their mean
    difference over 250 windows. Each night appends `step` bars to the file and runs
    `python -m orchestrator optimize` (defaults: 250 validation windows, spa 0.95; `trials` trials): the study rolls
    forward, warm-started with the archive's 5 best configs.
    """
    root = Path(tempfile.mkdtemp(prefix="bench_lineage_null_"))
    (root / "space.toml").write_text(NULL_SPACE)
    first = 256 + 310 + 40
    out: list[dict[str, Any]] = []
    for lineage in range(lineages):
        symbol, home = f"NULL{lineage}", root / f"lineage{lineage}"
        closes = null_closes(lineage, first + step * (nights - 1))
        (home / "best" / "fhs").mkdir(parents=True)
        (home / "data").mkdir()
        (home / "best" / "fhs" / f"{symbol}.json").write_text(
            json.dumps({"symbol": symbol, "model": "fhs", "params": NULL_INCUMBENT}))
        for night in range(1, nights + 1):
            rows = first + step * (night - 1)
            dates = np.datetime64("2020-01-01") + np.arange(rows)
            lines = ["timestamp,close"] + [f"{d},{c:.6f}" for d, c in zip(dates, closes[:rows])]
            (home / "data" / f"{symbol}.csv").write_text("\n".join(lines) + "\n")
            command = [sys.executable, "-m", "orchestrator", "optimize", "--model", "fhs", "--symbol", symbol,
                       "--space", str(root / "space.toml"), "--data-dir", str(home / "data"),
                       "--storage", f"sqlite:///{home / 'optuna.db'}", "--best-dir", str(home / "best"),
                       "--artifact-dir", str(home / "artifacts"), "--trials", str(trials)]
            done = subprocess.run(command, capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": os.getcwd()})
            if done.returncode != 0:
                raise RuntimeError(f"{symbol} night {night}: exit {done.returncode}: {done.stderr[-2000:]}")
        history = [json.loads(line) for line in (home / "best" / "history.jsonl").read_text().splitlines()]
        decisions = [e for e in history if e.get("kind", "decision") == "decision"]
        for night, entry in enumerate(decisions, 1):
            spa = (entry.get("evidence") or {}).get("spa") or {}
            out.append({"lineage": lineage, "night": night, "committed": entry["committed"],
                        "configs": spa.get("configs"), "nights": spa.get("nights"), "p_value": spa.get("p_value")})
        log(f"real check: lineage {lineage}: {sum(d['committed'] for d in out if d['lineage'] == lineage)} commits "
            f"in {nights} nights")
    commits = sum(d["committed"] for d in out)
    return {"lineages": lineages, "nights": nights, "trials": trials, "decisions": len(out), "commits": commits,
            "ci95": interval(commits, len(out)) if out else None,
            "commits_by_night": [sum(d["committed"] for d in out if d["night"] == n) for n in range(1, nights + 1)],
            "decisions_detail": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--nights", type=int, default=10)
    parser.add_argument("--step", type=int, default=5, help="new bars a night")
    parser.add_argument("--configs", type=int, default=45, help="distinct non-incumbent configs a study tries")
    parser.add_argument("--run-share", type=float, default=0.1, help="share of a forecast's own noise that is "
                        "sampling noise (fresh each run); the rest is the config's own, the same every night")
    parser.add_argument("--counting", nargs="+", choices=COUNTINGS, default=list(COUNTINGS))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--calibrate", action="store_true", help="also measure the correlation on real fhs configs")
    parser.add_argument("--real", type=int, default=0, help="lineages through the CLI on a planted null")
    parser.add_argument("--trials", type=int, default=20, help="trials a night in the real check")
    args = parser.parse_args()
    started = time.perf_counter()
    bounds = np.linspace(0, args.seeds, args.jobs + 1).round().astype(int)
    units = [{"start": int(a), "stop": int(b), "nights": args.nights, "step": args.step, "configs": args.configs,
              "run_share": args.run_share, "counting": args.counting} for a, b in zip(bounds, bounds[1:]) if b > a]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            parts = list(pool.map(chunk, units))
    else:
        parts = [chunk(u) for u in units]
    if not parts:  # --seeds 0: the real check alone
        print(json.dumps({"real_check": real_check(args.real, args.nights, args.trials)}, indent=2))
        return
    results = {c: [lineage for part in parts for lineage in part["results"][c]] for c in args.counting}
    checks = [ok for part in parts for ok in part["checks"]]
    out: dict[str, Any] = {
        "benchmark": "commit rate of nightly lineages where no config is better (per-window error simulation)",
        "setup": {"seeds": args.seeds, "nights": args.nights, "windows": WINDOWS, "new_bars_a_night": args.step,
                  "configs_a_night": args.configs, "carried": CARRIED, "rule": f"spa {CONFIDENCE}",
                  "run_share": args.run_share,
                  "calibration": {"simulated_corr_search_vs_confirm_differences": calibration(args.run_share),
                                  "measured_fhs": measured_fhs() if args.calibrate else "run with --calibrate"}},
        "checked_against_library": f"{sum(checks)} of {len(checks)} p-values equal",
        "countings": {c: summarize(results[c], args.nights) for c in args.counting},
    }
    out["table"] = [table_row(c, out["countings"][c], args.nights) for c in args.counting]
    if args.real:
        out["real_check"] = real_check(args.real, args.nights, args.trials)
    out["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
