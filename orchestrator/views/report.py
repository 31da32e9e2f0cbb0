"""The static HTML report: one self-contained page on the studies (the status table, optimisation histories,
parameter importances, the decision notes rendered from their Markdown, the decision plots) and the champions per
symbol, all embedded; no server needed."""

from __future__ import annotations

import base64
import html
import re
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore, get_all_artifact_meta
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import TrialState

from orchestrator.views.dashboard import open_existing, png
from orchestrator.scoring.evidence import signed_percent
from orchestrator.settings import Settings


def write_report(
    storage_url: str, out: Path, artifact_dir: Path, best_dir: Path = Path("configs/best"), archived: bool = False
) -> Path:
    """Write one self-contained HTML page on every current study in the storage (and every archived one with
    `archived`; PNGs inlined, no external URLs); the config in use per study and the champions per symbol
    (`champions.json`) are read from `best_dir`."""
    from orchestrator.storages.storage import storage_label
    from orchestrator.views.summary import summaries

    storage = open_existing(storage_url)
    rows = summaries(storage_url, Settings(best_dir=best_dir), archived)
    store = FileSystemArtifactStore(artifact_dir)  # only read: a missing artifact is named in the page
    sections = [_study_section(optuna.load_study(study_name=r["study"], storage=storage), store) for r in rows]
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    page = _PAGE.format(
        storage=html.escape(storage_label(storage_url)), time=now, table=_summary_table(rows),
        champions=_champions_section(best_dir),
        sections="\n".join(sections) or "<p>No studies in this storage yet.</p>",
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def _summary_table(rows: list[dict[str, Any]]) -> str:
    """The rows of `status`, as a table."""
    from orchestrator.views.summary import decision_text, in_use_text

    headers = ("study", "trials", "search MAE (best trial)", "naive MAE", "in use (validation MAE, committed by, on)",
               "last decision (MAE change ± se, p, windows won)")
    num = lambda v: "-" if v is None else f"{v:.5f}"  # noqa: E731
    body = []
    for r in rows:
        cells = (r["study"], f"{r['trials']}/{r['target']}", num(r["best_value"]), num(r["naive_mae"]),
                 in_use_text(r), decision_text(r))
        body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _champions_section(best_dir: Path) -> str:
    """Which model per symbol (`orchestrator leaderboard`): an overview across symbols, then per symbol the models'
    MAE with error bars against the naive line, confidence-set members highlighted, and the numbers."""
    from orchestrator.decisions.champions import CHAMPIONS, overview_figure, read_champions, symbol_figure
    from orchestrator.scoring.probabilistic import coverage_text

    rows = list(read_champions(best_dir).get("symbols", {}).values())
    parts = ['<section id="champions"><h2>Champions: which model for each symbol</h2>']
    if not rows:
        parts.append(f"<p>No {html.escape(str(Path(best_dir) / CHAMPIONS))} yet: run <code>orchestrator "
                     "leaderboard</code>.</p></section>")
        return "\n".join(parts)
    parts.append("<p class=meta>Each symbol's committed configs and the naive forecast on the same held-out bars "
                 "(after every compared config's validation windows). The set: models the data cannot tell apart "
                 "from the best (Hansen-Lunde-Nason); no champion when naive is in it.</p>")
    parts.append(_img(png(overview_figure(rows)), "champions across symbols"))
    parts.append("<p class=meta>Beside MAE (which chooses the champion): CRPS, the spread's score in the same units "
                 "(lower is better; ~: approximated from predicted quantiles), and how often the bar fell inside the "
                 "80% and 90% intervals, ± the binomial standard error a calibrated interval shows on that many "
                 "bars.</p>")
    head = "".join(f"<th>{h}</th>" for h in ("model", "MAE", "vs naive: change ± se, p", "MCS p", "in set", "CRPS",
                                             "80% in", "90% in"))
    for row in rows:
        symbol = html.escape(row["symbol"])
        body = []
        for name, m in row["models"].items():
            e = m.get("evidence")
            change = "-" if e is None else f"{signed_percent(-e['improvement'])} ± {e['se']:.2%}, p={e['p_value']:.2g}"
            crps = "-" if m.get("crps") is None else f"{m['crps']:.5f}{'~' if m['crps_approximate'] else ''}"
            coverage = m.get("coverage") or {}
            cells = (name, f"{m['mae']:.5f}", change, f"{m['mcs_p_value']:.3f}", "yes" if m["in_set"] else "no",
                     crps, coverage_text(coverage.get("80")), coverage_text(coverage.get("90")))
            body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        w = row["windows"]
        parts += [f'<h3 id="champion-{symbol}">{symbol}</h3>', f"<p class=decision>{html.escape(row['line'])}</p>",
                  f"<p class=meta>{w['count']} windows {html.escape(w['first'])} .. {html.escape(w['last'])}, "
                  f"scored {html.escape(row['time'])}.</p>",
                  f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>",
                  _img(png(symbol_figure(row)), f"{row['symbol']}: MAE against the naive forecast")]
    parts.append("</section>")
    return "\n".join(parts)


def _study_section(study: optuna.Study, store: FileSystemArtifactStore) -> str:
    """History, importances, the decision notes and the PNG artifacts (newest decision first) of one study."""
    import optuna.visualization.matplotlib as vis
    from optuna_dashboard import get_note

    name = html.escape(study.study_name)
    parts = [f'<section id="{name}"><h2>{name}</h2>']
    attrs = study.user_attrs
    decision = attrs.get("decision")
    if decision:
        parts.append(f"<p class=decision>{html.escape(decision['line'])} (trial {decision['trial']}, "
                     f"{html.escape(decision['time'])})</p>")
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    plots = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if complete:
            ax = vis.plot_optimization_history(study)
            naive = (attrs.get("naive_mae") or {}).get("validation")
            if naive is not None:
                ax.axhline(naive, color="grey", ls=":", label="naive zero return")
                ax.legend()
            ax.set_ylabel("validation MAE (mean over runs)")
            plots.append(_img(png(ax.get_figure(), tight=True), "optimisation history"))
        else:
            plots.append("<p>Optimisation history: no complete trial yet.</p>")
        if len(complete) >= 2 and any(len({repr(t.params.get(k)) for t in complete}) > 1 for k in complete[0].params):
            figure = vis.plot_param_importances(study).get_figure()
            plots.append(_img(png(figure, tight=True), "parameter importances (fANOVA)"))
        else:
            plots.append("<p>Parameter importances: need at least 2 complete trials with different params.</p>")
    parts.append("<div class=row>" + "".join(plots) + "</div>")
    note = get_note(study)
    if note:
        parts.append(f"<h3>Decision notes (as in the dashboard)</h3><div class=notes>{_markdown(note)}</div>")
    for meta in sorted(get_all_artifact_meta(study), key=lambda m: (-_trial_of(m.filename), m.filename)):
        if meta.mimetype != "image/png":
            continue
        try:
            with store.open_reader(meta.artifact_id) as reader:
                data = reader.read()
        except ArtifactNotFound:
            parts.append(f"<p>Artifact {html.escape(meta.filename)} is missing from the artifact store: pass the "
                         "--artifact-dir it was written to.</p>")
            continue
        parts.append(_img(data, meta.filename))
    parts.append("</section>")
    return "\n".join(parts)


def _markdown(text: str) -> str:
    """HTML of a decision note's Markdown (tables included); raw HTML in the text is escaped, never passed on."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def _trial_of(filename: str) -> int:
    """The trial number in an artifact name like forecast_trial12.png; -1 for other names."""
    match = re.search(r"_trial(\d+)\.", filename)
    return int(match[1]) if match else -1


def _img(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    caption = html.escape(caption)
    return (f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
            f"<figcaption>{caption}</figcaption></figure>")


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Optuna studies report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
section {{ margin-top: 2.5em; border-top: 2px solid #ddd; }}
img {{ max-width: 100%; }}
.row {{ display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }}
.row figure {{ max-width: 48%; }}
.notes {{ background: #f6f6f6; padding: 0.2em 1em; }}
.notes table {{ margin: 0.5em 0; }}
.notes h2 {{ font-size: 1.1em; }}
code {{ white-space: pre-wrap; }}
figure {{ margin: 1em 0; }}
figcaption, .meta {{ color: #666; font-size: 0.9em; }}
.decision {{ font-weight: bold; }}
</style>
</head>
<body>
<h1>Optuna studies report</h1>
<p class=meta>Storage {storage}, written {time}. MAEs are one-step return MAEs on the validation windows unless
stated; the naive baseline predicts a zero return.</p>
{table}
{champions}
{sections}
</body>
</html>
"""
