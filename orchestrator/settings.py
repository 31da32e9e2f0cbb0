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
    """Everything a study needs besides model and symbol. Field names match the CLI flags (`--eval-runs`)."""

    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Path("trainingdata")
    storage: str = "sqlite:///studies/optuna.db"
    best_dir: Path = Path("configs/best")
    artifact_dir: Path = Path("studies/artifacts")
    val_windows: int = Field(250, ge=30, description="at most this many validation windows (as many as the data "
                             "allow); at least 30, since fewer cannot tell configs apart")
    test_windows: int = Field(60, ge=1)
    eval_runs: int = Field(3, ge=1)
    confirm_runs: int = Field(3, ge=1)
    commit_rule: Literal["significant", "any"] = "significant"
    min_confidence: float = Field(0.95, gt=0, lt=1, description="confidence the candidate is better (significant)")
    trials: int = Field(100, ge=1)
    sampler: Literal["tpe", "cmaes"] = "tpe"
    seed: int = Field(0, ge=0)
    patience: int | None = Field(None, ge=1, description="stop after this many finished trials without improvement")
    budget: float | None = Field(None, gt=0, description="wall-clock seconds per study and worker")
    timeout_percentile: float = Field(95.0, gt=0, le=100)
    timeout_factor: float = Field(5.0, gt=0, description="a trial longer than factor x percentile is stopped")
    timeout_min_seconds: float = Field(60.0, gt=0, description="never stop a trial before this")
    transfer: bool = True
    max_transfer: int = Field(3, ge=0, description="committed configs of other symbols enqueued as warm starts")
    pruner_startup_trials: int = Field(5, ge=0)
    price: str | None = Field(None, description="the column used as close (e.g. adj_close)")
    drop_missing: bool = False
    dayfirst: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cache_mb: int = Field(8192, ge=0, description="encode cache bound per process (MiB)")
    heartbeat_interval: int = Field(5, ge=1)
    grace_period: int = Field(20, ge=2)
    durability: Literal["trial", "commit"] = Field(
        "trial", description="SQLite: flush to disk after each finished trial, or after every commit")


STUDY_KEYS = ("val_windows", "test_windows", "eval_runs", "confirm_runs", "seed", "commit_rule", "min_confidence",
              "price", "drop_missing", "dayfirst")
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
        _validate(values, lambda field: f"{config}: {field}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return _validate(values, lambda field: f"--{field.replace('_', '-')}")


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


def _validate(values: dict[str, Any], where) -> Settings:
    try:
        return Settings(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "?"
        value = error.get("input")
        if error["type"] == "extra_forbidden":
            known = ", ".join(Settings.model_fields)
            raise BadInput(f"{where(field)}: unknown setting; known settings: {known}") from None
        raise BadInput(f"{where(field)} = {value!r}: {error['msg'].lower()}") from None


def space_path(model: str, override: Path | None = None) -> Path:
    """The space file: `--space FILE`, else configs/spaces/<model>.toml here, else the one shipped in the repo."""
    if override is not None:
        return Path(override)
    local = Path("configs/spaces") / f"{model}.toml"
    return local if local.is_file() else PACKAGE_CONFIGS / "spaces" / f"{model}.toml"
