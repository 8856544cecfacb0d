"""The shipped live model (framefleet/models/live/weights): within its size budget, the ONNX graph is the
safetensors net, at least six looks, and on a held-out photograph each prompt moves the camera image towards
its own look and lands closer to its own teacher than to any other shipped look's teacher — including a
phrasing never trained on — and the empty prompt passes frames through."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from framefleet.live.engine import WEIGHTS_DIR, LiveEngine
from framefleet.media.samples import read_photo
from framefleet.models.live import data, looks
from framefleet.models.live.net import MAX_WEIGHT_BYTES, LiveNet, step
from framefleet.quality.fullref import psnr

SHIPPED = WEIGHTS_DIR / "live.json"
pytestmark = pytest.mark.skipif(not (WEIGHTS_DIR / "live.onnx").is_file(), reason="no shipped live model")
SHIPPED_LOOKS = list(json.loads(SHIPPED.read_text())["looks"]) if SHIPPED.is_file() else []


@pytest.fixture(scope="module")
def engine() -> LiveEngine:
    return LiveEngine.load(threads=1)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    photo = read_photo(data.HOLDOUT_PHOTOS[0])
    h, w = photo.shape[:2]
    s = min(h, w)
    return np.ascontiguousarray(cv2.resize(photo[:s, :s], (192, 192), interpolation=cv2.INTER_AREA))


def _look_after(engine: LiveEngine, frame: np.ndarray, prompt: str, steps: int = 3) -> np.ndarray:
    session = engine.session(prompt)
    for _ in range(steps):  # a still camera: a few frames settle the history
        out, _ = session.step(frame)
    return out


def test_weights_fit_the_budget_and_onnx_is_the_torch_net(engine: LiveEngine, frame: np.ndarray) -> None:
    info = json.loads(SHIPPED.read_text())
    files = ["live.onnx", "live.json", "live.safetensors"]
    assert sum((WEIGHTS_DIR / f).stat().st_size for f in files) <= MAX_WEIGHT_BYTES
    cfg = info["config"]
    net = LiveNet(**{**cfg, "blocks": tuple(cfg["blocks"])}).eval()
    net.load_state_dict(load_file(str(WEIGHTS_DIR / "live.safetensors")))
    cond = engine.encode("pencil sketch")
    torch.set_num_threads(1)
    want, _ = step(net, None, frame, cond)
    got = _look_after(engine, frame, "pencil sketch", steps=1)
    assert np.abs(want.astype(int) - got.astype(int)).max() <= 2
    assert len(SHIPPED_LOOKS) >= 6 and set(SHIPPED_LOOKS) <= set(looks.LOOKS)


@pytest.mark.parametrize("name", SHIPPED_LOOKS)
def test_each_prompt_reaches_its_own_look_on_a_held_out_photo(engine: LiveEngine, frame: np.ndarray, name: str) -> None:
    teachers = {n: looks.apply(n, frame) for n in SHIPPED_LOOKS}
    for prompt in (looks.LOOKS[name].prompt, looks.LOOKS[name].heldout[0]):
        out = _look_after(engine, frame, prompt)
        scores = {n: psnr(t, out) for n, t in teachers.items()}
        assert max(scores, key=lambda n: scores[n]) == name, (prompt, sorted(scores.items(), key=lambda kv: -kv[1]))
        assert scores[name] > psnr(teachers[name], frame), (prompt, "no closer to the look than the camera image")


def test_empty_prompt_passes_through(engine: LiveEngine, frame: np.ndarray) -> None:
    assert psnr(frame, _look_after(engine, frame, "")) > 30.0
