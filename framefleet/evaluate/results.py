"""The result types of a study's analysis (plain dataclasses; `StudyResults.to_dict()` is JSON-ready)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from framefleet.evaluate.screening import RaterScreen


@dataclass(frozen=True)
class StimulusResult:
    id: str
    asset: str
    variant: str
    n_scores: int
    mos: float
    ci_low: float  # bootstrap 95 % over raters
    ci_high: float
    mle: float | None  # sureal MLE quality x_j
    mle_ci_low: float | None  # ± 1.96 of the MLE's standard error (inverse Fisher information)
    mle_ci_high: float | None
    metrics: dict[str, float]
    input_quality: float | None


@dataclass(frozen=True)
class VariantResult:
    variant: str
    n_assets: int
    n_scores: int
    mos: float  # mean over assets of the per-stimulus MOS
    ci_low: float  # bootstrap 95 % over raters and assets
    ci_high: float
    mle: float | None  # mean over assets of the MLE quality
    bradley_terry: float | None  # log-strength, mean 0 over variants
    n_shown: int  # times a kept rater saw this variant in a pair item
    artifact_rates: dict[str, float]  # flag -> share of showings flagged
    bt_ci_low: float | None = None  # percentile bootstrap 95 % over kept raters (evaluate/preference.py)
    bt_ci_high: float | None = None


@dataclass(frozen=True)
class RaterModel:
    rater: str
    bias: float  # b_i: the rater's offset from the true quality
    bias_std: float | None
    inconsistency: float  # v_i: the sd of the rater's noise
    inconsistency_std: float | None


@dataclass(frozen=True)
class PreferenceMatrix:
    variants: list[str]
    share: list[list[float | None]]  # [row][col]: share of votes preferring row over col, "same" counting ½
    count: list[list[int]]  # votes comparing row and col (symmetric)
    wins: list[list[int]]  # votes preferring row over col
    ties: list[list[int]]  # "same" votes between row and col (symmetric)


@dataclass(frozen=True)
class Correlation:
    metric: str
    target: str  # "mos" | "mle"
    n: int
    plcc: float | None
    srocc: float | None
    krocc: float | None


@dataclass(frozen=True)
class GainBucket:
    low: float
    high: float
    n_assets: int
    gain: float | None  # mean over the bucket's assets of MOS(variant) − MOS(baseline)
    ci_low: float | None  # bootstrap 95 % over raters and the bucket's assets
    ci_high: float | None


@dataclass(frozen=True)
class GainResult:
    variant: str
    baseline: str
    buckets: list[GainBucket]
    suggested_threshold: float | None  # lowest bucket edge from which every bucket's gain is significantly > 0
    gate_threshold: float | None
    verdict: str


@dataclass(frozen=True)
class StudyResults:
    baseline: str
    n_votes: int
    n_pair_votes: int
    raters: list[RaterScreen]
    stimuli: list[StimulusResult]
    variants: list[VariantResult]
    rater_model: list[RaterModel]  # empty when the MLE could not run (fewer than 2 raters or stimuli)
    preferences: PreferenceMatrix
    correlations: list[Correlation]
    gains: list[GainResult]
    settings: dict[str, Any]

    @property
    def kept_raters(self) -> list[str]:
        return [r.rater for r in self.raters if r.kept]

    @property
    def rejected_raters(self) -> list[str]:
        return [r.rater for r in self.raters if not r.kept]

    def variant(self, name: str) -> VariantResult:
        for v in self.variants:
            if v.variant == name:
                return v
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        d = _plain(asdict(self))
        assert isinstance(d, dict)
        d["kept_raters"] = self.kept_raters
        d["rejected_raters"] = self.rejected_raters
        return d


def _plain(x: Any) -> Any:
    """NaN/inf → None, numpy scalars → Python, tuples → lists: what `json.dumps(..., allow_nan=False)` accepts."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    return x
