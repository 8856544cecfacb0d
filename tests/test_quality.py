"""Quality metrics (libvmaf), the no-reference estimate, the gate, the delivery rule, interpolation."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from framefleet.errors import InputError
from framefleet.media import encode_frames, iter_frames, sample_path
from framefleet.media.encode import EncodeSettings
from framefleet.models.interpolate import double_rate, load_interpolator
from framefleet.quality import (
    DeliveryRule,
    GateInput,
    GateThresholds,
    choose_variant,
    decide,
    estimate_quality,
    full_reference,
    psnr,
)
from framefleet.quality.noref import _model

from conftest import one_json, run_cli


def carphone_frames(n: int = 30) -> list[np.ndarray]:
    return [f for _, f in zip(range(n), iter_frames(sample_path("carphone")), strict=False)]


def test_full_reference_orders_distortions(tmp_path: Path) -> None:
    ref = sample_path("carphone")
    same = full_reference(ref, ref)
    assert same.psnr >= 59 and same.ssim > 0.999 and same.vmaf > 95 and same.frames == 120
    bad = tmp_path / "crf45.mp4"
    encode_frames(list(iter_frames(ref)), bad, fps=30000 / 1001, settings=EncodeSettings(crf=45))
    worse = full_reference(ref, bad)
    assert worse.psnr < same.psnr - 20 and worse.ssim < same.ssim and worse.vmaf < same.vmaf - 20


def test_full_reference_refuses_mismatched_frame_counts(tmp_path: Path) -> None:
    short = tmp_path / "short.mp4"
    encode_frames(carphone_frames(30), short, fps=30)
    with pytest.raises(InputError, match=r"has 120 frames but short\.mp4 has 30"):
        full_reference(sample_path("carphone"), short)


def test_quality_cli_json(tmp_path: Path) -> None:
    ref = sample_path("carphone")
    r = run_cli("quality", str(ref), str(ref), "--json")
    assert r.returncode == 0, r.stderr
    d = one_json(r.stdout)
    assert set(d) >= {"psnr", "ssim", "vmaf"} and d["vmaf"] > 95
    r = run_cli("quality", str(ref), str(tmp_path / "nope.mp4"), "--json")
    assert r.returncode == 2 and "nope.mp4" in r.stderr


def test_psnr() -> None:
    a = np.zeros((4, 4, 3), np.uint8)
    assert psnr(a, a) == float("inf")
    assert psnr(a, a + 1) == pytest.approx(48.13, abs=0.01)


def test_noref_estimate_ranks_degradations() -> None:
    clean = carphone_frames(16)
    blurred = [cv2.GaussianBlur(f, (0, 0), 2.5) for f in clean]
    rng = np.random.default_rng(0)
    noisy = [np.clip(f + rng.normal(0, 12, f.shape), 0, 255).astype(np.uint8) for f in blurred]
    q = [estimate_quality(x).vmaf for x in (clean, blurred, noisy)]
    assert q[0] > q[1] + 10 and q[0] > q[2] + 10, q
    assert all(0 <= v <= 100 for v in q)


def test_noref_ships_its_held_out_correlation() -> None:
    held = _model()["held_out_srocc"]
    assert set(held) == {"bikes", "bigbuckbunny", "carphone"}
    assert min(v["srocc"] for v in held.values()) > 0.7  # the number the docs quote, kept honest


def test_gate_rules() -> None:
    t = GateThresholds(target_short_side=1080, min_quality=40, max_output_short_side=2160)
    assert decide(GateInput(640, 360, 80, 2), t).rule == "pass"
    assert decide(GateInput(1920, 1080, 80, 2), t).rule == "at_target"
    assert decide(GateInput(1080, 1920, 80, 2), t).rule == "at_target"  # portrait: the short side counts
    poor = decide(GateInput(640, 360, 25.5, 2), t)
    assert (poor.enhance, poor.rule) == (False, "too_poor") and "25.5" in poor.reason
    assert decide(GateInput(1600, 900, 80, 4), GateThresholds(target_short_side=2000)).rule == "too_large"
    assert decide(GateInput(640, 360, 25.5, 2), GateThresholds(min_quality=20)).enhance
    tiny = decide(GateInput(1, 1, 100.0, 2), t)  # the estimate says 100: meaningless at this size
    assert (tiny.enhance, tiny.rule) == (False, "too_small") and "1p" in tiny.reason
    assert decide(GateInput(88, 64, 80, 2), t).rule == "pass"
    assert decide(GateInput(88, 63, 80, 2), t).rule == "too_small"


def test_delivery_rule_and_ab_buckets() -> None:
    good = {"gate": {"enhance": True, "rule": "pass"}, "gain_vmaf": 4.0}
    kw = {"asset_id": "a1", "original_id": "orig", "enhanced_id": "enh"}
    assert choose_variant(viewer_id="v", enhanced_metrics=good, rule=DeliveryRule(), **kw).arm == "enhanced"
    no_gain = {**good, "gain_vmaf": 0.2}
    assert choose_variant(viewer_id="v", enhanced_metrics=no_gain, rule=DeliveryRule(), **kw).arm == "original"
    gated = {"gate": {"enhance": False, "rule": "too_poor"}, "gain_vmaf": 9.0}
    assert choose_variant(viewer_id="v", enhanced_metrics=gated, rule=DeliveryRule(), **kw).variant_id == "orig"
    rule = DeliveryRule(holdout=0.2)
    arms = Counter(
        choose_variant(viewer_id=f"viewer-{i}", enhanced_metrics=good, rule=rule, **kw).arm for i in range(5000)
    )
    assert arms["control"] / 5000 == pytest.approx(0.2, abs=0.02)
    # Stable: the same viewer always lands in the same arm.
    first = [choose_variant(viewer_id=f"viewer-{i}", enhanced_metrics=good, rule=rule, **kw).arm for i in range(50)]
    again = [choose_variant(viewer_id=f"viewer-{i}", enhanced_metrics=good, rule=rule, **kw).arm for i in range(50)]
    assert first == again


def test_dis_interpolation_beats_blending_and_minterpolate() -> None:
    fr = [f for _, f in zip(range(13), iter_frames(sample_path("bikes")), strict=False)]
    scores: dict[str, list[float]] = {"dis": [], "minterpolate": [], "blend": []}
    for i in range(0, 12, 2):
        a, truth, b = fr[i], fr[i + 1], fr[i + 2]
        for name in ("dis", "minterpolate"):
            scores[name].append(psnr(truth, load_interpolator(name).midpoint(a, b)))
        scores["blend"].append(psnr(truth, ((a.astype(np.uint16) + b + 1) // 2).astype(np.uint8)))
    mean = {k: float(np.mean(v)) for k, v in scores.items()}
    assert mean["dis"] > mean["minterpolate"] > mean["blend"], mean


def test_double_rate_counts_and_times() -> None:
    dis = load_interpolator("dis")
    fr = [(f, i / 10) for i, f in enumerate(carphone_frames(5))]
    out = list(double_rate(dis, fr, following=None))
    assert len(out) == 10
    assert [round(t, 3) for _, t in out] == [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45]
    # With the next segment's first frame, the last midpoint is a real interpolation, at the midpoint time.
    nxt = (carphone_frames(6)[5], 0.5)
    tail = list(double_rate(dis, fr, following=nxt))[-1]
    assert tail[1] == pytest.approx(0.45) and not np.array_equal(tail[0], fr[-1][0])
    with pytest.raises(InputError, match="unknown interpolator"):
        load_interpolator("rife")
