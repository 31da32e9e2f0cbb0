"""Built-in baseline, no weights: filtered historical simulation.

The last `context_length` bars (or as many as a window has) give log returns r. An EWMA variance with half-life `ewma_halflife` standardises each
return by the volatility known before it; the next-bar return is a bootstrap draw of those standardised returns
scaled by the current EWMA volatility, plus the context's mean return when `drift` is on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from scipy.signal import lfilter

from orchestrator.data import Contexts
from orchestrator.models.base import Encoded, Forecaster, ModelOptions


class FHSForecaster(Forecaster):
    name = "fhs"
    encode_params = frozenset()  # encode keeps every window's full history; context_length only slices it
    context_param = "context_length"
    min_context = 32
    samples_param = "num_samples"
    params = frozenset({"context_length", "ewma_halflife", "num_samples", "aggregate", "drift"})

    def __init__(self, options: ModelOptions) -> None:
        super().__init__(ModelOptions(device="cpu"))  # numpy-sized work: the CPU is the right place

    def encode(self, contexts: Contexts, params: Mapping[str, Any]) -> Encoded:
        """Every window's whole history of log returns, left-padded with NaN to the longest window's."""
        close = contexts.history("close", int(contexts.ends.max()))
        return {
            "log_returns": torch.from_numpy(np.diff(np.log(close), axis=1)),
            "last_close": torch.from_numpy(close[:, -1].copy()),
        }

    def sample(self, encoded: Encoded, n: int, params: Mapping[str, Any], generator: torch.Generator) -> torch.Tensor:
        """A window with fewer than `context_length` bars reads the bars it has."""
        length = int(params["context_length"]) - 1  # returns of context_length bars
        r = encoded["log_returns"][:, -length:].numpy()
        real = np.isfinite(r)
        count = real.sum(axis=1, keepdims=True)
        lam = 0.5 ** (1.0 / float(params["ewma_halflife"]))
        start = np.nanmean(r**2, axis=1, keepdims=True)
        # Padding holds the EWMA at its start value, so each window's variance starts at its first real return.
        squared = np.where(real, r**2, start)
        var, _ = lfilter([1 - lam], [1, -lam], squared, axis=1, zi=lam * start)
        before = np.concatenate([start, var[:, :-1]], axis=1)  # the variance known before each return
        mu = np.nanmean(r, axis=1, keepdims=True)
        z = torch.from_numpy(np.nan_to_num((r - mu) / np.sqrt(before)))
        draws = z.gather(1, _bootstrap(count[:, 0], z.shape[1], n, generator))
        drift = torch.from_numpy(mu) if _truthy(params.get("drift", False)) else 0.0
        step = drift + torch.from_numpy(np.sqrt(var[:, -1:])) * draws
        return encoded["last_close"][:, None] * torch.exp(step)


def _bootstrap(count: np.ndarray, width: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """[windows, n] indices drawn uniformly from each window's last `count` of `width` columns (its real returns).

    When every window has all `width`, the draws are those of the first version (torch.randint), so values of
    studies without short windows stay comparable across versions.
    """
    if (count == width).all():
        return torch.randint(0, width, (len(count), n), generator=generator)
    real = torch.from_numpy(count)[:, None]
    u = torch.rand((len(count), n), generator=generator, dtype=torch.float64)
    return (width - real) + (u * real).long().clamp_max(real - 1)


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1", "yes")
