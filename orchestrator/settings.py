"""One validated Settings object from `configs/orchestrator.toml` (if present) plus command-line overrides."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.errors import BadInput

CONFIG_FILE = Path("configs/orchestrator.toml")
"""Looked up relative to the working directory; without it the defaults below apply."""
PACKAGE_CONFIGS = Path(__file__).resolve().parent.parent / "configs"


class Settings(BaseModel):
    """Everything a study needs besides model and symbol. Each field is also a flag of the commands it affects
    (`eval_runs` -> `--eval-runs`); its description is the flag's help."""

    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Field(Path("trainingdata"), description="Directory of <SYMBOL>.csv files")
    storage: str = Field("sqlite:///studies/optuna.db", description="Optuna storage: SQLite file or PostgreSQL URL")
    best_dir: Path = Field(Path("configs/best"), description="Committed configs (<model>/<SYMBOL>.json) and their history")
    artifact_dir: Path = Field(Path("studies/artifacts"), description="Plots of each decision (dashboard, report)")
    val_windows: int = Field(250, ge=30, description="At most this many validation windows, as many as the data "
                             "allow; at least 30, since fewer cannot tell configs apart")
    test_windows: int = Field(60, ge=1, description="Last bars scored as test windows, never used for selection")
    eval_runs: int = Field(3, ge=1, description="Runs per trial, averaged; the same random draws in every trial")
    confirm_runs: int = Field(3, ge=1, description="Fresh runs scoring candidate and incumbent before a commit")
    commit_rule: Literal["spa", "significant", "any"] = Field(
        "spa", description="spa: commit when a test over every config tried is confident that the candidate beats "
                           "the incumbent; significant: the paired test of the candidate alone; any: on any "
                           "improvement")
    min_confidence: float = Field(0.95, gt=0, lt=1, description="The confidence that --commit-rule spa or "
                                                                "significant needs")
    spa_configs: int | None = Field(None, ge=1, description="The spa rule rescores at most this many configs, the "
                                                            "best search values first (default: all)")
    trials: int = Field(100, ge=1, description="Target number of finished trials per study")
    sampler: Literal["tpe", "cmaes"] = Field("tpe", description="Optuna sampler")
    seed: int = Field(0, ge=0, description="Study seed: run seeds and the sampler's seed derive from it")
    patience: int | None = Field(None, ge=1, description="Stop after this many finished trials without improvement")
    budget: float | None = Field(None, gt=0, description="Wall-clock seconds per study and worker")
    timeout_percentile: float = Field(95.0, gt=0, le=100, description="Stop a trial whose runs take longer than "
                                      "--timeout-factor times this percentile of earlier trials' run times")
    timeout_factor: float = Field(5.0, gt=0, description="The factor of --timeout-percentile")
    timeout_min_seconds: float = Field(60.0, gt=0, description="Never stop a trial's runs sooner than this (seconds)")
    transfer: bool = Field(True, description="Warm-start from other symbols' committed configs")
    max_transfer: int = Field(3, ge=0, description="At most this many warm starts from other symbols")
    pruner_startup_trials: int = Field(5, ge=0, description="Trials before the median pruner starts")
    price: str | None = Field(None, description="Column used as close, e.g. adj_close (otherwise close, or the "
                                                "file's only numeric column)")
    drop_missing: bool = Field(False, description="Drop rows with blank or '.' cells (recorded) instead of refusing "
                                                  "the file")
    dayfirst: bool = Field(False, description="Dates with slashes are day-first (31/12/2024), not month-first")
    decimal: Literal["auto", ".", ","] = Field(
        "auto", description="Decimal mark of the numbers (the other mark groups thousands); auto: the one the file "
                            "shows, refusing a file where 1,000 could be either")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where the models run")
    cache_mb: int = Field(8192, ge=0, description="Encode cache bound per process, MiB")
    heartbeat_interval: int = Field(5, ge=1, description="Seconds between heartbeats of a running trial")
    grace_period: int = Field(20, ge=2, description="Seconds without a heartbeat before a trial is retried")
    durability: Literal["trial", "commit"] = Field(
        "trial", description="SQLite: flush to disk after each finished trial, or after every commit")


STUDY_KEYS = ("val_windows", "test_windows", "eval_runs", "confirm_runs", "seed", "commit_rule", "min_confidence",
              "spa_configs", "price", "drop_missing", "dayfirst", "decimal")
"""Settings that belong to a study: a resumed study keeps its recorded values unless a flag sets them."""
LEGACY = {"commit_rule": "any"}
"""Values of study settings that studies recorded before the setting existed (their decisions used `any`)."""


def load_settings(overrides: dict[str, Any], config: Path = CONFIG_FILE) -> Settings:
    """Settings from `config` (when it exists) with the non-None `overrides` on top; BadInput on any bad value."""
    values: dict[str, Any] = {}
    if config.is_file():
        try:
            values = tomllib.loads(config.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise BadInput(f"{config}: not valid TOML ({exc}); fix the file") from None
        _validate(values, config)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return _validate(values, None)


def study_settings(name: str, values: dict[str, Any]) -> Settings:
    """Settings rebuilt from what study `name` recorded; BadInput when this version refuses a recorded value (e.g. a
    study created with fewer than 30 validation windows)."""
    try:
        return Settings(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "?"
        raise BadInput(f"study {name} recorded {field} = {error.get('input')!r}, which this version refuses "
                       f"({error['msg'].lower()}); pass --{field.replace('_', '-')} with an accepted value, or "
                       "--fresh to archive the study and start a new one") from None


def shown_defaults(config: Path = CONFIG_FILE) -> Settings:
    """The defaults that `--help` shows: `config`'s settings, or the built-in ones when the file is missing or broken
    (a command that runs reports a broken file)."""
    try:
        return load_settings({}, config)
    except BadInput:
        return Settings()


def _validate(values: dict[str, Any], config: Path | None) -> Settings:
    """Settings(**values); BadInput naming the first bad field as the user wrote it: in `config`, or as a flag
    (the command line's text, e.g. `--eval-runs 0`) when `config` is None."""
    try:
        return Settings(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "?"
        value = error.get("input")
        if error["type"] == "extra_forbidden":
            known = ", ".join(Settings.model_fields)
            raise BadInput(f"{config or 'settings'}: {field}: unknown setting; known settings: {known}") from None
        where = f"--{field.replace('_', '-')} {value}" if config is None else f"{config}: {field} = {value!r}"
        raise BadInput(f"{where}: {error['msg'].lower()}") from None


def space_path(model: str, override: Path | None = None) -> Path:
    """The space file: `--space FILE`, else configs/spaces/<model>.toml here, else the one shipped in the repo."""
    if override is not None:
        return Path(override)
    local = Path("configs/spaces") / f"{model}.toml"
    return local if local.is_file() else PACKAGE_CONFIGS / "spaces" / f"{model}.toml"
