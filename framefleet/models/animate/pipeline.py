"""AnimatePipeline: image (+ prompt) → short video, for our reference models and the Stable Video Diffusion
family, loaded from a local diffusers folder by the ordinary `from_pretrained`.

    pipe = AnimatePipeline.from_pretrained("framefleet/models/animate/weights/student")
    out = pipe(image, "pan left", sampler="ddim", num_inference_steps=8, seed=0)   # out.frames [F, H, W, 3]

Guidance (InstructPix2Pix's three-way form, on the model output, which is linear in the noise):
    v̂ = v(∅,∅) + s_I·(v(I,∅) − v(∅,∅)) + s_T·(v(I,T) − v(I,∅))
An empty prompt (or a model without a text encoder) drops the text term: two passes. s_I = s_T = 1 needs
one. A guidance-distilled student takes (s_I, s_T) as inputs and always makes one pass. The passes of one
step run as one batched call; `denoiser_passes` counts condition sets × steps.

Accelerations, each a switch (see docs/animate.md for what each one buys on which device):
    bf16            autocast to bfloat16 around the denoiser and the VAE decoder
    shared_context  SharedContextAttnProcessor: cross-attention K/V projected once per video
    compile         torch.compile of each component in place (denoiser; VAE decoder where there is one)
    sampler         "euler" (32+ steps), "dpmpp" (DPM-Solver++ 2M, ~15 steps), "ddim" (the student's)
    decode_chunk    frames per VAE decode call, which bounds its memory
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from diffusers import (
    DDIMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    EDMDPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
)

from framefleet.errors import InputError
from framefleet.models.animate.attention import SharedContextAttnProcessor, set_shared_context
from framefleet.models.animate.conditioning import Conditioned, FramefleetFamily, SVDFamily
from framefleet.models.animate.unet import FramefleetVideoUNet

SAMPLERS = ("euler", "dpmpp", "ddim")
MAX_STEPS = 1000


@dataclass
class AnimateOutput:
    frames: np.ndarray  # [F, H, W, 3] uint8
    sampler: str
    steps: int
    denoiser_passes: int
    conditions: tuple[str, ...]
    seconds: dict[str, float] = field(default_factory=dict)


def make_scheduler(sampler: str, config: Any) -> Any:
    """A fresh scheduler of the named kind on the model's own noise schedule."""
    if sampler == "euler":
        return EulerDiscreteScheduler.from_config(config)
    if sampler == "dpmpp" and config.get("timestep_type") == "continuous":
        # SVD's Euler runs in EDM form (continuous log-sigma timesteps): its DPM-Solver++ is the EDM one
        return EDMDPMSolverMultistepScheduler(
            sigma_min=config.get("sigma_min") or 0.002,
            sigma_max=config.get("sigma_max") or 80.0,
            sigma_data=1.0,
            prediction_type=config["prediction_type"],
            algorithm_type="dpmsolver++",
            solver_order=2,
        )
    if sampler == "dpmpp":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2)
    if sampler == "ddim":
        return DDIMScheduler.from_config(config, set_alpha_to_one=True)
    raise InputError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")


class AnimatePipeline(DiffusionPipeline):  # type: ignore[misc]
    """See the module docstring."""

    # registered by register_modules; declared for the type checker
    unet: Any
    scheduler: Any
    text_encoder: Any
    tokenizer: Any
    vae: Any
    image_encoder: Any
    feature_extractor: Any
    _optional_components: ClassVar[list[str]] = [
        "text_encoder",
        "tokenizer",
        "vae",
        "image_encoder",
        "feature_extractor",
    ]

    def __init__(
        self,
        unet: Any,
        scheduler: Any,
        text_encoder: Any = None,
        tokenizer: Any = None,
        vae: Any = None,
        image_encoder: Any = None,
        feature_extractor: Any = None,
    ) -> None:
        super().__init__()
        self.register_modules(
            unet=unet,
            scheduler=scheduler,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            vae=vae,
            image_encoder=image_encoder,
            feature_extractor=feature_extractor,
        )
        self.bf16 = False
        self.default_steps = 32  # load_pipeline reads a distilled student's own from framefleet.json
        self.fingerprint = ""
        self.compiled: set[str] = set()
        self._shared: SharedContextAttnProcessor | None = None

    # -- switches -------------------------------------------------------------------------------------
    @property
    def family(self) -> FramefleetFamily | SVDFamily:
        if isinstance(self.unet, FramefleetVideoUNet):
            return FramefleetFamily(self.unet, self.text_encoder, self.tokenizer)
        return SVDFamily(self.unet, self.vae, self.image_encoder, self.feature_extractor)

    @property
    def default_sampler(self) -> str:
        name = type(self.scheduler).__name__
        return {"DDIMScheduler": "ddim", "DPMSolverMultistepScheduler": "dpmpp"}.get(name, "euler")

    @property
    def guidance_distilled(self) -> bool:
        from framefleet.models.animate.distill import guidance_input_of

        return bool(guidance_input_of(self.unet))

    def enable_shared_context(self, enabled: bool = True) -> None:
        self._shared = set_shared_context(self.unet, enabled)

    def enable_bf16(self, enabled: bool = True) -> None:
        self.bf16 = enabled

    def compile_components(self, mode: str | None = None) -> None:
        """torch.compile each component in place; the first call pays the compile (warm-up)."""
        self.unet.compile(mode=mode)
        self.compiled.add("unet")
        if self.vae is not None:
            self.vae.decoder.compile(mode=mode)
            self.compiled.add("vae.decoder")

    def _autocast(self) -> Any:
        dev = self.unet.device.type
        return torch.autocast(dev, dtype=torch.bfloat16, enabled=self.bf16 and dev in ("cpu", "cuda"))

    # -- sampling -------------------------------------------------------------------------------------
    def conditions_for(self, prompt: str, guidance_image: float, guidance_text: float) -> tuple[str, ...]:
        if self.guidance_distilled:
            return ("image_text",)
        text = bool(prompt.strip()) and self.family.has_text
        if text and guidance_text != 1.0:
            return ("uncond", "image", "image_text")
        if guidance_image != 1.0:
            return ("uncond", "image_text" if text else "image")
        return ("image_text" if text else "image",)

    @staticmethod
    def combine(outs: dict[str, torch.Tensor], s_image: float, s_text: float) -> torch.Tensor:
        if len(outs) == 1:
            return next(iter(outs.values()))
        u = outs["uncond"]
        if "image" in outs and "image_text" in outs:
            i = outs["image"]
            return u + s_image * (i - u) + s_text * (outs["image_text"] - i)
        c = outs.get("image_text", outs.get("image"))
        assert c is not None
        return u + s_image * (c - u)

    def _batched(
        self, cond: Conditioned, names: tuple[str, ...], guidance: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        merged: dict[str, torch.Tensor] = {}
        for key in cond.tensors[names[0]]:
            merged[key] = torch.cat([cond.tensors[n][key] for n in names])
        if guidance is not None and "ids" in merged:  # SVD student: s_image is a fourth added-time id
            merged["ids"] = torch.cat([merged["ids"], guidance[:, :1].to(merged["ids"].dtype)], dim=1)
        elif guidance is not None:
            merged["guidance"] = guidance.expand(len(names), 2)
        return merged

    def check(self, frames: int, steps: int, sampler: str) -> None:
        if not self.family.frames_allowed(frames):
            raise InputError(
                f"--frames {frames}: this model makes {self.family.default_frames()} frames"
                if isinstance(self.family, FramefleetFamily)
                else f"--frames {frames}: give 1 to 64 frames"
            )
        if not 1 <= steps <= MAX_STEPS:
            raise InputError(f"--steps {steps}: give 1 to {MAX_STEPS} denoising steps")
        if sampler not in SAMPLERS:
            raise InputError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")

    @torch.no_grad()
    def __call__(  # type: ignore[override]
        self,
        image: np.ndarray,
        prompt: str = "",
        *,
        num_frames: int | None = None,
        num_inference_steps: int = 8,
        sampler: str | None = None,
        guidance_image: float = 1.5,
        guidance_text: float = 4.0,
        seed: int = 0,
        height: int | None = None,
        width: int | None = None,
        decode_chunk_size: int = 8,
        latents: torch.Tensor | None = None,
        progress: Any = None,
        **family_kwargs: Any,
    ) -> AnimateOutput:
        family = self.family
        frames = num_frames or family.default_frames()
        sampler = sampler or self.default_sampler
        self.check(frames, num_inference_steps, sampler)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        if prompt.strip() and family.has_text and self.text_encoder is None:
            raise InputError("this model folder has no text encoder; leave out the prompt")
        size = family.size(height, width)
        gen = torch.Generator("cpu").manual_seed(seed)
        cond = family.encode(image, prompt, frames, size, generator=gen, **family_kwargs)
        names = self.conditions_for(prompt, guidance_image, guidance_text)
        guidance = None
        if self.guidance_distilled:
            guidance = torch.tensor(
                [[guidance_image, guidance_text if prompt.strip() else 1.0]], device=self.unet.device
            )
        batch = self._batched(cond, names, guidance)
        scheduler = make_scheduler(sampler, self.scheduler.config)
        scheduler.set_timesteps(num_inference_steps, device=self.unet.device)
        x = latents if latents is not None else torch.randn((1, *cond.latent_shape), generator=gen)
        x = x.to(self.unet.device, torch.float32) * scheduler.init_noise_sigma
        timings["encode"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        if self._shared is not None:
            self._shared.videos = len(names)
        for i, t in enumerate(scheduler.timesteps):
            model_in = scheduler.scale_model_input(x, t).expand(len(names), *x.shape[1:])
            with self._autocast():
                out = family.denoise(self.unet, model_in, t, batch).float()  # [passes, F, C, h, w]
            v = self.combine(dict(zip(names, out.split(1), strict=True)), guidance_image, guidance_text)
            x = scheduler.step(v, t, x).prev_sample
            if progress is not None:
                progress(i + 1, len(scheduler.timesteps))
        timings["denoise"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        with self._autocast():
            pixels = family.decode(x, decode_chunk_size).float()  # [1, F, 3, H, W]
        frames_u8 = ((pixels[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
        timings["decode"] = time.perf_counter() - t2
        steps = len(scheduler.timesteps)
        return AnimateOutput(frames_u8.cpu().numpy(), sampler, steps, steps * len(names), names, timings)


__all__ = ["SAMPLERS", "AnimateOutput", "AnimatePipeline", "make_scheduler"]
