"""Find, check and load an animate model folder (diffusers layout), offline.

`--model` is a shipped name ("student", "teacher") or a path to a folder with model_index.json, as
`save_pretrained` writes it: our reference models or a user's Stable Video Diffusion family model. Before
diffusers reads anything, `check_model_folder` makes sure every component that model_index.json names is on
disk with its config and weights and is the class the index says, so a broken folder is an InputError that
names the component instead of a stack trace from deep inside a loader. Nothing is ever downloaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from framefleet.errors import InputError, ModelError
from framefleet.models.animate.reference import REFERENCE_DIR

SHIPPED = ("student", "teacher")
REQUIRED = {
    "AnimatePipeline": ("unet", "scheduler"),
    "StableVideoDiffusionPipeline": ("unet", "scheduler", "vae", "image_encoder", "feature_extractor"),
}
_CONFIG_FILES = {
    "scheduler": ("scheduler_config.json",),
    "feature_extractor": ("preprocessor_config.json",),
    "tokenizer": ("tokenizer_config.json",),
}
_WEIGHTS = (
    "diffusion_pytorch_model.safetensors",
    "model.safetensors",
    "diffusion_pytorch_model.bin",
    "pytorch_model.bin",
)
_NO_WEIGHTS = {"scheduler", "feature_extractor", "tokenizer"}


def resolve_model(name_or_path: str | os.PathLike[str] | None) -> Path:
    """A shipped name or a folder → the folder (not yet checked)."""
    name = str(name_or_path or "student")
    if name in SHIPPED:
        path = REFERENCE_DIR / name
        if not (path / "model_index.json").is_file():
            raise ModelError(f"the shipped {name} model is missing from {path}; reinstall framefleet")
        return path
    path = Path(name).expanduser()
    if not path.exists():
        raise InputError(
            f"model {name!r} is neither a shipped model ({', '.join(SHIPPED)}) nor a folder on disk; "
            "give a diffusers folder saved with save_pretrained (nothing is downloaded)"
        )
    return path


def _weights_of(folder: Path) -> list[Path]:
    found = [folder / w for w in _WEIGHTS if (folder / w).is_file()]
    return found or sorted(folder.glob("*.safetensors.index.json")) or sorted(folder.glob("*.bin.index.json"))


def check_model_folder(path: Path) -> dict[str, Any]:
    """Validate the layout; returns model_index.json. Raises InputError naming the first broken component."""
    index_file = path / "model_index.json"
    if not path.is_dir() or not index_file.is_file():
        raise InputError(f"{path}: not a diffusers model folder (no model_index.json); save one with save_pretrained")
    try:
        index = json.loads(index_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{index_file}: not valid JSON ({e}); re-save the model") from None
    kind = index.get("_class_name")
    if kind not in REQUIRED:
        raise InputError(f"{path}: a {kind} folder; animate runs {', '.join(REQUIRED)} folders")
    for comp in REQUIRED[kind]:
        entry = index.get(comp)
        if not isinstance(entry, list) or len(entry) != 2 or entry[1] is None:
            raise InputError(f"{path}: model_index.json names no {comp!r} component, which a {kind} needs")
    for comp, entry in index.items():
        if comp.startswith("_") or not isinstance(entry, list) or entry[1] is None:
            continue
        _check_component(path, comp, str(entry[1]))
    return dict(index)


def _check_component(path: Path, comp: str, cls: str) -> None:
    folder = path / comp
    if not folder.is_dir():
        raise InputError(f"{path}: component {comp!r} ({cls}) is missing: no folder {folder.name}/")
    configs = _CONFIG_FILES.get(comp, ("config.json",))
    config = next((folder / c for c in configs if (folder / c).is_file()), None)
    if config is None:
        raise InputError(f"{path}: component {comp!r} has no {configs[0]}; re-save it with save_pretrained")
    if comp not in _NO_WEIGHTS and not _weights_of(folder):
        raise InputError(f"{path}: component {comp!r} has no weights file ({_WEIGHTS[0]} or model.safetensors)")
    try:
        meta = json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{config}: component {comp!r} has a config that is not valid JSON") from None
    declared = meta.get("_class_name") or (meta.get("architectures") or [None])[0]
    if comp == "feature_extractor":
        declared = meta.get("image_processor_type") or meta.get("feature_extractor_type") or declared
    if declared is not None and not _same_class(str(declared), cls):
        raise InputError(
            f"{path}: component {comp!r} is a {declared} but model_index.json says {cls}; the folder is mixed up"
        )


def _same_class(declared: str, cls: str) -> bool:
    # transformers writes the backend variant it saved (…Fast, …Pil); every variant loads the same files
    def strip(s: str) -> str:
        return s.removesuffix("Fast").removesuffix("Pil")

    return strip(declared) == strip(cls)


def load_pipeline(name_or_path: str | os.PathLike[str] | None = None, *, device: str = "cpu", text: bool = True) -> Any:
    """Check and load a model folder into an AnimatePipeline on `device`, offline. `text=False` skips the
    prompt encoder (image-only use)."""
    from framefleet.models.animate.pipeline import AnimatePipeline

    path = resolve_model(name_or_path)
    index = check_model_folder(path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    extra: dict[str, Any] = {}
    if index["_class_name"] == "AnimatePipeline" and (index.get("text_encoder") or [None, None])[1] is None and text:
        from framefleet.models.animate.text import load_minilm

        extra["tokenizer"], extra["text_encoder"] = load_minilm()
    try:
        from diffusers.utils import logging as dlog

        level = dlog.get_verbosity()
        dlog.set_verbosity_error()
        dlog.disable_progress_bar()
        from transformers.utils import logging as tlog

        tlog.disable_progress_bar()
        try:
            pipe = AnimatePipeline.from_pretrained(path, local_files_only=True, dtype=torch.float32, **extra)
        finally:
            dlog.set_verbosity(level)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as e:
        raise ModelError(f"{path}: cannot load the model ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    pipe.set_progress_bar_config(disable=True)
    meta_file = path / "framefleet.json"
    if meta_file.is_file():
        try:
            pipe.default_steps = int(json.loads(meta_file.read_text()).get("steps", pipe.default_steps))
        except (json.JSONDecodeError, TypeError, ValueError):
            raise InputError(f"{meta_file}: not valid JSON; re-save the model") from None
    return pipe.to(device)


__all__ = ["SHIPPED", "check_model_folder", "load_pipeline", "resolve_model"]
