"""The gateway's media endpoints: uploads, animate and enhance, and the stored results.

    curl -H "Authorization: Bearer dev-key" -H "X-Region: us-east" -H "Idempotency-Key: 7f3c" \
         -F image=@photo.jpg -F prompt="pan left" -F seed=3 http://127.0.0.1:8100/v1/animate
    → {"variant": {"id": ..., "frame_count": 8, ...}, "content_url": "/v1/variants/<id>/content", ...}

The gateway stores the upload (ingest: probed, deduplicated by content per tenant), then a worker runs the
task against the same store and answers with the new variant. A form is read within the body limit first,
then parsed, so an oversized upload is refused with 413 before anything is stored; a file that is not the
kind the task takes (a video for animate, an image for enhance) is refused with 400 before it is stored.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.datastructures import UploadFile

from framefleet.campaign.delivery import deliver
from framefleet.errors import InputError, NotFound, NotYet
from framefleet.serve.gateway import Gateway
from framefleet.serve.gateway_app import ERROR_RESPONSES
from framefleet.serve.hosted import ANIMATE_PARAMS, ENHANCE_PARAMS
from framefleet.serve.http import from_error
from framefleet.store.views import asset_dict, variant_dict

MEDIA_FIELDS = {"animate": ("image", ANIMATE_PARAMS), "enhance": ("video", ENHANCE_PARAMS)}


def form_params(form: Any, allowed: dict[str, type], file_field: str) -> dict[str, Any]:
    """Typed task parameters from a form's text fields; an unknown field or a value of the wrong type is a
    400 that names it."""
    out: dict[str, Any] = {}
    for name, value in form.multi_items():
        if name in (file_field, "asset_id"):
            continue
        kind = allowed.get(name)
        if kind is None:
            raise InputError(f"unknown form field {name!r}; allowed: {', '.join([file_field, 'asset_id', *allowed])}")
        if not isinstance(value, str):
            raise InputError(f"form field {name!r} must be text, not a file")
        out[name] = _typed(name, value, kind)
    return out


def _typed(name: str, value: str, kind: type) -> Any:
    try:
        if kind is bool:
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(value)
            return value.lower() in ("true", "1")
        if kind is int:
            return int(value)
        if kind is float:
            x = float(value)
            if x != x or x in (float("inf"), float("-inf")):
                raise ValueError(value)
            return x
        return value
    except ValueError:
        raise InputError(f"form field {name!r} must be a finite {kind.__name__}, got {value!r}") from None


async def read_form(gw: Gateway, request: Request) -> Any:
    body = await gw.read_body(request)  # within the size limit, or 413
    # Starlette parses a form from the cached body when there is one: the limit above holds for the parse too
    request._body = body
    try:
        return await request.form(max_files=1, max_fields=32)
    except Exception as e:  # a malformed multipart body (bad boundary, truncated part, ...)
        raise InputError(f"the body is not a valid multipart form: {e}") from None


async def source_asset(gw: Gateway, form: Any, file_field: str, kind: str, tenant: str) -> str:
    """The asset the task runs on: an uploaded file (checked to be a `kind`, then stored) or an asset id."""
    store = gw.store_or_503()
    upload, asset_id = form.get(file_field), form.get("asset_id")
    if isinstance(upload, UploadFile) == bool(asset_id):
        raise InputError(f"give either a file in the form field {file_field!r} or an asset_id (not both)")
    if asset_id:
        asset = await asyncio.to_thread(store.get_asset, str(asset_id), tenant)
        if asset.kind != kind:
            raise InputError(f"asset {asset.id} is a {asset.kind}; this task takes a {kind}")
        return str(asset.id)
    assert isinstance(upload, UploadFile)
    return await asyncio.to_thread(_ingest_upload, gw, upload, kind, tenant)


def _ingest_upload(gw: Gateway, upload: UploadFile, kind: str, tenant: str) -> str:
    def write(path: Path) -> None:
        upload.file.seek(0)
        with path.open("wb") as f:
            while chunk := upload.file.read(1 << 20):
                f.write(chunk)

    return str(_ingest(gw.store_or_503(), write, upload.filename or "upload.bin", tenant, kind).asset.id)


def _ingest(store: Any, write: Callable[[Path], object], filename: str, tenant: str, kind: str | None = None) -> Any:
    """Ingest an upload from a temporary file (`write` fills it); with `kind`, first check it is one (a video
    sent to animate is refused before it is stored). Errors name the client's file name, not the temp path."""
    from framefleet.config import Settings
    from framefleet.media.probe import probe
    from framefleet.tasks.ingest import ingest

    settings = Settings.from_env()
    name = Path(filename).name or "upload.bin"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{Path(name).suffix[:8] or '.bin'}"
        write(path)
        try:
            if kind is not None:
                info = probe(path, verify=True, max_pixels=settings.max_image_pixels)
                if info.kind != kind:
                    raise InputError(f"{name} is a {info.kind}; this task takes a {kind}")
            return ingest(path, store, settings=settings, tenant=tenant)
        except InputError as e:
            raise type(e)(e.message.replace(str(path), name)) from None


def precheck(task: str, params: dict[str, Any]) -> None:
    """What can be checked without the model, before the upload is stored (the worker checks the rest)."""
    if task == "animate":
        from framefleet.tasks.animate import AnimateRequest

        AnimateRequest(**params).check()
    elif "scale" in params and params["scale"] not in (2, 3, 4):
        raise InputError(f"scale {params['scale']}: give 2, 3 or 4")
    if "fps" in params and not 0 < params["fps"] <= 240:
        raise InputError(f"fps {params['fps']}: give a frame rate above 0 and at most 240")


async def run_media_task(gw: Gateway, task: str, request: Request) -> JSONResponse:
    t0 = gw.clock()
    file_field, allowed = MEDIA_FIELDS[task]
    tenant = gw.tenant(request)
    with gw.admitted(tenant):
        source = gw.source_region(request)
        gw.store_or_503()
        form = await read_form(gw, request)
        params = form_params(form, allowed, file_field)
        precheck(task, params)
        key = request.headers.get("idempotency-key")
        done = await gw.cached(tenant, key)  # always looked up: a render costs far more than a query
        if done is not None:
            return JSONResponse(done)
        with gw.claimed(tenant, key):
            asset_id = await source_asset(gw, form, file_field, "image" if task == "animate" else "video", tenant)
            payload = json.dumps({"asset_id": asset_id, "tenant": tenant, "params": params}).encode()
            answer, worker = await gw.dispatch(task, payload, source, t0)
            result = answer.get("result")
            if not isinstance(result, dict):
                raise InputError(f"worker {worker.name} answered without a result")
            variant = result.get("variant")
            body = {**result, "content_url": f"/v1/variants/{variant['id']}/content" if variant else None}
            return JSONResponse(await gw.served(task, answer, worker, source, tenant, key, t0, body=body))


def _multipart(file_field: str, params: dict[str, type], what: str) -> dict[str, Any]:
    names = {int: "integer", float: "number", bool: "boolean", str: "string"}
    props: dict[str, Any] = {
        file_field: {"type": "string", "format": "binary", "description": f"the {what} (or give asset_id)"},
        "asset_id": {"type": "string", "description": "an asset uploaded before (POST /v1/assets)"},
        **{n: {"type": names[t]} for n, t in params.items()},
    }
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": {"type": "object", "properties": props}}},
        },
        "parameters": [
            {"name": "X-Region", "in": "header", "required": True, "schema": {"type": "string"}},
            {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"}},
        ],
    }


def add_media_routes(app: FastAPI, gw: Gateway) -> None:
    async def animate(request: Request) -> JSONResponse:
        return await run_media_task(gw, "animate", request)

    async def enhance(request: Request) -> JSONResponse:
        return await run_media_task(gw, "enhance", request)

    async def upload(request: Request, filename: str = "upload.bin") -> JSONResponse:
        tenant = gw.tenant(request)
        store = gw.store_or_503()
        body = await gw.read_body(request)
        got = await asyncio.to_thread(_ingest, store, lambda path: path.write_bytes(body), filename, tenant)
        return JSONResponse({"asset": asset_dict(got.asset), "created": got.created}, status_code=201)

    async def get_asset(asset_id: str, request: Request) -> JSONResponse:
        tenant = gw.tenant(request)
        asset = await asyncio.to_thread(gw.store_or_503().get_asset, asset_id, tenant)
        return JSONResponse({"asset": asset_dict(asset)})

    async def get_variant(variant_id: str, request: Request) -> JSONResponse:
        tenant = gw.tenant(request)
        variant = await asyncio.to_thread(gw.store_or_503().get_variant, variant_id, tenant)
        return JSONResponse({"variant": variant_dict(variant)})

    async def content(variant_id: str, request: Request) -> FileResponse:
        tenant = gw.tenant(request)
        store = gw.store_or_503()
        variant = await asyncio.to_thread(store.get_variant, variant_id, tenant)
        if variant.blob_key is None or variant.status != "ready":
            raise NotFound(f"variant {variant_id!r} has no content yet (status {variant.status})")
        path = store.blobs.open_path(variant.blob_key)
        media = "video/mp4" if variant.video_codec and "mp4" in (variant.container or "") else None
        media = media or mimetypes.guess_type(f"x.{(variant.container or '').split(',')[0]}")[0]
        return FileResponse(
            path, media_type=media or "application/octet-stream", filename=f"{variant.name}-{variant.id[:8]}"
        )

    async def campaign_video(campaign: str, recipient: str, request: Request) -> Response:
        gw.tenant(request)  # the app that shows the video to its user calls with its key
        store = gw.store_or_503()
        now = datetime.now(UTC)
        try:
            got = await asyncio.to_thread(deliver, store, campaign, recipient, now)
        except NotYet as e:
            wait = (datetime.fromisoformat(e.opens_at) - now).total_seconds()
            answer = from_error(e, retry_after=wait, extra={"opens_at": e.opens_at})
            answer.headers["Cache-Control"] = "no-store"  # a CDN must not keep "not yet" past the opening
            return answer
        return FileResponse(got.path, media_type="video/mp4", filename=f"{campaign}-{recipient}.mp4",
                            headers={"Cache-Control": "private, max-age=3600"})  # fmt: skip

    for path, fn, field, params, what in (
        ("/v1/animate", animate, "image", ANIMATE_PARAMS, "still image (PNG, JPEG, WebP)"),
        ("/v1/enhance", enhance, "video", ENHANCE_PARAMS, "video"),
    ):
        app.add_api_route(path, fn, methods=["POST"], summary=f"{path[4:].title()}: a {what} in, a stored variant out",
                          responses=ERROR_RESPONSES, openapi_extra=_multipart(field, params, what))  # fmt: skip
    app.add_api_route("/v1/assets", upload, methods=["POST"], status_code=201, summary="Upload an image or video",
                      responses=ERROR_RESPONSES,
                      openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {
                          "schema": {"type": "string", "format": "binary"}}}}})  # fmt: skip
    app.add_api_route("/v1/assets/{asset_id}", get_asset, methods=["GET"], summary="An asset and its variants",
                      responses=ERROR_RESPONSES)  # fmt: skip
    app.add_api_route("/v1/variants/{variant_id}", get_variant, methods=["GET"], summary="A variant",
                      responses=ERROR_RESPONSES)  # fmt: skip
    app.add_api_route("/v1/variants/{variant_id}/content", content, methods=["GET"], response_class=FileResponse,
                      summary="A variant's bytes (supports Range requests)", responses={
                          **ERROR_RESPONSES, 206: {"description": "a byte range"},
                          200: {"content": {"video/mp4": {}}, "description": "the whole file"}})  # fmt: skip
    app.add_api_route("/v1/campaigns/{campaign}/videos/{recipient}", campaign_video, methods=["GET"],
                      response_class=FileResponse,
                      summary="A recipient's campaign video, from their local campaign day on (404 before)",
                      responses={**ERROR_RESPONSES, 206: {"description": "a byte range"},
                                 200: {"content": {"video/mp4": {}}, "description": "the video"}})  # fmt: skip


__all__ = ["add_media_routes", "form_params", "run_media_task"]
