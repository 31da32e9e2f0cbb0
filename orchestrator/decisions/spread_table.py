"""The leaderboard's second table: every symbol's models (`leaderboard.as_dict` rows) by CRPS and 80% / 90%
interval coverage beside MAE, as `orchestrator leaderboard` prints it."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from orchestrator.decisions.scorecard import plain_table
from orchestrator.scoring.probabilistic import coverage_text


def score_table(rows: list[dict[str, Any]]) -> Table:
    """Every symbol's models (`as_dict` rows) by CRPS and interval coverage beside MAE, within 80 columns."""
    table = plain_table("the spread: CRPS (lower is better, ~: approximate)",
                        caption="in: share of bars inside the interval ± binomial se",
                        caption_justify="left")
    for header in ("symbol", "model"):
        table.add_column(header, overflow="fold")
    for header in ("MAE", "CRPS", "80% in", "90% in"):
        table.add_column(header, justify="right")
    for row in rows:
        for i, (name, m) in enumerate(row["models"].items()):
            table.add_row(row["symbol"] if i == 0 else "", name, f"{m['mae']:.5f}",
                          f"{m['crps']:.5f}{'~' if m['crps_approximate'] else ''}",
                          *(coverage_text(m["coverage"][k]) for k in ("80", "90")))
    return table
