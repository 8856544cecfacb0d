"""Baseline: FFmpeg's `minterpolate` filter (motion-compensated interpolation, block matching with
overlapped-block motion compensation), run through PyAV on each pair of frames.

    framefleet enhance clip.mp4 --fps 60 --interpolator minterpolate
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from typing import Any

import av
import av.filter
import numpy as np

from framefleet.models.interpolate.base import check_pair

FILTER_ARGS = "fps=2:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1"


class MInterpolate:
    name = "minterpolate"
    version = "1"

    def params(self) -> dict[str, Any]:
        return {"filter": FILTER_ARGS, "ffmpeg": av.library_versions.get("libavfilter")}

    def midpoint(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        check_pair(a, b)
        h, w = a.shape[:2]
        if h < 16 or w < 16:  # below one motion block: a plain blend
            return ((a.astype(np.uint16) + b.astype(np.uint16) + 1) // 2).astype(np.uint8)
        graph = av.filter.Graph()
        src = graph.add_buffer(
            width=w, height=h, format=av.video.format.VideoFormat("yuv444p"), time_base=Fraction(1, 1)
        )
        nodes = [
            src,
            graph.add("minterpolate", FILTER_ARGS),
            graph.add("format", "pix_fmts=rgb24"),
            graph.add("buffersink"),
        ]
        for x, y in itertools.pairwise(nodes):
            x.link_to(y)
        graph.configure()
        out: list[np.ndarray] = []
        # Three inputs (a, b, b) so the filter has a frame after b and emits the midpoint before EOF.
        for pts, image in enumerate((a, b, b)):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(format="yuv444p")
            frame.pts, frame.time_base = pts, Fraction(1, 1)
            graph.push(frame)
            out.extend(_drain(graph))
        graph.push(None)
        out.extend(_drain(graph))
        return out[1]  # output at 2 fps: a, mid(a, b), b, ...


def _drain(graph: Any) -> list[np.ndarray]:
    frames = []
    while True:
        try:
            frames.append(graph.pull().to_ndarray(format="rgb24"))
        except (av.BlockingIOError, av.EOFError):
            return frames
