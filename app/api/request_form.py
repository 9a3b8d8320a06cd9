"""The conversion options as the HTTP routes receive and document them: one model (`ConvertOptions`) read from
the multipart form (and, on /ocr/pdf, the query), validated once with the service as context.

The routes stream their multipart body themselves (app/api/upload.py: 413 while streaming, upload slots, pace),
so FastAPI never parses the form and cannot document it from a signature; `form_schema` and `query_parameters`
generate that part of the OpenAPI document from the model instead. Bounds that depend on settings (MAX_DPI) are
the one step app/api/openapi.py adds, since the model's schema is the same for every service.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.api.upload import FILE_FIELD, Upload
from app.pipeline.options import ConvertOptions, resolve_options
from app.services import Services

OPTION_NAMES: tuple[str, ...] = tuple(ConvertOptions.model_fields)
FILE_PROPERTY = {"type": "string", "format": "binary",
                 "description": "The PDF, or an image: PNG, JPEG, TIFF (every frame a page), WebP, BMP"}


def options_of(services: Services, upload: Upload, query: Mapping[str, str] | None = None) -> ConvertOptions:
    """The options of one upload: its form fields, then `query` for those the form does not send (form wins),
    checked against the service (defaults, MAX_DPI, installed languages, the sidecar for `vl`, an image's
    modes). A query value the form overrides is checked too: it is documented with the same bounds, and a bad
    one is a mistake worth a 422 either way."""
    query = query or {}
    context = {"vl_available": services.vl is not None, "image_format": upload.image_format}
    overridden = {name: query[name] for name in OPTION_NAMES if name in upload.fields and name in query}
    if overridden:
        resolve_options(services.settings, vl_available=True, **overridden)
    sent = {name: upload.fields.get(name, query.get(name)) for name in OPTION_NAMES}
    return resolve_options(services.settings, **context, **sent)  # type: ignore[arg-type]


def _option_schemas() -> dict[str, dict[str, Any]]:
    """Each option's JSON schema as a form field or query parameter: never null (absent means the default), and
    without a fixed default (the service's settings choose it)."""
    properties = ConvertOptions.model_json_schema()["properties"]
    schemas = {}
    for name, schema in properties.items():
        schema = {key: value for key, value in schema.items() if key not in ("title", "default")}
        variants = [v for v in schema.pop("anyOf", []) if v.get("type") != "null"]
        schemas[name] = {**(variants[0] if variants else {}), **schema}
    return schemas


def form_schema(extra: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The OpenAPI request body of a multipart conversion: `file`, every option, and the route's `extra` fields."""
    properties = {FILE_FIELD: FILE_PROPERTY, **_option_schemas(), **extra}
    schema = {"type": "object", "required": [FILE_FIELD], "properties": properties}
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}


def query_parameters() -> list[dict[str, Any]]:
    """Every option as an optional query parameter (read by /ocr/pdf when the form does not send it)."""
    return [{"name": name, "in": "query", "required": False, "description": schema.get("description", ""),
             "schema": {k: v for k, v in schema.items() if k != "description"}}
            for name, schema in _option_schemas().items()]
