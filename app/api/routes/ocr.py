"""POST /ocr/pdf: one PDF (or image) in, the DocumentResult out (JSON, the Markdown with `Accept: text/markdown`,
or a zip of result.md, result.json and images/ with `Accept: application/zip`).

Order of work, cheapest rejection first: readiness -> stream the upload to disk (413 while streaming) -> the
shared synchronous path (app/api/sync_convert.py: options, inspect, admission, convert, store, S3; a hand-off
to a job past MAX_SYNC_WAIT_S) -> respond in the format asked for.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.api.bundle import ZIP_TYPE, wants_zip, zip_response
from app.api.deps import RequestIdDep, SettingsDep
from app.api.sync_convert import SyncConverterDep
from app.api.upload import FILE_FIELD, receive_pdf_upload, uploads_dir
from app.errors import InsufficientStorage
from app.pipeline.options import IMAGES_MODES, MODES, options_from_fields
from app.pipeline.result import DocumentResult

router = APIRouter(tags=["ocr"])

MARKDOWN_TYPE = "text/markdown; charset=utf-8"

_UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {
                        FILE_FIELD: {"type": "string", "format": "binary",
                                     "description": "The PDF, or an image: PNG, JPEG, TIFF (every frame a page), "
                                     "WebP, BMP"},
                        "pages": {"type": "string", "description": '1-based selection, e.g. "1-3,7"'},
                        "mode": {"type": "string", "enum": list(MODES)},
                        "dpi": {"type": "integer"},
                        "images": {"type": "string", "enum": list(IMAGES_MODES),
                                   "description": "Figure/table crops: files (refer), data: URIs (embed), none"},
                    },
                }
            }
        },
    },
    "responses": {
        "200": {"content": {"text/markdown": {"schema": {"type": "string"}},
                            ZIP_TYPE: {"schema": {"type": "string", "format": "binary"}}}},
        "202": {"description": "Still running after MAX_SYNC_WAIT_S: continues as a job; poll `Location`"},
        "413": {"description": "Upload or page count over the limit"},
        "415": {"description": "Neither a PDF nor an accepted image"},
        "422": {"description": "Unreadable/encrypted/empty PDF or bad parameters"},
        "503": {"description": "Overloaded or not ready; see Retry-After"},
    },
}


def wants_markdown(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/markdown" in accept and "application/json" not in accept.split(",")[0]


@router.post("/ocr/pdf", summary="Convert a PDF to Markdown and JSON", openapi_extra=_UPLOAD_SCHEMA)
async def ocr_pdf(
    request: Request,
    settings: SettingsDep,
    converter: SyncConverterDep,
    request_id: RequestIdDep,
    pages: str | None = Query(None, description='1-based page selection such as "1-3,7"'),
    mode: str | None = Query(None, description="auto | text | ocr | vl"),
    dpi: str | None = Query(None, description="Render DPI for OCR"),
    images: str | None = Query(None, description="refer (default) | embed | none"),
) -> Response:
    converter.refuse_early()
    upload = await receive_pdf_upload(request, settings, request_id)
    # Form fields win over query parameters.
    query = {"pages": pages, "mode": mode, "dpi": dpi, "images": images}
    async with converter.converting(upload, lambda: options_from_fields(settings, upload.fields, query),
                                    hand_off=True) as outcome:
        if isinstance(outcome, Response):  # handed off to a job: 202 with its location
            return outcome
    result, stored = outcome.result, outcome.stored
    if wants_zip(request):
        if stored.directory is None:  # the bundle is made from the files on disk, and they could not be written
            raise InsufficientStorage(stored.outputs["error"]["message"])
        return await zip_response(stored.directory, filename=f"{stored.directory.name}.zip",
                                  scratch_dir=uploads_dir(settings))
    if wants_markdown(request):
        return Response(result.markdown.encode("utf-8"), media_type=MARKDOWN_TYPE)
    body = await asyncio.to_thread(_json_body, result, request_id, stored.outputs, outcome.s3)
    return Response(body, media_type="application/json")


def _json_body(result: DocumentResult, request_id: str, outputs: dict[str, Any], s3_info: dict[str, Any] | None) -> bytes:
    # Built in a thread: a few hundred pages of blocks is real CPU work for json.
    payload = {"request_id": request_id, **result.model_dump(mode="json"), "outputs": {**outputs, "s3": s3_info}}
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")
