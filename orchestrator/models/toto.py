"""Datadog Toto (`toto-ts` 0.2.0): the backbone runs once over all windows; samples come from its next-step distribution.

For a one-step horizon every sample chain of the package's `TotoForecaster.forecast` is an independent draw from one
distribution: a mixture of Student-t components, rescaled by the causal scaler's loc and scale at the last context
bar. `encode` runs the backbone once over every window (one row each, left-padded with the padding mask) and keeps
that distribution's parameters; `sample` draws from it with the given generator only. Unlike the package, non-finite
samples are not replaced by 0: they fail the trial.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from orchestrator.data import Contexts
from orchestrator.errors import BadInput
from orchestrator.models.base import (
    INDUCTOR_CACHE, CompileCounts, Encoded, Forecaster, ForecastError, ModelOptions, close_batches,
    weights_fingerprint,
)

DEFAULT_WEIGHTS = "Datadog/Toto-Open-Base-1.0"
WEIGHT_FILES = ("config.json", "model.safetensors")
KEYS = ("weights", "df", "loc", "scale", "scaler_loc", "scaler_scale")
"""What `encode` keeps per window: mixture weights and Student-t df/loc/scale [windows, k]; scaler loc/scale [windows]."""

NextStep = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]


class TotoForecaster(Forecaster):
    """A toto-ts checkpoint (default Toto-Open-Base-1.0) behind the encode / sample contract."""

    name = "toto"
    encode_params = frozenset({"context_length"})
    context_param = "context_length"
    min_context = 64
    samples_param = "num_samples"
    params = frozenset({"context_length", "num_samples", "aggregate"})

    def __init__(self, options: ModelOptions) -> None:
        super().__init__(options)
        self.weights = options.weights or DEFAULT_WEIGHTS
        self.backbone, directory = _load_backbone(self.weights, self.device)
        self.weights_id = weights_fingerprint(directory / "model.safetensors")
        self.compiled = options.compile if options.compile is not None else self.device.type == "cuda"
        self._next_step = _next_step_function(self.backbone)
        if self.compiled:
            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(INDUCTOR_CACHE.resolve()))
            # Each context length is one shape; Dynamo's default of 8 shapes per function would fall back to eager.
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
            self._next_step = torch.compile(self._next_step, dynamic=False)
        self.compile_counts = CompileCounts()

    def encode(self, contexts: Contexts, params: Mapping[str, Any]) -> Encoded:
        length, windows = int(params["context_length"]), contexts.windows
        batches = close_batches(contexts, length, self.backbone.patch_embed.stride, self.device, self.compiled)
        try:
            with torch.inference_mode():
                parts = [self._run(series, observed) for series, observed in batches]
        except torch.OutOfMemoryError as exc:
            raise _out_of_memory(f"encode of {windows} windows x {length} bars", exc) from None
        return {key: torch.cat(values)[:windows] for key, values in zip(KEYS, zip(*parts))}

    def sample(self, encoded: Encoded, n: int, params: Mapping[str, Any], generator: torch.Generator) -> torch.Tensor:
        try:
            with torch.inference_mode():
                return _draw(encoded, n, generator)
        except torch.OutOfMemoryError as exc:
            raise _out_of_memory(f"sampling {n} per window", exc) from None

    def info(self) -> dict[str, Any]:
        return {
            "device": str(self.device),
            "compiled": self.compiled,
            **self.compile_counts.info(),
            "weights": self.weights,
        }

    def _run(self, series: torch.Tensor, observed: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The next-step function; when compiled, counts compiles, their seconds, and recompiles of a known shape."""
        if not self.compiled:
            return self._next_step(series, observed)
        return self.compile_counts.call(self._next_step, series, observed)


def _next_step_function(backbone: torch.nn.Module) -> NextStep:
    """(series, observed) [rows, 1, time] -> the next bar's distribution parameters, in the order of KEYS.

    `time` must be a multiple of the patch stride; `observed` is False on padding.
    """
    patch = backbone.patch_embed.patch_size

    def next_step(series: torch.Tensor, observed: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ids = torch.zeros_like(series, dtype=torch.int)
        length = series.shape[-1]
        hidden, loc, scale = backbone.backbone(series, observed, ids, kv_cache=None, scaling_prefix_length=length)
        # The last patch's token predicts the next patch: its first step, -patch, is the next bar. The package
        # rescales each step with the scaler's loc and scale at the same index.
        mixture = backbone.output_distribution(hidden[:, 0, -patch])
        components = mixture.component_distribution
        return (mixture.mixture_distribution.probs, components.df, components.loc, components.scale,
                loc[:, 0, -patch], scale[:, 0, -patch])

    return next_step


def _draw(encoded: Encoded, n: int, generator: torch.Generator) -> torch.Tensor:
    """[windows, n] draws of the mixture, using only `generator`.

    A Student-t draw is loc + scale * Z / sqrt(V / df) with Z standard normal and V chi-squared(df) = 2 * Gamma(df / 2),
    as in torch.distributions.StudentT, whose own `sample` would use the global generator.
    """
    component = torch.multinomial(encoded["weights"], n, replacement=True, generator=generator)
    df, loc, scale = (encoded[key].gather(1, component) for key in ("df", "loc", "scale"))
    normal = torch.randn(df.shape, generator=generator, dtype=df.dtype, device=df.device)
    chi2 = 2.0 * torch._standard_gamma(df / 2, generator=generator)
    base = loc + scale * normal * torch.rsqrt(chi2 / df)
    return encoded["scaler_loc"][:, None] + encoded["scaler_scale"][:, None] * base


def _load_backbone(weights: str, device: torch.device) -> tuple[torch.nn.Module, Path]:
    """Toto's backbone in eval mode on `device`, with every key of the checkpoint matched, and its directory.

    `weights` is a directory with config.json and model.safetensors, or a Hugging Face id (the cache is used offline).
    """
    from safetensors import SafetensorError

    with warnings.catch_warnings():  # gluonts, imported by toto, warns that orjson is not installed
        warnings.filterwarnings("ignore", message="Using `json`-module", category=UserWarning)
        from toto.model.toto import Toto

    extra = {} if device.type == "cuda" else {"use_memory_efficient_attention": False}  # no xformers kernels on CPU
    try:
        directory = _weights_dir(weights)
        model = Toto.load_from_checkpoint(str(directory), map_location=str(device), strict=True, **extra)
    except (OSError, ValueError, RuntimeError, TypeError, KeyError, SafetensorError) as exc:
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        raise BadInput(
            f"toto weights {weights!r}: {lines[0][:300]}; pass --weights DIR (a directory with config.json and "
            f"model.safetensors), or fill the Hugging Face cache (hf download {DEFAULT_WEIGHTS}) and set HF_HUB_OFFLINE=1"
        ) from None
    return model.model.eval(), directory


def _weights_dir(weights: str) -> Path:
    """The local directory holding WEIGHT_FILES: `weights` itself, or its Hugging Face snapshot (downloaded if needed)."""
    path = Path(weights).expanduser()
    if path.exists() or weights.startswith((".", "/", "~")) or weights.count("/") != 1:
        missing = [name for name in WEIGHT_FILES if not (path / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{path} is not a directory with {' and '.join(missing)}")
        return path
    from huggingface_hub import hf_hub_download

    files = [Path(hf_hub_download(repo_id=weights, filename=name)) for name in WEIGHT_FILES]
    return files[-1].parent


def _out_of_memory(what: str, exc: torch.OutOfMemoryError) -> ForecastError:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return ForecastError(f"out of memory in toto {what}: {str(exc).splitlines()[0]}")
