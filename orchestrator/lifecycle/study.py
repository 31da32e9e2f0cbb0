"""Study lifecycle: naming, comparability, setup and resume (grown data rolls forward), working a study to its
target (the loop itself: runloop.py), and the commit step."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from orchestrator.decisions.commit import CommitRule, Decision, decide
from orchestrator.storages.counts import Counts, counts
from orchestrator.data import Series, Windows, check_symbol, load_series, make_windows
from orchestrator.errors import BadInput
from orchestrator.scoring.evaluation import EncodeCache, Evaluator, naive_mae
from orchestrator.lifecycle.lineage import (
    CMAES_WARM, READING, ROLLED_CONFIGS, Growth, archive, bars_marks, changed_settings, check_resumable, fed_until,
    new_bars, pause_for_tests, record_rescale, rolled_line, set_up_attrs, stored_attrs,
)
from orchestrator.models.base import Forecaster, ModelOptions, create, forecaster_class
from orchestrator.search.objective import Objective, TrialGuard
from orchestrator.decisions.records import best_path, read_config, transfer_configs
from orchestrator.search.runloop import best_number, run_to_target
from orchestrator.search.sampling import archived_trials, enqueue_warm_starts, make_pruner, make_sampler
from orchestrator.settings import LEGACY, STUDY_KEYS, Settings, space_path, study_settings
from orchestrator.search.space import Space, load_space
from orchestrator.storages.storage import (
    check_storage_url, open_storage, storage_exists, storage_label, study_guard, sync_wal, wait_for_live_trials,
)

GUARD_SECONDS = 600
"""How long a setup waits for another process's roll-forward of the same study (plus the grace period)."""


def study_name(model: str, symbol: str) -> str:
    return f"{model}/{symbol}"


def comparability(job: Job, forecaster: Forecaster) -> dict[str, Any]:
    """The COMPARABLE attrs of this job; `val_windows` is the count of windows actually used."""
    settings = job.settings
    return {
        "model": job.model, "symbol": job.symbol, "data_sha256": job.series.sha256, "price": job.series.price,
        "drop_missing": settings.drop_missing, "dayfirst": settings.dayfirst, "decimal": settings.decimal,
        "val_windows": len(job.windows.validation), "test_windows": len(job.windows.test),
        "eval_runs": settings.eval_runs, "space_hash": job.space.hash, "seed": settings.seed,
        "scoring_version": forecaster.scoring_version, "weights": forecaster.weights_id,
    }


@dataclass(frozen=True)
class Job:
    """One (model, symbol) with every input validated; building it writes nothing."""

    model: str
    symbol: str
    settings: Settings
    options: ModelOptions
    space: Space
    series: Series
    windows: Windows
    incumbent: dict[str, Any] | None

    @property
    def name(self) -> str:
        return study_name(self.model, self.symbol)

    @property
    def longest_context(self) -> int:
        return int(self.space.high(forecaster_class(self.model).context_param))

    @property
    def short_windows(self) -> int:
        """Validation windows with fewer bars before them than the space's longest context."""
        return self.windows.short(self.longest_context)

    @property
    def notes(self) -> list[str]:
        """What the user should know about the data and the model: how the file was read, dropped rows, one run for
        a model that does not sample (short histories: `summary.short_history_note`)."""
        notes = list(self.series.notes)
        if not forecaster_class(self.model).stochastic:
            notes.append(f"{self.name}: {self.model} does not sample (the same bars give the same forecast), so each "
                         "trial and the confirm step make one run, whatever --eval-runs and --confirm-runs say")
        return notes


def prepare(
    model: str, symbol: str, settings: Settings, options: ModelOptions, space_file: Path | None = None
) -> Job:
    """Validate everything a study needs (symbol, model, space, data, windows, incumbent, storage URL)."""
    check_symbol(symbol)
    cls = forecaster_class(model)
    required = (cls.context_param, cls.samples_param) if cls.stochastic else (cls.context_param,)
    space = load_space(space_path(model, space_file), cls.params, required)
    cls.check_space(space)
    if space.low(cls.context_param) < cls.min_context:
        raise BadInput(f"{space.path}: [{cls.context_param}] can be {space.low(cls.context_param)}, but {model} needs "
                       f"at least {cls.min_context} bars of context; raise its lowest value")
    series = load_series(settings.data_dir, symbol, cls.required_columns, cls.optional_columns,
                         price=settings.price, drop_missing=settings.drop_missing, dayfirst=settings.dayfirst,
                         decimal=settings.decimal)
    windows = make_windows(series, settings.val_windows, settings.test_windows, cls.min_context)
    path = best_path(settings.best_dir, model, symbol)
    incumbent = read_config(path)
    if incumbent is not None and (incumbent.get("model"), incumbent.get("symbol")) not in ((model, symbol), (None, None)):
        raise BadInput(f"{path}: holds {incumbent.get('model')}/{incumbent.get('symbol')}, not {model}/{symbol}; "
                       "move it to the right place")
    check_storage_url(settings.storage)
    if not cls.stochastic:  # the same forecast on every run: one run per trial and one confirm run, recorded so
        settings = settings.model_copy(update={"eval_runs": 1, "confirm_runs": 1})
    return Job(model, symbol, settings, options, space, series, windows, incumbent)


def resumed_settings(model: str, symbol: str, settings: Settings, explicit: set[str]) -> Settings:
    """`settings` with an existing study's recorded study settings (STUDY_KEYS) and target where no flag set them,
    so a study resumes as it was created (an older study keeps its windows and its `any` rule). A study that rolls
    forward onto grown data keeps them too: the new study is the next night of the same lineage, and `setup`'s line
    names each flag that changed one."""
    check_storage_url(settings.storage)
    if not storage_exists(settings.storage):
        return settings
    attrs = stored_attrs(open_storage(settings.storage, settings), study_name(model, symbol))
    if not attrs or "settings" not in attrs:
        return settings
    values = settings.model_dump()
    for key in STUDY_KEYS:
        if key not in explicit:
            values[key] = attrs["settings"].get(key, LEGACY.get(key, values[key]))
    if "trials" not in explicit:
        values["trials"] = attrs.get("target", values["trials"])
    return study_settings(study_name(model, symbol), values)


@dataclass(frozen=True)
class Setup:
    """What `setup` did to the stored study: the archive's name when it replaced one, and lines for the user."""

    archived: str | None = None
    notes: tuple[str, ...] = ()


def check_setup(job: Job, forecaster: Forecaster, fresh: bool = False) -> Growth | None:
    """Check, writing nothing, that the stored study can go on with this job (BadInput when not); returns how its
    data file grew (bars appended, earlier bars rescaled) when the study will roll forward onto it, else None."""
    settings = job.settings
    if fresh or not storage_exists(settings.storage):
        return None
    recorded = set_up_attrs(open_storage(settings.storage, settings), job.name)
    if recorded is None:
        return None
    wanted, label = comparability(job, forecaster), storage_label(settings.storage)
    if recorded.get("data_sha256") == wanted["data_sha256"]:
        check_resumable(job.name, recorded, wanted, label)
        return None
    check_resumable(job.name, recorded, wanted, label, READING)
    return new_bars(job.name, job.series, recorded, settings.best_dir)


def setup(job: Job, forecaster: Forecaster, fresh: bool = False) -> Setup:
    """Create the study (or check that the stored one can go on), record its settings and target, and enqueue the
    warm starts. Runs once per study in the process that starts the work (Optuna's enqueue is not process-safe).
    `fresh` archives the stored study and starts anew; so does grown data (bars appended to the file: the study
    rolls forward), whose new study also enqueues the archived study's best configs after the incumbent.

    Check, archive, create and warm start are one step under the study's guard (`storage.study_guard`), whoever
    runs it: a process that finds the study replaced meanwhile (another process rolled it forward) joins the new
    one. A study whose trials are alive in other processes is not archived: their end is waited for, at most the
    heartbeat's grace period, else the study is left to finish (BadInput, nothing written)."""
    check_setup(job, forecaster, fresh)  # refused before waiting for anything
    settings = job.settings
    storage = open_storage(settings.storage, settings)
    seen = (stored_attrs(storage, job.name) or {}).get("uid")
    pause_for_tests("guard")
    with study_guard(storage, job.name, GUARD_SECONDS + settings.grace_period):
        recorded = set_up_attrs(storage, job.name)
        replaced = recorded is not None and seen is not None and recorded.get("uid") != seen
        fresh = fresh and not replaced  # another process replaced it meanwhile: join its new study
        grown = check_setup(job, forecaster, fresh)
        archived = None
        if recorded is not None and (fresh or grown is not None):
            wait_for_live_trials(storage, job.name, settings.grace_period)
            pause_for_tests("checked")
            archived = archive(storage, job.name)
            if grown is not None and grown.rescale is not None:
                record_rescale(settings.best_dir, job.series, recorded, grown.rescale)
        notes = _create(job, forecaster, storage, recorded, archived, grown)
    if replaced:
        notes = (f"{job.name}: another process replaced the study meanwhile (archived it as "
                 f"{recorded.get('previous_study')}); joined the new study",)
    return Setup(archived, notes)


def _create(job: Job, forecaster: Forecaster, storage: RDBStorage, recorded: dict[str, Any] | None,
            archived: str | None, grown: Growth | None) -> tuple[str, ...]:
    """Create the study (or load the stored one), record its attrs and enqueue its warm starts; the notes."""
    settings = job.settings
    study = optuna.create_study(study_name=job.name, storage=storage, direction="minimize", load_if_exists=True)
    notes: tuple[str, ...] = ()
    if recorded is None or archived is not None:
        naive = {split: naive_mae(job.series, job.windows.of(split)) for split in ("validation", "test")}
        for key, value in {**comparability(job, forecaster), **bars_marks(job.series), "uid": uuid.uuid4().hex,
                           "naive_mae": naive, "data_path": str(job.series.path.resolve()),
                           "space_path": str(job.space.path.resolve()), "confirm_runs": settings.confirm_runs,
                           "short_windows": job.short_windows, "dropped_rows": list(job.series.dropped),
                           "options": asdict(job.options), "previous_study": archived}.items():
            study.set_user_attr(key, value)
        transfers = transfer_configs(settings.best_dir, job.model, job.symbol) if settings.transfer else []
        params = job.incumbent["params"] if job.incumbent else None
        previous = [] if grown is None else storage.get_all_trials(
            storage.get_study_id_from_name(archived), deepcopy=False, states=(TrialState.COMPLETE,))
        rolled = enqueue_warm_starts(study, job.space, params, transfers, settings.max_transfer,
                                     previous if settings.sampler == "tpe" else [], ROLLED_CONFIGS)
        if grown is not None:
            if rolled or (settings.sampler == "cmaes" and len(previous) >= CMAES_WARM):
                study.set_user_attr("fed_until", fed_until(job.series, recorded, grown.bars))
            notes = (rolled_line(job.name, job.series, settings.sampler, archived, grown, rolled, len(previous),
                                 changed_settings(recorded, settings)),)
        elif archived is not None:
            notes = (f"archived the previous study as {archived}",)
    study.set_user_attr("target", settings.trials)
    study.set_user_attr("settings", settings.model_dump(mode="json"))  # last: marks the setup complete
    sync_wal(storage)
    return notes


@dataclass
class Outcome:
    study: str
    stopped: str
    counts: Counts
    best_value: float | None
    naive_mae: float
    decision: Decision | None
    decision_line: str
    notes: list[str]


RecordDecision = Callable[[optuna.Study, Decision, Evaluator, Path], None]
"""Called with each new commit decision and the artifact dir: the dashboard's note and plots
(`dashboard.record_decision`)."""
Callback = Callable[[optuna.Study, FrozenTrial], None]


def work(
    job: Job,
    worker: int = 0,
    commit: bool = True,
    forecaster: Forecaster | None = None,
    record: RecordDecision | None = None,
    callbacks: list[Callback] = (),
) -> Outcome:
    """Run trials of an existing study until its target, then (with `commit`) the commit protocol, once per best
    trial; `record` is called with a new decision and `callbacks` after each trial of this process. Several workers
    (processes, machines) may work on one study; each gets its own sampler seed.

    `forecaster` may come loaded from earlier studies (a launch worker keeps it): this study's encode cache is
    released when the study ends, and its `model_info` counts only this study's compiles.
    """
    settings = job.settings
    forecaster = forecaster or create(job.model, job.options)
    loaded_with = forecaster.info()
    storage = open_storage(settings.storage, settings)
    _check_stored(storage, job, forecaster)
    fresh_start = storage.get_n_trials(storage.get_study_id_from_name(job.name), TrialState.COMPLETE) == 0
    source = archived_trials(storage, job.name) if fresh_start and settings.sampler == "cmaes" else []
    incumbent = job.incumbent["params"] if job.incumbent else None
    sampler, sampler_note = make_sampler(settings, job.space, incumbent, source, worker)
    study = optuna.load_study(study_name=job.name, storage=storage, pruner=make_pruner(settings), sampler=sampler)
    evaluator = Evaluator(forecaster, job.series, job.windows, settings.seed, EncodeCache(settings.cache_mb << 20))
    target = study.user_attrs["target"]
    guard = TrialGuard(settings.timeout_percentile, settings.timeout_factor, settings.timeout_min_seconds)
    objective = Objective(job.space, evaluator, range(settings.eval_runs), guard)
    try:
        stopped = run_to_target(study, storage, objective, target, settings.patience, settings.budget,
                                callbacks=[*callbacks, lambda *_: pause_for_tests("told")])
    except Exception:
        if stored_attrs(storage, job.name) is None or storage.get_study_id_from_name(job.name) != study._study_id:
            raise BadInput(f"study {job.name} was archived under this process (another process rolled it forward "
                           "or started it --fresh); its finished trials are in the archive: this process stops; "
                           "run it again to join the new study") from None
        raise
    study.set_user_attr("model_info", _this_study(loaded_with, forecaster.info()))
    decision = _decide(study, evaluator, job, record) if commit else None
    evaluator.cache.clear()
    sync_wal(storage)
    best = best_number(study)
    line = decision.line if decision else f"NOT updating {job.name}: no trial completed"
    return Outcome(
        study=job.name, stopped=stopped, counts=counts(study),
        best_value=study.best_value if best is not None else None,
        naive_mae=study.user_attrs["naive_mae"]["validation"], decision=decision,
        decision_line=line if commit else f"{job.name}: trials done; run `orchestrator commit` to decide",
        notes=job.notes + ([sampler_note] if sampler_note else []),
    )


def _this_study(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The forecaster's info, its counters (compiles, compile seconds, recompiles) counted from `before`."""
    return {key: round(value - before[key], 3) if {type(value), type(before.get(key))} <= {int, float} else value
            for key, value in after.items()}


def commit_study(job: Job, record: RecordDecision | None = None) -> Decision | None:
    """The commit protocol for a study whose trials other processes or machines ran (`orchestrator commit`)."""
    storage = open_storage(job.settings.storage, job.settings)
    forecaster = create(job.model, job.options)
    _check_stored(storage, job, forecaster)
    study = optuna.load_study(study_name=job.name, storage=storage)
    evaluator = Evaluator(forecaster, job.series, job.windows, job.settings.seed)
    return _decide(study, evaluator, job, record)


def _check_stored(storage: RDBStorage, job: Job, forecaster: Forecaster) -> None:
    label = storage_label(job.settings.storage)
    recorded = stored_attrs(storage, job.name)
    if recorded is None:
        raise BadInput(f"study {job.name} is not in {label}; create it with `orchestrator optimize` or `launch`")
    check_resumable(job.name, recorded, comparability(job, forecaster), label)


def _decide(study: optuna.Study, evaluator: Evaluator, job: Job, record: RecordDecision | None) -> Decision | None:
    settings = job.settings
    confirm = range(settings.eval_runs, settings.eval_runs + settings.confirm_runs)  # fresh runs, shared by both
    series, forecaster = job.series, evaluator.forecaster
    provenance = {
        "data": {"path": str(series.path.resolve()), "sha256": series.sha256, "rows": series.rows,
                 "last_timestamp": series.last_timestamp, "bars_sha256": series.bars_sha256(), "price": series.price,
                 "drop_missing": settings.drop_missing, "dayfirst": settings.dayfirst, "decimal": settings.decimal,
                 "dropped_rows": len(series.dropped)},
        "options": {**asdict(job.options), "weights_id": forecaster.weights_id},
    }
    rule = CommitRule(settings.commit_rule, settings.min_confidence, settings.spa_configs)
    decision = decide(study, evaluator, settings.best_dir, confirm, storage_label(settings.storage), rule, provenance)
    if decision is not None and not decision.earlier and record is not None:
        record(study, decision, evaluator, settings.artifact_dir)
    return decision


def recorded_job(name: str, settings: Settings, **overrides: Any) -> Job:
    """Rebuild a stored study's job from the settings, target, model options, data file and space it recorded.

    `settings.storage` says where the study is; `overrides` (e.g. data_dir, best_dir) replace recorded settings.
    """
    storage = open_storage(settings.storage, settings)
    attrs = stored_attrs(storage, name)
    if attrs is None:
        raise BadInput(f"study {name} is not in {storage_label(settings.storage)}; check --study and --storage")
    if "settings" not in attrs:
        raise BadInput(f"study {name} was never fully set up; run `orchestrator optimize` or `launch` for it again")
    values = {**LEGACY, **attrs["settings"], "storage": settings.storage, "data_dir": Path(attrs["data_path"]).parent,
              "trials": attrs["target"]}  # the target, which `worker --trials` may have raised
    values.update({k: v for k, v in overrides.items() if v is not None})
    space_file = Path(attrs["space_path"])
    if not space_file.is_file():  # another machine: the same space here (its hash is checked)
        space_file = space_path(attrs["model"])
    return prepare(attrs["model"], attrs["symbol"], study_settings(name, values),
                   ModelOptions(**attrs.get("options", {})), space_file)


def raise_target(job: Job, target: int) -> None:
    """Raise the study's target of finished trials (never lowers it)."""
    study = optuna.load_study(study_name=job.name, storage=open_storage(job.settings.storage, job.settings))
    if target > study.user_attrs["target"]:
        study.set_user_attr("target", target)


def optimize(
    job: Job, fresh: bool = False, record: RecordDecision | None = None, callbacks: list[Callback] = (),
    announce: Callable[[str], None] = lambda note: None,
) -> tuple[Outcome, Setup]:
    """Set up (or resume, or roll forward) the study and work on it in this process; returns the outcome and what
    the setup did. `announce` gets each of the setup's notes before the first trial."""
    forecaster = create(job.model, job.options)  # missing weights are bad input: refused before anything is written
    done = setup(job, forecaster, fresh)
    for note in done.notes:
        announce(note)
    return work(job, forecaster=forecaster, record=record, callbacks=callbacks), done
