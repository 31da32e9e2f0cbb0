"""Two years of daily bars (504 rows) run every model's default space: early windows read the bars they have."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from conftest import cli
from orchestrator.data import write_synthetic
from test_toto import TINY, write_checkpoint

ROWS = 504


@pytest.fixture
def two_years(workdir: Path) -> Path:
    write_synthetic(workdir / "trainingdata", ["SPY"], rows=ROWS)
    return workdir


def run(*args: str) -> optuna.Study:
    result = cli("optimize", "--symbol", "SPY", "--trials", "3", "--device", "cpu", *args)
    assert result.exit_code == 0, result.output
    assert "validation windows have fewer than" in result.stdout  # said, and recorded below
    model = args[args.index("--model") + 1]
    return optuna.load_study(study_name=f"{model}/SPY", storage="sqlite:///studies/optuna.db")


def test_fhs_default_space_on_two_years(two_years: Path) -> None:
    study = run("--model", "fhs")
    attrs = study.user_attrs
    assert (attrs["val_windows"], attrs["test_windows"]) == (250, 60)
    assert attrs["short_windows"] == 250  # the first window has 194 bars before it, the space reaches 512


def test_toto_default_space_on_two_years(two_years: Path, tmp_path: Path) -> None:
    weights = write_checkpoint(tmp_path / "toto", TINY)
    study = run("--model", "toto", "--weights", str(weights), "--eval-runs", "2", "--confirm-runs", "2")
    attrs = study.user_attrs
    assert attrs["val_windows"] == 250 and attrs["short_windows"] == 250
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)


def test_too_little_history_is_refused_with_the_numbers(workdir: Path) -> None:
    write_synthetic(workdir / "trainingdata", ["NEW"], rows=150)  # 150 - 60 test - 32 bars = 58 windows: enough
    assert cli("optimize", "--model", "fhs", "--symbol", "NEW", "--trials", "2").exit_code == 0
    write_synthetic(workdir / "trainingdata", ["NEWER"], rows=110)
    refused = cli("optimize", "--model", "fhs", "--symbol", "NEWER", "--trials", "2")
    assert refused.exit_code == 2 and "110 rows leave 18 validation windows" in refused.stderr
