"""POST /ocr/pdf: one PDF (or image) in, the DocumentResult out (JSON, the Markdown with `Accept: text/markdown`,
or a zip of result.md, result.json and images/ with `Accept: application/zip`).

Order of work, cheapest rejection first: readiness -> stream the upload to disk (413 while streaming) ->
options -> inspect the PDF in a thread (415/422/413) -> admission (503 + Retry-After) -> convert through the
shared pool -> write outputs atomically -> S3 (failure reported, local result kept) -> respond.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.api.deps import (
    JobsDep, LifecycleDep, MetricsDep, PoolDep, RequestIdDep, S3Dep, SettingsDep, VlDep, VlmDep,
)
from app.api.bundle import ZIP_TYPE, wants_zip, zip_response
from app.api.job_views import OwnerDep, accepted
from app.api.limits import refuse_when_saturated
from app.api.upload import FILE_FIELD, receive_pdf_upload, uploads_dir
from app.errors import AppError, InsufficientStorage, NotReady
from app.jobs.manager import JobHandoff
from app.pipeline.document import convert_document
from app.pipeline.image_input import check_mode
from app.pipeline.intake import inspect_pdf
from app.pipeline.options import IMAGES_MODES, LANG_HELP, MODES, ConvertOptions, options_from_fields
from app.pipeline.result import DocumentResult
from app.observability.metrics import Metrics
from app.storage import images as image_store
from app.storage.results import store_result
from app.storage.s3 import S3Uploader

log = logging.getLogger(__name__)

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
                        "lang": {"type": "string", "description": LANG_HELP},
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
    lifecycle: LifecycleDep,
    pool: PoolDep,
    vl: VlDep,
    vlm: VlmDep,
    jobs: JobsDep,
    s3: S3Dep,
    metrics: MetricsDep,
    request_id: RequestIdDep,
    owner: OwnerDep,
    pages: str | None = Query(None, description='1-based page selection such as "1-3,7"'),
    mode: str | None = Query(None, description="auto | text | ocr | vl"),
    dpi: str | None = Query(None, description="Render DPI for OCR"),
    images: str | None = Query(None, description="refer (default) | embed | none"),
    lang: str | None = Query(None, description=LANG_HELP),
) -> Response:
    accepting = lifecycle.accepting(pool)
    if not accepting.ok:
        metrics.rejections.labels("not_ready").inc()
        raise NotReady(f"not ready: {accepting.reason}", retry_after_s=5)
    try:
        refuse_when_saturated(pool)  # before the body: a full queue costs a rejection nothing to read
    except AppError:
        metrics.rejections.labels("overloaded").inc()
        raise

    upload = await receive_pdf_upload(request, settings, request_id)
    keep_upload = converted = False
    staging: Path | None = None
    try:
        # Form fields win over query parameters.
        options = options_from_fields(settings, upload.fields,
                                      {"pages": pages, "mode": mode, "dpi": dpi, "images": images,
                                                               "lang": lang})
        check_mode(upload.image_format, options.mode)
        if options.mode == "vl" and vlm is not None:
            vlm.raise_if_unavailable()  # before any rendering: a down sidecar means 503 now, not after layout
        info = await asyncio.to_thread(inspect_pdf, upload.path, settings, options.pages)
        try:
            admission = pool.admit(len(info.page_indices))
        except AppError:
            metrics.rejections.labels("overloaded").inc()
            raise
        log.info("converting %d of %d pages (mode=%s dpi=%d lang=%s, %d bytes)", len(info.page_indices),
                 info.page_count, options.mode, options.dpi, options.lang, upload.size)
        handoff = JobHandoff()  # buffers pages so a hand-off to a job keeps them (checkpoints)
        cancel = handoff.cancel
        staging = image_store.staging_dir(settings, request_id)
        handoff.images_dir = staging  # a job that adopts the conversion adopts its crops too
        task = asyncio.create_task(
            convert_document(pool, upload.path, options, page_indices=info.page_indices, cancel=cancel, vl=vl,
                             page_count=info.page_count, on_page=handoff.on_page, admission=admission,
                             images=image_store.image_target(settings, options.images, staging)),
            name=f"convert-{request_id}",
        )
        # The admission lives as long as the conversion, whoever ends up awaiting it (this route or a job).
        task.add_done_callback(lambda _t: admission.release())
        watcher = asyncio.create_task(_cancel_on_disconnect(request, cancel))
        try:
            done, _ = await asyncio.wait({task}, timeout=settings.max_sync_wait_s)
            if not done:
                if jobs is not None and jobs.accepting:
                    response = await _hand_off(jobs, task, upload.path, options, owner, handoff)
                    keep_upload = True  # the job owns the upload now and removes it when the task ends
                    return response
                result = await task
            else:
                result = task.result()
            converted = True
        finally:
            watcher.cancel()
            if not task.done() and not keep_upload:
                cancel.set()
                task.cancel()
    finally:
        if not keep_upload:
            upload.discard()
            if staging is not None and not converted:
                shutil.rmtree(staging, ignore_errors=True)  # pages still in flight find no directory: no strays

    request.state.pages = len(result.pages)  # for the access log line
    metrics.observe_document(result.pages)
    log.info("converted %d pages; stage seconds %s", len(result.pages),
             {k: round(v, 3) for k, v in result.timings.items()})
    try:
        result = await asyncio.to_thread(image_store.finalize, result, staging, options.images, settings)
        # a full disk costs the copy, not the answer
        stored = await store_result(settings, request_id, result, images=staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    s3_info = None
    if stored.directory is not None:
        s3_info = await _upload_to_s3(s3, metrics, request_id, stored.directory)

    if wants_zip(request):
        if stored.directory is None:  # the bundle is made from the files on disk, and they could not be written
            raise InsufficientStorage(stored.outputs["error"]["message"])
        return await zip_response(stored.directory, filename=f"{stored.directory.name}.zip",
                                  scratch_dir=uploads_dir(settings))
    if wants_markdown(request):
        return Response(result.markdown.encode("utf-8"), media_type=MARKDOWN_TYPE)
    body = await asyncio.to_thread(_json_body, result, request_id, stored.outputs, s3_info)
    return Response(body, media_type="application/json")


async def _hand_off(jobs: Any, task: asyncio.Task[DocumentResult], upload_path: Path, options: ConvertOptions,
                    owner: str, handoff: JobHandoff) -> Response:
    """The sync wait ran out: the running conversion continues as a job; answer 202 with its location."""
    job = await jobs.adopt(task, upload_path, options, owner, handoff=handoff)
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


async def _upload_to_s3(s3: S3Uploader | None, metrics: Metrics, request_id: str, out_dir: Path,
                        ) -> dict[str, Any] | None:
    if s3 is None:
        return None
    try:
        info = await asyncio.to_thread(s3.upload_outputs, out_dir.name, out_dir)
    except Exception as exc:  # the local result is already written: report the failure, never lose the result
        log.warning("S3 upload failed: %s", exc)  # the uploader recorded it for /health
        metrics.s3_uploads.labels("error").inc()
        return {"bucket": s3.bucket, "keys": [], "error": f"{type(exc).__name__}: {exc}"}
    metrics.s3_uploads.labels("ok").inc()
    return info


def _json_body(result: DocumentResult, request_id: str, outputs: dict[str, Any], s3_info: dict[str, Any] | None) -> bytes:
    # Built in a thread: a few hundred pages of blocks is real CPU work for json.
    payload = {"request_id": request_id, **result.model_dump(mode="json"), "outputs": {**outputs, "s3": s3_info}}
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")
