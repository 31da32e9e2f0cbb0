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
    assert "read the bars that exist (expected with 504 rows)" in result.stdout  # said, and recorded below
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


def tiny_kronos(root: Path) -> tuple[str, str]:
    """A tiny random Kronos pair saved as the hub lays it out."""
    import torch
    from kronos_finance._vendor.kronos_model import Kronos, KronosTokenizer

    torch.manual_seed(0)
    KronosTokenizer(d_in=6, d_model=32, n_heads=4, ff_dim=64, n_enc_layers=2, n_dec_layers=2, ffn_dropout_p=0.0,
                    attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=4, s2_bits=4, beta=0.05, gamma0=1.0, gamma=1.1,
                    zeta=0.05, group_size=4).save_pretrained(root / "tokenizer")
    Kronos(s1_bits=4, s2_bits=4, n_layers=2, d_model=32, n_heads=4, ff_dim=64, ffn_dropout_p=0.0, attn_dropout_p=0.0,
           resid_dropout_p=0.0, token_dropout_p=0.0, learn_te=True).save_pretrained(root / "model")
    return str(root / "model"), str(root / "tokenizer")


def test_kronos_default_space_on_two_years(two_years: Path, tmp_path: Path) -> None:
    model, tokenizer = tiny_kronos(tmp_path)
    study = run("--model", "kronos", "--weights", model, "--tokenizer", tokenizer, "--eval-runs", "2",
                "--confirm-runs", "2")
    attrs = study.user_attrs
    assert attrs["val_windows"] == 250 and attrs["short_windows"] == 250 and attrs["scoring_version"] == 2
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)


def test_a_study_scored_by_another_version_is_not_resumed(two_years: Path) -> None:
    run("--model", "fhs")
    storage = optuna.storages.RDBStorage("sqlite:///studies/optuna.db")
    storage.set_study_user_attr(storage.get_study_id_from_name("fhs/SPY"), "scoring_version", 0)
    result = cli("optimize", "--model", "fhs", "--symbol", "SPY", "--trials", "5")
    assert result.exit_code == 2
    assert "scoring_version was 0, now 1 (this version of orchestrator scores the model differently)" in result.stderr
    assert "--fresh" in result.stderr
    assert cli("optimize", "--model", "fhs", "--symbol", "SPY", "--trials", "3", "--fresh").exit_code == 0


def test_too_little_history_is_refused_with_the_numbers(workdir: Path) -> None:
    write_synthetic(workdir / "trainingdata", ["NEW"], rows=150)  # 150 - 60 test - 32 bars = 58 windows: enough
    assert cli("optimize", "--model", "fhs", "--symbol", "NEW", "--trials", "2").exit_code == 0
    write_synthetic(workdir / "trainingdata", ["NEWER"], rows=110)
    refused = cli("optimize", "--model", "fhs", "--symbol", "NEWER", "--trials", "2")
    assert refused.exit_code == 2 and "110 rows leave 18 validation windows" in refused.stderr
