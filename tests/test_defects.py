"""One regression test per defect of the issue fixed in e237ac3; each fails on the code before the fix (fca0211).

They drive the real CLI, real SQLite/Optuna storage and real processes; nothing of SQLite, Optuna or the OS is mocked.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState
from typer.testing import CliRunner

from conftest import REPO, trial_rows
from orchestrator.cli import app
from orchestrator.data import Contexts, load_series, make_windows, synthetic_ohlcv, write_synthetic
from orchestrator.scoring.evaluation import Evaluator
from orchestrator.models.base import Encoded, Forecaster, ModelOptions
from orchestrator.models.fhs import FHSForecaster
from orchestrator.search.objective import TRIAL_FAILURES, Objective, TrialGuard
from orchestrator.settings import Settings
from orchestrator.search.space import load_space
from orchestrator.storages.storage import fail_orphaned_trials, open_storage
from orchestrator.storages.counts import counts
from orchestrator.search.runloop import run_to_target

STORAGE = "sqlite:///studies/optuna.db"
BEST = Path("configs/best/fhs/BTCUSD.json")
HISTORY = Path("configs/best/history.jsonl")
FHS_PARAMS = {"context_length": 128, "ewma_halflife": 20.0, "drift": False, "num_samples": 256, "aggregate": "median"}


def run_cli(*args: str):
    """The CLI in-process; unlike conftest's `cli`, an unexpected exception becomes exit 1 (as in a shell)."""
    return CliRunner().invoke(app, list(args))


def shown(result) -> str:
    """What a failed CLI call printed, with the traceback of an unexpected exception."""
    text = f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        text += "\n" + "".join(traceback.format_exception(*result.exc_info))
    return text


def fhs_optimize(*extra: str, trials: int = 4):
    return run_cli("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", str(trials), *extra)


def load(name: str = "fhs/BTCUSD") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=STORAGE)


def strict_json(text: str) -> Any:
    """json.loads that rejects Infinity and NaN, as strict parsers (JavaScript, Go, jq) do."""
    def reject(constant: str) -> None:
        raise ValueError(f"not strict JSON: {constant}")
    return json.loads(text, parse_constant=reject)


def subprocess_env() -> dict[str, str]:
    """Children import the package of the tree under test (not whatever the venv's editable install points at)."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}


# 1 ------------------------------------------------------------------------------------------------------------------

def test_patience_counts_from_the_best_trial_whichever_worker_found_it(tmp_path: Path) -> None:
    """Defect 1: Patience reset its count only when this worker's own trial became the best, so a best found by
    another worker left the count running and this worker stopped too early."""
    url = f"sqlite:///{tmp_path / 'patience.db'}"
    storage = open_storage(url, Settings(heartbeat_interval=1, grace_period=3))
    study = optuna.create_study(study_name="p", storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    other_worker = optuna.load_study(study_name="p", storage=url, sampler=optuna.samplers.RandomSampler(seed=1))

    def other_objective(trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0.0, 1.0)
        return 0.5

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0.0, 1.0)
        if trial.number == 3:  # while this worker's trial 3 runs, the other worker finishes the new best (trial 4)
            other_worker.optimize(other_objective, n_trials=1)
        return 1.0 if trial.number == 0 else 2.0

    stopped = run_to_target(study, storage, objective, 40, 5)
    trials = study.get_trials()
    assert study.best_trial.number == 4 and study.best_value == 0.5
    after_best = [t.number for t in trials if t.number > 4 and t.state.is_finished()]
    assert stopped == "patience"
    assert after_best == [5, 6, 7, 8, 9], f"stopped {len(after_best)} finished trials after the best, not 5"


# 2 ------------------------------------------------------------------------------------------------------------------

TINY_TOTO = {  # 152k parameters, as in test_toto.py
    "patch_size": 16, "stride": 16, "embed_dim": 64, "num_layers": 2, "num_heads": 4, "mlp_hidden_dim": 128,
    "dropout": 0.0, "spacewise_every_n_layers": 2, "spacewise_first": False, "use_memory_efficient_attention": False,
    "scaler_cls": "<class 'model.scaler.CausalPatchStdMeanScaler'>",
    "output_distribution_classes": ["<class 'model.distribution.MixtureOfStudentTsOutput'>"],
    "output_distribution_kwargs": {"k_components": 4},
}
TOTO_SPACE = """
[context_length]
type = "categorical"
choices = [64]
[num_samples]
type = "categorical"
choices = [32, 48, 64]
[aggregate]
type = "categorical"
choices = ["mean"]
"""


@pytest.fixture(scope="module")
def toto_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two tiny random Toto checkpoints (config.json + model.safetensors) of the same architecture."""
    import safetensors.torch
    from toto.model.toto import Toto

    checkpoints = []
    for seed in (0, 1):
        directory = tmp_path_factory.mktemp(f"toto{seed}")
        torch.manual_seed(seed)
        (directory / "config.json").write_text(json.dumps(TINY_TOTO))
        safetensors.torch.save_model(Toto(**TINY_TOTO), str(directory / "model.safetensors"))
        checkpoints.append(directory)
    return checkpoints[0], checkpoints[1]


def toto_optimize(weights: Path, trials: int):
    return run_cli("optimize", "--model", "toto", "--symbol", "BTCUSD", "--weights", str(weights), "--device", "cpu",
                   "--no-compile", "--space", "toto.toml", "--trials", str(trials), "--val-windows", "30",
                   "--test-windows", "20", "--eval-runs", "1", "--confirm-runs", "1")


def test_resuming_with_other_weights_is_refused(workdir: Path, toto_weights: tuple[Path, Path]) -> None:
    """Defect 2 (weights): a study resumed with another checkpoint reused the values the first one computed
    (`reused_from`) for every trial with the same params."""
    weights_a, weights_b = toto_weights
    Path("toto.toml").write_text(TOTO_SPACE)
    first = toto_optimize(weights_a, trials=2)
    assert first.exit_code == 0, shown(first)

    other = toto_optimize(weights_b, trials=5)
    trials = load("toto/BTCUSD").trials
    reused = {t.number: t.user_attrs["reused_from"] for t in trials if "reused_from" in t.user_attrs}
    assert other.exit_code == 2, f"{shown(other)}\nreused values: {reused}"
    assert "weights was 'sha256:" in other.stderr and "--fresh" in other.stderr
    assert len(trials) == 2  # nothing was run with weights B


def test_a_value_is_reused_only_from_the_same_device_and_compile_setting(
    workdir: Path, toto_weights: tuple[Path, Path]
) -> None:
    """Defect 2 (device, compile): a trial with the params of a complete trial reused its value even when that
    trial ran on another device or compiled (other numerics); now only the same device and compile setting reuse."""
    weights, _ = toto_weights
    Path("toto.toml").write_text(TOTO_SPACE)
    eager = {"context_length": 64, "num_samples": 32, "aggregate": "mean"}
    elsewhere = {"compiled on the CPU": ({**eager, "num_samples": 48}, {"device": "cpu", "compiled": True}),
                 "eager on a GPU": ({**eager, "num_samples": 64}, {"device": "cuda", "compiled": False})}
    Path("configs/best/toto").mkdir(parents=True)
    Path("configs/best/toto/BTCUSD.json").write_text(json.dumps({"symbol": "BTCUSD", "model": "toto", "params": eager}))
    assert toto_optimize(weights, trials=1).exit_code == 0  # trial 0: the incumbent, eager on the CPU

    study = load("toto/BTCUSD")
    for params, attrs in elsewhere.values():  # trials 1 and 2, as other workers recorded them
        study.add_trial(optuna.trial.create_trial(params=params, distributions=study.trials[0].distributions,
                                                  value=1.0, user_attrs=attrs))
    for params in [params for params, _ in elsewhere.values()] + [eager]:
        study.enqueue_trial(params)  # trials 3, 4 and 5, run here: eager on the CPU
    result = toto_optimize(weights, trials=6)
    assert result.exit_code == 0, shown(result)

    trials = load("toto/BTCUSD").trials
    for number, (what, (params, _)) in zip((3, 4), elsewhere.items()):
        here = trials[number]
        assert here.params == params
        assert "reused_from" not in here.user_attrs and here.value != 1.0, f"reused the value of a trial {what}"
        assert (here.user_attrs["device"], here.user_attrs["compiled"]) == ("cpu", False)
    assert trials[5].params == eager and trials[5].user_attrs["reused_from"] == 0
    assert trials[5].value == trials[0].value


# 3 ------------------------------------------------------------------------------------------------------------------

def test_cmaes_starts_from_an_incumbent_outside_the_space_clipped_into_it(workdir: Path) -> None:
    """Defect 3: CMA-ES took the incumbent's numeric params raw as x0; context_length 600 in a space of 32..512 died
    with `AssertionError: invalid bounds` (exit 1), again on every rerun, each crash leaving a FAIL trial."""
    BEST.parent.mkdir(parents=True)
    BEST.write_text(json.dumps({"symbol": "BTCUSD", "model": "fhs", "params": {**FHS_PARAMS, "context_length": 600}}))
    result = fhs_optimize("--sampler", "cmaes", "--val-windows", "60", trials=6)
    assert result.exit_code == 0, shown(result)
    assert "CMA-ES starts from the incumbent clipped into the space: context_length 600 -> 512" in result.stdout
    rows = trial_rows(workdir / "studies" / "optuna.db")
    assert len(rows) == 6 and "FAIL" not in {state for _, state, _ in rows}
    assert all(32 <= t.params["context_length"] <= 512 for t in load().trials)


# 4 ------------------------------------------------------------------------------------------------------------------

def recorded_target(db: Path) -> int | None:
    with sqlite3.connect(db) as con:
        row = con.execute("SELECT value_json FROM study_user_attributes WHERE key = 'target'").fetchone()
    return None if row is None else json.loads(row[0])


def test_resume_keeps_the_target_that_worker_raised(workdir: Path) -> None:
    """Defect 4: `resume` rebuilt the study's settings from its original record and wrote the old target back:
    a target that `worker --trials 10` had raised from 4 went back to 4."""
    assert fhs_optimize(trials=4).exit_code == 0
    db = workdir / "studies" / "optuna.db"
    worker = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "worker", "--study", "fhs/BTCUSD", "--trials", "10"],
        cwd=workdir, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while recorded_target(db) != 10 and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.kill()  # the machine running the worker dies soon after it raised the target
    _, stderr = worker.communicate(timeout=60)
    assert recorded_target(db) == 10, stderr

    result = run_cli("resume")
    assert result.exit_code == 0, shown(result)
    study = load()
    done = counts(study)
    assert (study.user_attrs["target"], done.finished, done.running) == (10, 10, 0)


# 5 ------------------------------------------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_orphaned_trials_are_judged_by_local_time_in_every_time_zone(tmp_path: Path) -> None:
    """Defect 5: `fail_orphaned_trials` compared Optuna 5's LOCAL naive `datetime_start` with a naive UTC cutoff: west
    of UTC another worker's just-started trial failed at once, east of UTC a real orphan waited hours."""
    grace = 3
    storage = open_storage(f"sqlite:///{tmp_path / 'orphans.db'}", Settings(heartbeat_interval=1, grace_period=grace))
    zones = ("America/New_York", "Asia/Tokyo", "UTC")
    studies = {zone: optuna.create_study(study_name=zone, storage=storage) for zone in zones}
    trials = {zone: study.ask() for zone, study in studies.items()}  # RUNNING, never a heartbeat (its process died)

    def sweep() -> dict[str, str]:
        """Each zone's study swept for orphans by a process in that time zone; the trials' states after."""
        for zone in zones:
            os.environ["TZ"] = zone
            time.tzset()
            fail_orphaned_trials(studies[zone], storage)
        return {zone: storage.get_trial(trials[zone]._trial_id).state.name for zone in zones}

    before = os.environ.get("TZ")
    try:
        just_started = sweep()
        time.sleep(grace + 1.5)
        past_grace = sweep()
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()
    # (state just after it started, state once older than the grace period) per time zone
    states = {zone: (just_started[zone], past_grace[zone]) for zone in zones}
    assert states == {zone: ("RUNNING", "FAIL") for zone in zones}


# 6 ------------------------------------------------------------------------------------------------------------------

def test_a_torn_last_line_of_the_history_does_not_block_later_decisions(workdir: Path) -> None:
    """Defect 6: after a power loss mid-append, history.jsonl ends in a torn line; every later decision died with
    JSONDecodeError (exit 1)."""
    first = run_cli("optimize", "--model", "fhs", "--symbol", "ETHUSD", "--trials", "3")
    assert first.exit_code == 0, shown(first)
    whole = HISTORY.read_text()
    assert whole.endswith("\n") and len(whole.splitlines()) == 1
    torn = whole[: len(whole) // 2]  # the next append was cut half way: no closing brace, no newline
    HISTORY.write_text(whole + torn)

    result = fhs_optimize(trials=3)
    assert result.exit_code == 0, shown(result)
    assert "UPDATING fhs/BTCUSD" in result.stdout
    lines = HISTORY.read_text().splitlines()
    assert len(lines) == 3 and lines[1] == torn  # the torn line is left as it was; the new entry has its own line
    assert json.loads(lines[0])["study"] == "fhs/ETHUSD"
    assert json.loads(lines[-1])["study"] == "fhs/BTCUSD" and json.loads(lines[-1])["committed"] is True

    scored = run_cli("scorecard", "--json")  # reads the whole history
    assert scored.exit_code == 0, shown(scored)
    report = json.loads(scored.stdout)
    assert report["problems"] == []


# 7 ------------------------------------------------------------------------------------------------------------------

def test_an_unscorable_incumbent_is_replaced_and_the_committed_json_stays_strict(workdir: Path) -> None:
    """Defect 7: an incumbent that could not be scored got MAE inf, written to the committed file as `Infinity`,
    which strict JSON parsers reject."""
    BEST.parent.mkdir(parents=True)
    BEST.write_text(json.dumps({"symbol": "BTCUSD", "model": "fhs", "params": {**FHS_PARAMS, "aggregate": "mode"}}))

    result = fhs_optimize(trials=3)
    assert result.exit_code == 0, shown(result)
    record = strict_json(BEST.read_text())
    assert record["params"]["aggregate"] != "mode"  # the candidate replaced the incumbent
    previous = record["previous"]
    assert previous["mae"] is None and previous["params"]["aggregate"] == "mode"
    assert "unknown aggregate 'mode'" in previous["error"] and "replaced without a comparison" in previous["error"]
    assert "the incumbent could not be scored" in result.stdout
    for line in HISTORY.read_text().splitlines():
        strict_json(line)


# 8 ------------------------------------------------------------------------------------------------------------------

class SlowFirstEncode(Forecaster):
    """A real forecaster (log-normal steps with the context's volatility) whose first encode at a context length
    in `slow` takes that many seconds, as a network's first compile at a new shape does."""

    name = "slow-first-encode"
    encode_params = frozenset({"context_length"})
    context_param = "context_length"
    min_context = 32
    params = frozenset({"context_length", "num_samples", "aggregate"})

    def __init__(self, slow: Mapping[int, float]) -> None:
        super().__init__(ModelOptions(device="cpu"))
        self.slow = dict(slow)

    def encode(self, contexts: Contexts, params: Mapping[str, Any]) -> Encoded:
        length = int(params["context_length"])
        time.sleep(self.slow.pop(length, 0.0))
        close = contexts.history("close", length)
        returns = np.diff(np.log(close), axis=1)
        return {"last_close": torch.from_numpy(close[:, -1].copy()), "vol": torch.from_numpy(returns.std(axis=1))}

    def sample(self, encoded: Encoded, n: int, params: Mapping[str, Any], generator: torch.Generator) -> torch.Tensor:
        z = torch.randn((len(encoded["vol"]), n), generator=generator, dtype=torch.float64)
        return encoded["last_close"][:, None] * torch.exp(encoded["vol"][:, None] * z)


def test_the_trial_timeout_never_stops_a_new_encode(tmp_path: Path) -> None:
    """Defect 8: the trial timeout (factor x percentile of earlier durations, mostly cache hits) also bounded the
    encode, so a trial needing a new encode longer than the limit was killed, never cached, and failed forever."""
    write_synthetic(tmp_path, ["BTCUSD"], rows=300)
    series = load_series(tmp_path, "BTCUSD")
    evaluator = Evaluator(SlowFirstEncode({64: 3.0}), series, make_windows(series, 30, 20, 64), seed=0)
    space_file = tmp_path / "space.toml"
    space_file.write_text('[context_length]\ntype = "categorical"\nchoices = [32, 64]\n[num_samples]\n'
                          'type = "categorical"\nchoices = [64, 128, 256, 512, 1024]\n[aggregate]\n'
                          'type = "categorical"\nchoices = ["mean"]\n')
    space = load_space(space_file, SlowFirstEncode.params)
    guard = TrialGuard(timeout_percentile=95.0, timeout_factor=1.0, timeout_min_seconds=1.0)
    study = optuna.create_study(pruner=optuna.pruners.NopPruner())
    for n in (64, 128, 256, 512, 1024):  # five fast trials at context 32: the limit becomes 1 s
        study.enqueue_trial({"context_length": 32, "num_samples": n, "aggregate": "mean"})
    study.enqueue_trial({"context_length": 64, "num_samples": 64, "aggregate": "mean"})  # a new, 3 s encode
    study.optimize(Objective(space, evaluator, range(2), guard), n_trials=6, catch=TRIAL_FAILURES)

    first_five, new_encode = study.trials[:5], study.trials[5]
    assert all(t.state == TrialState.COMPLETE for t in first_five)
    assert guard.time_limit(first_five) == 1.0
    assert (new_encode.state.name, new_encode.user_attrs.get("fail_reason")) == ("COMPLETE", None)
    assert new_encode.params["context_length"] == 64 and new_encode.user_attrs["cache_hit"] is False
    # its 3 s encode does not raise the limit for later trials either: the percentile is of run times only
    assert guard.time_limit(study.trials) == 1.0


# 9 ------------------------------------------------------------------------------------------------------------------

def test_fhs_context_length_below_its_minimum_is_refused(workdir: Path) -> None:
    """Defect 9 (CLI): context_length 1 sliced `[-0:]`, i.e. the whole history; a space that reaches below fhs's
    minimum of 32 bars is refused before anything is written."""
    space = Path("low.toml")
    space.write_text('[context_length]\ntype = "int"\nlow = 1\nhigh = 64\n[ewma_halflife]\ntype = "float"\nlow = 5.0\n'
                     'high = 50.0\n[num_samples]\ntype = "categorical"\nchoices = [128]\n')
    result = fhs_optimize("--space", str(space), trials=3)
    assert result.exit_code == 2, shown(result)
    assert "[context_length] can be 1" in result.stderr and "at least 32" in result.stderr
    assert not Path("studies/optuna.db").exists() and not BEST.exists()


def test_fhs_windows_shorter_than_the_context_read_the_bars_they_have(workdir: Path) -> None:
    """Defect 9 (forecaster): every window was cut to the shortest window's history, so context lengths beyond it
    (650, 1000, 5000) all gave the same forecasts; now each window reads up to `context_length` of its own bars,
    and a study records how many validation windows are shorter than its longest context."""
    fhs = FHSForecaster(ModelOptions())
    contexts = Contexts(frame=synthetic_ohlcv("BTCUSD", rows=1600), ends=np.array([500, 1500]))
    encoded = fhs.encode(contexts, {})

    def forecast(length: int) -> torch.Tensor:
        params = {"context_length": length, "ewma_halflife": 20.0, "drift": True}
        return fhs.sample(encoded, 4096, params, torch.Generator().manual_seed(0)).mean(dim=1)

    by_length = {length: forecast(length) for length in (33, 650, 1000, 1500, 5000)}
    short, long = 0, 1  # 500 and 1500 bars of history
    # the long window reads more of its bars as the context grows, up to the 1500 it has
    assert len({float(by_length[n][long]) for n in (33, 650, 1000, 1500)}) == 4, "context lengths were cut"
    torch.testing.assert_close(by_length[5000][long], by_length[1500][long])
    # the short window reads its 500 bars for any longer context, and fewer for a shorter one
    for length in (1000, 1500, 5000):
        torch.testing.assert_close(by_length[length][short], by_length[650][short])
    assert by_length[33][short] != by_length[650][short]

    space = Path("long.toml")
    space.write_text('[context_length]\ntype = "categorical"\nchoices = [32, 600]\n[ewma_halflife]\ntype = "float"\n'
                     'low = 5.0\nhigh = 50.0\n[num_samples]\ntype = "categorical"\nchoices = [128]\n')
    result = fhs_optimize("--space", str(space), "--val-windows", "100", "--test-windows", "20", trials=3)
    assert result.exit_code == 0, shown(result)
    # 700 rows: the validation windows end at bars 580..679, so the first 20 have fewer than 600 bars before them
    assert load().user_attrs["short_windows"] == 20
    assert "read the bars that exist" not in result.stdout  # the later 80 windows read all 600: no note
