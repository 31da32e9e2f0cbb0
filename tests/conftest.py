"""Shared fixtures: a temp working directory with generated data, and ways to run the real CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.data import write_synthetic

REPO = Path(__file__).resolve().parent.parent
FAST_CONFIG = """
heartbeat_interval = 1
grace_period = 3
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp dir as the working directory, with trainingdata/BTCUSD.csv and ETHUSD.csv and a fast-heartbeat config."""
    write_synthetic(tmp_path / "trainingdata", ["BTCUSD", "ETHUSD"], rows=700)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "orchestrator.toml").write_text(FAST_CONFIG)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli(*args: str):
    """Run the CLI in-process (same Typer app as the console script); returns the click Result."""
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def cli_subprocess(*args: str, cwd: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "orchestrator", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def trial_rows(db: Path) -> list[tuple[int, str, float | None]]:
    """(number, state, value) of every trial in a SQLite storage, read with plain sqlite3."""
    with sqlite3.connect(db) as con:
        return con.execute(
            "SELECT t.number, t.state, v.value FROM trials t LEFT JOIN trial_values v ON v.trial_id = t.trial_id "
            "ORDER BY t.number"
        ).fetchall()


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
