"""The `framefleet` command end to end in a subprocess: one JSON object with --json, exit 2 and one line
on stderr for bad input, and nothing left behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
    e = out["enhance"]  # one real clip enhanced: the gate's decision, the gain over Lanczos, what the file loses
    assert e["clip"] == "carphone" and e["created"] and e["gate"]["enhance"] and e["gate"]["rule"] == "pass"
    assert e["baseline"] == "lanczos" and e["gain_vmaf"] is not None and e["gain_psnr"] is not None
    assert abs(e["mezzanine_loss_psnr"]) <= 0.1 and e["mezzanine_loss_vmaf"] is not None
    assert {"model", "lanczos", "file"} <= set(e["metrics"]["proxy"]) and Path(e["output"]).is_file()
    a = out["animate"]
    assert a["created"] and a["model"] == "student" and a["frames"] == 8 and a["denoiser_passes"] == 8
    assert Path(a["output"]).is_file()
    again = one_json(run_cli("demo", "--json", env=cli_env).stdout)
    assert all(not c["ingested"] and c["new_renditions"] == 0 for c in again["clips"])
    assert not again["enhance"]["created"] and again["enhance"]["variant"] == e["variant"]
    assert again["enhance"]["gain_vmaf"] == e["gain_vmaf"]
    assert not again["animate"]["created"] and again["animate"]["variant"] == a["variant"]
    json.dumps(again)


def test_rungs_above_the_source_are_named_in_the_human_output(cli_env: dict[str, str]) -> None:
    aid = one_json(run_cli("ingest", str(sample_path("carphone")), "--json", env=cli_env).stdout)["asset"]["id"]
    r = run_cli("encode", aid, "--ladder", "720,144", "--json", env=cli_env)
    assert one_json(r.stdout)["skipped_rungs"] == [720]
    r = run_cli("encode", aid, "--ladder", "720,144", env=cli_env)  # 176×144: 720p would be an upscale
    assert r.returncode == 0 and "skipped 720p: above the source's 144p" in r.stdout, r.stdout
    r = run_cli("encode", aid, "--ladder", "1080,720", env=cli_env)
    assert "skipped 1080p, 720p" in r.stdout and "made one rendition at the source's own 144p instead" in r.stdout
    r = run_cli("encode", aid, "--ladder", "144", env=cli_env)
    assert r.returncode == 0 and "skipped" not in r.stdout


def test_assets_export_writes_a_variant_to_a_file(cli_env: dict[str, str], tmp_path: Path) -> None:
    asset = one_json(run_cli("ingest", str(sample_path("carphone")), "--json", env=cli_env).stdout)["asset"]
    rung = one_json(run_cli("encode", asset["id"], "--ladder", "144", "--json", env=cli_env).stdout)["encoded"][0]
    blobs = Path(cli_env["FRAMEFLEET_HOME"]) / "blobs"
    out = tmp_path / "out" / "rung.mp4"  # its folder is made
    r = run_cli("assets", "export", rung, "-o", str(out), "--json", env=cli_env)
    assert r.returncode == 0, r.stderr
    d = one_json(r.stdout)
    stored = blobs / d["variant"]["blob_key"]
    assert d["output"] == str(out) and d["bytes"] == stored.stat().st_size and out.read_bytes() == stored.read_bytes()
    original = asset["variants"][0]
    out.write_bytes(b"an older file")  # replaced whole, as enhance -o and animate -o replace theirs
    r = run_cli("assets", "export", original["id"], "-o", str(out), env=cli_env)
    assert r.returncode == 0 and "original" in r.stdout and str(out) in r.stdout.replace("\n", "")
    assert out.read_bytes() == sample_path("carphone").read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == ["rung.mp4"]  # no temporary file left
    for args, message in [
        (["nope", "-o", str(tmp_path / "x.mp4")], "no variant 'nope'"),
        ([rung, "-o", str(tmp_path / "x.png")], "give a path ending in .mp4"),
        ([rung, "-o", str(out.parent)], "is a folder"),
    ]:
        r = run_cli("assets", "export", *args, env=cli_env)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    r = run_cli("assets", "export", "nope", "-o", str(tmp_path / "x.mp4"), "--json", env=cli_env)
    assert r.returncode == 2 and one_json(r.stdout)["error"]["type"] == "NotFound"
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "x.png").exists()


def test_version() -> None:
    from importlib.metadata import version

    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout == f"framefleet {version('framefleet')}\n"


def test_help_keeps_square_brackets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich reads `[word]` in help text as markup and drops it (`capacity --help` showed 'TOML with []'): every
    bracketed text in every command's help must reach the screen."""
    import re

    import typer.rich_utils
    from typer.main import get_command
    from typer.testing import CliRunner

    from framefleet._cli import app
    from framefleet.cli import register_commands

    register_commands()
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 1000)  # one line per option: no wrapping to undo

    def walk(cmd: Any, path: list[str]) -> list[tuple[list[str], Any]]:  # typer's own click types: duck-typed
        subs = getattr(cmd, "commands", {}).values()
        return [(path, cmd)] + [x for sub in subs for x in walk(sub, [*path, sub.name or ""])]

    runner = CliRunner()
    commands = walk(get_command(app), [])
    assert ["capacity"] in [path for path, _ in commands]
    for path, cmd in commands:
        texts = [getattr(p, "help", None) or "" for p in cmd.params] + [cmd.help or ""]
        wanted = [m for t in texts for m in re.findall(r"\[[^\]]*\]+", t.replace("\\[", "["))]
        if not wanted:
            continue
        shown = runner.invoke(app, [*path, "--help"], terminal_width=1000).output
        for text in wanted:
            assert text in shown, f"framefleet {' '.join(path)} --help lost {text!r}"
