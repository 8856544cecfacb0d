"""Probe a media file: what it is, and whether it decodes cleanly.

`probe(path)` opens the file with FFmpeg (through PyAV) and, with `verify=True` (the default for
ingest), decodes every video frame once. That is the only way to be sure a file is not truncated or
corrupt mid-stream: a faststart MP4 cut in half still opens and reports its full frame count.

    from framefleet.media import probe
    info = probe("clip.mp4")          # -> MediaInfo(kind="video", video=VideoInfo(...), audio=...)
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from framefleet.errors import InputError, MediaError, TooLarge, UnsupportedMedia
from framefleet.media.image import DEFAULT_MAX_PIXELS, ImageInfo, identify_image

# A frame interval further than this from the median interval makes a stream variable-frame-rate. Looser
# than one tick so NTSC rates (30000/1001 in a 1/12800 time base: 426, 427, 426, ...) stay constant-rate.
_VFR_TOLERANCE = 0.10


@dataclass(frozen=True)
class VideoInfo:
    codec: str
    width: int  # as displayed, after rotation
    height: int
    coded_width: int
    coded_height: int
    rotation: int  # degrees counter-clockwise the player turns the picture: 0, 90, 180 or 270
    fps: float  # average: frames / duration
    frames: int
    duration: float  # seconds, first frame's start to last frame's end
    vfr: bool
    pix_fmt: str
    bitrate: int | None
    time_base: str  # e.g. "1/12800"; kept as text so it serialises


@dataclass(frozen=True)
class AudioInfo:
    codec: str
    sample_rate: int
    channels: int
    duration: float | None
    bitrate: int | None


@dataclass(frozen=True)
class MediaInfo:
    path: str
    kind: str  # "video" | "image"
    container: str
    size_bytes: int
    duration: float  # 0 for images
    bitrate: int | None
    width: int
    height: int
    video: VideoInfo | None = None
    audio: AudioInfo | None = None
    image: ImageInfo | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_file(path: str | Path) -> Path:
    """The checks every entry point does first: exists, is a regular file, is not empty."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file; check the path")
    if not p.is_file():
        raise InputError(f"{p}: not a regular file; give the path of a video or image file")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: the file is empty (0 bytes); re-export or re-download it")
    return p


@contextmanager
def open_input(path: Path) -> Iterator[Any]:
    """`av.open` for reading, with FFmpeg's errors turned into one-line InputErrors."""
    try:
        container = av.open(str(path), mode="r")
    except av.error.InvalidDataError:
        raise InputError(
            f"{path}: not a video or image FFmpeg can read (invalid data; the file may be truncated or not "
            "media at all)"
        ) from None
    except av.FFmpegError as e:
        raise InputError(f"{path}: FFmpeg cannot open it ({_ffmpeg_reason(e)})") from None
    try:
        yield container
    finally:
        container.close()


@contextmanager
def open_output(dst: str | Path, failure: str) -> Iterator[Any]:
    """`av.open` of an MP4 for writing (index up front) that leaves nothing behind: on any error the file
    is closed and deleted, and FFmpeg's errors become one-line MediaErrors starting with `failure`."""
    out = av.open(str(dst), mode="w", format="mp4", options={"movflags": "+faststart"})
    try:
        yield out
    except BaseException as e:
        out.close()
        Path(dst).unlink(missing_ok=True)
        if isinstance(e, av.FFmpegError):
            raise MediaError(f"{failure}: {_ffmpeg_reason(e)}") from None
        raise
    out.close()


def _ffmpeg_reason(e: BaseException) -> str:
    return str(getattr(e, "strerror", None) or e).strip().splitlines()[0] if str(e) else type(e).__name__


def rotation_of(frame: Any | None) -> int:
    """Display rotation of a decoded frame (from the stream's display matrix), in degrees
    counter-clockwise, normalised to 0/90/180/270."""
    degrees = float(getattr(frame, "rotation", 0) or 0) if frame is not None else 0.0
    return round(degrees / 90.0) % 4 * 90


def probe(path: str | Path, *, verify: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS) -> MediaInfo:
    """Describe a video or image file; raise InputError (and subclasses) naming what is wrong with it."""
    p = check_file(path)
    image = identify_image(p, max_pixels=max_pixels)
    if image is not None:
        return MediaInfo(
            path=str(p),
            kind="image",
            container=image.format,
            size_bytes=p.stat().st_size,
            duration=0.0,
            bitrate=None,
            width=image.width,
            height=image.height,
            image=image,
        )
    return _probe_video(p, verify=verify, max_pixels=max_pixels)


def _probe_video(p: Path, *, verify: bool, max_pixels: int) -> MediaInfo:
    with open_input(p) as container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise UnsupportedMedia(f"{p}: has no video stream (streams: {', '.join(kinds)}); give a video or an image")
        vs = container.streams.video[0]
        cc = vs.codec_context
        codec = _codec_name(cc) if cc is not None else None
        if not codec or codec == "none" or _decoder_missing(cc.name):
            tag = getattr(cc, "codec_tag", "") if cc is not None else ""
            raise UnsupportedMedia(
                f"{p}: video codec {codec or 'unknown'}{f' (tag {tag!r})' if tag else ''} is not supported; "
                "re-encode to H.264, HEVC, VP9 or AV1"
            )
        if cc.width * cc.height > max_pixels:
            raise TooLarge(
                f"{p}: {cc.width}×{cc.height} video frames exceed the limit of {max_pixels:,} pixels; "
                "downscale it first or raise FRAMEFLEET_MAX_IMAGE_PIXELS"
            )
        if cc.width <= 0 or cc.height <= 0:
            raise UnsupportedMedia(f"{p}: video stream has no frame size; the file is damaged")
        declared_frames = int(vs.frames or 0)
        tb = vs.time_base or Fraction(1, 1000)
        audio = _audio_info(container)
        if verify:
            frames, pts, last_duration, first = _decode_all(p, container, vs)
            if declared_frames and frames < declared_frames:
                raise InputError(
                    f"{p}: truncated: the header declares {declared_frames} frames but only {frames} decode; "
                    "re-upload the complete file"
                )
        else:
            first = next(container.decode(vs), None)
            frames = declared_frames
            pts = []
            last_duration = 0
        rotation = rotation_of(first)
        intervals = [b - a for a, b in itertools.pairwise(pts) if b > a]
        median = statistics.median(intervals) if intervals else 0
        vfr = bool(median) and any(abs(d - median) > _VFR_TOLERANCE * median for d in intervals)
        if pts:
            duration = float((max(pts) - min(pts) + (last_duration or median)) * tb)
        else:
            duration = float(vs.duration * tb) if vs.duration else (container.duration or 0) / 1e6
        if frames == 0:
            raise InputError(f"{p}: the video stream holds no decodable frames; the file is damaged or empty")
        swap = rotation in (90, 270)
        width, height = (cc.height, cc.width) if swap else (cc.width, cc.height)
        video = VideoInfo(
            codec=codec,
            width=width,
            height=height,
            coded_width=cc.width,
            coded_height=cc.height,
            rotation=rotation,
            fps=frames / duration if duration > 0 else float(vs.average_rate or 0),
            frames=frames,
            duration=duration,
            vfr=vfr,
            pix_fmt=str(cc.pix_fmt or first.format.name),
            bitrate=int(vs.bit_rate) if vs.bit_rate else None,
            time_base=str(tb),
        )
        size = p.stat().st_size
        return MediaInfo(
            path=str(p),
            kind="video",
            container=container.format.name,
            size_bytes=size,
            duration=duration,
            bitrate=int(container.bit_rate) if container.bit_rate else int(size * 8 / max(duration, 1e-6)),
            width=width,
            height=height,
            video=video,
            audio=audio,
        )


def _codec_name(cc: Any) -> str:
    """The codec ("av1"), not the decoder FFmpeg picked for it ("libdav1d")."""
    if cc is None:
        return "unknown"
    return str(getattr(cc.codec, "canonical_name", None) or cc.name)


def _decoder_missing(codec: str) -> bool:
    try:
        av.codec.Codec(codec, "r")
    except Exception:
        return True
    return False


def _decode_all(p: Path, container: Any, vs: Any) -> tuple[int, list[int], int, Any]:
    """Decode every frame of the video stream; return (count, pts list, last frame duration, first frame)."""
    vs.thread_type = "AUTO"
    frames = 0
    pts: list[int] = []
    first = None
    last_duration = 0
    try:
        for frame in container.decode(vs):
            if first is None:
                first = frame
            frames += 1
            if frame.pts is not None:
                pts.append(int(frame.pts))
            last_duration = int(frame.duration or 0)
    except av.FFmpegError as e:
        where = f"{float(pts[-1] * vs.time_base):.2f} s" if pts else "the start"
        raise InputError(
            f"{p}: corrupt or truncated: decoding failed after frame {frames} (near {where}): "
            f"{_ffmpeg_reason(e)}; re-upload the complete file"
        ) from None
    pts.sort()
    return frames, pts, last_duration, first


def _audio_info(container: Any) -> AudioInfo | None:
    if not container.streams.audio:
        return None
    a = container.streams.audio[0]
    cc = a.codec_context
    duration = float(a.duration * a.time_base) if a.duration and a.time_base else None
    return AudioInfo(
        codec=_codec_name(cc),
        sample_rate=int(cc.sample_rate or 0),
        channels=int(cc.channels or 0),
        duration=duration,
        bitrate=int(a.bit_rate) if a.bit_rate else None,
    )
