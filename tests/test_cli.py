"""The `framefleet` command end to end in a subprocess: one JSON object with --json, exit 2 and one line
on stderr for bad input, and nothing left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from framefleet.media import sample_path

from conftest import files_under, one_json, run_cli


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    tmp = tmp_path / "systmp"
    tmp.mkdir()
    return {"FRAMEFLEET_HOME": str(tmp_path / "home"), "TMPDIR": str(tmp), "FRAMEFLEET_DATABASE_URL": ""}


def test_ingest_list_show_encode(cli_env: dict[str, str]) -> None:
    r = run_cli("ingest", str(sample_path("bikes")), "--json", env=cli_env)
    assert r.returncode == 0, r.stderr
    asset = one_json(r.stdout)["asset"]
    assert asset["kind"] == "video" and [v["name"] for v in asset["variants"]] == ["original"]
    assert asset["variants"][0]["width"] == 640

    r = run_cli("assets", "list", "--json", env=cli_env)
    assert [a["id"] for a in one_json(r.stdout)["assets"]] == [asset["id"]]

    r = run_cli("encode", asset["id"], "--ladder", "240,144", "--json", env=cli_env)
    assert r.returncode == 0, r.stderr
    out = one_json(r.stdout)
    names = [v["name"] for v in out["asset"]["variants"]]
    assert names == ["original", "h264-240p", "h264-144p"] and len(out["encoded"]) == 2

    r = run_cli("encode", asset["id"], "--ladder", "240,144", "--json", env=cli_env)
    out = one_json(r.stdout)
    assert out["encoded"] == [] and len(out["existing"]) == 2  # idempotent

    r = run_cli("assets", "show", asset["id"], "--json", env=cli_env)
    assert len(one_json(r.stdout)["asset"]["variants"]) == 3

    r = run_cli("assets", "show", asset["id"], env=cli_env)  # human table
    assert r.returncode == 0 and "h264-240p" in r.stdout


def _assert_clean_failure(r: object, env: dict[str, str], pattern: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)  # type: ignore[attr-defined]
    lines = r.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr  # type: ignore[attr-defined]
    assert __import__("re").search(pattern, lines[0], __import__("re").I), lines[0]
    home = Path(env["FRAMEFLEET_HOME"])
    assert files_under(home / "blobs", home / "tmp", Path(env["TMPDIR"])) == []
    listed = run_cli("assets", "list", "--json", env=env)
    assert one_json(listed.stdout)["assets"] == []


@pytest.mark.parametrize(
    ("key", "pattern"),
    [
        ("missing", "no such file"),
        ("empty", "empty"),
        ("text", "not a video or image"),
        ("truncated", "truncated"),
        ("bomb", "3,600,000,000 pixels"),
        ("unknown_codec", "codec .* not supported"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_leaves_nothing(
    cli_env: dict[str, str], media: dict[str, Path], tmp_path: Path, key: str, pattern: str
) -> None:
    path = tmp_path / "does-not-exist.mp4" if key == "missing" else media[key]
    r = run_cli("ingest", str(path), env=cli_env)
    _assert_clean_failure(r, cli_env, pattern)
    r = run_cli("ingest", str(path), "--json", env=cli_env)
    err = one_json(r.stdout)["error"]
    assert r.returncode == 2 and err["type"] in {"InputError", "TooLarge", "UnsupportedMedia"} and err["message"]


def test_unknown_asset_and_bad_ladder(cli_env: dict[str, str]) -> None:
    r = run_cli("assets", "show", "nope", "--json", env=cli_env)
    assert r.returncode == 2 and one_json(r.stdout)["error"]["type"] == "NotFound"
    r = run_cli("ingest", str(sample_path("carphone")), "--json", env=cli_env)
    aid = one_json(r.stdout)["asset"]["id"]
    r = run_cli("encode", aid, "--ladder", "72x", env=cli_env)
    assert r.returncode == 2 and "rung" in r.stderr
    r = run_cli("encode", aid, "--codec", "mpeg2", env=cli_env)
    assert r.returncode == 2 and "unknown video codec" in r.stderr


def test_demo_json(cli_env: dict[str, str]) -> None:
    r = run_cli("demo", "--json", env=cli_env)
    assert r.returncode == 0, r.stderr
    out = one_json(r.stdout)
    assert [c["clip"] for c in out["clips"]] == ["bigbuckbunny", "bikes", "carphone"]
    assert out["clips"][0]["rungs"] == ["h264-720p", "h264-480p", "h264-360p"]
    rt = out["segment_roundtrip"]
    assert rt["segments"] == 4 and rt["frames_before"] == rt["frames_after"] == 250 and rt["timestamps_identical"]
    a = out["animate"]
    assert a["created"] and a["model"] == "student" and a["frames"] == 8 and a["denoiser_passes"] == 8
    assert Path(a["output"]).is_file()
    again = one_json(run_cli("demo", "--json", env=cli_env).stdout)
    assert all(not c["ingested"] and c["new_renditions"] == 0 for c in again["clips"])
    assert not again["animate"]["created"] and again["animate"]["variant"] == a["variant"]
    json.dumps(again)
