"""Encode video: a source file into one ABR rendition (`transcode`), or numpy frames into a file
(`encode_frames`). H.264 through libx264 by default, AV1 through SVT-AV1 as an option; MP4 output with
the index up front (faststart) so players can start before the download ends.

Pixel work stays in FFmpeg's C code (a filter graph: rotate → scale → yuv420p). Source timestamps are
kept frame for frame, so variable-frame-rate input stays in sync with its audio. Audio is stream-copied
when MP4 can carry it and re-encoded to AAC otherwise.

    from framefleet.media import transcode, plan_ladder, probe
    info = probe("in.mp4")
    rungs, _ = plan_ladder(info.width, info.height, [720])
    transcode("in.mp4", "out-720p.mp4", rungs[0])
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.filter
import numpy as np

from framefleet.errors import InputError, MediaError
from framefleet.media.ladder import Rung
from framefleet.media.probe import _codec_name, _ffmpeg_reason, check_file, open_input, rotation_of

# SVT-AV1 prints a configuration banner on stderr at level "info"; keep errors only (1) unless the
# user asked for more. Read by the library when the encoder opens, so setting it here is early enough.
os.environ.setdefault("SVT_LOG", "1")

ENCODERS = {"h264": "libx264", "av1": "libsvtav1"}
# Audio codecs the MP4 muxer accepts as they are; anything else is re-encoded to AAC.
MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}
# FFmpeg's default layout for each channel count (av_channel_layout_default).
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
_TRANSPOSE = {
    0: [],
    90: [("transpose", "cclock")],
    180: [("hflip", ""), ("vflip", "")],
    270: [("transpose", "clock")],
}


@dataclass(frozen=True)
class EncodeSettings:
    codec: str = "h264"  # "h264" | "av1"
    crf: int = 23  # constant quality; the rung's maxrate caps the peaks (capped CRF)
    preset: str = "veryfast"  # x264 preset; for SVT-AV1 a number 0-13 (we map veryfast → 10)
    gop_seconds: float = 2.0  # fixed keyframe interval so every rendition switches at the same instants
    audio_kbps: int = 128

    def __post_init__(self) -> None:
        if self.codec not in ENCODERS:
            raise InputError(f"unknown video codec {self.codec!r}; choose one of {', '.join(ENCODERS)}")

    def as_params(self) -> dict[str, Any]:
        return {"codec": self.codec, "crf": self.crf, "preset": self.preset, "gop_seconds": self.gop_seconds}


def _video_options(settings: EncodeSettings, fps: float, rung: Rung | None) -> dict[str, str]:
    gop = max(1, round(settings.gop_seconds * max(fps, 1.0)))
    if settings.codec == "h264":
        # Scene-cut keyframes would break alignment between rungs; x264 takes the GOP directly.
        opts = {
            "crf": str(settings.crf),
            "preset": settings.preset,
            "g": str(gop),
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0",
        }
    else:
        # SVT-AV1's CRF scale is 0-63; about x264 CRF + 10 gives similar quality at ~60% of the bits.
        preset = settings.preset if settings.preset.isdigit() else "10"
        opts = {"crf": str(min(63, settings.crf + 10)), "preset": preset, "g": str(gop)}
    if rung is not None:
        opts["maxrate"] = f"{rung.maxrate_kbps}k"
        opts["bufsize"] = f"{rung.bufsize_kbps}k"
    return opts


def _add_video_stream(
    out: Any, settings: EncodeSettings, width: int, height: int, rate: Fraction, time_base: Fraction, rung: Rung | None
) -> Any:
    stream = out.add_stream(ENCODERS[settings.codec], rate=rate, options=_video_options(settings, float(rate), rung))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.time_base = time_base
    stream.codec_context.time_base = time_base
    return stream


class _AudioPath:
    """Carries the first audio stream of `inp` into `out`: stream copy if MP4 takes it, else AAC."""

    def __init__(self, inp: Any, out: Any, kbps: int) -> None:
        self.src = inp.streams.audio[0] if inp.streams.audio else None
        self.dst: Any = None
        self.resampler: Any = None
        self.copy = False
        if self.src is None:
            return
        self.copy = _codec_name(self.src.codec_context) in MP4_AUDIO  # "mp3", not decoder "mp3float"
        if self.copy:
            self.dst = out.add_stream_from_template(self.src)
        else:
            cc = self.src.codec_context
            rate = cc.sample_rate or 48000
            # A source without a channel mask reports "2 channels"; AAC wants a named layout for that count.
            layout = _DEFAULT_LAYOUTS.get(int(cc.channels or 2), "stereo")
            self.dst = out.add_stream("aac", rate=rate)
            self.dst.bit_rate = kbps * 1000
            self.dst.layout = layout
            # The AAC encoder takes planar float; PCM and friends arrive as packed integers.
            self.resampler = av.AudioResampler(format=self.dst.codec_context.format, layout=layout, rate=rate)

    def handle(self, packet: Any, out: Any) -> None:
        if packet.dts is None:  # the demuxer's end-of-stream flush packet
            if not self.copy:
                for converted in self.resampler.resample(None):
                    self._mux(self.dst.encode(converted), out)
                self._mux(self.dst.encode(None), out)
            return
        if self.copy:
            packet.stream = self.dst
            out.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None  # renumbered by the resampler in the encoder's time base
            for converted in self.resampler.resample(frame):
                self._mux(self.dst.encode(converted), out)

    @staticmethod
    def _mux(packets: Iterable[Any], out: Any) -> None:
        for pkt in packets:
            out.mux(pkt)


def _filter_chain(vs: Any, rotation: int, width: int, height: int) -> Any:
    graph = av.filter.Graph()
    nodes = [graph.add_buffer(template=vs)]
    for name, args in _TRANSPOSE[rotation]:
        nodes.append(graph.add(name, args))
    nodes.append(graph.add("scale", f"w={width}:h={height}:flags=lanczos"))
    nodes.append(graph.add("format", "pix_fmts=yuv420p"))
    nodes.append(graph.add("buffersink"))
    for a, b in itertools.pairwise(nodes):
        a.link_to(b)
    graph.configure()
    return graph


def _pull_all(graph: Any) -> Iterator[Any]:
    while True:
        try:
            frame = graph.pull()
        except (av.BlockingIOError, av.EOFError):
            return
        # A decoded frame remembers it was an I-frame in the source, and libx264 obeys that as a forced
        # keyframe: the source's GOP would leak into every rung and break their alignment.
        frame.pict_type = av.video.frame.PictureType.NONE
        yield frame


def transcode(
    src: str | Path,
    dst: str | Path,
    rung: Rung,
    settings: EncodeSettings | None = None,
    *,
    on_frame: Callable[[int], None] | None = None,
) -> int:
    """Encode `src` into one rendition at `rung`'s size; returns the number of video frames written.

    Writes `dst` directly: callers that need atomicity pass a temporary path (see `framefleet._fs`).
    """
    settings = settings or EncodeSettings()
    p = check_file(src)
    frames = 0
    with open_input(p) as inp:
        if not inp.streams.video:
            raise InputError(f"{p}: has no video stream to encode")
        vs = inp.streams.video[0]
        vs.thread_type = "AUTO"
        rate = vs.average_rate or vs.guessed_rate or Fraction(25)
        out = av.open(str(dst), mode="w", format="mp4", options={"movflags": "+faststart"})
        try:
            ov = _add_video_stream(out, settings, rung.width, rung.height, rate, vs.time_base, rung)
            audio = _AudioPath(inp, out, settings.audio_kbps)
            out.start_encoding()  # open every encoder before the MP4 header is written
            graph: Any = None
            streams = [vs] + ([audio.src] if audio.src is not None else [])
            for packet in inp.demux(*streams):
                if packet.stream is not vs:
                    audio.handle(packet, out)
                    continue
                for frame in packet.decode():
                    if graph is None:
                        graph = _filter_chain(vs, rotation_of(frame), rung.width, rung.height)
                    graph.push(frame)
                    for scaled in _pull_all(graph):
                        frames += 1
                        out.mux(ov.encode(scaled))
                    if on_frame is not None:
                        on_frame(frames)
            if graph is not None:
                graph.push(None)
                for scaled in _pull_all(graph):
                    frames += 1
                    out.mux(ov.encode(scaled))
            out.mux(ov.encode(None))
        except av.FFmpegError as e:
            raise MediaError(f"encoding {p} to {rung.name} failed: {_ffmpeg_reason(e)}") from None
        finally:
            out.close()
    return frames


def encode_frames(
    frames: Iterable[np.ndarray],
    dst: str | Path,
    *,
    fps: float | Fraction,
    timestamps: Iterable[float] | None = None,
    settings: EncodeSettings | None = None,
    audio_from: str | Path | None = None,
) -> int:
    """Encode RGB uint8 frames ([H, W, 3] each, or [N, H, W, 3] batches) into an MP4 at `dst`.

    `timestamps` (seconds, one per frame) keeps a variable frame rate; without it frames are spaced 1/fps.
    `audio_from` carries the audio track of that file (e.g. the source the frames were derived from),
    interleaved with the video by time. Odd frame sizes are padded by one edge pixel (yuv420p needs even
    sizes). Returns the number of frames written.
    """
    settings = settings or EncodeSettings()
    rate = Fraction(fps).limit_denominator(100_000)
    if rate <= 0:
        raise InputError(f"fps must be positive, got {fps}")
    time_base = Fraction(1, 90_000)
    times = iter(timestamps) if timestamps is not None else None
    frames_iter = _single_frames(frames)
    first = next(frames_iter, None)
    if first is None:
        raise InputError("no frames to encode")
    h, w = first.shape[:2]
    width, height = w + w % 2, h + h % 2
    audio_in = av.open(str(check_file(audio_from))) if audio_from is not None else None
    out = av.open(str(dst), mode="w", format="mp4", options={"movflags": "+faststart"})
    n = 0
    try:
        stream = _add_video_stream(out, settings, width, height, rate, time_base, None)
        audio = _AudioPath(audio_in, out, settings.audio_kbps) if audio_in is not None else None
        out.start_encoding()  # open every encoder before the MP4 header is written
        pending: Iterator[Any] = iter(())
        if audio_in is not None and audio is not None and audio.src is not None:
            pending = audio_in.demux(audio.src)
        for image in _chain(first, frames_iter):
            if image.shape[:2] != (h, w):
                raise InputError(f"frame {n} is {image.shape[1]}×{image.shape[0]} but frame 0 was {w}×{h}")
            if w % 2 or h % 2:
                image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            t = Fraction(next(times)) if times is not None else n / rate
            frame.pts = round(t / time_base)
            frame.time_base = time_base
            out.mux(stream.encode(frame))
            n += 1
            if audio is not None:
                pending = _mux_audio_until(pending, audio, out, float(t))
        out.mux(stream.encode(None))
        if audio is not None:
            _mux_audio_until(pending, audio, out, float("inf"))
    except av.FFmpegError as e:
        raise MediaError(f"encoding frames to {dst} failed: {_ffmpeg_reason(e)}") from None
    finally:
        out.close()
        if audio_in is not None:
            audio_in.close()
    return n


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def _mux_audio_until(packets: Iterator[Any], audio: _AudioPath, out: Any, until: float) -> Iterator[Any]:
    """Mux audio packets up to time `until` (seconds); return the iterator positioned after them."""
    for packet in packets:
        audio.handle(packet, out)
        if packet.pts is not None and packet.time_base is not None and float(packet.pts * packet.time_base) > until:
            break
    return packets


def _single_frames(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    for item in frames:
        if item.dtype != np.uint8 or item.shape[-1] != 3 or item.ndim not in (3, 4):
            raise InputError(f"frames must be uint8 [H, W, 3] or [N, H, W, 3], got {item.dtype} {item.shape}")
        if item.ndim == 4:
            yield from item
        else:
            yield item
