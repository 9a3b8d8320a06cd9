"""Every error leaves as `{"error": {"type", "message", "request_id"}}` with its status.

AppError subclasses carry a kind and a type; `STATUS_OF_KIND` below is the one place a kind becomes an HTTP
status (the jobs, the CLI, MCP and PaddleX's envelope never need one, or get it here). Starlette's HTTP errors
(404, 405) and FastAPI's validation errors are mapped onto the same shape. Unknown exceptions are rendered by the
request middleware (`render_internal_error`) so they get the same shape and the request id header; their
traceback goes to the log only. A compatibility route whose clients read another error body (PaddleX's envelope) registers its shape for
its paths in `app.state.error_shapes` (`register_error_shape`); the status stays the same.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.types import Scope
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.errors import AppError, ErrorKind
from app.storage.disk import as_insufficient_storage, is_disk_full

# The one table from an error's kind to its HTTP status (app/errors.py says what each kind means).
STATUS_OF_KIND: dict[ErrorKind, int] = {
    "bad_request": 400,
    "unauthorized": 401,
    "not_found": 404,
    "too_slow": 408,
    "conflict": 409,
    "too_large": 413,
    "unsupported_media": 415,
    "invalid_request": 422,
    "internal": 500,
    "upstream_failed": 502,
    "overloaded": 503,
    "not_ready": 503,
    "unavailable": 503,
    "insufficient_storage": 507,
}


def status_of(exc: AppError) -> int:
    """The HTTP status that answers `exc`."""
    return STATUS_OF_KIND[exc.kind]


_HTTP_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "upload_too_large",
    415: "unsupported_media_type",
    507: "insufficient_storage",
    422: "invalid_parameter",
    429: "too_many_requests",
    503: "not_ready",
}


def error_response(
    status: int, type_: str, message: str, request_id: str | None, *, retry_after_s: float | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    headers = dict(headers or {})
    if retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))
    return JSONResponse(
        {"error": {"type": type_, "message": message, "request_id": request_id}}, status_code=status, headers=headers
    )


# (status, type, message, scope) -> the body another error shape gives these facts.
ErrorShape = Callable[[int, str, str, Scope], dict[str, Any]]


def register_error_shape(app: FastAPI, paths: Iterable[str], shape: ErrorShape, body: type[BaseModel]) -> None:
    """Errors on `paths` (exact paths) get `shape`'s body instead of `{"error": {...}}`, the same status; `body`
    is that body's model, for the OpenAPI document (app/api/openapi.py)."""
    paths = tuple(paths)
    app.state.error_shapes = {**getattr(app.state, "error_shapes", {}), **dict.fromkeys(paths, shape)}
    app.state.error_bodies = {**getattr(app.state, "error_bodies", {}), **dict.fromkeys(paths, body)}


def shaped_error_response(scope: Scope, status: int, type_: str, message: str, *,
                          retry_after_s: float | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    """The error response for the request in `scope`: in the shape registered for its path, else the usual one."""
    app = scope.get("app")
    shape = getattr(getattr(app, "state", None), "error_shapes", {}).get(scope.get("path", "")) if app else None
    request_id = scope.get("state", {}).get("request_id")
    if shape is None:
        return error_response(status, type_, message, request_id, retry_after_s=retry_after_s, headers=headers)
    headers = dict(headers or {})
    if retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))
    return JSONResponse(shape(status, type_, message, scope), status_code=status, headers=headers)


def render_internal_error(request_id: str | None) -> JSONResponse:
    return error_response(500, "internal_error", "internal server error", request_id)


async def _on_app_error(request: Request, exc: AppError) -> JSONResponse:
    return shaped_error_response(request.scope, status_of(exc), exc.type, exc.message, retry_after_s=exc.retry_after_s)


async def _on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    type_ = _HTTP_TYPES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else type_.replace("_", " ")
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such endpoint: {request.method} {request.url.path}"
    headers = exc.headers
    if exc.status_code == 405:
        # Starlette's Allow names the methods of the first route that matched the path only (`/jobs` has a GET
        # and a POST route): list every route's.
        headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
    return shaped_error_response(request.scope, exc.status_code, type_, message, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this request's path (HEAD comes with GET)."""
    scope = {**request.scope, "method": "GET"}
    methods: set[str] = set()
    routes = list(request.app.router.routes)
    while routes:
        route = routes.pop()
        included = getattr(route, "original_router", None)  # FastAPI wraps each include_router()'s routes
        if included is not None:
            routes += included.routes
            continue
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(scope)[0] != Match.NONE:
            methods |= set(route_methods)
    return sorted(methods)


async def _on_storage_error(request: Request, exc: Exception) -> JSONResponse:
    # A write that met a full disk anywhere (a temp file, the job database) is a 507 the client can retry, not
    # a 500; any other OSError/SQLite error is still an internal error, rendered by the request middleware.
    if not is_disk_full(exc):
        raise exc
    full = as_insufficient_storage("the job record" if isinstance(exc, sqlite3.Error) else "a file")
    return shaped_error_response(request.scope, status_of(full), full.type, full.message)


async def _on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err.get('loc', ()) if p not in ('query', 'body', 'path', 'header'))}: "
        f"{err.get('msg')}"
        for err in exc.errors()
    )
    return shaped_error_response(request.scope, 422, "invalid_parameter", problems or "invalid request")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _on_app_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(OSError, _on_storage_error)
    app.add_exception_handler(sqlite3.OperationalError, _on_storage_error)
