"""The conversion options as the HTTP routes receive and document them: one model (`ConvertOptions`) read from
the multipart form (and, on /ocr/pdf, the query), validated once with the service as context.

The routes stream their multipart body themselves (app/api/upload.py: 413 while streaming, upload slots, pace),
so FastAPI never parses the form and cannot document it from a signature; `form_schema` and `query_parameters`
generate that part of the OpenAPI document from the model instead. Bounds that depend on settings (MAX_DPI) are
the one step app/api/openapi.py adds, since the model's schema is the same for every service.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import Field, ValidationInfo, model_validator

from app.api.upload import FILE_FIELD, Upload
from app.jobs.callbacks import validate_callback_url
from app.pipeline.options import ConvertOptions, OptionContext
from app.services import Services

FILE_PROPERTY = {"type": "string", "format": "binary",
                 "description": "The PDF, or an image: PNG, JPEG, TIFF (every frame a page), WebP, BMP"}
RequestT = TypeVar("RequestT", bound=ConvertOptions)


class JobRequest(ConvertOptions):
    """POST /jobs' form: the conversion options plus the webhook told when the job ends."""

    callback_url: str | None = Field(None, description="Webhook POSTed (signed) when the job ends; its host must "
                                     "be in CALLBACK_ALLOWED_HOSTS")

    @model_validator(mode="after")
    def _allowed_callback(self, info: ValidationInfo) -> JobRequest:
        if isinstance(info.context, OptionContext):
            self.callback_url = validate_callback_url(self.callback_url, info.context.settings)
        return self

    def options(self) -> ConvertOptions:
        """The conversion's part, as the job stores it (validated already: not again)."""
        return ConvertOptions.model_construct(**self.model_dump(include=set(ConvertOptions.model_fields)))


def options_of(services: Services, upload: Upload, query: Mapping[str, str] | None = None, *,
               model: type[RequestT] = ConvertOptions) -> RequestT:  # type: ignore[assignment]
    """`model` (the options, or a route's request that extends them) from the upload's form fields, then `query`
    for those the form does not send (form wins), validated once against the service: defaults, MAX_DPI, the
    installed languages, the sidecar for `vl`, an image's modes. A query value the form overrides is checked too:
    it is documented with the same bounds, and a bad one is a mistake worth a 422 either way."""
    query = query or {}
    names = tuple(model.model_fields)
    overridden = {name: query[name] for name in names if name in upload.fields and name in query}
    if overridden:
        model.model_validate(overridden, context=OptionContext(services.settings, vl_available=True))
    sent = {name: upload.fields.get(name, query.get(name)) for name in names}
    context = OptionContext(services.settings, vl_available=services.vl is not None,
                            image_format=upload.image_format)
    return model.model_validate(sent, context=context)


def _option_schemas(model: type[ConvertOptions] = ConvertOptions) -> dict[str, dict[str, Any]]:
    """Each field's JSON schema as a form field or query parameter: never null (absent means the default), and
    without a fixed default (the service's settings choose it)."""
    properties = model.model_json_schema()["properties"]
    schemas = {}
    for name, schema in properties.items():
        schema = {key: value for key, value in schema.items() if key not in ("title", "default")}
        variants = [v for v in schema.pop("anyOf", []) if v.get("type") != "null"]
        schemas[name] = {**(variants[0] if variants else {}), **schema}
    return schemas


def form_schema(model: type[ConvertOptions], extra: Mapping[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The OpenAPI request body of a multipart conversion: `file`, every field of `model`, and `extra` fields
    the route reads itself."""
    properties = {FILE_FIELD: FILE_PROPERTY, **_option_schemas(model), **(extra or {})}
    schema = {"type": "object", "required": [FILE_FIELD], "properties": properties}
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}


def query_parameters() -> list[dict[str, Any]]:
    """Every option as an optional query parameter (read by /ocr/pdf when the form does not send it)."""
    return [{"name": name, "in": "query", "required": False, "description": schema.get("description", ""),
             "schema": {k: v for k, v in schema.items() if k != "description"}}
            for name, schema in _option_schemas().items()]
