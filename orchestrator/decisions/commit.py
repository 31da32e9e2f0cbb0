"""The commit protocol: the candidate and the incumbent scored on fresh confirm runs, the paired evidence and the SPA
test over the configs tried, the rule, and the decision: made once, written under the config's lock, recorded in the
history (the files themselves: records.py)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from orchestrator import __version__
from orchestrator.errors import UNSCORABLE, unscorable_reason
from orchestrator.scoring.evidence import Evidence, SpaEvidence, evidence_text, paired_evidence, spa_evidence
from orchestrator.decisions.records import (
    DECISION, append_history, best_path, finite, latest, locked, read_config, read_history, write_atomic,
)

if TYPE_CHECKING:  # torch: `status` reads committed configs through this module without it
    from orchestrator.scoring.evaluation import Evaluator

UNSCORED = ("could not be scored (", "); replaced without a comparison")
"""`previous.error` of a committed file whose incumbent could not be scored: the reason goes between these."""
RECOVERED = "; recorded late: the process that committed it stopped before it could add it to the history"


@dataclass(frozen=True)
class CommitRule:
    """`spa`: commit only when the candidate is better and the SPA test over the configs tried gives at least
    `min_confidence` that it beats the incumbent; `significant`: the paired one-sided test of the candidate alone
    gives at least `min_confidence`; `any`: any positive improvement commits. Ties never commit."""

    rule: str = "spa"
    min_confidence: float = 0.95
    spa_configs: int | None = None
    """The SPA test rescores at most this many configs, the best search values first; all when None."""

    def passes(self, evidence: Evidence, spa: SpaEvidence | None = None) -> bool:
        if evidence.improvement <= 0:
            return False
        if self.rule == "spa":
            return spa is not None and spa.confidence >= self.min_confidence
        return self.rule == "any" or evidence.confidence >= self.min_confidence

    def describe(self) -> str:
        if self.rule == "any":
            return "any improvement"
        return f"confidence >= {self.min_confidence:g}" + (" over the configs tried" if self.rule == "spa" else "")


@dataclass
class Decision:
    study: str
    trial: int
    committed: bool
    candidate: dict[str, Any]
    incumbent: dict[str, Any] | None
    path: str
    time: str
    evidence: dict[str, Any] | None = None
    rule: dict[str, Any] = field(default_factory=dict)
    naive_mae: float | None = None
    note: str = ""
    earlier: bool = False  # found in the history: this trial was decided before, nothing was redone
    selected_until: str | None = None  # the last bar the chosen config was selected on (`selected_until`)

    @property
    def beats_naive(self) -> bool | None:
        """Whether the config in use after the decision beats the naive zero-return forecast (validation windows)."""
        standing = self.candidate if self.committed else (self.incumbent or {})
        mae = (standing.get("validation") or {}).get("mae")
        if mae is None or self.naive_mae is None:
            return None
        return mae < self.naive_mae

    @property
    def line(self) -> str:
        if self.earlier:
            verdict = "committed" if self.committed else "kept the incumbent"
            return (f"NOT updating {self.study}: best trial {self.trial} is unchanged since its decision at "
                    f"{self.time} ({verdict})")
        new = self.candidate["validation"]["mae"]
        old = ((self.incumbent or {}).get("validation") or {}).get("mae")
        evidence = "" if self.evidence is None else evidence_text(self.evidence)
        if self.incumbent is None:
            text = f"UPDATING {self.study}: MAE {new:.5f} (no incumbent)"
        elif old is None:
            text = (f"UPDATING {self.study}: MAE {new:.5f} (the incumbent could not be scored: "
                    f"{self.incumbent.get('error')}; replaced without a comparison)")
        elif self.committed:
            text = f"UPDATING {self.study}: MAE {old:.5f} -> {new:.5f} ({evidence})"
        elif new < old:
            text = (f"NOT updating {self.study}: candidate {new:.5f} < incumbent {old:.5f} but not significant "
                    f"({evidence}; the rule needs {self.rule.get('describe', 'more evidence')})")
        else:
            text = f"NOT updating {self.study}: candidate {new:.5f} >= incumbent {old:.5f} ({evidence})"
        if self.beats_naive is False:
            which = "the committed config" if self.committed else "the incumbent"
            text += (f"; WARNING: {which} does not beat the naive zero-return forecast "
                     f"(MAE {self.naive_mae:.5f}): it is no better than a random walk")
        return text + self.note


def _score(evaluator: Evaluator, params: dict[str, Any], runs: range) -> tuple[dict[str, Any], np.ndarray]:
    """Validation and test MAEs (mean, standard error over runs, runs, windows) and the validation windows' errors."""
    scores, errors = {}, None
    for split in ("validation", "test"):
        e = evaluator.evaluate(params, runs, split)
        scores[split] = {"mae": e.mae, "sem": e.sem, "runs": len(e.run_maes), "windows": len(e.window_errors),
                         "run_maes": e.run_maes}
        errors = e.window_errors if split == "validation" else errors
    return scores, errors


def decide(
    study: optuna.Study,
    evaluator: Evaluator,
    best_dir: Path,
    confirm_runs: range,
    storage_label: str,
    rule: CommitRule,
    provenance: dict[str, Any],
) -> Decision | None:
    """Run the commit protocol for the study's best trial, once; None when no trial completed.

    Candidate and incumbent are scored on the same fresh runs (`confirm_runs`, common random numbers) and compared
    window by window (`paired_evidence`); `rule` decides. Everything after the candidate's scoring happens under the
    config's file lock: the incumbent is re-read (another worker may have committed), and a decision already in the
    history for this study and trial is returned as is (a rerun or a second worker never decides twice), and the
    study's `decision` attr keeps the line of the decision itself (what `status` and launch's summary show).

    The config is written before the history line. A commit whose process died between the two is found by the
    next decision on this config: the committed file names its study's uid and trial, so its history line is
    rebuilt from the file and appended first; when it is this study's own commit, that is the decision.
    `provenance` (model options, data file and its reading options) goes into the history for the scorecard.
    """
    try:
        best = study.best_trial
    except ValueError:
        return None
    path = best_path(best_dir, study.user_attrs["model"], study.user_attrs["symbol"])
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = _score(evaluator, best.params, confirm_runs)
    with locked(best_dir, path):
        uid = study.user_attrs.get("uid")
        history = read_history(best_dir)
        decision = _from_history(history, uid, best.number)
        if decision is None:
            record = read_config(path)
            lost = _unrecorded_commit(history, record, path)
            if lost is not None:
                append_history(best_dir, lost)
            if lost is not None and (lost["study_uid"], lost["trial"]) == (uid, best.number):
                decision = _decision(lost)
            else:
                decision, entry = _decide_locked(study, best, evaluator, path, record, candidate, confirm_runs,
                                                 storage_label, rule, provenance)
                append_history(best_dir, entry)
        decided = replace(decision, earlier=False)  # a second job finding it decided keeps the line that decided
        study.set_user_attr("decision", {
            "trial": decision.trial, "committed": decision.committed, "time": decision.time,
            "candidate_mae": decision.candidate["validation"]["mae"],
            "candidate_test_mae": decision.candidate["test"]["mae"],
            "incumbent_mae": ((decision.incumbent or {}).get("validation") or {}).get("mae"),
            "evidence": decision.evidence, "rule": decision.rule, "naive_mae": decision.naive_mae,
            "beats_naive": decision.beats_naive, "line": decided.line,
        })
    return decision


def _decision(entry: dict[str, Any], earlier: bool = False) -> Decision:
    fields = Decision.__dataclass_fields__
    return Decision(**{**{k: v for k, v in entry.items() if k in fields}, "earlier": earlier})


def _from_history(history: list[dict[str, Any]], study_uid: str | None, trial: int) -> Decision | None:
    if study_uid is None:
        return None
    for entry in history:
        if (entry.get("study_uid"), entry.get("trial")) == (study_uid, trial):
            return _decision(entry, earlier=True)
    return None


def _entry(decision: Decision, uid: str | None, model: str, symbol: str, params: dict[str, Any],
           incumbent_params: dict[str, Any] | None, seed: int, provenance: dict[str, Any]) -> dict[str, Any]:
    """The history line of a decision."""
    return {"kind": DECISION, **asdict(decision), "beats_naive": decision.beats_naive, "study_uid": uid,
            "model": model, "symbol": symbol, "params": params, "incumbent_params": incumbent_params, "seed": seed,
            **provenance}


def _unrecorded_commit(history: list[dict[str, Any]], record: dict[str, Any] | None, path: Path) -> dict | None:
    """The history line of the commit in `record`, rebuilt from the file, when the history lacks it (its process
    died after writing the config); None when there is nothing to add, or the file names no study uid (written by
    hand or by an earlier version)."""
    study = (record or {}).get("study")
    if not isinstance(study, dict) or study.get("uid") is None:
        return None
    if any((e.get("study_uid"), e.get("trial")) == (study["uid"], study["trial"]) for e in history):
        return None
    previous, incumbent = record["previous"], None
    if previous is not None:
        incumbent = {"params": previous["params"], "validation": previous["validation"], "test": previous["test"]}
        if "error" in previous:
            incumbent["error"] = previous["error"].removeprefix(UNSCORED[0]).removesuffix(UNSCORED[1])
    decision = Decision(
        study=study["name"], trial=study["trial"], committed=True,
        candidate={"validation": record["validation"], "test": record["test"]}, incumbent=incumbent, path=str(path),
        time=record["committed_at"], evidence=record["evidence"], rule=record["rule"],
        naive_mae=(record["naive"] or {}).get("validation"), note=RECOVERED,
        selected_until=record.get("selected_until"),
    )
    return _entry(decision, study["uid"], record["model"], record["symbol"], record["params"],
                  None if previous is None else previous["params"], study["seed"],
                  {"data": record["data"], "options": record["options"]})


def _decide_locked(study, best, evaluator, path, record, candidate, confirm_runs, storage_label, rule, provenance):
    """(decision, its history line) against the incumbent `record`; writes the config when the candidate is
    committed. Only an incumbent whose params cannot run here is replaced without a comparison."""
    (scores, errors) = candidate
    incumbent, evidence = None, None
    if record is not None:
        try:
            incumbent_scores, incumbent_errors = _score(evaluator, record["params"], confirm_runs)
        except UNSCORABLE as exc:
            incumbent = {"params": record["params"], "validation": None, "test": None,
                         "error": unscorable_reason(exc)}
        else:
            incumbent = {"params": record["params"], **incumbent_scores}
            evidence = paired_evidence(errors, incumbent_errors)
    spa = None
    if evidence is not None:
        spa = _spa(study, best, evaluator, confirm_runs, record["params"], errors, incumbent_errors, rule.spa_configs)
    committed = incumbent is None or evidence is None or rule.passes(evidence, spa)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    naive = (study.user_attrs.get("naive_mae") or {}).get("validation")
    recorded = None
    if evidence is not None:
        recorded = {**finite(evidence.to_dict()), "spa": finite(spa.to_dict())}
    decision = Decision(
        study=study.study_name, trial=best.number, committed=committed, candidate=scores, incumbent=incumbent,
        path=str(path), time=now, evidence=recorded,
        rule={**asdict(rule), "describe": rule.describe()}, naive_mae=naive,
        selected_until=selected_until(study, evaluator),
    )
    if committed:
        write_atomic(path, _config_record(study, best, decision, storage_label, provenance, now))
    else:  # kept: the same params and commit time, with how it stands tonight and what it was selected on
        write_atomic(path, {**record, **standing(decision), "selected_until": latest(
            record.get("selected_until"), decision.selected_until)})
    attrs = study.user_attrs
    entry = _entry(decision, attrs.get("uid"), attrs["model"], attrs["symbol"], best.params,
                   None if record is None else record["params"], attrs["seed"], provenance)
    return decision, entry


def selected_until(study: optuna.Study, evaluator: Evaluator) -> str:
    """The last bar the decision's configs were selected on: the last validation window of the study, or of the
    archived studies whose warm starts fed it (`fed_until`), whichever is later."""
    last = evaluator.series.frame["timestamp"].iloc[int(evaluator.windows.validation[-1])].isoformat()
    return latest(last, study.user_attrs.get("fed_until"))


def standing(decision: Decision) -> dict[str, Any]:
    """How the config in use after `decision` stands against the naive forecast, as its record keeps it:
    `beats_naive` and `last_checked` (when, its validation MAE and the naive one, on the decision's windows)."""
    config = decision.candidate if decision.committed else decision.incumbent
    return {"beats_naive": decision.beats_naive,
            "last_checked": {"time": decision.time, "study": decision.study,
                             "mae": (config.get("validation") or {}).get("mae"), "naive_mae": decision.naive_mae}}


def tried_configs(study: optuna.Study, incumbent: dict[str, Any]) -> list[FrozenTrial]:
    """The study's best trial, then its other distinct complete configs by search value: pruned and failed trials
    are left out, params tried more than once (a reused duplicate, a warm start drawn again) count once, and the
    incumbent's own params are the benchmark, not a config."""
    best = study.best_trial
    seen = {_key(best.params), _key(incumbent)}
    trials = [best]
    for trial in sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                        key=lambda t: (t.value, t.number)):
        if _key(trial.params) not in seen:
            seen.add(_key(trial.params))
            trials.append(trial)
    return trials


def _spa(study, best, evaluator: Evaluator, runs: range, incumbent: dict[str, Any], candidate_errors: np.ndarray,
         incumbent_errors: np.ndarray, limit: int | None) -> SpaEvidence:
    """The SPA test of the tried configs (at most `limit`, the best search values first), each rescored on the
    confirm runs (the candidate's errors are reused). Configs are scored grouped by their encode params, so each
    encode runs at most once; a config that cannot run on the confirm runs (NaN forecasts, say) is left out.

    The configs are this study's, over 1 night: a rolled-forward study's warm starts were selected on nearly the same
    windows the night before, but counting the archives' configs too is not needed to keep noise out
    (tests/benchmarks/bench_lineage_null.py, docs/nightly.md)."""
    tried = tried_configs(study, incumbent)
    trials = tried[:limit]
    columns = {0: candidate_errors}
    encode_params = sorted(evaluator.forecaster.encode_params)
    by_encode = sorted(range(1, len(trials)),
                       key=lambda i: json.dumps([trials[i].params.get(p) for p in encode_params], default=str))
    for i in by_encode:
        try:
            columns[i] = evaluator.evaluate(trials[i].params, runs, "validation").window_errors
        except UNSCORABLE:
            continue
    matrix = np.stack([columns[i] for i in sorted(columns)], axis=1)
    spa = spa_evidence(incumbent_errors, matrix, 0, seed=study.user_attrs["seed"])
    return replace(spa, tried=len(tried), nights=1)


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def _config_record(study, best, decision: Decision, storage_label, provenance, now) -> dict[str, Any]:
    attrs = study.user_attrs
    incumbent = decision.incumbent
    previous = None
    if incumbent is not None:
        previous = {"mae": (incumbent.get("validation") or {}).get("mae"), "params": incumbent["params"],
                    "validation": incumbent.get("validation"), "test": incumbent.get("test")}
        if "error" in incumbent:
            previous["error"] = f"{UNSCORED[0]}{incumbent['error']}{UNSCORED[1]}"
    return {
        "symbol": attrs["symbol"],
        "model": attrs["model"],
        "params": best.params,
        "validation": decision.candidate["validation"],
        "test": decision.candidate["test"],
        "previous": previous,
        "evidence": decision.evidence,
        "rule": decision.rule,
        "search": {"mae": best.value, "runs": attrs["eval_runs"]},
        "naive": attrs.get("naive_mae"),
        **standing(decision),
        "selected_until": decision.selected_until,
        "data": provenance["data"],
        "options": provenance["options"],
        "study": {"name": study.study_name, "uid": attrs.get("uid"), "storage": storage_label, "trial": best.number,
                  "seed": attrs["seed"]},
        "decision_line": decision.line,
        "committed_at": now,
        "version": __version__,
    }
