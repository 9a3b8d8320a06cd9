"""POST /ocr/pdf: one PDF (or image) in, the DocumentResult out (JSON, the Markdown with `Accept: text/markdown`,
or a zip of result.md, result.json and images/ with `Accept: application/zip`).

Order of work, cheapest rejection first: readiness -> stream the upload to disk (413 while streaming) ->
options -> the conversion service (app/conversion/service.py: inspect, admit, convert, store, S3) -> respond; with
`chunking`, the JSON also carries retrieval chunks (app/chunking/).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.api.bundle import ZIP_TYPE, wants_zip, zip_response
from app.api.deps import LifecycleDep, RequestIdDep, ServicesDep
from app.api.job_views import OwnerDep, accepted
from app.api.limits import check_accepting
from app.api.request_form import form_schema, options_of, query_parameters
from app.api.upload import receive_pdf_upload, uploads_dir
from app.chunking.chunker import CHUNKING_METHODS, DEFAULT_MAX_TOKENS, ChunkOptions, chunk_document, parse_chunk_options
from app.chunking.tokens import TOKENIZER_NAME
from app.conversion.service import HandedOff, convert_request
from app.errors import InsufficientStorage
from app.pipeline.options import ConvertOptions
from app.pipeline.result import DocumentResult

log = logging.getLogger(__name__)

router = APIRouter(tags=["ocr"])

MARKDOWN_TYPE = "text/markdown; charset=utf-8"

_UPLOAD_SCHEMA = {
    "requestBody": form_schema(ConvertOptions, {
        "chunking": {"type": "string", "enum": list(CHUNKING_METHODS), "description": "Add retrieval chunks to the JSON"},
        "max_tokens": {"type": "integer", "description": "Largest chunk, in tokens"},
    }),
    "parameters": query_parameters(),  # the options may come as query parameters too (the form wins)
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
    services: ServicesDep,
    lifecycle: LifecycleDep,
    request_id: RequestIdDep,
    owner: OwnerDep,
    chunking: str | None = Query(None, description="hierarchical | hybrid: add retrieval `chunks` to the JSON"),
    max_tokens: str | None = Query(None, description=f"Chunk size bound in {TOKENIZER_NAME} tokens "
                                   f"(default {DEFAULT_MAX_TOKENS})"),
) -> Response:
    check_accepting(lifecycle, services)  # before the body: a full queue costs a rejection nothing to read
    settings = services.settings
    upload = await receive_pdf_upload(request, settings, request_id)
    try:
        options = options_of(services, upload, request.query_params)  # form fields win over query parameters
        chunk_options = parse_chunk_options(upload.fields.get("chunking", chunking),
                                            upload.fields.get("max_tokens", max_tokens))
    except BaseException:
        upload.discard()
        raise
    outcome = await convert_request(services, upload, options, request_id=request_id, owner=owner,
                                    watch=functools.partial(_cancel_on_disconnect, request))
    if isinstance(outcome, HandedOff):
        return accepted(outcome.job)
    result, stored = outcome.result, outcome.stored
    request.state.pages = len(result.pages)  # for the access log line

    if wants_zip(request):
        if stored.directory is None:  # the bundle is made from the files on disk, and they could not be written
            raise InsufficientStorage(stored.outputs["error"]["message"])
        return await zip_response(stored.directory, filename=f"{stored.directory.name}.zip",
                                  scratch_dir=uploads_dir(settings))
    if wants_markdown(request):
        return Response(result.markdown.encode("utf-8"), media_type=MARKDOWN_TYPE)
    body = await asyncio.to_thread(_json_body, result, request_id, stored.outputs, outcome.s3, chunk_options)
    return Response(body, media_type="application/json")


async def _cancel_on_disconnect(request: Request, cancel: asyncio.Event) -> None:
    # After the body is read, the server's receive() only returns when the client goes away (or the response
    # is done, by which time this watcher is cancelled): then the pages not yet started are dropped.
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            log.info("client disconnected; cancelling the remaining pages")
            cancel.set()
            return


def _json_body(result: DocumentResult, request_id: str, outputs: dict[str, Any], s3_info: dict[str, Any] | None,
               chunk_options: ChunkOptions | None = None) -> bytes:
    # Built in a thread: a few hundred pages of blocks is real CPU work for json (and for the tokenizer).
    payload = {"request_id": request_id, **result.model_dump(mode="json"), "outputs": {**outputs, "s3": s3_info}}
    if chunk_options is not None:
        payload["chunks"] = chunk_document(result, chunk_options).model_dump(mode="json")
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")
