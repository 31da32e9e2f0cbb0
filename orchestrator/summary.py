"""One row per study in a storage, as `status` and `report` show it: trial counts, target, best value, incumbent
value, and the latest decision with its evidence."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from orchestrator.settings import Settings
from orchestrator.storage import check_storage_url, open_storage, storage_exists, study_names
from orchestrator.objective import counts


def summaries(url: str, settings: Settings, archived: bool = False) -> list[dict[str, Any]]:
    """One row per current study in the storage (and per archived one with `archived`): counts, target, best value,
    incumbent value, decision. Only the studies listed are loaded: hundreds of archives cost little."""
    check_storage_url(url)
    if not storage_exists(url):
        return []
    storage = open_storage(url, settings)
    rows = []
    for name in study_names(storage, archived):
        study = optuna.load_study(study_name=name, storage=storage)
        attrs = study.user_attrs
        c = counts(study)
        best = _best(study)
        decision = attrs.get("decision") or {}
        incumbent = decision.get("incumbent_mae")
        if not decision:
            incumbent = next((t.value for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                              if t.user_attrs.get("warm_start") == "incumbent"), None)
        rows.append({
            "study": name, "model": attrs.get("model"), "symbol": attrs.get("symbol"),
            "complete": c.complete, "pruned": c.pruned, "failed": c.failed, "running": c.running,
            "target": attrs.get("target"), "best_value": best.value if best is not None else None,
            "incumbent_value": incumbent, "naive_mae": (attrs.get("naive_mae") or {}).get("validation"),
            "committed": decision.get("committed"), "evidence": decision.get("evidence"),
            "beats_naive": decision.get("beats_naive"), "decision": decision.get("line"),
        })
    return rows


def _best(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:
        return None
