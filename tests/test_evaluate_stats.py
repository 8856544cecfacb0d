"""The statistics of crowd studies (issue 16), checked against simulated raters with known truth."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from framefleet.errors import InputError
from framefleet.evaluate.plots import plot_results
from framefleet.evaluate.screening import screen_raters
from framefleet.evaluate.simulate import SimConfig, population_variant_score, simulate_votes
from framefleet.evaluate.stats import Stimulus, Vote, analyse, mos_table, variant_mos

# constant gains: the variants' true order does not depend on which assets were drawn
RANKED = SimConfig(
    n_assets=8,
    n_raters=20,
    variants=("original", "blurry", "bicubic", "espcn"),
    gain_below={"blurry": -0.7, "bicubic": 0.35, "espcn": 0.8},
    gain_above={"blurry": -0.7, "bicubic": 0.35, "espcn": 0.8},
)


@pytest.fixture(scope="module")
def ranked():
    votes, truth = simulate_votes(RANKED, seed=3)
    return votes, truth, analyse(votes, truth.stimuli, n_boot=400, seed=3)


def test_recovers_the_true_ranking_by_mos_mle_and_bradley_terry(ranked) -> None:
    _votes, truth, res = ranked
    order = truth.variant_order()
    assert order == ["blurry", "original", "bicubic", "espcn"]
    by_mos = sorted((v.variant for v in res.variants), key=lambda n: res.variant(n).mos)
    by_mle = sorted((v.variant for v in res.variants), key=lambda n: res.variant(n).mle)
    by_bt = sorted((v.variant for v in res.variants), key=lambda n: res.variant(n).bradley_terry)
    assert by_mos == order and by_mle == order and by_bt == order
    tau = sps.kendalltau([truth.variant_expected(n) for n in order], [res.variant(n).mos for n in order]).statistic
    assert tau == pytest.approx(1.0)
    for v in res.variants:  # the study's own targets inside the variant CIs
        assert v.ci_low <= truth.variant_expected(v.variant) <= v.ci_high, v


def test_flags_spammers_and_always5_raters_with_reasons() -> None:
    honest = flagged_honest = 0
    for seed in range(4):
        votes, truth = simulate_votes(SimConfig(n_raters=20), seed=seed)
        screens = {s.rater: s for s in screen_raters(votes)}
        assert truth.spammers and truth.always5
        for r in truth.spammers | truth.always5:
            assert not screens[r].kept and screens[r].reasons
        for r in truth.always5:
            assert any("near-zero score variance" in x for x in screens[r].reasons)
        honest += len(truth.honest)
        flagged_honest += sum(not screens[r].kept for r in truth.honest)
    assert flagged_honest / honest <= 0.08


def test_outlier_rule_alone_catches_spammers_without_gold_items() -> None:
    votes, truth = simulate_votes(SimConfig(n_raters=20, n_gold=0, spammer_share=0.2), seed=5)
    screens = {s.rater: s for s in screen_raters(votes)}
    for r in truth.spammers:
        assert not screens[r].kept
        assert any("outlier" in x for x in screens[r].reasons), screens[r]
    assert sum(not screens[r].kept for r in truth.honest) <= 1


def test_bradley_terry_intervals_separate_the_best_from_the_worst(ranked) -> None:
    """Rater-bootstrap percentile intervals: the truly best variant's interval lies above the truly worst's, each
    point estimate lies inside its own interval, and the reported settings say how the interval was made."""
    _votes, truth, res = ranked
    order = truth.variant_order()
    worst, best = res.variant(order[0]), res.variant(order[-1])
    assert best.bt_ci_low is not None and worst.bt_ci_high is not None
    assert best.bt_ci_low > worst.bt_ci_high, (best, worst)
    for v in res.variants:
        assert v.bt_ci_low is not None and v.bt_ci_high is not None
        assert v.bt_ci_low <= v.bradley_terry <= v.bt_ci_high, v
        assert v.bt_ci_high - v.bt_ci_low < 1.0  # 15 kept raters × 24 pairs: a usable interval, not the real line
    assert "bootstrap over" in res.settings["bradley_terry"]
    d = res.to_dict()["variants"][0]
    assert {"bradley_terry", "bt_ci_low", "bt_ci_high"} <= set(d)


def test_bradley_terry_dense_fit_equals_choix_on_the_vote_list(ranked) -> None:
    """The matrix fit (what the bootstrap refits) is the fit of the vote list: decisive votes twice, "same" once
    each way."""
    import choix

    votes, truth, res = ranked
    names = [v.variant for v in res.variants]
    vi, kept, data = {n: k for k, n in enumerate(names)}, set(res.kept_raters), []
    for v in votes:
        if v.kind == "pair" and v.rater in kept:
            a, b = vi[truth.stimuli[v.left].variant], vi[truth.stimuli[v.right].variant]
            data += [(a, b), (b, a)] if v.preference == "same" else [(a, b) if v.preference == "left" else (b, a)] * 2
    params = choix.ilsr_pairwise(len(names), data, alpha=0.01)
    params -= params.mean()
    assert [res.variant(n).bradley_terry for n in names] == pytest.approx(list(params), abs=1e-6)


def test_bradley_terry_without_enough_raters_has_no_interval() -> None:
    ids = ["a/original", "a/espcn"]
    votes = [Vote("r1", f"i{k}", ids[0], ids[1], 3, 4, "right") for k in range(3)]
    res = analyse(votes, _stim(ids), n_boot=200)
    assert res.variant("espcn").bradley_terry > 0
    assert res.variant("espcn").bt_ci_low is None and res.variant("espcn").bt_ci_high is None


def test_gold_and_trap_scores_never_enter_the_mos(ranked) -> None:
    votes, _truth, res = ranked
    assert all(s.variant != "trap" for s in res.stimuli)
    kept = set(res.kept_raters)
    target = res.stimuli[0]
    scores = [
        sc
        for v in votes
        if v.kind == "pair" and v.rater in kept
        for sid, sc in ((v.left, v.left_score), (v.right, v.right_score))
        if sid == target.id
    ]
    assert target.mos == pytest.approx(np.mean(scores)) and target.n_scores == len(scores)


def test_bootstrap_ci_coverage_near_nominal_over_many_seeds() -> None:
    """Measured (150 seeds, 6 assets × 3 variants, 16 raters of whom 4 bad): per-stimulus 95 % CIs (raters
    resampled, expanded percentile) cover the population-expected score 0.932 of 2700 times; per-variant
    two-way CIs cover the asset-population target 0.958 of 450 times."""
    cfg = SimConfig(n_assets=6, n_raters=16)
    targets = {v: population_variant_score(cfg, v) for v in cfg.variants}
    hits, vhits = [], []
    for seed in range(150):
        votes, truth = simulate_votes(cfg, seed=seed)
        kept = {s.rater for s in screen_raters(votes) if s.kept}
        m = mos_table(votes, truth.stimuli, kept, n_boot=500, seed=seed)
        hits += [m.ci[j, 0] <= truth.expected_score[s] <= m.ci[j, 1] for j, s in enumerate(m.table.stimuli)]
        for v in cfg.variants:
            _mos, lo, hi, _n = variant_mos(m, truth.stimuli, v)
            vhits.append(lo <= targets[v] <= hi)
    assert len(hits) == 150 * 18
    assert 0.90 <= np.mean(hits) <= 0.98, np.mean(hits)
    assert 0.90 <= np.mean(vhits) <= 0.99, np.mean(vhits)


def test_mle_recovers_rater_biases_and_quality(ranked) -> None:
    _votes, truth, res = ranked
    assert {m.rater for m in res.rater_model} == set(res.kept_raters)
    bias = {m.rater: m.bias for m in res.rater_model}
    raters = sorted(bias)
    assert np.corrcoef([bias[r] for r in raters], [truth.bias[r] for r in raters])[0, 1] > 0.9
    noise = {m.rater: m.inconsistency for m in res.rater_model}
    assert np.corrcoef([noise[r] for r in raters], [truth.noise[r] for r in raters])[0, 1] > 0.5
    mle = [s.mle for s in res.stimuli]
    assert np.corrcoef(mle, [truth.quality[s.id] for s in res.stimuli])[0, 1] > 0.95
    assert all(s.mle_ci_low < s.mle < s.mle_ci_high for s in res.stimuli)


def _stim(ids: list[str], metric: list[float] | None = None) -> dict[str, Stimulus]:
    return {
        s: Stimulus(s, s.split("/")[0], s.split("/")[1], {} if metric is None else {"vmaf": metric[n]}, None)
        for n, s in enumerate(ids)
    }


def test_correlations_match_scipy_on_a_known_case() -> None:
    ids = [f"a{n}/v{n % 2}" for n in range(6)]
    true_mos = [1.0, 2.5, 2.0, 4.0, 3.5, 5.0]  # three raters, each stimulus scored round(mos ± 0/1)
    metric = [10.0, 31.0, 20.0, 70.0, 80.0, 95.0]
    votes = []
    for r, off in (("x", 0), ("y", 1), ("z", -1)):
        for n, s in enumerate(ids):
            sc = int(np.clip(round(true_mos[n] + off * 0.5), 1, 5))
            votes.append(Vote(r, f"i{n}", s, s, sc, sc, "same"))
    res = analyse(votes, _stim(ids, metric), n_boot=200)
    mos = {s.id: s.mos for s in res.stimuli}
    y = [mos[s] for s in ids]
    got = next(c for c in res.correlations if c.metric == "vmaf" and c.target == "mos")
    assert got.n == 6
    assert got.plcc == pytest.approx(sps.pearsonr(metric, y).statistic)
    assert got.srocc == pytest.approx(sps.spearmanr(metric, y).statistic)
    assert got.krocc == pytest.approx(sps.kendalltau(metric, y).statistic)
    assert got.srocc == pytest.approx(0.9428571, abs=1e-6)  # one swapped pair of ranks (2 and 3) of 6


def test_preference_matrix_counts_same_as_half() -> None:
    ids = ["a/original", "a/espcn"]
    votes = [Vote(f"r{k}", "i", ids[0], ids[1], 3, 4, p) for k, p in enumerate(["right", "right", "right", "same"])]
    votes.append(Vote("r9", "i", ids[1], ids[0], 4, 3, "left"))  # sides swapped: still espcn preferred
    res = analyse(votes, _stim(ids), n_boot=200)
    p = res.preferences
    e, o = p.variants.index("espcn"), p.variants.index("original")
    assert p.count[e][o] == 5 and p.wins[e][o] == 4 and p.ties[e][o] == 1
    assert p.share[e][o] == pytest.approx(4.5 / 5) and p.share[o][e] == pytest.approx(0.5 / 5)
    assert res.variant("espcn").bradley_terry > res.variant("original").bradley_terry


@pytest.mark.parametrize(("planted", "gate", "word"), [(60.0, 40.0, "raise"), (40.0, 40.0, "agrees")])
def test_gain_by_bucket_finds_the_planted_threshold(planted: float, gate: float, word: str) -> None:
    cfg = SimConfig(n_assets=20, n_raters=16, threshold=planted, spammer_share=0.1, always5_share=0.05)
    votes, truth = simulate_votes(cfg, seed=11)
    res = analyse(votes, truth.stimuli, gate_threshold=gate, n_boot=400, seed=11)
    espcn = next(g for g in res.gains if g.variant == "espcn")
    assert espcn.suggested_threshold == planted, espcn
    assert word in espcn.verdict and espcn.gate_threshold == gate
    below = [b for b in espcn.buckets if b.n_assets and b.high <= planted]
    assert below and all(b.ci_high is not None and b.ci_high < 0 for b in below)  # espcn hurts poor inputs


def test_artifact_rates_per_variant() -> None:
    votes, truth = simulate_votes(replace(SimConfig(n_raters=16), side_flags=True), seed=2)
    res = analyse(votes, truth.stimuli, n_boot=200)
    assert res.variant("bicubic").artifact_rates["blur"] == pytest.approx(0.5, abs=0.08)
    assert res.variant("espcn").artifact_rates["ringing"] == pytest.approx(0.2, abs=0.06)
    assert res.variant("original").artifact_rates.get("blur", 0.0) < 0.05


def test_to_dict_is_json_and_plots_are_written(ranked, tmp_path: Path) -> None:
    _votes, _truth, res = ranked
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert d["baseline"] == "original" and len(d["variants"]) == 4 and d["rejected_raters"]
    assert {r["rater"] for r in d["raters"] if not r["kept"]} == set(d["rejected_raters"])
    paths = plot_results(res, tmp_path)
    names = {p.name for p in paths}
    assert {"mos.png", "bradley-terry.png", "preferences.png", "metric-vmaf.png", "gain.png"} <= names
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


def test_simulated_rater_answers() -> None:
    from framefleet.evaluate.simulate import make_raters

    q = {"a/good": 4.5, "a/bad": 1.2}
    raters = make_raters(q, {}, SimConfig(n_raters=10, spammer_share=0.0, always5_share=0.1), seed=1)
    five, honest = raters[0], raters[1]
    assert five.kind == "always5" and five.answer("a/good", "a/bad")["left_score"] == 5
    answers = [honest.answer("a/bad", "a/good", "gold", "right") for _ in range(200)]
    assert 0.9 <= np.mean([a["preference"] == "right" for a in answers]) < 1.0
    assert np.mean([a["right_score"] for a in answers]) > np.mean([a["left_score"] for a in answers]) + 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"preference": "better"}, "unknown preference 'better'"),
        ({"left_score": 6}, "left score 6 is outside the ACR scale 1–5"),
        ({"right_score": 0}, "right score 0 is outside"),
        ({"right": "a/nope"}, "right stimulus 'a/nope' is not among"),
        ({"kind": "gold"}, "a gold item needs `expected`"),
        ({"kind": "bonus"}, "unknown item kind 'bonus'"),
    ],
)
def test_bad_votes_are_input_errors(change: dict[str, object], message: str) -> None:
    ids = ["a/original", "a/espcn"]
    good = Vote("r1", "i1", ids[0], ids[1], 3, 4, "right")
    with pytest.raises(InputError, match=message) as err:
        analyse([good, replace(good, **change)], _stim(ids), n_boot=200)  # type: ignore[arg-type]
    assert "vote 1 (rater 'r1', item 'i1')" in err.value.message


def test_no_votes_and_tiny_bootstrap_are_input_errors() -> None:
    ids = ["a/original", "a/espcn"]
    with pytest.raises(InputError, match="no votes"):
        analyse([], _stim(ids))
    with pytest.raises(InputError, match="n_boot 5"):
        analyse([Vote("r1", "i1", ids[0], ids[1], 3, 4, "right")], _stim(ids), n_boot=5)
