"""The `orchestrator` command line. Thin: parse, call one function, print."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, Optional

import optuna
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from orchestrator.commit import best_path, read_config
from orchestrator.errors import BadInput
from orchestrator.evidence import evidence_text
from orchestrator.models.base import ModelOptions
from orchestrator.settings import Settings, load_settings

app = typer.Typer(
    help="Tune stochastic forecasters per symbol with Optuna; commit a config only when it beats the incumbent.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)  # pipes and files get whole rows


def exits_2_on_bad_input(command: Callable[..., Any]) -> Callable[..., Any]:
    """Bad input: one line on stderr, exit code 2. Anything unexpected keeps its traceback and exits 1."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            return command(*args, **kwargs)
        except BadInput as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper


Storage = Annotated[Optional[str], typer.Option(help="Optuna storage URL [default: sqlite:///studies/optuna.db]")]
BestDir = Annotated[Optional[Path], typer.Option(help="Committed configs: <best-dir>/<model>/<SYMBOL>.json")]
Trials = Annotated[Optional[int], typer.Option(help="Target number of finished trials per study [default: 100]")]
EvalRuns = Annotated[Optional[int], typer.Option(help="Runs per trial, averaged [default: 3]")]
ConfirmRuns = Annotated[Optional[int], typer.Option(help="Fresh runs for candidate vs incumbent [default: 3]")]
Sampler = Annotated[Optional[str], typer.Option(help="tpe | cmaes [default: tpe]")]
Seed = Annotated[Optional[int], typer.Option(help="Study seed [default: 0]")]
Patience = Annotated[Optional[int], typer.Option(help="Stop after K finished trials without improvement")]
Budget = Annotated[Optional[float], typer.Option(help="Wall-clock seconds per study (and worker)")]
TimeoutPercentile = Annotated[Optional[float], typer.Option(help="Trial timeout: percentile of earlier durations [default: 95]")]
TimeoutFactor = Annotated[Optional[float], typer.Option(help="Trial timeout: factor on that percentile [default: 5]")]
TimeoutMin = Annotated[Optional[float], typer.Option(help="Trial timeout: never below these seconds [default: 60]")]
DataDir = Annotated[Optional[Path], typer.Option(help="Directory of <SYMBOL>.csv files [default: trainingdata]")]
SpaceFile = Annotated[Optional[Path], typer.Option("--space", help="Search space TOML replacing configs/spaces/<model>.toml")]
ValWindows = Annotated[Optional[int], typer.Option(help="At most this many validation windows, as many as the data allow [default: 250]")]
TestWindows = Annotated[Optional[int], typer.Option(help="Test windows, never used for selection [default: 60]")]
CommitRule = Annotated[Optional[str], typer.Option(help="significant: commit only when the paired test is confident the candidate is better; any: any improvement [default: significant]")]
MinConfidence = Annotated[Optional[float], typer.Option(help="Confidence the candidate is better, for --commit-rule significant [default: 0.95]")]
Price = Annotated[Optional[str], typer.Option(help="The column used as close, e.g. adj_close [default: close, or the file's only price column]")]
DropMissing = Annotated[Optional[bool], typer.Option("--drop-missing/--no-drop-missing", help="Drop rows with blank or '.' cells (recorded) instead of refusing the file [default: no]")]
DayFirst = Annotated[Optional[bool], typer.Option("--dayfirst/--no-dayfirst", help="Dates with slashes are day-first (31/12/2024) [default: month-first]")]
Device = Annotated[Optional[str], typer.Option(help="auto | cpu | cuda [default: auto]")]
Weights = Annotated[Optional[str], typer.Option(help="Model weights: Hugging Face id or local directory")]
Tokenizer = Annotated[Optional[str], typer.Option(help="Kronos tokenizer: Hugging Face id or local directory")]
Compile = Annotated[Optional[bool], typer.Option("--compile/--no-compile", help="torch.compile the encode [default: on for CUDA]")]
Transfer = Annotated[Optional[bool], typer.Option("--transfer/--no-transfer", help="Warm-start from other symbols' committed configs [default: on]")]
Fresh = Annotated[bool, typer.Option(help="Archive an existing study of the same model and symbol and start anew")]


@app.command()
@exits_2_on_bad_input
def optimize(
    model: Annotated[str, typer.Option(help="fhs | toto | toto2 | kronos")],
    symbol: Annotated[str, typer.Option(help="Reads <data-dir>/<SYMBOL>.csv")],
    trials: Trials = None, eval_runs: EvalRuns = None, confirm_runs: ConfirmRuns = None, sampler: Sampler = None,
    seed: Seed = None, patience: Patience = None, budget: Budget = None, timeout_percentile: TimeoutPercentile = None,
    timeout_factor: TimeoutFactor = None, timeout_min_seconds: TimeoutMin = None, storage: Storage = None,
    data_dir: DataDir = None, best_dir: BestDir = None, space: SpaceFile = None, val_windows: ValWindows = None,
    test_windows: TestWindows = None, device: Device = None, weights: Weights = None, tokenizer: Tokenizer = None,
    compile: Compile = None, transfer: Transfer = None, fresh: Fresh = False, commit_rule: CommitRule = None,
    min_confidence: MinConfidence = None, price: Price = None, drop_missing: DropMissing = None,
    dayfirst: DayFirst = None,
) -> None:
    """Run (or resume) the study <model>/<SYMBOL> to its target, then commit its best config if it beats the incumbent.

    A resumed study keeps the windows, runs, seed, data options and commit rule it was created with unless a flag
    sets them (another value for a setting that changes trial values needs --fresh).
    """
    from orchestrator.dashboard import record_decision
    from orchestrator.progress import StudyProgress
    from orchestrator.study import optimize as run, prepare, resumed_settings

    overrides = {k: v for k, v in locals().items() if k in Settings.model_fields}
    settings = load_settings(overrides)
    if not fresh:
        settings = resumed_settings(model, symbol, settings, {k for k, v in overrides.items() if v is not None})
    options = ModelOptions(device=settings.device, weights=weights, tokenizer=tokenizer, compile=compile)
    job = prepare(model, symbol, settings, options, space)
    with StudyProgress(out, job) as progress:
        outcome, done = run(job, fresh=fresh, record=record_decision, callbacks=[progress])
    c = outcome.counts
    for note in (*done.notes, *outcome.notes):
        out.print(note, highlight=False)
    out.print(f"study {outcome.study}: {c.finished}/{settings.trials} finished trials (complete {c.complete}, "
              f"pruned {c.pruned}, failed {c.failed}); stopped: {outcome.stopped}")
    if outcome.best_value is not None:
        out.print(f"best validation MAE {outcome.best_value:.5f} on {job.settings.eval_runs} run(s); "
                  f"naive zero-return MAE {outcome.naive_mae:.5f}")
    out.print(outcome.decision_line, highlight=False)
    if outcome.decision is not None and outcome.decision.committed and not outcome.decision.earlier:
        out.print(f"wrote {outcome.decision.path}")


@app.command()
@exits_2_on_bad_input
def launch(
    models: Annotated[str, typer.Option(help="Comma-separated models, e.g. toto,toto2,kronos")],
    symbols: Annotated[Optional[str], typer.Option(help="Comma-separated symbols [default: every CSV in --data-dir]")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes at a time (one GPU each when several are visible)")] = 1,
    jobs_per_study: Annotated[int, typer.Option(min=1, help="Processes per study, each with its own sampler seed")] = 1,
    save_summary: Annotated[Optional[Path], typer.Option(help="Write the summary as JSON")] = None,
    trials: Trials = None, eval_runs: EvalRuns = None, confirm_runs: ConfirmRuns = None, sampler: Sampler = None,
    seed: Seed = None, patience: Patience = None, budget: Budget = None, timeout_percentile: TimeoutPercentile = None,
    timeout_factor: TimeoutFactor = None, timeout_min_seconds: TimeoutMin = None, storage: Storage = None,
    data_dir: DataDir = None, best_dir: BestDir = None, space: SpaceFile = None, val_windows: ValWindows = None,
    test_windows: TestWindows = None, device: Device = None, weights: Weights = None, tokenizer: Tokenizer = None,
    compile: Compile = None, transfer: Transfer = None, fresh: Fresh = False, commit_rule: CommitRule = None,
    min_confidence: MinConfidence = None, price: Price = None, drop_missing: DropMissing = None,
    dayfirst: DayFirst = None,
) -> None:
    """One study per (model, symbol), --workers at a time in separate processes, with a live view and a summary.

    Each file's close is its `close` column, or --price, or its only numeric column. Resumed studies keep their
    recorded settings unless a flag sets them, as with `optimize`.
    """
    from orchestrator.data import symbols_in
    from orchestrator.launcher import launch as run
    from orchestrator.study import prepare, resumed_settings

    overrides = {k: v for k, v in locals().items() if k in Settings.model_fields}
    settings = load_settings(overrides)
    explicit = {k for k, v in overrides.items() if v is not None}
    options = ModelOptions(device=settings.device, weights=weights, tokenizer=tokenizer, compile=compile)
    chosen = _split(symbols) if symbols else symbols_in(settings.data_dir)
    jobs = [prepare(m, s, settings if fresh else resumed_settings(m, s, settings, explicit), options, space)
            for m in _split(models) for s in chosen]
    for job in jobs:
        for note in job.notes:
            out.print(note, highlight=False)
    rows = run(jobs, workers, jobs_per_study, out, Path("studies/logs"), fresh=fresh)
    _finish(rows, save_summary)


@app.command()
@exits_2_on_bad_input
def resume(
    storage: Storage = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes at a time")] = 1,
    save_summary: Annotated[Optional[Path], typer.Option(help="Write the summary as JSON")] = None,
) -> None:
    """Continue every unfinished study in the storage to its recorded target with its recorded settings."""
    from orchestrator.launcher import launch as run, resumable_jobs

    jobs = resumable_jobs(load_settings(dict(storage=storage)), out)
    if not jobs:
        out.print("nothing to resume: every study reached its target and was decided")
        return
    out.print(f"resuming {len(jobs)} stud{'y' if len(jobs) == 1 else 'ies'}: {', '.join(j.name for j in jobs)}")
    _finish(run(jobs, workers, 1, out, Path("studies/logs")), save_summary)


StudyName = Annotated[str, typer.Option("--study", help="Study name, <model>/<SYMBOL>")]


@app.command()
@exits_2_on_bad_input
def worker(
    study: StudyName,
    storage: Storage = None,
    trials: Annotated[Optional[int], typer.Option(help="Raise the study's target of finished trials")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Where <SYMBOL>.csv is on this machine [default: the path the study recorded]")] = None,
) -> None:
    """Join an existing study (any machine, shared storage) and run trials until it reaches its target."""
    import secrets

    from orchestrator.models.base import create
    from orchestrator.study import raise_target, recorded_job, work

    job = recorded_job(study, load_settings(dict(storage=storage)), data_dir=data_dir)
    forecaster = create(job.model, job.options)  # missing weights: refused before the target changes
    if trials is not None:
        raise_target(job, trials)
    outcome = work(job, worker=secrets.randbelow(1 << 30), commit=False, forecaster=forecaster)  # own sampler seed
    c = outcome.counts
    out.print(f"study {outcome.study}: {c.finished} finished trials (complete {c.complete}, pruned {c.pruned}, "
              f"failed {c.failed}); stopped: {outcome.stopped}")
    out.print(outcome.decision_line, highlight=False)


@app.command()
@exits_2_on_bad_input
def commit(
    study: StudyName,
    storage: Storage = None,
    best_dir: BestDir = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Where <SYMBOL>.csv is on this machine [default: the path the study recorded]")] = None,
    commit_rule: Annotated[Optional[str], typer.Option(help="significant | any [default: the study's rule]")] = None,
    min_confidence: Annotated[Optional[float], typer.Option(help="For --commit-rule significant [default: the study's]")] = None,
) -> None:
    """Run the commit protocol for a study whose trials workers ran; the config is written on this machine."""
    from orchestrator.dashboard import record_decision
    from orchestrator.study import commit_study, recorded_job

    settings = load_settings(dict(storage=storage, best_dir=best_dir, commit_rule=commit_rule,
                                  min_confidence=min_confidence))
    job = recorded_job(study, settings, data_dir=data_dir, best_dir=settings.best_dir, commit_rule=commit_rule,
                       min_confidence=min_confidence)
    decision = commit_study(job, record_decision)
    out.print(decision.line if decision else f"NOT updating {study}: no trial completed", highlight=False)
    if decision is not None and decision.committed and not decision.earlier:
        out.print(f"wrote {decision.path}")


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _finish(rows: list[dict[str, Any]], save_summary: Path | None) -> None:
    from orchestrator.launcher import summary_table

    out.print()
    out.print(summary_table(rows))
    if save_summary is not None:
        save_summary.parent.mkdir(parents=True, exist_ok=True)
        save_summary.write_text(json.dumps(rows, indent=2) + "\n")
        out.print(f"wrote {save_summary}")
    if any(row["status"].startswith("failed") for row in rows):
        raise typer.Exit(1)


Archived = Annotated[bool, typer.Option("--all", help="Also archived studies (<model>/<SYMBOL>@<time>: replaced by --fresh or grown data)")]


@app.command()
@exits_2_on_bad_input
def status(
    storage: Storage = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table")] = False,
    archived: Archived = False,
) -> None:
    """Every current study in the storage: trial counts, target, best value, incumbent value."""
    from orchestrator.summary import summaries

    settings = load_settings(dict(storage=storage))
    rows = summaries(settings.storage, settings, archived)
    if as_json:
        keys = ("study", "model", "symbol", "complete", "pruned", "failed", "running", "target", "best_value",
                "incumbent_value", "naive_mae", "committed", "evidence", "beats_naive", "decision")
        print(json.dumps([{k: r[k] for k in keys} for r in rows], indent=2))
        return
    if not rows:
        out.print(f"no studies in {settings.storage}")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("study", no_wrap=True)
    for header in ("done", "pruned", "failed", "running", "target", "best MAE", "incumbent", "naive", "committed",
                   "evidence"):
        table.add_column(header, justify="right", no_wrap=True)
    fmt = lambda v: "-" if v is None else f"{v:.5f}"  # noqa: E731
    for r in rows:
        committed = {True: "yes", False: "no", None: "-"}[r["committed"]]
        if r["beats_naive"] is False:
            committed += " (not better than naive)"
        table.add_row(r["study"], str(r["complete"] + r["pruned"] + r["failed"]), str(r["pruned"]), str(r["failed"]), str(r["running"]),
                      str(r["target"]), fmt(r["best_value"]), fmt(r["incumbent_value"]), fmt(r["naive_mae"]),
                      committed, evidence_text(r["evidence"]))
    out.print(table)


@app.command()
@exits_2_on_bad_input
def best(
    model: Annotated[str, typer.Option(help="fhs | toto | toto2 | kronos")],
    symbol: Annotated[str, typer.Option(help="Symbol")],
    best_dir: BestDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the committed JSON as is")] = False,
) -> None:
    """The committed config of <model>/<SYMBOL>."""
    settings = load_settings(dict(best_dir=best_dir))
    path = best_path(settings.best_dir, model, symbol)
    record = read_config(path)
    if record is None:
        raise BadInput(f"{path}: no committed config for {model}/{symbol}; run `orchestrator optimize` first")
    if as_json:
        print(json.dumps(record, indent=2))
        return
    out.print(f"{model}/{symbol} ({path}), committed {record.get('committed_at')}")
    out.print(f"params: {json.dumps(record['params'])}", highlight=False)
    for part in ("validation", "test"):
        if isinstance(record.get(part), dict):
            r = record[part]
            out.print(f"{part} MAE {r['mae']:.5f} ± {r['sem']:.5f} ({r['runs']} runs, {r['windows']} windows)")
    previous = record.get("previous")
    if not previous:
        out.print("previous: none")
    elif previous.get("mae") is None:
        out.print(f"previous: {previous.get('error', 'not scored')}")
    else:
        out.print(f"previous MAE {previous['mae']:.5f}")
    if record.get("decision_line"):
        out.print(f"decision: {record['decision_line']}", highlight=False)


@app.command()
@exits_2_on_bad_input
def scorecard(
    best_dir: BestDir = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Where the <SYMBOL>.csv files are now [default: the paths the decisions recorded]")] = None,
    runs: Annotated[int, typer.Option(min=1, help="Runs per config, the same random draws for both")] = 16,
    device: Device = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")] = False,
) -> None:
    """Score every past decision on the bars that arrived after it: did each commit (or rejection) pay off?"""
    from orchestrator.scorecard import as_dict, scorecard as score, summarize, tables

    settings = load_settings(dict(best_dir=best_dir, device=device))
    notes: list[str] = []
    scores, problems = score(settings.best_dir, data_dir, runs, settings.device, notes.append)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    rows, summary = [as_dict(s) for s in scores], summarize(scores)
    if as_json:
        print(json.dumps({"decisions": rows, "summary": summary, "not_scored": notes, "problems": problems}, indent=2))
    else:
        for note in notes:
            out.print(note, highlight=False)
        for table in tables(rows, summary):
            out.print(table)
    if problems:
        raise typer.Exit(2)


@app.command()
@exits_2_on_bad_input
def leaderboard(
    symbols: Annotated[Optional[str], typer.Option(help="Comma-separated symbols [default: every symbol with a committed config]")] = None,
    models: Annotated[Optional[str], typer.Option(help="Comma-separated models [default: every model in --best-dir]")] = None,
    best_dir: BestDir = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Where the <SYMBOL>.csv files are now [default: the paths the decisions recorded]")] = None,
    runs: Annotated[int, typer.Option(min=1, help="Runs per sampling model, the same random draws for all (deterministic models: 1)")] = 16,
    mcs_level: Annotated[float, typer.Option(min=0.5, max=0.999, help="Confidence of the model confidence set")] = 0.90,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the runs and of the bootstrap [default: 0]")] = None,
    device: Device = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")] = False,
) -> None:
    """Which model for each symbol: every committed config and the naive forecast on bars none was selected on,
    the model confidence set, the champion; written to <best-dir>/champions.json."""
    from orchestrator.champions import read_champions, write_champions
    from orchestrator.leaderboard import as_dict, leaderboard as score, tables

    settings = load_settings(dict(best_dir=best_dir, device=device, seed=seed))
    read_champions(settings.best_dir)  # a corrupt file is refused before any scoring
    notes: list[str] = []
    boards, problems = score(settings.best_dir, data_dir, _split(symbols) if symbols else None,
                             _split(models) if models else None, runs, mcs_level, settings.device, settings.seed,
                             notes.append)
    rows = [as_dict(board) for board in boards]
    written, kept = write_champions(settings.best_dir, rows)
    notes += kept
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if as_json:
        print(json.dumps({"symbols": rows, "notes": notes, "problems": problems,
                          "written": None if written is None else str(written)}, indent=2))
    else:
        for note in notes:
            out.print(note, highlight=False)
        for table in tables(rows):
            out.print(table)
        if written is not None:
            out.print(f"wrote {written}")
    if problems:
        raise typer.Exit(2)


@app.command()
@exits_2_on_bad_input
def demo() -> None:
    """The whole flow on generated data with the built-in model: no weights, no network; writes only studies/demo/."""
    from orchestrator.demo import run_demo

    run_demo(out)


ArtifactDir = Annotated[Optional[Path], typer.Option(help="Artifact store of the plots [default: studies/artifacts]")]


@app.command()
@exits_2_on_bad_input
def dashboard(
    storage: Storage = None,
    host: Annotated[str, typer.Option(help="Interface to bind; 127.0.0.1 keeps it on this machine")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8080,
    artifact_dir: ArtifactDir = None,
) -> None:
    """Serve optuna-dashboard on the study storage, with the commit notes and forecast plots."""
    from orchestrator.dashboard import serve

    settings = load_settings(dict(storage=storage, artifact_dir=artifact_dir))
    out.print(f"optuna-dashboard on http://{host}:{port} for {settings.storage} (Ctrl-C stops it)")
    serve(settings.storage, host, port, settings.artifact_dir)


@app.command()
@exits_2_on_bad_input
def report(
    storage: Storage = None,
    out_file: Annotated[Path, typer.Option("--out", help="HTML file to write")] = Path("studies/report.html"),
    artifact_dir: ArtifactDir = None,
    best_dir: Annotated[Optional[Path], typer.Option(help="Where champions.json is (orchestrator leaderboard) [default: configs/best]")] = None,
    archived: Archived = False,
) -> None:
    """Write one self-contained HTML page on every current study (no server needed), with the champions per symbol."""
    from orchestrator.dashboard import write_report

    settings = load_settings(dict(storage=storage, artifact_dir=artifact_dir, best_dir=best_dir))
    path = write_report(settings.storage, out_file, settings.artifact_dir, settings.best_dir, archived)
    out.print(f"wrote {path}")
