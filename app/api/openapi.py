"""The OpenAPI document as the truth about the server: every status an operation can answer, in the one error
shape, and the parameter bounds the server enforces (some depend on settings, so they are filled in here).

FastAPI documents what the route signatures say; the multipart forms of `/ocr/pdf` and `/jobs`, which the
routes stream themselves, are generated from the options model (app/api/request_form.py). The rest is added here:
errors are our AppErrors, the API key and the connection limits sit in middleware and the protocol. `STATUSES`
lists, per operation, what that adds; a test runs schemathesis against the real server to keep this table honest
(tests/integration/test_openapi.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from app.settings import Settings


class ErrorDetail(BaseModel):
    type: str
    message: str
    request_id: str | None


class ErrorBody(BaseModel):
    """Every error the service answers: `{"error": {"type", "message", "request_id"}}`."""

    error: ErrorDetail


_DESCRIPTIONS = {
    400: "Malformed request, or the client went away mid-upload",
    401: "Missing or wrong API key (when API_KEY is set)",
    404: "No such job (or not yours)",
    408: "Upload slower than UPLOAD_MIN_KB_PER_S or past UPLOAD_DEADLINE_S",
    409: "Conflict: the job has not succeeded, or an Idempotency-Key reused for another request",
    413: "Upload or page count over the limit",
    415: "Not a PDF, or not multipart/form-data",
    422: "Unreadable/encrypted/empty PDF or bad parameters",
    500: "Internal error (details only in the log)",
    502: "The VLM sidecar answered with something unusable",
    503: "Overloaded, not ready, or the sidecar is down; see Retry-After",
    507: "The output disk is (nearly) full; retry once space is freed",
}

_UPLOAD = (400, 408, 413, 415, 422, 503, 507)
_JOB = (404, 422, 503)
STATUSES: dict[tuple[str, str], tuple[int, ...]] = {
    ("post", "/ocr/pdf"): (*_UPLOAD, 502),
    ("post", "/jobs"): (*_UPLOAD, 409),
    ("get", "/jobs"): (422, 503),
    ("get", "/jobs/{job_id}"): _JOB,
    ("delete", "/jobs/{job_id}"): _JOB,
    ("get", "/jobs/{job_id}/result"): (*_JOB, 409),
    ("get", "/jobs/{job_id}/events"): _JOB,
    ("get", "/jobs/{job_id}/images/{name}"): _JOB,
    ("get", "/jobs/{job_id}/pages/{page}.png"): _JOB,
    # PaddleX's serving API (app/api/routes/paddlex_serving.py): its own error body, see `error_bodies`
    ("post", "/layout-parsing"): (400, 408, 413, 422, 502, 503, 507),
    ("post", "/restructure-pages"): (400, 408, 413, 422),
}
PROBES = ("/livez", "/startupz", "/readyz", "/health")
_OPEN = (*PROBES, "/metrics", "/version")  # never behind the API key (/metrics can be, see below)


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Make `app.openapi()` return the completed document (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description,
                                   routes=app.routes)
            complete(document, settings, getattr(app.state, "error_bodies", {}))
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(document: dict[str, Any], settings: Settings,
             error_bodies: dict[str, type[BaseModel]] | None = None) -> None:
    """Add the statuses of `STATUSES` (plus 401 and 500 wherever they can happen) and the parameter bounds.
    Paths in `error_bodies` (compatibility APIs) answer their errors in that model instead of ErrorBody."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    error_bodies = error_bodies or {}
    for model in {ErrorBody, *error_bodies.values()}:
        schemas[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schemas[model.__name__].pop("$defs", {}))
    schemas["ProbeBody"] = {"type": "object", "required": ["status"],
                            "properties": {"status": {"type": "string"}, "reason": {"type": "string"}}}
    for path, operations in document["paths"].items():
        body = error_bodies.get(path, ErrorBody).__name__
        error = {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}}
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            statuses = set(STATUSES.get((method, path), ()))
            statuses.add(500)
            if path not in _OPEN or (path == "/metrics" and settings.metrics_require_auth):
                statuses.add(401)
            for status in sorted(statuses):
                # Replaces FastAPI's own 422 (HTTPValidationError): our handler answers in ErrorBody.
                responses[str(status)] = {"description": _DESCRIPTIONS[status], "content": error}
            if path in PROBES:
                probe = {"application/json": {"schema": {"$ref": "#/components/schemas/ProbeBody"}}}
                responses["503"] = {"description": "Not live / not started / not ready (reason given)",
                                    "content": probe}
                if path != "/health":
                    responses["200"]["content"] = probe
    text = {"schema": {"type": "string"}}
    result = document["paths"]["/jobs/{job_id}/result"]["get"]["responses"]["200"]
    result["content"] = {"application/json": {"schema": {"type": "object"}}, "text/markdown": text,
                         "application/zip": {"schema": {"type": "string", "format": "binary"}}}
    # Each event's data is JSON: the job's view (`status` events) or its progress (`page` events).
    events = {"text/event-stream": {"schema": {"type": "object"}}}
    document["paths"]["/jobs/{job_id}/events"]["get"]["responses"]["200"]["content"] = events
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    _bound_options(document, settings)


def _bound_options(document: dict[str, Any], settings: Settings) -> None:
    """The one bound of the conversion options that depends on settings: `dpi`'s maximum (MAX_DPI). The rest of
    each option's schema is generated from ConvertOptions (app/api/request_form.py), the same for every service."""
    for operation in (document["paths"]["/ocr/pdf"]["post"], document["paths"]["/jobs"]["post"]):
        form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
        schemas = [form["dpi"], *(p["schema"] for p in operation.get("parameters", []) if p["name"] == "dpi")]
        for schema in schemas:
            schema["maximum"] = settings.max_dpi
