"""Simulated raters with known truth, for testing the statistics and for answering a real study through the API.

The generative model is the one the MLE assumes (Li & Bampis 2017), then rounded and clipped to the 1–5 ACR
scale: an honest rater i perceives stimulus j as p_ij = x_j + b_i + v_i·ε (b_i ~ N(0, bias_sd), v_i ~ U(noise),
ε ~ N(0, 1)) and scores clip(round(p_ij), 1, 5); they prefer the side perceived better by more than `same_margin`,
else "same"; they answer gold items right with probability `gold_accuracy`. Spammers answer uniformly at random;
"always 5" raters score 5/5 and answer "same".

True quality: an asset's original has x = 1.5 + 2.5·(q − 20)/80 + N(0, 0.2) for input quality q (estimated-VMAF
scale); a variant adds `gain_below[v]` when q < `threshold`, else `gain_above[v]` (the planted gate threshold);
x is clipped to [1, 5]. Because of rounding and clipping, the MOS estimates the population-expected *score*
(`Truth.expected_score`), not x itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import norm

from framefleet.evaluate.screening import PREFERENCES, Stimulus, Vote

RATER_KINDS = ("honest", "spammer", "always5")
SPAM_FLAGS = ("blur", "ringing", "flicker", "other")


@dataclass(frozen=True)
class SimConfig:
    n_assets: int = 8
    n_raters: int = 20
    variants: tuple[str, ...] = ("original", "bicubic", "espcn")
    baseline: str = "original"
    gain_below: Mapping[str, float] = field(default_factory=lambda: {"bicubic": -0.2, "espcn": -0.5})
    gain_above: Mapping[str, float] = field(default_factory=lambda: {"bicubic": 0.4, "espcn": 1.0})
    threshold: float = 60.0  # the planted gate threshold, on the input-quality scale
    input_quality: tuple[float, float] = (20.0, 100.0)
    bias_sd: float = 0.3
    noise: tuple[float, float] = (0.3, 0.7)
    spammer_share: float = 0.15
    always5_share: float = 0.10
    n_gold: int = 6
    gold_accuracy: float = 0.97
    same_margin: float = 0.3
    rate_share: float = 1.0  # share of the pair items each rater answers
    artifacts: Mapping[str, tuple[str, float]] = field(
        default_factory=lambda: {"bicubic": ("blur", 0.5), "espcn": ("ringing", 0.2)}
    )  # variant -> (flag, probability an honest rater flags it when shown)
    side_flags: bool = False  # flags as "left:blur" instead of "blur" (the rating API takes bare names)


@dataclass(frozen=True)
class Truth:
    config: SimConfig
    stimuli: dict[str, Stimulus]  # what `analyse` takes: pair stimuli and the gold items' traps (variant "trap")
    quality: dict[str, float]  # x_j
    expected_score: dict[str, float]  # E[score] of the honest rater population: the target of the MOS
    bias: dict[str, float]
    noise: dict[str, float]
    kinds: dict[str, str]  # rater -> "honest" | "spammer" | "always5"

    @property
    def spammers(self) -> set[str]:
        return {r for r, k in self.kinds.items() if k == "spammer"}

    @property
    def always5(self) -> set[str]:
        return {r for r, k in self.kinds.items() if k == "always5"}

    @property
    def honest(self) -> set[str]:
        return {r for r, k in self.kinds.items() if k == "honest"}

    def variant_expected(self, variant: str) -> float:
        """Mean over the study's assets of the expected score: the target of a variant's MOS for these assets."""
        return float(np.mean([e for s, e in self.expected_score.items() if self.stimuli[s].variant == variant]))

    def variant_order(self) -> list[str]:
        """The study's variants, worst to best by true quality."""
        return sorted(self.config.variants, key=self.variant_expected)


def expected_score(x: float | np.ndarray[Any, Any], config: SimConfig) -> np.ndarray[Any, np.dtype[np.float64]]:
    """E[clip(round(x + b + v·ε))] over the honest population: b + v·ε ~ N(0, bias_sd² + v²) given v, and
    score ≥ k + 1 iff p ≥ k + 0.5; averaged over a midpoint grid of v ~ U(noise)."""
    xs = np.atleast_1d(np.asarray(x, dtype=float))[:, None, None]
    lo, hi = config.noise
    v = lo + (hi - lo) * (np.arange(64) + 0.5) / 64
    s = np.sqrt(config.bias_sd**2 + v**2)[None, :, None]
    k = np.arange(1, 5)[None, None, :]
    return np.asarray(1.0 + norm.cdf((xs - k - 0.5) / s).sum(-1).mean(-1), dtype=float)


def true_quality(config: SimConfig, base: float, input_quality: float, variant: str) -> float:
    gain = 0.0
    if variant != config.baseline:
        table = config.gain_above if input_quality >= config.threshold else config.gain_below
        gain = table.get(variant, 0.0)
    return float(np.clip(base + gain, 1.0, 5.0))


def draw_assets(
    config: SimConfig, rng: np.random.Generator, n: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(input quality, base quality of the original) of n assets."""
    iq = rng.uniform(*config.input_quality, size=n)
    lo = config.input_quality[0]
    base = 1.5 + 2.5 * (iq - lo) / (config.input_quality[1] - lo) + rng.normal(0, 0.2, size=n)
    return iq, base


def population_variant_score(config: SimConfig, variant: str, n: int = 20000, seed: int = 12345) -> float:
    """The expected score of a variant over the population of assets and raters (target of the two-way CI)."""
    iq, base = draw_assets(config, np.random.default_rng(seed), n)
    xs = np.array([true_quality(config, b, q, variant) for b, q in zip(base, iq, strict=True)])
    return float(expected_score(xs, config).mean())


@dataclass
class SimulatedRater:
    """One rater; `answer` gives what they would POST for an item, from the truth table `quality`."""

    id: str
    kind: str  # "honest" | "spammer" | "always5"
    bias: float
    noise: float
    quality: Mapping[str, float]  # stimulus id -> x_j
    flags: Mapping[str, tuple[str, float]]  # stimulus id -> (artifact flag, probability) for honest raters
    config: SimConfig
    rng: np.random.Generator

    def answer(self, left: str, right: str, kind: str = "pair", expected: str | None = None) -> dict[str, Any]:
        """{"left_score", "right_score", "preference", "artifacts"} for the item showing `left` and `right`."""
        rng = self.rng
        if self.kind == "always5":
            return {"left_score": 5, "right_score": 5, "preference": "same", "artifacts": []}
        if self.kind == "spammer":
            flags = [f for f in SPAM_FLAGS if rng.random() < 0.05]
            ls, rs = (int(x) for x in rng.integers(1, 6, size=2))
            return {"left_score": ls, "right_score": rs, "preference": str(rng.choice(PREFERENCES)), "artifacts": flags}
        pl, pr = (self.quality[s] + self.bias + self.noise * rng.normal() for s in (left, right))
        d = pl - pr
        pref = "same" if abs(d) < self.config.same_margin else ("left" if d > 0 else "right")
        if kind != "pair" and expected is not None:
            pref = (
                expected
                if rng.random() < self.config.gold_accuracy
                else str(rng.choice([p for p in PREFERENCES if p != expected]))
            )
        artifacts = []
        for side, sid in (("left", left), ("right", right)):
            flag, p = self.flags.get(sid, ("", 0.0))
            if flag and rng.random() < p:
                artifacts.append(f"{side}:{flag}" if self.config.side_flags else flag)
        return {
            "left_score": int(np.clip(np.round(pl), 1, 5)),
            "right_score": int(np.clip(np.round(pr), 1, 5)),
            "preference": pref,
            "artifacts": sorted(set(artifacts)),
        }


def make_raters(
    quality: Mapping[str, float], flags: Mapping[str, tuple[str, float]], config: SimConfig, seed: int = 0
) -> list[SimulatedRater]:
    """`config.n_raters` raters, the first shares spammers and "always 5", the rest honest (ids r00, r01, …)."""
    rng = np.random.default_rng([seed, 7])
    n_spam = round(config.spammer_share * config.n_raters)
    n_five = round(config.always5_share * config.n_raters)
    raters = []
    for i in range(config.n_raters):
        kind = "spammer" if i < n_spam else "always5" if i < n_spam + n_five else "honest"
        bias = float(rng.normal(0, config.bias_sd)) if kind == "honest" else 0.0
        noise = float(rng.uniform(*config.noise)) if kind == "honest" else 0.0
        child = np.random.default_rng([seed, 8, i])
        raters.append(SimulatedRater(f"r{i:02d}", kind, bias, noise, quality, flags, config, child))
    return raters


def simulate_votes(config: SimConfig | None = None, seed: int = 0) -> tuple[list[Vote], Truth]:
    """A whole study: assets × variants as stimuli, every pair of variants per asset as items (sides random),
    `n_gold` gold items (an asset's baseline against an obvious trap), answered by `make_raters`' raters."""
    config = config or SimConfig()
    rng = np.random.default_rng([seed, 1])
    iq, base = draw_assets(config, rng, config.n_assets)
    stimuli: dict[str, Stimulus] = {}
    quality: dict[str, float] = {}
    for a in range(config.n_assets):
        asset = f"a{a:02d}"
        for v in (*config.variants, "trap"):
            x = 1.0 if v == "trap" else true_quality(config, base[a], iq[a], v)
            metrics = {"vmaf": 20 * x + rng.normal(0, 4), "psnr": 24 + 3 * x + rng.normal(0, 1.5)}
            stimuli[f"{asset}/{v}"] = Stimulus(f"{asset}/{v}", asset, v, metrics, float(iq[a]))
            quality[f"{asset}/{v}"] = x
    flags = {s: config.artifacts[st.variant] for s, st in stimuli.items() if st.variant in config.artifacts}
    raters = make_raters(quality, flags, config, seed)
    pairs = [
        (f"a{a:02d}/{u}", f"a{a:02d}/{w}")
        for a in range(config.n_assets)
        for u, w in itertools.combinations(config.variants, 2)
    ]
    golds = [
        (f"a{g % config.n_assets:02d}/{config.baseline}", f"a{g % config.n_assets:02d}/trap")
        for g in range(config.n_gold)
    ]
    votes: list[Vote] = []
    for r in raters:
        take = max(1, round(config.rate_share * len(pairs)))
        chosen = [pairs[i] for i in sorted(rng.choice(len(pairs), size=take, replace=False))]
        items = [("pair", p) for p in chosen] + [("gold", g) for g in golds]
        for n, (kind, (good, other)) in enumerate(items):
            swap = rng.random() < 0.5
            left, right = (other, good) if swap else (good, other)
            expected = ("right" if swap else "left") if kind == "gold" else None
            ans = r.answer(left, right, kind, expected)
            item = f"{kind}-{n}-{left}-{right}"
            votes.append(Vote(r.id, item, left, right, ans["left_score"], ans["right_score"], ans["preference"],
                              tuple(ans["artifacts"]), kind, expected))  # fmt: skip
    exp = expected_score(np.array(list(quality.values())), config)
    truth = Truth(
        config=config,
        stimuli=stimuli,
        quality={s: x for s, x in quality.items() if stimuli[s].variant != "trap"},
        expected_score={s: float(e) for (s, st), e in zip(stimuli.items(), exp, strict=True) if st.variant != "trap"},
        bias={r.id: r.bias for r in raters},
        noise={r.id: r.noise for r in raters},
        kinds={r.id: r.kind for r in raters},
    )
    return votes, truth
