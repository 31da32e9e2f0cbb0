"""Datadog Toto 2.0 (`toto-2` 2.0.0): nine predicted quantiles per window, computed once, read by a point rule.

Toto 2.0 does not sample: `Toto2Model.forecast` returns the quantiles 0.1, 0.2 ... 0.9 of the next bars, and the same
context always gives the same quantiles. For one step ahead, the package's forecast of a window is the whole
forecast, so `encode` runs that very function once over all windows (one row each, left-padded and masked as the
package expects; padded batches of a fixed size when compiled) and keeps the nine quantiles. `sample` turns them into
the point forecast of the trial's `aggregate` rule: no network call, no randomness, one run per trial.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from orchestrator.data import Contexts
from orchestrator.errors import BadInput
from orchestrator.models.aggregate import aggregate, parse_aggregate
from orchestrator.models.base import (
    INDUCTOR_CACHE, CompileCounts, Encoded, Forecaster, ForecastError, ModelOptions, close_batches,
    weights_fingerprint,
)

DEFAULT_WEIGHTS = "Datadog/Toto-2.0-313m"
LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
"""The quantile levels Toto 2.0 predicts (its output head's knots)."""
FORECAST_OPTIONS = {"scaler_fallback_min_obs": 8, "quantile_real_cap_k": 1e4}
"""Keyword arguments of `Toto2Model.forecast`, as the package's GluonTS wrapper sets them by default. Not tuned:
the fallback only changes the scaling of a leading patch with fewer than 8 observed bars (a short early window), and
the cap (quantiles within the context's range +- K scales) cannot bind on a one-step forecast unless K < ~0.1."""
HOW_TO = (f"pass --weights DIR (a directory with config.json and model.safetensors), or fill the Hugging Face cache "
          f"(hf download {DEFAULT_WEIGHTS}) and set HF_HUB_OFFLINE=1")

Forecast = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Toto2Forecaster(Forecaster):
    """A toto-2 checkpoint (default Toto-2.0-313m; 22m is the CPU-friendly size) behind the encode / sample contract."""

    name = "toto2"
    encode_params = frozenset({"context_length"})
    context_param = "context_length"
    min_context = 64
    stochastic = False
    params = frozenset({"context_length", "aggregate"})

    def __init__(self, options: ModelOptions) -> None:
        super().__init__(options)
        self.weights = options.weights or DEFAULT_WEIGHTS
        self.model, files = _load_model(self.weights, self.device)
        self.weights_id = weights_fingerprint(*files)
        self.compiled = options.compile if options.compile is not None else self.device.type == "cuda"
        self._forecast = _forecast_function(self.model)
        if self.compiled:
            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(INDUCTOR_CACHE.resolve()))
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
            # Python 3.11's functools.cached_property takes a lock that Dynamo cannot trace (3.12 dropped it): one
            # eager call fills the package's cached properties, so the compiled graph has no break.
            with torch.inference_mode():
                patch = self.model.config.patch_size
                self._forecast(torch.ones(1, 1, patch, device=self.device), torch.ones(1, 1, patch, dtype=torch.bool,
                                                                                       device=self.device))
            self._forecast = torch.compile(self._forecast, dynamic=False)
        self.compile_counts = CompileCounts()

    @classmethod
    def check_space(cls, space: Any) -> None:
        for param in space.params:
            if param.name == "aggregate":
                for choice in getattr(param.distribution, "choices", ()):
                    try:
                        point_forecast(torch.zeros(1, len(LEVELS)), str(choice))
                    except ValueError as exc:
                        raise BadInput(f"{space.path}: [aggregate] {exc}") from None

    def encode(self, contexts: Contexts, params: Mapping[str, Any]) -> Encoded:
        length, windows = int(params["context_length"]), contexts.windows
        batches = close_batches(contexts, length, self.model.config.patch_size, self.device, self.compiled)
        try:
            with torch.inference_mode():
                parts = [self._run(series, observed) for series, observed in batches]
        except torch.OutOfMemoryError as exc:
            raise _out_of_memory(f"encode of {windows} windows x {length} bars", exc) from None
        return {"quantiles": torch.cat(parts)[:windows]}

    def sample(self, encoded: Encoded, n: int, params: Mapping[str, Any], generator: torch.Generator) -> torch.Tensor:
        """[windows, 1]: the point forecast of `params["aggregate"]`; `n` and `generator` are not used."""
        return point_forecast(encoded["quantiles"], str(params.get("aggregate", "median")))[:, None]

    def quantiles(
        self, encoded: Encoded, draws: torch.Tensor, params: Mapping[str, Any], levels: Sequence[float]
    ) -> torch.Tensor:
        """The predicted quantiles at `levels`, read as `quantile_X` reads them (linear between the knots); NaN
        outside LEVELS[0]..LEVELS[-1], where the model predicts nothing."""
        known = encoded["quantiles"].detach()
        nan = torch.full((known.shape[0],), torch.nan, dtype=known.dtype, device=known.device)
        read = [read_level(known, x) if LEVELS[0] <= x <= LEVELS[-1] else nan for x in levels]
        return torch.stack(read, dim=1).to("cpu", torch.float64)

    def info(self) -> dict[str, Any]:
        return {
            "device": str(self.device),
            "compiled": self.compiled,
            **self.compile_counts.info(),
            "weights": self.weights,
        }

    def _run(self, series: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """The forecast; when compiled, counts compiles, their seconds, and recompiles of a shape compiled before."""
        if not self.compiled:
            return self._forecast(series, observed)
        return self.compile_counts.call(self._forecast, series, observed)


def point_forecast(quantiles: torch.Tensor, name: str) -> torch.Tensor:
    """[windows, 9] quantiles at LEVELS -> [windows] point forecasts by an aggregate rule.

    `quantile_X` interpolates linearly between the knots around X (0.1 <= X <= 0.9; there are no knots outside).
    The other rules take the nine knots as nine equally likely values: `mean` is their average (the midpoint rule on
    the quantile function), `median` the 0.5 knot, `trimmed_mean_20` drops the knots 0.1 and 0.9, and so on.
    Raises ValueError for a rule that cannot be read off these knots.
    """
    kind, x = parse_aggregate(name)
    if kind != "quantile":
        return aggregate(quantiles, name)
    if not LEVELS[0] <= x <= LEVELS[-1]:
        raise ValueError(f"{name}: Toto 2.0 predicts the quantiles {LEVELS[0]} to {LEVELS[-1]} only; choose X in "
                         "that range")
    return read_level(quantiles, x)


def read_level(quantiles: torch.Tensor, x: float) -> torch.Tensor:
    """[windows, 9] quantiles at LEVELS -> [windows] values at level x (LEVELS[0] <= x <= LEVELS[-1]), linear
    between the knots around x."""
    position = round((x - LEVELS[0]) / (LEVELS[1] - LEVELS[0]), 9)
    below = min(int(position), len(LEVELS) - 2)
    weight = position - below
    return quantiles[:, below] * (1 - weight) + quantiles[:, below + 1] * weight


def _forecast_function(model: torch.nn.Module) -> Forecast:
    """(series, observed) [rows, 1, time] -> [rows, 9] next-bar quantiles, by the package's own `forecast`.

    `time` must be a multiple of the patch size; `observed` is False on padding.
    """

    def forecast(series: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        ids = torch.zeros(series.shape[:2], dtype=torch.long, device=series.device)
        quantiles = model.forecast({"target": series, "target_mask": observed, "series_ids": ids}, 1,
                                   **FORECAST_OPTIONS)
        return quantiles[:, :, 0, 0].T  # [9, rows, variate, step] -> [rows, 9]

    return forecast


def _load_model(weights: str, device: torch.device) -> tuple[torch.nn.Module, list[Path]]:
    """Toto2Model in eval mode on `device` with every key of the checkpoint matched, and its weight files.

    `weights` is a directory with config.json and model.safetensors (or shards), or a Hugging Face id (the cache is
    used offline).
    """
    from safetensors import SafetensorError

    with warnings.catch_warnings():  # gluonts, imported by toto2, warns that orjson is not installed
        warnings.filterwarnings("ignore", message="Using `json`-module", category=UserWarning)
        from toto2.model import Toto2Model

    try:
        directory = _weights_dir(weights)
        model = Toto2Model.from_pretrained(str(directory), map_location=str(device), strict=True)
    except (OSError, ValueError, RuntimeError, TypeError, KeyError, AssertionError, SafetensorError) as exc:
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        raise BadInput(f"toto2 weights {weights!r}: {lines[0][:300]}; {HOW_TO}") from None
    if model.config.patch_size > Toto2Forecaster.min_context:
        raise BadInput(f"toto2 weights {weights!r}: patch size {model.config.patch_size} is larger than the "
                       f"{Toto2Forecaster.min_context} bars a window may start with; use another checkpoint")
    return model.to(device).eval(), sorted(directory.glob("*.safetensors"))


def _weights_dir(weights: str) -> Path:
    """The local directory with config.json and the safetensors: `weights`, or its Hugging Face snapshot."""
    path = Path(weights).expanduser()
    if path.exists() or weights.startswith((".", "/", "~")) or weights.count("/") != 1:
        missing = [name for name in ("config.json", "*.safetensors") if not any(path.glob(name))]
        if missing:
            raise FileNotFoundError(f"{path} is not a directory with {' and '.join(missing)}")
        return path
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id=weights, allow_patterns=["config.json", "*.safetensors", "*.index.json"]))


def _out_of_memory(what: str, exc: torch.OutOfMemoryError) -> ForecastError:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return ForecastError(f"out of memory in toto2 {what}: {str(exc).splitlines()[0]}")
