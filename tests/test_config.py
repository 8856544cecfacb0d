"""One TOML schema for regions: the fleet (serve/config.py) and the simulator (sim/scenario.py) read the same
`[[regions]]`, `[rtt_ms]` and `[service]` tables with the same functions, so one file can be both."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from framefleet.errors import InputError
from framefleet.serve.config import load_fleet, parse_fleet
from framefleet.sim.scenario import load_regions, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parent.parent

BOTH = """
admin_keys = ["an-admin-key"]

[simulation]
duration_s = 600
seed = 3

[[regions]]
name = "north"
workers = 3
tasks = ["synthetic", "enhance"]
utc_offset_h = 1
share = 2

[[regions]]
name = "south"
gpus = 2

[rtt_ms]
north = { south = 40 }

[service]
mean_s = 1.5
spread_s = 0.25
kind = "uniform"

[traffic]
target_utilization = 0.7

[demand]
daily_requests = 86400

[routing]
policy = "local-only"
retry_after_s = 2

[api_keys]
key-a = "tenant-a"
"""


def _both(text: str) -> list[Any]:
    """What each reader makes of one text, or the InputError it raises."""
    data = tomllib.loads(text)
    out: list[Any] = []
    for parse in (parse_fleet, parse_scenario):
        try:
            out.append(parse(data, "both.toml"))
        except InputError as e:
            out.append(e)
    return out


def test_one_file_is_a_fleet_and_a_scenario() -> None:
    fleet, scenario = _both(BOTH)
    assert fleet.region_names == scenario.region_names == ["north", "south"]
    assert {r.name: r.workers for r in fleet.regions} == scenario.gpus == {"north": 3, "south": 2}
    assert fleet.service == scenario.service and fleet.service.mean_s == 1.5 and fleet.service.spread_s == 0.25
    assert fleet.rtt_ms == scenario.rtt_ms and fleet.rtt_ms["south"]["north"] == 40
    assert fleet.traffic == scenario.traffic and fleet.traffic.target_utilization == 0.7
    assert fleet.gateway.retry_after_s == 2 and scenario.retry_after_s == 2
    # each reader keeps what it needs: tasks and keys for the fleet; time zones, shares and demand for the sim
    assert fleet.regions[0].tasks == ("synthetic", "enhance") and fleet.api_keys == {"key-a": "tenant-a"}
    assert fleet.admin_keys == frozenset({"an-admin-key"})
    assert scenario.regions[0].utc_offset_h == 1 and scenario.shares == pytest.approx({"north": 2 / 3, "south": 1 / 3})
    assert scenario.demand.daily_requests == 86400 and scenario.duration_s == 600 and scenario.policy == "local-only"


def test_every_shipped_fleet_and_scenario_loads_and_reads_the_same_way_in_both() -> None:
    examples, scenarios = sorted((ROOT / "examples").glob("*.toml")), sorted((ROOT / "scenarios").glob("*.toml"))
    assert len(examples) >= 3 and len(scenarios) >= 7
    for path in examples + scenarios:
        fleet = load_fleet(path)
        as_scenario = parse_scenario({"demand": {"daily_requests": 1000}, **tomllib.loads(path.read_text())}, "x")
        assert {r.name: r.workers for r in fleet.regions} == as_scenario.gpus, path
        assert fleet.service == as_scenario.service and fleet.traffic == as_scenario.traffic, path
    for path in scenarios:
        assert load_scenario(path).gpus == parse_scenario(tomllib.loads(path.read_text()), "x").gpus
    three = load_fleet(ROOT / "examples" / "regions-3.toml")  # milliseconds, as ever
    assert [r.workers for r in three.regions] == [4, 3, 2] and three.service.mean_s == 0.2
    assert three.service.spread_s == 0.05 and three.capacity_rps == pytest.approx(45.0)
    regions, rtt = load_regions(ROOT / "examples" / "regions-3.toml")  # the capacity planner reads fleets too
    assert [r.gpus for r in regions] == [4, 3, 2] and rtt["us-east"]["ap-south"] == 190


def test_milliseconds_and_seconds_mean_the_same_service() -> None:
    base = BOTH.replace("mean_s = 1.5\nspread_s = 0.25", "mean_ms = 1500\nspread_ms = 250")
    fleet, scenario = _both(base)
    assert fleet.service.mean_s == scenario.service.mean_s == 1.5 and scenario.service.spread_s == 0.25


BAD = [
    # (old, new, message): both readers name the same field
    ('name = "south"\ngpus = 2', 'name = "south"\ngpus = 2\nworkers = 2', "both.toml: regions[1].gpus: workers = 2"),
    ("mean_s = 1.5", "mean_s = 1.5\nmean_ms = 1500", "service.mean_ms: in milliseconds, but mean_s and spread_s"),
    ("spread_s = 0.25", "spread_ms = 250", "one unit per table"),
    ('kind = "uniform"', 'kind = "gaussian"', "service.kind: unknown distribution 'gaussian'"),
    ("mean_s = 1.5", "mean_s = 0", "service.mean_s: must be > 0"),
    ("gpus = 2", "gpus = 1.5", "regions[1].gpus: expected a whole number"),
    ("workers = 3", "workers = true", "regions[0].workers: expected a whole number"),
    ("utc_offset_h = 1", "utc_offset_h = 15", "regions[0].utc_offset_h: must be ≤ 14"),
    ("share = 2", "share = 0", "regions[0].share: must be > 0"),
    ('tasks = ["synthetic", "enhance"]', 'tasks = ["paint"]', "regions[0].tasks: unknown task 'paint'"),
    ("share = 2", "share = 2\ncolour = 'red'", "regions[0]: unknown key 'colour'"),
    ("[demand]", "[demnad]", "unknown key 'demnad'"),
    ("[traffic]", "[traffic]\nhysteresis = -1", "traffic.hysteresis: must be ≥ 0"),
    ('policy = "local-only"', 'policy = "local-only"\nperiod_s = 0', "routing.period_s: must be > 0"),
    ("retry_after_s = 2", "target_utilization = 0.9", "routing.target_utilization: also given as traffic."),
    ("[api_keys]", "[gateway]\nretry_after_s = 1\n\n[api_keys]", "routing.retry_after_s: also given as gateway."),
    ("north = { south = 40 }", "north = { west = 40 }", "rtt_ms.north.west: unknown region"),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD)
def test_both_readers_name_the_same_field(old: str, new: str, message: str) -> None:
    assert old in BOTH
    for result in _both(BOTH.replace(old, new, 1)):
        assert isinstance(result, InputError) and message in str(result), result


def test_each_reader_keeps_its_own_floor_and_its_own_word_for_a_missing_count() -> None:
    zero = BOTH.replace("gpus = 2", "gpus = 0")  # a region without GPUs: simulable, not servable
    fleet, scenario = _both(zero)
    assert isinstance(fleet, InputError) and "regions[1].gpus: expected a whole number ≥ 1, got 0" in str(fleet)
    assert scenario.gpus == {"north": 3, "south": 0}
    fleet, scenario = _both(BOTH.replace('name = "south"\ngpus = 2', 'name = "south"'))
    assert "regions[1].workers: missing" in str(fleet) and "regions[1].gpus: missing" in str(scenario)


def test_fleet_files_load_unchanged_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "both.toml"
    path.write_text(BOTH)
    assert load_fleet(path).region_names == load_scenario(path).region_names == ["north", "south"]
    assert load_scenario(path).name == "both"


def test_the_config_module_stays_pure() -> None:
    code = (
        "import json, sys\nimport framefleet.serve.config, framefleet.sim.scenario\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'fastapi', 'starlette', 'av', 'cv2', 'torch'})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout) == []
