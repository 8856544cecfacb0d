"""The statistics of a crowd subjective study (pure: votes and stimuli in, `StudyResults` out; no I/O).

`analyse(votes, stimuli)` does, in order:

(a) screening (`screening.py`): gold/trap failures, near-zero variance, robust-z outliers; reasons kept;
(b) MOS per stimulus and per variant from the kept raters' pair scores (gold/trap scores never enter), with
    percentile-bootstrap 95 % CIs. Per stimulus we resample raters (the population the MOS generalises over is
    raters; the clip is fixed). Per variant we resample raters AND assets, independently (a two-way bootstrap of
    the crossed design): a variant's MOS is a claim about videos like these, not only these, and content varies
    more than raters. The two-way bootstrap counts the rater×asset residual twice, so it errs a little wide;
(c) the MLE subjective model of Li & Bampis 2017 (ITU-T P.913 §12.6, P.910 Annex E): u_ij = x_j + b_i + v_i·ε,
    solved by Netflix's `sureal` (MaximumLikelihoodEstimationModelContentOblivious) over the kept raters: the
    clip quality x_j with its standard error, each rater's bias b_i and inconsistency v_i;
(d) Bradley–Terry log-strengths per variant from the preferences (`preference.py`: `choix.ilsr_pairwise_dense`,
    regularised by `BT_ALPHA` so a variant that never wins stays finite), with percentile-bootstrap 95 % intervals
    over raters. "same" counts as half a win for each side: every decisive vote enters twice, every "same" once
    in each direction (the usual ties-as-half-wins convention); and the preference matrix (share preferring row
    over column, "same" as ½, and the counts);
(e) artifact flag rates per variant;
(f) PLCC, SROCC, KROCC (scipy.stats) of each metric in `Stimulus.metrics` against the per-stimulus MOS and the
    MLE quality (VQEG practice, without the logistic fit: n is small);
(g) the MOS gain of each variant over `baseline` per asset, grouped by the asset's `input_quality` — the
    no-reference estimate on the estimated-VMAF scale (0–100) that the enhancement gate (`quality/gate.py`)
    thresholds with `GateThresholds.min_quality` (40.0 today: below it the gate refuses to enhance). The gate
    threshold the data suggests is the lowest bucket edge from which every bucket's gain is significantly > 0
    (bootstrap CI above 0); it is compared with the caller's `gate_threshold`.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import types
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from framefleet.errors import InputError
from framefleet.evaluate.preference import BT_ALPHA, bradley_terry
from framefleet.evaluate.results import (
    Correlation,
    GainBucket,
    GainResult,
    RaterModel,
    StimulusResult,
    StudyResults,
    VariantResult,
)
from framefleet.evaluate.screening import Stimulus, Vote, screen_raters, validate

BUCKET_EDGES = (0.0, 20.0, 40.0, 60.0, 80.0, 100.0)  # input quality on the estimated-VMAF scale
CI = (2.5, 97.5)

__all__ = ["BT_ALPHA", "BUCKET_EDGES", "Stimulus", "StudyResults", "Vote", "analyse", "bradley_terry", "mos_table",
           "screen_raters"]  # fmt: skip

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True)
class ScoreTable:
    """The kept raters' pair scores as matrices: stimulus j × rater i."""

    stimuli: list[str]
    raters: list[str]
    sums: FloatArray  # [S, R] sum of the rater's scores of the stimulus (a stimulus can recur in several pairs)
    counts: FloatArray  # [S, R] how many scores
    raw: list[dict[str, list[float]]]  # per stimulus: {rater: [score, ...]} (sureal's `os`, repeats as a list)


@dataclass(frozen=True)
class MosTable:
    table: ScoreTable
    mos: FloatArray  # [S]
    ci: FloatArray  # [S, 2]
    boot: FloatArray  # [B, S] per-stimulus MOS under resampled raters (NaN: no resampled rater saw it)
    asset_weights: FloatArray  # [B, A] multinomial counts of the resampled assets
    assets: list[str]


def score_table(votes: Sequence[Vote], kept: set[str]) -> ScoreTable:
    cells: dict[tuple[str, str], list[int]] = defaultdict(list)
    for v in votes:
        if v.kind == "pair" and v.rater in kept:
            cells[v.left, v.rater].append(v.left_score)
            cells[v.right, v.rater].append(v.right_score)
    stim = sorted({s for s, _ in cells})
    raters = sorted({r for _, r in cells})
    si = {s: n for n, s in enumerate(stim)}
    ri = {r: n for n, r in enumerate(raters)}
    sums = np.zeros((len(stim), len(raters)))
    counts = np.zeros((len(stim), len(raters)))
    for (s, r), xs in cells.items():
        sums[si[s], ri[r]] = sum(xs)
        counts[si[s], ri[r]] = len(xs)
    raw: list[dict[str, list[float]]] = [{} for _ in stim]
    for (s, r), xs in cells.items():
        raw[si[s]][r] = [float(x) for x in xs]
    return ScoreTable(stim, raters, sums, counts, raw)


def mos_table(
    votes: Sequence[Vote], stimuli: Mapping[str, Stimulus], kept: set[str], *, n_boot: int = 1000, seed: int = 0
) -> MosTable:
    """Per-stimulus MOS and its rater bootstrap; also draws the asset resampling used for variants and gains."""
    t = score_table(votes, kept)
    if not t.stimuli:
        raise InputError("no pair votes from kept raters: nothing to compute a MOS from")
    rng = np.random.default_rng(seed)
    n_r = len(t.raters)
    w = rng.multinomial(n_r, np.full(n_r, 1.0 / n_r), size=n_boot).astype(float)  # [B, R]
    num, den = w @ t.sums.T, w @ t.counts.T  # [B, S]
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = np.where(den > 0, num / den, np.nan)
    mos = t.sums.sum(1) / t.counts.sum(1)
    ci = _percentiles(boot, n=(t.counts > 0).sum(1).tolist())  # n: raters who scored the stimulus
    assets = sorted({stimuli[s].asset for s in t.stimuli})
    n_a = len(assets)
    aw = rng.multinomial(n_a, np.full(n_a, 1.0 / n_a), size=n_boot).astype(float)  # [B, A]
    return MosTable(t, mos, ci, boot, aw, assets)


def _percentiles(boot: FloatArray, n: Sequence[int] | None = None) -> FloatArray:
    """[B, K] replicates → [K, 2] interval, NaN replicates ignored.

    With `n` (the number of resampled units behind column k) the interval is Hesterberg's *expanded* percentile
    interval (Hesterberg 2015, The American Statistician 69(4) §6.2): the tail level α/2 becomes
    Φ(−√(n/(n−1))·t_{n−1, 1−α/2}), which undoes the bootstrap's √((n−1)/n) shrinkage of the spread and its
    normal-for-t quantile. Plain percentiles cover ~0.89 with a dozen raters per clip; expanded ones ~0.95."""
    ks = range(boot.shape[1])
    levels = [CI] * boot.shape[1] if n is None else [_expanded(max(int(k), 2)) for k in n]
    out = np.full((boot.shape[1], 2), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN
        for k, q in zip(ks, levels, strict=True):
            out[k] = np.nanpercentile(boot[:, k], q)
    return out


def _expanded(n: int) -> tuple[float, float]:
    tail = float(sps.norm.cdf(-np.sqrt(n / (n - 1)) * sps.t.ppf(1 - (100 - CI[1] + CI[0]) / 200, n - 1)))
    return 100 * tail, 100 * (1 - tail)


def variant_mos(m: MosTable, stimuli: Mapping[str, Stimulus], variant: str) -> tuple[float, float, float, int]:
    """(MOS, CI low, CI high, n assets) of a variant: mean over assets, two-way bootstrap."""
    ai = {a: n for n, a in enumerate(m.assets)}
    cols = np.full(len(m.assets), -1)
    for j, s in enumerate(m.table.stimuli):
        if stimuli[s].variant == variant:
            cols[ai[stimuli[s].asset]] = j
    have = cols >= 0
    if not have.any():
        return np.nan, np.nan, np.nan, 0
    reps = m.boot[:, cols[have]]  # [B, A_v]
    w = m.asset_weights[:, have] * ~np.isnan(reps)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.nansum(np.nan_to_num(reps) * w, axis=1) / w.sum(1)
    n = min(int(have.sum()), len(m.table.raters))  # the scarcer of the two resampled populations
    lo, hi = _percentiles(means[:, None], n=[n])[0]
    return float(np.mean(m.mos[cols[have]])), float(lo), float(hi), int(have.sum())


def fit_mle(t: ScoreTable, stimuli: Mapping[str, Stimulus]) -> dict[str, Any] | None:
    """sureal's MLE (content-oblivious: u_ij = x_j + b_i + v_i·ε) on the score table; None if too little data."""
    if len(t.raters) < 2 or len(t.stimuli) < 2:
        return None
    from sureal.dataset_reader import RawDatasetReader  # imported here: sureal pulls in pandas and matplotlib
    from sureal.subjective_model import MaximumLikelihoodEstimationModelContentOblivious as Mle

    assets = sorted({stimuli[s].asset for s in t.stimuli})
    cid = {a: n for n, a in enumerate(assets)}  # sureal wants content ids 0..C-1
    ds = types.SimpleNamespace(
        ref_videos=[{"content_id": n, "content_name": a, "path": f"ref/{a}"} for a, n in cid.items()],
        dis_videos=[
            {"content_id": cid[stimuli[s].asset], "asset_id": j, "path": s, "os": t.raw[j]}
            for j, s in enumerate(t.stimuli)
        ],
    )
    # sureal prints every iteration to stdout and divides by zero for raters with one score: keep both quiet.
    # A degenerate design (say, raters who never disagree) drives some v_i to 0 and the solver to NaN: no model.
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            res: dict[str, Any] = Mle(RawDatasetReader(ds)).run_modeling()
    except (ValueError, AssertionError, ZeroDivisionError, FloatingPointError, np.linalg.LinAlgError):
        return None
    if not np.all(np.isfinite(res["quality_scores"])):
        return None
    return res


def artifact_rates(
    votes: Sequence[Vote], stimuli: Mapping[str, Stimulus], kept: set[str]
) -> tuple[dict[str, int], dict[str, dict[str, float]]]:
    """Per variant: times shown, and per flag the share of showings flagged ("left:x"/"right:x" name a side,
    a bare "x" counts against both)."""
    shown: dict[str, int] = defaultdict(int)
    flagged: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for v in votes:
        if v.kind != "pair" or v.rater not in kept:
            continue
        for side, sid in (("left", v.left), ("right", v.right)):
            variant = stimuli[sid].variant
            shown[variant] += 1
            flags = set()
            for f in v.artifacts:
                where, _, name = f.partition(":") if ":" in f else ("", "", f)
                if where in ("", side):
                    flags.add(name)
            for name in flags:
                flagged[variant][name] += 1
    rates = {var: {f: n / shown[var] for f, n in sorted(flagged[var].items())} for var in shown}
    return dict(shown), rates


def correlations(per_stim: Sequence[StimulusResult]) -> list[Correlation]:
    """PLCC, SROCC and KROCC of each metric against MOS and MLE quality, over the stimuli having both."""
    metrics = sorted({k for s in per_stim for k in s.metrics})
    out = []
    for metric in metrics:
        for target in ("mos", "mle"):
            pairs = [(s.metrics.get(metric), s.mos if target == "mos" else s.mle) for s in per_stim]
            xy = np.array([(x, y) for x, y in pairs if x is not None and y is not None], dtype=float).reshape(-1, 2)
            xy = xy[np.isfinite(xy).all(1)]
            n = len(xy)
            if n < 3 or np.ptp(xy[:, 0]) == 0 or np.ptp(xy[:, 1]) == 0:
                out.append(Correlation(metric, target, n, None, None, None))
                continue
            x, y = xy[:, 0], xy[:, 1]
            plcc = float(sps.pearsonr(x, y).statistic)
            srocc = float(sps.spearmanr(x, y).statistic)
            krocc = float(sps.kendalltau(x, y).statistic)
            out.append(Correlation(metric, target, n, plcc, srocc, krocc))
    return out


def gains_by_bucket(
    m: MosTable,
    stimuli: Mapping[str, Stimulus],
    variant: str,
    baseline: str,
    edges: Sequence[float],
    gate_threshold: float | None,
    rng: np.random.Generator,
) -> GainResult:
    """MOS(variant) − MOS(baseline) per asset, grouped by the asset's input quality; CIs resample raters (the
    shared replicates of `m`) and, within each bucket, assets."""
    col = {(stimuli[s].asset, stimuli[s].variant): j for j, s in enumerate(m.table.stimuli)}
    quality = {st.asset: st.input_quality for st in stimuli.values() if st.input_quality is not None}
    assets = [a for a in m.assets if (a, variant) in col and (a, baseline) in col and a in quality]
    point = {a: m.mos[col[a, variant]] - m.mos[col[a, baseline]] for a in assets}
    buckets = []
    for n, (lo, hi) in enumerate(itertools.pairwise(edges)):
        last = n == len(edges) - 2
        members = [a for a in assets if lo <= quality[a] < hi or (last and quality[a] == hi)]
        if not members:
            buckets.append(GainBucket(lo, hi, 0, None, None, None))
            continue
        reps = np.stack([m.boot[:, col[a, variant]] - m.boot[:, col[a, baseline]] for a in members], axis=1)
        pick = rng.integers(0, len(members), size=reps.shape)  # [B, n] assets resampled within the bucket
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            means = np.nanmean(np.take_along_axis(reps, pick, axis=1), axis=1)
        ci_lo, ci_hi = _percentiles(means[:, None])[0]
        buckets.append(
            GainBucket(lo, hi, len(members), float(np.mean([point[a] for a in members])), float(ci_lo), float(ci_hi))
        )
    suggested = suggest_threshold(buckets)
    return GainResult(variant, baseline, buckets, suggested, gate_threshold, _verdict(suggested, gate_threshold))


def suggest_threshold(buckets: Sequence[GainBucket]) -> float | None:
    """The lowest bucket edge from which every bucket holding assets has a gain CI entirely above 0."""
    suggested = None
    for b in sorted((b for b in buckets if b.n_assets), key=lambda b: b.low, reverse=True):
        if b.ci_low is None or not b.ci_low > 0:
            break
        suggested = b.low
    return suggested


def _verdict(suggested: float | None, gate: float | None) -> str:
    if suggested is None:
        return "no input-quality bucket shows a gain significantly above 0: the data does not support enhancing"
    if gate is None:
        return f"the gain is significantly above 0 from input quality {suggested:g} up"
    if gate < suggested:
        return (
            f"the gate enhances from {gate:g}, but the gain is significant only from {suggested:g}: "
            f"raise min_quality to {suggested:g} (bucket resolution)"
        )
    if gate > suggested:
        return (
            f"the gain is significant from {suggested:g}, but the gate enhances only from {gate:g}: "
            f"min_quality could be lowered to {suggested:g} (bucket resolution)"
        )
    return f"the data agrees with the gate: the gain is significant from {gate:g} up"


def analyse(
    votes: Sequence[Vote],
    stimuli: Mapping[str, Stimulus],
    *,
    baseline: str = "original",
    gate_threshold: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    bucket_edges: Sequence[float] = BUCKET_EDGES,
) -> StudyResults:
    """Everything of the module docstring, (a) to (g). Raises InputError on votes that cannot be analysed."""
    validate(votes, stimuli)
    if n_boot < 100:
        raise InputError(f"n_boot {n_boot} is too small for a 95 % percentile interval: use at least 100")
    if len(bucket_edges) < 2 or list(bucket_edges) != sorted(bucket_edges):
        raise InputError(f"bucket_edges {list(bucket_edges)} must be at least two increasing numbers")
    screens = screen_raters(votes)
    kept = {r.rater for r in screens if r.kept}
    m = mos_table(votes, stimuli, kept, n_boot=n_boot, seed=seed)
    t = m.table
    mle = fit_mle(t, stimuli)
    mle_x = np.asarray(mle["quality_scores"], dtype=float) if mle else np.full(len(t.stimuli), np.nan)
    mle_se = np.asarray(mle["quality_scores_std"], dtype=float) if mle else np.full(len(t.stimuli), np.nan)
    per_stim = [
        StimulusResult(
            s,
            stimuli[s].asset,
            stimuli[s].variant,
            int(t.counts[j].sum()),
            float(m.mos[j]),
            float(m.ci[j, 0]),
            float(m.ci[j, 1]),
            _num(mle_x[j]),
            _num(mle_x[j] - 1.96 * mle_se[j]),
            _num(mle_x[j] + 1.96 * mle_se[j]),
            dict(stimuli[s].metrics),
            stimuli[s].input_quality,
        )
        for j, s in enumerate(t.stimuli)
    ]
    names = sorted({stimuli[s].variant for s in t.stimuli}, key=lambda v: (v != baseline, v))
    bt = bradley_terry(votes, stimuli, kept, names, n_boot=n_boot, seed=seed)
    shown, rates = artifact_rates(votes, stimuli, kept)
    variants = []
    for name in names:
        mos, lo, hi, n_assets = variant_mos(m, stimuli, name)
        rows = [j for j, s in enumerate(t.stimuli) if stimuli[s].variant == name]
        variants.append(
            VariantResult(
                name,
                n_assets,
                int(t.counts[rows].sum()),
                mos,
                lo,
                hi,
                _num(np.mean(mle_x[rows])),
                bt.scores.get(name),
                shown.get(name, 0),
                rates.get(name, {}),
                *bt.ci.get(name, (None, None)),
            )
        )
    rng = np.random.default_rng([seed, 1])
    gains = [
        gains_by_bucket(m, stimuli, v, baseline, bucket_edges, gate_threshold, rng)
        for v in names
        if v != baseline and baseline in names
    ]
    return StudyResults(
        baseline=baseline,
        n_votes=len(votes),
        n_pair_votes=sum(v.kind == "pair" for v in votes),
        raters=screens,
        stimuli=per_stim,
        variants=variants,
        rater_model=_rater_model(mle),
        preferences=bt.matrix,
        correlations=correlations(per_stim),
        gains=gains,
        settings={
            "n_boot": n_boot,
            "seed": seed,
            "bucket_edges": list(bucket_edges),
            "gate_threshold": gate_threshold,
            "mle": "sureal MaximumLikelihoodEstimationModelContentOblivious"
            if mle
            else "not fitted (too few raters or stimuli, or a degenerate design)",
            "bradley_terry": f"choix.ilsr_pairwise_dense, alpha={BT_ALPHA}, 'same' = half a win each; 95 % "
            f"percentile bootstrap over {bt.n_raters} kept raters ({bt.n_boot} replicates)",
        },
    )


def _rater_model(mle: dict[str, Any] | None) -> list[RaterModel]:
    if not mle:
        return []
    return [
        RaterModel(r, float(b), _num(bs), float(v), _num(vs))
        for r, b, bs, v, vs in zip(
            mle["observers"],
            mle["observer_bias"],
            mle["observer_bias_std"],
            mle["observer_inconsistency"],
            mle["observer_inconsistency_std"],
            strict=True,
        )
    ]


def _num(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None
