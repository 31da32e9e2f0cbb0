"""`<best_dir>/champions.json`, the one file a trading system reads to pick a model per symbol: written by
`orchestrator leaderboard`, read by the report, which draws it (matplotlib is imported only there)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.decisions.records import locked, write_atomic
from orchestrator.errors import BadInput

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CHAMPIONS = "champions.json"
NAIVE = "naive"


def read_champions(best_dir: Path) -> dict[str, Any]:
    """The file's contents ({} when there is none); BadInput when it is corrupt (it is never overwritten)."""
    path = Path(best_dir) / CHAMPIONS
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"{path}: corrupt champions file ({exc}); it was left untouched: fix it or move it away") \
            from None
    if not isinstance(record, dict) or not isinstance(record.get("symbols"), dict):
        raise BadInput(f"{path}: corrupt champions file (no 'symbols' object); it was left untouched: fix it or "
                       "move it away")
    return record


def write_champions(best_dir: Path, rows: list[dict[str, Any]]) -> tuple[Path | None, list[str]]:
    """(the file or None, a note per symbol left as it was). Rows of the symbols whose every committed model was
    compared are written, atomically and under the file's lock; other symbols keep their earlier entries: a champion
    chosen without one of the symbol's families is not what a trading system should read."""
    complete = {row["symbol"]: row for row in rows if not row["not_compared"]}
    notes = [f"{row['symbol']}: not written to {CHAMPIONS} (an earlier entry stays): not every committed model was "
             f"compared ({', '.join(f'{m}: {why}' for m, why in row['not_compared'].items())})"
             for row in rows if row["not_compared"]]
    if not complete:
        return None, notes
    path = Path(best_dir) / CHAMPIONS
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(best_dir, path):
        symbols = {**read_champions(best_dir).get("symbols", {}), **complete}
        write_atomic(path, {"updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                             "symbols": dict(sorted(symbols.items()))})
    return path, notes


def symbol_figure(row: dict[str, Any]) -> Figure:
    """Each model's MAE with an error bar of one standard error of its difference from naive, against the naive
    line; members of the confidence set filled green."""
    plt = _pyplot()
    models = row["models"]  # best first
    naive = models[NAIVE]["mae"]
    names = list(models)[::-1]  # best at the top
    figure, ax = plt.subplots(figsize=(8, 1.6 + 0.45 * len(names)), layout="constrained")
    for y, name in enumerate(names):
        m = models[name]
        se = m["evidence"]["se"] * naive if name != NAIVE else 0.0
        color = "tab:green" if m["in_set"] else "tab:grey"
        ax.errorbar(m["mae"], y, xerr=se, fmt="o", ms=8, capsize=4, color=color,
                    mfc=color if m["in_set"] else "white")
    ax.axvline(naive, color="black", ls=":", lw=1.5)
    ax.set_yticks(range(len(names)), [f"{n} (in set)" if models[n]["in_set"] else n for n in names])
    ax.set_xlabel(f"return MAE on {row['windows']['count']} held-out windows; dotted line: naive ({naive:.5f})\n"
                  "error bars: ± 1 standard error of the difference from naive", fontsize=9)
    ax.margins(y=0.3)
    ax.grid(alpha=0.3, axis="x")
    ax.set_title(row["line"], fontsize=9)
    return figure


def overview_figure(rows: list[dict[str, Any]]) -> Figure:
    """Across symbols: how often each family is the champion (clear or tied), and how often there is none."""
    plt = _pyplot()
    counts = Counter((row["champion"] or "none", row["verdict"]) for row in rows)
    families = sorted({c for c, _ in counts} - {"none"}) + (["none"] if any(c == "none" for c, _ in counts) else [])
    figure, ax = plt.subplots(figsize=(1.5 + 1.2 * len(families), 3.2), layout="constrained")
    clear = [counts[(f, "clear")] for f in families]
    tied = [counts[(f, "tied")] for f in families]
    none = [counts[(f, "none")] for f in families]
    ax.bar(families, clear, color="tab:green", label="clear")
    ax.bar(families, tied, bottom=clear, color="tab:olive", label="tied")
    ax.bar(families, none, bottom=[a + b for a, b in zip(clear, tied)], color="tab:grey", label="naive is as good")
    ax.set_ylabel("symbols")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_title(f"champions of {len(rows)} symbol(s)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figure


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # offline, as the dashboard's plots
    import matplotlib.pyplot as plt

    return plt
