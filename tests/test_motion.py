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
