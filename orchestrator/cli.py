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
from orchestrator.models.base import ModelOptions
from orchestrator.settings import load_settings

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


@app.command()
@exits_2_on_bad_input
def optimize(
    model: Annotated[str, typer.Option(help="fhs | toto | kronos")],
    symbol: Annotated[str, typer.Option(help="Reads <data-dir>/<SYMBOL>.csv")],
    trials: Annotated[Optional[int], typer.Option(help="Target number of finished trials [default: 100]")] = None,
    eval_runs: Annotated[Optional[int], typer.Option(help="Runs per trial, averaged [default: 3]")] = None,
    confirm_runs: Annotated[Optional[int], typer.Option(help="Fresh runs for candidate vs incumbent [default: 3]")] = None,
    sampler: Annotated[Optional[str], typer.Option(help="tpe | cmaes [default: tpe]")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Study seed [default: 0]")] = None,
    patience: Annotated[Optional[int], typer.Option(help="Stop after K finished trials without improvement")] = None,
    storage: Storage = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Directory of <SYMBOL>.csv files [default: trainingdata]")] = None,
    best_dir: BestDir = None,
    space: Annotated[Optional[Path], typer.Option(help="Search space TOML replacing configs/spaces/<model>.toml")] = None,
    val_windows: Annotated[Optional[int], typer.Option(help="Validation windows [default: 30]")] = None,
    test_windows: Annotated[Optional[int], typer.Option(help="Test windows, never used for selection [default: 20]")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto | cpu | cuda [default: auto]")] = None,
    weights: Annotated[Optional[str], typer.Option(help="Model weights: Hugging Face id or local directory")] = None,
    tokenizer: Annotated[Optional[str], typer.Option(help="Kronos tokenizer: Hugging Face id or local directory")] = None,
    compile: Annotated[Optional[bool], typer.Option("--compile/--no-compile", help="torch.compile the encode [default: on for CUDA]")] = None,
    transfer: Annotated[Optional[bool], typer.Option("--transfer/--no-transfer", help="Warm-start from other symbols' committed configs [default: on]")] = None,
    fresh: Annotated[bool, typer.Option(help="Archive an existing study of this model and symbol and start anew")] = False,
) -> None:
    """Run (or resume) the study <model>/<SYMBOL> to its target, then commit its best config if it beats the incumbent."""
    from orchestrator.study import optimize as run, prepare

    settings = load_settings(dict(
        trials=trials, eval_runs=eval_runs, confirm_runs=confirm_runs, sampler=sampler, seed=seed, patience=patience,
        storage=storage, data_dir=data_dir, best_dir=best_dir, val_windows=val_windows, test_windows=test_windows,
        device=device, transfer=transfer,
    ))
    options = ModelOptions(device=settings.device, weights=weights, tokenizer=tokenizer, compile=compile)
    job = prepare(model, symbol, settings, options, space)
    outcome, archived = run(job, fresh=fresh)
    c = outcome.counts
    if archived:
        out.print(f"archived the previous study as {archived}")
    out.print(f"study {outcome.study}: {c.finished}/{settings.trials} finished trials (complete {c.complete}, "
              f"pruned {c.pruned}, failed {c.failed}); stopped: {outcome.stopped}")
    if outcome.best_value is not None:
        out.print(f"best validation MAE {outcome.best_value:.5f} on {settings.eval_runs} run(s); "
                  f"naive zero-return MAE {outcome.naive_mae:.5f}")
    out.print(outcome.decision_line, highlight=False)
    if outcome.decision is not None and outcome.decision.committed:
        out.print(f"wrote {outcome.decision.path}")


@app.command()
@exits_2_on_bad_input
def status(
    storage: Storage = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table")] = False,
) -> None:
    """Every study in the storage: trial counts, target, best value, incumbent value."""
    from orchestrator.study import summaries

    settings = load_settings(dict(storage=storage))
    rows = summaries(settings.storage, settings)
    if as_json:
        keys = ("study", "model", "symbol", "complete", "pruned", "failed", "running", "target", "best_value",
                "incumbent_value")
        print(json.dumps([{k: r[k] for k in keys} for r in rows], indent=2))
        return
    if not rows:
        out.print(f"no studies in {settings.storage}")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("study", no_wrap=True)
    for header in ("done", "pruned", "failed", "running", "target", "best MAE", "incumbent", "naive", "committed"):
        table.add_column(header, justify="right", no_wrap=True)
    fmt = lambda v: "-" if v is None else f"{v:.5f}"  # noqa: E731
    for r in rows:
        table.add_row(r["study"], str(r["complete"] + r["pruned"] + r["failed"]), str(r["pruned"]), str(r["failed"]), str(r["running"]),
                      str(r["target"]), fmt(r["best_value"]), fmt(r["incumbent_value"]), fmt(r["naive_mae"]),
                      {True: "yes", False: "no", None: "-"}[r["committed"]])
    out.print(table)


@app.command()
@exits_2_on_bad_input
def best(
    model: Annotated[str, typer.Option(help="fhs | toto | kronos")],
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
    out.print("previous: none" if not previous else f"previous MAE {previous['mae']:.5f}")


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
) -> None:
    """Write one self-contained HTML page on every study (no server needed)."""
    from orchestrator.dashboard import write_report

    settings = load_settings(dict(storage=storage, artifact_dir=artifact_dir))
    path = write_report(settings.storage, out_file, settings.artifact_dir)
    out.print(f"wrote {path}")
