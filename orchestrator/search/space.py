"""Search spaces: `configs/spaces/<model>.toml` -> Optuna distributions, and `suggest(trial) -> params`.

Each top-level table is one param, suggested in file order:

    [context_length]                      [aggregate]
    type = "int"   # int | float          type = "categorical"
    low = 32                              choices = ["mean", "median"]
    high = 512
    log = true     # optional, default false
    step = 1       # optional; not with log

A param may be conditional on an earlier categorical one: `when = { filter = "top_p" }` (a value or a list).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from orchestrator.errors import BadInput
from orchestrator.models.aggregate import parse_aggregate

_KEYS = {
    "int": {"type", "low", "high", "log", "step", "when"},
    "float": {"type", "low", "high", "log", "step", "when"},
    "categorical": {"type", "choices", "when"},
}


@dataclass(frozen=True)
class Param:
    name: str
    distribution: BaseDistribution
    when: Mapping[str, tuple[Any, ...]]


@dataclass(frozen=True)
class Space:
    path: Path
    params: tuple[Param, ...]
    definition: Mapping[str, Any]

    @property
    def hash(self) -> str:
        """Fingerprint of the definitions (not of the file's comments or layout)."""
        text = json.dumps(self.definition, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def high(self, name: str) -> Any:
        """Largest value a param can take (for data-size checks)."""
        dist = self.param(name).distribution
        return max(dist.choices) if isinstance(dist, CategoricalDistribution) else dist.high

    def low(self, name: str) -> Any:
        """Smallest value a param can take."""
        dist = self.param(name).distribution
        return min(dist.choices) if isinstance(dist, CategoricalDistribution) else dist.low

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for p in self.params:
            if not _active(p, params):
                continue
            d = p.distribution
            if isinstance(d, IntDistribution):
                params[p.name] = trial.suggest_int(p.name, d.low, d.high, step=d.step, log=d.log)
            elif isinstance(d, FloatDistribution):
                params[p.name] = trial.suggest_float(p.name, d.low, d.high, step=d.step, log=d.log)
            else:
                params[p.name] = trial.suggest_categorical(p.name, d.choices)
        return params

    def normalize(self, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """`params` with the native Python types of this space, or None when they are not a point of it."""
        out: dict[str, Any] = {}
        for p in self.params:
            if not _active(p, out):
                continue
            if p.name not in params:
                return None
            value = params[p.name]
            try:
                if isinstance(p.distribution, IntDistribution):
                    if float(value) != int(value):
                        return None
                    value = int(value)
                elif isinstance(p.distribution, FloatDistribution):
                    value = float(value)
                if not p.distribution._contains(p.distribution.to_internal_repr(value)):
                    return None
            except (TypeError, ValueError):
                return None
            out[p.name] = value
        return out if set(out) == set(params) else None


def _active(p: Param, chosen: Mapping[str, Any]) -> bool:
    return all(chosen.get(name, _MISSING) in values for name, values in p.when.items())


_MISSING = object()


def load_space(path: Path, known: frozenset[str] | None = None, required: tuple[str, ...] = ()) -> Space:
    """Parse and validate a space file; `known` are the params the model understands, `required` must be present."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise BadInput(f"{path}: no such space file; pass --space FILE or create it") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: not valid TOML ({exc}); fix the file") from None
    if not raw:
        raise BadInput(f"{path}: the space is empty; define at least one param")
    params: list[Param] = []
    for name, spec in raw.items():
        params.append(_parse_param(path, name, spec, params, known))
    names = {p.name for p in params}
    for name in required:
        if name not in names or params[[p.name for p in params].index(name)].when:
            raise BadInput(f"{path}: [{name}] is missing (or conditional); this model needs it in every trial")
    return Space(path=path, params=tuple(params), definition=raw)


def _parse_param(path: Path, name: str, spec: Any, earlier: list[Param], known: frozenset[str] | None) -> Param:
    def bad(reason: str) -> BadInput:
        return BadInput(f"{path}: [{name}] {reason}")

    if not isinstance(spec, dict):
        raise bad("must be a table with a type, e.g. [num_samples] type = \"int\" low = 64 high = 4096")
    if known is not None and name not in known:
        raise bad(f"is not a param of this model; known params: {', '.join(sorted(known))}")
    kind = spec.get("type")
    if kind not in _KEYS:
        raise bad(f"type = {kind!r}: use \"int\", \"float\" or \"categorical\"")
    unknown = set(spec) - _KEYS[kind]
    if unknown:
        raise bad(f"unknown key(s) {', '.join(sorted(unknown))} for type {kind!r}; allowed: {', '.join(sorted(_KEYS[kind]))}")
    when = _parse_when(bad, spec.get("when", {}), earlier)
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise bad("choices must be a non-empty list")
        if len(set(map(repr, choices))) != len(choices):
            raise bad(f"choices {choices!r} has duplicates")
        if any(not isinstance(c, (bool, int, float, str)) for c in choices):
            raise bad(f"choices {choices!r}: each must be a string, number or boolean")
        if name == "aggregate":
            for choice in choices:
                try:
                    parse_aggregate(str(choice))
                except ValueError as exc:
                    raise bad(str(exc)) from None
        return Param(name, CategoricalDistribution(tuple(choices)), when)
    number = int if kind == "int" else (int, float)
    low, high, log = spec.get("low"), spec.get("high"), spec.get("log", False)
    for key, value in (("low", low), ("high", high)):
        if not isinstance(value, number) or isinstance(value, bool):
            raise bad(f"{key} = {value!r}: must be {'an integer' if kind == 'int' else 'a number'}")
    if not isinstance(log, bool):
        raise bad(f"log = {log!r}: must be true or false")
    if low > high:
        raise bad(f"low = {low} > high = {high}; swap them")
    if log and low <= 0:
        raise bad(f"log = true needs low > 0 (low = {low})")
    step = spec.get("step")
    if step is not None:
        if log:
            raise bad("step and log = true cannot be combined (Optuna); drop one of them")
        if not isinstance(step, number) or isinstance(step, bool) or step <= 0:
            raise bad(f"step = {step!r}: must be a positive {'integer' if kind == 'int' else 'number'}")
    try:
        if kind == "int":
            dist: BaseDistribution = IntDistribution(low, high, log=log, step=step or 1)
        else:
            dist = FloatDistribution(float(low), float(high), log=log, step=None if step is None else float(step))
    except ValueError as exc:
        raise bad(str(exc)) from None
    return Param(name, dist, when)


def _parse_when(bad, when: Any, earlier: list[Param]) -> dict[str, tuple[Any, ...]]:
    if not isinstance(when, dict):
        raise bad("when must be a table like { filter = \"top_p\" }")
    out = {}
    for other, values in when.items():
        parent = next((p for p in earlier if p.name == other), None)
        if parent is None or not isinstance(parent.distribution, CategoricalDistribution):
            raise bad(f"when: {other!r} must be a categorical param defined above this one")
        values = tuple(values) if isinstance(values, list) else (values,)
        outside = [v for v in values if v not in parent.distribution.choices]
        if outside:
            raise bad(f"when: {other} = {outside[0]!r} is not one of its choices {list(parent.distribution.choices)}")
        out[other] = values
    return out
