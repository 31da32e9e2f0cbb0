"""GPU measurement of the Toto, Kronos and Toto 2.0 adapters at real sizes, with random weights; prints one JSON object
a line (Toto 2.0 at 22m and 313m: `toto2_part`).

Full-size Toto (151.3M) and Kronos-base (102.3M + Tokenizer-base 4.0M) are built with the packages' own classes and
saved to a temp dir. Per trial (validation windows x 3 runs, as in a study): seconds, encode-cache hit, compiles,
recompiles, compile seconds and peak GPU memory; the packages' own loops timed on a few windows and scaled to the
windows x 3 runs of a trial; compiled vs eager encode; Kronos sampling time vs sample_count; then, in fresh
processes: the Inductor cache warm, and a 100-trial Toto study through the CLI with its wall time and peak memory.
Part `launch`: `orchestrator launch` of 24 symbols x `--trials` (100) x 3 runs with full-size Toto through one warm
worker on one GPU (default windows, a cold Inductor cache), wall time including load and compile; then Kronos-base on
`--kronos-symbols` (4) symbols, whose time per study is extrapolated to 24 (said so in the output).
Part `forecast`: `orchestrator forecast --model toto` of 24 symbols with full-size Toto in one fresh process (after
a night of 2-trial studies that fills the Inductor cache): wall and CPU seconds, and in-process first and second
`orchestrator.forecast` calls (bench_forecast.py's measurement).

Run from the repository root on a CUDA machine: `python tests/benchmarks/bench_gpu.py [--out DIR]`. `--smoke` runs
tiny models on the CPU (checks the script in seconds). `tests/benchmarks/bench_gpu.sh` installs carried wheels first.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

from orchestrator.data import Contexts, load_series, make_windows, write_synthetic  # noqa: E402
from orchestrator.scoring.evaluation import EncodeCache, Evaluator  # noqa: E402
from orchestrator.models.base import ModelOptions  # noqa: E402

TOTO = dict(patch_size=64, stride=64, embed_dim=768, num_layers=12, num_heads=12, mlp_hidden_dim=3072, dropout=0.1,
            spacewise_every_n_layers=12, spacewise_first=False, use_memory_efficient_attention=True,
            scaler_cls="<class 'model.scaler.CausalPatchStdMeanScaler'>", stabilize_with_global=True,
            scale_factor_exponent=10.0, output_distribution_kwargs={"k_components": 24},
            output_distribution_classes=["<class 'model.distribution.MixtureOfStudentTsOutput'>"])
KRONOS = dict(s1_bits=10, s2_bits=10, n_layers=12, d_model=832, n_heads=16, ff_dim=2048, ffn_dropout_p=0.25,
              attn_dropout_p=0.0, resid_dropout_p=0.25, token_dropout_p=0.0, learn_te=True)
TOKENIZER = dict(d_in=6, d_model=256, n_heads=4, ff_dim=512, n_enc_layers=4, n_dec_layers=4, ffn_dropout_p=0.0,
                 attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=10, s2_bits=10, beta=0.05, gamma0=1.0, gamma=1.1,
                 zeta=0.05, group_size=4)
TOTO_SPACE = """
[context_length]
type = "categorical"
choices = [128, 256, 512]
[num_samples]
type = "int"
low = 64
high = 4096
log = true
[aggregate]
type = "categorical"
choices = ["mean", "median", "trimmed_mean_10", "quantile_0.45", "quantile_0.55"]
"""


def emit(**record) -> None:
    print(json.dumps(record), flush=True)


class Clock:
    def __init__(self, device: str) -> None:
        self.cuda = device == "cuda"

    def timed(self, f, *args, **kwargs):
        self.sync()
        start = time.perf_counter()
        result = f(*args, **kwargs)
        self.sync()
        return result, time.perf_counter() - start

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float | None:
        return round(torch.cuda.max_memory_allocated() / 2**30, 3) if self.cuda else None


def build(out: Path, smoke: bool) -> None:
    """Random checkpoints and a synthetic series under `out` (once)."""
    import safetensors.torch
    from kronos_finance._vendor.kronos_model import Kronos, KronosTokenizer
    from toto.model.toto import Toto

    toto, kronos, tokenizer = dict(TOTO), dict(KRONOS), dict(TOKENIZER)
    if smoke:
        toto.update(embed_dim=64, num_layers=2, num_heads=4, mlp_hidden_dim=128, spacewise_every_n_layers=2)
        kronos.update(n_layers=2, d_model=64, n_heads=4, ff_dim=128)
        tokenizer.update(d_model=32, ff_dim=64)
    torch.manual_seed(0)
    (out / "toto").mkdir(parents=True)
    model = Toto(**{**toto, "use_memory_efficient_attention": False})
    safetensors.torch.save_model(model, str(out / "toto" / "model.safetensors"))
    (out / "toto" / "config.json").write_text(json.dumps(toto))
    km, kt = Kronos(**kronos), KronosTokenizer(**tokenizer)
    emit(event="built", toto_params_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
         kronos_params_m=round(sum(p.numel() for p in km.parameters()) / 1e6, 2),
         tokenizer_params_m=round(sum(p.numel() for p in kt.parameters()) / 1e6, 2))
    km.save_pretrained(str(out / "kronos" / "model"))
    kt.save_pretrained(str(out / "kronos" / "tokenizer"))
    write_synthetic(out / "data", ["BTCUSD"], rows=1000)


def trials(clock: Clock, forecaster, series, windows, plan, model: str) -> Evaluator:
    evaluator = Evaluator(forecaster, series, windows, seed=0, cache=EncodeCache(8 << 30))
    for i, (split, params) in enumerate(plan):
        clock.reset_peak()
        result, seconds = clock.timed(evaluator.evaluate, params, range(3), split)
        info = forecaster.info()
        emit(event="trial", model=model, trial=i, split=split, windows=len(windows.of(split)),
             params={k: v for k, v in params.items() if k != "aggregate"}, seconds=round(seconds, 4),
             cache_hit=result.cache_hit, compiles=info.get("compiles"), recompiles=info.get("recompiles"),
             compile_seconds=info.get("compile_seconds"), peak_gib=clock.peak_gib())
    return evaluator


def encoded_mib(encoded: dict) -> float:
    return round(sum(t.nelement() * t.element_size() for t in encoded.values()) / 2**20, 1)


def toto_part(clock: Clock, out: Path, device: str, compiled: bool, series, frame, counts) -> None:
    from toto.data.util.dataset import MaskedTimeseries
    from toto.inference.forecaster import TotoForecaster as TotoPackage

    from orchestrator.models.toto import TotoForecaster

    forecaster, load = clock.timed(TotoForecaster, ModelOptions(device=device, weights=str(out / "toto"),
                                                                compile=compiled))
    emit(event="load", model="toto", seconds=round(load, 2))
    base = dict(context_length=512, num_samples=1024, aggregate="median")
    for count in counts:
        windows = make_windows(series, count, 20, 512)
        trials(clock, forecaster, series, windows, [
            ("validation", base), ("validation", {**base, "num_samples": 4096, "aggregate": "mean"}),
            ("test", base), ("validation", {**base, "context_length": 256}),
            ("validation", {**base, "num_samples": 64})], "toto")
    windows = make_windows(series, 30, 20, 512)
    contexts = Contexts.of(series, windows.validation)
    eager = TotoForecaster(ModelOptions(device=device, weights=str(out / "toto"), compile=False))
    for i in range(2):
        plain, seconds = clock.timed(eager.encode, contexts, {"context_length": 512})
        emit(event="eager_encode", model="toto", run=i, ms=round(seconds * 1e3, 2))
    fast, seconds = clock.timed(forecaster.encode, contexts, {"context_length": 512})
    emit(event="compiled_encode", model="toto", ms=round(seconds * 1e3, 2), max_rel_diff={
        k: float(((fast[k] - plain[k]).abs() / plain[k].abs().clamp_min(1e-6)).max()) for k in plain})
    package = TotoPackage(forecaster.backbone)
    close = torch.from_numpy(contexts.history("close", 512)).float().to(device)
    for per_batch in (128, 512):
        times = []
        for w in range(3):  # window 0 warms up
            x = close[w].reshape(1, 1, -1)
            inputs = MaskedTimeseries(
                series=x, padding_mask=torch.ones_like(x, dtype=torch.bool), id_mask=torch.zeros_like(x, dtype=torch.int),
                timestamp_seconds=torch.zeros_like(x, dtype=torch.int),
                time_interval_seconds=torch.full((1, 1), 86400, dtype=torch.int, device=device))
            clock.reset_peak()
            _, seconds = clock.timed(package.forecast, inputs, prediction_length=1, num_samples=1024,
                                     samples_per_batch=per_batch)
            times.append(seconds)
        emit(event="package_loop", model="toto", num_samples=1024, samples_per_batch=per_batch,
             seconds_per_window=round(float(np.mean(times[1:])), 4),
             seconds_per_trial_30x3=round(float(np.mean(times[1:])) * 90, 2), peak_gib=clock.peak_gib())


def kronos_part(clock: Clock, out: Path, device: str, compiled: bool, series, frame, counts) -> None:
    from kronos_finance._vendor.kronos_model import KronosPredictor

    from orchestrator.models.kronos import KronosForecaster

    options = dict(device=device, weights=str(out / "kronos" / "model"), tokenizer=str(out / "kronos" / "tokenizer"))
    forecaster, load = clock.timed(KronosForecaster, ModelOptions(**options, compile=compiled))
    emit(event="load", model="kronos", seconds=round(load, 2))
    base = dict(max_context=512, clip=2.0, temperature=0.7, filter="top_p", top_p=0.9, sample_count=64,
                aggregate="mean")
    for count in counts:
        windows = make_windows(series, count, 20, 512)
        evaluator = trials(clock, forecaster, series, windows, [
            ("validation", base),
            ("validation", {**base, "temperature": 1.0, "filter": "top_k", "top_k": 20, "sample_count": 320}),
            ("validation", {**base, "clip": 2.5}), ("validation", {**base, "temperature": 0.3}),
            ("test", base)], "kronos")
        encoded, _ = evaluator.encode(base, "validation")
        emit(event="encoded_mib", model="kronos", windows=count, mib=encoded_mib(encoded))
    contexts = Contexts.of(series, make_windows(series, counts[-1], 20, 512).validation)
    for n in (16, 96, 320, 1024)[: 1 if len(counts) == 1 else 4]:
        fresh = forecaster.encode(contexts, base)  # an empty memo: every drawn token is new
        _, cold = clock.timed(forecaster.sample, fresh, n, base, torch.Generator(device=device).manual_seed(0))
        _, warm = clock.timed(forecaster.sample, fresh, n, base, torch.Generator(device=device).manual_seed(0))
        emit(event="kronos_sample", windows=counts[-1], sample_count=n, cold_ms=round(cold * 1e3, 2),
             warm_ms=round(warm * 1e3, 2))
    eager = KronosForecaster(ModelOptions(**options, compile=False))
    small = Contexts.of(series, make_windows(series, 30, 20, 512).validation)
    for i in range(2):
        _, seconds = clock.timed(eager.encode, small, {"max_context": 512, "clip": 2.0})
        emit(event="eager_encode", model="kronos", run=i, ms=round(seconds * 1e3, 2))
    predictor = KronosPredictor(forecaster.model, forecaster.tokenizer, device=device, max_context=512, clip=2.0)
    columns = ["open", "high", "low", "close", "volume"]
    for sample_count in (64, 320):
        times = []
        for end in make_windows(series, 30, 20, 512).validation[:3]:  # the first warms up
            df = frame.iloc[end - 512:end].reset_index(drop=True)
            clock.reset_peak()
            _, seconds = clock.timed(predictor.predict, df[columns], df["timestamp"], frame["timestamp"].iloc[end:end + 1],
                                     pred_len=1, T=0.7, top_k=0, top_p=0.9, sample_count=sample_count, verbose=False)
            times.append(seconds)
        emit(event="package_loop", model="kronos", sample_count=sample_count,
             seconds_per_window=round(float(np.mean(times[1:])), 4),
             seconds_per_trial_30x3=round(float(np.mean(times[1:])) * 90, 2), peak_gib=clock.peak_gib())


def toto2_part(clock: Clock, out: Path, device: str, compiled: bool, series, counts, smoke: bool) -> None:
    """Toto 2.0 at 22m and 313m (random weights, the published architectures): load, per trial (one run: it does not
    sample) cold at a new context length and warm at a new point rule, compiles, peak memory; the package's forecast
    per window, scaled to a trial of 30 windows x 3 runs as the seed's loop would run it."""
    from bench_toto2 import ARCHS, package_trial, write_random_checkpoint  # this script's directory is on sys.path

    from orchestrator.models.toto2 import Toto2Forecaster

    for size in ("tiny",) if smoke else ("22m", "313m"):
        directory, model = out / f"toto2-{size}", f"toto2-{size}"
        if not directory.exists():
            emit(event="built", model=model, params_m=round(write_random_checkpoint(directory, ARCHS[size]) / 1e6, 2))
        forecaster, load = clock.timed(Toto2Forecaster, ModelOptions(device=device, weights=str(directory),
                                                                     compile=compiled))
        emit(event="load", model=model, seconds=round(load, 2))
        base = dict(context_length=512, aggregate="median")
        for count in counts:
            windows = make_windows(series, count, 20, 512)
            trials(clock, forecaster, series, windows, [
                ("validation", base), ("validation", {**base, "aggregate": "quantile_0.45"}), ("test", base),
                ("validation", {**base, "context_length": 1024}), ("validation", {**base, "aggregate": "mean"})],
                model)
        ends = make_windows(series, 30, 20, 512).validation[:3]
        package_trial(forecaster, series, ends[:1], 512, 1)  # warms up
        clock.reset_peak()
        _, seconds = clock.timed(package_trial, forecaster, series, ends, 512, 1)
        emit(event="package_loop", model=model, seconds_per_window=round(seconds / len(ends), 4),
             seconds_per_trial_30x3=round(seconds / len(ends) * 90, 2), peak_gib=clock.peak_gib())
        del forecaster
        if device == "cuda":
            torch.cuda.empty_cache()


def cli_study(out: Path, device: str, trials_: int, inductor: Path, label: str) -> None:
    """A Toto study through the CLI in a fresh process: wall time, trials, compiles and the process's peak memory."""
    work = Path(tempfile.mkdtemp(dir=out))
    (work / "space.toml").write_text(TOTO_SPACE)
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(inductor), "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, "-m", "orchestrator", "optimize", "--model", "toto", "--symbol", "BTCUSD",
               "--weights", str(out / "toto"), "--device", device, "--data-dir", str(out / "data"),
               "--storage", f"sqlite:///{work}/optuna.db", "--best-dir", str(work / "best"), "--space",
               str(work / "space.toml"), "--trials", str(trials_), "--no-transfer"]  # default windows: 250 and 60
    peak = [0]
    stop = threading.Event()

    def watch(pid: int) -> None:  # the process's GPU memory as the driver sees it (context and caches included)
        while not stop.is_set():
            used = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                                  capture_output=True, text=True).stdout
            for line in used.splitlines():
                found, mib = (part.strip() for part in line.split(","))
                if found == str(pid):
                    peak[0] = max(peak[0], int(mib))
            stop.wait(0.2)

    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watcher = threading.Thread(target=watch, args=(process.pid,), daemon=True)
    if device == "cuda":
        watcher.start()
    output, _ = process.communicate(timeout=400)
    seconds = time.perf_counter() - start
    stop.set()
    import optuna

    study = optuna.load_study(study_name="toto/BTCUSD", storage=f"sqlite:///{work}/optuna.db")
    states = [t.state.name for t in study.trials]
    emit(event="cli_study", label=label, exit_code=process.returncode, trials=len(states),
         complete=states.count("COMPLETE"), pruned=states.count("PRUNED"), failed=states.count("FAIL"),
         wall_seconds=round(seconds, 1), model_info=study.user_attrs.get("model_info"),
         peak_process_gpu_mib=peak[0] or None, tail=output.strip().splitlines()[-3:])


def launch_part(out: Path, device: str, model: str, symbols: int, trials_: int, limit: float) -> None:
    """`orchestrator launch` of `symbols` generated series through one worker: wall time, studies, compiles; killed
    after `limit` seconds (the studies decided by then are reported)."""
    import optuna

    work = Path(tempfile.mkdtemp(dir=out))
    names = [f"S{i:02d}" for i in range(symbols)]
    write_synthetic(work / "data", names, rows=1000)
    (work / "toto.toml").write_text(TOTO_SPACE)
    models = {"toto": ["--weights", str(out / "toto"), "--space", str(work / "toto.toml")],
              "kronos": ["--weights", str(out / "kronos" / "model"), "--tokenizer", str(out / "kronos" / "tokenizer")]}
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(work / "inductor"),
           "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, "-m", "orchestrator", "launch", "--models", model, "--symbols", ",".join(names),
               "--workers", "1", "--trials", str(trials_), "--eval-runs", "3", "--device", device, "--data-dir",
               str(work / "data"), "--no-transfer", "--save-summary", "summary.json", *models[model],
               *(["--val-windows", "30", "--test-windows", "20"] if device == "cpu" else [])]  # --smoke: seconds
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        output, _ = process.communicate()
    seconds = time.perf_counter() - start
    storage = f"sqlite:///{work}/studies/optuna.db"
    attrs = [s.user_attrs for s in (optuna.load_study(study_name=n.study_name, storage=storage)
                                    for n in optuna.get_all_study_summaries(storage))]
    decided = [a for a in attrs if a.get("decision")]
    infos = [a.get("model_info", {}) for a in decided]
    logs = "".join(p.read_text() for p in (work / "studies" / "logs").glob("*.log"))
    summary = json.loads((work / "summary.json").read_text()) if (work / "summary.json").exists() else []
    per_study = seconds / max(len(decided), 1)
    emit(event="launch", model=model, symbols=symbols, trials=trials_, exit_code=process.returncode,
         wall_seconds=round(seconds, 1), studies_decided=len(decided), loads=logs.count(f"loaded {model} in"),
         compiles=sum(i.get("compiles", 0) for i in infos), recompiles=sum(i.get("recompiles", 0) for i in infos),
         compile_seconds=round(sum(i.get("compile_seconds", 0.0) for i in infos), 1),
         extrapolated_to_24_seconds=None if len(decided) == 24 else round(per_study * 24, 1),
         statuses=sorted({row["status"] for row in summary}), study_seconds=[row["seconds"] for row in summary],
         errors=[line for line in output.splitlines() if "error" in line.lower()][-3:])


def forecast_part(out: Path, device: str, symbols: int) -> None:
    """`orchestrator forecast --model toto` of `symbols` symbols in one fresh process (bench_forecast.py's
    measurement): a night of 2-trial studies first (not timed; it fills the Inductor cache the forecast reuses)."""
    from bench_forecast import interpreter_start, measure, night

    work = Path(tempfile.mkdtemp(dir=out))
    names = [f"S{i:02d}" for i in range(symbols)]
    (work / "toto.toml").write_text(TOTO_SPACE)
    start = time.perf_counter()
    night(work, "toto", names, device, ["--weights", str(out / "toto"), "--space", str(work / "toto.toml")])
    emit(event="forecast", model="toto", night_seconds=round(time.perf_counter() - start, 1),
         **measure(work, "toto", names, device, str(out / "toto"), interpreter_start(), reference=False))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--smoke", action="store_true", help="tiny models on the CPU")
    parser.add_argument("--part", choices=("all", "toto", "kronos", "toto2", "warm", "cli", "launch", "forecast"),
                        default="all")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--symbols", type=int, default=24, help="parts launch and forecast: Toto's symbols")
    parser.add_argument("--kronos-symbols", type=int, default=4, help="part launch: Kronos-base's symbols")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_gpu."))
    device = "cpu" if args.smoke else "cuda"
    compiled = not args.smoke
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(out / "inductor"))
    if not (out / "toto" / "model.safetensors").exists():
        build(out, args.smoke)
    emit(event="machine", torch=torch.__version__, cuda=torch.version.cuda,
         device=torch.cuda.get_device_name() if device == "cuda" else "cpu", compiled=compiled)
    clock = Clock(device)
    series = load_series(out / "data", "BTCUSD", ("close",), ("open", "high", "low", "volume"))
    counts = (30,) if args.smoke else (30, 250)
    parts = {
        "toto": lambda: toto_part(clock, out, device, compiled, series, series.frame, counts),
        "kronos": lambda: kronos_part(clock, out, device, compiled, series, series.frame, counts),
        "toto2": lambda: toto2_part(clock, out, device, compiled, series, counts, args.smoke),
        # a fresh process: Dynamo traces again, Inductor's cache should hit
        "warm": lambda: subprocess.run([sys.executable, "-c", WARM, str(out), device], check=False),
        "cli": lambda: [cli_study(out, device, args.trials, out / "inductor_cli", label)
                        for label in ("cold Inductor cache", "warm Inductor cache")],
        "launch": lambda: [launch_part(out, device, "toto", args.symbols, args.trials, 330),
                           launch_part(out, device, "kronos", args.kronos_symbols, args.trials, 120)],
        "forecast": lambda: forecast_part(out, device, args.symbols),
    }
    for name, part in parts.items():
        if args.part not in ("all", name):
            continue
        if device == "cuda":
            torch.cuda.empty_cache()
        try:
            part()
        except Exception as exc:  # noqa: BLE001 - one broken part must not hide the others' numbers
            emit(event="error", part=name, error=f"{type(exc).__name__}: {exc}"[:2000])


WARM = """
import sys, time, json, torch
sys.path.insert(0, %r)
from pathlib import Path
from orchestrator.data import load_series, make_windows
from orchestrator.scoring.evaluation import Evaluator
from orchestrator.models.base import ModelOptions
from orchestrator.models.toto import TotoForecaster
from orchestrator.models.kronos import KronosForecaster
out, device = Path(sys.argv[1]), sys.argv[2]
series = load_series(out / "data", "BTCUSD", ("close",), ("open", "high", "low", "volume"))
windows = make_windows(series, 30, 20, 512)
sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
for name, make, params in (
        ("toto", lambda: TotoForecaster(ModelOptions(device=device, weights=str(out / "toto"))),
         dict(context_length=512, num_samples=1024, aggregate="median")),
        ("kronos", lambda: KronosForecaster(ModelOptions(device=device, weights=str(out / "kronos" / "model"),
                                                         tokenizer=str(out / "kronos" / "tokenizer"))),
         dict(max_context=512, clip=2.0, temperature=0.7, top_p=0.9, sample_count=64, aggregate="mean"))):
    forecaster = make()
    sync(); start = time.perf_counter()
    Evaluator(forecaster, series, windows, seed=0).evaluate(params, range(3))
    sync()
    print(json.dumps({"event": "warm_cache_trial", "model": name, "seconds": round(time.perf_counter() - start, 3),
                      **{k: forecaster.info().get(k) for k in ("compiles", "recompiles", "compile_seconds")}}), flush=True)
""" % str(ROOT)


if __name__ == "__main__":
    main()
