"""The `orchestrator` command line. Thin: parse, call one function, print.

Every setting of `configs/orchestrator.toml` is also a flag of the commands it affects (`flags.with_settings`).
Importing this module stays light (no torch, scipy or optuna): each command imports what it needs when it runs, so
`--help` and `status` answer at once.
"""

from __future__ import annotations

import json
import os
import sys
import typing
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from typer.core import TyperGroup

from orchestrator.errors import BadInput
from orchestrator.flags import EVERY_SETTING, RUNTIME, given, with_settings
from orchestrator.settings import Settings, load_settings

class Commands(TyperGroup):
    """The command group: a usage error (unknown option, missing or bad value) is one line starting `error:` on
    stderr, exit code 2, as bad input in a setting or a file is."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.Abort:
            print("Aborted!", file=sys.stderr)
            sys.exit(1)
        except typer.TyperException as exc:  # click's usage errors (typer exports only their base)
            ctx = getattr(exc, "ctx", None)
            if type(exc).__name__ == "NoArgsIsHelpError":  # `orchestrator` alone: the help
                exc.show()
            else:
                where = f"; see `{ctx.command_path} --help`" if ctx is not None else ""
                print(f"error: {exc.format_message().rstrip('.')}{where}", file=sys.stderr)
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=Commands,
    help="Tune stochastic forecasters per symbol with Optuna; commit a config only when it beats the incumbent.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # click's plain layout: option names never cut at 80 columns, defaults shown as written
    pretty_exceptions_show_locals=False,
)
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200)
"""A terminal's width, else COLUMNS, else 200: pipes and files get whole rows unless COLUMNS says otherwise."""

MODELS = "fhs | toto | toto2 | kronos"


def exits_2_on_bad_input(command: Callable[..., Any]) -> Callable[..., Any]:
    """Bad input: one line on stderr, exit code 2. Anything unexpected keeps its traceback and exits 1."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import warnings

        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        try:
            return command(*args, **kwargs)
        except BadInput as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper


Model = Annotated[str, typer.Option(metavar="NAME", help=MODELS)]
Symbol = Annotated[str, typer.Option(metavar="SYMBOL", help="Reads <data-dir>/<SYMBOL>.csv")]
SpaceFile = Annotated[Optional[Path], typer.Option("--space", metavar="FILE",
                                                   help="Search space replacing configs/spaces/<model>.toml")]
Weights = Annotated[Optional[str], typer.Option(metavar="ID|DIR", help="Model weights: Hugging Face id or directory")]
Tokenizer = Annotated[Optional[str], typer.Option(metavar="ID|DIR", help="Kronos tokenizer: id or directory")]
Compile = Annotated[Optional[bool], typer.Option("--compile/--no-compile",
                                                 help="torch.compile the encode  [default: on for CUDA]")]
Fresh = Annotated[bool, typer.Option(show_default=False, help="Archive an existing study of the same model and "
                                                              "symbol; start anew  [default: off]")]
LaunchSpace = Annotated[Optional[str], typer.Option(
    "--space", metavar="FILE|MODEL=FILE,...", help="Search space replacing configs/spaces/<model>.toml, for every "
    "model or per model (toto=toto.toml,kronos=k.toml)")]
LaunchWeights = Annotated[Optional[str], typer.Option(
    "--weights", metavar="ID|DIR|MODEL=ID|DIR,...", help="Model weights, for every model or per model "
    "(toto=DIR,kronos=ID)")]
Workers = Annotated[int, typer.Option(min=1, metavar="N", help="Worker processes (one GPU each when several)")]
SaveSummary = Annotated[Optional[Path], typer.Option(metavar="FILE", help="Write the summary as JSON")]
StudyName = Annotated[str, typer.Option("--study", metavar="MODEL/SYMBOL", help="Study name")]
DataDirHere = Annotated[Optional[Path], typer.Option(
    metavar="DIR", help="Where <SYMBOL>.csv is on this machine  [default: the path the study recorded]")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")]
Archived = Annotated[bool, typer.Option("--all", help="Also archived studies (<model>/<SYMBOL>@<time>, replaced by "
                                                      "--fresh or grown data)")]


@app.command()
@exits_2_on_bad_input
@with_settings(*EVERY_SETTING)
def optimize(model: Model, symbol: Symbol, space: SpaceFile = None, weights: Weights = None,
             tokenizer: Tokenizer = None, compile: Compile = None, fresh: Fresh = False, **flags: Any) -> None:
    """Tune <model>/<SYMBOL>; commit its best config if it wins.

    Runs (or resumes) the study to its target, then scores its best trial (the candidate) and the config in use (the
    incumbent) on fresh runs and commits the candidate only on the evidence the rule asks for. A resumed study keeps
    the windows, runs, seed, data options and commit rule it was created with unless a flag sets them (another value
    for a setting that changes trial values needs --fresh)."""
    from orchestrator.views.dashboard import record_decision
    from orchestrator.models.base import ModelOptions
    from orchestrator.views.progress import StudyProgress
    from orchestrator.lifecycle.study import optimize as run, prepare, resumed_settings
    from orchestrator.views.summary import short_history_note

    settings = load_settings(flags)
    if not fresh:
        settings = resumed_settings(model, symbol, settings, set(given(flags, settings)))
    options = ModelOptions(device=settings.device, weights=weights, tokenizer=tokenizer, compile=compile)
    job = prepare(model, symbol, settings, options, space)
    with StudyProgress(out, job) as progress:
        outcome, _ = run(job, fresh=fresh, record=record_decision, callbacks=[progress],
                         announce=lambda note: out.print(note, highlight=False))  # before the first trial
    c = outcome.counts
    for note in [*outcome.notes, short_history_note([job])]:
        if note:
            out.print(note, highlight=False)
    out.print(f"{outcome.study}: {c.finished}/{job.settings.trials} trials ({c.complete} complete, {c.pruned} pruned, "
              f"{c.failed} failed); stopped: {outcome.stopped}", highlight=False)
    if outcome.best_value is not None:
        runs = job.settings.eval_runs
        mean = f"mean of {runs} runs" if runs > 1 else "one run"
        out.print(f"search MAE {outcome.best_value:.5f} (best trial, {mean}); "
                  f"naive zero-return MAE {outcome.naive_mae:.5f}", highlight=False)
    out.print(outcome.decision_line, highlight=False)
    if outcome.decision is not None and outcome.decision.committed and not outcome.decision.earlier:
        out.print(f"wrote {outcome.decision.path}", highlight=False)


@app.command()
@exits_2_on_bad_input
@with_settings(*EVERY_SETTING)
def launch(
    models: Annotated[str, typer.Option(metavar="NAMES", help=f"Comma-separated models: {MODELS}")],
    symbols: Annotated[Optional[str], typer.Option(
        metavar="SYMBOLS", help="Comma-separated symbols  [default: every CSV in --data-dir]")] = None,
    workers: Workers = 1,
    jobs_per_study: Annotated[int, typer.Option(min=1, metavar="N", help="Processes per study, each with its own "
                                                                        "sampler seed")] = 1,
    save_summary: SaveSummary = None, space: LaunchSpace = None, weights: LaunchWeights = None,
    tokenizer: Tokenizer = None, compile: Compile = None, fresh: Fresh = False, **flags: Any,
) -> None:
    """Many studies in parallel processes, with a live view.

    One study per (model, symbol), through at most --workers long-lived worker processes, and a summary at the end.
    Each file's close is its `close` column, or --price, or its only numeric column. Resumed studies keep their
    recorded settings unless a flag sets them, as with `optimize`.
    """
    from orchestrator.data import symbols_in
    from orchestrator.launch.launcher import launch as run
    from orchestrator.models.base import ModelOptions
    from orchestrator.lifecycle.study import prepare, resumed_settings
    from orchestrator.views.summary import short_history_note

    settings = load_settings(flags)
    explicit = set(given(flags, settings))
    names = _split(models)
    spaces, weights_of = _per_model(space, names, "--space"), _per_model(weights, names, "--weights")
    options = {m: ModelOptions(device=settings.device, weights=weights_of[m], tokenizer=tokenizer, compile=compile)
               for m in names}
    chosen = _split(symbols) if symbols else symbols_in(settings.data_dir)
    jobs = [prepare(m, s, settings if fresh else resumed_settings(m, s, settings, explicit), options[m],
                    None if spaces[m] is None else Path(spaces[m]))
            for m in names for s in chosen]
    for note in [*(note for job in jobs for note in job.notes), short_history_note(jobs)]:
        if note:
            out.print(note, highlight=False)
    rows = run(jobs, workers, jobs_per_study, out, Path("studies/logs"), fresh=fresh)
    _finish(rows, save_summary)


@app.command()
@exits_2_on_bad_input
@with_settings("storage", *RUNTIME)
def resume(workers: Workers = 1, save_summary: SaveSummary = None, **flags: Any) -> None:
    """Continue every unfinished study in the storage.

    Each runs to its recorded target with its recorded settings; the flags below replace recorded ones."""
    from dataclasses import replace

    from orchestrator.launch.launcher import launch as run, resumable_jobs

    settings = load_settings(flags)
    explicit = given(flags, settings)
    jobs = [replace(job, settings=job.settings.model_copy(update=explicit)) for job in resumable_jobs(settings, out)]
    if not jobs:
        out.print("nothing to resume: every study reached its target and was decided")
        return
    out.print(f"resuming {len(jobs)} stud{'y' if len(jobs) == 1 else 'ies'}: {', '.join(j.name for j in jobs)}",
              highlight=False)
    _finish(run(jobs, workers, 1, out, Path("studies/logs")), save_summary)


@app.command()
@exits_2_on_bad_input
@with_settings("storage", *RUNTIME)
def worker(
    study: StudyName,
    trials: Annotated[Optional[int], typer.Option(metavar="N", help="Raise the study's target of finished "
                                                                    "trials")] = None,
    data_dir: DataDirHere = None, **flags: Any,
) -> None:
    """Join a study in a shared storage and run its trials.

    Any machine can join: trials run until the study reaches its target; `orchestrator commit` decides afterwards."""
    import secrets

    from orchestrator.models.base import create
    from orchestrator.lifecycle.study import raise_target, recorded_job, work

    settings = load_settings(flags)
    job = recorded_job(study, settings, data_dir=data_dir, **given(flags, settings))
    forecaster = create(job.model, job.options)  # missing weights: refused before the target changes
    if trials is not None:
        raise_target(job, trials)
    outcome = work(job, worker=secrets.randbelow(1 << 30), commit=False, forecaster=forecaster)  # own sampler seed
    c = outcome.counts
    out.print(f"{outcome.study}: {c.finished} trials ({c.complete} complete, {c.pruned} pruned, {c.failed} failed); "
              f"stopped: {outcome.stopped}", highlight=False)
    out.print(outcome.decision_line, highlight=False)


@app.command()
@exits_2_on_bad_input
@with_settings("storage", "best_dir")
def commit(
    study: StudyName, data_dir: DataDirHere = None,
    commit_rule: Annotated[Optional[str], typer.Option(
        metavar="|".join(typing.get_args(Settings.model_fields["commit_rule"].annotation)),
        help="The rule  [default: the study's]")] = None,
    min_confidence: Annotated[Optional[float], typer.Option(
        metavar="NUMBER", help="For --commit-rule spa or significant  [default: the study's]")] = None,
    **flags: Any,
) -> None:
    """Decide a study that workers ran; commit if the config wins.

    The commit protocol of `optimize`; the config is written on this machine."""
    from orchestrator.views.dashboard import record_decision
    from orchestrator.lifecycle.study import commit_study, recorded_job

    settings = load_settings({**flags, "commit_rule": commit_rule, "min_confidence": min_confidence})
    job = recorded_job(study, settings, data_dir=data_dir, best_dir=settings.best_dir, commit_rule=commit_rule,
                       min_confidence=min_confidence)
    decision = commit_study(job, record_decision)
    out.print(decision.line if decision else f"NOT updating {study}: no trial completed", highlight=False)
    if decision is not None and decision.committed and not decision.earlier:
        out.print(f"wrote {decision.path}", highlight=False)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _per_model(value: str | None, models: list[str], flag: str) -> dict[str, str | None]:
    """`flag VALUE` for every model, or `flag toto=A,kronos=B` per model (a model not named gets the default)."""
    if value is None or "=" not in value:
        return dict.fromkeys(models, value)
    chosen: dict[str, str] = {}
    for part in _split(value):
        model, equals, item = (x.strip() for x in part.partition("="))
        if not equals or model not in models or not item:
            raise BadInput(f"{flag} {value!r}: {part!r} is not MODEL=VALUE for one of --models {','.join(models)}; "
                           f"give one value for every model, or e.g. {models[0]}=VALUE")
        chosen[model] = item
    return {m: chosen.get(m) for m in models}


def _finish(rows: list[dict[str, Any]], save_summary: Path | None) -> None:
    from orchestrator.views.summary import summary_table

    out.print()
    out.print(summary_table(rows), highlight=False)
    if save_summary is not None:
        save_summary.parent.mkdir(parents=True, exist_ok=True)
        save_summary.write_text(json.dumps(rows, indent=2) + "\n")
        out.print(f"wrote {save_summary}", highlight=False)
    if any(row["status"].startswith("failed") for row in rows):
        raise typer.Exit(1)


@app.command()
@exits_2_on_bad_input
@with_settings("storage", "best_dir")
def status(as_json: AsJson = False, archived: Archived = False, **flags: Any) -> None:
    """Every current study: trials, best MAE, config in use, last decision.

    Per study (--all: archived ones too): finished trials and target, the best trial's search MAE, the naive
    forecast's MAE, the config in use now (from --best-dir: its MAE when committed, which trial committed it, when)
    and the last decision with its evidence."""
    from orchestrator.views.summary import STATUS_KEYS, status_table, summaries

    settings = load_settings(flags)
    rows = summaries(settings.storage, settings, archived)
    if as_json:
        print(json.dumps([{k: r[k] for k in STATUS_KEYS} for r in rows], indent=2))
    elif not rows:
        from orchestrator.storages.storage import storage_label

        out.print(f"no studies in {storage_label(settings.storage)}", highlight=False)
    else:
        out.print(status_table(rows), highlight=False)


@app.command()
@exits_2_on_bad_input
@with_settings("best_dir")
def best(model: Model, symbol: Annotated[str, typer.Option(metavar="SYMBOL", help="Symbol")],
         as_json: Annotated[bool, typer.Option("--json", help="Print the committed JSON as is")] = False,
         **flags: Any) -> None:
    """The committed config of <model>/<SYMBOL>."""
    from orchestrator.decisions.records import best_path, read_config

    settings = load_settings(flags)
    path = best_path(settings.best_dir, model, symbol)
    record = read_config(path)
    if record is None:
        raise BadInput(f"{path}: no committed config for {model}/{symbol}; run `orchestrator optimize` first")
    if as_json:
        print(json.dumps(record, indent=2))
        return
    out.print(f"{model}/{symbol} ({path}), committed {record.get('committed_at')}", highlight=False, soft_wrap=False)
    out.print(f"params: {json.dumps(record['params'])}", highlight=False, soft_wrap=False)
    for part in ("validation", "test"):
        if isinstance(record.get(part), dict):
            r = record[part]
            out.print(f"{part} MAE {r['mae']:.5f} ± {r['sem']:.5f} ({r['runs']} runs, {r['windows']} windows)",
                      highlight=False)
    previous = record.get("previous")
    if not previous:
        out.print("previous: none", soft_wrap=False)
    elif previous.get("mae") is None:
        out.print(f"previous: {previous.get('error', 'not scored')}", highlight=False, soft_wrap=False)
    else:
        out.print(f"previous MAE {previous['mae']:.5f}", highlight=False, soft_wrap=False)
    if record.get("decision_line"):
        out.print(f"decision: {record['decision_line']}", highlight=False, soft_wrap=False)
    checked = record.get("last_checked") or {}
    if checked.get("mae") is not None and checked.get("naive_mae") is not None:
        verdict = ("beats the naive zero-return forecast" if checked["mae"] < checked["naive_mae"] else
                   "WARNING: does not beat the naive zero-return forecast: no better than a random walk")
        out.print(f"last checked {checked['time']} by {checked['study']}: MAE {checked['mae']:.5f}, naive "
                  f"{checked['naive_mae']:.5f}: {verdict}", highlight=False, soft_wrap=False)


@app.command()
@exits_2_on_bad_input
@with_settings("best_dir", "device")
def scorecard(
    data_dir: Annotated[Optional[Path], typer.Option(
        metavar="DIR", help="Where the <SYMBOL>.csv files are now  [default: the paths the decisions recorded]")] = None,
    runs: Annotated[int, typer.Option(min=1, metavar="N", help="Runs per config, the same random draws for "
                                                               "both")] = 16,
    as_json: AsJson = False, **flags: Any,
) -> None:
    """Did past decisions pay off, and past forecasts hold, on the bars after them?

    Scores every decision in the history on the bars that arrived after it: the committed config against the one
    it replaced (or a rejected candidate against the kept incumbent), same draws for both. Then every logged
    forecast (forecasts.jsonl) whose bar has come: MAE, CRPS and interval coverage, against naive on those bars."""
    from orchestrator.decisions.forecast_scores import score_forecasts, table as forecast_table
    from orchestrator.decisions.records import read_history
    from orchestrator.decisions.scorecard import as_dict, scorecard as score, summarize, tables

    settings = load_settings(flags)
    notes: list[str] = []
    scores, problems = score(settings.best_dir, data_dir, runs, settings.device, notes.append)
    forecasts, more = score_forecasts(settings.best_dir, data_dir, notes.append)
    problems += more
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    rows, summary = [as_dict(s) for s in scores], summarize(scores, read_history(settings.best_dir))
    if as_json:
        print(json.dumps({"decisions": rows, "summary": summary, "forecasts": forecasts, "not_scored": notes,
                          "problems": problems}, indent=2))
    else:
        if not scores:
            out.print(f"nothing to score yet: no decision has bars after it that can be scored ({len(notes)} not "
                      "scored: `--json` says why)", highlight=False, soft_wrap=False)
        for note in notes if scores else []:
            out.print(note, highlight=False, soft_wrap=False)
        for table in tables(rows, summary) if scores else []:
            out.print(table, highlight=False, soft_wrap=False)
        if forecasts:
            out.print(forecast_table(forecasts), highlight=False, soft_wrap=False)
    if problems:
        raise typer.Exit(2)


@app.command()
@exits_2_on_bad_input
@with_settings("best_dir", "device")
def leaderboard(
    symbols: Annotated[Optional[str], typer.Option(
        metavar="SYMBOLS", help="Comma-separated symbols  [default: every symbol with a committed config]")] = None,
    models: Annotated[Optional[str], typer.Option(
        metavar="NAMES", help="Comma-separated models  [default: every model in --best-dir]")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(
        metavar="DIR", help="Where the <SYMBOL>.csv files are now  [default: the paths the decisions recorded]")] = None,
    runs: Annotated[int, typer.Option(min=1, metavar="N", help="Runs per sampling model, the same random draws for "
                                                               "all (deterministic models: 1)")] = 16,
    mcs_level: Annotated[float, typer.Option(min=0.5, max=0.999, metavar="NUMBER",
                                             help="Confidence of the model confidence set")] = 0.90,
    seed: Annotated[int, typer.Option(min=0, metavar="INT", help="Seed of the runs and of the bootstrap")] = 0,
    as_json: AsJson = False, **flags: Any,
) -> None:
    """Which model for each symbol? Writes champions.json.

    Every committed config and the naive forecast on bars none was selected on, the model confidence set, and the
    champion per symbol (on MAE), written to <best-dir>/champions.json; beside MAE, each model's CRPS and how
    often the bars fell in its 80% and 90% intervals."""
    from orchestrator.decisions.champions import read_champions, write_champions
    from orchestrator.decisions.leaderboard import as_dict, leaderboard as score, tables
    from orchestrator.decisions.spread_table import score_table

    settings = load_settings(flags)
    read_champions(settings.best_dir)  # a corrupt file is refused before any scoring
    notes: list[str] = []
    boards, problems = score(settings.best_dir, data_dir, _split(symbols) if symbols else None,
                             _split(models) if models else None, runs, mcs_level, settings.device, seed,
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
            out.print(note, highlight=False, soft_wrap=False)
        for table in tables(rows):
            out.print(table, highlight=False, soft_wrap=False)
        if rows:
            out.print(score_table(rows), highlight=False, soft_wrap=False)
        if written is not None:
            out.print(f"wrote {written}", highlight=False)
    if problems:
        raise typer.Exit(2)


@app.command()
@exits_2_on_bad_input
@with_settings("best_dir", "device")
def forecast(
    symbols: Annotated[Optional[str], typer.Option(
        metavar="SYMBOLS", help="Comma-separated symbols  [default: every symbol in champions.json, or with a "
                                "committed --model config]")] = None,
    model: Annotated[Optional[str], typer.Option(
        metavar="NAME", help=f"Use this family's committed configs, not the champions: {MODELS}")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(
        metavar="DIR", help="Where the <SYMBOL>.csv files are now  [default: the paths the configs recorded]")] = None,
    runs: Annotated[int, typer.Option(min=1, metavar="N", help="Runs of a sampling model, pooled (as the "
                                                               "leaderboard scores)")] = 16,
    seed: Annotated[int, typer.Option(min=0, metavar="INT", help="Seed of the runs")] = 0,
    weights: LaunchWeights = None,
    out_file: Annotated[Optional[Path], typer.Option("--out", metavar="FILE.csv|FILE.json",
                                                     help="Also write the forecasts to this file")] = None,
    as_json: AsJson = False, **flags: Any,
) -> None:
    """Each symbol's next-bar forecast from its champion; logs it.

    The bar after each data file's last bar, forecast by the champion's committed config (champions.json, from
    `orchestrator leaderboard`) exactly as it was scored: the point forecast (the config's aggregate, averaged over
    the runs) and the quantiles 0.05 to 0.95. No champion: the naive zero-return forecast, flagged. Every forecast
    is appended to <best-dir>/forecasts.jsonl, to be scored against the bar that comes."""
    from orchestrator.lifecycle.forecasts import flat, forecasts, table
    from orchestrator.symbols import MODELS as NAMES

    if out_file is not None and out_file.suffix not in (".csv", ".json"):
        raise BadInput(f"--out {out_file}: write FILE.csv or FILE.json")
    settings = load_settings(flags)
    rows = forecasts(settings.best_dir, data_dir, _split(symbols) if symbols else None, model, runs, seed,
                     settings.device, _per_model(weights, list(NAMES), "--weights"))
    if out_file is not None:
        import pandas as pd

        out_file.parent.mkdir(parents=True, exist_ok=True)
        if out_file.suffix == ".csv":
            pd.DataFrame([flat(row) for row in rows]).to_csv(out_file, index=False)
        else:
            out_file.write_text(json.dumps(rows, indent=2) + "\n")
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    out.print(table(rows), highlight=False)
    for note in (note for row in rows for note in row["notes"]):
        out.print(note, highlight=False)
    out.print(f"logged to {settings.best_dir / 'forecasts.jsonl'}"
              + (f"; wrote {out_file}" if out_file is not None else ""), highlight=False)


@app.command()
@exits_2_on_bad_input
def demo() -> None:
    """The whole flow on generated data; writes only studies/demo/.

    The built-in model on generated bars (no weights, no network): a first commit, a commit on evidence, a kept
    incumbent, and a symbol where the tuned config beats the naive forecast."""
    from orchestrator.demo import run_demo

    run_demo(out)


@app.command()
@exits_2_on_bad_input
@with_settings("storage", "artifact_dir")
def dashboard(
    host: Annotated[str, typer.Option(metavar="ADDRESS", help="Interface to bind; 127.0.0.1 keeps it on this "
                                                              "machine")] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="Port")] = 8080,
    **flags: Any,
) -> None:
    """Serve optuna-dashboard with the decision notes and plots."""
    from orchestrator.storages.storage import check_storage_url, storage_label
    from orchestrator.views.dashboard import serve

    settings = load_settings(flags)
    check_storage_url(settings.storage)
    out.print(f"optuna-dashboard on http://{host}:{port} for {storage_label(settings.storage)} (Ctrl-C stops it)",
              highlight=False)
    serve(settings.storage, host, port, settings.artifact_dir)


@app.command()
@exits_2_on_bad_input
@with_settings("storage", "artifact_dir", "best_dir")
def report(
    out_file: Annotated[Path, typer.Option("--out", metavar="FILE", help="HTML file to write")] = Path(
        "studies/report.html"),
    archived: Archived = False,
    **flags: Any,
) -> None:
    """Write one self-contained HTML page on every current study.

    No server needed: the status table, optimisation histories, decision notes and plots, the champions per
    symbol (`orchestrator leaderboard`), all embedded."""
    from orchestrator.views.report import write_report

    settings = load_settings(flags)
    path = write_report(settings.storage, out_file, settings.artifact_dir, settings.best_dir, archived)
    out.print(f"wrote {path}", highlight=False)
