"""The gateway in process (no sockets): its named parts, the defects found by fuzzing, the OpenAPI schema.
Workers are stood in by an httpx MockTransport, so each answer a worker might give can be forced."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from framefleet.serve.balance import RoutingState
from framefleet.serve.config import parse_fleet
from framefleet.serve.gateway import Gateway
from framefleet.serve.gateway_app import create_gateway_app

CONFIG = parse_fleet(
    {
        "regions": [
            {"name": "north", "workers": 2, "tasks": ["synthetic", "animate"]},
            {"name": "south", "workers": 1},
        ],
        "rtt_ms": {"north": {"south": 0}},
        "api_keys": {"key-a": "tenant-a"},
    }
)
URLS = {"north": ["http://n0", "http://n1"], "south": ["http://s0"]}
USER = {"Authorization": "Bearer key-a", "X-Region": "north"}
ADMIN = {"Authorization": "Bearer dev-admin-key"}


def worker_answering(fn: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(fn))


def ok_worker(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"result": {"echo": json.loads(request.content).get("echo")}, "service_ms": 5})


def call(
    method: str, path: str, worker: Callable[[httpx.Request], httpx.Response] = ok_worker, **kw: Any
) -> tuple[httpx.Response, Gateway]:
    app = create_gateway_app(CONFIG, URLS, seed=1)
    gw: Gateway = app.state.gateway
    gw.http = worker_answering(worker)  # the lifespan (health and traffic loops) does not run in process

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
            return await c.request(method, path, **kw)

    return asyncio.run(go()), gw


def test_the_gateway_holds_one_routing_state() -> None:
    _, gw = call("GET", "/health")
    assert isinstance(gw.routing, RoutingState)
    assert gw.routing.healthy == {"north": 2, "south": 1}


@pytest.mark.parametrize("path", ["/v1/x%00", "/v1/a%0Ab", "/v1/synthetic%23x", "/v1/nope", "/v1/synthetic%3Fa=1"])
def test_unknown_task_names_are_404_naming_the_tasks(path: str) -> None:
    r, _ = call("POST", path, headers=USER, json={})
    assert r.status_code == 404, r.text
    assert r.json()["error"]["reason"] == "not_found" and "synthetic" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [b"[" * 200_000, b'{"echo": NaN}', b'{"echo": Infinity}', b"\xff\xfe", b"[1, 2]", b'{"a": '],
)
def test_bad_json_of_any_kind_is_400(body: bytes) -> None:
    r, _ = call("POST", "/v1/synthetic", headers={**USER, "content-type": "application/json"}, content=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["reason"] == "malformed_json"


def test_an_empty_body_reaches_the_worker_as_an_empty_object() -> None:
    seen: list[bytes] = []

    def worker(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return ok_worker(request)

    r, _ = call("POST", "/v1/synthetic", worker, headers=USER)
    assert r.status_code == 200, r.text
    assert seen == [b"{}"]


def test_a_worker_reply_that_is_not_json_is_502() -> None:
    r, _ = call("POST", "/v1/synthetic", lambda _r: httpx.Response(200, text="<html>oops"), headers=USER, json={})
    assert r.status_code == 502 and r.json()["error"]["reason"] == "bad_upstream"
    r, _ = call("POST", "/v1/synthetic", lambda _r: httpx.Response(500, text="Internal"), headers=USER, json={})
    assert r.status_code == 502


def test_a_worker_error_passes_through_with_its_status() -> None:
    def bad_input(_r: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"type": "InputError", "reason": "bad_input", "message": "m"}})

    r, _ = call("POST", "/v1/synthetic", bad_input, headers=USER, json={})
    assert r.status_code == 400 and r.json()["error"]["reason"] == "bad_input"


def test_a_worker_that_drops_the_connection_is_503_worker_failed_retry_now() -> None:
    def dead(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    r, gw = call("POST", "/v1/synthetic", dead, headers=USER, json={})
    assert r.status_code == 503 and r.json()["error"]["reason"] == "worker_failed"
    assert r.headers["retry-after"] == "0"
    assert sum(not w.healthy for ws in gw.workers.values() for w in ws) == 1


def test_busy_worker_gets_one_second_try_in_the_region() -> None:
    seen: list[str] = []

    def first_busy(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if len(seen) == 1:
            return httpx.Response(503, json={"error": {"type": "Busy", "reason": "busy", "message": "busy"}})
        return ok_worker(request)

    r, _ = call("POST", "/v1/synthetic", first_busy, headers=USER, json={"echo": 7})
    assert r.status_code == 200 and r.json()["result"] == {"echo": 7}
    assert len(seen) == 2 and seen[0] != seen[1] and set(seen) <= {"n0", "n1"}


def test_a_task_goes_only_to_regions_that_host_it() -> None:
    hosts: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        return httpx.Response(200, json={"result": {"variant": None}, "service_ms": 1})

    app = create_gateway_app(CONFIG, URLS, seed=1)
    gw: Gateway = app.state.gateway
    for w in gw.workers["north"]:
        w.healthy = False  # north (the only animate region) is down: the south worker must not get it
    gw._count_slots()
    gw.http = worker_answering(record)

    async def go() -> tuple[str | None, str]:
        return gw.routing.pick("south", gw.rng, CONFIG.regions_hosting("animate"))

    assert asyncio.run(go()) == (None, "")
    assert gw.routing.pick("south", gw.rng, CONFIG.regions_hosting("synthetic"))[0] == "south"


def test_fleet_internals_need_an_admin_key() -> None:
    for path in ("/v1/fleet", "/metrics"):
        assert call("GET", path)[0].status_code == 401
        assert call("GET", path, headers={"Authorization": "Bearer key-a"})[0].status_code == 401  # a user key
        r, _ = call("GET", path, headers=ADMIN)
        assert r.status_code == 200
    assert "http://n0" in call("GET", "/v1/fleet", headers=ADMIN)[0].text
    assert call("GET", "/health")[0].status_code == 200  # liveness stays open


def test_missing_key_region_and_store_are_client_errors_with_reasons() -> None:
    r, _ = call("POST", "/v1/synthetic", json={})
    assert r.status_code == 401 and r.json()["error"]["reason"] == "bad_key"
    r, _ = call("POST", "/v1/synthetic", headers={**USER, "X-Region": "mars"}, json={})
    assert r.status_code == 400 and "north" in r.json()["error"]["message"]
    r, _ = call("POST", "/v1/animate", headers=USER, files={"image": ("a.png", b"x")})
    assert r.status_code == 503 and r.json()["error"]["reason"] == "no_store"


def test_openapi_describes_the_media_endpoints() -> None:
    r, _ = call("GET", "/openapi.json")
    spec = r.json()
    animate = spec["paths"]["/v1/animate"]["post"]
    form = animate["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert {"image", "asset_id", "prompt", "frames", "steps", "seed"} <= set(form)
    assert {"400", "401", "404", "409", "413", "429", "502", "503"} <= set(animate["responses"])
    assert "/v1/variants/{variant_id}/content" in spec["paths"]
    assert "/v1/enhance" in spec["paths"]
