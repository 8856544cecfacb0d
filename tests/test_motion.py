"""The optical-flow motion classifier (prompt adherence) against clips whose motion is known exactly: our
procedural camera motion over the held-out photographs (thresholds were set on the training ones)."""

from __future__ import annotations

import numpy as np
import pytest

from framefleet.models.animate import motion
from framefleet.quality.motion import adheres, estimate_motion


def test_recovers_every_motion_on_held_out_photographs() -> None:
    photos = list(motion.photographs("holdout").values())
    rng = np.random.default_rng(7)
    wrong = []
    for k in range(60):
        m = motion.MOTIONS[k % len(motion.MOTIONS)]
        spec = motion.ClipSpec(m, float(rng.choice([0.6, 1.0, 1.5])))
        clip = motion.render_clip(photos[k % len(photos)], spec, rng, near=photos[(k + 1) % len(photos)])
        label = estimate_motion(clip).label
        if label != m:
            wrong.append((m, label))
    assert len(wrong) <= 1, wrong  # exact labels, parallax told apart from a pan


def test_a_still_clip_is_static() -> None:
    still = np.repeat(motion.photographs("holdout")["coffee.png"][None, :64, :64], 8, axis=0)
    assert estimate_motion(still).label == "static"
    with pytest.raises(ValueError):
        estimate_motion(still[:1])


def test_parallax_measured_as_a_pan_still_adheres() -> None:
    assert adheres("pan_left", "parallax_left") and not adheres("pan_right", "parallax_left")
    assert not adheres("parallax_left", "pan_left")


@pytest.mark.parametrize("kind", ["pan_left", "pan_down", "zoom_in", "zoom_out", "rotate_cw"])
def test_camera_path_warp_reproduces_the_clip(kind: str) -> None:
    """The reference models' warped conditioning (torch) is the clip's own camera motion (OpenCV): frame t
    of a clip is frame 0 warped along the path the clip was drawn with, away from the entering borders."""
    import torch

    from framefleet.models.animate.unet import warp_along_path

    rng = np.random.default_rng(3)
    clip, path = motion.render_clip_with_path(motion.photographs("train")["astronaut.png"], motion.ClipSpec(kind), rng)
    still = torch.from_numpy(clip[0]).permute(2, 0, 1)[None].float()
    vec = torch.tensor([[path.vx, path.vy, path.log_zoom, path.spin]])
    warped = warp_along_path(still, vec, 8)[0].permute(0, 2, 3, 1).numpy()  # [F, H, W, 3]
    for t in (1, 3):
        err = warped[t, 12:-12, 12:-12] - clip[t, 12:-12, 12:-12].astype(np.float32)
        psnr = 10 * np.log10(255**2 / max(float(np.mean(err**2)), 1e-6))
        assert psnr > 28, (kind, t, psnr)
    # and the static still is what a zero path gives
    assert np.abs(warp_along_path(still, torch.zeros(1, 4), 8)[0, 5].numpy() - still[0].numpy()).max() < 1e-3


def test_camera_path_head_is_still_without_text() -> None:
    import torch

    from animate_fixtures import tiny_framefleet_unet

    net = tiny_framefleet_unet()  # camera-path head, output layers not zero
    text = torch.cat([torch.zeros(1, 384), torch.randn(1, 384)])
    path = net.predict_camera_path(text)
    assert torch.equal(path[0], torch.zeros(4)) and path[1].abs().sum() > 0
    x, image = torch.randn(2, 4, 3, 32, 32), torch.rand(2, 3, 32, 32)
    moved = net(x, 500, image, text, camera_path=torch.tensor([[0.0, 0.0, 0.0, 0.0], [3.0, 0.0, 0.0, 0.0]]))
    still = net(x, 500, image, text, camera_path=torch.zeros(2, 4))
    assert torch.equal(moved[0], still[0]) and not torch.allclose(moved[1], still[1])
