"""Samplers seeded from prior best configs (TPE with warm-start trials, CMA-ES started at the incumbent or from an
earlier study), and the pruner."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
import scipy.special
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.samplers._tpe import _truncnorm
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from orchestrator.settings import Settings
from orchestrator.search.space import Space
from orchestrator.storages.storage import study_names

# Optuna 5's TPE computes log(ndtr(x)) one element at a time in Python (np.frompyfunc over a scalar function): at 1000
# trials of the fhs space (two log-int params) that is ~45 ms of a trial's ~60 ms of sampling. scipy's ufunc computes
# the same function in C (within 3.4e-13 on [-40, 40]; fhs studies drew the same params to 1e-9). A private module of
# Optuna (pinned < 6): should the function be renamed, TPE just keeps its own.
if callable(getattr(_truncnorm, "_log_ndtr", None)):
    _truncnorm._log_ndtr = scipy.special.log_ndtr


def archived_trials(storage: RDBStorage, name: str) -> list[FrozenTrial]:
    """Complete trials of the newest archived study of `name` (an earlier study of the same model and symbol)."""
    names = sorted(n for n in study_names(storage, archived=True) if n.startswith(name + "@"))
    if not names:
        return []
    return storage.get_all_trials(storage.get_study_id_from_name(names[-1]), states=(TrialState.COMPLETE,))


def make_sampler(
    settings: Settings, space: Space, incumbent: Mapping[str, Any] | None, source: list[FrozenTrial], worker: int = 0
) -> tuple[optuna.samplers.BaseSampler, str | None]:
    """TPE, or CMA-ES started at the incumbent's numeric params (clipped into the space) or warm-started from
    `source` trials; with a note on how CMA-ES starts when the user should know."""
    seed = settings.seed + worker  # each worker process of one study gets its own sampler seed
    # group=True is for params that exist only for some values of another (`when`); without them it samples the same
    # points but re-decomposes the search space over every trial at each ask (2.8 ms of CPU at 1000 trials)
    tpe = optuna.samplers.TPESampler(seed=seed, group=any(p.when for p in space.params))
    if settings.sampler == "tpe":
        return tpe, None
    numeric = [p for p in space.params if not p.when and not isinstance(p.distribution, CategoricalDistribution)]
    sources = _numeric_only(source, {p.name for p in numeric})
    sources = sources if len(sources) >= 10 else None  # WS-CMA-ES starts from the best 10%: it needs 10 or more
    x0, note = None, None
    if not sources and incumbent is not None and all(p.name in incumbent for p in numeric):
        x0 = {p.name: _clip(p.distribution, incumbent[p.name]) for p in numeric}
        moved = [f"{p.name} {incumbent[p.name]} -> {x0[p.name]}" for p in numeric if x0[p.name] != incumbent[p.name]]
        if moved:
            note = f"CMA-ES starts from the incumbent clipped into the space: {', '.join(moved)}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # x0 is deprecated in Optuna 5 but still the way to start CMA
        sampler = optuna.samplers.CmaEsSampler(
            x0=x0, seed=seed, consider_pruned_trials=True, with_margin=True,
            independent_sampler=tpe, warn_independent_sampling=False, source_trials=sources,
        )
    return sampler, note


def _clip(distribution: optuna.distributions.BaseDistribution, value: Any) -> Any:
    """The point of the distribution's range (and step grid) nearest to `value`."""
    low, high, step = distribution.low, distribution.high, distribution.step
    clipped = min(max(float(value), low), high)
    if step is not None:
        clipped = low + round((clipped - low) / step) * step
    return int(round(clipped)) if isinstance(distribution, IntDistribution) else clipped


def _numeric_only(trials: list[FrozenTrial], names: set[str]) -> list[FrozenTrial]:
    """WS-CMA-ES needs source trials whose params are exactly the numeric search space."""
    out = []
    for t in trials:
        if not names or not names <= set(t.params):
            continue
        out.append(optuna.create_trial(
            params={n: t.params[n] for n in names}, distributions={n: t.distributions[n] for n in names},
            value=t.value,
        ))
    return out


def make_pruner(settings: Settings) -> optuna.pruners.BasePruner:
    return optuna.pruners.MedianPruner(n_startup_trials=settings.pruner_startup_trials, n_warmup_steps=0)


def enqueue_warm_starts(
    study: optuna.Study,
    space: Space,
    incumbent: Mapping[str, Any] | None,
    transfers: list[tuple[str, Mapping[str, Any]]],
    max_transfer: int,
    previous: Sequence[FrozenTrial] = (),
    max_previous: int = 0,
) -> int:
    """Enqueue the incumbent, then up to `max_previous` best distinct configs of the `previous` study's complete
    trials (the archived study a roll-forward replaced), then up to `max_transfer` distinct configs of other
    symbols; returns how many of the previous study's configs were enqueued.

    Params are normalised to the space's native types so Optuna's duplicate check recognises them on resume.
    Configs outside the space are skipped (they are still the incumbent at commit time).
    """
    queue: list[tuple[dict[str, Any], dict[str, Any]]] = []
    normal = space.normalize(incumbent) if incumbent is not None else None
    if normal is not None:
        queue.append((normal, {"warm_start": "incumbent"}))

    def add(candidates: list[tuple[Mapping[str, Any], dict[str, Any]]], most: int) -> int:
        added = 0
        for params, attrs in candidates:
            if added == most:
                break
            candidate = space.normalize(params)
            if candidate is not None and all(candidate != q for q, _ in queue):
                queue.append((candidate, attrs))
                added += 1
        return added

    ranked = sorted((t for t in previous if t.value is not None), key=lambda t: t.value)
    rolled = add([(t.params, {"warm_start": "previous_study", "previous_trial": t.number}) for t in ranked],
                 max_previous)
    add([(params, {"warm_start": "transfer", "transfer_from": symbol}) for symbol, params in transfers], max_transfer)
    for params, attrs in queue:
        study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=True)
    return rolled
