"""The leaderboard: every family's committed config and naive on bars no compared config was selected on, arch's
model confidence set, the champion per symbol, champions.json and the report's section (headless Chromium)."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from arch.bootstrap import MCS
from conftest import FAST_CONFIG, cli, read_json
from test_toto import TINY, write_checkpoint

from orchestrator.data import Windows, load_series, write_synthetic
from orchestrator.scoring.evaluation import Evaluator, naive_errors
from orchestrator.scoring.evidence import paired_evidence
from orchestrator.decisions.leaderboard import MCS_REPS, NAIVE, rank
from orchestrator.models.base import ModelOptions, create
from orchestrator.models.fhs import FHSForecaster

CHROMIUM = Path("/usr/bin/chromium")
PNG = b"\x89PNG\r\n\x1a\n"
WINDOWS = ("--val-windows", "60", "--test-windows", "20")
TOTO_SPACE = """
[context_length]
type = "categorical"
choices = [64]
[num_samples]
type = "int"
low = 64
high = 128
[aggregate]
type = "categorical"
choices = ["mean", "median"]
"""
KRONOS_SPACE = """
[max_context]
type = "int"
low = 64
high = 64
[clip]
type = "float"
low = 3.0
high = 3.0
[temperature]
type = "float"
low = 0.5
high = 1.0
[sample_count]
type = "int"
low = 8
high = 16
[aggregate]
type = "categorical"
choices = ["mean", "median"]
"""
WORSE_FHS = """
[context_length]
type = "int"
low = 32
high = 32
[ewma_halflife]
type = "float"
low = 2.0
high = 2.0
[num_samples]
type = "int"
low = 64
high = 64
[aggregate]
type = "categorical"
choices = ["quantile_0.2"]
"""


def keep_rows(symbol: str, rows: int, full: str) -> None:
    Path(f"trainingdata/{symbol}.csv").write_text("".join(full.splitlines(keepends=True)[: rows + 1]))


def optimize(model: str, symbol: str, *extra: str) -> str:
    result = cli("optimize", "--model", model, "--symbol", symbol, *WINDOWS, "--eval-runs", "1", "--confirm-runs", "2",
                 *extra)
    assert result.exit_code == 0, result.output
    return result.stdout


def leaderboard(*extra: str):
    return cli("leaderboard", "--json", "--runs", "3", *extra)


@pytest.fixture(scope="module")
def families(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A working directory where BTCUSD has committed fhs, Kronos and Toto configs (tiny random checkpoints) decided
    on 400, 450 and 480 of its 600 bars, and a later fhs decision on 520 bars that kept its incumbent; SPY has fhs
    reading adj_close and Toto reading close. The leaderboard has been run once (its JSON is in "first")."""
    from kronos_finance._vendor.kronos_model import Kronos, KronosTokenizer

    root = tmp_path_factory.mktemp("families")
    toto = write_checkpoint(root / "toto", TINY)
    torch.manual_seed(0)
    Kronos(s1_bits=4, s2_bits=4, n_layers=2, d_model=32, n_heads=4, ff_dim=64, ffn_dropout_p=0.0, attn_dropout_p=0.0,
           resid_dropout_p=0.0, token_dropout_p=0.0, learn_te=True).save_pretrained(root / "kronos")
    KronosTokenizer(d_in=6, d_model=32, n_heads=4, ff_dim=64, n_enc_layers=2, n_dec_layers=2, ffn_dropout_p=0.0,
                    attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=4, s2_bits=4, beta=0.05, gamma0=1.0, gamma=1.1,
                    zeta=0.05, group_size=4).save_pretrained(root / "tokenizer")
    work = root / "work"
    write_synthetic(work / "trainingdata", ["BTCUSD", "SPY"], rows=600)
    (work / "configs").mkdir()
    (work / "configs" / "orchestrator.toml").write_text(FAST_CONFIG)
    (work / "toto.toml").write_text(TOTO_SPACE)
    (work / "kronos.toml").write_text(KRONOS_SPACE)
    (work / "worse.toml").write_text(WORSE_FHS)
    spy = pd.read_csv(work / "trainingdata" / "SPY.csv")
    spy["adj_close"] = spy["close"] * np.linspace(0.9, 1.0, len(spy))  # dividends folded into the past
    spy.to_csv(work / "trainingdata" / "SPY.csv", index=False, float_format="%.6f")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        full = Path("trainingdata/BTCUSD.csv").read_text()
        keep_rows("BTCUSD", 400, full)
        optimize("fhs", "BTCUSD", "--trials", "4")
        keep_rows("BTCUSD", 450, full)
        optimize("kronos", "BTCUSD", "--trials", "2", "--space", "kronos.toml", "--weights", str(root / "kronos"),
                 "--tokenizer", str(root / "tokenizer"), "--device", "cpu")
        keep_rows("BTCUSD", 480, full)
        optimize("toto", "BTCUSD", "--trials", "2", "--space", "toto.toml", "--weights", str(toto), "--device", "cpu")
        keep_rows("BTCUSD", 520, full)
        assert "NOT updating fhs/BTCUSD" in optimize("fhs", "BTCUSD", "--trials", "1", "--space", "worse.toml",
                                                     "--fresh")
        Path("trainingdata/BTCUSD.csv").write_text(full)
        optimize("fhs", "SPY", "--trials", "2", "--price", "adj_close")
        optimize("toto", "SPY", "--trials", "1", "--space", "toto.toml", "--weights", str(toto), "--device", "cpu")
        first = leaderboard("--device", "cpu")
        yield {"work": work, "root": root, "toto": toto, "first": first}


def rows_of(result) -> dict[str, dict]:
    return {row["symbol"]: row for row in json.loads(result.stdout)["symbols"]}


def test_every_family_is_scored_on_the_bars_none_was_selected_on(families: dict) -> None:
    work, root = families["work"], families["root"]
    result = families["first"]
    assert result.exit_code == 2  # SPY: its families read the file differently (the next test)
    row = rows_of(result)["BTCUSD"]
    stamps = load_series(work / "trainingdata", "BTCUSD").frame["timestamp"]
    # validation windows end 20 test windows before each decision's last bar; the kept fhs decision on 520 bars counts
    assert row["models"]["fhs"]["selected_until"] == stamps[499].isoformat()
    assert row["models"]["kronos"]["selected_until"] == stamps[429].isoformat()
    assert row["models"]["toto"]["selected_until"] == stamps[459].isoformat()
    assert row["windows"] == {"count": 100, "first": stamps[500].isoformat(), "last": stamps[599].isoformat()}
    # the same errors by hand: each committed config on bars 500..599, 3 runs of seed 0 (common random numbers)
    options = {"fhs": ModelOptions(), "toto": ModelOptions("cpu", str(families["toto"])),
               "kronos": ModelOptions("cpu", str(root / "kronos"), str(root / "tokenizer"))}
    ends = np.arange(500, 600)
    errors = {}
    for model in ("fhs", "kronos", "toto"):
        forecaster = create(model, options[model])
        series = load_series(work / "trainingdata", "BTCUSD", forecaster.required_columns,
                             forecaster.optional_columns)
        params = read_json(work / f"configs/best/{model}/BTCUSD.json")["params"]
        assert row["models"][model]["params"] == params and row["models"][model]["runs"] == 3
        errors[model] = Evaluator(forecaster, series, Windows(ends, ends), seed=0).evaluate(params, range(3)).window_errors
    errors[NAIVE] = naive_errors(series, ends)
    for model, e in errors.items():
        assert row["models"][model]["mae"] == pytest.approx(e.mean(), rel=1e-9)
        if model != NAIVE:
            evidence = paired_evidence(e, errors[NAIVE])
            assert row["models"][model]["evidence"]["improvement"] == pytest.approx(evidence.improvement)
            assert row["models"][model]["evidence"]["p_value"] == pytest.approx(evidence.p_value)
    mcs = MCS(pd.DataFrame(errors), size=0.10, reps=MCS_REPS, method="R", seed=0)
    mcs.compute()
    assert sorted(row["set"]) == sorted(mcs.included)
    for model, p in mcs.pvalues["Pvalue"].items():
        assert row["models"][model]["mcs_p_value"] == pytest.approx(p)
    best = min(row["set"], key=lambda m: errors[m].mean())
    assert row["champion"] == (None if NAIVE in row["set"] else best)
    assert row["verdict"] == ("none" if NAIVE in row["set"] else "clear" if len(row["set"]) == 1 else "tied")
    # the file a trading system reads holds the same row; a second run repeats it exactly (seeded)
    saved = read_json(work / "configs/best/champions.json")["symbols"]
    assert set(saved) == {"BTCUSD"}
    assert {k: v for k, v in saved["BTCUSD"].items() if k != "time"} == {k: v for k, v in row.items() if k != "time"}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        again = rows_of(leaderboard("--device", "cpu", "--symbols", "BTCUSD"))["BTCUSD"]
        table = cli("leaderboard", "--runs", "3", "--symbols", "BTCUSD", "--models", "fhs")
    assert {k: v for k, v in again.items() if k != "time"} == {k: v for k, v in row.items() if k != "time"}
    assert table.exit_code == 0 and "BTCUSD: 100 windows" in table.stdout and "naive" in table.stdout
    assert "not written to champions.json" in table.stdout and "kronos: left out by --models" in table.stdout
    now = read_json(work / "configs/best/champions.json")["symbols"]["BTCUSD"]
    assert set(now["models"]) == {"fhs", "kronos", "toto", NAIVE}  # a subset of the families never replaces it


def test_crps_and_coverage_beside_mae_by_hand(families: dict) -> None:
    """Sampling families: the fair CRPS (scoringrules' energy form, O(n^2), as the reference) and the 80% / 90%
    intervals of the draws of the leaderboard's 3 runs pooled; naive: the demeaned 250 returns before each bar. In the
    JSON, champions.json and the second table; the champion is still the best member by MAE."""
    import scoringrules
    from rich.console import Console

    from orchestrator.decisions.spread_table import score_table

    work, root = families["work"], families["root"]
    row = rows_of(families["first"])["BTCUSD"]
    stamps = [t.isoformat() for t in load_series(work / "trainingdata", "BTCUSD").frame["timestamp"]]
    ends = np.arange(stamps.index(row["windows"]["first"]), stamps.index(row["windows"]["last"]) + 1)
    options = {"fhs": ModelOptions(), "toto": ModelOptions("cpu", str(families["toto"])),
               "kronos": ModelOptions("cpu", str(root / "kronos"), str(root / "tokenizer"))}
    for model in ("fhs", "kronos", "toto"):
        forecaster = create(model, options[model])
        series = load_series(work / "trainingdata", "BTCUSD", forecaster.required_columns,
                             forecaster.optional_columns)
        params = read_json(work / f"configs/best/{model}/BTCUSD.json")["params"]
        evaluator = Evaluator(forecaster, series, Windows(ends, ends), seed=0)
        previous, actual = series.close[ends - 1], series.close[ends]
        draws = torch.cat([evaluator.samples(params, "validation", run) for run in range(3)], dim=1).numpy()
        returns, y = draws / previous[:, None] - 1, actual / previous - 1
        m = row["models"][model]
        fair = scoringrules.crps_ensemble(y, returns, estimator="fair", backend="numpy")
        assert m["crps"] == pytest.approx(fair.mean(), rel=1e-9) and m["crps_approximate"] is False
        for level, (low, high) in {"80": (0.1, 0.9), "90": (0.05, 0.95)}.items():
            lo, hi = np.quantile(returns, [low, high], axis=1)
            assert m["coverage"][level]["rate"] == np.mean((lo <= y) & (y <= hi))
            assert m["coverage"][level]["bars"] == len(ends)
    close = series.close
    returns = close[1:] / close[:-1] - 1
    naive = np.stack([returns[t - 251: t - 1] - returns[t - 251: t - 1].mean() for t in ends])
    y = close[ends] / close[ends - 1] - 1
    assert row["models"][NAIVE]["crps"] == pytest.approx(
        scoringrules.crps_ensemble(y, naive, estimator="fair", backend="numpy").mean(), rel=1e-9)
    lo, hi = np.quantile(naive, [0.1, 0.9], axis=1)
    assert row["models"][NAIVE]["coverage"]["80"] == {"level": 0.8, "rate": np.mean((lo <= y) & (y <= hi)),
                                                       "se": pytest.approx(np.sqrt(0.16 / len(ends))),
                                                       "bars": len(ends)}
    assert row["champion"] in (None, min(row["set"], key=lambda name: row["models"][name]["mae"]))
    saved = read_json(work / "configs/best/champions.json")["symbols"]["BTCUSD"]["models"]
    assert saved["toto"]["coverage"] == row["models"]["toto"]["coverage"]
    console = Console(width=80, record=True)
    console.print(score_table([row]))
    text = console.export_text()
    assert max(map(len, text.splitlines())) <= 80
    assert f"{row['models']['toto']['crps']:.5f}" in text and f"± {np.sqrt(0.16 / len(ends)):.0%}" in text


def test_families_that_read_the_file_differently_are_refused(families: dict) -> None:
    result = families["first"]
    assert "SPY" not in rows_of(result)
    (line,) = [p for p in json.loads(result.stdout)["problems"] if p.startswith("SPY")]
    assert "read" in line and "differently" in line and "price adj_close" in line and "price close" in line
    assert result.stderr.count("\n") == 1  # one line


def test_weights_that_cannot_load_leave_the_model_out_and_the_file_untouched(families: dict) -> None:
    work, root = families["work"], families["root"]
    before = (work / "configs/best/champions.json").read_bytes()
    (root / "kronos").rename(root / "kronos.away")
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(work)
            result = leaderboard("--device", "cpu", "--symbols", "BTCUSD")
    finally:
        (root / "kronos.away").rename(root / "kronos")
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: kronos/BTCUSD: ") and "--weights" in line
    row = rows_of(result)["BTCUSD"]
    assert set(row["models"]) == {"fhs", "toto", NAIVE} and "kronos" in row["not_compared"]
    assert (work / "configs/best/champions.json").read_bytes() == before  # a champion without kronos is not written


def test_the_report_shows_the_champions_in_a_browser(families: dict, tmp_path: Path) -> None:
    work = families["work"]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        result = cli("report", "--out", str(tmp_path / "report.html"))
    assert result.exit_code == 0, result.output
    page = (tmp_path / "report.html").read_text()
    section = page.split('<section id="champions">')[1].split("</section>")[0]
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', section)
    assert len(images) == 2 and all(base64.b64decode(i).startswith(PNG) for i in images)  # overview + BTCUSD
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium package (apt-get install -y chromium)")
    screenshot = tmp_path / "report.png"
    browser = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}",
         "--window-size=1400,1000", f"--screenshot={screenshot}", "--dump-dom", (tmp_path / "report.html").as_uri()],
        capture_output=True, text=True, timeout=90,
    )
    assert browser.returncode == 0, browser.stderr[-2000:]
    champions = browser.stdout.split('<section id="champions">')[1].split("</section>")[0]
    text = unescape(re.sub(r"<[^>]+>", "\n", champions))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    row = rows_of(families["first"])["BTCUSD"]
    assert row["line"] in lines
    for name, m in row["models"].items():  # the table: one row per model, naive included, set members marked
        at = lines.index(name)
        assert lines[at + 1] == f"{m['mae']:.5f}" and lines[at + 4] == ("yes" if m["in_set"] else "no")
        c80, c90 = m["coverage"]["80"], m["coverage"]["90"]
        assert lines[at + 5: at + 8] == [f"{m['crps']:.5f}", f"{c80['rate']:.0%} ± {c80['se']:.0%}",
                                         f"{c90['rate']:.0%} ± {c90['se']:.0%}"]
    assert any(line.startswith("Beside MAE (which chooses the champion): CRPS") for line in lines)
    rendered = re.findall(r'<img alt="([^"]+)" src="data:image/png', champions)
    assert rendered == ["champions across symbols", "BTCUSD: MAE against the naive forecast"]
    assert screenshot.read_bytes().startswith(PNG) and screenshot.stat().st_size > 20_000


def test_rank_is_arch_mcs_and_names_the_champion() -> None:
    rng = np.random.default_rng(7)
    naive = np.abs(rng.standard_t(4, 250)) * 0.01
    noisy = lambda scale: naive * scale * np.exp(0.1 * rng.standard_normal(250))  # noqa: E731
    cases = {
        "clear": {"toto": noisy(0.7), "kronos": noisy(1.0)},
        "tied": {"toto": noisy(0.7), "kronos": noisy(0.7)},
        "none": {"toto": noisy(1.0), "kronos": noisy(1.1)},
    }
    for kind, models in cases.items():
        errors = {**models, NAIVE: naive}
        ranking = rank(errors, 0.9, seed=3)
        mcs = MCS(pd.DataFrame(errors), size=0.1, reps=MCS_REPS, method="R", seed=3)
        mcs.compute()
        assert sorted(ranking.members) == sorted(mcs.included), kind
        assert ranking.pvalues == pytest.approx(mcs.pvalues["Pvalue"].to_dict())
        assert ranking.kind == kind
        for name, e in models.items():
            assert ranking.evidence[name] == paired_evidence(e, naive)
    tied = rank({**cases["tied"], NAIVE: naive}, 0.9, seed=3)
    best = min(cases["tied"], key=lambda m: cases["tied"][m].mean())
    other = ({"toto", "kronos"} - {best}).pop()
    assert tied.champion == best and tied.verdict == f"tied with {other}"
    assert rank({**cases["none"], NAIVE: naive}, 0.9, seed=3).verdict == "none: naive is as good"


def test_bad_input_is_one_line_each_and_the_rest_is_scored(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    btc, eth = (Path(f"trainingdata/{s}.csv").read_text() for s in ("BTCUSD", "ETHUSD"))
    keep_rows("BTCUSD", 500, btc)
    keep_rows("ETHUSD", 500, eth)
    optimize("fhs", "BTCUSD", "--trials", "2")
    optimize("fhs", "ETHUSD", "--trials", "2")
    Path("trainingdata/BTCUSD.csv").write_text(btc)
    lines = eth.splitlines(keepends=True)
    fields = lines[100].split(",")
    fields[4] = f"{float(fields[4]) * 1.01:.6f}"  # one close re-adjusted long before the decision
    lines[100] = ",".join(fields)
    Path("trainingdata/ETHUSD.csv").write_text("".join(lines))
    result = leaderboard("--symbols", "BTCUSD,ETHUSD,NOPE", "--models", "fhs,bogus")
    assert result.exit_code == 2
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 3
    assert any("model 'bogus': unknown" in e for e in errors)
    assert any("symbol NOPE: no committed config" in e for e in errors)
    assert any(e.startswith("error: fhs/ETHUSD: ") and "rewritten or re-adjusted" in e for e in errors)
    assert set(rows_of(result)) == {"BTCUSD"} and rows_of(result)["BTCUSD"]["windows"]["count"] == 220
    assert set(read_json(Path("configs/best/champions.json"))["symbols"]) == {"BTCUSD"}
    # a deterministic family (Forecaster.stochastic False, as Toto 2's quantiles) is scored with one run
    monkeypatch.setattr(FHSForecaster, "stochastic", False)
    row = rows_of(leaderboard("--symbols", "BTCUSD"))["BTCUSD"]
    params = read_json(Path("configs/best/fhs/BTCUSD.json"))["params"]
    ends = np.arange(480, 700)
    one = Evaluator(create("fhs", ModelOptions()), load_series(Path("trainingdata"), "BTCUSD"), Windows(ends, ends),
                    seed=0).evaluate(params, range(1))
    assert row["models"]["fhs"]["runs"] == 1 and row["models"]["fhs"]["mae"] == pytest.approx(one.mae, rel=1e-12)


def test_too_few_windows_skip_the_symbol_with_what_is_missing(workdir: Path) -> None:
    optimize("fhs", "BTCUSD", "--trials", "2")  # on all 700 bars: only its 20 test windows were not selected on
    result = leaderboard()
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["symbols"] == [] and report["written"] is None
    (note,) = report["notes"]
    assert note.startswith("BTCUSD: 20 windows") and "30 are needed: 10 more bars" in note
    assert not Path("configs/best/champions.json").exists()


def test_a_config_without_provenance_and_a_corrupt_champions_file_are_refused(workdir: Path) -> None:
    Path("configs/best/fhs").mkdir(parents=True)
    Path("configs/best/fhs/BTCUSD.json").write_text(json.dumps({"params": {"context_length": 64}}))
    result = leaderboard()
    assert result.exit_code == 2 and "no record of the windows it was selected on" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not Path("configs/best/champions.json").exists()
    Path("configs/best/champions.json").write_text("{not json")
    corrupt = leaderboard()
    assert corrupt.exit_code == 2 and "corrupt champions file" in corrupt.stderr and corrupt.stdout == ""
    assert Path("configs/best/champions.json").read_text() == "{not json"
    Path("configs/best/fhs/BTCUSD.json").unlink()
    Path("configs/best/champions.json").unlink()
    assert "no committed configs" in leaderboard().stderr
