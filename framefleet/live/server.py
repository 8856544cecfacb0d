"""The live server: cameras stream frames over a WebSocket, each gets its look back, newest frame first.

    app = create_app(LiveEngine.load(), max_sessions=2)     # uvicorn.run(app, port=8700)

Routes: `GET /` the browser page (camera in, look out), `GET /healthz` (sessions active / max),
`GET /metrics` (Prometheus text), and the WebSocket `/v1/live?prompt=TEXT`.

Protocol of `/v1/live` (one session = one stream = one `LiveSession`, history carried frame to frame):
- Binary messages from the client are frames: JPEG or PNG bytes (the default), or raw RGB after the text
  control `{"type": "format", "format": "raw", "width": W, "height": H}` (every binary message then holds
  exactly W·H·3 bytes; `{"type": "format", "format": "jpeg"}` switches back). Frames are numbered from 0 in
  the order they arrive (`seq`), bad ones included.
- The server opens with `{"type": "prompt", "prompt": <the prompt of the URL>, "from_frame": 0}`. Under uvicorn
  the URL's request line is limited to 8 KB (HTTP 414 beyond): send longer prompts as a control message.
- Text messages from the client are JSON controls. `{"type": "prompt", "prompt": "..."}` changes the look
  from the next processed frame on; the server confirms with `{"type": "prompt", "prompt": ..., "from_frame":
  seq, "look": name | null, "looks": {name: weight}}` just before that frame's result (`look`: the trained look
  the prompt matched, live/engine.py; null: none, frames pass through). An empty prompt passes frames through;
  a prompt is cut at 10,000 characters (the encoder keeps its first 64 tokens anyway); over 20,000 characters
  it is refused.
- For each processed frame the server sends the text `{"type": "frame", "seq", "model_ms", "frame_ms",
  "dropped", "rescaled", "width", "height"}` and then the binary JPEG (quality 85) of the output. `frame_ms`
  runs from the frame's arrival to its output being encoded; `dropped` and `rescaled` count this session's
  frames so far.
- Newest frame wins: frames wait in a one-slot mailbox; a frame arriving before the previous one was taken
  replaces it (counted as dropped). The model never works on a stale frame, and nothing queues up.
- The first valid frame fixes the session's size; a later frame of another size is rescaled to it
  (`cv2.INTER_AREA`, counted in `rescaled`). A frame with a side under 16 or over 1280 px is refused.
- Errors are `{"type": "error", "code": ..., "message": ...}` (with `seq` when about a frame) and the session
  goes on: `bad_frame` (not an image, wrong raw length), `bad_size`, `bad_message` (not JSON, unknown
  control), `bad_prompt`, `too_large` (a message over 8 MB). After 20 bad messages in a row the server
  closes with 1008.
- Admission: at most `max_sessions` streams per process. One more is accepted, told
  `{"type": "error", "code": "busy"}` and closed at once with 1013 (Try Again Later).
- Slow readers: a send that does not complete within `send_timeout_s` closes the session (1008 when the
  socket still takes the close frame; its slot is freed either way). Outputs are sent one at a time, so the
  server holds at most one frame in the mailbox and one result being sent per session.
- A session that sends nothing for `idle_timeout_s` is closed (1000).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from framefleet.errors import InputError
from framefleet.live.engine import MAX_SIDE, MIN_SIDE, LiveEngine, LiveSession

PAGE_DIR = Path(__file__).resolve().parent / "page"
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
MAX_PROMPT_CHARS = 20_000
MAX_TEXT_CHARS = 64 * 1024  # a control message; longer ones are refused before parsing
MAX_BAD_IN_A_ROW = 20
JPEG_QUALITY = 85
MS_BUCKETS = (1, 2, 5, 10, 20, 30, 40, 50, 75, 100, 150, 200, 300, 500, 1000, 2000, 5000)


class LiveMetrics:
    """The server's Prometheus metrics, in their own registry (one per app)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.model_ms = Histogram(
            "framefleet_live_model_ms", "Model step per frame, ms", buckets=MS_BUCKETS, registry=r
        )
        self.frame_ms = Histogram(
            "framefleet_live_frame_ms", "Frame received to result sent, ms", buckets=MS_BUCKETS, registry=r
        )
        self.frames = Counter("framefleet_live_frames", "Frames processed", registry=r)
        self.dropped = Counter(
            "framefleet_live_dropped", "Frames replaced by a newer one before processing", registry=r
        )
        self.rescaled = Counter("framefleet_live_rescaled", "Frames rescaled to their session's size", registry=r)
        self.refused = Counter("framefleet_live_refused", "Connections refused: max sessions reached", registry=r)
        self.errors = Counter("framefleet_live_errors", "Errors by code", ["code"], registry=r)
        self.sessions = Gauge("framefleet_live_sessions_active", "Sessions streaming now", registry=r)


class SlowReader(Exception):
    """A send did not complete in time: the client stopped reading."""


class BadFrame(InputError):
    """A frame the session cannot use; `code` is the error code sent back (bad_frame, bad_size)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class CloseSession(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass
class Frame:
    seq: int
    image: np.ndarray  # [H, W, 3] uint8 RGB, at the session's size
    received: float  # perf_counter when its message arrived


@dataclass
class Stream:
    """One connection's state, shared by its receive and process tasks (both on the event loop)."""

    ws: WebSocket
    session: LiveSession
    send_timeout_s: float
    metrics: LiveMetrics
    mailbox: Frame | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    pending_prompt: tuple[str, np.ndarray] | None = None
    raw_size: tuple[int, int] | None = None  # (W, H) in raw mode
    size: tuple[int, int] | None = None  # (W, H): the first valid frame's
    seq: int = 0
    dropped: int = 0
    rescaled: int = 0
    bad_in_a_row: int = 0
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, *messages: str | bytes) -> None:
        """Send messages back to back (a frame's header and its JPEG stay together), or raise SlowReader."""
        async with self.send_lock:
            for m in messages:
                coro = self.ws.send_bytes(m) if isinstance(m, bytes) else self.ws.send_text(m)
                try:
                    await asyncio.wait_for(coro, self.send_timeout_s)
                except TimeoutError:
                    raise SlowReader() from None

    async def error(self, code: str, message: str, seq: int | None = None, bad: bool = True) -> None:
        self.metrics.errors.labels(code).inc()
        body: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if seq is not None:
            body["seq"] = seq
        await self.send(json.dumps(body))
        if bad:
            self.bad_in_a_row += 1
            if self.bad_in_a_row >= MAX_BAD_IN_A_ROW:
                self.metrics.errors.labels("too_many_bad").inc()
                raise CloseSession(1008, f"{MAX_BAD_IN_A_ROW} bad messages in a row")


def decode_frame(data: bytes, raw_size: tuple[int, int] | None) -> np.ndarray:
    """A frame message → [H, W, 3] uint8 RGB, or BadFrame. An image's size is checked from its header, before
    anything is decoded (a small PNG can declare a huge picture)."""
    if raw_size is not None:
        w, h = raw_size
        if len(data) != w * h * 3:
            raise BadFrame("bad_frame", f"raw frames are {w}×{h}×3 = {w * h * 3} bytes, got {len(data)}")
        return np.frombuffer(data, np.uint8).reshape(h, w, 3)
    from PIL import Image, UnidentifiedImageError

    try:
        im = Image.open(io.BytesIO(data))
        w, h = im.size  # from the header: nothing decoded yet
        if im.format not in ("JPEG", "PNG", "WEBP"):
            raise BadFrame("bad_frame", f"a {im.format} image; send JPEG or PNG")
        if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
            raise BadFrame("bad_size", f"frame {w}×{h}; each side must be {MIN_SIDE}–{MAX_SIDE} px, scale it first")
        return np.asarray(im.convert("RGB"))
    except Image.DecompressionBombError:
        raise BadFrame("bad_size", f"an image over {MAX_SIDE}×{MAX_SIDE} px; scale it first") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise BadFrame("bad_frame", "not a JPEG or PNG image (nor raw RGB: send a format control first)") from None


def fit(stream: Stream, image: np.ndarray) -> np.ndarray:
    """Check a decoded frame's size; rescale it to the session's size when it differs."""
    import cv2

    h, w = image.shape[:2]
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        raise BadFrame("bad_size", f"frame {w}×{h}; each side must be {MIN_SIDE}–{MAX_SIDE} px, scale it first")
    if stream.size is None:
        stream.size = (w, h)
    if (w, h) != stream.size:
        stream.rescaled += 1
        stream.metrics.rescaled.inc()
        image = cv2.resize(image, stream.size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)


def encode_jpeg(image: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return bytes(buf)


async def on_frame(stream: Stream, data: bytes, received: float) -> None:
    seq = stream.seq
    stream.seq += 1
    if len(data) > MAX_MESSAGE_BYTES:
        await stream.error("too_large", f"a frame of {len(data):,} bytes; frames must be under 8 MB", seq)
        return
    try:
        image = await asyncio.to_thread(lambda: fit(stream, decode_frame(data, stream.raw_size)))
    except BadFrame as e:
        await stream.error(e.code, e.message, seq)
        return
    stream.bad_in_a_row = 0
    if stream.mailbox is not None:  # newest frame wins
        stream.dropped += 1
        stream.metrics.dropped.inc()
    stream.mailbox = Frame(seq, image, received)
    stream.arrived.set()


async def on_control(stream: Stream, text: str, engine: LiveEngine) -> None:
    try:
        msg = json.loads(text)
    except ValueError:
        await stream.error("bad_message", 'text messages must be JSON controls, e.g. {"type": "prompt", ...}')
        return
    kind = msg.get("type") if isinstance(msg, dict) else None
    if kind == "prompt":
        prompt = msg.get("prompt")
        if not isinstance(prompt, str):
            await stream.error("bad_message", 'a prompt control needs "prompt": a string')
            return
        if len(prompt) > MAX_PROMPT_CHARS:
            await stream.error("bad_prompt", f"a prompt of {len(prompt):,} characters; keep it under 20,000")
            return
        cond = await asyncio.to_thread(engine.encode, prompt)
        stream.pending_prompt = (prompt, cond)
    elif kind == "format":
        await on_format(stream, msg)
    else:
        await stream.error("bad_message", f"unknown control {kind!r}: use type 'prompt' or 'format'")
        return
    stream.bad_in_a_row = 0


async def on_format(stream: Stream, msg: dict[str, Any]) -> None:
    fmt = msg.get("format")
    if fmt in ("jpeg", "png", "image"):
        stream.raw_size = None
        return
    w, h = msg.get("width"), msg.get("height")
    if fmt != "raw" or not isinstance(w, int) or not isinstance(h, int):
        await stream.error("bad_message", 'format: {"format": "raw", "width": W, "height": H} or {"format": "jpeg"}')
        return
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        await stream.error("bad_size", f"raw {w}×{h}: each side must be {MIN_SIDE}–{MAX_SIDE} px")
        return
    stream.raw_size = (w, h)


async def receive_loop(stream: Stream, engine: LiveEngine, idle_timeout_s: float) -> None:
    while True:
        try:
            message = await asyncio.wait_for(stream.ws.receive(), idle_timeout_s)
        except TimeoutError:
            stream.metrics.errors.labels("idle").inc()
            raise CloseSession(1000, f"idle for {idle_timeout_s:g} s") from None
        received = time.perf_counter()
        if message["type"] == "websocket.disconnect":
            return
        data, text = message.get("bytes"), message.get("text")
        if data is not None:
            await on_frame(stream, data, received)
        elif text is not None and len(text) > MAX_TEXT_CHARS:
            await stream.error("too_large", f"a control of {len(text):,} characters; prompts must be under 20,000")
        elif text is not None:
            await on_control(stream, text, engine)


async def process_loop(stream: Stream) -> None:
    m = stream.metrics
    while True:
        await stream.arrived.wait()
        stream.arrived.clear()
        frame, stream.mailbox = stream.mailbox, None
        if frame is None:
            continue
        if stream.pending_prompt is not None:
            (prompt, cond), stream.pending_prompt = stream.pending_prompt, None
            stream.session.set_cond(cond, prompt)
            await stream.send(prompt_message(stream.session.engine, prompt, frame.seq))

        def work(image: np.ndarray = frame.image) -> tuple[bytes, float]:
            out, model_ms = stream.session.step(image)
            return encode_jpeg(out), model_ms

        jpeg, model_ms = await asyncio.to_thread(work)
        frame_ms = (time.perf_counter() - frame.received) * 1e3
        w, h = stream.size or (0, 0)
        header = {"type": "frame", "seq": frame.seq, "model_ms": round(model_ms, 3), "frame_ms": round(frame_ms, 3),
                  "dropped": stream.dropped, "rescaled": stream.rescaled, "width": w, "height": h}  # fmt: skip
        await stream.send(json.dumps(header), jpeg)
        m.frames.inc()
        m.model_ms.observe(model_ms)
        m.frame_ms.observe((time.perf_counter() - frame.received) * 1e3)


def prompt_message(engine: LiveEngine, prompt: str, from_frame: int) -> str:
    """The confirmation of a prompt: from which frame, and which trained look(s) it selected (cached match)."""
    m = engine.encode.match(prompt)
    return json.dumps(
        {"type": "prompt", "prompt": prompt, "from_frame": from_frame, "look": m.look, "looks": m.weights}
    )


@dataclass
class Admission:
    max_sessions: int
    active: int = 0


async def serve_stream(
    ws: WebSocket, engine: LiveEngine, metrics: LiveMetrics, prompt: str, send_timeout_s: float, idle_timeout_s: float
) -> None:
    """One admitted connection, from accept to close."""
    if len(prompt) > MAX_PROMPT_CHARS:
        metrics.errors.labels("bad_prompt").inc()
        await _close(ws, 1008, "bad_prompt", f"a prompt of {len(prompt):,} characters; keep it under 20,000")
        return
    session = LiveSession(engine, (await asyncio.to_thread(engine.encode, prompt)).reshape(1, -1), prompt)
    stream = Stream(ws, session, send_timeout_s, metrics)
    try:
        await ws.accept()
        await stream.send(prompt_message(engine, prompt, 0))
    except (WebSocketDisconnect, SlowReader, RuntimeError, OSError):
        return  # gone before the first message
    tasks = [
        asyncio.create_task(receive_loop(stream, engine, idle_timeout_s)),
        asyncio.create_task(process_loop(stream)),
    ]
    close: tuple[int, str] | None = None
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            exc = t.exception()
            if isinstance(exc, CloseSession):
                close = (exc.code, exc.reason)
            elif isinstance(exc, SlowReader):
                metrics.errors.labels("slow_reader").inc()
                close = (1008, f"a send took over {send_timeout_s:g} s: read the results as they come")
            elif isinstance(exc, WebSocketDisconnect | RuntimeError | OSError):
                close = None  # the client went away (mid-frame, or while its result was being sent)
            elif exc is not None:
                metrics.errors.labels("internal").inc()
                close = (1011, f"internal error: {type(exc).__name__}")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if close is not None:
        with contextlib.suppress(Exception):  # a slow reader may not take even the close frame
            await asyncio.wait_for(ws.close(close[0], close[1][:120]), min(send_timeout_s, 1.0))


async def _close(ws: WebSocket, code: int, error: str, message: str) -> None:
    """Accept, send one error and close: how a connection is refused (the browser sees the reason)."""
    with contextlib.suppress(Exception):
        await ws.accept()
        await asyncio.wait_for(ws.send_text(json.dumps({"type": "error", "code": error, "message": message})), 1.0)
        await asyncio.wait_for(ws.close(code, message[:120]), 1.0)


def create_app(
    engine: LiveEngine,
    max_sessions: int = 2,
    send_timeout_s: float = 5.0,
    idle_timeout_s: float = 120.0,
    warm_up: bool = True,
) -> FastAPI:
    """The live server's app: page, health, metrics and the WebSocket stream (protocol: module docstring)."""
    if max_sessions < 1:
        raise InputError(f"max_sessions must be ≥ 1, got {max_sessions}")
    if warm_up:
        engine.encode("warm up")  # loads MiniLM now rather than in the first stream
    app = FastAPI(title="framefleet live", docs_url=None, redoc_url=None)
    metrics = LiveMetrics()
    admission = Admission(max_sessions)
    app.state.metrics, app.state.admission = metrics, admission

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse((PAGE_DIR / "index.html").read_text(), headers={"Cache-Control": "no-cache"})

    @app.get("/app.js")
    async def script() -> Response:
        js = (PAGE_DIR / "app.js").read_text()
        return Response(js, media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "sessions": {"active": admission.active, "max": max_sessions}})

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(metrics.registry).decode(), media_type="text/plain; version=0.0.4")

    @app.websocket("/v1/live")
    async def live(ws: WebSocket, prompt: str = "") -> None:
        if admission.active >= max_sessions:  # checked and taken with no await between: no race
            metrics.refused.inc()
            await _close(ws, 1013, "busy", f"all {max_sessions} live sessions are in use; try again later")
            return
        admission.active += 1
        metrics.sessions.set(admission.active)
        try:
            await serve_stream(ws, engine, metrics, prompt, send_timeout_s, idle_timeout_s)
        finally:
            admission.active -= 1
            metrics.sessions.set(admission.active)

    return app
