"""The live model's building blocks: the looks (teachers), the student net (identity at start, the causal
step, ONNX export matching torch under ONNX Runtime at several sizes), the training data with history
augmentation, and the trainer (20 tiny steps, checkpoint, resume)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from framefleet.models.live import data, looks
from framefleet.models.live.net import (
    MAX_WEIGHT_BYTES,
    LiveNet,
    LiveState,
    OnnxLive,
    export_onnx,
    latency_ms,
    param_count,
    step,
    weight_bytes,
)

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(0)
FRAME = cv2.resize(data.read_photo("chelsea.png"), (96, 64), interpolation=cv2.INTER_AREA)  # [64, 96, 3]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _randomised(net: LiveNet, seed: int = 0) -> LiveNet:
    """Every parameter random (the zero-initialised layers too), so the output depends on every input."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return net.eval()


# -- looks ---------------------------------------------------------------------------------------------


def test_registry_has_named_looks_with_paraphrases() -> None:
    assert len(looks.LOOKS) >= 6
    prompts = [lk.prompt for lk in looks.LOOKS.values()]
    assert len(set(prompts)) == len(prompts)
    for lk in looks.LOOKS.values():
        assert lk.paraphrases[0] == lk.prompt and len(lk.paraphrases) >= 3
        assert lk.heldout and not set(lk.heldout) & set(lk.paraphrases)


@pytest.mark.parametrize("name", list(looks.LOOKS))
def test_look_is_deterministic_rgb_uint8_and_changes_the_frame(name: str) -> None:
    out = looks.apply(name, FRAME)
    assert out.shape == FRAME.shape and out.dtype == np.uint8
    assert np.array_equal(out, looks.apply(name, FRAME))
    assert np.abs(out.astype(int) - FRAME.astype(int)).mean() > 1.0


def test_look_rejects_unknown_names_and_bad_frames() -> None:
    with pytest.raises(KeyError, match="no look named"):
        looks.apply("sepia", FRAME)
    with pytest.raises(ValueError, match="RGB uint8"):
        looks.apply("cartoon", FRAME.astype(np.float32))


def test_blend_and_flicker() -> None:
    a, b = looks.apply("thermal", FRAME), looks.apply("night-vision", FRAME)
    assert np.array_equal(looks.blend(a, b, 0.0), a) and np.array_equal(looks.blend(a, b, 1.0), b)
    d, gain = looks.flicker("pencil-sketch", FRAME, sigma=2.0)
    assert d > 0 and gain > 1  # the sketch amplifies sensor noise
    d0, _ = looks.flicker("warm-sunset", FRAME, sigma=0.0)
    assert d0 == 0.0


# -- net -----------------------------------------------------------------------------------------------


def test_default_net_fits_the_weight_budget_and_starts_as_identity() -> None:
    net = LiveNet().eval()
    assert weight_bytes(net) <= MAX_WEIGHT_BYTES and param_count(net) > 500_000
    x = torch.rand(2, 3, 32, 48)  # [N, 3, H, W]
    out = net(x, torch.rand(2, 3, 32, 48), torch.randn(2, 384))
    assert torch.equal(out, x)


@pytest.mark.parametrize("prev_input", [False, True])
def test_step_carries_state_and_pads_odd_sizes(prev_input: bool) -> None:
    net = _randomised(LiveNet(width=8, blocks=(1, 1, 1), film_hidden=16, prev_input=prev_input))
    cond = RNG.standard_normal(384).astype(np.float32)
    frame = FRAME[:61, :90]  # neither a multiple of 8
    out, state = step(net, None, frame, cond)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert isinstance(state, LiveState) and state.prev_out.shape == (1, 3, 64, 96)
    again, _ = step(net, None, frame, cond)
    assert np.array_equal(out, again)  # deterministic
    second, state2 = step(net, state, frame, cond)
    assert not np.array_equal(second, out)  # the previous output is an input
    assert torch.equal(state2.prev_in, state.prev_in)


@pytest.mark.parametrize("prev_input", [False, True])
def test_onnx_export_matches_torch(tmp_path: Path, prev_input: bool) -> None:
    net = _randomised(LiveNet(width=8, blocks=(1, 2, 1), film_hidden=16, prev_input=prev_input))
    runner = OnnxLive(export_onnx(net, tmp_path / "live.onnx", 32), threads=1)
    assert runner.prev_input == prev_input
    for h, w in [(32, 32), (48, 80)]:  # dynamic H and W
        x, prev, prev_in = (np.random.default_rng(s).random((2, 3, h, w), dtype=np.float32) for s in (1, 2, 3))
        cond = np.random.default_rng(4).standard_normal((2, 384)).astype(np.float32)
        with torch.no_grad():
            ref = net(*(torch.from_numpy(a) for a in (x, prev, cond, prev_in))).numpy()
        got = runner.step(prev, x, cond, prev_in)
        assert got.shape == (2, 3, h, w)
        np.testing.assert_allclose(got, ref, atol=1e-4)
    frames = [FRAME[:61, :90]] * 3
    streamed = list(runner.stream(frames, cond[0]))
    state = None
    for f, s in zip(frames, streamed, strict=True):
        out, state = step(net, state, f, cond[0])
        assert np.abs(out.astype(int) - s.astype(int)).max() <= 1  # rounding at most


def test_onnx_latency_report(tmp_path: Path) -> None:
    """The default width on ONNX Runtime, one thread (reported with -s; no assertion on time)."""
    net = _randomised(LiveNet())
    runner = OnnxLive(export_onnx(net, tmp_path / "live.onnx", 64), threads=1)
    for size in (256, 384):
        ms = latency_ms(runner, size, frames=5)
        print(f"LiveNet default ({param_count(net):,} params) {size}²: {ms}")
        assert ms["p99"] > 0


# -- data ----------------------------------------------------------------------------------------------


def test_history_aug_keeps_shape_and_range() -> None:
    aug = data.HistoryAug(p_shift=1, p_blur=1, p_jpeg=1, p_noise=1, p_drift=1)
    out = aug(FRAME, np.random.default_rng(0))
    assert out.shape == FRAME.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert 0.005 < np.abs(out - FRAME / 255.0).mean() < 0.2
    none = data.HistoryAug(0, 0, 0, 0, 0)(FRAME, np.random.default_rng(0))
    np.testing.assert_allclose(none, FRAME / 255.0, atol=1e-6)


def test_runs_from_photos_and_clips() -> None:
    rng = np.random.default_rng(1)
    run = data.photo_run(data.read_photo("astronaut.png"), 48, rng)
    assert run.shape == (data.RUN, 48, 48, 3) and run.dtype == np.uint8
    assert 0 < np.abs(run[1].astype(int) - run[0].astype(int)).mean() < 40  # the camera moved, a little
    clip = data.load_clip("bikes", max_frames=40)
    assert min(clip.shape[1:3]) <= data.MAX_SHORT_SIDE
    shots = data.shot_ids(clip)
    assert shots[0] == 0 and shots[-1] == 1  # bikes cuts to a new shot after frame 30
    for _ in range(10):
        assert data.clip_run(clip, 40, rng, shots).shape == (data.RUN, 40, 40, 3)
    assert data.HOLDOUT_CLIP not in data.TRAIN_CLIPS
    assert not set(data.HOLDOUT_PHOTOS) & set(data.TRAIN_PHOTOS)


def test_sampler_batches() -> None:
    texts = data.look_texts()
    assert texts[: len(looks.LOOKS)] == [lk.prompt for lk in looks.LOOKS.values()] and len(set(texts)) == len(texts)
    emb = {t: np.random.default_rng(i).standard_normal(384).astype(np.float32) for i, t in enumerate(texts)}
    sampler = data.PairSampler(emb, seed=0, blend_prob=0.5, identity_prob=0.2, max_frames=8)
    b = sampler.batch(6, 32)
    assert b.frames.shape == b.targets.shape == (6, data.RUN, 3, 32, 32)
    assert b.prev0.shape == b.prev1.shape == (6, 3, 32, 32) and b.cond.shape == (6, 384)
    for t in (b.frames, b.targets, b.prev0, b.prev1):
        assert t.dtype == torch.float32 and float(t.min()) >= 0 and float(t.max()) <= 1
    for i, name in enumerate(b.names):
        if name == "":
            assert torch.equal(b.targets[i], b.frames[i]) and not b.cond[i].any()
    fixed = [sampler.fixed_batch(2, 32, seed=5) for _ in range(2)]
    assert torch.equal(fixed[0].targets, fixed[1].targets) and fixed[0].names == fixed[1].names


# -- trainer -------------------------------------------------------------------------------------------


def test_trainer_runs_saves_and_resumes(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "training"))
    try:
        import train_live
    finally:
        sys.path.remove(str(ROOT / "training"))
    out = tmp_path / "run"
    common = ["--size", "64", "--batch", "2", "--threads", "1", "--out", str(out), "--max-frames", "12"]
    common += ["--looks", "warm-sunset", "thermal", "cartoon", "--log-every", "5", "--probe-batches", "2"]
    first = train_live.main(["--steps", "40", *common])
    assert first["step"] == 40 and all(math.isfinite(r["loss"]) for r in first["losses"])
    probe_start, probe_end = first["probe"]
    assert probe_end < probe_start
    info = json.loads((out / "live.json").read_text())
    assert info["config"]["width"] == 48 and set(info["looks"]) == {"warm-sunset", "thermal", "cartoon"}
    assert len(info["looks"]["thermal"]["embedding"]) == 384
    weights = load_file(str(out / "live.safetensors"))
    cfg = info["config"]
    net = LiveNet(cfg["width"], cfg["cond_dim"], tuple(cfg["blocks"]), cfg["film_hidden"], cfg["prev_input"])
    net.load_state_dict(weights)
    assert (out / "live.onnx").is_file()
    second = train_live.main(["--steps", "42", "--resume", "--no-onnx", *common])
    assert second["start"] == 40 and second["step"] == 42
    # the trainer flushes denormals while it runs and must hand the process back as it found it
    assert (torch.tensor([1e-39], dtype=torch.float32) * 1.0).item() != 0.0
