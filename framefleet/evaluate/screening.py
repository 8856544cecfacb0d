"""Vote validation and rater screening for crowd studies (pure: votes in, verdicts out; no I/O).

Three rules, applied in this order, each with the numbers in its reason:

1. **Gold/trap failures** (ITU-T P.808 §6.3 practice: "gold standard" and "trapping" questions): a rater whose
   preference disagrees with the known answer on more than `GOLD_MAX_FAIL_SHARE` of their gold and trap items is
   rejected. A share, not "any failure", so one slip of an honest rater does not cost their session.
2. **Near-zero variance** ("always 5"): the standard deviation of a rater's pair scores is below `MIN_SCORE_SD`.
3. **Outlier** (the |z| ≥ 3.29 rule, two-sided p < 0.001 under normality): for each remaining rater, the spread of
   their residuals u_ij − m_{−i,j} (their score minus the other raters' mean on the same stimulus; the rater's own
   mean offset removed, so a consistent bias — which the MLE models — is not punished) is turned into a robust
   z-score across raters (Iglewicz & Hoaglin 1993: median and 1.4826·MAD, so a fifth of spammers cannot hide by
   inflating the spread). z ≥ 3.29 is rejected. This is our reading of the P.910/P.913 screening; BT.500's β2
   kurtosis test is not used (it needs complete designs; ours are sparse pairs).

Gold and trap votes never enter a MOS: screening is their only use.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from framefleet.errors import InputError

PREFERENCES = ("left", "right", "same")
KINDS = ("pair", "gold", "trap")
SCORE_RANGE = (1, 5)  # the ACR scale of P.910 §6.1 (bad … excellent)

GOLD_MAX_FAIL_SHARE = 0.25  # rejected when more than a quarter of gold/trap answers are wrong
MIN_SCORE_SD = 0.2  # sd of the pair scores below this: "always the same score"
MIN_SCORES = 5  # fewer pair scores than this: variance and outlier rules are not applied
Z_OUTLIER = 3.29  # robust z of the residual spread at or above this: outlier
MAD_SCALE_FLOOR = 0.1  # points on the 1–5 scale: keeps z finite when honest raters are all alike


@dataclass(frozen=True)
class Vote:
    """One answer to one item: two ACR scores, a preference, artifact flags.

    `left`/`right` are stimulus ids ("<asset_id>/<variant>"). An artifact flag "left:blur" or "right:blur" names
    the side; a bare "blur" is counted against both sides. `expected` is the known preference of gold/trap items.
    """

    rater: str
    item: str
    left: str
    right: str
    left_score: int
    right_score: int
    preference: str  # "left" | "right" | "same"
    artifacts: tuple[str, ...] = ()
    kind: str = "pair"  # "pair" | "gold" | "trap"
    expected: str | None = None


@dataclass(frozen=True)
class Stimulus:
    """One video shown in a study: an asset's variant, with any objective metrics measured on it.

    `metrics` may hold "psnr", "ssim", "vmaf" and "noref"; `input_quality` is the no-reference estimate of the
    asset's original input on the estimated-VMAF scale (0–100) that `quality/gate.py` thresholds.
    """

    id: str
    asset: str
    variant: str
    metrics: dict[str, float] = field(default_factory=dict)
    input_quality: float | None = None


@dataclass(frozen=True)
class RaterScreen:
    rater: str
    kept: bool
    reasons: tuple[str, ...]
    n_votes: int
    n_scores: int  # pair scores (two per pair vote)
    n_gold: int
    gold_failures: int
    score_sd: float | None
    outlier_z: float | None  # robust z of the residual spread (None: not tested)


def validate(votes: Sequence[Vote], stimuli: Mapping[str, Stimulus]) -> None:
    """Raise InputError naming the first vote that cannot be analysed, and what is wrong with it."""
    if not votes:
        raise InputError("no votes to analyse: a study needs at least one answered item")
    for key, stim in stimuli.items():
        if key != stim.id:
            raise InputError(f"stimulus mapping key {key!r} differs from its id {stim.id!r}: key them by id")
    lo, hi = SCORE_RANGE
    for n, v in enumerate(votes):
        where = f"vote {n} (rater {v.rater!r}, item {v.item!r})"
        if v.preference not in PREFERENCES:
            raise InputError(f"{where}: unknown preference {v.preference!r}; use one of {', '.join(PREFERENCES)}")
        if v.kind not in KINDS:
            raise InputError(f"{where}: unknown item kind {v.kind!r}; use one of {', '.join(KINDS)}")
        for side, score in (("left", v.left_score), ("right", v.right_score)):
            if isinstance(score, bool) or not isinstance(score, int | np.integer) or not lo <= score <= hi:
                raise InputError(f"{where}: {side} score {score!r} is outside the ACR scale {lo}–{hi} (integers)")
        for side, sid in (("left", v.left), ("right", v.right)):
            if sid not in stimuli:
                raise InputError(f"{where}: {side} stimulus {sid!r} is not among the study's {len(stimuli)} stimuli")
        if v.kind != "pair" and v.expected not in PREFERENCES:
            raise InputError(f"{where}: a {v.kind} item needs `expected` in {', '.join(PREFERENCES)}")


def screen_raters(votes: Sequence[Vote]) -> list[RaterScreen]:
    """Apply the three rules of the module docstring; one RaterScreen per rater, sorted by rater id."""
    by_rater: dict[str, list[Vote]] = defaultdict(list)
    for v in votes:
        by_rater[v.rater].append(v)
    first: dict[str, tuple[list[str], int, int, float | None, int]] = {}
    for rater, vs in by_rater.items():
        reasons: list[str] = []
        gold = [v for v in vs if v.kind != "pair"]
        fails = sum(v.preference != v.expected for v in gold)
        if gold and fails / len(gold) > GOLD_MAX_FAIL_SHARE:
            reasons.append(
                f"gold/trap failures: {fails} of {len(gold)} answered against the known preference "
                f"(limit {GOLD_MAX_FAIL_SHARE:.0%})"
            )
        scores = [s for v in vs if v.kind == "pair" for s in (v.left_score, v.right_score)]
        sd = float(np.std(scores, ddof=1)) if len(scores) >= 2 else None
        if sd is not None and len(scores) >= MIN_SCORES and sd < MIN_SCORE_SD:
            common = max(set(scores), key=scores.count)
            reasons.append(
                f"near-zero score variance: sd {sd:.2f} over {len(scores)} scores (mostly {common}; "
                f"limit {MIN_SCORE_SD})"
            )
        first[rater] = (reasons, len(gold), fails, sd, len(scores))
    candidates = {r for r, (reasons, *_rest) in first.items() if not reasons}
    zs = outlier_z(votes, candidates)
    out = []
    for rater in sorted(first):
        reasons, n_gold, fails, sd, n_scores = first[rater]
        z = zs.get(rater)
        if z is not None and z >= Z_OUTLIER:
            reasons = [*reasons, f"outlier: residual spread robust z = {z:.2f} ≥ {Z_OUTLIER} against the other raters"]
        out.append(
            RaterScreen(rater, not reasons, tuple(reasons), len(by_rater[rater]), n_scores, n_gold, fails, sd, z)
        )
    return out


def outlier_z(votes: Sequence[Vote], raters: set[str]) -> dict[str, float]:
    """Robust z of each rater's residual spread (sd of u_ij − m_{−i,j}) among `raters`; pair votes only."""
    sums: dict[tuple[str, str], float] = defaultdict(float)  # (stimulus, rater) -> sum of scores
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for v in votes:
        if v.kind == "pair" and v.rater in raters:
            for sid, score in ((v.left, v.left_score), (v.right, v.right_score)):
                sums[sid, v.rater] += score
                counts[sid, v.rater] += 1
    tot_sum: dict[str, float] = defaultdict(float)
    tot_n: dict[str, int] = defaultdict(int)
    for (sid, r), total in sums.items():
        tot_sum[sid] += total
        tot_n[sid] += counts[sid, r]
    resid: dict[str, list[float]] = defaultdict(list)
    for v in votes:
        if v.kind != "pair" or v.rater not in raters:
            continue
        for sid, s in ((v.left, v.left_score), (v.right, v.right_score)):
            n_other = tot_n[sid] - counts[sid, v.rater]
            if n_other > 0:  # the others' mean on this stimulus (leave this rater out)
                resid[v.rater].append(s - (tot_sum[sid] - sums[sid, v.rater]) / n_other)
    spread = {r: float(np.std(x, ddof=1)) for r, x in resid.items() if len(x) >= MIN_SCORES}
    if len(spread) < 3:
        return {}
    values = np.array(list(spread.values()))
    med = float(np.median(values))
    scale = max(1.4826 * float(np.median(np.abs(values - med))), MAD_SCALE_FLOOR)
    return {r: (s - med) / scale for r, s in spread.items() if math.isfinite(s)}
