"""The enhancement gate (pure policy: numbers in, a decision and its reason out; no I/O).

Super-resolution pays off on inputs that are small but clean: it restores detail the downscale took.
It does not pay off on inputs already at the target size (nothing to add), nor on thumbnails smaller
than the no-reference estimate was trained on (its number means nothing there: a 1×1 video "scores"
VMAF 100), and it hurts on inputs that are very poor (blocking, blur and noise are what it
sharpens). Thresholds are configurable; the decision says which rule fired, with the numbers, so it
can be shown to the user and stored.

    decide(GateInput(width=640, height=360, estimated_vmaf=82.0, scale=2), GateThresholds())
    -> GateDecision(enhance=True, rule="pass", reason="360p at estimated VMAF 82.0 ...")
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class GateThresholds:
    target_short_side: int = 1080  # inputs whose short side is already this large are not upscaled
    min_quality: float = 40.0  # estimated VMAF below this: too degraded for enhancement to help
    max_output_short_side: int = 2160  # never produce more than 4K
    # Below this short side the no-reference estimate is extrapolating (it was trained on frames ≥ 64 px)
    # and there is too little picture for detail to be restored.
    min_short_side: int = 64


@dataclass(frozen=True)
class GateInput:
    width: int
    height: int
    estimated_vmaf: float  # the no-reference estimate of the input
    scale: int


@dataclass(frozen=True)
class GateDecision:
    enhance: bool
    rule: str  # "pass" | "at_target" | "too_large" | "too_small" | "too_poor"
    reason: str
    estimated_vmaf: float
    thresholds: GateThresholds

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["estimated_vmaf"] = round(self.estimated_vmaf, 2)
        return d


def decide(inp: GateInput, thresholds: GateThresholds) -> GateDecision:
    short = min(inp.width, inp.height)
    q = inp.estimated_vmaf

    def out(enhance: bool, rule: str, reason: str) -> GateDecision:
        return GateDecision(enhance, rule, reason, q, thresholds)

    if short >= thresholds.target_short_side:
        return out(
            False, "at_target", f"{short}p is already at the target {thresholds.target_short_side}p; nothing to restore"
        )
    if short * inp.scale > thresholds.max_output_short_side:
        return out(
            False,
            "too_large",
            f"{short}p ×{inp.scale} = {short * inp.scale}p exceeds the {thresholds.max_output_short_side}p limit",
        )
    if short < thresholds.min_short_side:
        return out(
            False,
            "too_small",
            f"{short}p is below the {thresholds.min_short_side}p minimum: too little picture to restore, and the "
            f"quality estimate ({q:.1f}) is not valid at this size",
        )
    if q < thresholds.min_quality:
        return out(
            False,
            "too_poor",
            f"estimated VMAF {q:.1f} is below {thresholds.min_quality:g}: upscaling would sharpen the artifacts",
        )
    return out(True, "pass", f"{short}p at estimated VMAF {q:.1f}: clean enough and below the target size")
