"""POST /ocr/pdf: one PDF in, the DocumentResult out (JSON, or the Markdown with `Accept: text/markdown`).

Order of work, cheapest rejection first: readiness -> stream the upload to disk (413 while streaming) ->
options -> inspect the PDF in a thread (415/422/413) -> admission (503 + Retry-After) -> convert through the
shared pool -> write outputs atomically -> S3 (failure reported, local result kept) -> respond.
"""

from __future__ import annotations

import asyncio
import json
import logging
from functools import partial
from pathlib import Path
from typing import Any, get_args

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.api.deps import (
    LifecycleDep, MetricsDep, PoolDep, RequestIdDep, S3Dep, SettingsDep, VlDep,
)
from app.api.upload import FILE_FIELD, receive_pdf_upload
from app.api.routes.jobs import accepted, get_owner
from app.errors import AppError, InvalidParameter, NotReady
from app.jobs.manager import JobHandoff
from app.pipeline.document import convert_document
from app.pipeline.intake import inspect_pdf
from app.pipeline.options import ConvertOptions
from app.pipeline.result import DocumentResult
from app.settings import Mode, Settings
from app.storage.local import write_outputs

log = logging.getLogger(__name__)

router = APIRouter(tags=["ocr"])

MARKDOWN_TYPE = "text/markdown; charset=utf-8"
_MIN_DPI = 36  # matches Settings.default_dpi's lower bound

_UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {
                        FILE_FIELD: {"type": "string", "format": "binary", "description": "The PDF"},
                        "pages": {"type": "string", "description": '1-based selection, e.g. "1-3,7"'},
                        "mode": {"type": "string", "enum": list(get_args(Mode))},
                        "dpi": {"type": "integer"},
                    },
                }
            }
        },
    },
    "responses": {
        "200": {"content": {"text/markdown": {"schema": {"type": "string"}}}},
        "202": {"description": "Still running after MAX_SYNC_WAIT_S: continues as a job; poll `Location`"},
        "413": {"description": "Upload or page count over the limit"},
        "415": {"description": "Not a PDF"},
        "422": {"description": "Unreadable/encrypted/empty PDF or bad parameters"},
        "503": {"description": "Overloaded or not ready; see Retry-After"},
    },
}


def parse_options(settings: Settings, fields: dict[str, str], query: dict[str, str | None]) -> ConvertOptions:
    """Form fields win over query parameters; everything is validated here or by intake (pages)."""

    def pick(name: str) -> str | None:
        value = fields.get(name)
        if value in (None, ""):
            value = query.get(name)
        return value.strip() if isinstance(value, str) and value.strip() else None

    mode = pick("mode") or settings.default_mode
    if mode not in get_args(Mode):
        raise InvalidParameter(f"mode: must be one of {', '.join(get_args(Mode))}, got {mode!r}")
    raw_dpi = pick("dpi")
    if raw_dpi is None:
        dpi = settings.dpi_for(mode)
    else:
        try:
            dpi = int(raw_dpi)
        except ValueError:
            raise InvalidParameter(f"dpi: must be an integer, got {raw_dpi!r}") from None
        if not _MIN_DPI <= dpi <= settings.max_dpi:
            raise InvalidParameter(f"dpi: must be between {_MIN_DPI} and {settings.max_dpi}, got {dpi}")
    return ConvertOptions(mode=mode, pages=pick("pages"), dpi=dpi)


def wants_markdown(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/markdown" in accept and "application/json" not in accept.split(",")[0]


@router.post("/ocr/pdf", summary="Convert a PDF to Markdown and JSON", openapi_extra=_UPLOAD_SCHEMA)
async def ocr_pdf(
    request: Request,
    settings: SettingsDep,
    lifecycle: LifecycleDep,
    pool: PoolDep,
    vl: VlDep,
    s3: S3Dep,
    metrics: MetricsDep,
    request_id: RequestIdDep,
    pages: str | None = Query(None, description='1-based page selection such as "1-3,7"'),
    mode: str | None = Query(None, description="auto | text | ocr | vl"),
    dpi: str | None = Query(None, description="Render DPI for OCR"),
) -> Response:
    accepting = lifecycle.accepting(pool)
    if not accepting.ok:
        metrics.rejections.labels("not_ready").inc()
        raise NotReady(f"not ready: {accepting.reason}", retry_after_s=5)

    upload = await receive_pdf_upload(request, settings, request_id)
    keep_upload = False
    try:
        options = parse_options(settings, upload.fields, {"pages": pages, "mode": mode, "dpi": dpi})
        vlm = request.app.state.vlm
        if options.mode == "vl" and vlm is not None:
            vlm.raise_if_unavailable()  # before any rendering: a down sidecar means 503 now, not after layout
        info = await asyncio.to_thread(inspect_pdf, upload.path, settings, options.pages)
        try:
            admission = pool.admit(len(info.page_indices))
        except AppError:
            metrics.rejections.labels("overloaded").inc()
            raise
        log.info("converting %d of %d pages (mode=%s dpi=%d, %d bytes)", len(info.page_indices), info.page_count,
                 options.mode, options.dpi, upload.size)
        handoff = JobHandoff()  # buffers pages so a hand-off to a job keeps them (checkpoints)
        cancel = handoff.cancel
        task = asyncio.create_task(
            convert_document(pool, upload.path, options, page_indices=info.page_indices, cancel=cancel, vl=vl,
                             page_count=info.page_count, on_page=handoff.on_page, admission=admission),
            name=f"convert-{request_id}",
        )
        # The admission lives as long as the conversion, whoever ends up awaiting it (this route or a job).
        task.add_done_callback(lambda _t: admission.release())
        watcher = asyncio.create_task(_cancel_on_disconnect(request, cancel))
        try:
            done, _ = await asyncio.wait({task}, timeout=settings.max_sync_wait_s)
            if not done:
                jobs = request.app.state.jobs
                if jobs is not None and jobs.accepting:
                    response = await _hand_off(request, jobs, task, upload.path, options, handoff)
                    keep_upload = True  # the job owns the upload now and removes it when the task ends
                    return response
                result = await task
            else:
                result = task.result()
        finally:
            watcher.cancel()
            if not task.done() and not keep_upload:
                cancel.set()
                task.cancel()
    finally:
        if not keep_upload:
            upload.discard()

    request.state.pages = len(result.pages)  # for the access log line
    metrics.observe_document(result.pages)
    log.info("converted %d pages; stage seconds %s", len(result.pages),
             {k: round(v, 3) for k, v in result.timings.items()})
    out_dir = await asyncio.to_thread(partial(write_outputs, fresh_dir=True), settings.output_dir, request_id, result)
    s3_info = await _upload_to_s3(s3, lifecycle, metrics, request_id, out_dir)

    if wants_markdown(request):
        return Response(result.markdown.encode("utf-8"), media_type=MARKDOWN_TYPE)
    body = await asyncio.to_thread(_json_body, result, request_id, out_dir, s3_info)
    return Response(body, media_type="application/json")


async def _hand_off(request: Request, jobs: Any, task: asyncio.Task[DocumentResult], upload_path: Path,
                    options: ConvertOptions, handoff: JobHandoff) -> Response:
    """The sync wait ran out: the running conversion continues as a job; answer 202 with its location."""
    job = await jobs.adopt(task, upload_path, options, get_owner(request), handoff=handoff)
    return accepted(job)


async def _cancel_on_disconnect(request: Request, cancel: asyncio.Event) -> None:
    # After the body is read, the server's receive() only returns when the client goes away (or the response
    # is done, by which time this watcher is cancelled): then the pages not yet started are dropped.
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            log.info("client disconnected; cancelling the remaining pages")
            cancel.set()
            return


async def _upload_to_s3(s3: Any, lifecycle: Any, metrics: Any, request_id: str, out_dir: Path) -> dict[str, Any] | None:
    if s3 is None:
        return None
    try:
        info = await asyncio.to_thread(s3.upload_outputs, out_dir.name, out_dir)
    except Exception as exc:  # the local result is already written: report the failure, never lose the result
        log.warning("S3 upload failed: %s", exc)
        lifecycle.note_s3_failure(exc)
        metrics.s3_uploads.labels("error").inc()
        return {"bucket": s3.bucket, "keys": [], "error": f"{type(exc).__name__}: {exc}"}
    lifecycle.note_s3_success()
    metrics.s3_uploads.labels("ok").inc()
    return info


def _json_body(result: DocumentResult, request_id: str, out_dir: Path, s3_info: dict[str, Any] | None) -> bytes:
    # Built in a thread: a few hundred pages of blocks is real CPU work for json.
    payload = {"request_id": request_id, **result.model_dump(mode="json"),
               "outputs": {"dir": str(out_dir), "s3": s3_info}}
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")
