"""What the gateway and the workers share over HTTP: the error body, the one mapping from framefleet's
errors to statuses, and a JSON parser that cannot be made to crash.

Error body (every non-2xx answer of the gateway and the workers):
    {"error": {"type": "InputError", "reason": "bad_input", "message": "what was wrong and what to do"}}
`reason` is machine-readable; clients retry on busy, tenant_limit, worker_failed and in_progress only.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from framefleet.errors import FramefleetError, InputError


def error_response(
    status: int,
    kind: str,
    reason: str,
    message: str,
    *,
    retry_after: float | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    headers = {"Retry-After": str(max(0, round(retry_after)))} if retry_after is not None else None
    body = {"error": {"type": kind, "reason": reason, "message": message}, **(extra or {})}
    return JSONResponse(body, status_code=status, headers=headers)


def from_error(
    e: FramefleetError, *, retry_after: float | None = None, extra: dict[str, Any] | None = None
) -> JSONResponse:
    """The one place a framefleet error becomes an HTTP answer: its class carries status and reason."""
    if retry_after is None and e.http_status in (409, 429, 503):
        retry_after = 1
    return error_response(e.http_status, type(e).__name__, e.reason, e.message, retry_after=retry_after, extra=extra)


class MalformedJSON(InputError):
    reason = "malformed_json"


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (give a finite number)")


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object; anything else (not UTF-8, not JSON, NaN/Infinity, nested deeper than
    the interpreter's recursion limit, not an object) is an InputError that names the problem. Empty means {}.
    The C decoder raises RecursionError cleanly on a body of 200,000 '[': caught here, it is a 400."""
    if not raw:
        return {}
    try:
        payload = json.loads(raw, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise MalformedJSON(f"request body is not valid JSON: {e}") from None
    if not isinstance(payload, dict):
        raise MalformedJSON("the request body must be a JSON object")
    return payload


def json_safe(value: Any) -> bool:
    """Whether a task's answer can be sent as strict JSON (no NaN or infinities anywhere)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(json_safe(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(json_safe(v) for v in value)
    return True


def install_error_handlers(app: FastAPI, *, retry_after_s: float = 1) -> None:
    """FramefleetError → its status; FastAPI's request validation (form fields, query) → 400, not 422, with
    the field named: one shape of error body for every endpoint."""

    async def on_framefleet(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, FramefleetError)
        return from_error(exc, retry_after=retry_after_s if exc.http_status in (409, 429, 503) else None)

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ())[1:]) or 'body'}: {err.get('msg', 'invalid')}"
            for err in exc.errors()
        )
        return error_response(400, "InputError", "bad_input", problems or "invalid request")

    app.add_exception_handler(FramefleetError, on_framefleet)
    app.add_exception_handler(RequestValidationError, on_validation)


__all__ = ["MalformedJSON", "error_response", "from_error", "install_error_handlers", "json_safe", "parse_json_object"]
