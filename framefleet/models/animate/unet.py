"""FramefleetVideoUNet: our small pixel-space image-to-video denoiser (a pseudo-3D U-Net).

Sized for training on two CPU cores: the clip (8 frames of 64×64 RGB) is folded into 4×4 patches
(pixel unshuffle, 64×64×3 → 16×16×48) so every convolution runs at 16×16 and below; each level has 2-D
residual blocks per frame and temporal self-attention across frames; the two coarser levels also have
spatial self-attention and cross-attention to the text context. The conditioning image is concatenated to
every frame's input (as SVD concatenates its image latents), so copying and moving it is the easy path.

Inputs (v-prediction, DDPM time 0..999):
    sample          [B, F, 3, H, W]   the noisy clip in [-1, 1] space
    timestep        [B] or scalar
    image           [B, 3, H, W]      the conditioning image in [-1, 1]; zeros mean "no image"
    text_embeds     [B, 384]          the prompt's sentence embedding; zeros mean "no text"
    guidance        [B, 2]            (s_image, s_text), only for a guidance-distilled student
    camera_path     [B, 4]            optional (vx, vy, log zoom, spin) per frame; by default predicted
It returns v̂ [B, F, 3, H, W].

Camera path (config `camera_path=True`, our reference models): motion is factored out of appearance, as
Motion-I2V (Shi et al., 2024) factors image-to-video into motion prediction and motion-guided rendering. A
small head reads the prompt's embedding and predicts the camera's constant per-frame motion (scene
velocity, zoom rate, spin; `motion.CameraPath`); the still is warped along that path (one affine per
frame, reflected borders) and the warped stills, not copies of the still, are concatenated to the frames.
The diffusion U-Net then renders the clip: it fills what enters the frame, moves the near layer of a
parallax and denoises. A U-Net of 2-D convolutions and temporal attention at one position has no cheap way
to translate content by a frame-dependent amount, and ~6,000 CPU training steps taught the plain design
no motion at all (its output ignored the prompt); the head learns the mapping from words to motion in
seconds, supervised by the exact path each training clip was drawn with. No text means no camera motion.

The text context enters through diffusers `Attention` modules (so every attention processor, ours
included, plugs in with `set_attn_processor`), repeated per frame before the block exactly as
UNetSpatioTemporalConditionModel does: that is what `SharedContextAttnProcessor` optimises.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import AttentionMixin
from diffusers.models.attention_processor import Attention
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


def sinusoidal(x: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """[N] → [N, dim] sinusoidal embedding (DDPM's timestep embedding)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=x.device, dtype=torch.float32) / half)
    args = x.float()[:, None] * freqs[None]  # [N, half]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, FiLM from the embedding, GroupNorm → SiLU → conv, plus the skip."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(8, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)  # type: ignore[arg-type]
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # [BF, C, h, w]
        scale, shift = self.film(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class TransformerBlock(nn.Module):
    """Spatial self-attention, cross-attention to the context, temporal self-attention (each pre-norm)."""

    def __init__(self, c: int, frames: int, context_dim: int, head_dim: int, spatial: bool) -> None:
        super().__init__()
        heads = max(1, c // head_dim)
        self.spatial = spatial
        if spatial:
            self.norm1 = nn.LayerNorm(c)
            self.attn1 = Attention(c, heads=heads, dim_head=head_dim, out_bias=True)
            self.norm2 = nn.LayerNorm(c)
            self.attn2 = Attention(c, cross_attention_dim=context_dim, heads=heads, dim_head=head_dim, out_bias=True)
        self.norm_t = nn.LayerNorm(c)
        self.attn_t = Attention(c, heads=heads, dim_head=head_dim, out_bias=True)
        self.frame_pos = nn.Parameter(torch.zeros(frames, c))
        nn.init.normal_(self.frame_pos, std=0.02)

    def forward(self, x: torch.Tensor, context: torch.Tensor, frames: int) -> torch.Tensor:
        bf, c, h, w = x.shape
        b = bf // frames
        t = x.flatten(2).transpose(1, 2)  # [BF, hw, C]
        if self.spatial:
            t = t + self.attn1(self.norm1(t))
            t = t + self.attn2(self.norm2(t), encoder_hidden_states=context)  # context [BF, L, D]
        # frames become the sequence: [B, F, hw, C] → [B·hw, F, C]
        t = t.view(b, frames, h * w, c).permute(0, 2, 1, 3).reshape(b * h * w, frames, c)
        t = t + self.frame_pos[:frames]
        t = t + self.attn_t(self.norm_t(t))
        t = t.view(b, h * w, frames, c).permute(0, 2, 1, 3).reshape(bf, h * w, c)
        return t.transpose(1, 2).reshape(bf, c, h, w)


# the head's output units: typical speeds of the training clips (px/frame at 64 px, log zoom, radians)
PATH_UNITS = (2.2, 2.2, 0.045, math.radians(3.0))


def warp_along_path(image: torch.Tensor, path: torch.Tensor, frames: int) -> torch.Tensor:
    """image [B, C, H, W], path [B, 4] (vx, vy px/frame at 64 px, log zoom, spin) → [B, F, C, H, W], frame t
    the still seen by a camera that moved t frames along the path (motion.CameraPath.relative_affine)."""
    b, c, h, w = image.shape
    t = torch.arange(frames, device=image.device, dtype=torch.float32)  # [F]
    p = path.float()
    scale = torch.exp(p[:, 2:3] * t)  # [B, F]
    angle = p[:, 3:4] * t
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # velocities are in pixels of a 64-px frame; normalised coordinates run from -1 to 1 across the frame
    half = (64 - 1) / 2
    tx, ty = -p[:, 0:1] * t / scale / half, -p[:, 1:2] * t / scale / half
    theta = torch.stack([torch.stack([cos, sin, tx], -1), torch.stack([-sin, cos, ty], -1)], -2)  # [B, F, 2, 3]
    grid = F.affine_grid(theta.reshape(b * frames, 2, 3), [b * frames, c, h, w], align_corners=True)
    src = image[:, None].expand(b, frames, c, h, w).reshape(b * frames, c, h, w)
    out = F.grid_sample(src.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=True)
    return out.to(image.dtype).view(b, frames, c, h, w)


class PixelHead(nn.Module):
    """A few full-resolution convolutions that correct the patch U-Net's v̂ from the noisy frame and the
    warped still at every pixel: the 4×4 patch stem has to squeeze both through c0 channels, which leaves
    fine-grained noise in the samples. Zero-initialised: adding it to a trained model changes nothing."""

    def __init__(self, channels: int, c: int, emb_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3 * channels, c, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.out = nn.Conv2d(c, channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)  # type: ignore[arg-type]

    def forward(self, v: torch.Tensor, sample: torch.Tensor, cond: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(torch.cat([v, sample, cond], dim=1))  # [BF, c, H, W]
        scale, shift = self.film(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = F.silu(h * (1 + scale) + shift)
        return v + self.out(F.silu(self.conv2(h)))  # [BF, C, H, W]


class FramefleetVideoUNet(ModelMixin, ConfigMixin, AttentionMixin):  # type: ignore[misc]
    """Pseudo-3D U-Net over 4×4 patches; see the module docstring for its inputs."""

    _supports_gradient_checkpointing = False

    @register_to_config  # type: ignore[untyped-decorator]
    def __init__(
        self,
        sample_size: int = 64,
        num_frames: int = 8,
        in_channels: int = 3,
        patch_size: int = 4,
        block_out_channels: tuple[int, ...] = (64, 128, 192),
        attention_levels: tuple[bool, ...] = (False, True, True),
        head_dim: int = 32,
        text_embed_dim: int = 384,
        context_tokens: int = 4,
        guidance_embeds: bool = False,
        camera_path: bool = False,
        pixel_head_channels: int = 0,
    ) -> None:
        super().__init__()
        c0 = block_out_channels[0]
        emb = 4 * c0
        p2 = patch_size * patch_size
        ctx_dim = block_out_channels[-1]
        self.time_mlp = nn.Sequential(nn.Linear(c0, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.frame_emb = nn.Embedding(num_frames, emb)
        self.guidance_mlp: nn.Module | None = None
        if guidance_embeds:
            self.guidance_mlp = nn.Sequential(nn.Linear(2 * c0, emb), nn.SiLU(), nn.Linear(emb, emb))
            head = self.guidance_mlp[2]
            assert isinstance(head, nn.Linear)
            nn.init.zeros_(head.weight)  # a fresh student starts as its teacher
            nn.init.zeros_(head.bias)
        self.text_proj = nn.Linear(text_embed_dim, context_tokens * ctx_dim)
        self.text_mlp = nn.Sequential(nn.Linear(text_embed_dim, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.path_head: nn.Module | None = None
        if camera_path:
            self.path_head = nn.Sequential(nn.Linear(text_embed_dim, 256), nn.SiLU(), nn.Linear(256, 4))
        self.stem = nn.Conv2d(2 * in_channels * p2, c0, 3, padding=1)
        self.down = nn.ModuleList()
        self.down_attn = nn.ModuleList()
        self.downsample = nn.ModuleList()
        chans = [c0]
        c_prev = c0
        for i, (c, attn) in enumerate(zip(block_out_channels, attention_levels, strict=True)):
            self.down.append(ResBlock(c_prev, c, emb))
            self.down_attn.append(TransformerBlock(c, num_frames, ctx_dim, head_dim, spatial=attn))
            chans.append(c)
            last = i == len(block_out_channels) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
            c_prev = c
        self.mid = ResBlock(c_prev, c_prev, emb)
        self.up = nn.ModuleList()
        self.up_attn = nn.ModuleList()
        for c, attn in zip(reversed(block_out_channels), reversed(attention_levels), strict=True):
            self.up.append(ResBlock(c_prev + chans.pop(), c, emb))
            self.up_attn.append(TransformerBlock(c, num_frames, ctx_dim, head_dim, spatial=attn))
            c_prev = c
        self.pixel_head = PixelHead(in_channels, pixel_head_channels, emb) if pixel_head_channels else None
        self.out_norm = nn.GroupNorm(8, c_prev)
        self.out = nn.Conv2d(c_prev, in_channels * p2, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)  # type: ignore[arg-type]

    def _embedding(
        self, timestep: torch.Tensor, text_embeds: torch.Tensor, guidance: torch.Tensor | None, b: int, f: int
    ) -> torch.Tensor:
        c0 = self.config.block_out_channels[0]
        t = timestep.reshape(-1).expand(b) if timestep.numel() == 1 else timestep.reshape(b)
        e = self.time_mlp(sinusoidal(t, c0).to(text_embeds.dtype)) + self.text_mlp(text_embeds)  # [B, E]
        if self.guidance_mlp is not None:
            if guidance is None:
                raise ValueError("this denoiser is guidance-distilled: pass guidance=[B, 2] (s_image, s_text)")
            g = torch.cat([sinusoidal(guidance[:, 0] * 100, c0), sinusoidal(guidance[:, 1] * 100, c0)], dim=-1)
            e = e + self.guidance_mlp(g.to(e.dtype))
        frames = self.frame_emb(torch.arange(f, device=e.device))  # [F, E]
        return (e[:, None] + frames[None]).reshape(b * f, -1)  # [BF, E]

    def predict_camera_path(self, text_embeds: torch.Tensor) -> torch.Tensor:
        """[B, 384] → [B, 4] (vx, vy, log zoom, spin) per frame; zeros where there is no text."""
        if self.path_head is None:
            raise ValueError("this denoiser has no camera-path head (config camera_path=False)")
        units = torch.tensor(PATH_UNITS, device=text_embeds.device)
        has_text = (text_embeds.abs().sum(-1, keepdim=True) > 0).float()  # [B, 1]
        # dropout on the embedding while the head trains: it must read the gist of a sentence, not one
        # coordinate of it, to carry over to phrasings it never saw
        text = F.dropout(text_embeds.float(), 0.5, self.training)
        return self.path_head(text) * units * has_text  # [B, 4]

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        image: torch.Tensor,
        text_embeds: torch.Tensor,
        guidance: torch.Tensor | None = None,
        camera_path: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, f, c, h, w = sample.shape
        p = self.config.patch_size
        timestep = torch.as_tensor(timestep, device=sample.device)
        emb = self._embedding(timestep, text_embeds, guidance, b, f)
        context = self.text_proj(text_embeds).view(b, self.config.context_tokens, -1)  # [B, L, D]
        context = context.repeat_interleave(f, dim=0)  # [BF, L, D], as SVD repeats its context per frame
        if self.path_head is not None:
            path = camera_path if camera_path is not None else self.predict_camera_path(text_embeds)
            cond = warp_along_path(image, path, f)  # [B, F, C, H, W]
        else:
            cond = image[:, None].expand(b, f, c, h, w)
        x = torch.cat([sample, cond], dim=2).reshape(b * f, 2 * c, h, w)  # [BF, 2C, H, W]
        x = self.stem(F.pixel_unshuffle(x, p))  # [BF, c0, H/p, W/p]
        skips = [x]
        for res, attn, down in zip(self.down, self.down_attn, self.downsample, strict=True):
            x = attn(res(x, emb), context, f)
            skips.append(x)
            x = down(x)
        x = self.mid(x, emb)
        for res, attn in zip(self.up, self.up_attn, strict=True):
            skip = skips.pop()
            if x.shape[-1] != skip.shape[-1]:
                x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = attn(res(torch.cat([x, skip], dim=1), emb), context, f)
        x = self.out(F.silu(self.out_norm(x)))  # [BF, C·p², H/p, W/p]
        v = F.pixel_shuffle(x, p)  # [BF, C, H, W]
        if self.pixel_head is not None:
            v = self.pixel_head(v, sample.reshape(b * f, c, h, w), cond.reshape(b * f, c, h, w), emb)
        return v.view(b, f, c, h, w)  # [B, F, C, H, W]


__all__ = ["FramefleetVideoUNet"]
