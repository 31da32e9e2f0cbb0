"""Kronos (NeoQuasar) via the `kronos-finance` package: network once per window, then cheap exact sampling.

For a one-step forecast, everything but the categorical draws is fixed by (context, clip, max_context): the tokens,
the trunk states, the s1 logits, and the s2 logits for every possible s1 (the dependency layer's cross-attention
takes emb_s1(s1) as its query over the trunk states). `encode` computes all of that for every window in one batch;
`sample` draws s1, then s2 given s1, with the package's own temperature / top-k / top-p filtering, and decodes each
new (s1, s2) token against the tokenizer decoder's cached keys and values of the context.

Parity with the package: a window is what `KronosPredictor(model, tokenizer, max_context=M, clip=clip).predict(df,
..., pred_len=1)` computes for `df` = the M bars before the scored bar (z-score over those rows, clip, tokens of all
rows, decode of the last M tokens), with `amount = volume * mean(open, high, low, close)` as the package computes it;
missing open / high / low are filled from close and missing volume with 0 (so amount = volume * close there).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from kronos_finance._vendor.kronos_model import Kronos, KronosTokenizer
from kronos_finance._vendor.kronos_model.kronos import calc_time_stamps, top_k_top_p_filtering
from kronos_finance._vendor.kronos_model.module import RotaryPositionalEmbedding

from orchestrator.data import Contexts
from orchestrator.errors import BadInput
from orchestrator.models.base import Encoded, ForecastError, Forecaster, ModelOptions

DEFAULT_WEIGHTS = "NeoQuasar/Kronos-small"
DEFAULT_TOKENIZER = "NeoQuasar/Kronos-Tokenizer-base"
FEATURES = ("open", "high", "low", "close", "volume", "amount")  # the package's column order
CLOSE = FEATURES.index("close")
DECODE_CHUNK = 16
"""New tokens per window decoded per step; a fixed shape, so a decoded value never depends on what else was drawn."""


class KronosForecaster(Forecaster):
    name = "kronos"
    encode_params = frozenset({"max_context", "clip"})
    context_param = "max_context"
    min_context = 64
    samples_param = "sample_count"
    params = frozenset(
        {"temperature", "filter", "top_p", "top_k", "sample_count", "max_context", "clip", "aggregate"}
    )
    required_columns = ("close",)
    optional_columns = ("open", "high", "low", "volume")

    def __init__(self, options: ModelOptions) -> None:
        super().__init__(options)
        self.model = _load(Kronos, options.weights or DEFAULT_WEIGHTS, "--weights").to(self.device)
        self.tokenizer = _load(KronosTokenizer, options.tokenizer or DEFAULT_TOKENIZER, "--tokenizer").to(self.device)
        for module in (self.model, self.tokenizer):
            module.eval().requires_grad_(False)  # eval mode: no dropout, the dependency layer is not causal
        self.compiled = options.compile if options.compile is not None else self.device.type == "cuda"
        self._network: Callable[[torch.Tensor, torch.Tensor], Encoded] = self._network_eager
        if self.compiled:
            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path("studies/inductor").resolve()))
            self._network = torch.compile(self._network_eager, dynamic=False)
        self._compile_seconds = 0.0
        self._compiles = 0
        self._recompiles = 0
        self._shapes: set[tuple[int, ...]] = set()

    def info(self) -> dict[str, Any]:
        return {**super().info(), "compiled": self.compiled, "compile_seconds": round(self._compile_seconds, 3),
                "compiles": self._compiles, "recompiles": self._recompiles}

    def encode(self, contexts: Contexts, params: Mapping[str, Any]) -> Encoded:
        """Tokens, trunk, s1 logits, the s2 logits of every s1 and the decoder's context keys / values, all windows."""
        length, clip = int(params["max_context"]), float(params["clip"])
        x, stamp, mean, scale = _inputs(contexts, length, clip)
        try:
            with torch.no_grad():
                self._prime_rotary(length)
                encoded = self._run_network(
                    torch.from_numpy(x).to(self.device), torch.from_numpy(stamp).to(self.device)
                )
        except torch.OutOfMemoryError as exc:
            raise _oom(exc, f"encoding {contexts.windows} windows of {length} bars") from exc
        v1, v2 = encoded["s2_logits"].shape[1:]
        encoded["close_mean"] = torch.from_numpy(mean).to(self.device)
        encoded["close_scale"] = torch.from_numpy(scale).to(self.device)
        encoded["decoded"] = torch.full((contexts.windows, v1 * v2), math.nan, device=self.device)
        return encoded

    def sample(self, encoded: Encoded, n: int, params: Mapping[str, Any], generator: torch.Generator) -> torch.Tensor:
        """s1 then s2 drawn as the package draws them (logits / T, then top-k, else top-p), decoded to closes."""
        try:
            with torch.no_grad():
                s1 = torch.multinomial(_probs(encoded["s1_logits"], params), n, replacement=True, generator=generator)
                v1, v2 = encoded["s2_logits"].shape[1:]
                rows = torch.arange(s1.shape[0], device=s1.device)[:, None] * v1 + s1
                unique, inverse = torch.unique(rows, return_inverse=True)
                probs = _probs(encoded["s2_logits"].reshape(-1, v2)[unique], params)
                s2 = torch.multinomial(probs[inverse.reshape(-1)], 1, generator=generator).reshape(s1.shape)
                return self.decode(encoded, s1, s2)
        except torch.OutOfMemoryError as exc:
            raise _oom(exc, f"sampling {n} per window") from exc

    def decode(self, encoded: Encoded, s1: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
        """[windows, n] closes of the next-bar tokens (s1, s2).

        Decoded values are memoised per (window, s1, s2) in `encoded["decoded"]`, filled in place; each is computed
        in the same fixed-shape step whatever else is drawn, so the order of trials never changes a sample.
        """
        v2 = encoded["s2_logits"].shape[2]
        memo = encoded["decoded"]
        codes = s1 * v2 + s2
        known = memo.gather(1, codes)
        if known.isnan().any():
            windows = torch.arange(codes.shape[0], device=codes.device)[:, None].expand_as(codes)
            todo = torch.unique((windows * memo.shape[1] + codes)[known.isnan()])
            memo.view(-1)[todo] = self._decode_new(encoded, todo // memo.shape[1], todo % memo.shape[1], v2)
            known = memo.gather(1, codes)
        return known * encoded["close_scale"][:, None] + encoded["close_mean"][:, None]

    def _decode_new(self, encoded: Encoded, window: torch.Tensor, code: torch.Tensor, v2: int) -> torch.Tensor:
        """Normalised closes of new tokens (sorted by window), decoded in fixed [windows, DECODE_CHUNK] steps."""
        count = torch.bincount(window, minlength=encoded["decoded"].shape[0])
        rank = torch.arange(len(window), device=window.device) - (torch.cumsum(count, 0) - count)[window]
        width = DECODE_CHUNK * math.ceil(int(count.max()) / DECODE_CHUNK)
        grid = torch.zeros(count.shape[0], width, dtype=torch.long, device=window.device)
        grid[window, rank] = code
        out = torch.cat([self._decode_step(encoded, chunk // v2, chunk % v2)
                         for chunk in grid.split(DECODE_CHUNK, dim=1)], dim=1)
        return out[window, rank]

    def _decode_step(self, encoded: Encoded, s1: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
        """The tokenizer decoder for [windows, c] new tokens at the last position of each window's decode input."""
        z = self.tokenizer.post_quant_embed(self.tokenizer.indices_to_bits((s1, s2), half=True))
        position = encoded["dec_k"].shape[-2]
        for layer, keys, values in zip(self.tokenizer.decoder, encoded["dec_k"].unbind(1), encoded["dec_v"].unbind(1),
                                       strict=True):
            attn = layer.self_attn
            h = layer.norm1(z)
            q, k, v = (_heads(proj(h), attn.n_heads) for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
            cos, sin = _rotation_at(attn.rotary, position)
            q, k = q * cos + attn.rotary._rotate_half(q) * sin, k * cos + attn.rotary._rotate_half(k) * sin
            scores = torch.cat([q @ keys.transpose(-1, -2), (q * k).sum(-1, keepdim=True)], dim=-1)
            p = torch.softmax(scores / math.sqrt(attn.head_dim), dim=-1)
            o = p[..., :-1] @ values + p[..., -1:] * v
            z = z + attn.out_proj(o.transpose(1, 2).flatten(2))
            z = z + layer.ffn(layer.norm2(z))
        return self.tokenizer.head(z)[..., CLOSE]

    def _network_eager(self, x: torch.Tensor, stamp: torch.Tensor) -> Encoded:
        """Fixed-shape network part of `encode`: x [windows, M, 6] normalised, stamp [windows, M, 5]."""
        s1_ids, s2_ids = self.tokenizer.encode(x, half=True)
        s1_logits, context = self.model.decode_s1(s1_ids, s2_ids, stamp)
        keys, values = self._decoder_cache(s1_ids[:, 1:], s2_ids[:, 1:])
        return {"s1_logits": s1_logits[:, -1], "s2_logits": self._s2_table(context), "dec_k": keys, "dec_v": values}

    def _s2_table(self, context: torch.Tensor) -> torch.Tensor:
        """[windows, V1, V2] s2 logits for every s1, as `Kronos.decode_s2` computes them for one s1 at a time.

        The package's cross-attention has one query (emb_s1(s1)), so its rotary embedding is the identity
        (position 0) and, in eval mode, it is not causal; the s2 head reads the last position.
        """
        dep, cross = self.model.dep_layer, self.model.dep_layer.cross_attn
        windows, length, width = context.shape
        q = _heads(cross.q_proj(self.model.embedding.emb_s1.weight)[None], cross.n_heads)
        k, v = _heads(cross.k_proj(context), cross.n_heads), _heads(cross.v_proj(context), cross.n_heads)
        o = F.scaled_dot_product_attention(q.expand(windows, -1, -1, -1), k, v)
        x2 = dep.norm(context[:, -1:] + cross.out_proj(o.transpose(1, 2).flatten(2)))
        return self.model.head.cond_forward(x2)

    def _decoder_cache(self, s1: torch.Tensor, s2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotated keys and values of each decoder layer over the context tokens: [windows, layers, heads, M-1, d]."""
        z = self.tokenizer.post_quant_embed(self.tokenizer.indices_to_bits((s1, s2), half=True))
        keys, values = [], []
        for layer in self.tokenizer.decoder:
            attn = layer.self_attn
            h = layer.norm1(z)
            k = _heads(attn.k_proj(h), attn.n_heads)
            keys.append(attn.rotary(k, k)[1])
            values.append(_heads(attn.v_proj(h), attn.n_heads))
            z = layer(z)
        return torch.stack(keys, dim=1), torch.stack(values, dim=1)

    def _run_network(self, x: torch.Tensor, stamp: torch.Tensor) -> Encoded:
        if not self.compiled:
            return self._network(x, stamp)
        before = _dynamo_compiles()
        with torch._dynamo.config.patch(recompile_limit=64, accumulated_recompile_limit=512):
            encoded = self._network(x, stamp)
        new = _dynamo_compiles()[len(before):]
        compiles = sum(1 for m in new if m.co_name == "_network_eager")
        self._compiles += compiles
        self._recompiles += compiles if tuple(x.shape) in self._shapes else 0  # a shape compiled before, again
        self._shapes.add(tuple(x.shape))
        self._compile_seconds += sum(m.entire_frame_compile_time_s or 0.0 for m in new)
        return encoded

    def _prime_rotary(self, length: int) -> None:
        """Fill the rotary caches for this length outside the compiled graph, so one length is one compile."""
        reference = next(self.model.parameters())
        for module, size in ((self.tokenizer.encoder, length), (self.model.transformer, length),
                             (self.tokenizer.decoder, length - 1)):
            for rotary in module.modules():
                if isinstance(rotary, RotaryPositionalEmbedding):
                    rotary._update_cos_sin_cache(reference, size)


def _load(cls: type, source: str, flag: str) -> Any:
    """`cls.from_pretrained(source)` (local dir or Hugging Face id), every key required; BadInput when it fails."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the hub mixin prints "Loading weights from local directory"
            return cls.from_pretrained(source, strict=True)
    except Exception as exc:  # noqa: BLE001 - any failure to load is the user's to fix, with the reason shown
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        raise BadInput(
            f"{flag} {source!r}: cannot load Kronos {cls.__name__} ({type(exc).__name__}: {reason}); pass "
            f"--weights DIR --tokenizer DIR (directories with config.json and model.safetensors, e.g. from "
            f"`huggingface-cli download {DEFAULT_WEIGHTS}` and {DEFAULT_TOKENIZER}), or populate the Hugging Face "
            f"cache and set HF_HUB_OFFLINE=1"
        ) from None


def _inputs(contexts: Contexts, length: int, clip: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Normalised features [windows, length, 6], time stamps [windows, length, 5], close mean and scale [windows].

    float32 z-score over the window's rows, then clip, exactly as `KronosPredictor.predict`.
    """
    frame = contexts.frame
    rows = contexts.ends[:, None] - length + np.arange(length)[None, :]
    if length < 2 or rows.min() < 0:
        raise ForecastError(f"max_context {length}: a window has fewer bars before it; need 2 <= max_context "
                            f"<= {int(contexts.ends.min())}")
    close = frame["close"].to_numpy(np.float64)
    price = {c: frame[c].to_numpy(np.float64) if c in frame else close for c in ("open", "high", "low", "close")}
    volume = frame["volume"].to_numpy(np.float64) if "volume" in frame else np.zeros_like(close)
    amount = volume * np.stack(list(price.values()), axis=1).mean(axis=1)
    table = np.stack([*price.values(), volume, amount], axis=1).astype(np.float32)[rows]
    mean, std = table.mean(axis=1, keepdims=True), table.std(axis=1, keepdims=True)
    x = np.clip((table - mean) / (std + 1e-5), -clip, clip)
    stamp = calc_time_stamps(frame["timestamp"]).to_numpy(np.float32)[rows]
    return x, stamp, mean[:, 0, CLOSE].copy(), (std[:, 0, CLOSE] + np.float32(1e-5)).astype(np.float32)


def _probs(logits: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
    """Softmax of logits / temperature after the package's filter: top_k > 0 wins, else top_p < 1 (absent: off)."""
    top_k, top_p = int(params.get("top_k", 0)), float(params.get("top_p", 1.0))
    logits = logits / float(params.get("temperature", 1.0))
    if top_k > 0 or top_p < 1.0:
        logits = top_k_top_p_filtering(logits, top_k=top_k, top_p=top_p)
    return torch.softmax(logits, dim=-1)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[b, t, d] -> [b, heads, t, d / heads]."""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def _rotation_at(rotary: RotaryPositionalEmbedding, position: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) of the package's rotary embedding at one position, without touching the module's cache."""
    freqs = position * rotary.inv_freq
    emb = torch.cat((freqs, freqs))
    return emb.cos(), emb.sin()


def _dynamo_compiles() -> list[Any]:
    return list(torch._dynamo.utils.get_compilation_metrics())


def _oom(exc: torch.OutOfMemoryError, what: str) -> ForecastError:
    """A failed trial with its reason; memory is released and nothing is capped for later trials."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return ForecastError(f"out of memory {what} ({str(exc).splitlines()[0]}); lower max_context / sample_count")
