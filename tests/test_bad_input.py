"""Every bad input of DESIGN.md: exit code 2, one clear line on stderr, nothing written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conftest import cli

CSV = Path("trainingdata/BTCUSD.csv")


def edit_csv(change):
    def setup(root: Path) -> None:
        frame = pd.read_csv(root / CSV, dtype=str)
        change(frame).to_csv(root / CSV, index=False)
    return setup


def set_cell(row: int, column: str, value: str):
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[row, column] = value
        return frame
    return edit_csv(change)


def write(path: str, text: str):
    def setup(root: Path) -> None:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return setup


SPACE_OK = """
[context_length]
type = "int"
low = 32
high = 64
[ewma_halflife]
type = "float"
low = 2.0
high = 20.0
log = true
[num_samples]
type = "int"
low = 64
high = 128
"""

CASES = {
    "missing column": (edit_csv(lambda f: f.drop(columns=["close"])), [], "missing column(s) close"),
    "non-numeric": (set_cell(10, "close", "abc"), [], "line 12, column 'close': value 'abc' is not a finite number"),
    "nan": (set_cell(20, "close", "nan"), [], "column 'close': value 'nan' is not a finite number"),
    "inf": (set_cell(20, "close", "inf"), [], "value 'inf' is not a finite number"),
    "zero price": (set_cell(5, "close", "0"), [], "value '0' is not a positive price"),
    "negative price": (set_cell(5, "close", "-3.5"), [], "is not a positive price"),
    "bad timestamp": (set_cell(3, "timestamp", "yesterday"), [], "column 'timestamp': value 'yesterday' is not a date"),
    "unsorted": (edit_csv(lambda f: f.iloc[[0, 2, 1, *range(3, len(f))]]), [], "is earlier than the row before"),
    "duplicate timestamp": (edit_csv(lambda f: f.assign(timestamp=f.timestamp.where(f.index != 8, f.timestamp[7]))), [],
                            "duplicates the row before"),
    "too few rows": (edit_csv(lambda f: f.head(110)), [], "110 rows leave 18 validation windows after 60 test windows "
                     "and the model's minimum context of 32 bars; 30 are needed"),
    "space context below the model's minimum": (write("s.toml", SPACE_OK.replace("low = 32", "low = 1")),
                                                ["--space", "s.toml"], "fhs needs at least 32 bars of context"),
    "commit rule": (None, ["--commit-rule", "sometimes"], "--commit-rule sometimes: input should be"),
    "min confidence": (None, ["--min-confidence", "1.5"], "--min-confidence 1.5: input should be less than 1"),
    "unknown price column": (None, ["--price", "adj_close"], "adj_close"),
    "missing file": (lambda root: (root / CSV).unlink(), [], "no such file"),
    "bad symbol": (None, ["--symbol", "BTC/USD"], "symbol 'BTC/USD': use only letters"),
    "dotdot symbol": (None, ["--symbol", "..BTC"], "and no '..'"),
    "unknown model": (None, ["--model", "prophet"], "model 'prophet': unknown; choose one of fhs, toto, kronos"),
    "space low > high": (write("s.toml", SPACE_OK.replace("low = 32\nhigh = 64", "low = 64\nhigh = 32")),
                         ["--space", "s.toml"], "[context_length] low = 64 > high = 32"),
    "space log low <= 0": (write("s.toml", SPACE_OK.replace("low = 2.0", "low = 0.0")),
                           ["--space", "s.toml"], "[ewma_halflife] log = true needs low > 0"),
    "space empty choices": (write("s.toml", SPACE_OK + '[aggregate]\ntype = "categorical"\nchoices = []\n'),
                            ["--space", "s.toml"], "[aggregate] choices must be a non-empty list"),
    "space unknown aggregate": (write("s.toml", SPACE_OK + '[aggregate]\ntype = "categorical"\nchoices = ["mode"]\n'),
                                ["--space", "s.toml"], "unknown aggregate 'mode'"),
    "space unknown key": (write("s.toml", SPACE_OK.replace('type = "int"\nlow = 64', 'type = "int"\nlo = 1\nlow = 64')),
                          ["--space", "s.toml"], "[num_samples] unknown key(s) lo"),
    "space unknown param": (write("s.toml", SPACE_OK + '[temperature]\ntype = "float"\nlow = 0.1\nhigh = 1.0\n'),
                            ["--space", "s.toml"], "[temperature] is not a param of this model"),
    "space step with log": (write("s.toml", SPACE_OK.replace("log = true", "log = true\nstep = 1.0")),
                            ["--space", "s.toml"], "step and log = true cannot be combined"),
    "space missing param": (write("s.toml", SPACE_OK.split("[num_samples]")[0]), ["--space", "s.toml"],
                            "[num_samples] is missing"),
    "space bad type": (write("s.toml", SPACE_OK.replace('type = "float"', 'type = "double"')), ["--space", "s.toml"],
                       "type = 'double'"),
    "space not toml": (write("s.toml", "[context_length\n"), ["--space", "s.toml"], "not valid TOML"),
    "space bad when": (write("s.toml", SPACE_OK + '[drift]\ntype = "categorical"\nchoices = [true]\nwhen = { x = 1 }\n'),
                       ["--space", "s.toml"], "when: 'x' must be a categorical param defined above"),
    "storage url": (None, ["--storage", "not a url"], "--storage 'not a url': not a database URL"),
    "eval runs": (None, ["--eval-runs", "0"], "--eval-runs 0: input should be greater than or equal to 1"),
    "sampler": (None, ["--sampler", "grid"], "--sampler grid: input should be"),
    "trials not a number": (None, ["--trials", "many"], "--trials many: input should be a valid integer"),
    "config file": (write("configs/orchestrator.toml", "eval_runz = 3\n"), [], "orchestrator.toml: eval_runz: unknown"),
    "corrupt incumbent": (write("configs/best/fhs/BTCUSD.json", '{"params": {"context_length": 3'), [],
                          "configs/best/fhs/BTCUSD.json: corrupt incumbent"),
    "incumbent without params": (write("configs/best/fhs/BTCUSD.json", '{"symbol": "BTCUSD"}'), [],
                                 "corrupt incumbent (no 'params' object)"),
}


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(workdir: Path, case: str) -> None:
    setup, extra, expected = CASES[case]
    if setup is not None:
        setup(workdir)
    before = snapshot(workdir)
    args = {"--model": "fhs", "--symbol": "BTCUSD", "--trials": "3"}
    args.update(dict(zip(extra[::2], extra[1::2])))
    result = cli("optimize", *[x for kv in args.items() for x in kv])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert snapshot(workdir) == before  # nothing written, nothing changed: no study, no best file, no history
    assert not (workdir / "studies").exists()
