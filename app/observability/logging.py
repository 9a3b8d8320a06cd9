"""Logging set up once by the entrypoint: JSON lines (python-json-logger) carrying the current request id.

Nothing here runs at import. `configure_logging(settings)` is called by `python -m app serve`; tests and the CLI
leave logging alone. The request id travels in a context variable so every line logged while a request is
handled (by the route, the pipeline's parent side, the storage code) carries it without being passed around.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from pythonjsonlogger.json import JsonFormatter
from starlette.datastructures import Headers, MutableHeaders

from app.settings import Settings

log = logging.getLogger(__name__)

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Stamp every record with the request id of the request being handled (or None outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


# What must never reach a log line, whoever logs it and at whatever level: the query of a URL (webhook URLs carry
# tokens there; httpx logs every request's URL at INFO) and AWS credentials (botocore's DEBUG lines show the
# signing key id in `Credential=...` and the request headers).
_URL_QUERY = re.compile(r"""(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#'"<>]*)\?[^\s#'"<>]*""")
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b")
_CREDENTIAL = re.compile(r"(Credential=)[^/\s,'\"]+")
_SECRETISH = re.compile(r"""((?:aws_access_key_id|aws_secret_access_key|aws_session_token|x-amz-security-token|"""
                        r"""authorization)['"]?\s*[:=]\s*(?:b?['"])?)[^'",}\s]+""", re.IGNORECASE)
# Libraries whose DEBUG output dumps whole requests (headers included): capped at INFO whatever LOG_LEVEL says.
_CHATTY = ("botocore", "boto3", "s3transfer", "urllib3", "httpcore")


def redact(message: str) -> str:
    """`message` without URL queries (`?<redacted>`) and AWS key ids / credentials."""
    message = _URL_QUERY.sub(r"\1?<redacted>", message)
    message = _CREDENTIAL.sub(r"\1<redacted>", message)
    message = _SECRETISH.sub(r"\1<redacted>", message)
    return _AWS_KEY_ID.sub("<redacted>", message)


class RedactingFilter(logging.Filter):
    """Rewrite every record's message through `redact` (the record is formatted once, here, with its args)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the formatter's own error report
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure_logging(settings: Settings) -> None:
    """Route every logger (ours, uvicorn's) to one stderr handler, JSON unless LOG_JSON=false."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactingFilter())
    if settings.log_json:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                timestamp=False,
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for name in _CHATTY:
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
    # uvicorn's own loggers propagate to ours; its access log is replaced by the request middleware's line,
    # which carries the request id and leaves probe paths out.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True


# --- per-request context ---------------------------------------------------------------------------------------
# Probes and scrapes run every few seconds; logging them would drown the lines that matter.
QUIET_PATHS = frozenset({"/livez", "/readyz", "/startupz", "/health", "/metrics"})

access_log = logging.getLogger("app.access")


class RequestContextMiddleware:
    """Request id in and out (X-Request-ID), one access line per request, request metrics, and the generic
    500 for exceptions nobody handled (traceback in the log, nothing internal in the response).

    Pure ASGI rather than BaseHTTPMiddleware: it never buffers the body and does not break cancellation.
    `internal_error(request_id)` is the ASGI response for an unhandled exception: the API's error shape is
    handed in by the app factory, so this module needs nothing from app.api.
    """

    def __init__(self, app: Any, metrics: Any, internal_error: Callable[[str], Any]) -> None:
        self.app = app
        self.metrics = metrics
        self.internal_error = internal_error

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from app.storage.local import SAFE_ID

        incoming = Headers(scope=scope).get("x-request-id")
        request_id = incoming if incoming and SAFE_ID.match(incoming) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        token = request_id_var.set(request_id)
        status = 500
        response_started = False

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if response_started:
                raise
            await self.internal_error(request_id)(scope, receive, send_with_id)
        finally:
            duration = time.perf_counter() - t0
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(template, scope.get("method", ""), status, duration)
            if scope.get("path") not in QUIET_PATHS:
                access_log.info(
                    "%s %s %d %.1fms", scope.get("method"), scope.get("path"), status, duration * 1000,
                    extra={"method": scope.get("method"), "path": scope.get("path"), "status": status,
                           "duration_ms": round(duration * 1000, 1), "pages": state.get("pages")},
                )
            request_id_var.reset(token)
