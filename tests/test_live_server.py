"""The live WebSocket server against a real uvicorn on a free port, with a tiny random model: the protocol,
newest frame wins, prompt changes, admission, and every bad input of issue 15 (non-images, wrong sizes, empty
and huge prompts, a client that stops reading, a client that vanishes mid-frame)."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import cv2
import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from framefleet.live.engine import LiveEngine
from framefleet.live.server import create_app, decode_frame
from framefleet.media.samples import read_photo

from live_fixtures import LiveServer, coarse, solid, tiny_live_model

PHOTO = cv2.resize(read_photo("chelsea.png"), (96, 64), interpolation=cv2.INTER_AREA)  # [64, 96, 3]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> LiveEngine:
    cv2.setNumThreads(1)
    eng = LiveEngine.load(tiny_live_model(tmp_path_factory.mktemp("live")), threads=1)
    eng.encode("warm up")  # MiniLM loads once per module
    return eng


ServerFactory = Callable[..., Any]


@pytest.fixture
def serve(engine: LiveEngine) -> Iterator[ServerFactory]:
    """serve(**create_app options) → a started LiveServer, stopped after the test."""
    started: list[LiveServer] = []

    def start(**options: Any) -> LiveServer:
        srv = LiveServer(create_app(engine, warm_up=False, **options)).__enter__()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.__exit__()


def open_ws(srv: LiveServer, prompt: str | None = None, **kw: Any) -> ClientConnection:
    url = srv.ws_url + (f"?prompt={quote(prompt)}" if prompt is not None else "")
    return connect(url, compression=None, proxy=None, max_size=16 * 2**20, open_timeout=10, **kw)


@contextmanager
def session(srv: LiveServer, prompt: str | None = None) -> Iterator[ClientConnection]:
    """An admitted session, its opening prompt message read."""
    with open_ws(srv, prompt) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello == {"type": "prompt", "prompt": prompt or "", "from_frame": 0, "look": None, "looks": {}}
        yield ws


def jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return bytes(buf)


def png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    return bytes(buf)


def decode(data: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None, "the result is not a JPEG"
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def recv_json(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    msg = ws.recv(timeout=timeout)
    assert isinstance(msg, str), f"expected a text message, got {len(msg)} bytes"
    out: dict[str, Any] = json.loads(msg)
    return out


def recv_result(ws: ClientConnection, timeout: float = 10) -> tuple[dict[str, Any], np.ndarray, list[dict[str, Any]]]:
    """The next frame header and its decoded JPEG, and the text messages that came before it."""
    others: list[dict[str, Any]] = []
    while True:
        msg = recv_json(ws, timeout)
        if msg["type"] == "frame":
            data = ws.recv(timeout=timeout)
            assert isinstance(data, bytes)
            return msg, decode(data), others
        others.append(msg)


def metric(srv: LiveServer, name: str, **labels: str) -> float:
    text = httpx.get(f"{srv.url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)
    return time.monotonic() - t0


def local_look(
    engine: LiveEngine, prompt: str, messages: list[bytes], switch: tuple[int, str] | None = None
) -> np.ndarray:
    """What the server should answer to the last of `messages`: the same session run here on the same decoded
    frames (`switch`: (frame, prompt) from which another prompt applies)."""
    s = engine.session(prompt)
    out = np.zeros(0, np.uint8)
    for i, data in enumerate(messages):
        if switch is not None and i == switch[0]:
            s.set_prompt(switch[1])
        out = s.step(decode_frame(data, None))[0]
    return out


def cmad(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference at ¼ size (see live_fixtures.coarse): JPEG round trips cost about 2 here."""
    return float(np.abs(coarse(a) - coarse(b)).mean())


# --- the protocol -------------------------------------------------------------------------------------------------


def test_frames_in_looks_out_with_health_metrics_and_page(serve: ServerFactory, engine: LiveEngine) -> None:
    srv = serve()
    page = httpx.get(srv.url + "/", timeout=5)
    assert page.status_code == 200 and "<canvas" in page.text and "/app.js" in page.text
    js = httpx.get(srv.url + "/app.js", timeout=5)
    assert js.status_code == 200 and "getUserMedia" in js.text and "liveStats" in js.text
    with session(srv, "pencil sketch") as ws:
        assert httpx.get(srv.url + "/healthz").json()["sessions"] == {"active": 1, "max": 2}
        outs, sent = [], [jpeg(PHOTO), png(PHOTO), jpeg(PHOTO)]
        for i, data in enumerate(sent):
            ws.send(data)
            head, out, _ = recv_result(ws)
            assert head["seq"] == i and head["dropped"] == 0 and head["rescaled"] == 0
            assert (head["width"], head["height"]) == (96, 64) and out.shape == PHOTO.shape
            assert 0 < head["model_ms"] <= head["frame_ms"]
            outs.append(out)
    assert cmad(outs[-1], PHOTO) > 8, "the look changed nothing"
    assert cmad(outs[-1], local_look(engine, "pencil sketch", sent)) < 4, "not the session a local one runs"
    wait_for(lambda: metric(srv, "framefleet_live_sessions_active") == 0, 5, "the session to end")
    assert metric(srv, "framefleet_live_frames_total") == 3
    assert metric(srv, "framefleet_live_model_ms_count") == 3 and metric(srv, "framefleet_live_frame_ms_count") == 3


def test_prompt_change_mid_stream_takes_effect_from_the_reported_frame(
    serve: ServerFactory, engine: LiveEngine
) -> None:
    srv = serve()
    frame = jpeg(PHOTO)
    with session(srv, "warm sunset") as ws:
        for _ in range(3):
            ws.send(frame)
            recv_result(ws)
        ws.send(json.dumps({"type": "prompt", "prompt": "thermal camera"}))
        ws.send(frame)
        head, after, others = recv_result(ws)
        assert others == [{"type": "prompt", "prompt": "thermal camera", "from_frame": 3, "look": None, "looks": {}}]
        assert head["seq"] == 3
    switched = local_look(engine, "warm sunset", [frame] * 4, switch=(3, "thermal camera"))
    unswitched = local_look(engine, "warm sunset", [frame] * 4)
    assert cmad(switched, unswitched) > 8  # the two prompts look different
    assert cmad(after, switched) < 4, "frame 3 was not processed under the new prompt"


def test_newest_frame_wins(serve: ServerFactory, engine: LiveEngine) -> None:
    """30 frames sent at once, none read: the server skips to the newest; the last output is the last frame's."""
    srv = serve()
    colours = [(40 + 5 * i, 30, 140 - 3 * i) for i in range(29)] + [(30, 220, 60)]
    frames = [cv2.resize(solid(c), (320, 240)) for c in colours]
    with session(srv, "night vision") as ws:
        for f in frames:
            ws.send(jpeg(f))
        heads, outs = [], []
        while not heads or heads[-1]["seq"] < 29:
            head, out, _ = recv_result(ws)
            heads.append(head)
            outs.append(out)
    assert len(heads) <= 15, f"{len(heads)} results for 30 frames sent at once: frames were queued"
    assert heads[-1]["dropped"] == 30 - len(heads) > 0
    assert [h["seq"] for h in heads] == sorted(h["seq"] for h in heads)
    assert metric(srv, "framefleet_live_dropped_total") == 30 - len(heads)
    # the last output is the look of the last (green) frame, not of any earlier (purple) one
    looks = [local_look(engine, "night vision", [jpeg(f)] * 2).reshape(-1, 3).mean(0) for f in frames]
    last = outs[-1].reshape(-1, 3).mean(0)
    assert int(np.argmin([np.abs(last - lk).sum() for lk in looks])) == 29


def test_admission_refuses_the_next_session_at_once_with_1013(serve: ServerFactory) -> None:
    srv = serve(max_sessions=1)
    with session(srv) as first:
        t0 = time.monotonic()
        with open_ws(srv) as second:
            refusal = recv_json(second)
            with pytest.raises(ConnectionClosed) as closed:
                second.recv(timeout=5)
        assert time.monotonic() - t0 < 2
        assert refusal["type"] == "error" and refusal["code"] == "busy" and "try again" in refusal["message"]
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        first.send(jpeg(PHOTO))  # the admitted session is unaffected
        assert recv_result(first)[0]["seq"] == 0
    assert metric(srv, "framefleet_live_refused_total") == 1
    wait_for(lambda: httpx.get(srv.url + "/healthz").json()["sessions"]["active"] == 0, 5, "the slot to free")
    with session(srv) as again:  # the freed slot is taken by the next one
        again.send(jpeg(PHOTO))
        assert recv_result(again)[0]["seq"] == 0


# --- bad input ----------------------------------------------------------------------------------------------------


def test_non_image_and_bad_controls_get_errors_and_the_session_goes_on(serve: ServerFactory) -> None:
    srv = serve()
    with session(srv) as ws:
        ws.send(b"GIF89a this is not a picture at all")
        err = recv_json(ws)
        assert err["type"] == "error" and err["code"] == "bad_frame" and err["seq"] == 0
        ws.send(jpeg(PHOTO)[:200])  # a truncated JPEG
        assert recv_json(ws)["code"] == "bad_frame"
        for text in ("not json", json.dumps({"type": "dance"}), json.dumps([1, 2]), json.dumps({"type": "prompt"})):
            ws.send(text)
            assert recv_json(ws)["code"] == "bad_message", text
        ws.send(jpeg(PHOTO))
        head, out, _ = recv_result(ws)
        assert head["seq"] == 2 and out.shape == PHOTO.shape
    assert metric(srv, "framefleet_live_errors_total", code="bad_frame") == 2
    assert metric(srv, "framefleet_live_errors_total", code="bad_message") == 4


def test_twenty_bad_messages_in_a_row_close_with_1008(serve: ServerFactory) -> None:
    srv = serve()
    with session(srv) as ws:
        for _ in range(20):
            ws.send(b"\x00" * 64)
        codes = [recv_json(ws)["code"] for _ in range(20)]
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert codes == ["bad_frame"] * 20
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_wrong_sizes_are_rescaled_and_bad_sizes_refused(serve: ServerFactory) -> None:
    srv = serve()
    with session(srv) as ws:
        ws.send(jpeg(PHOTO))  # 96×64 fixes the session's size
        assert recv_result(ws)[0]["rescaled"] == 0
        ws.send(jpeg(cv2.resize(PHOTO, (192, 128))))
        head, out, _ = recv_result(ws)
        assert head["rescaled"] == 1 and out.shape == PHOTO.shape
        ws.send(png(np.zeros((20, 1300, 3), np.uint8)))  # a side over 1280
        assert recv_json(ws) | {"message": ""} == {"type": "error", "code": "bad_size", "seq": 2, "message": ""}
        ws.send(png(np.zeros((8, 8, 3), np.uint8)))  # under 16
        assert recv_json(ws)["code"] == "bad_size"
        ws.send(json.dumps({"type": "format", "format": "raw", "width": 96, "height": 64}))
        ws.send(np.ascontiguousarray(PHOTO).tobytes())
        head, out, _ = recv_result(ws)
        assert head["seq"] == 4 and out.shape == PHOTO.shape
        ws.send(PHOTO.tobytes()[:-3])  # raw, one pixel short
        assert recv_json(ws)["code"] == "bad_frame"
        ws.send(json.dumps({"type": "format", "format": "raw", "width": 4000, "height": 10}))
        assert recv_json(ws)["code"] == "bad_size"
        ws.send(json.dumps({"type": "format", "format": "jpeg"}))
        ws.send(jpeg(PHOTO))
        assert recv_result(ws)[0]["seq"] == 6
    assert metric(srv, "framefleet_live_rescaled_total") == 1


def test_empty_long_and_too_long_prompts(serve: ServerFactory, engine: LiveEngine) -> None:
    """Empty: the zero embedding (the trained net's pass-through). 10,000 characters: accepted, cut by the
    encoder. Over 20,000: refused with an error, the session keeps its look. A message over 8 MB: refused."""
    srv = serve()
    long_prompt = ("a slow warm sunset over the sea with golden light " * 200)[:10_000]
    frame = jpeg(PHOTO)
    with session(srv, "") as ws:
        ws.send(frame)
        empty_out = recv_result(ws)[1]
        ws.send(json.dumps({"type": "prompt", "prompt": long_prompt}))
        ws.send(frame)
        head, long_out, others = recv_result(ws)
        assert [(m["type"], len(m["prompt"]), m["from_frame"]) for m in others] == [("prompt", 10_000, 1)]
        ws.send(json.dumps({"type": "prompt", "prompt": "x" * 20_001}))
        assert recv_json(ws)["code"] == "bad_prompt"
        ws.send(os.urandom(9 * 2**20))
        assert recv_json(ws)["code"] == "too_large"
        ws.send(jpeg(PHOTO))
        head, _, others = recv_result(ws)
        assert head["seq"] == 3 and others == []  # the 9 MB message was frame 2
    with pytest.raises(InvalidStatus, match="414"):  # uvicorn's request line limit (8 KB) refuses it first
        open_ws(srv, "x" * 20_001)
    assert not engine.session("").cond.any(), "an empty prompt is the zero embedding"
    assert cmad(empty_out, local_look(engine, "", [frame])) < 4
    assert cmad(long_out, local_look(engine, "", [frame] * 2, switch=(1, long_prompt))) < 4
    assert cmad(long_out, local_look(engine, "", [frame] * 2)) > 8  # the long prompt is a look, not ignored
    assert metric(srv, "framefleet_live_errors_total", code="too_large") == 1


def test_a_too_long_prompt_in_the_url_is_refused_with_1008(engine: LiveEngine) -> None:
    """Behind a server without uvicorn's 8 KB request line limit (here Starlette's in-process test client)."""
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    with TestClient(create_app(engine, warm_up=False)) as client:
        with client.websocket_connect(f"/v1/live?prompt={'x' * 20_001}") as ws:
            assert ws.receive_json()["code"] == "bad_prompt"
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
        assert closed.value.code == 1008


def test_a_client_that_stops_reading_is_closed_and_others_go_on(serve: ServerFactory) -> None:
    """Big noisy results that the client never reads fill the socket buffers; then a send blocks, and after
    send_timeout_s the session is closed and its slot freed. Meanwhile frames keep arriving and replace each other
    in the one-slot mailbox (bounded memory), and a second session streams normally."""
    srv = serve(send_timeout_s=1.0)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)  # a small window: the server's buffer fills
    sock.connect(("127.0.0.1", srv.port))
    with connect(srv.ws_url, sock=sock, compression=None, proxy=None, max_queue=1, close_timeout=1) as slow:
        slow.send(json.dumps({"type": "format", "format": "raw", "width": 640, "height": 480}))
        t0 = time.monotonic()
        sent = 0
        while metric(srv, "framefleet_live_errors_total", code="slow_reader") == 0:
            assert time.monotonic() - t0 < 30, "the slow reader was never closed"
            slow.send(noise.tobytes())
            sent += 1
            time.sleep(0.02)
        closed_after = time.monotonic() - t0
        processed = metric(srv, "framefleet_live_frames_total")
        assert processed < sent and metric(srv, "framefleet_live_dropped_total") > 0
        wait_for(lambda: metric(srv, "framefleet_live_sessions_active") == 0, 3, "the slow session's slot to free")
        with session(srv) as ws:  # the server is fine
            ws.send(jpeg(PHOTO))
            assert recv_result(ws)[0]["seq"] == 0
        slow.socket.close()
    assert closed_after < 20


def test_a_second_session_streams_while_one_is_stalled(serve: ServerFactory) -> None:
    srv = serve(send_timeout_s=3.0)
    noise = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.connect(("127.0.0.1", srv.port))
    with connect(srv.ws_url, sock=sock, compression=None, proxy=None, max_queue=1, close_timeout=1) as slow:
        slow.send(json.dumps({"type": "format", "format": "raw", "width": 640, "height": 480}))
        for _ in range(15):
            slow.send(noise.tobytes())
        wait_for(lambda: metric(srv, "framefleet_live_dropped_total") > 0, 10, "the stalled session to drop frames")
        with session(srv) as ws:
            for i in range(5):
                ws.send(jpeg(PHOTO))
                head, _, _ = recv_result(ws, timeout=5)
                assert head["seq"] == i
            assert httpx.get(srv.url + "/healthz").json()["sessions"]["active"] == 2  # the stalled one still held
        slow.socket.close()


def _handshake(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET /v1/live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head[:100]
    return s


def test_disconnect_mid_frame_leaves_the_server_up(serve: ServerFactory) -> None:
    srv = serve()
    # half a binary WebSocket frame on the wire, then the connection drops
    s = _handshake(srv.port)
    payload = jpeg(PHOTO)
    mask = os.urandom(4)
    s.sendall(bytes([0x82, 0x80 | 127]) + struct.pack(">Q", len(payload)) + mask + payload[: len(payload) // 2])
    s.close()
    # a whole frame, and the client gone before its result is sent
    with open_ws(srv, close_timeout=1) as ws:
        ws.recv(timeout=5)
        ws.send(jpeg(cv2.resize(PHOTO, (960, 640))))
        ws.socket.shutdown(socket.SHUT_RDWR)
        ws.socket.close()
    wait_for(lambda: metric(srv, "framefleet_live_sessions_active") == 0, 5, "both sessions to clean up")
    assert httpx.get(srv.url + "/healthz").json()["status"] == "ok"
    with session(srv) as ws2:
        ws2.send(jpeg(PHOTO))
        assert recv_result(ws2)[0]["seq"] == 0
    assert metric(srv, "framefleet_live_errors_total", code="internal") == 0


def test_an_idle_session_is_closed(serve: ServerFactory) -> None:
    srv = serve(idle_timeout_s=0.5)
    with session(srv) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    assert metric(srv, "framefleet_live_errors_total", code="idle") == 1


def test_the_page_files_are_package_data() -> None:
    import tomllib

    root = Path(__file__).resolve().parents[1]
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["framefleet"]
    assert "live/page/*" in data
    assert {p.name for p in (root / "framefleet/live/page").iterdir()} >= {"index.html", "app.js"}
