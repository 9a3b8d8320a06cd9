"""One synchronous conversion of a received upload, for every door that waits for its result: POST /ocr/pdf and the
MCP `convert_document` tool. Each door turns its input into an `Upload` and `ConvertOptions`, calls
`check_accepting` before it reads anything and `convert_upload` after, and renders the outcome its own way.

Order of work in `convert_upload`: mode check -> sidecar check -> inspect the PDF in a thread (415/422/413) ->
admission (503 + Retry-After) -> convert through the shared pool -> write outputs atomically -> S3 (failure
reported, local result kept). Past MAX_SYNC_WAIT_S the running conversion is handed to a job (`HandedOff`).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.api.limits import refuse_when_saturated
from app.api.upload import Upload
from app.errors import AppError, NotReady
from app.jobs.manager import JobHandoff
from app.jobs.store import Job
from app.lifecycle import Lifecycle
from app.observability.metrics import Metrics
from app.runtime.document import convert_document
from app.runtime.pool.admission import Admission
from app.runtime.intake import inspect_pdf
from app.pipeline.options import ConvertOptions, check_image_mode
from app.pipeline.result import DocumentResult, PageResult
from app.services import Services
from app.storage import images as image_store
from app.storage.results import StoredResult, store_result
from app.storage.s3 import S3Uploader
from app.vlm.recognizer import VlRecognizer

log = logging.getLogger(__name__)

# Watches the caller while the conversion runs (a dropped HTTP client); sets the event to cancel the pages left.
Watcher = Callable[[asyncio.Event], Awaitable[None]]
PageCallback = Callable[[PageResult, int], Awaitable[None] | None]  # (page, pages_total)


@dataclass
class Converted:
    result: DocumentResult
    stored: StoredResult
    s3: dict[str, Any] | None


@dataclass
class HandedOff:
    job: Job


def check_accepting(lifecycle: Lifecycle, services: Services) -> None:
    """503 + Retry-After while the service is not ready or its pool is saturated: before any body is read, since
    under overload every rejected upload would otherwise still be stored and inspected."""
    accepting = lifecycle.accepting(services.pool)
    if not accepting.ok:
        services.metrics.rejections.labels("not_ready").inc()
        raise NotReady(f"not ready: {accepting.reason}", retry_after_s=5)
    try:
        refuse_when_saturated(services.pool)
    except AppError:
        services.metrics.rejections.labels("overloaded").inc()
        raise


async def convert_upload(services: Services, upload: Upload, options: ConvertOptions, *, owner: str,
                         request_id: str, watch: Watcher | None = None, on_page: PageCallback | None = None,
                         hand_off: bool = True, vl: VlRecognizer | None = None,
                         keep_input: bool = False) -> Converted | HandedOff:
    """Convert `upload` (which this call owns and removes, unless a job adopts it); see the module docstring.
    `hand_off=False` waits for the whole document (for clients that cannot follow a 202); `vl` replaces the
    service's recognizer for this call (per-request sampling); `keep_input` leaves the upload (the PDF) to the
    caller once converted, to render from it while shaping the answer (the caller removes it then)."""
    settings, pool, jobs = services.settings, services.pool, services.jobs
    keep_upload = converted = False
    staging: Path | None = None
    try:
        check_image_mode(upload.image_format, options.mode)  # for doors that validated before the upload
        if options.mode == "vl" and services.vlm is not None:
            services.vlm.raise_if_unavailable()  # before any rendering: a down sidecar means 503 now
        info = await asyncio.to_thread(inspect_pdf, upload.path, settings, options.pages)
        admission = _admit(services, len(info.page_indices))
        log.info("converting %d of %d pages (mode=%s dpi=%d lang=%s, %d bytes)", len(info.page_indices),
                 info.page_count, options.mode, options.dpi, options.lang, upload.size)
        handoff = JobHandoff()  # buffers pages so a hand-off to a job keeps them (checkpoints)
        cancel = handoff.cancel
        staging = image_store.staging_dir(settings, request_id)
        handoff.images_dir = staging  # a job that adopts the conversion adopts its crops too
        page_done = _page_callback(handoff, on_page, len(info.page_indices))
        task = asyncio.create_task(
            convert_document(pool, upload.path, options, page_indices=info.page_indices, cancel=cancel,
                             vl=vl or services.vl, page_count=info.page_count, on_page=page_done, admission=admission,
                             images=image_store.image_target(settings, options.images, staging)),
            name=f"convert-{request_id}",
        )
        # The admission lives as long as the conversion, whoever ends up awaiting it (this call or a job).
        task.add_done_callback(lambda _t: admission.release())
        watcher = asyncio.create_task(watch(cancel)) if watch is not None else None
        try:
            done, _ = await asyncio.wait({task}, timeout=settings.max_sync_wait_s if hand_off else None)
            if not done:
                if hand_off and jobs is not None and jobs.accepting:
                    job = await jobs.adopt(task, upload.path, options, owner, handoff=handoff,
                                           filename=upload.filename)
                    keep_upload = True  # the job owns the upload now and removes it when the task ends
                    return HandedOff(job)
                result = await task
            else:
                result = task.result()
            converted = True
        finally:
            if watcher is not None:
                watcher.cancel()
            if not task.done() and not keep_upload:
                cancel.set()
                task.cancel()
    finally:
        if not (keep_upload or (keep_input and converted)):
            upload.discard()
            if staging is not None and not converted:
                shutil.rmtree(staging, ignore_errors=True)  # pages still in flight find no directory: no strays
    return await _store(services, request_id, result, staging, options)


def _admit(services: Services, pages: int) -> Admission:
    try:
        return services.pool.admit(pages)
    except AppError:
        services.metrics.rejections.labels("overloaded").inc()
        raise


def _page_callback(handoff: JobHandoff, on_page: PageCallback | None,
                   total: int) -> Callable[[PageResult], Awaitable[None]]:
    """Each finished page to the hand-off buffer (a job that adopts the conversion keeps it), then to `on_page`."""
    async def page_done(page: PageResult) -> None:
        await handoff.on_page(page)
        if on_page is not None:
            outcome = on_page(page, total)
            if asyncio.iscoroutine(outcome):
                await outcome

    return page_done


async def _store(services: Services, request_id: str, result: DocumentResult, staging: Path | None,
                 options: ConvertOptions) -> Converted:
    """The converted document's outputs: crops finalized, the result written (a full disk costs the copy, not
    the answer), then S3."""
    settings, metrics = services.settings, services.metrics
    metrics.observe_document(result.pages)
    log.info("converted %d pages; stage seconds %s", len(result.pages),
             {k: round(v, 3) for k, v in result.timings.items()})
    try:
        result = await asyncio.to_thread(image_store.finalize, result, staging, options.images, settings)
        stored = await store_result(settings, request_id, result, images=staging)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    s3_info = None
    if stored.directory is not None:
        s3_info = await _upload_to_s3(services.s3, metrics, request_id, stored.directory)
    return Converted(result, stored, s3_info)


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
