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

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"type": type(self).__name__, "message": self.message}


class InputError(FramefleetError):
    """The caller gave us something we cannot use (a missing file, a corrupt video, a bad option)."""

    exit_code = 2
    http_status = 400


class TooLarge(InputError):
    """The input is larger than a configured limit (pixels, bytes)."""

    http_status = 413


class UnsupportedMedia(InputError):
    """The input is media, but of a kind or codec we cannot process."""

    http_status = 415


class NotFound(FramefleetError):
    """An asset, variant or job id that does not exist (or belongs to another tenant)."""

    exit_code = 2
    http_status = 404


class Busy(FramefleetError):
    """A worker is already running its one request; the caller should retry elsewhere or later."""

    http_status = 503


class MediaError(FramefleetError):
    """Encoding, muxing or another media step failed on input that passed validation."""


class ModelError(FramefleetError):
    """A model could not be loaded or failed while running."""


class StoreError(FramefleetError):
    """The database or blob store is unreachable or inconsistent."""
