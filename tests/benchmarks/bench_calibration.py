"""What the spread is worth on real series: per family, held-out MAE beside CRPS and 80% / 90% interval coverage (with
binomial standard errors), and naive's, scored exactly as `orchestrator leaderboard` scores them; and what the
probabilistic scores add to the leaderboard's time.

Run from the repository root: PYTHONPATH=. python tests/benchmarks/bench_calibration.py [--series SP500,NASDAQ,WTI]
[--families fhs,fhs_short,toto,toto2,kronos] [--windows 250] [--runs 16] [--quick]
Prints one JSON object on stdout (progress on stderr); asserts nothing about time.

Series: daily bars that ship with the `arch` package (offline), as bench_decisions.py reads them: the S&P 500 and
NASDAQ Composite 1999-2018 (Yahoo OHLCV) and WTI crude oil 1986-2019 (FRED closes; holidays dropped, so Kronos, which
needs OHLCV, skips it). Held-out: the last `--windows` bars; no config here was tuned on any bar.
Families (one fixed config each, chosen before looking):
  fhs        context 256, EWMA half-life 20, no drift, 512 samples, median: a plausible filtered historical
             simulation (the project's own model, which reads its spread off the series);
  fhs_short  the same with a 32-bar context and half-life 2: a jumpy volatility estimate, about the same point
             forecast (the median of near-symmetric draws): what CRPS and coverage see that MAE does not;
  toto, toto2, kronos: the tiny real-architecture models the test suite builds (random weights, built with the
             packages' own classes as bench_toto.py / bench_toto2.py / bench_kronos.py do): their numbers show an
             untrained network's calibration, not the published models'.
Scoring (the leaderboard's own code path): `Evaluator.evaluate` for MAE (`--runs` runs; one for Toto 2.0) and
`Evaluator.predict` + `probabilistic.prediction_scores` for CRPS (fair, of the draws pooled over the runs; Toto 2.0:
the quantile approximation over its nine levels, marked approximate) and coverage; naive: `probabilistic.naive_scores`.
For sampling families, `crps_quantile_approx` is the nine-level approximation (0.1 ... 0.9) of the same pooled draws:
how far the approximation Toto 2.0 is scored with sits from the full CRPS. Seconds: the MAE scoring (what the
leaderboard did before) and the probabilistic scoring it now adds, on the same warm encode.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from orchestrator.data import Windows, load_series  # noqa: E402
from orchestrator.models.base import ModelOptions, create  # noqa: E402
from orchestrator.scoring.evaluation import Evaluator, naive_errors  # noqa: E402
from orchestrator.scoring.probabilistic import (  # noqa: E402
    SCORED_LEVELS, crps_quantiles, naive_scores, prediction_scores,
)

SEED = 0
FHS = {"context_length": 256, "ewma_halflife": 20.0, "drift": False, "num_samples": 512, "aggregate": "median"}
CONFIGS = {
    "fhs": ("fhs", FHS),
    "fhs_short": ("fhs", {**FHS, "context_length": 32, "ewma_halflife": 2.0}),
    "toto": ("toto", {"context_length": 256, "num_samples": 256, "aggregate": "median"}),
    "toto2": ("toto2", {"context_length": 256, "aggregate": "median"}),
    "kronos": ("kronos", {"max_context": 256, "clip": 2.0, "temperature": 1.0, "filter": "top_p", "top_p": 0.9,
                          "sample_count": 32, "aggregate": "median"}),
}
NINE = tuple(round(0.1 * k, 1) for k in range(1, 10))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_series(directory: Path, symbol: str) -> bool:
    """`<directory>/<symbol>.csv` from arch's data sets; whether it has OHLCV (Kronos needs them)."""
    import arch.data.nasdaq
    import arch.data.sp500
    import arch.data.wti

    directory.mkdir(parents=True, exist_ok=True)
    if symbol == "WTI":
        frame = arch.data.wti.load().dropna()
        pd.DataFrame({"timestamp": frame.index.strftime("%Y-%m-%d"), "close": frame["DCOILWTICO"]}).to_csv(
            directory / f"{symbol}.csv", index=False)
        return False
    frame = (arch.data.sp500 if symbol == "SP500" else arch.data.nasdaq).load()
    frame.reset_index().assign(Date=lambda f: f["Date"].dt.strftime("%Y-%m-%d")).to_csv(
        directory / f"{symbol}.csv", index=False)
    return True


def options(model: str, root: Path) -> ModelOptions:
    if model == "toto":
        from bench_toto import ARCHS, write_random_checkpoint

        (root / "toto").mkdir()
        write_random_checkpoint(root / "toto", ARCHS["tiny"])
        return ModelOptions(device="cpu", weights=str(root / "toto"))
    if model == "toto2":
        from bench_toto2 import ARCHS, write_random_checkpoint

        write_random_checkpoint(root / "toto2", ARCHS["tiny"])
        return ModelOptions(device="cpu", weights=str(root / "toto2"))
    if model == "kronos":
        from bench_kronos import save_random

        weights, tokenizer = save_random("tiny", root / "kronos")
        return ModelOptions(device="cpu", weights=weights, tokenizer=tokenizer)
    return ModelOptions(device="cpu")


def spread(scores: dict[str, Any]) -> dict[str, Any]:
    """CRPS and coverage, rounded for reading."""
    coverage = {level: None if c is None else {"rate": round(c["rate"], 3), "se": round(c["se"], 3)}
                for level, c in scores["coverage"].items()}
    return {"crps": round(scores["crps"], 6), "crps_approximate": scores["crps_approximate"], "coverage": coverage}


def measure(family: str, forecaster, series, ends: np.ndarray, runs: int) -> dict[str, Any]:
    _, params = CONFIGS[family]
    evaluator = Evaluator(forecaster, series, Windows(validation=ends, test=ends), SEED)
    start = time.perf_counter()
    evaluator.encode(params, "validation")  # the network once (both scorings below reuse it)
    encode = time.perf_counter() - start
    start = time.perf_counter()
    errors = evaluator.evaluate(params, range(runs), "validation").window_errors
    mae_seconds = time.perf_counter() - start
    start = time.perf_counter()
    levels = () if forecaster.stochastic else SCORED_LEVELS  # as the leaderboard asks
    prediction = evaluator.predict(params, range(runs), "validation", levels)
    previous, actual = series.close[ends - 1], series.close[ends]
    scores = prediction_scores(prediction, previous, actual)
    probabilistic_seconds = time.perf_counter() - start
    row = {"mae": round(float(errors.mean()), 6), **spread(scores.to_dict()),
           "runs": len(evaluator.runs(range(runs))),
           "seconds": {"encode": round(encode, 3), "mae": round(mae_seconds, 3),
                       "probabilistic_added": round(probabilistic_seconds, 3)}}
    if prediction.draws is not None:
        returns = prediction.draws / previous[:, None] - 1
        nine = np.quantile(returns, NINE, axis=1).T
        row["crps_quantile_approx"] = round(float(crps_quantiles(actual / previous - 1, nine, NINE).mean()), 6)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", default="SP500,NASDAQ,WTI")
    parser.add_argument("--families", default=",".join(CONFIGS))
    parser.add_argument("--windows", type=int, default=250)
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="60 windows, 4 runs, SP500 only")
    args = parser.parse_args()
    if args.quick:
        args.windows, args.runs, args.series = 60, 4, "SP500"
    torch.set_num_threads(1)
    results: dict[str, Any] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        forecasters = {}
        for symbol in args.series.split(","):
            ohlcv = write_series(root / "data", symbol)
            results[symbol] = {}
            for family in args.families.split(","):
                model, _ = CONFIGS[family]
                if model == "kronos" and not ohlcv:
                    results[symbol][family] = "skipped: Kronos needs OHLCV bars"
                    continue
                if model not in forecasters:
                    forecasters[model] = create(model, options(model, root))
                forecaster = forecasters[model]
                series = load_series(root / "data", symbol, forecaster.required_columns,
                                     forecaster.optional_columns)
                ends = np.arange(series.rows - args.windows, series.rows)
                log(f"{symbol} {family}: {len(ends)} windows {series.frame['timestamp'].iloc[ends[0]].date()} .. "
                    f"{series.frame['timestamp'].iloc[ends[-1]].date()}")
                results[symbol][family] = measure(family, forecaster, series, ends, args.runs)
            naive = naive_scores(series.close, ends)
            results[symbol]["naive"] = {"mae": round(float(naive_errors(series, ends).mean()), 6),
                                        **spread(naive.to_dict())}
    print(json.dumps({
        "benchmark": "held-out MAE, CRPS and 80%/90% coverage per family, scored as the leaderboard scores",
        "windows": args.windows, "runs": args.runs, "seed": SEED, "configs": {f: CONFIGS[f][1] for f in CONFIGS},
        "device": "cpu", "torch_threads": 1, "seconds": round(time.perf_counter() - started, 1), "series": results,
    }, indent=2))


if __name__ == "__main__":
    main()
