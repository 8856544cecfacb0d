"""Quality: full-reference metrics (PSNR, SSIM, VMAF via libvmaf), a no-reference estimate trained by us,
the enhancement gate and the delivery rule (both pure)."""

from framefleet.quality.delivery import DeliveryChoice, DeliveryRule, choose_variant
from framefleet.quality.fullref import QualityScores, full_reference, psnr
from framefleet.quality.gate import GateDecision, GateInput, GateThresholds, decide
from framefleet.quality.noref import QualityEstimate, estimate_quality

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
