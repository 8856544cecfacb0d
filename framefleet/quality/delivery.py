"""Which variant a viewer gets (pure policy).

The enhanced variant is delivered only where the gate passed and the measured gain is real; an A/B
option holds back a stable fraction of viewers on the original so the gain can be measured on
engagement too. Bucketing hashes (experiment, asset, viewer): a viewer always sees the same arm of
one experiment, and arms are independent across assets and experiments.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DeliveryRule:
    min_gain_vmaf: float = 1.0  # enhanced must beat the Lanczos upscale of the same input by this much
    holdout: float = 0.0  # fraction of viewers kept on the original (the A/B control arm), 0..1
    experiment: str = "enhance-v1"


@dataclass(frozen=True)
class DeliveryChoice:
    variant_id: str
    arm: str  # "enhanced" | "original" | "control"
    reason: str


def bucket(experiment: str, asset_id: str, viewer_id: str) -> float:
    """A stable number in [0, 1) per (experiment, asset, viewer)."""
    digest = hashlib.sha256(f"{experiment}\0{asset_id}\0{viewer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def choose_variant(
    *,
    asset_id: str,
    viewer_id: str,
    original_id: str,
    enhanced_id: str | None,
    enhanced_metrics: dict[str, Any] | None,
    rule: DeliveryRule,
) -> DeliveryChoice:
    if enhanced_id is None or not enhanced_metrics:
        return DeliveryChoice(original_id, "original", "no enhanced variant")
    gate = enhanced_metrics.get("gate") or {}
    if not gate.get("enhance", False):
        return DeliveryChoice(original_id, "original", f"gate said no: {gate.get('rule', 'unknown')}")
    gain = enhanced_metrics.get("gain_vmaf")
    if gain is None or gain < rule.min_gain_vmaf:
        return DeliveryChoice(
            original_id, "original", f"measured VMAF gain {gain} is below the {rule.min_gain_vmaf:g} required"
        )
    if rule.holdout > 0 and bucket(rule.experiment, asset_id, viewer_id) < rule.holdout:
        return DeliveryChoice(original_id, "control", f"A/B holdout ({rule.holdout:.0%} of viewers)")
    return DeliveryChoice(enhanced_id, "enhanced", f"gate passed and VMAF gain {gain:.1f} ≥ {rule.min_gain_vmaf:g}")
