"""`framefleet campaign` commands as a user runs them: curate JSON, bad datasets (clear errors with --strict,
recorded problems without), rollout with its plot, the capacity plan from real renders, kill and resume."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from conftest import one_json, run_cli


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("campaign-cli") / "data"
    proc = run_cli("campaign", "synth", "--people", "40", "--out", str(out), "--seed", "5", "--json")
    assert proc.returncode == 0, proc.stderr
    assert one_json(proc.stdout)["people"] == 40
    return out


def _edit(data: Path, tmp_path: Path, name: str, lines: list[dict[str, object]]) -> Path:
    copy = tmp_path / "edited"
    shutil.copytree(data, copy)
    with (copy / name).open("a") as f:
        for row in lines:
            f.write(json.dumps(row) + "\n")
    return copy


def test_curate_prints_the_documented_json(data: Path) -> None:
    proc = run_cli("campaign", "curate", str(data), "--person", "p000001", "--person", "p000002", "--json")
    assert proc.returncode == 0, proc.stderr
    got = one_json(proc.stdout)
    assert [r["id"] for r in got["recipients"]] == ["p000001", "p000002"]
    for r in got["recipients"]:
        assert set(r) == {"id", "photos", "skipped"}
        assert (r["skipped"] is None) == bool(r["photos"])
        for p in r["photos"]:
            assert set(p) == {"id", "tagged", "role"} and p["role"] in ("closeup", "group")
        if r["photos"]:
            roles = [p["role"] for p in r["photos"]]
            assert roles.count("closeup") > len(roles) / 2


GHOST_TAG = {"id": "new", "owner": "p000001", "path": "x.jpg", "tagged": ["ghost"], "taken_at": "2025-01-01T10:00"}


@pytest.mark.parametrize(
    ("name", "row", "expect"),
    [
        ("people.jsonl", {"id": "zz", "name": "Zed", "tz": "Mars/Olympus", "locale": "en"}, "unknown time zone"),
        ("people.jsonl", {"id": "p000001", "name": "Again", "tz": "UTC", "locale": "en"}, "duplicate id"),
        ("exclusions.jsonl", {"person": "p000003", "excluded": "p000003", "reason": "blocked"}, "themselves"),
        (
            "photos.jsonl",
            {"id": "new", "owner": "p000001", "path": "x.jpg", "tagged": ["ghost"], "taken_at": "2025-01-01T10:00:00"},
            "unknown person",
        ),
    ],
)
def test_bad_rows_are_clear_errors_with_strict_and_recorded_problems_without(
    data: Path, tmp_path: Path, name: str, row: dict[str, object], expect: str
) -> None:
    copy = _edit(data, tmp_path, name, [row])
    strict = run_cli("campaign", "curate", str(copy), "--person", "p000001", "--strict", "--json")
    assert strict.returncode == 2 and expect in strict.stderr and f"{name}:" in strict.stderr
    lenient = run_cli("campaign", "curate", str(copy), "--person", "p000001", "--json")
    assert lenient.returncode == 0, lenient.stderr
    assert any(expect in p for p in one_json(lenient.stdout)["problems"])


def test_a_cycle_of_exclusions_is_fine_and_each_is_respected(data: Path, tmp_path: Path) -> None:
    cycle = [{"person": a, "excluded": b, "reason": "hidden"} for a, b in
             (("p000001", "p000002"), ("p000002", "p000003"), ("p000003", "p000001"))]  # fmt: skip
    copy = _edit(data, tmp_path, "exclusions.jsonl", cycle)
    proc = run_cli("campaign", "curate", str(copy), "--person", "p000001", "--person", "p000002", "--strict", "--json")
    assert proc.returncode == 0, proc.stderr
    got = {r["id"]: r for r in one_json(proc.stdout)["recipients"]}
    for who, hidden in (("p000001", "p000002"), ("p000002", "p000003")):
        assert all(hidden not in p["tagged"] for p in got[who]["photos"])


def test_unknown_person_and_missing_folder_are_clear_errors(data: Path, tmp_path: Path) -> None:
    proc = run_cli("campaign", "curate", str(data), "--person", "nobody")
    assert proc.returncode == 2 and "unknown 'nobody'" in proc.stderr
    proc = run_cli("campaign", "curate", str(tmp_path / "nothing"))
    assert proc.returncode == 2 and "not a folder" in proc.stderr
    proc = run_cli("campaign", "run", str(data), "--campaign", "x", "--date", "04/02/2027", "--local")
    assert proc.returncode == 2 and "YYYY-MM-DD" in proc.stderr
    proc = run_cli("campaign", "run", str(data), "--campaign", "x", "--date", "2027-02-04", "--size", "1279x720")
    assert proc.returncode == 2 and "even" in proc.stderr


def test_rollout_plans_waves_before_each_local_midnight_and_draws_the_load(data: Path, tmp_path: Path) -> None:
    png = tmp_path / "load.png"
    proc = run_cli("campaign", "rollout", str(data), "--date", "2027-02-04", "--plot", str(png), "--json")
    assert proc.returncode == 0, proc.stderr
    plan = one_json(proc.stdout)
    assert plan["feasible"] and png.stat().st_size > 10_000
    opens = plan["opens_at"]
    for wave in plan["waves"]:  # compared as instants: the openings carry each zone's own offset
        assert datetime.fromisoformat(wave["end"]) <= datetime.fromisoformat(opens[wave["zone"]])
    assert sum(w["count"] for w in plan["waves"]) == 40


def test_capacity_plan_measures_real_renders_and_sizes_the_cluster(data: Path) -> None:
    proc = run_cli("campaign", "plan", "--recipients", "3e8", "--deadline-hours", "36", "--dataset", str(data),
                   "--samples", "1", "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    plan = one_json(proc.stdout)
    per = plan["per_video"]
    assert per["rendered"] == 1 and per["cpu_s"] > 0.5 and per["bytes"] > 100_000 and per["peak_rss_mb"] > 50
    assert plan["machines"] > 10 and plan["wall_hours"] <= 36 and plan["storage_tb"] > 1
    assert {"cores_per_machine", "utilization", "views_per_video"} <= set(plan["assumptions"])
    bad = run_cli("campaign", "plan", "--recipients", "0", "--deadline-hours", "36")
    assert bad.returncode == 2


def test_kill_switch_before_a_run_starts_no_work(data: Path, tmp_path: Path, home: Path) -> None:
    first = run_cli("campaign", "run", str(data), "--campaign", "k", "--date", "2027-02-04", "--local", "--limit",
                    "1", "--size", "320x180", "--fps", "5", "--json")  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert run_cli("campaign", "kill", "k").returncode == 0
    killed = one_json(run_cli("campaign", "run", str(data), "--campaign", "k", "--date", "2027-02-04", "--local",
                              "--size", "320x180", "--json").stdout)  # fmt: skip
    assert killed["killed"] and killed["rendered"] == 0 and killed["already_done"] == 1
    other_day = run_cli("campaign", "run", str(data), "--campaign", "k", "--date", "2027-02-05", "--local")
    assert other_day.returncode == 2 and "is for 2027-02-04" in other_day.stderr
    assert run_cli("campaign", "kill", "k", "--resume").returncode == 0
    assert run_cli("campaign", "kill", "nope").returncode == 2


def test_run_starts_its_own_local_ray_by_default(data: Path, home: Path) -> None:
    """No --ray-address and no --local: a Ray instance of its own on free ports (Redis keeps 6379), shut after."""
    proc = run_cli("campaign", "run", str(data), "--campaign", "own", "--date", "2027-02-04", "--limit", "2",
                   "--workers", "2", "--size", "320x180", "--fps", "5", "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = one_json(proc.stdout)
    assert summary["rendered"] + sum(summary["skipped"].values()) == 2 and summary["failed"] == 0
