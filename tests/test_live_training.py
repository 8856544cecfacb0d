"""What the live trainer's speed and stability work stands on: the flow-warped error (the temporal loss and the
benchmark's measure), channel pruning (a narrow net made of a wide one's channels), and the trainer's wide →
pruned → distilled path."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from framefleet.models.live import data, stability
from framefleet.models.live.net import LiveNet
from framefleet.models.live.prune import prune, stream_importance

ROOT = Path(__file__).resolve().parents[1]
PHOTO = cv2.resize(data.read_photo("chelsea.png"), (128, 96), interpolation=cv2.INTER_AREA)  # [96, 128, 3]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _trainer():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(ROOT / "training"))
    try:
        import train_live
    finally:
        sys.path.remove(str(ROOT / "training"))
    return train_live


def _shifted(img: np.ndarray, dx: float) -> np.ndarray:
    m = np.array([[1, 0, dx], [0, 1, 0]], dtype=np.float32)
    return np.asarray(cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT_101))


# -- stability -------------------------------------------------------------------------------------------


def test_warped_error_is_zero_for_a_still_scene_and_grows_with_flicker() -> None:
    assert stability.stream_warped_error([PHOTO] * 3, [PHOTO] * 3) == 0.0
    rng = np.random.default_rng(0)
    noisy = [np.clip(PHOTO + rng.normal(0, 8, PHOTO.shape), 0, 255).astype(np.uint8) for _ in range(3)]
    assert stability.stream_warped_error([PHOTO] * 3, noisy) > 1e-3


def test_warped_error_follows_motion() -> None:
    """A camera pan: outputs that move with the scene are stable; outputs that stay put are not."""
    frames = [_shifted(PHOTO, 2.0 * k) for k in range(3)]
    moving = stability.stream_warped_error(frames, frames)
    frozen = stability.stream_warped_error(frames, [frames[0]] * 3)
    assert moving < 0.2 * frozen
    flow = stability.backward_flow(frames[0], frames[1])
    assert abs(float(np.median(flow[16:-16, 16:-16, 0])) + 2.0) < 0.3  # frame 1 at x came from frame 0 at x − 2


def test_trainer_warp_matches_the_numpy_warp() -> None:
    rng = np.random.default_rng(1)
    img = rng.random((24, 32, 3)).astype(np.float32)
    flow = rng.uniform(-3, 3, (24, 32, 2)).astype(np.float32)
    want = stability.warp(img, flow)
    got = _trainer().warp(torch.from_numpy(img).permute(2, 0, 1)[None], torch.from_numpy(flow).permute(2, 0, 1)[None])
    diff = np.abs(got[0].permute(1, 2, 0).numpy() - want)
    assert diff.max() < 0.02 and diff.mean() < 5e-3  # OpenCV's remap rounds positions to 1/32 px


# -- pruning ---------------------------------------------------------------------------------------------


def _random_net(width: int, mid: int, seed: int = 0) -> LiveNet:
    g = torch.Generator().manual_seed(seed)
    net = LiveNet(width=width, mid_width=mid, blocks=(1, 2, 1), film_hidden=16)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return net.eval()


def _kill_channels(net: LiveNet, quarter: list[int], eighth: list[int], hidden: tuple[list[int], list[int]]) -> None:
    """Make channels dead: nothing writes the given stream channels, and the hidden channels (of the blocks at
    1/4, of those at 1/8) are neither written nor read."""
    with torch.no_grad():
        for conv in [net.stem[1], *(b.conv2 for b in (*net.enc, *net.dec))]:
            conv.weight[quarter] = 0
            conv.bias[quarter] = 0
        rows = [4 * c + k for c in quarter for k in range(4)]
        net.up[0].weight[rows] = 0
        net.up[0].bias[rows] = 0
        for conv in [net.down, *(b.conv2 for b in net.mid)]:
            conv.weight[eighth] = 0
            conv.bias[eighth] = 0
        for blocks, dead in (((*net.enc, *net.dec), hidden[0]), (net.mid, hidden[1])):
            for b in blocks:
                b.conv1.weight[dead] = 0
                b.conv1.bias[dead] = 0
                b.conv2.weight[:, dead] = 0


def test_pruning_dead_channels_changes_nothing() -> None:
    """Prune exactly the channels that carry nothing: the narrow net computes what the wide one does, which
    checks every index map (streams, PixelShuffle's channel order, per-block hidden channels, FiLM rows)."""
    wide = _random_net(12, 20)
    _kill_channels(wide, quarter=[1, 5, 9], eighth=[0, 7, 13, 19], hidden=([2, 6, 11], [1, 2, 3, 4]))
    q, e = stream_importance(wide)
    assert float(q[[1, 5, 9]].max()) == 0.0 and float(e[[0, 7, 13, 19]].max()) == 0.0
    narrow = prune(wide, 9, 16)
    x, prev = torch.rand(2, 3, 32, 40), torch.rand(2, 3, 32, 40)
    cond = torch.randn(2, 384)
    assert narrow.config["width"] == 9 and narrow.config["mid_width"] == 16
    torch.testing.assert_close(narrow(x, prev, cond), wide(x, prev, cond), atol=1e-5, rtol=0)


def test_pruning_to_the_same_width_is_a_copy_and_wider_is_refused() -> None:
    wide = _random_net(8, 16)
    x = torch.rand(1, 3, 16, 16)
    cond = torch.randn(1, 384)
    torch.testing.assert_close(prune(wide, 8, 16)(x, x, cond), wide(x, x, cond))
    with pytest.raises(ValueError, match="cannot prune"):
        prune(wide, 10, 16)


# -- trainer: wide → pruned → distilled ------------------------------------------------------------------


def test_trainer_distils_a_pruned_student_from_a_wide_run(tmp_path: Path) -> None:
    train_live = _trainer()
    common = ["--size", "48", "--batch", "2", "--threads", "1", "--max-frames", "8", "--probe-batches", "1"]
    common += ["--looks", "thermal", "cartoon", "--log-every", "2", "--no-onnx"]
    wide = tmp_path / "wide"
    train_live.main(["--steps", "4", "--width", "12", "--mid-width", "24", "--out", str(wide), *common])
    narrow = tmp_path / "narrow"
    args = ["--steps", "4", "--width", "8", "--mid-width", "16", "--distill-from", str(wide), "--prune"]
    result = train_live.main([*args, "--out", str(narrow), *common])
    assert all("distill" in r for r in result["losses"])
    info = json.loads((narrow / "live.json").read_text())
    assert info["config"]["width"] == 8 and info["config"]["mid_width"] == 16
    student = train_live.load_net(narrow)
    assert student.config == info["config"]
    with pytest.raises(SystemExit):
        train_live.parse_args(["--prune"])


# -- the stream's situations in training -----------------------------------------------------------------


def test_sampler_draws_cold_starts_and_prompt_switches() -> None:
    texts = data.look_texts(["thermal", "pencil-sketch"])
    emb = {t: np.random.default_rng(i).standard_normal(384).astype(np.float32) for i, t in enumerate(texts)}
    kw = {"names": ["thermal", "pencil-sketch"], "history_aug": False, "blend_prob": 0.0, "identity_prob": 0.0}
    cold = data.PairSampler(emb, seed=0, cold_start_prob=1.0, switch_prob=0.0, max_frames=8, **kw).batch(3, 32)
    assert bool(cold.fresh.all()) and torch.equal(cold.prev0, cold.frames[:, 1])
    switched = data.PairSampler(emb, seed=0, cold_start_prob=0.0, switch_prob=1.0, max_frames=8, **kw).batch(8, 32)
    assert bool(switched.fresh.all())
    own = [torch.equal(switched.prev0[i], switched.targets[i, 0]) for i in range(8)]
    assert not all(own)  # the history comes from a look drawn at random: mostly the other one
    plain = data.PairSampler(emb, seed=0, cold_start_prob=0.0, switch_prob=0.0, max_frames=8, **kw).batch(3, 32)
    assert not bool(plain.fresh.any()) and torch.equal(plain.prev0, plain.targets[:, 0])
