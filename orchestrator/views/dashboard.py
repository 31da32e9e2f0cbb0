"""See the studies: optuna-dashboard with a note and plots per commit decision (the static page is report.py).

Plots are drawn with matplotlib's Agg backend (offline; plotly's PNG export needs kaleido and Chrome). matplotlib and
optuna-dashboard are imported inside the functions that use them, so importing this module stays cheap.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from orchestrator.errors import BadInput
from orchestrator.scoring.evidence import evidence_text
from orchestrator.settings import Settings

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from optuna.storages import RDBStorage

    from orchestrator.decisions.commit import Decision
    from orchestrator.scoring.evaluation import Evaluator

SPLITS = ("validation", "test")
CONTEXT_BARS = 20
"""Actual closes shown before the first validation window of a forecast plot."""
FORECAST_PNG = "forecast_trial{trial}.png"
RUN_MAES_PNG = "run_maes_trial{trial}.png"


def serve(storage_url: str, host: str, port: int, artifact_dir: Path) -> None:
    """Serve optuna-dashboard on the storage with the artifact store at `artifact_dir`; blocks until Ctrl-C.

    A threaded WSGI server (as `optuna-dashboard` itself uses), so a browser's parallel requests do not queue.
    """
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    import optuna_dashboard

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the overridden signature
            pass

    app = optuna_dashboard.wsgi(open_existing(storage_url), FileSystemArtifactStore(_artifact_root(artifact_dir)))
    try:
        httpd = make_server(host, port, app, server_class=Server, handler_class=QuietHandler)
    except OSError as exc:
        raise BadInput(f"--host {host} --port {port}: cannot listen ({exc.strerror}); pick another --port") from None
    with httpd:
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass


def record_decision(
    study: optuna.Study, decision: Decision, evaluator: Evaluator, artifact_dir: Path
) -> None:
    """Attach a commit decision to the study: a note (newest decision first) and two PNG artifacts.

    The artifacts are a forecast fan vs the actual closes (validation and test windows; candidate and incumbent) and
    the per-run MAEs of both on the confirm runs. They are study artifacts named after the candidate trial: Optuna 5
    refuses to attach anything to a finished trial (UpdateFinishedTrialError), and the best trial is finished.
    """
    from optuna_dashboard import get_note, save_note

    attrs = study.user_attrs
    run = int(attrs.get("eval_runs", 0))  # the first confirm run: the confirm runs follow the search runs
    naive = attrs.get("naive_mae") or {}
    params = study.get_trials(deepcopy=False)[decision.trial].params  # trials are numbered 0, 1, ... in order
    previous = get_note(study)
    section = _note(decision, params, naive, run)
    save_note(study, section + ("\n\n---\n\n" + previous if previous else ""))
    store = FileSystemArtifactStore(_artifact_root(artifact_dir))
    figures = {
        FORECAST_PNG.format(trial=decision.trial): _forecast_figure(decision, params, evaluator, run),
        RUN_MAES_PNG.format(trial=decision.trial): _run_maes_figure(decision, naive, run),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, figure in figures.items():
            path = Path(tmp) / name
            path.write_bytes(png(figure))
            upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=study)


def open_existing(url: str) -> RDBStorage:
    """The storage at `url`; BadInput when it is not a URL or a SQLite file that does not exist (none is created)."""
    from orchestrator.storages.storage import check_storage_url, open_storage, storage_exists, storage_label

    check_storage_url(url)
    if not storage_exists(url):
        raise BadInput(f"--storage {storage_label(url)}: no such database; run `orchestrator optimize` first or "
                       "pass --storage URL")
    return open_storage(url, Settings())


def _artifact_root(artifact_dir: Path) -> Path:
    """`artifact_dir`, created if needed (the store writes into it)."""
    Path(artifact_dir).mkdir(parents=True, exist_ok=True)
    return Path(artifact_dir)


def _fmt(score: dict[str, Any] | None) -> str:
    """'0.01234 ± 0.00012' for a {mae, sem} score (a tiny sem keeps its digits: '± 4.1e-06'); '-' for none."""
    if not score:
        return "-"
    if "sem" not in score:
        return f"{score['mae']:.5f}"
    return f"{score['mae']:.5f} ± {score['sem']:.2g}"


def _note(decision: Decision, params: dict[str, Any], naive: dict[str, float], run: int) -> str:
    """Markdown of one decision: a table of candidate vs incumbent, their params, the plots and the decision line."""
    candidate, incumbent = decision.candidate, decision.incumbent or {}
    verdict = f"committed to `{decision.path}`" if decision.committed else "kept the incumbent"
    runs = candidate["validation"]["runs"]
    lines = [
        f"## Decision {decision.time}: {verdict}",
        "",
        f"**{decision.line}**",
        "",
        f"Candidate: trial {decision.trial}. Return MAEs, mean ± standard error over the same {runs} fresh confirm "
        f"runs for both configs (runs {run} to {run + runs - 1} of the study's seed: the search's trials used the "
        f"first {run}, so no config was selected on these draws).",
        "",
        "| | candidate | incumbent | naive (zero return) |",
        "|---|---|---|---|",
    ]
    for split in SPLITS:
        naive_mae = f"{naive[split]:.5f}" if split in naive else "-"
        lines.append(f"| {split} MAE ({candidate[split]['windows']} windows) | {_fmt(candidate[split])} | "
                     f"{_fmt(incumbent.get(split))} | {naive_mae} |")
    lines.append(f"| runs | {runs} | {(incumbent.get('validation') or {}).get('runs', '-')} | |")
    if decision.evidence:
        e = decision.evidence
        paired = evidence_text({k: v for k, v in e.items() if k != "spa"})
        lines += ["", f"Paired evidence over {e['windows']} validation windows (Diebold-Mariano with the "
                  f"Harvey-Leybourne-Newbold correction, one-sided): MAE change {paired}; confidence that "
                  f"the candidate is better {e['confidence']:.1%}. Rule: {decision.rule.get('describe', '-')}."]
        if e.get("spa"):
            spa = e["spa"]
            lines += ["", f"Counting the search (Hansen's SPA test over the {spa['configs']} distinct configs tried, "
                      f"each rescored on the confirm runs): p={spa['p_value']:.3g}, confidence that the candidate "
                      f"beats the incumbent {spa['confidence']:.1%}."]
    if decision.beats_naive is False:
        lines += ["", f"**Warning:** the config in use does not beat the naive zero-return forecast "
                  f"(validation MAE {decision.naive_mae:.5f}): it is no better than a random walk."]
    lines += ["", f"Candidate params: `{_params(params)}`", ""]
    if decision.incumbent is None:
        lines.append("Incumbent: none, so the candidate was committed.")
    else:
        lines.append(f"Incumbent params: `{_params(incumbent['params'])}`")
        if "error" in incumbent:
            lines += ["", f"The incumbent could not be scored: {incumbent['error']}"]
    lines += ["", f"Plots: the study artifacts `{FORECAST_PNG.format(trial=decision.trial)}` and "
              f"`{RUN_MAES_PNG.format(trial=decision.trial)}`."]
    return "\n".join(lines)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(figure: Figure, tight: bool = False) -> bytes:
    """PNG bytes of the figure, which is closed; `tight` trims Optuna's figures (whose long labels get clipped)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight" if tight else None)
    _pyplot().close(figure)
    return buffer.getvalue()


def _forecast_figure(decision: Decision, params: dict[str, Any], evaluator: Evaluator, run: int) -> Figure:
    """One row per config (candidate, incumbent): quantile fans of each window's next close vs the actual (of the
    samples; of the predicted quantiles for a deterministic model, with its point forecast)."""
    import numpy as np

    plt = _pyplot()
    configs = [("candidate", {**decision.candidate, "params": params})]
    if decision.incumbent is not None and "error" not in decision.incumbent:  # an unscorable one cannot be drawn
        configs.append(("incumbent", decision.incumbent))
    close = evaluator.series.close
    windows = evaluator.windows
    first = max(int(windows.validation[0]) - CONTEXT_BARS, 0)
    shown = np.arange(first, int(windows.test[-1]) + 1)
    figure, axes = plt.subplots(len(configs), 1, figsize=(12, 3.6 * len(configs)), sharex=True, squeeze=False,
                                layout="constrained")
    for ax, (label, config) in zip(axes[:, 0], configs):
        ax.plot(shown, close[shown], color="black", lw=1.2, marker=".", ms=4, label="actual close", zorder=3)
        for split, color in zip(SPLITS, ("tab:blue", "tab:orange")):
            index = windows.of(split)
            q, labels = _fan(evaluator, config["params"], split, run)
            ax.fill_between(index, q[0], q[4], color=color, alpha=0.18, lw=0, label=f"{split}: {labels[0]}")
            ax.fill_between(index, q[1], q[3], color=color, alpha=0.35, lw=0, label=f"{split}: {labels[1]}")
            ax.plot(index, q[2], color=color, lw=1.2, label=f"{split}: {labels[2]}")
        ax.axvline(windows.test[0] - 0.5, color="grey", ls="--", lw=1)
        ax.set_title(f"{label}: validation MAE {_fmt(config['validation'])}, test MAE {_fmt(config['test'])}",
                     fontsize=10)
        ax.set_ylabel("close")
        ax.grid(alpha=0.3)
    figure.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    drawn = f"samples of run {run}" if evaluator.forecaster.stochastic else "predicted quantiles (no sampling)"
    axes[-1, 0].set_xlabel(f"bar index (dashed line: validation | test), {drawn}")
    figure.suptitle(f"{decision.study}: next-close forecasts vs actual (trial {decision.trial})")
    return figure


def _fan(evaluator: Evaluator, params: dict[str, Any], split: str, run: int) -> tuple[list[Any], tuple[str, ...]]:
    """Five lines per window (outer band, inner band, middle) and their labels: quantiles of the samples of `run`;
    for a deterministic model, its predicted quantiles (the rules quantile_X read them) around its point forecast."""
    import numpy as np

    if evaluator.forecaster.stochastic:
        samples = evaluator.samples(params, split, run).numpy()
        return list(np.quantile(samples, [0.05, 0.25, 0.5, 0.75, 0.95], axis=1)), (
            "5-95% of samples", "25-75%", "median sample")

    def point(rule: dict[str, Any]) -> np.ndarray:
        return evaluator.samples({**params, **rule}, split, run)[:, 0].numpy()

    lines = [point({"aggregate": f"quantile_{x}"}) for x in (0.1, 0.3)] + [point({})]
    lines += [point({"aggregate": f"quantile_{x}"}) for x in (0.7, 0.9)]
    return lines, ("10-90% predicted", "30-70% predicted", f"point forecast ({params.get('aggregate')})")


def _run_maes_figure(decision: Decision, naive: dict[str, float], run: int) -> Figure:
    """Per confirm run MAE of candidate and incumbent, one panel per split, means dashed, naive baseline dotted."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(SPLITS), figsize=(11, 3.8), squeeze=False, layout="constrained")
    configs = [("candidate", decision.candidate, "tab:blue"), ("incumbent", decision.incumbent or {}, "tab:red")]
    for ax, split in zip(axes[0], SPLITS):
        for label, config, color in configs:
            score = config.get(split) or {}
            maes = score.get("run_maes") or []
            if not maes:
                continue
            ax.plot(range(run, run + len(maes)), maes, marker="o", color=color, label=f"{label} ({_fmt(score)})")
            ax.axhline(score["mae"], color=color, ls="--", lw=1)
        if split in naive:
            ax.axhline(naive[split], color="grey", ls=":", lw=1.5, label=f"naive zero return ({naive[split]:.5f})")
        ax.set_title(f"{split} windows", fontsize=10)
        ax.set_xlabel("confirm run (the same random draws for both)")
        ax.set_ylabel("return MAE")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    figure.suptitle(f"{decision.study}: MAE per confirm run (dashed: mean); {decision.line}", fontsize=10)
    return figure
