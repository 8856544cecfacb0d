"""Per-clip calibration (models/upscale/blend.py): the blend weight, the blended upscaler, and enhance's use of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from framefleet.config import Settings
from framefleet.errors import InputError
from framefleet.media import encode_frames, sample_path
from framefleet.models.upscale import load_upscaler
from framefleet.models.upscale.blend import BlendedUpscaler, fit_blend
from framefleet.quality.degrade import downscale
from framefleet.store import Store
from framefleet.tasks.enhance import EnhanceRequest, enhance

from conftest import run_cli, sample_frames


class Fake:
    """An upscaler that is Lanczos plus a fixed pattern: `detail` times the pattern."""

    name, version, scale = "fake", "1", 2

    def __init__(self, detail: float, seed: int = 0) -> None:
        self.detail, self.rng = detail, np.random.default_rng(seed)
        self.lanczos = load_upscaler("lanczos")

    def params(self) -> dict[str, Any]:
        return {"detail": self.detail}

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        up = self.lanczos(frames).astype(np.float64)  # [N, 2H, 2W, 3]
        noise = self.rng.normal(0, 8, up.shape[:3])[..., None]  # [N, 2H, 2W, 1]: the same on R, G and B
        return np.clip(up + self.detail * noise + 0.5, 0, 255).astype(np.uint8)


def _psnr_y(a: np.ndarray, b: np.ndarray) -> float:
    ya = cv2.cvtColor(np.concatenate(list(a)), cv2.COLOR_RGB2YCrCb)[..., 0].astype(np.float64)
    yb = cv2.cvtColor(np.concatenate(list(b)), cv2.COLOR_RGB2YCrCb)[..., 0].astype(np.float64)
    return float(10 * np.log10(255**2 / np.mean((ya - yb) ** 2)))


def test_noise_gets_no_weight_and_lanczos_itself_changes_nothing() -> None:
    clip = sample_frames(4, None, "carphone")
    noisy = fit_blend(clip, Fake(1.0))
    assert max(noisy.weights) <= 0.05 and noisy.model_gain_db < 0 and noisy.octave_gain_db >= 0
    same = fit_blend(clip, Fake(0.0))  # the "model" is Lanczos: nothing to weigh, the model is kept as it is
    assert same.weights == (1.0, 1.0) and same.octave_gain_db == 0.0


def test_blended_upscaler_ends_are_the_two_upscalers_and_the_middle_is_their_average() -> None:
    low = sample_frames(2, None, "carphone")
    model, lanczos = load_upscaler("ecbsr"), load_upscaler("lanczos")
    m, b = model(low).astype(np.int16), lanczos(low).astype(np.int16)
    assert np.array_equal(BlendedUpscaler(model, (1.0, 1.0))(low), m)
    assert np.array_equal(BlendedUpscaler(model, (0.0, 0.0))(low), b)
    half = BlendedUpscaler(model, (0.5, 0.5))
    assert np.abs(half(low).astype(np.int16) * 2 - (m + b)).max() <= 1  # rounded once, not twice
    assert half.params()["blend"] == {"coarse": 0.5, "fine": 0.5, "sigma": 1.0, "with": "lanczos"}
    assert half.params()["weights"]  # the model's own parameters are kept
    # The bands add up: keeping only the coarse band and only the fine band sum to the whole change (within
    # rounding, away from the pixels each partial result clips at 0 or 255).
    d_coarse = BlendedUpscaler(model, (1.0, 0.0))(low).astype(np.int16) - b
    d_fine = BlendedUpscaler(model, (0.0, 1.0))(low).astype(np.int16) - b
    inner = (m > 16) & (m < 240) & (b > 16) & (b < 240)
    assert np.mean(np.abs(d_coarse + d_fine - (m - b))[inner] <= 1) > 0.999
    assert np.abs(d_fine).mean() > 0.5 and np.abs(d_coarse).mean() > 0.5  # both bands carry part of it
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        BlendedUpscaler(model, (1.5, 1.0))


def test_too_small_frames_are_refused_with_the_way_out() -> None:
    with pytest.raises(InputError, match="--no-calibrate"):
        fit_blend(np.zeros((2, 24, 24, 3), np.uint8), load_upscaler("ecbsr"))


def test_a_sharp_clip_keeps_the_net_and_a_soft_one_is_blended_and_beats_both() -> None:
    """carphone is sharp: the net's fine detail is kept whole. bikes is soft (Lanczos rebuilds its ×½ copy to
    ~43 dB) and the net, trained for sharp truths, loses to Lanczos there; the blend fitted one octave down
    beats both."""
    model = load_upscaler("ecbsr")
    sharp = sample_frames(8, None, "carphone", step=15)
    low = np.stack([downscale(f, "lanczos") for f in sharp])  # [8, h/2, w/2, 3]
    sharp_fit = fit_blend(low, model)
    assert sharp_fit.weights[1] >= 0.9 and sharp_fit.octave_gain_db >= sharp_fit.model_gain_db > 0.5

    soft = sample_frames(8, None, "bikes")
    low = np.stack([downscale(f, "lanczos") for f in soft])
    fit = fit_blend(low, model)
    assert fit.weights[0] < 0.5 and fit.octave_gain_db > fit.model_gain_db
    blended, net, lanczos = (
        _psnr_y(soft, up(low)) for up in (BlendedUpscaler(model, fit.weights), model, load_upscaler("lanczos"))
    )
    assert net < lanczos < blended


def test_enhance_reports_the_weight_and_no_calibrate_runs_the_net_alone(home: Path, tmp_path: Path) -> None:
    settings = Settings.from_env()
    store = Store.open(settings)
    try:
        src = tmp_path / "bikes-short.mp4"  # 20 frames spread over bikes (a soft clip), at its size
        encode_frames(list(sample_frames(20, None, "bikes", step=12)), src, fps=25)
        r = enhance(store, str(src), EnhanceRequest(measure_gain=False, gate=False), settings=settings)
        assert r.variant is not None
        cal = r.variant.metrics["calibration"]
        assert cal["frames"] == 16 and cal["baseline"] == "lanczos" and 0.0 <= cal["coarse"] < cal["fine"] <= 1.0
        blend = r.variant.params["model"]["blend"]
        assert (blend["coarse"], blend["fine"], blend["with"]) == (cal["coarse"], cal["fine"], "lanczos")
        again = enhance(store, str(src), EnhanceRequest(measure_gain=False, gate=False), settings=settings)
        assert again.variant is not None and not again.created and again.variant.id == r.variant.id  # same weights
        plain = enhance(
            store, str(src), EnhanceRequest(measure_gain=False, gate=False, calibrate=False), settings=settings
        )
        assert plain.variant is not None and plain.created and plain.variant.id != r.variant.id
        assert plain.variant.metrics["calibration"] is None and "blend" not in plain.variant.params["model"]
    finally:
        store.close()


def test_cli_prints_the_calibration(home: Path) -> None:
    res = run_cli("enhance", str(sample_path("carphone")), "--no-gate")
    assert res.returncode == 0, res.stderr
    assert "calibrated on the clip:" in res.stdout and "fine changes over Lanczos" in res.stdout
