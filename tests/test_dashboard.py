"""The dashboard on real fhs studies (server, JSON API, decision note and plots, headless Chromium) and the report."""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from html import unescape
from pathlib import Path

import optuna
import pytest
from conftest import cli, cli_subprocess, read_json

CHROMIUM = Path("/usr/bin/chromium")
PNG = b"\x89PNG\r\n\x1a\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> bytes:
    # optuna-dashboard 0.21 answers 500 to static requests without Accept-Encoding; browsers always send one
    request = urllib.request.Request(url, headers={"Accept-Encoding": "identity"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


@contextmanager
def dashboard(workdir: Path) -> Iterator[str]:
    """`orchestrator dashboard` in a subprocess on a free port; yields its base URL, terminates it at the end."""
    port = free_port()
    server = cli_subprocess("dashboard", "--storage", f"sqlite:///{workdir}/studies/optuna.db", "--port", str(port),
                            "--artifact-dir", str(workdir / "studies" / "artifacts"), cwd=workdir)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, f"dashboard exited {server.returncode}: {server.communicate()[1]}"
            assert time.monotonic() < deadline, "dashboard did not answer within 30 s"
            try:
                fetch(base + "/api/meta")
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.communicate(timeout=10)


def study_id(base: str, name: str) -> int:
    studies = json.loads(fetch(base + "/api/studies"))["study_summaries"]
    return next(s["study_id"] for s in studies if s["study_name"] == name)


def committed_trial(symbol: str) -> int:
    return read_json(Path(f"configs/best/fhs/{symbol}.json"))["study"]["trial"]


def test_dashboard_serves_the_decision_note_and_plots(workdir: Path) -> None:
    assert cli("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "8").exit_code == 0
    trial = committed_trial("BTCUSD")
    with dashboard(workdir) as base:
        sid = study_id(base, "fhs/BTCUSD")
        detail = json.loads(fetch(f"{base}/api/studies/{sid}"))
        assert detail["name"] == "fhs/BTCUSD" and len(detail["trials"]) == 8
        attrs = {a["key"] for a in detail["trials"][trial]["user_attrs"]}
        assert {"run_maes", "sem"} <= attrs  # per-run MAEs and standard errors are shown per trial
        note = detail["note"]["body"]
        assert "UPDATING fhs/BTCUSD" in note and f"Candidate: trial {trial}" in note
        assert re.search(r"\| validation MAE \(250 windows\) \| 0\.\d{5} ± \S+ \| - \| 0\.\d{5} \|", note), note
        artifacts = {a["filename"]: a for a in detail["artifacts"]}
        assert set(artifacts) == {f"forecast_trial{trial}.png", f"run_maes_trial{trial}.png"}
        for artifact in artifacts.values():
            assert artifact["mimetype"] == "image/png"
            assert fetch(f"{base}/artifacts/{sid}/{artifact['artifact_id']}").startswith(PNG)


def chromium(workdir: Path, page: str, *options: str) -> str:
    """The DOM headless Chromium built for `page`."""
    browser = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={workdir / 'chromium'}",
         "--virtual-time-budget=15000", "--window-size=1400,1000", *options, "--dump-dom", page],
        capture_output=True, text=True, timeout=90,
    )
    assert browser.returncode == 0, browser.stderr[-2000:]
    return browser.stdout


def text_lines(dom: str) -> set[str]:
    text = unescape(re.sub(r"<[^>]+>", "\n", re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.S)))
    return {line.strip() for line in text.splitlines()}


def test_chromium_renders_the_study_page_and_the_report_notes(workdir: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium package (apt-get install -y chromium)")
    assert cli("optimize", "--model", "fhs", "--symbol", "BTCUSD", "--trials", "8").exit_code == 0
    screenshot = workdir / "trials.png"
    with dashboard(workdir) as base:
        sid = study_id(base, "fhs/BTCUSD")
        lines = text_lines(chromium(workdir, f"{base}/dashboard/studies/{sid}/trials", f"--screenshot={screenshot}"))
    assert f"fhs/BTCUSD (id={sid})" in lines  # rendered by the React app, not in the served HTML
    assert "8 Trials" in lines
    assert screenshot.read_bytes().startswith(PNG) and screenshot.stat().st_size > 20_000
    # the report's decision notes are HTML (before: raw Markdown in a collapsed <pre>)
    assert cli("report", "--out", "report.html").exit_code == 0
    dom = chromium(workdir, (workdir / "report.html").as_uri())
    notes = dom.split('<div class="notes">')[1].split("</div>")[0]
    assert re.search(r"<strong>UPDATING fhs/BTCUSD: MAE 0\.\d{5} \(no incumbent\)", notes)
    cells = re.findall(r"<td>([^<]*)</td>", notes)
    assert "<table>" in notes and cells[0] == "validation MAE (250 windows)"
    assert re.fullmatch(r"0\.\d{5} ± \S+", cells[1])  # the candidate's MAE, in its own cell
    assert "<pre" not in dom and "|---|" not in dom and "**" not in "\n".join(text_lines(notes))


def test_report_is_self_contained_and_covers_every_study(workdir: Path) -> None:
    for symbol in ("BTCUSD", "ETHUSD"):
        assert cli("optimize", "--model", "fhs", "--symbol", symbol, "--trials", "8").exit_code == 0
    result = cli("report", "--out", "out/report.html")
    assert result.exit_code == 0 and "out/report.html" in result.stdout
    page = Path("out/report.html").read_text()
    links = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page)
    assert links and all(link.startswith("data:image/png;base64,") for link in links)
    assert not re.search(r"<script|<link|https?://", page)
    for symbol in ("BTCUSD", "ETHUSD"):
        section = page.split(f'<section id="fhs/{symbol}">')[1].split("</section>")[0]
        assert f"<td>fhs/{symbol}</td>" in page
        assert "optimisation history" in section and "parameter importances" in section
        assert f"forecast_trial{committed_trial(symbol)}.png" in section
        images = re.findall(r'src="data:image/png;base64,([^"]+)"', section)
        assert len(images) == 4 and all(base64.b64decode(i).startswith(PNG) for i in images)


def test_dashboard_and_report_refuse_a_missing_storage_or_a_busy_port(workdir: Path) -> None:
    for command in ("report", "dashboard"):
        result = cli(command, "--storage", "sqlite:///nowhere/optuna.db")
        assert result.exit_code == 2 and "no such database" in result.stderr
    assert not Path("nowhere").exists()
    assert cli("report", "--storage", "not a url").exit_code == 2
    Path("studies").mkdir()
    optuna.create_study(study_name="empty", storage="sqlite:///studies/optuna.db")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = cli("dashboard", "--port", str(busy.getsockname()[1]))
    assert result.exit_code == 2 and "cannot listen" in result.stderr
