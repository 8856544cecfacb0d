"""Image (+ prompt) → short video with a diffusion model on diffusers: our reference models and the Stable
Video Diffusion family through one pipeline, with each acceleration a switch and a distillation trainer.

    from framefleet.models.animate import load_pipeline
    pipe = load_pipeline("student")               # or "teacher", or a diffusers folder
    frames = pipe(image, "pan left").frames       # [F, H, W, 3] uint8

See docs/animate.md.
"""

from framefleet.models.animate.loading import SHIPPED, check_model_folder, load_pipeline, resolve_model
from framefleet.models.animate.pipeline import SAMPLERS, AnimateOutput, AnimatePipeline

__all__ = [
    "SAMPLERS",
    "SHIPPED",
    "AnimateOutput",
    "AnimatePipeline",
    "check_model_folder",
    "load_pipeline",
    "resolve_model",
]
