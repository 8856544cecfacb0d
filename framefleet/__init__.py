"""framefleet: turn images and videos into AI-generated or AI-enhanced video and serve it to very many
people within a fixed GPU budget.

The public surface is small and re-exported here; everything else lives in private-by-convention
modules behind it. See ../shared/DESIGN.md for the layers.
"""

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
from framefleet.store import Asset, Job, Producer, Store, Variant
from framefleet.tasks import encode_ladder, ingest

__version__ = "0.1.0"

__all__ = [
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
    "encode_ladder",
    "ingest",
    "plan_ladder",
    "probe",
]
