"""Quality: full-reference metrics (PSNR, SSIM, VMAF via libvmaf), a no-reference estimate trained by us,
the enhancement gate and the delivery rule (both pure).

The names below are imported on first use (PEP 562): `framefleet.quality.gate` and `.delivery` are pure,
and importing them must not load PyAV and OpenCV, which the metrics and the estimate need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from framefleet.quality.delivery import DeliveryChoice, DeliveryRule, choose_variant
    from framefleet.quality.fullref import QualityScores, full_reference, psnr
    from framefleet.quality.gate import GateDecision, GateInput, GateThresholds, decide
    from framefleet.quality.noref import QualityEstimate, estimate_quality

_LAZY = {
    **dict.fromkeys(["DeliveryChoice", "DeliveryRule", "choose_variant"], "framefleet.quality.delivery"),
    **dict.fromkeys(["QualityScores", "full_reference", "psnr"], "framefleet.quality.fullref"),
    **dict.fromkeys(["GateDecision", "GateInput", "GateThresholds", "decide"], "framefleet.quality.gate"),
    **dict.fromkeys(["QualityEstimate", "estimate_quality"], "framefleet.quality.noref"),
}

__all__ = [
    "DeliveryChoice",
    "DeliveryRule",
    "GateDecision",
    "GateInput",
    "GateThresholds",
    "QualityEstimate",
    "QualityScores",
    "choose_variant",
    "decide",
    "estimate_quality",
    "full_reference",
    "psnr",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'framefleet.quality' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
