"""Preferences of a crowd study (pure: votes in, numbers out): the preference matrix and Bradley–Terry
log-strengths per variant with percentile-bootstrap 95 % intervals over raters.

"same" counts as half a win for each side: every decisive vote enters twice, every "same" once in each
direction (the usual ties-as-half-wins convention). The comparison matrix C[i, j] (how often i beat j, in those
half-units) is fitted by `choix.ilsr_pairwise_dense` (I-LSR, Maystre & Grossglauser 2015), regularised by
`BT_ALPHA` so a variant that never wins stays finite; the log-strengths are centred to mean 0 over the variants.

The interval resamples *raters* with replacement (a rater's votes stay together: they share the rater's taste
and attention, so votes are not independent) and refits on the replicate's summed matrix; a variant that no
resampled rater compared is left out of that replicate. Plain percentiles (2.5, 97.5) of the replicates.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from framefleet.evaluate.results import PreferenceMatrix
from framefleet.evaluate.screening import Stimulus, Vote

BT_ALPHA = 0.01  # L2 regularisation of the Bradley–Terry fit
BT_CI = (2.5, 97.5)

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True)
class BradleyTerry:
    scores: dict[str, float]  # centred log-strength per variant that took part in a comparison
    ci: dict[str, tuple[float, float]]  # percentile 95 % over resampled raters (absent: fewer than 2 raters)
    n_raters: int  # raters whose comparisons entered the fit
    n_boot: int  # replicates that converged
    matrix: PreferenceMatrix


def comparisons(
    votes: Sequence[Vote], stimuli: Mapping[str, Stimulus], kept: set[str], variants: list[str]
) -> tuple[FloatArray, FloatArray, dict[str, FloatArray]]:
    """(wins, ties, per-rater comparison matrices) over the kept raters' pair votes between different variants.
    wins[i, j]: votes preferring i over j; ties symmetric; comparison C_r = 2·wins_r + ties_r."""
    vi = {v: n for n, v in enumerate(variants)}
    k = len(variants)
    wins = np.zeros((k, k))
    ties = np.zeros((k, k))
    per_rater: dict[str, FloatArray] = {}
    for v in votes:
        if v.kind != "pair" or v.rater not in kept:
            continue
        a, b = vi[stimuli[v.left].variant], vi[stimuli[v.right].variant]
        if a == b:
            continue
        comp = per_rater.setdefault(v.rater, np.zeros((k, k)))
        if v.preference == "same":
            ties[a, b] += 1
            ties[b, a] += 1
            comp[a, b] += 1
            comp[b, a] += 1
        else:
            w, lo = (a, b) if v.preference == "left" else (b, a)
            wins[w, lo] += 1
            comp[w, lo] += 2
    return wins, ties, per_rater


def fit(comp: FloatArray, initial: FloatArray | None = None) -> FloatArray | None:
    """Centred Bradley–Terry log-strengths of a comparison matrix; None when I-LSR does not converge."""
    import choix

    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            params = np.asarray(choix.ilsr_pairwise_dense(comp, alpha=BT_ALPHA, initial_params=initial), dtype=float)
    except (RuntimeError, ValueError, np.linalg.LinAlgError):
        return None
    if not np.all(np.isfinite(params)):
        return None
    centred: FloatArray = params - params.mean()
    return centred


def bootstrap(point: FloatArray, per_rater: Sequence[FloatArray], n_boot: int, seed: int) -> FloatArray:
    """[B, K] refits on rater-resampled comparison matrices (NaN: variant not compared, or no convergence)."""
    comps = np.stack(list(per_rater))  # [R, K, K]
    n_r, k = comps.shape[0], comps.shape[1]
    rng = np.random.default_rng([seed, 2])
    weights = rng.multinomial(n_r, np.full(n_r, 1.0 / n_r), size=n_boot).astype(float)  # [B, R]
    reps = np.einsum("br,rij->bij", weights, comps)
    out = np.full((n_boot, k), np.nan)
    for b in range(n_boot):
        params = fit(reps[b], initial=point)
        if params is not None:
            seen = (reps[b].sum(0) + reps[b].sum(1)) > 0
            out[b] = np.where(seen, params, np.nan)
    return out


def bradley_terry(
    votes: Sequence[Vote],
    stimuli: Mapping[str, Stimulus],
    kept: set[str],
    variants: list[str],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> BradleyTerry:
    """The preference matrix, the Bradley–Terry log-strengths and their rater-bootstrap intervals."""
    wins, ties, per_rater = comparisons(votes, stimuli, kept, variants)
    count = wins + wins.T + ties
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(count > 0, (wins + 0.5 * ties) / count, np.nan)
    matrix = PreferenceMatrix(
        variants,
        [[None if np.isnan(x) else float(x) for x in row] for row in share],
        count.astype(int).tolist(),
        wins.astype(int).tolist(),
        ties.astype(int).tolist(),
    )
    compared = count.sum(1) > 0
    point = fit(2 * wins + ties) if per_rater and len(variants) >= 2 else None
    if point is None:
        return BradleyTerry({}, {}, len(per_rater), 0, matrix)
    scores = {v: float(point[n]) for n, v in enumerate(variants) if compared[n]}
    ci: dict[str, tuple[float, float]] = {}
    n_ok = 0
    if len(per_rater) >= 2:
        boot = bootstrap(point, [per_rater[r] for r in sorted(per_rater)], n_boot, seed)
        n_ok = int(np.isfinite(boot).any(1).sum())
        for n, v in enumerate(variants):
            col = boot[:, n][np.isfinite(boot[:, n])]
            if compared[n] and len(col) >= 2:
                lo, hi = np.percentile(col, BT_CI)
                ci[v] = (float(lo), float(hi))
    return BradleyTerry(scores, ci, len(per_rater), n_ok, matrix)


__all__ = ["BT_ALPHA", "BradleyTerry", "bradley_terry", "comparisons", "fit"]
