"""Kronos (NeoQuasar) via the `kronos-finance` package: network once per window, then cheap exact sampling.

For a one-step forecast, everything but the categorical draws is fixed by (context, clip, max_context): the tokens,
the trunk states, the s1 logits, and the s2 logits for any s1 (the dependency layer's cross-attention takes
emb_s1(s1) as its query over the trunk states). `encode` runs the network over every window and keeps the s1 logits
(sorted), the dependency layer's keys / values and the tokenizer decoder's keys / values of the context. `sample`
draws s1, computes the s2 logits of the drawn s1 values only, draws s2, and decodes each new (s1, s2) token. s2 rows
and decoded closes are memoised in the encoded dict, within a bounded capacity counted by the encode cache.

Parity with the package: a window whose scored bar has `end` bars before it is what
`KronosPredictor(model, tokenizer, max_context=M, clip=clip).predict(df, ..., pred_len=1)` computes for `df` = its
last n = min(M, end) bars (z-score over those rows, clip, tokens of all rows, decode of the last M tokens), with
`amount = volume * mean(open, high, low, close)` as the package computes it; missing open / high / low are filled
from close and missing volume with 0 (so amount = volume * close there). A short window (n < M) is right-padded to M:
the tokenizer encoder, the trunk and the decoder are causal, so padding after the real bars never reaches them, and
the dependency layer and the decoder step mask it out.

Draws are exact samples of the package's distribution (logits / T, then top-k when top_k > 0, else top-p, with
`top_k_top_p_filtering`'s semantics; up to float32 rounding, like the package's own torch.multinomial), by inverse
CDF over each row sorted once: draw j of every window uses the j-th uniforms of the generator, so a larger
sample_count extends the draws of a smaller one. Tokens tied in logit may be ordered differently from the package's
sort at the top-p boundary, an equally valid tie-break.
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
from kronos_finance._vendor.kronos_model.kronos import calc_time_stamps
from kronos_finance._vendor.kronos_model.module import RotaryPositionalEmbedding

from orchestrator.data import Contexts
from orchestrator.errors import BadInput
from orchestrator.models.filtered_draws import draw
from orchestrator.models.base import (
    INDUCTOR_CACHE, Encoded, Forecaster, ForecastError, ModelOptions, weights_fingerprint,
)

DEFAULT_WEIGHTS = "NeoQuasar/Kronos-small"
DEFAULT_TOKENIZER = "NeoQuasar/Kronos-Tokenizer-base"
WEIGHTS_FILE = "model.safetensors"
FEATURES = ("open", "high", "low", "close", "volume", "amount")  # the package's column order
CLOSE = FEATURES.index("close")
ENCODE_ROWS = 32
"""Windows per network call and per sampling group. Every network call has shape [ENCODE_ROWS, max_context] (the
last call padded), so each max_context compiles once, whatever the number of windows."""
STEP = 16
"""New s2 rows or new tokens per window computed in one step over a group of ENCODE_ROWS windows: a fixed shape, so
a memoised value never depends on what else was drawn."""
MEMO_ROWS = 512
"""s2 rows memoised per window (sorted logits and their tokens: 6 KiB each at 1024 tokens, half of the V1 rows).
Rows are added until a call's new rows no longer fit; then the window keeps this call's rows only. A row that is
not memoised is recomputed with identical values."""
MEMO_TOKENS = 8192
"""Decoded closes memoised per window (8 bytes each), added and replaced like the s2 rows."""
NO_TOKEN = torch.iinfo(torch.int32).max
"""Key of an empty decoded-memo entry (sorts last)."""


class KronosForecaster(Forecaster):
    name = "kronos"
    encode_params = frozenset({"max_context", "clip"})
    context_param = "max_context"
    min_context = 64
    scoring_version = 2  # inverse-CDF draws over sorted rows (version 1: torch.multinomial in token order)
    samples_param = "sample_count"
    params = frozenset(
        {"temperature", "filter", "top_p", "top_k", "sample_count", "max_context", "clip", "aggregate"}
    )
    required_columns = ("close",)
    optional_columns = ("open", "high", "low", "volume")

    def __init__(self, options: ModelOptions) -> None:
        super().__init__(options)
        self.model, model_file = _load(Kronos, options.weights or DEFAULT_WEIGHTS, "--weights")
        self.tokenizer, tokenizer_file = _load(KronosTokenizer, options.tokenizer or DEFAULT_TOKENIZER, "--tokenizer")
        self.model, self.tokenizer = self.model.to(self.device), self.tokenizer.to(self.device)
        self.weights_id = weights_fingerprint(model_file, tokenizer_file)
        for module in (self.model, self.tokenizer):
            module.eval().requires_grad_(False)  # eval mode: no dropout, the dependency layer is not causal
        cross = self.model.dep_layer.cross_attn
        with torch.no_grad():  # the dependency layer's query of every s1: [V1, heads, head_dim]
            self._s2_queries = cross.q_proj(self.model.embedding.emb_s1.weight).unflatten(-1, (cross.n_heads, -1))
        self.compiled = options.compile if options.compile is not None else self.device.type == "cuda"
        self._network: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Encoded] = self._network_eager
        if self.compiled:
            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(INDUCTOR_CACHE.resolve()))
            self._network = torch.compile(self._network_eager, dynamic=False)
        self._compile_seconds = 0.0
        self._compiles = 0
        self._recompiles = 0
        self._shapes: set[tuple[int, ...]] = set()

    def info(self) -> dict[str, Any]:
        return {**super().info(), "compiled": self.compiled, "compile_seconds": round(self._compile_seconds, 3),
                "compiles": self._compiles, "recompiles": self._recompiles}

    def encode(self, contexts: Contexts, params: Mapping[str, Any]) -> Encoded:
        """Network outputs of every window (see `_network_eager`), close mean / scale, and empty sampling memos."""
        length, clip = int(params["max_context"]), float(params["clip"])
        x, stamp, bars, mean, scale = _inputs(contexts, length, clip, self.min_context)
        try:
            with torch.no_grad():
                self._prime_rotary(length)
                encoded = self._network_all(*(torch.from_numpy(a).to(self.device) for a in (x, stamp, bars)))
                s1_sorted, s1_order = encoded.pop("s1_logits").sort(dim=1, descending=True, stable=True)
        except torch.OutOfMemoryError as exc:
            raise _oom(exc, f"encoding {contexts.windows} windows of {length} bars") from exc
        windows, v1 = s1_sorted.shape
        v2 = self.model.head.vocab_s2
        rows = min(MEMO_ROWS, v1)
        encoded.update(
            s1_sorted=s1_sorted,
            s1_order=s1_order.to(_index_dtype(v1)),
            close_mean=torch.from_numpy(mean).to(self.device),
            close_scale=torch.from_numpy(scale).to(self.device),
            # s2 memo: slot of (window, s1) in the window's rows, -1 when not memoised; unused slots are never read
            s2_slot=torch.full((windows, v1), -1, dtype=torch.int32, device=self.device),
            s2_sorted=torch.empty((windows, rows, v2), device=self.device),
            s2_order=torch.empty((windows, rows, v2), dtype=_index_dtype(v2), device=self.device),
            s2_used=torch.zeros(windows, dtype=torch.long, device=self.device),
            # decoded memo: per window, keys s1 * V2 + s2 in ascending order (NO_TOKEN when empty), normalised closes
            decoded_key=torch.full((windows, min(MEMO_TOKENS, v1 * v2)), NO_TOKEN, dtype=torch.int32,
                                   device=self.device),
            decoded_value=torch.zeros((windows, min(MEMO_TOKENS, v1 * v2)), device=self.device),
        )
        return encoded

    def sample(self, encoded: Encoded, n: int, params: Mapping[str, Any], generator: torch.Generator) -> torch.Tensor:
        """s1 then s2 drawn as the package draws them (logits / T, then top-k, else top-p), decoded to closes."""
        try:
            with torch.no_grad():
                windows, v1 = encoded["s2_slot"].shape
                uniform = torch.rand((n, windows, 2), generator=generator, device=self.device).permute(2, 1, 0)
                window = torch.arange(windows, device=self.device)[:, None].expand(-1, n)
                s1 = encoded["s1_order"][window, draw(encoded["s1_sorted"], window, uniform[0], params)].long()
                s2 = torch.empty_like(s1)
                for lo in range(0, windows, ENCODE_ROWS):  # a group at a time keeps the rows drawn small
                    hi = min(lo + ENCODE_ROWS, windows)
                    rows, row = torch.unique(window[lo:hi] * v1 + s1[lo:hi], return_inverse=True)
                    s2_sorted, s2_order = self.s2_rows(encoded, rows // v1, rows % v1)
                    s2[lo:hi] = s2_order[row, draw(s2_sorted, row, uniform[1, lo:hi], params)]
                return self.decode(encoded, s1, s2)
        except torch.OutOfMemoryError as exc:
            raise _oom(exc, f"sampling {n} per window") from exc

    def s2_rows(self, encoded: Encoded, window: torch.Tensor, s1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """s2 logits of the given (window, s1) pairs (windows ascending), each row sorted descending, and its tokens.

        Rows come from the memo where present; the others are computed in fixed-shape steps and memoised (see
        MEMO_ROWS).
        """
        slot = encoded["s2_slot"][window, s1].long()
        known = slot >= 0
        memo_row = window * encoded["s2_sorted"].shape[1] + slot.clamp(min=0)  # rows not memoised are overwritten
        s2_sorted = encoded["s2_sorted"].flatten(0, 1).index_select(0, memo_row)
        s2_order = encoded["s2_order"].flatten(0, 1).index_select(0, memo_row)
        if not known.all():
            new = (~known).nonzero().squeeze(1)
            logits = self._in_steps(encoded, window[new], s1[new], self._s2_step)
            values, order = logits.sort(dim=1, descending=True, stable=True)
            s2_sorted[new], s2_order[new] = values, order.to(s2_order.dtype)
            self._remember_rows(encoded, window, s1, s2_sorted, s2_order, known)
        return s2_sorted, s2_order

    def decode(self, encoded: Encoded, s1: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
        """[windows, n] closes of the next-bar tokens (s1, s2), memoised per (window, token)."""
        v2 = encoded["s2_sorted"].shape[2]
        keys, values = encoded["decoded_key"], encoded["decoded_value"]
        code = (s1 * v2 + s2).to(keys.dtype)
        where = torch.searchsorted(keys, code).clamp(max=keys.shape[1] - 1)
        known = keys.gather(1, where) == code
        out = values.gather(1, where)
        if not known.all():
            vocab = encoded["s2_slot"].shape[1] * v2
            window = torch.arange(code.shape[0], device=code.device)[:, None].expand_as(code)
            new, index = torch.unique(window[~known] * vocab + code[~known], return_inverse=True)
            out[~known] = self._in_steps(encoded, new // vocab, new % vocab, self._decode_step)[index]
            drawn, index = torch.unique(window * vocab + code, return_inverse=True)
            value = out.new_empty(len(drawn)).scatter_(0, index.flatten(), out.flatten())
            drawn_known = torch.ones_like(drawn, dtype=torch.bool).scatter_(0, index.flatten(), known.flatten())
            self._remember_decoded(encoded, drawn // vocab, (drawn % vocab).to(keys.dtype), value, drawn_known)
        return out * encoded["close_scale"][:, None] + encoded["close_mean"][:, None]

    def _in_steps(self, encoded: Encoded, window: torch.Tensor, item: torch.Tensor,
                  step: Callable[[Encoded, int, int, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """`step(encoded, lo, hi, items [hi - lo, STEP])` over groups of ENCODE_ROWS windows, results in input order.

        `window` is ascending; a window's items are laid out in its row of the group, STEP at a time (padding: 0).
        """
        windows = encoded["bars"].shape[0]
        count = torch.bincount(window, minlength=windows)
        first = torch.cumsum(count, 0) - count
        rank = torch.arange(len(window), device=window.device) - first[window]
        count_list, first_list = count.tolist(), first.tolist()
        out: torch.Tensor | None = None
        for lo in range(0, windows, ENCODE_ROWS):
            hi = min(lo + ENCODE_ROWS, windows)
            a, b = first_list[lo], first_list[hi - 1] + count_list[hi - 1]
            if a == b:
                continue
            width = STEP * math.ceil(max(count_list[lo:hi]) / STEP)
            grid = torch.zeros((hi - lo, width), dtype=item.dtype, device=item.device)
            grid[window[a:b] - lo, rank[a:b]] = item[a:b]
            result = torch.cat([step(encoded, lo, hi, chunk) for chunk in grid.split(STEP, dim=1)], dim=1)
            got = result[window[a:b] - lo, rank[a:b]]
            if out is None:
                out = got.new_empty((len(window), *got.shape[1:]))
            out[a:b] = got
        assert out is not None
        return out

    def _s2_step(self, encoded: Encoded, lo: int, hi: int, s1: torch.Tensor) -> torch.Tensor:
        """[hi - lo, STEP, V2] s2 logits, as `Kronos.decode_s2` computes them at the last real bar.

        The package's cross-attention has one query (emb_s1(s1)), so its rotary embedding is the identity
        (position 0) and, in eval mode, it is not causal: it attends to every real bar of the window.
        """
        dep = self.model.dep_layer
        keys = encoded["dep_k"][lo:hi]
        real = torch.arange(keys.shape[2], device=keys.device) < encoded["bars"][lo:hi, None]
        q = self._s2_queries[s1].transpose(1, 2)
        o = F.scaled_dot_product_attention(q, keys, encoded["dep_v"][lo:hi], attn_mask=real[:, None, None, :])
        x2 = dep.norm(encoded["last"][lo:hi, None] + dep.cross_attn.out_proj(o.transpose(1, 2).flatten(2)))
        return self.model.head.cond_forward(x2)

    def _decode_step(self, encoded: Encoded, lo: int, hi: int, code: torch.Tensor) -> torch.Tensor:
        """[hi - lo, STEP] normalised closes of new tokens (s1 * V2 + s2), each after its window's decoder context."""
        v2 = encoded["s2_sorted"].shape[2]
        z = self.tokenizer.post_quant_embed(self.tokenizer.indices_to_bits((code // v2, code % v2), half=True))
        context = _decoder_context(encoded["bars"][lo:hi], encoded["dep_k"].shape[2])
        real = (torch.arange(encoded["dec_k"].shape[-2], device=z.device) < context[:, None])[:, None, None, :]
        position = context.to(z.dtype)[:, None, None, None]
        for layer, keys, values in zip(self.tokenizer.decoder, encoded["dec_k"][:, lo:hi], encoded["dec_v"][:, lo:hi],
                                       strict=True):
            attn = layer.self_attn
            h = layer.norm1(z)
            q, k, v = (_heads(proj(h), attn.n_heads) for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
            freqs = position * attn.rotary.inv_freq
            cos, sin = torch.cat((freqs, freqs), dim=-1).cos(), torch.cat((freqs, freqs), dim=-1).sin()
            q, k = q * cos + attn.rotary._rotate_half(q) * sin, k * cos + attn.rotary._rotate_half(k) * sin
            past = (q @ keys.transpose(-1, -2)).masked_fill(~real, -math.inf)
            p = torch.softmax(torch.cat([past, (q * k).sum(-1, keepdim=True)], dim=-1) / math.sqrt(attn.head_dim), -1)
            o = p[..., :-1] @ values + p[..., -1:] * v
            z = z + attn.out_proj(o.transpose(1, 2).flatten(2))
            z = z + layer.ffn(layer.norm2(z))
        return self.tokenizer.head(z)[..., CLOSE]

    def _remember_rows(self, encoded: Encoded, window: torch.Tensor, s1: torch.Tensor, values: torch.Tensor,
                       order: torch.Tensor, known: torch.Tensor) -> None:
        """Memoise a call's s2 rows (windows ascending; `known`: already memoised). A window whose new rows do not
        fit in its free slots is emptied first and keeps this call's rows, as many as fit."""
        used, capacity = encoded["s2_used"], encoded["s2_sorted"].shape[1]
        fresh = used + torch.bincount(window[~known], minlength=used.shape[0]) > capacity
        encoded["s2_slot"][fresh] = -1
        used[fresh] = 0
        add = ~known | fresh[window]
        window, s1, values, order = window[add], s1[add], values[add], order[add]
        count = torch.bincount(window, minlength=used.shape[0])
        slot = used[window] + torch.arange(len(window), device=window.device) - (torch.cumsum(count, 0) - count)[window]
        keep = slot < capacity
        window, s1, slot = window[keep], s1[keep], slot[keep]
        encoded["s2_sorted"][window, slot] = values[keep]
        encoded["s2_order"][window, slot] = order[keep]
        encoded["s2_slot"][window, s1] = slot.to(torch.int32)
        used += torch.bincount(window, minlength=used.shape[0])

    def _remember_decoded(self, encoded: Encoded, window: torch.Tensor, code: torch.Tensor, value: torch.Tensor,
                          known: torch.Tensor) -> None:
        """Memoise a call's decoded closes (windows ascending; `known`: already memoised), keys kept ascending. A
        window whose new tokens do not fit is emptied first and keeps this call's tokens, as many as fit."""
        keys, values = encoded["decoded_key"], encoded["decoded_value"]
        fresh = torch.bincount(window[~known], minlength=keys.shape[0]) > (keys == NO_TOKEN).sum(dim=1)
        keys[fresh] = NO_TOKEN
        add = ~known | fresh[window]
        window, code, value = window[add], code[add], value[add]
        count = torch.bincount(window, minlength=keys.shape[0])
        rank = torch.arange(len(window), device=window.device) - (torch.cumsum(count, 0) - count)[window]
        keep = rank < (keys == NO_TOKEN).sum(dim=1)[window]
        touched, row = torch.unique(window[keep], return_inverse=True)
        new_keys = keys.new_full((len(touched), int(rank[keep].max()) + 1), NO_TOKEN)
        new_keys[row, rank[keep]] = code[keep]
        new_values = values.new_zeros(new_keys.shape)
        new_values[row, rank[keep]] = value[keep]
        merged, order = torch.cat([keys[touched], new_keys], dim=1).sort(dim=1, stable=True)
        keys[touched] = merged[:, : keys.shape[1]]
        values[touched] = torch.cat([values[touched], new_values], dim=1).gather(1, order[:, : keys.shape[1]])

    def _network_all(self, x: torch.Tensor, stamp: torch.Tensor, bars: torch.Tensor) -> Encoded:
        """`_network_eager` over all windows, ENCODE_ROWS at a time; the last call is padded with its first window."""
        windows = x.shape[0]
        out: Encoded = {"bars": bars}
        for lo in range(0, windows, ENCODE_ROWS):
            hi = min(lo + ENCODE_ROWS, windows)
            pad = ENCODE_ROWS - (hi - lo)
            chunk = [torch.cat([t[lo:hi], t[lo:lo + 1].expand(pad, *t.shape[1:])]) for t in (x, stamp, bars)]
            for key, value in self._run_network(*chunk).items():
                dim = 1 if key.startswith("dec_") else 0  # the decoder's keys / values are layer first
                if key not in out:
                    out[key] = value.new_empty((*value.shape[:dim], windows, *value.shape[dim + 1:]))
                out[key].narrow(dim, lo, hi - lo).copy_(value.narrow(dim, 0, hi - lo))
        return out

    def _network_eager(self, x: torch.Tensor, stamp: torch.Tensor, bars: torch.Tensor) -> Encoded:
        """Fixed-shape network: x [rows, M, 6] normalised and stamp [rows, M, 5], right-padded after `bars` real bars.

        Returns the s1 logits [rows, V1] and trunk state [rows, d] at the last real bar, the dependency layer's keys
        and values over the trunk states [rows, heads, M, head_dim], and the decoder's keys and values over the
        decoder context [layers, rows, heads, M - 1, head_dim].
        """
        s1_ids, s2_ids = self.tokenizer.encode(x, half=True)
        s1_logits, context = self.model.decode_s1(s1_ids, s2_ids, stamp)
        row, last = torch.arange(x.shape[0], device=x.device), bars - 1
        cross = self.model.dep_layer.cross_attn
        # The package decodes the last M tokens of context + new token: a full window drops its oldest token.
        index = torch.arange(x.shape[1] - 1, device=x.device) + (bars == x.shape[1]).long()[:, None]
        keys, values = self._decoder_cache(s1_ids.gather(1, index), s2_ids.gather(1, index))
        return {"s1_logits": s1_logits[row, last], "last": context[row, last],
                "dep_k": _heads(cross.k_proj(context), cross.n_heads),
                "dep_v": _heads(cross.v_proj(context), cross.n_heads), "dec_k": keys, "dec_v": values}

    def _decoder_cache(self, s1: torch.Tensor, s2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotated keys and values of each decoder layer over the context tokens: [layers, rows, heads, M-1, d]."""
        z = self.tokenizer.post_quant_embed(self.tokenizer.indices_to_bits((s1, s2), half=True))
        keys, values = [], []
        for layer in self.tokenizer.decoder:
            attn = layer.self_attn
            h = layer.norm1(z)
            k = _heads(attn.k_proj(h), attn.n_heads)
            keys.append(attn.rotary(k, k)[1])
            values.append(_heads(attn.v_proj(h), attn.n_heads))
            z = layer(z)
        return torch.stack(keys), torch.stack(values)

    def _run_network(self, x: torch.Tensor, stamp: torch.Tensor, bars: torch.Tensor) -> Encoded:
        if not self.compiled:
            return self._network(x, stamp, bars)
        before = _dynamo_compiles()
        with torch._dynamo.config.patch(recompile_limit=64, accumulated_recompile_limit=512):
            encoded = self._network(x, stamp, bars)
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


def _load(cls: type, source: str, flag: str) -> tuple[Any, Path]:
    """`cls.from_pretrained(source)` (local dir or Hugging Face id), every key required, and its weights file;
    BadInput when it fails."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the hub mixin prints "Loading weights from local directory"
            model = cls.from_pretrained(source, strict=True)
        local = Path(source).expanduser() / WEIGHTS_FILE
        if local.is_file():
            return model, local
        from huggingface_hub import hf_hub_download

        return model, Path(hf_hub_download(repo_id=source, filename=WEIGHTS_FILE))  # the snapshot just loaded
    except Exception as exc:  # noqa: BLE001 - any failure to load is the user's to fix, with the reason shown
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        raise BadInput(
            f"{flag} {source!r}: cannot load Kronos {cls.__name__} ({type(exc).__name__}: {reason}); pass "
            f"--weights DIR --tokenizer DIR (directories with config.json and model.safetensors, e.g. from "
            f"`huggingface-cli download {DEFAULT_WEIGHTS}` and {DEFAULT_TOKENIZER}), or populate the Hugging Face "
            f"cache and set HF_HUB_OFFLINE=1"
        ) from None


def _inputs(contexts: Contexts, length: int, clip: float,
            fewest: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Normalised features [windows, length, 6] and time stamps [windows, length, 5] of each window's last
    min(length, end) bars, right-padded with zeros; those bar counts; close mean and scale [windows].

    float32 z-score over the window's own bars, then clip, exactly as `KronosPredictor.predict` on those bars.
    """
    ends = contexts.ends
    if length < fewest:
        raise ForecastError(f"max_context {length}: Kronos reads at least {fewest} bars per window")
    if ends.min() < fewest:
        raise ForecastError(f"a window has only {int(ends.min())} bars before its scored bar; Kronos needs at least "
                            f"{fewest}: drop the earliest windows or add history")
    frame = contexts.frame
    close = frame["close"].to_numpy(np.float64)
    price = {c: frame[c].to_numpy(np.float64) if c in frame else close for c in ("open", "high", "low", "close")}
    volume = frame["volume"].to_numpy(np.float64) if "volume" in frame else np.zeros_like(close)
    amount = volume * np.stack(list(price.values()), axis=1).mean(axis=1)
    table = np.stack([*price.values(), volume, amount], axis=1).astype(np.float32)
    stamps = calc_time_stamps(frame["timestamp"]).to_numpy(np.float32)
    bars = np.minimum(ends, length)
    x = np.zeros((len(ends), length, len(FEATURES)), np.float32)
    stamp = np.zeros((len(ends), length, stamps.shape[1]), np.float32)
    mean, scale = np.empty(len(ends), np.float32), np.empty(len(ends), np.float32)
    for w, (end, n) in enumerate(zip(ends, bars, strict=True)):
        rows = table[end - n:end]
        row_mean, row_std = rows.mean(axis=0), rows.std(axis=0)
        x[w, :n] = np.clip((rows - row_mean) / (row_std + 1e-5), -clip, clip)
        stamp[w, :n] = stamps[end - n:end]
        mean[w], scale[w] = row_mean[CLOSE], row_std[CLOSE] + np.float32(1e-5)
    return x, stamp, bars.astype(np.int64), mean, scale


def _decoder_context(bars: torch.Tensor, length: int) -> torch.Tensor:
    """Context tokens before the new token in the package's decode: all n bars of a short window, else M - 1."""
    return bars.clamp(max=length - 1)


def _index_dtype(size: int) -> torch.dtype:
    return torch.int16 if size <= 1 << 15 else torch.int32


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[b, t, d] -> [b, heads, t, d / heads]."""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def _dynamo_compiles() -> list[Any]:
    return list(torch._dynamo.utils.get_compilation_metrics())


def _oom(exc: torch.OutOfMemoryError, what: str) -> ForecastError:
    """A failed trial with its reason; memory is released and nothing is capped for later trials."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return ForecastError(f"out of memory {what} ({str(exc).splitlines()[0]}); lower max_context / sample_count")
