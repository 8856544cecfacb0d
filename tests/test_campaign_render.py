"""The campaign timeline (pure) and renderer: lengths, Ken Burns windows that keep faces in frame, a real
1280x720 H.264 + AAC render that decodes to the planned duration, music, and nothing half-written on failure."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import pytest
import skimage.data as skdata
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from framefleet.campaign.dataset import FaceBox
from framefleet.campaign.render import draw_card, render
from framefleet.campaign.timeline import Card, plan_timeline
from framefleet.campaign.vision import detect_faces, phash
from framefleet.errors import InputError
from framefleet.media.probe import probe


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, tuple[int, int], tuple[FaceBox, ...], str]]:
    d = tmp_path_factory.mktemp("photos")
    out = []
    for i, name in enumerate(("astronaut", "coffee", "chelsea", "rocket")):
        rgb = getattr(skdata, name)()
        path = d / f"{name}.jpg"
        Image.fromarray(rgb).save(path, quality=90)
        out.append((str(path), (rgb.shape[1], rgb.shape[0]), detect_faces(rgb), f"ph{i}"))
    return out


def test_haar_finds_the_astronauts_face_and_phash_survives_recompression(tmp_path: Path) -> None:
    rgb = skdata.astronaut()
    faces = detect_faces(rgb)
    assert len(faces) == 1 and 0.01 < faces[0].area < 0.1
    Image.fromarray(rgb).resize((256, 256)).save(tmp_path / "small.jpg", quality=60)
    again = np.asarray(Image.open(tmp_path / "small.jpg"))
    assert (phash(rgb) ^ phash(again)).bit_count() <= 6  # the same picture, rescaled and recompressed
    assert (phash(rgb) ^ phash(skdata.coffee())).bit_count() > 16  # a different picture


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 10),
    w=st.integers(200, 2000),
    h=st.integers(200, 2000),
    fx=st.floats(0, 0.8),
    fy=st.floats(0, 0.8),
    fs=st.floats(0.05, 0.2),
)
def test_timelines_last_15_to_30_s_and_windows_keep_faces_inside_the_picture(
    n: int, w: int, h: int, fx: float, fy: float, fs: float
) -> None:
    face = FaceBox(fx, fy, fs, fs)
    tl = plan_timeline([(f"p{i}.jpg", (w, h), (face,), f"id{i}") for i in range(n)], ["Hi"], ["Bye"])
    assert 15.0 - 1e-6 <= tl.seconds <= 30.0 + 1e-6
    for shot in tl.shots:
        for win in (shot.start, shot.end):
            assert win.x >= -1e-6 and win.y >= -1e-6 and win.x + win.w <= w + 1e-6 and win.y + win.h <= h + 1e-6
            assert math.isclose(win.w / win.h, 16 / 9, rel_tol=1e-6)
            x0, y0, x1, y1 = fx * w, fy * h, (fx + fs) * w, (fy + fs) * h
            if x1 - x0 <= win.w and y1 - y0 <= win.h:  # a face that fits the window stays in it, all the way
                for t in (0.0, 0.5, 1.0):
                    assert shot.start.lerp(shot.end, t).contains(x0, y0, x1, y1)


def test_too_many_photos_for_30_s_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="curate fewer photos"):
        plan_timeline([(f"p{i}.jpg", (640, 480), (), f"i{i}") for i in range(40)], ["Hi"], ["Bye"])


def test_a_card_draws_long_names_without_clipping() -> None:
    rgb = draw_card(Card(("Happy Friends Day, " + "Bartholomew" * 6 + "!", "With you"), 2.0), 640, 360)
    assert rgb.shape == (360, 640, 3)
    text = (rgb.astype(int).sum(axis=2) > 600).any(axis=0)  # columns with light text
    assert text.any() and not text[0] and not text[-1]


def test_render_720p_h264_aac_with_the_planned_duration(photos: list, tmp_path: Path) -> None:
    tl = plan_timeline(photos, ["Happy Friends Day, Ada!"], ["With", "Grace and Alan"], per_photo_s=2.5)
    stats = render(tl, tmp_path / "v.mp4", threads=2)
    info = probe(tmp_path / "v.mp4")
    assert (info.width, info.height) == (1280, 720)
    assert info.video is not None and info.video.codec == "h264" and info.video.frames == tl.frames
    assert info.audio is not None and info.audio.codec == "aac"
    assert abs(info.duration - tl.seconds) < 0.1 and stats.frames == tl.frames
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]  # no temporary left behind
    with av.open(str(tmp_path / "v.mp4")) as c:  # the title card is what the first frame shows
        first = next(c.decode(video=0)).to_ndarray(format="rgb24")
    card = draw_card(tl.title, 1280, 720)
    assert np.abs(first.astype(int) - card.astype(int)).mean() < 6


def test_music_is_faded_in_and_trimmed(photos: list, tmp_path: Path) -> None:
    music = tmp_path / "tone.wav"
    with av.open(str(music), "w") as c:  # 60 s of a 440 Hz tone: longer than the video
        s = c.add_stream("pcm_s16le", rate=48000, layout="mono")
        t = np.arange(48000 * 60) / 48000
        pcm = (np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16)[None, :]
        for k in range(0, pcm.shape[1], 48000):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[:, k : k + 48000]), format="s16", layout="mono")
            frame.sample_rate = 48000
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    tl = plan_timeline(photos[:2], ["Hi"], ["Bye"], size=(320, 180), music=str(music))
    render(tl, tmp_path / "m.mp4")
    with av.open(str(tmp_path / "m.mp4")) as c:
        pcm_out = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    rate = 48000
    start, middle = np.abs(pcm_out[: rate // 10]).mean(), np.abs(pcm_out[len(pcm_out) // 2 :][:rate]).mean()
    assert middle > 0.1 and start < middle / 4  # faded in
    assert abs(len(pcm_out) / rate - tl.seconds) < 0.1  # trimmed to the video


def test_a_missing_photo_fails_before_any_output_exists(photos: list, tmp_path: Path) -> None:
    broken = [*photos[:2], (str(tmp_path / "gone.jpg"), (640, 480), (), "gone")]
    tl = plan_timeline(broken, ["Hi"], ["Bye"], size=(320, 180))
    with pytest.raises(InputError):
        render(tl, tmp_path / "out" / "v.mp4")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_bad_music_is_a_clear_error_and_writes_nothing(photos: list, tmp_path: Path) -> None:
    (tmp_path / "music.mp3").write_bytes(b"not music at all")
    tl = plan_timeline(photos[:2], ["Hi"], ["Bye"], size=(320, 180), music=str(tmp_path / "music.mp3"))
    with pytest.raises(InputError, match="music"):
        render(tl, tmp_path / "v.mp4")
    assert not (tmp_path / "v.mp4").exists()
