"""The Forecaster contract and the registry of model names.

A forecaster splits a forecast into a deterministic, expensive `encode` (the network over every window's context,
batched, cacheable) and a cheap stochastic `sample` that uses only the generator it is given. The Evaluator caches
`encode` results per (data, windows, encode params), so a trial that changes only sampling params never runs the
network again.
"""

from __future__ import annotations

import hashlib
import importlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from orchestrator.data import Contexts
from orchestrator.errors import BadInput, ForecastError  # noqa: F401 (ForecastError: re-exported for callers)
from orchestrator.symbols import MODELS, check_model

Encoded = dict[str, torch.Tensor]
"""What `encode` returns: named tensors on the forecaster's device (the cache bounds its size in bytes)."""


@dataclass(frozen=True)
class ModelOptions:
    """How to load and run a model; none of this is tuned by Optuna."""

    device: str = "auto"
    weights: str | None = None  # Hugging Face id or local directory
    tokenizer: str | None = None  # Kronos only
    compile: bool | None = None  # None: on for CUDA, off on CPU


class Forecaster(ABC):
    """One model family. Subclasses set the class attributes and implement `encode` and `sample`."""

    name: ClassVar[str]
    encode_params: ClassVar[frozenset[str]]
    """Params that change the network's input; every other param may only affect `sample`."""
    context_param: ClassVar[str]
    """The param that sets how many bars before the scored bar the model reads."""
    min_context: ClassVar[int]
    """Fewest bars a window must have before its scored bar; a shorter history than the context reads what exists."""
    scoring_version: ClassVar[int] = 1
    """Bumped when the same params and seeds would score differently (e.g. a new random stream): values scored
    under another version are not comparable, so a study never resumes or reuses values across versions."""
    samples_param: ClassVar[str] = "num_samples"
    stochastic: ClassVar[bool] = True
    """Whether `sample` draws at random. A deterministic model (e.g. Toto 2.0's quantiles) is scored with one run
    whatever the eval runs say, and its evidence is across windows only (DESIGN.md). Its `sample` returns [windows, 1]:
    the point forecast that the `aggregate` param reads off its predictive distribution (`quantile_X`: its X quantile);
    its `samples_param` is not used."""
    params: ClassVar[frozenset[str]]
    """Every param this model understands; a space may define no other."""
    required_columns: ClassVar[tuple[str, ...]] = ("close",)
    optional_columns: ClassVar[tuple[str, ...]] = ()

    weights_id: str | None = None
    """Fingerprint of the loaded weights (None for a model without weights): other weights, other trial values."""
    compiled: bool = False

    def __init__(self, options: ModelOptions) -> None:
        self.options = options
        self.device = resolve_device(options.device)

    @abstractmethod
    def encode(self, contexts: Contexts, params: Mapping[str, Any]) -> Encoded:
        """All windows in one batched call; the result depends only on `contexts` and the encode params."""

    @abstractmethod
    def sample(
        self, encoded: Encoded, n: int, params: Mapping[str, Any], generator: torch.Generator
    ) -> torch.Tensor:
        """[windows, n] next-bar close samples drawn with `generator` only."""

    @classmethod
    def check_space(cls, space: Any) -> None:
        """Raise BadInput for a value of `space` (a `Space`) that the space format allows but this model cannot run."""

    def info(self) -> dict[str, Any]:
        """Facts recorded on each trial (device; compile seconds and recompile counts where compiled)."""
        return {"device": str(self.device)}


def forecaster_class(name: str) -> type[Forecaster]:
    """The class registered under `name` (`symbols.MODELS`); heavy model packages are imported only here, on first
    use."""
    module, attr = MODELS[check_model(name)].split(":")
    return getattr(importlib.import_module(module), attr)


def create(name: str, options: ModelOptions) -> Forecaster:
    return forecaster_class(name)(options)


COMPILE_ROWS = 32
"""A compiled encode runs the windows in padded batches of this many rows: validation and test windows (30 and 20,
or 250 and 60) share one compiled shape per context length."""
INDUCTOR_CACHE = Path("studies/inductor")
"""Inductor's on-disk cache (unless TORCHINDUCTOR_CACHE_DIR is set), so later processes reuse compiled code."""


class CompileCounts:
    """How often a function run on fixed shapes was compiled: compiles, their seconds, and recompiles of a shape
    compiled before (Dynamo's frame counter), for `Forecaster.info`."""

    def __init__(self) -> None:
        self.compiles = 0
        self.recompiles = 0
        self.seconds = 0.0
        self._shapes: set[tuple[int, ...]] = set()

    def call(self, function: Callable[..., Any], first: torch.Tensor, *rest: Any) -> Any:
        """`function(first, *rest)`, counted by the shape of `first`."""
        frames = torch._dynamo.utils.counters["frames"]
        shape = tuple(first.shape)
        before, start = frames["ok"], time.perf_counter()
        outputs = function(first, *rest)
        if frames["ok"] > before:
            self.compiles += 1
            self.seconds += time.perf_counter() - start
            self.recompiles += shape in self._shapes
        self._shapes.add(shape)
        return outputs

    def info(self) -> dict[str, Any]:
        return {"compile_seconds": round(self.seconds, 3), "compiles": self.compiles, "recompiles": self.recompiles}


def close_batches(
    contexts: Contexts, length: int, patch: int, device: torch.device, compiled: bool
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each window's last `length` closes as its own row, (series, observed) of [rows, 1, time]: left-padded with
    masked zeros to whole patches of `patch` bars (and where a window has fewer bars). Compiled: batches of exactly
    COMPILE_ROWS rows (one shape per length, whatever the windows; the extra rows repeat the first), else one batch.
    """
    padded = -(-length // patch) * patch
    close = torch.from_numpy(contexts.history("close", padded)).to(device, torch.float32)
    observed = torch.isfinite(close)
    observed[:, : padded - length] = False
    series = torch.where(observed, close, 0.0)
    windows = contexts.windows
    if compiled:
        extra = -windows % COMPILE_ROWS
        series = torch.cat([series, series[:1].expand(extra, -1)])
        observed = torch.cat([observed, observed[:1].expand(extra, -1)])
    rows = COMPILE_ROWS if compiled else max(windows, 1)
    return [(s[:, None], o[:, None]) for s, o in zip(series.split(rows), observed.split(rows))]


def weights_fingerprint(*files: Path) -> str:
    """sha256 (first 16 hex digits) of the weight files' contents: the same for a local copy and a hub snapshot."""
    digest = hashlib.sha256()
    for path in files:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 24):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()[:16]}"


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise BadInput("--device cuda: no CUDA device is visible; use --device cpu or auto")
    if device not in ("cpu", "cuda"):
        raise BadInput(f"--device {device!r}: choose auto, cpu or cuda")
    return torch.device(device)
