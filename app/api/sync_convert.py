"""The synchronous conversion path every HTTP door shares: `/ocr/pdf` and PaddleX's `/layout-parsing` (and
whatever adapter comes next) differ only in how they read their request and shape their answer.

Order of work, cheapest rejection first: readiness and a saturated pool before the body (`refuse_early`) ->
the caller stores the upload -> options -> the sidecar's state (vl) -> inspect the PDF in a thread (415/422/413)
-> admission (503 + Retry-After) -> convert through the shared pool -> crops finalised, the result written
atomically -> S3 (failure reported, local result kept). `converting` yields the outcome while the upload (the
PDF) still exists, so an adapter can render from it, and removes it on the way out.

A conversion still running after MAX_SYNC_WAIT_S is handed to a job (a 202 the caller returns) when the caller
allows it; a door whose clients cannot follow a 202 waits for the whole document instead.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response

from app.api.deps import (
    JobsDep, LifecycleDep, MetricsDep, PoolDep, RequestIdDep, S3Dep, SettingsDep, VlDep, VlmDep,
)
from app.api.job_views import OwnerDep, accepted
from app.api.limits import refuse_when_saturated
from app.api.upload import Upload
from app.errors import AppError, NotReady
from app.jobs.manager import JobHandoff, JobManager
from app.lifecycle import Lifecycle
from app.observability.metrics import Metrics
from app.pipeline.document import convert_document
from app.pipeline.image_input import check_mode
from app.pipeline.intake import inspect_pdf
from app.pipeline.options import ConvertOptions
from app.pipeline.pool import PagePool
from app.pipeline.result import DocumentResult
from app.settings import Settings
from app.storage import images as image_store
from app.storage.results import StoredResult, store_result
from app.storage.s3 import S3Uploader
from app.vlm.client import VlmClient
from app.vlm.recognizer import VlRecognizer

log = logging.getLogger(__name__)


@dataclass
class Converted:
    """A finished synchronous conversion. `pdf_path` (the upload, as a PDF) exists until `converting` exits."""

    result: DocumentResult
    options: ConvertOptions
    stored: StoredResult
    s3: dict[str, Any] | None
    pdf_path: Path


@dataclass
class SyncConverter:
    """The parts one synchronous conversion uses, resolved per request (FastAPI dependency `SyncConverterDep`)."""

    request: Request
    settings: Settings
    lifecycle: Lifecycle
    pool: PagePool
    vl: VlRecognizer | None
    vlm: VlmClient | None
    jobs: JobManager | None
    s3: S3Uploader | None
    metrics: Metrics
    request_id: str
    owner: str

    def refuse_early(self) -> None:
        """503 before a byte of the body is read: not ready yet, or a pool already full."""
        accepting = self.lifecycle.accepting(self.pool)
        if not accepting.ok:
            self.metrics.rejections.labels("not_ready").inc()
            raise NotReady(f"not ready: {accepting.reason}", retry_after_s=5)
        try:
            refuse_when_saturated(self.pool)  # a full queue costs a rejection nothing to read
        except AppError:
            self.metrics.rejections.labels("overloaded").inc()
            raise

    @asynccontextmanager
    async def converting(self, upload: Upload, options_for: Callable[[], ConvertOptions], *, hand_off: bool,
                         vl: VlRecognizer | None = None) -> AsyncIterator[Converted | Response]:
        """Convert the stored `upload` with the options `options_for()` returns (called once the upload is owned
        here, so a bad option still removes it). Yields `Converted`, or the 202 `Response` of a hand-off to a job
        when `hand_off` is set and the conversion outlives MAX_SYNC_WAIT_S. `vl` replaces the service's `vl`
        recognizer for this request (per-request sampling)."""
        keep_upload = False
        try:
            options = options_for()
            outcome = await self._convert(upload, options, hand_off=hand_off, vl=vl or self.vl)
            keep_upload = isinstance(outcome, Response)  # the job owns the upload now and removes it when it ends
            yield outcome
        finally:
            if not keep_upload:
                upload.discard()

    async def _convert(self, upload: Upload, options: ConvertOptions, *, hand_off: bool,
                       vl: VlRecognizer | None) -> Converted | Response:
        settings, pool, metrics = self.settings, self.pool, self.metrics
        check_mode(upload.image_format, options.mode)
        if options.mode == "vl" and self.vlm is not None:
            self.vlm.raise_if_unavailable()  # before any rendering: a down sidecar means 503 now, not after layout
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
        staging = image_store.staging_dir(settings, self.request_id)
        handoff.images_dir = staging  # a job that adopts the conversion adopts its crops too
        converted = handed_off = False
        try:
            task = asyncio.create_task(
                convert_document(pool, upload.path, options, page_indices=info.page_indices, cancel=cancel, vl=vl,
                                 page_count=info.page_count, on_page=handoff.on_page, admission=admission,
                                 images=image_store.image_target(settings, options.images, staging)),
                name=f"convert-{self.request_id}",
            )
            # The admission lives as long as the conversion, whoever ends up awaiting it (this request or a job).
            task.add_done_callback(lambda _t: admission.release())
            watcher = asyncio.create_task(_cancel_on_disconnect(self.request, cancel))
            try:
                wait_s = settings.max_sync_wait_s if hand_off else None
                done, _ = await asyncio.wait({task}, timeout=wait_s)
                if not done and self.jobs is not None and self.jobs.accepting:
                    job = await self.jobs.adopt(task, upload.path, options, self.owner, handoff=handoff)
                    handed_off = True
                    return accepted(job)
                result = await task
                converted = True
            finally:
                watcher.cancel()
                if not task.done() and not handed_off:
                    cancel.set()
                    task.cancel()
        finally:
            if not converted and not handed_off:
                shutil.rmtree(staging, ignore_errors=True)  # pages still in flight find no directory: no strays

        self.request.state.pages = len(result.pages)  # for the access log line
        metrics.observe_document(result.pages)
        log.info("converted %d pages; stage seconds %s", len(result.pages),
                 {k: round(v, 3) for k, v in result.timings.items()})
        try:
            result = await asyncio.to_thread(image_store.finalize, result, staging, options.images, settings)
            # a full disk costs the copy, not the answer
            stored = await store_result(settings, self.request_id, result, images=staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        s3_info = None
        if stored.directory is not None:
            s3_info = await _upload_to_s3(self.s3, metrics, self.request_id, stored.directory)
        return Converted(result=result, options=options, stored=stored, s3=s3_info, pdf_path=upload.path)


def get_sync_converter(request: Request, settings: SettingsDep, lifecycle: LifecycleDep, pool: PoolDep, vl: VlDep,
                       vlm: VlmDep, jobs: JobsDep, s3: S3Dep, metrics: MetricsDep, request_id: RequestIdDep,
                       owner: OwnerDep) -> SyncConverter:
    return SyncConverter(request=request, settings=settings, lifecycle=lifecycle, pool=pool, vl=vl, vlm=vlm,
                         jobs=jobs, s3=s3, metrics=metrics, request_id=request_id, owner=owner)


SyncConverterDep = Annotated[SyncConverter, Depends(get_sync_converter)]


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
