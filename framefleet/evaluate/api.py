"""The rating API and page: public, for the page and for scripts alike (docs/evaluate.md has curl examples).

    GET  /rate/{token}                          the rating page (HTML; its script and style under /rate-assets/)
    GET  /v1/rate/{token}/next                  the next unanswered item, or {"done": true}
    POST /v1/rate/{token}/votes                 one answer (JSON), stored at once
    GET  /v1/rate/{token}/items/{item}/{side}   the video on that side (left | right) of one of the rater's items
    GET  /v1/studies/{study_id}/results         the analysis as JSON (`evaluate/report.py`: Report.to_dict)
    GET  /studies/{study_id}/results            the same as a self-contained HTML page (inline SVG plots)

`next` answers `{"done": false, "item": ID, "left_url": ..., "right_url": ..., "progress": {"answered": N,
"total": M}, "study": NAME}`; when every item is answered, `{"done": true, "progress": ...}`. The item's kind
(pair, gold, trap) and its variants are never shown: the study is blind.

A vote is `{"item": ID, "left_score": 1..5, "right_score": 1..5, "preference": "left"|"right"|"same",
"artifacts": [..]}` with artifacts from blur, ringing, flicker, colour shift, faces or text changed, other. The
answer is 201 `{"vote": ID, "progress": ..., "done": bool}`.

Errors are `{"error": {"type", "reason", "message"}}`: 404 `unknown_token` (no such rater link) or `not_found`
(an item that is not in this rater's session); 409 `already_voted` (the item is answered: the first answer
stands, nothing is counted twice); 422 `invalid_vote` (a score outside 1–5, an unknown preference or artifact, a
missing or unknown field); 400 `malformed_json` (the body is not a JSON object). A client's mistake is never a 500.

The results name the variants and the raters (by id): they unblind the study. `add_study_routes(app, store,
authorize_results=...)` puts them behind a check (the gateway asks for an admin key); `study serve` leaves them
open, like the rest of that local server. An unknown study is 404 `not_found`; a study with no votes yet is 200
with `"ready": false` and the reason in `"message"` (the page says so). The analysis runs once per vote count
(votes are only ever added) and is reused until a new vote arrives.

    app = create_study_app(Store.open())      # uvicorn.run(app, port=8800); or add_study_routes(gateway_app, store)
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from framefleet.errors import FramefleetError, NotFound
from framefleet.evaluate.ballot import parse_ballot
from framefleet.serve.http import error_response, parse_json_object
from framefleet.store import Store
from framefleet.store.studies import StudyStore

if TYPE_CHECKING:  # the analysis stack (numpy, scipy, matplotlib) loads on the first results request only
    from framefleet.evaluate.report import Report

PAGE_DIR = Path(__file__).resolve().parent / "page"
PAGE_ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}
MAX_VOTE_BYTES = 16 * 1024
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "the body is not a JSON object (reason malformed_json)"},
    404: {"description": "unknown rater token (reason unknown_token) or an item not in the session (not_found)"},
    409: {"description": "the item is already answered (reason already_voted); the first answer stands"},
    413: {"description": "a vote body over 16 KB (reason too_large)"},
    422: {"description": "a field is missing or out of range (reason invalid_vote)"},
}
RESULTS_ERRORS: dict[int | str, dict[str, Any]] = {404: {"description": "no such study (reason not_found)"}}
RESULTS_CACHE = 8  # studies whose last analysis is kept


def _error(e: FramefleetError) -> JSONResponse:
    # no Retry-After on 409: a repeated vote is final, not "try again later"
    return error_response(e.http_status, type(e).__name__, e.reason, e.message)


def _guarded(fn: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    """A handler whose framefleet errors become their HTTP answer (whatever app the routes are added to)."""
    import functools

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return await fn(*args, **kwargs)
        except FramefleetError as e:
            return _error(e)

    return wrapper


def _progress(answered: int, total: int) -> dict[str, int]:
    return {"answered": answered, "total": total}


def add_study_routes(app: FastAPI, store: Store, *, authorize_results: Callable[[Request], None] | None = None) -> None:
    """Add the rating API and page, and the results (JSON and page), to `app` (the study server's own app, or the
    gateway's). `authorize_results(request)` raises a FramefleetError (say, Unauthorized) to refuse the results."""
    ss = StudyStore(store)

    @_guarded
    async def next_item(token: str) -> Response:
        rater, item, answered = await asyncio.to_thread(ss.next_item, token)
        progress = _progress(answered, len(rater.items))
        if item is None:
            return JSONResponse({"done": True, "progress": progress})
        study = await asyncio.to_thread(ss.get, rater.study_id)
        base = f"/v1/rate/{token}/items/{item.id}"
        return JSONResponse({"done": False, "item": item.id, "left_url": f"{base}/left",
                             "right_url": f"{base}/right", "progress": progress, "study": study.name})  # fmt: skip

    @_guarded
    async def vote(token: str, request: Request) -> Response:
        raw = await request.body()
        if len(raw) > MAX_VOTE_BYTES:
            return error_response(413, "TooLarge", "too_large", f"a vote is at most {MAX_VOTE_BYTES} bytes")
        await asyncio.to_thread(ss.rater, token)  # an unknown token is a 404 before the body is judged
        ballot = parse_ballot(parse_json_object(raw))
        row, answered = await asyncio.to_thread(
            lambda: ss.record_vote(token, ballot.item, left_score=ballot.left_score, right_score=ballot.right_score,
                                   preference=ballot.preference, artifacts=ballot.artifacts)
        )  # fmt: skip
        total = len((await asyncio.to_thread(ss.rater, token)).items)
        body = {"vote": row.id, "progress": _progress(answered, total), "done": answered >= total}
        return JSONResponse(body, status_code=201)

    @_guarded
    async def video(token: str, item: str, side: str) -> Response:
        variant = await asyncio.to_thread(ss.item_video, token, item, side)
        assert variant.blob_key is not None
        path = store.blobs.open_path(variant.blob_key)
        # no file name and no variant id in the answer: the rater must not learn which version is which
        return FileResponse(path, media_type="video/mp4", headers={"Cache-Control": "private, max-age=3600"})

    async def page(token: str) -> Response:
        try:
            await asyncio.to_thread(ss.rater, token)
        except NotFound:
            return HTMLResponse("<!doctype html><title>Unknown link</title><p>This rating link is not known. "
                                "Check that you copied all of it.</p>", status_code=404)  # fmt: skip
        text = (PAGE_DIR / "index.html").read_text().replace("{{TOKEN}}", html.escape(token, quote=True))
        return HTMLResponse(text, headers={"Cache-Control": "no-store"})

    async def asset(name: str) -> Response:
        if name not in PAGE_ASSETS:
            return error_response(404, "NotFound", "not_found", f"no page asset {name!r}")
        return Response((PAGE_DIR / name).read_text(), media_type=PAGE_ASSETS[name],
                        headers={"Cache-Control": "no-cache"})  # fmt: skip

    app.add_api_route("/v1/rate/{token}/next", next_item, methods=["GET"], responses=ERRORS,
                      summary="The rater's next unanswered item (two video URLs) or {done: true}")  # fmt: skip
    app.add_api_route("/v1/rate/{token}/votes", vote, methods=["POST"], status_code=201, responses=ERRORS,
                      summary="Store one answer: two 1-5 scores, a preference and artifact flags",
                      openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                          "schema": VOTE_SCHEMA}}}})  # fmt: skip
    app.add_api_route("/v1/rate/{token}/items/{item}/{side}", video, methods=["GET"], response_class=FileResponse,
                      responses={**ERRORS, 206: {"description": "a byte range"}},
                      summary="The video on one side (left | right) of an item of the rater's session")  # fmt: skip
    app.add_api_route("/rate/{token}", page, methods=["GET"], response_class=HTMLResponse, include_in_schema=False)
    app.add_api_route("/rate-assets/{name}", asset, methods=["GET"], include_in_schema=False)
    _add_results_routes(app, store, authorize_results)


class _ResultsCache:
    """The last report (and its page) per study, keyed by the study's vote count; one analysis at a time."""

    def __init__(self, store: Store) -> None:
        self.store, self.ss = store, StudyStore(store)
        self.lock = asyncio.Lock()
        self.entries: dict[str, tuple[int, Report, str | None]] = {}

    async def get(self, study_id: str, *, page: bool) -> tuple[Report, str | None]:
        from framefleet.evaluate.report import build_report, render_html

        async with self.lock:
            await asyncio.to_thread(self.ss.get, study_id)  # NotFound first
            version = await asyncio.to_thread(self.ss.vote_count, study_id)
            cached = self.entries.get(study_id)
            if cached is None or cached[0] != version:
                report = await asyncio.to_thread(build_report, self.store, study_id)
                cached = (report.n_votes, report, None)
            if page and cached[2] is None:
                cached = (cached[0], cached[1], await asyncio.to_thread(render_html, cached[1]))
            self.entries.pop(study_id, None)
            self.entries[study_id] = cached
            while len(self.entries) > RESULTS_CACHE:
                self.entries.pop(next(iter(self.entries)))
            return cached[1], cached[2]


def _error_page(status: int, title: str, message: str) -> HTMLResponse:
    body = f"<!doctype html><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1><p>{html.escape(message)}"
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def _add_results_routes(app: FastAPI, store: Store, authorize: Callable[[Request], None] | None) -> None:
    cache = _ResultsCache(store)

    @_guarded
    async def results_json(study_id: str, request: Request) -> Response:
        if authorize is not None:
            authorize(request)
        report, _ = await cache.get(study_id, page=False)
        return JSONResponse(report.to_dict(), headers={"Cache-Control": "no-store"})

    async def results_page(study_id: str, request: Request) -> Response:
        try:
            if authorize is not None:
                authorize(request)
            _, text = await cache.get(study_id, page=True)
        except NotFound as e:
            return _error_page(404, "Unknown study", e.message)
        except FramefleetError as e:
            return _error_page(e.http_status, "Results unavailable", e.message)
        return HTMLResponse(text or "", headers={"Cache-Control": "no-store"})

    responses = dict(RESULTS_ERRORS)
    if authorize is not None:
        responses[401] = {"description": "the results need an admin key (reason bad_key)"}
    app.add_api_route("/v1/studies/{study_id}/results", results_json, methods=["GET"], responses=responses,
                      summary="A study's analysis: screening, MOS ± CI, preferences, Bradley–Terry ± CI, metrics, "
                      "gain and the gate (ready: false until it has votes)")  # fmt: skip
    app.add_api_route("/studies/{study_id}/results", results_page, methods=["GET"], response_class=HTMLResponse,
                      include_in_schema=False)  # fmt: skip


VOTE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["item", "left_score", "right_score", "preference"],
    "properties": {
        "item": {"type": "string"},
        "left_score": {"type": "integer", "minimum": 1, "maximum": 5},
        "right_score": {"type": "integer", "minimum": 1, "maximum": 5},
        "preference": {"type": "string", "enum": ["left", "right", "same"]},
        "artifacts": {"type": "array", "items": {"type": "string", "enum": [
            "blur", "ringing", "flicker", "colour shift", "faces or text changed", "other"]}},
    },
    "additionalProperties": False,
}  # fmt: skip


def create_study_app(store: Store) -> FastAPI:
    """The study server (`framefleet study serve`): the rating page and API, the results, and /health."""
    app = FastAPI(title="framefleet studies", version="1", docs_url=None, redoc_url=None,
                  description="Side-by-side rating of video variants. Every error body is {error: {type, reason, "
                  "message}}.")  # fmt: skip

    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.add_api_route("/health", health, methods=["GET"], summary="Liveness")
    add_study_routes(app, store)
    return app


__all__ = ["add_study_routes", "create_study_app"]
