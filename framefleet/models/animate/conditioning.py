"""What differs between the model families the pipeline runs: how the image and prompt become
conditioning, what one denoiser call looks like, and how latents become pixels.

- `FramefleetFamily`: our FramefleetVideoUNet, pixel space (no VAE), image concatenated per frame,
  MiniLM prompt embedding; three-way guidance (unconditional, image, image + text), or one pass with the
  guidance scales as inputs for a guidance-distilled student.
- `SVDFamily`: Stable Video Diffusion (UNetSpatioTemporalConditionModel + AutoencoderKLTemporalDecoder +
  CLIP image encoder), conditioned as diffusers' StableVideoDiffusionPipeline does: CLIP image embedding
  as context, VAE latents of the (noise-augmented) image concatenated per frame, (fps, motion bucket,
  noise augmentation) as added time ids. It has no text encoder: two-way guidance only.

Each condition set is one of "uncond", "image", "image_text"; the pipeline batches the passes it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from framefleet.errors import InputError

CONDITIONS = ("uncond", "image", "image_text")


def fit_square(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre-crop RGB uint8 [H, W, 3] to the target aspect, then resize (area filter down, cubic up)."""
    th, tw = size
    h, w = image.shape[:2]
    if w * th > h * tw:  # too wide
        cw = max(1, round(h * tw / th))
        x0 = (w - cw) // 2
        image = image[:, x0 : x0 + cw]
    else:
        ch = max(1, round(w * th / tw))
        y0 = (h - ch) // 2
        image = image[y0 : y0 + ch]
    interp = cv2.INTER_AREA if image.shape[0] > th else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(image), (tw, th), interpolation=interp)


def to_unit(image: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """uint8 [H, W, 3] → [1, 3, H, W] in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    return (t.to(device=device, dtype=torch.float32) / 127.5 - 1).to(dtype)


@dataclass
class Conditioned:
    """Everything the denoiser needs besides the noisy latents and the timestep, per condition set."""

    tensors: dict[str, dict[str, torch.Tensor]]
    latent_shape: tuple[int, ...]  # [F, C, h, w]


class FramefleetFamily:
    name = "framefleet"
    has_text = True

    def __init__(self, unet: Any, text_encoder: Any, tokenizer: Any) -> None:
        self.unet, self.text_encoder, self.tokenizer = unet, text_encoder, tokenizer

    def frames_allowed(self, frames: int) -> bool:
        return frames == int(self.unet.config.num_frames)

    def default_frames(self) -> int:
        return int(self.unet.config.num_frames)

    def size(self, height: int | None, width: int | None) -> tuple[int, int]:
        s = int(self.unet.config.sample_size)
        if (height or s) != s or (width or s) != s:
            raise InputError(f"this model makes {s}×{s} videos only; leave out --height/--width")
        return s, s

    def encode(self, image: np.ndarray, prompt: str, frames: int, size: tuple[int, int], **_: Any) -> Conditioned:
        from framefleet.models.animate.text import embed_prompts

        dev, dtype = self.unet.device, torch.float32
        img = to_unit(fit_square(image, size), dev, dtype)  # [1, 3, H, W]
        if prompt.strip():
            text = embed_prompts(self.tokenizer, self.text_encoder, [prompt]).to(dev)  # [1, 384]
        else:
            text = torch.zeros(1, int(self.unet.config.text_embed_dim), device=dev)
        zero_i, zero_t = torch.zeros_like(img), torch.zeros_like(text)
        tensors = {
            "uncond": {"image": zero_i, "text_embeds": zero_t},
            "image": {"image": img, "text_embeds": zero_t},
            "image_text": {"image": img, "text_embeds": text},
        }
        shape = (frames, int(self.unet.config.in_channels), *size)
        return Conditioned(tensors, shape)

    def denoise(self, unet: Any, latents: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        return unet(latents, t, cond["image"], cond["text_embeds"], guidance=cond.get("guidance"))  # type: ignore[no-any-return]

    def decode(self, latents: torch.Tensor, chunk: int) -> torch.Tensor:
        return latents  # pixel space: [B, F, 3, H, W] in [-1, 1]


class SVDFamily:
    name = "svd"
    has_text = False

    def __init__(self, unet: Any, vae: Any, image_encoder: Any, feature_extractor: Any) -> None:
        self.unet, self.vae, self.image_encoder = unet, vae, image_encoder
        self.feature_extractor = feature_extractor
        self.scale = 2 ** (len(vae.config.block_out_channels) - 1)

    def frames_allowed(self, frames: int) -> bool:
        return 1 <= frames <= 64

    def default_frames(self) -> int:
        return int(getattr(self.unet.config, "num_frames", 14))

    def size(self, height: int | None, width: int | None) -> tuple[int, int]:
        s = int(self.unet.config.sample_size) * self.scale
        h, w = height or s, width or s
        if h % self.scale or w % self.scale:
            raise InputError(f"height and width must be multiples of {self.scale} for this model")
        return h, w

    @torch.no_grad()
    def encode(
        self,
        image: np.ndarray,
        prompt: str,
        frames: int,
        size: tuple[int, int],
        *,
        fps: int = 7,
        motion_bucket_id: int = 127,
        noise_aug_strength: float = 0.02,
        generator: torch.Generator | None = None,
    ) -> Conditioned:
        dev = self.unet.device
        dtype = self.unet.dtype
        img = to_unit(fit_square(image, size), dev, torch.float32)  # [1, 3, H, W]
        clip_size = self.image_encoder.config.image_size
        small = to_unit(fit_square(image, (clip_size, clip_size)), dev, torch.float32)
        pixels = self.feature_extractor(
            images=(small + 1) / 2,
            do_normalize=True,
            do_center_crop=False,
            do_resize=False,
            do_rescale=False,
            return_tensors="pt",
        ).pixel_values.to(dev, self.image_encoder.dtype)
        embeds = self.image_encoder(pixels).image_embeds[:, None].to(dtype)  # [1, 1, D]
        noise = torch.randn(img.shape, generator=generator, device="cpu").to(dev)
        noisy = (img + noise_aug_strength * noise).to(self.vae.dtype)
        latents = self.vae.encode(noisy).latent_dist.mode().to(dtype)  # [1, c, h, w]
        latents = latents[:, None].expand(1, frames, *latents.shape[1:])  # [1, F, c, h, w]
        ids = torch.tensor([[fps - 1, motion_bucket_id, noise_aug_strength]], device=dev, dtype=dtype)
        zero = {"context": torch.zeros_like(embeds), "image_latents": torch.zeros_like(latents), "ids": ids}
        cond = {"context": embeds, "image_latents": latents, "ids": ids}
        c = int(self.vae.config.latent_channels)
        shape = (frames, c, size[0] // self.scale, size[1] // self.scale)
        return Conditioned({"uncond": zero, "image": cond, "image_text": cond}, shape)

    def denoise(self, unet: Any, latents: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        x = torch.cat([latents, cond["image_latents"].to(latents.dtype)], dim=2)
        out = unet(x, t, encoder_hidden_states=cond["context"], added_time_ids=cond["ids"], return_dict=False)
        return out[0]  # type: ignore[no-any-return]

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, chunk: int) -> torch.Tensor:
        """Latents [B, F, c, h, w] → pixels [B, F, 3, H, W], `chunk` frames at a time (bounded memory)."""
        b, f = latents.shape[:2]
        flat = latents.flatten(0, 1) / self.vae.config.scaling_factor
        out = []
        for i in range(0, flat.shape[0], chunk):
            z = flat[i : i + chunk].to(self.vae.dtype)
            out.append(self.vae.decode(z, num_frames=z.shape[0]).sample.float())
        pixels = torch.cat(out)
        return pixels.view(b, f, *pixels.shape[1:])


__all__ = ["CONDITIONS", "Conditioned", "FramefleetFamily", "SVDFamily", "fit_square", "to_unit"]
