"""One exception hierarchy for everything a client can be told, and the HTTP status each maps to.

The pipeline raises these without knowing about HTTP; the service renders every one as
`{"error": {"type", "message", "request_id"}}` with `status`. Anything else is an internal error: logged with
its traceback, answered with a generic 500.
"""

from __future__ import annotations


class AppError(Exception):
    """Base of every error a client may see. `type` is the stable machine-readable name."""

    status: int = 400
    type: str = "bad_request"

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s

    def __reduce__(self):  # survive pickling across worker processes with the message intact
        return (_rebuild, (type(self), self.message, self.retry_after_s))


def _rebuild(cls: type[AppError], message: str, retry_after_s: float | None) -> AppError:
    return cls(message, retry_after_s=retry_after_s)


# --- input problems (4xx) ----------------------------------------------------------------------------------------
class InvalidParameter(AppError):
    status, type = 422, "invalid_parameter"


class NotAPdf(AppError):
    status, type = 415, "unsupported_media_type"


class UploadTooLarge(AppError):
    status, type = 413, "upload_too_large"


class TooManyPages(AppError):
    status, type = 413, "too_many_pages"


class UnreadablePdf(AppError):
    status, type = 422, "unreadable_pdf"


class EncryptedPdf(AppError):
    status, type = 422, "encrypted_pdf"


class EmptyPdf(AppError):
    status, type = 422, "empty_pdf"


class ImageTooLarge(AppError):
    """An uploaded image (or one of its frames) with more pixels than MAX_PAGE_PIXELS: a decompression bomb or a
    scan far larger than any page needs."""

    status, type = 413, "image_too_large"


class UnreadableImage(AppError):
    """An image file whose header we recognise but whose data is truncated or corrupt."""

    status, type = 422, "unreadable_image"


class PageTooLarge(AppError):
    """An embedded image or page that would need gigabytes to decode."""

    status, type = 422, "page_too_large"


class Unauthorized(AppError):
    status, type = 401, "unauthorized"


class RequestTimeout(AppError):
    """The client sent its request too slowly (headers past HEADER_TIMEOUT_S, an upload below its minimum rate
    or past its deadline); the connection is closed."""

    status, type = 408, "request_timeout"


class NotFound(AppError):
    status, type = 404, "not_found"


class Conflict(AppError):
    status, type = 409, "conflict"


# --- our side (5xx) ----------------------------------------------------------------------------------------------
class Overloaded(AppError):
    """The worker pool's admission bound is reached; the client should retry after `retry_after_s`."""

    status, type = 503, "overloaded"


class NotReady(AppError):
    status, type = 503, "not_ready"


class SidecarUnavailable(AppError):
    """The VLM sidecar is down or its circuit breaker is open: retryable."""

    status, type = 503, "sidecar_unavailable"


class SidecarFailed(AppError):
    """The VLM sidecar answered, but with something we cannot use."""

    status, type = 502, "sidecar_failed"


class WorkerCrashed(AppError):
    """A worker process died while converting a page (killed, out of memory, a native crash). The pool replaces
    the worker; the page itself failed and is not retried (it may be what crashed the worker)."""

    status, type = 500, "worker_crashed"


class InsufficientStorage(AppError):
    status, type = 507, "insufficient_storage"


class Cancelled(AppError):
    status, type = 409, "cancelled"
