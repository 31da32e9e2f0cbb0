"""Exact draws from a softmax filtered as Kronos filters it (temperature, then top-k, or else top-p), by inverse CDF
over logits sorted once, with uniforms the caller draws from its own generator."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def draw(sorted_logits: torch.Tensor, row: torch.Tensor, uniform: torch.Tensor,
          params: Mapping[str, Any]) -> torch.Tensor:
    """Positions drawn in rows of `sorted_logits` (each descending), draw i from row `row[i]` with `uniform[i]`.

    Inverse CDF of the package's distribution: softmax of logits / T over the leading tokens that its top-k
    (top_k > 0) or else top-p (top_p < 1) filter keeps; absent params mean no filtering.
    """
    x = sorted_logits / float(params.get("temperature", 1.0))
    probs = torch.softmax(x, dim=-1)
    cdf = probs.cumsum(dim=1)
    last = kept(x, cdf, int(params.get("top_k", 0)), float(params.get("top_p", 1.0)))[row] - 1
    total = cdf.flatten()[row * cdf.shape[1] + last]
    target = torch.minimum(uniform * total, torch.nextafter(total, torch.zeros_like(total)))
    return first_above(cdf, row, target, last)


def kept(x: torch.Tensor, cdf: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """How many leading tokens of each sorted row `top_k_top_p_filtering` keeps (top_k > 0 wins over top_p).

    `x`: logits / T, sorted descending; `cdf`: cumulative sum of their softmax, as the package computes it.
    """
    width = x.shape[1]
    if top_k > 0:  # the package keeps every token >= the k-th largest, ties included
        return (x >= x[:, min(top_k, width) - 1, None]).sum(dim=1)
    if top_p < 1.0:  # token i is kept when the tokens before it hold <= top_p; the first is always kept
        below = torch.searchsorted(cdf, cdf.new_full((cdf.shape[0], 1), top_p), right=True)[:, 0]
        return (below + 1).clamp(max=width)
    return torch.full((x.shape[0],), width, device=x.device)


def first_above(cdf: torch.Tensor, row: torch.Tensor, target: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """Per draw, the first position p <= last with cdf[row, p] > target (binary search; cdf[row, last] > target)."""
    flat, base = cdf.flatten(), row * cdf.shape[1]
    lo, hi = torch.zeros_like(last), last
    for _ in range((cdf.shape[1] - 1).bit_length()):
        mid = (lo + hi) // 2
        right = flat[base + mid] <= target
        lo, hi = torch.where(right, mid + 1, lo), torch.where(right, hi, mid)
    return lo
