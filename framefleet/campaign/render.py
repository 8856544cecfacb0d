"""Render a campaign `Timeline` to a 1280x720 H.264 + AAC MP4, fast.

    from framefleet.campaign.render import render
    stats = render(timeline, "out.mp4", threads=2)

Every pixel operation is one OpenCV call in C: a Ken Burns frame is one `warpAffine` of the (pre-shrunk)
photo, a crossfade one `addWeighted`, the colour conversion one `cvtColor` straight to I420, so x264 gets
planes it can use without another conversion. Frames are made by a thread pool (OpenCV releases the GIL)
a few frames ahead of the encoder, which runs its own threads; cards are drawn once with Pillow and reused.

The file is written under a temporary name and renamed when complete: a crash leaves no half-written video.
Audio is AAC stereo 48 kHz: the optional music, trimmed and faded in and out, or silence (players and
platforms expect an audio track in a video that will later carry music).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import resource
import secrets
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from framefleet.campaign.timeline import Card, Shot, Timeline, Window
from framefleet.errors import InputError, MediaError
from framefleet.media.image import load_image

FONT = Path(__file__).with_name("fonts") / "DejaVuSans-Bold.ttf"  # Bitstream Vera licence, see fonts/
RATE = 48000
AUDIO_CHUNK = 1024  # AAC frame size


@dataclass(frozen=True)
class RenderStats:
    frames: int
    seconds: float  # video duration
    wall_s: float
    cpu_s: float  # user + system CPU of this process (frame threads and x264 threads included)
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def draw_card(card: Card, width: int, height: int) -> np.ndarray:
    """A card as RGB (H, W, 3): a dark vertical gradient, the first line large, the rest smaller, centred."""
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]  # (H, 1, 1)
    top, bottom = np.array([38, 24, 74], np.float32), np.array([12, 10, 28], np.float32)
    bg = (top + (bottom - top) * ramp).astype(np.uint8)  # (H, 1, 3)
    im = Image.fromarray(np.ascontiguousarray(np.broadcast_to(bg, (height, width, 3))))
    draw = ImageDraw.Draw(im)
    sizes = [height // 10] + [height // 16] * (len(card.lines) - 1)
    fonts = []
    for text, size in zip(card.lines, sizes, strict=True):
        font = ImageFont.truetype(str(FONT), size)
        while draw.textlength(text, font=font) > width * 0.9 and size > 12:  # long names shrink, never clip
            size = int(size * 0.9)
            font = ImageFont.truetype(str(FONT), size)
        fonts.append((font, size))
    gap = height // 40
    total = sum(s for _, s in fonts) + gap * (len(fonts) - 1)
    y = (height - total) / 2
    for text, (font, size) in zip(card.lines, fonts, strict=True):
        draw.text((width / 2, y), text, font=font, fill=(255, 244, 230), anchor="ma")
        y += size + gap
    return np.asarray(im)


def _ease(t: float) -> float:
    """Smoothstep: the camera starts and stops gently."""
    t = min(max(t, 0.0), 1.0)
    return t * t * (3 - 2 * t)


class _Source:
    """A shot's picture, shrunk once so the tightest window is about output size (no wasted pixels)."""

    def __init__(self, shot: Shot, width: int) -> None:
        tight = min(shot.start.w, shot.end.w)  # in the picture's pixels
        k = min(1.0, 1.25 * width / tight)
        need = math.ceil(k * min(shot.size))  # decode no more than this (JPEG DCT scaling), never less
        rgb = load_image(shot.path, at_least=need)
        h, w = rgb.shape[:2]
        sx, sy = w / shot.size[0], h / shot.size[1]  # the timeline's windows are in the full picture's pixels
        k2 = min(1.0, 1.25 * width / (tight * sx))
        if k2 < 1.0:
            rgb = cv2.resize(rgb, (max(1, round(w * k2)), max(1, round(h * k2))), interpolation=cv2.INTER_AREA)
        self.rgb = rgb  # (h', w', 3)
        self.sx, self.sy = sx * k2, sy * k2
        self.shot = shot

    def frame(self, u: float, width: int, height: int) -> np.ndarray:
        win: Window = self.shot.start.lerp(self.shot.end, _ease(u / self.shot.seconds))
        s = width / (win.w * self.sx)
        m = np.array([[s, 0, -win.x * self.sx * s], [0, s, -win.y * self.sy * s]], np.float32)  # (2, 3)
        return cv2.warpAffine(self.rgb, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _still(rgb: np.ndarray, _u: float) -> np.ndarray:
    return rgb


class _Frames:
    """Frame i of the timeline as I420 planes (H*3/2, W), made independently so threads can share the work."""

    def __init__(self, tl: Timeline) -> None:
        self.tl = tl
        self.starts = tl.starts()
        self.layers: list[Callable[[float], np.ndarray]] = []
        self._cards: dict[int, np.ndarray] = {}
        for i, seg in enumerate(tl.segments):
            if isinstance(seg, Card):
                self._cards[i] = draw_card(seg, tl.width, tl.height)
                self.layers.append(functools.partial(_still, self._cards[i]))
            else:
                src = _Source(seg, tl.width)
                self.layers.append(functools.partial(src.frame, width=tl.width, height=tl.height))
        self._static: dict[int, np.ndarray] = {}  # I420 of a card shown alone: computed once

    def _active(self, t: float) -> list[int]:
        segs = self.tl.segments
        return [i for i, s in enumerate(segs) if self.starts[i] <= t < self.starts[i] + s.seconds] or [len(segs) - 1]

    def __call__(self, i: int) -> np.ndarray:
        t = i / self.tl.fps
        active = self._active(t)
        if len(active) == 1 and active[0] in self._cards:
            j = active[0]
            if j not in self._static:
                self._static[j] = cv2.cvtColor(self._cards[j], cv2.COLOR_RGB2YUV_I420)
            return self._static[j]
        a = active[0]
        rgb = self.layers[a](t - self.starts[a])  # (H, W, 3)
        if len(active) > 1:
            b = active[1]
            alpha = _ease((t - self.starts[b]) / self.tl.crossfade_s)
            rgb = cv2.addWeighted(rgb, 1.0 - alpha, self.layers[b](t - self.starts[b]), alpha, 0.0)
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)  # (H*3/2, W)


def _music(path: str | None, seconds: float, fade_s: float) -> np.ndarray:
    """Stereo float32 (2, N) at 48 kHz: the music trimmed to the video and faded, or silence."""
    n = round(seconds * RATE)
    out = np.zeros((2, n), np.float32)
    if path is None:
        return out
    try:
        with av.open(path) as c:
            if not c.streams.audio:
                raise InputError(f"{path}: no audio stream; give a music file (MP3, AAC, WAV, ...)")
            res = av.AudioResampler(format="fltp", layout="stereo", rate=RATE)
            got = 0
            for frame in c.decode(audio=0):
                for r in res.resample(frame):
                    pcm = r.to_ndarray()[:, : n - got]  # (2, k)
                    out[:, got : got + pcm.shape[1]] = pcm
                    got += pcm.shape[1]
                if got >= n:
                    break
    except (av.error.FFmpegError, OSError) as e:
        raise InputError(f"{path}: cannot read the music ({e}); give an MP3, AAC or WAV file") from None
    k = min(n // 2, round(fade_s * RATE))
    if k:
        ramp = np.linspace(0.0, 1.0, k, dtype=np.float32)
        out[:, :k] *= ramp
        out[:, n - k :] *= ramp[::-1]
    return out


class _Writer:
    """The MP4 container with one H.264 and one AAC stream, audio muxed alongside the video as it advances."""

    def __init__(self, path: Path, tl: Timeline, audio: np.ndarray, *, crf: int, preset: str, threads: int) -> None:
        self.c = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        self.v = self.c.add_stream("libx264", rate=Fraction(tl.fps))
        self.v.width, self.v.height, self.v.pix_fmt = tl.width, tl.height, "yuv420p"
        self.v.options = {"crf": str(crf), "preset": preset, "g": str(2 * tl.fps), "threads": str(threads)}
        self.a = self.c.add_stream("aac", rate=RATE)
        self.a.layout = "stereo"
        self.a.bit_rate = 128_000
        self.audio, self.sent = audio, 0

    def video(self, i: int, i420: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
        frame.pts = i
        self.c.mux(self.v.encode(frame))

    def audio_until(self, seconds: float) -> None:
        stop = min(self.audio.shape[1], round(seconds * RATE))
        while self.sent + AUDIO_CHUNK <= stop or (stop == self.audio.shape[1] and self.sent < stop):
            chunk = np.ascontiguousarray(self.audio[:, self.sent : self.sent + AUDIO_CHUNK])  # (2, <=1024)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = RATE, self.sent
            self.c.mux(self.a.encode(frame))
            self.sent += chunk.shape[1]

    def close(self) -> None:
        self.audio_until(self.audio.shape[1] / RATE)
        self.c.mux(self.v.encode(None))
        self.c.mux(self.a.encode(None))
        self.c.close()


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def render(
    tl: Timeline,
    dst: str | Path,
    *,
    threads: int = 2,
    crf: int = 23,
    preset: str = "veryfast",
    on_frame: Callable[[int, int], None] | None = None,
) -> RenderStats:
    """Render `tl` to `dst` (MP4), atomically; `on_frame(done, total)` reports progress."""
    dst = Path(dst)
    t0, c0 = time.perf_counter(), _cpu()
    make = _Frames(tl)  # decodes the photos: a missing or corrupt one fails here, before any output exists
    audio = _music(tl.music, tl.frames / tl.fps, tl.music_fade_s)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.{secrets.token_hex(4)}.tmp.mp4")
    n = tl.frames
    try:
        out = _Writer(tmp, tl, audio, crf=crf, preset=preset, threads=threads)
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            ahead: deque[Future[np.ndarray]] = deque()
            nxt = 0
            for i in range(n):
                while nxt < n and len(ahead) < 2 * threads + 2:  # bounded look-ahead: memory stays flat
                    ahead.append(pool.submit(make, nxt))
                    nxt += 1
                out.video(i, ahead.popleft().result())
                out.audio_until((i + 1) / tl.fps)
                if on_frame is not None:
                    on_frame(i + 1, n)
        out.close()
        os.replace(tmp, dst)
    except av.error.FFmpegError as e:
        raise MediaError(f"{dst}: encoding failed ({e})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return RenderStats(n, n / tl.fps, time.perf_counter() - t0, _cpu() - c0, dst.stat().st_size)
