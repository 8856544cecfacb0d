"""One error hierarchy for the whole system.

Every error carries a message that says what was wrong *and what to do about it*. The CLI maps
`InputError` and `NotFound` to exit code 2 and everything else to 1; the HTTP layer maps them to
400/404/413/415 and 503 (`Busy`).
"""

from __future__ import annotations


class FramefleetError(Exception):
    """Base class of every error framefleet raises on purpose."""

    exit_code = 1
    http_status = 500
    reason = "internal"  # the machine-readable reason in an HTTP error body

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"type": type(self).__name__, "message": self.message}


class InputError(FramefleetError):
    """The caller gave us something we cannot use (a missing file, a corrupt video, a bad option)."""

    exit_code = 2
    http_status = 400
    reason = "bad_input"


class TooLarge(InputError):
    """The input is larger than a configured limit (pixels, bytes)."""

    http_status = 413
    reason = "too_large"


class UnsupportedMedia(InputError):
    """The input is media, but of a kind or codec we cannot process."""

    http_status = 415
    reason = "unsupported_media"


class NotFound(FramefleetError):
    """An asset, variant or job id that does not exist (or belongs to another tenant)."""

    exit_code = 2
    http_status = 404
    reason = "not_found"


class NotYet(NotFound):
    """Something that exists but is not available yet (a campaign video before the recipient's local day).

    HTTP 404 rather than 425 (Too Early, which RFC 8470 reserves for TLS early data): to the viewer there is no
    video yet. The answer carries `opens_at` and a Retry-After, and is never cached.
    """

    exit_code = 4
    reason = "not_yet_available"

    def __init__(self, message: str, opens_at: str) -> None:
        super().__init__(message)
        self.opens_at = opens_at

    def to_dict(self) -> dict[str, str]:
        return super().to_dict() | {"opens_at": self.opens_at}


class Busy(FramefleetError):
    """A worker is already running its one request; the caller should retry elsewhere or later."""

    http_status = 503
    reason = "busy"


class Unauthorized(FramefleetError):
    """A missing or unknown API key, or a key without the rights the endpoint needs."""

    exit_code = 2
    http_status = 401
    reason = "bad_key"


class TenantLimit(FramefleetError):
    """A tenant has more requests in flight than its fair share; it should retry later."""

    http_status = 429
    reason = "tenant_limit"


class InProgress(FramefleetError):
    """A request with this idempotency key is still running; retry later to get its result."""

    http_status = 409
    reason = "in_progress"


class WorkerFailed(FramefleetError):
    """The worker running a request died or dropped the connection; retrying lands on another worker."""

    http_status = 503
    reason = "worker_failed"


class UpstreamError(FramefleetError):
    """A worker answered something the gateway cannot use (not JSON, or not the expected shape)."""

    http_status = 502
    reason = "bad_upstream"


class MediaError(FramefleetError):
    """Encoding, muxing or another media step failed on input that passed validation."""


class ModelError(FramefleetError):
    """A model could not be loaded or failed while running."""


class StoreError(FramefleetError):
    """The database or blob store is unreachable or inconsistent."""
