"""One exception hierarchy for everything a client can be told, each error with its kind.

The pipeline, the jobs and the CLI raise these without knowing about HTTP. `kind` says what went wrong in the
caller's terms (a bad request, too large, overloaded...); `type` is the finer, stable machine-readable name.
Only the HTTP layer turns a kind into a status (`STATUS_OF_KIND` in app/api/error_handlers.py) and renders every
error as `{"error": {"type", "message", "request_id"}}`. Anything else is an internal error: logged with its
traceback, answered with a generic 500.
"""

from __future__ import annotations

from typing import Literal

ErrorKind = Literal[
    "bad_request", "invalid_request", "unsupported_media", "too_large", "unauthorized", "too_slow", "not_found",
    "conflict", "overloaded", "not_ready", "unavailable", "upstream_failed", "internal", "insufficient_storage",
]
# The kinds that are the caller's doing: retrying the same input gets the same answer (batch records them as
# rejected inputs rather than failures).
CALLER_KINDS: frozenset[ErrorKind] = frozenset({
    "bad_request", "invalid_request", "unsupported_media", "too_large", "unauthorized", "too_slow", "not_found",
    "conflict",
})


class AppError(Exception):
    """Base of every error a client may see. `kind` is what the HTTP layer maps to a status; `type` is the stable
    machine-readable name."""

    kind: ErrorKind = "bad_request"
    type: str = "bad_request"

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s

    @property
    def caller_fault(self) -> bool:
        return self.kind in CALLER_KINDS

    def __reduce__(self):  # survive pickling across worker processes with the message intact
        return (_rebuild, (type(self), self.message, self.retry_after_s))


def _rebuild(cls: type[AppError], message: str, retry_after_s: float | None) -> AppError:
    return cls(message, retry_after_s=retry_after_s)


# --- input problems (4xx) ----------------------------------------------------------------------------------------
class InvalidParameter(AppError):
    kind, type = "invalid_request", "invalid_parameter"


class NotAPdf(AppError):
    kind, type = "unsupported_media", "unsupported_media_type"


class UploadTooLarge(AppError):
    kind, type = "too_large", "upload_too_large"


class TooManyPages(AppError):
    kind, type = "too_large", "too_many_pages"


class UnreadablePdf(AppError):
    kind, type = "invalid_request", "unreadable_pdf"


class EncryptedPdf(AppError):
    kind, type = "invalid_request", "encrypted_pdf"


class EmptyPdf(AppError):
    kind, type = "invalid_request", "empty_pdf"


class ImageTooLarge(AppError):
    """An uploaded image (or one of its frames) with more pixels than MAX_PAGE_PIXELS: a decompression bomb or a
    scan far larger than any page needs."""

    kind, type = "too_large", "image_too_large"


class UnreadableImage(AppError):
    """An image file whose header we recognise but whose data is truncated or corrupt."""

    kind, type = "invalid_request", "unreadable_image"


class PageTooLarge(AppError):
    """An embedded image or page that would need gigabytes to decode."""

    kind, type = "invalid_request", "page_too_large"


class Unauthorized(AppError):
    kind, type = "unauthorized", "unauthorized"


class RequestTimeout(AppError):
    """The client sent its request too slowly (headers past HEADER_TIMEOUT_S, an upload below its minimum rate
    or past its deadline); the connection is closed."""

    kind, type = "too_slow", "request_timeout"


class NotFound(AppError):
    kind, type = "not_found", "not_found"


class Conflict(AppError):
    kind, type = "conflict", "conflict"


# --- our side (5xx) ----------------------------------------------------------------------------------------------
class Overloaded(AppError):
    """The worker pool's admission bound is reached; the client should retry after `retry_after_s`."""

    kind, type = "overloaded", "overloaded"


class NotReady(AppError):
    kind, type = "not_ready", "not_ready"


class SidecarUnavailable(AppError):
    """The VLM sidecar is down or its circuit breaker is open: retryable."""

    kind, type = "unavailable", "sidecar_unavailable"


class SidecarFailed(AppError):
    """The VLM sidecar answered, but with something we cannot use."""

    kind, type = "upstream_failed", "sidecar_failed"


class WorkerCrashed(AppError):
    """A worker process died while converting a page (killed, out of memory, a native crash). The pool replaces
    the worker; the page itself failed and is not retried (it may be what crashed the worker)."""

    kind, type = "internal", "worker_crashed"


class InsufficientStorage(AppError):
    kind, type = "insufficient_storage", "insufficient_storage"


class Cancelled(AppError):
    kind, type = "conflict", "cancelled"
