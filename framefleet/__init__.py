"""framefleet: turn images and videos into AI-generated or AI-enhanced video and serve it to very many
people within a fixed GPU budget.

The public surface is small and re-exported here; everything else lives in private-by-convention
modules behind it. See docs/architecture.md for the layers.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from framefleet.config import Settings
    from framefleet.errors import (
        Busy,
        FramefleetError,
        InputError,
        MediaError,
        ModelError,
        NotFound,
        StoreError,
        TooLarge,
        UnsupportedMedia,
    )
    from framefleet.media import EncodeSettings, MediaInfo, plan_ladder, probe
    from framefleet.models.animate import AnimatePipeline, load_pipeline
    from framefleet.store import Asset, Job, Producer, Store, Variant
    from framefleet.tasks import encode_ladder, ingest
    from framefleet.tasks.animate import AnimateRequest, animate

# Imported on first use (PEP 562): a serving worker that needs only `framefleet.serve` should not pay for
# PyAV, SQLAlchemy and Alembic at start-up.
_LAZY = {
    "Settings": "framefleet.config",
    **dict.fromkeys(
        [
            "Busy",
            "FramefleetError",
            "InputError",
            "MediaError",
            "ModelError",
            "NotFound",
            "StoreError",
            "TooLarge",
            "UnsupportedMedia",
        ],
        "framefleet.errors",
    ),
    **dict.fromkeys(["EncodeSettings", "MediaInfo", "plan_ladder", "probe"], "framefleet.media"),
    **dict.fromkeys(["Asset", "Job", "Producer", "Store", "Variant"], "framefleet.store"),
    **dict.fromkeys(["encode_ladder", "ingest"], "framefleet.tasks"),
    **dict.fromkeys(["AnimateRequest", "animate"], "framefleet.tasks.animate"),
    **dict.fromkeys(["AnimatePipeline", "load_pipeline"], "framefleet.models.animate"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'framefleet' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__version__ = "0.1.0"

__all__ = [
    "AnimatePipeline",
    "AnimateRequest",
    "Asset",
    "Busy",
    "EncodeSettings",
    "FramefleetError",
    "InputError",
    "Job",
    "MediaError",
    "MediaInfo",
    "ModelError",
    "NotFound",
    "Producer",
    "Settings",
    "Store",
    "StoreError",
    "TooLarge",
    "UnsupportedMedia",
    "Variant",
    "__version__",
    "animate",
    "encode_ladder",
    "ingest",
    "load_pipeline",
    "plan_ladder",
    "probe",
]
