"""Cross-attention that projects the per-video context to keys and values once, not once per frame.

Video denoisers (UNetSpatioTemporalConditionModel, our FramefleetVideoUNet) repeat the context — the image
embedding, the prompt — for every frame *before* cross-attention (`repeat_interleave(num_frames)`), and
SVD's temporal blocks repeat it for every pixel. The plain processor then projects N = videos × r identical
rows through `to_k` and `to_v`. `SharedContextAttnProcessor` projects the first row of each group (N / r
rows) and expands *after* the projection. It does not even materialise the expansion: the r query groups
of one video are folded into one longer query sequence against that video's keys, which is the same
attention (every query row attends independently) with K/V r times smaller.

The caller must say how many distinct contexts the batch holds (`videos`), because the groups are found
by position (consecutive rows, as `repeat_interleave` lays them out). When `videos` is not set, when a
mask is passed, or when the batch does not divide, it falls back to exactly AttnProcessor2_0's arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import nn


class SharedContextAttnProcessor:
    """AttnProcessor2_0 for cross-attention, with K/V projected once per video; see the module docstring."""

    def __init__(self) -> None:
        self.videos: int | None = None
        self._plain = AttnProcessor2_0()

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        n = hidden_states.shape[0]
        b = self.videos
        simple = attn.spatial_norm is None and attn.group_norm is None and attn.norm_q is None and attn.norm_k is None
        if (
            encoder_hidden_states is None
            or attention_mask is not None
            or b is None
            or n % b != 0
            or hidden_states.ndim != 3
            or not simple
        ):
            return self._plain(attn, hidden_states, encoder_hidden_states, attention_mask, temb)  # type: ignore[no-any-return]
        r = n // b
        residual = hidden_states
        context = encoder_hidden_states[::r]  # [B, L, Dc]: one row per video, before the projection
        if attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        query = attn.to_q(hidden_states)  # [B·r, Lq, inner]
        key = attn.to_k(context)  # [B, L, inner]
        value = attn.to_v(context)
        inner = key.shape[-1]
        head_dim = inner // attn.heads
        lq = query.shape[1]
        query = query.reshape(b, r * lq, attn.heads, head_dim).transpose(1, 2)  # [B, h, r·Lq, d]
        key = key.view(b, -1, attn.heads, head_dim).transpose(1, 2)  # [B, h, L, d]
        value = value.view(b, -1, attn.heads, head_dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)  # [B, h, r·Lq, d]
        out = out.transpose(1, 2).reshape(n, lq, inner).to(query.dtype)  # [B·r, Lq, inner]
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor  # type: ignore[no-any-return]


def cross_attention_modules(model: nn.Module) -> dict[str, Attention]:
    return {name: m for name, m in model.named_modules() if isinstance(m, Attention) and m.is_cross_attention}


def set_shared_context(model: nn.Module, enabled: bool) -> SharedContextAttnProcessor | None:
    """Install one shared processor on every cross-attention module (or put AttnProcessor2_0 back)."""
    proc = SharedContextAttnProcessor() if enabled else None
    for m in cross_attention_modules(model).values():
        m.set_processor(proc if proc is not None else AttnProcessor2_0())
    return proc


@dataclass
class AttentionCost:
    """K/V projection work and K/V activation bytes of every cross-attention call in one denoiser pass."""

    calls: int = 0
    plain_flops: int = 0
    shared_flops: int = 0
    plain_bytes: int = 0
    shared_bytes: int = 0
    shapes: list[tuple[int, int, int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, float]:
        return {
            "cross_attention_calls": self.calls,
            "kv_projection_gflops_plain": self.plain_flops / 1e9,
            "kv_projection_gflops_shared": self.shared_flops / 1e9,
            "kv_bytes_plain": self.plain_bytes,
            "kv_bytes_shared": self.shared_bytes,
            "kv_saved_fraction": 1 - self.shared_flops / self.plain_flops if self.plain_flops else 0.0,
        }


def measure_attention_cost(model: nn.Module, videos: int, run: Any, bytes_per_value: int = 4) -> AttentionCost:
    """Run `run()` once with hooks on the cross-attention modules and count what the K/V projections cost
    with the plain processor (all N rows) and the shared one (N / r rows), from the shapes actually seen."""
    cost = AttentionCost()

    def hook(module: Attention, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ctx = kwargs.get("encoder_hidden_states")
        if ctx is None:
            return
        n, length, dc = ctx.shape
        inner = module.to_k.out_features
        rows_plain, rows_shared = n * length, (videos if n % videos == 0 else n) * length
        cost.calls += 1
        cost.plain_flops += 2 * 2 * rows_plain * dc * inner  # two projections, multiply + add
        cost.shared_flops += 2 * 2 * rows_shared * dc * inner
        cost.plain_bytes += 2 * rows_plain * inner * bytes_per_value
        cost.shared_bytes += 2 * rows_shared * inner * bytes_per_value
        cost.shapes.append((n, length, dc))

    handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in cross_attention_modules(model).values()]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return cost


__all__ = [
    "AttentionCost",
    "SharedContextAttnProcessor",
    "cross_attention_modules",
    "measure_attention_cost",
    "set_shared_context",
]
