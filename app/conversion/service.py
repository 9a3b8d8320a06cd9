"""The one conversion sequence, for every entry point: inspect -> admit -> convert -> finalize outputs -> write ->
publish (the input was prepared, an image turned into its PDF wrapper, when it was stored: source.py).

Entry points differ only by policy values:
- `Admit`, how the pages enter the pool: `NOW` for a call someone waits on (POST /ocr/pdf, PaddleX's
  /layout-parsing, the MCP tool): 503 + Retry-After when the pool is at its pending-page bound or the sidecar's
  breaker is open, and its pages count in the service's metrics; `WAIT` for a caller converting its own files (CLI,
  batch, warm-up, doctor): it queues behind its other documents; `UNMETERED` for a job, which waits in its own
  durable queue (see `Admission.unmetered`).
- `Outputs`, where the result goes: where the workers write the crops, and how the finalized result is written and
  published (a request's directory and S3: request_outputs.py; a job's directory: app/jobs/files.py; the CLI's
  OUTDIR; batch's bucket; `ResultOnly` for warm-up and doctor).
- hand-off (`convert_or_hand_off`): a call still running after MAX_SYNC_WAIT_S becomes a job (the 202).

A job converts its pages in pieces (resumed after a restart, leased across replicas) and delivers once every page
is checkpointed, so the job runner calls the steps `convert_pages` and `deliver` itself: the same ones `convert`
is made of. Nothing outside app/runtime and this package calls `convert_document`
(tests/unit/test_one_conversion_path.py).
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from app.conversion.handoff import JobHandoff
from app.conversion.request_outputs import Converted, RequestOutputs
from app.conversion.source import SourceFile
from app.errors import AppError
from app.pipeline.options import ConvertOptions, check_image_mode
from app.pipeline.page import RegionRecognizer
from app.pipeline.result import DocumentResult, PageResult
from app.runtime.document import OnPage, admit_waiting, convert_document
from app.runtime.intake import PdfInfo, inspect_pdf
from app.runtime.pool import Admission, PagePool
from app.settings import Settings
from app.storage import images as image_store

if TYPE_CHECKING:
    from app.jobs.store import Job
    from app.services import Services

log = logging.getLogger(__name__)

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
# Watches the caller while the conversion runs (a dropped HTTP client); sets the event to cancel the pages left.
Watcher = Callable[[asyncio.Event], Awaitable[None]]
PageCallback = Callable[[PageResult, int], Awaitable[None] | None]  # (page, pages_total)


class Admit(enum.Enum):
    """How a conversion's pages enter the pool (see the module docstring)."""

    NOW = "now"
    WAIT = "wait"
    UNMETERED = "unmetered"


class Outputs(Protocol[T_co]):
    """Where a conversion's result goes."""

    def images_dir(self) -> Path | None:
        """A directory, created now, for the workers to write this document's crops into; None to keep none."""

    async def write(self, result: DocumentResult) -> T_co:
        """Write the finalized result where it belongs and publish it; returns what the caller answers with."""

    def discard(self) -> None:
        """Remove what `write` did not take (the crops of a failed conversion); called once at the end, unless a
        job adopted the conversion."""


class ResultOnly:
    """No outputs: the result itself, no crops (warm-up, doctor)."""

    def images_dir(self) -> Path | None:
        return None

    async def write(self, result: DocumentResult) -> DocumentResult:
        return result

    def discard(self) -> None:
        pass


@dataclass
class HandedOff:
    job: Job


# --- the steps ---------------------------------------------------------------------------------------------------
async def admit(services: Services, n_pages: int, how: Admit) -> Admission:
    if how is Admit.UNMETERED:
        return Admission.unmetered()
    if how is Admit.WAIT:
        return await admit_waiting(services.pool, n_pages)
    try:
        return services.pool.admit(n_pages)
    except AppError:
        services.metrics.rejections.labels("overloaded").inc()
        raise


async def convert_pages(pool: PagePool, pdf: Path, options: ConvertOptions, page_indices: list[int],
                        page_count: int, *, admission: Admission, images_dir: Path | None,
                        on_page: OnPage | None = None, cancel: asyncio.Event | None = None,
                        vl: RegionRecognizer | None = None) -> DocumentResult:
    """These pages of `pdf` through the pool, crops into `images_dir`; `on_page` sees each page as it finishes."""
    images = image_store.image_target(pool.settings, options.images, images_dir) if images_dir is not None else None
    return await convert_document(pool, pdf, options, page_indices=page_indices, page_count=page_count,
                                  on_page=on_page, cancel=cancel, vl=vl, admission=admission, images=images)


async def deliver(settings: Settings, result: DocumentResult, options: ConvertOptions, outputs: Outputs[T],
                  images_dir: Path | None) -> T:
    """Finalize the crops (the document's image budget, `embed`), then write and publish the result."""
    if images_dir is not None:
        result = await asyncio.to_thread(image_store.finalize, result, images_dir, options.images, settings)
    return await outputs.write(result)


# --- the sequence ------------------------------------------------------------------------------------------------
async def convert(services: Services, source: SourceFile, options: ConvertOptions, outputs: Outputs[T], *,
                  admit_how: Admit, info: PdfInfo | None = None, on_page: PageCallback | None = None,
                  watch: Watcher | None = None, vl: RegionRecognizer | None = None) -> T:
    """The whole document, start to end (see the module docstring); `info` when the caller inspected it already
    (the CLI sizes its pool from every file's pages)."""
    outcome = await _run(services, source, options, outputs, admit_how=admit_how, info=info, on_page=on_page,
                         watch=watch, vl=vl, hand_off_owner=None)
    assert not isinstance(outcome, HandedOff)  # no hand-off asked for
    return outcome


async def convert_or_hand_off(services: Services, source: SourceFile, options: ConvertOptions, outputs: Outputs[T],
                              *, owner: str, on_page: PageCallback | None = None, watch: Watcher | None = None,
                              vl: RegionRecognizer | None = None) -> T | HandedOff:
    """`convert` for a call someone waits on (admitted now), except that past MAX_SYNC_WAIT_S the running
    conversion becomes a job of `owner`'s (its pages so far kept, the input and crops adopted) and this returns
    `HandedOff` for the caller's 202."""
    return await _run(services, source, options, outputs, admit_how=Admit.NOW, info=None, on_page=on_page,
                      watch=watch, vl=vl, hand_off_owner=owner)


async def convert_request(services: Services, source: SourceFile, options: ConvertOptions, *, request_id: str,
                          owner: str, hand_off: bool = True, on_page: PageCallback | None = None,
                          watch: Watcher | None = None, vl: RegionRecognizer | None = None) -> Converted | HandedOff:
    """A call someone waits on (POST /ocr/pdf, /layout-parsing, the MCP tool): admitted now, its result under
    OUTPUT_DIR/<request id>/ and in S3 (request_outputs.py), a job past MAX_SYNC_WAIT_S unless `hand_off=False`
    (for clients that cannot follow a 202). `vl` replaces the service's recognizer (per-request sampling)."""
    outputs = RequestOutputs(services.settings, request_id, services.s3, services.metrics)
    if hand_off:
        return await convert_or_hand_off(services, source, options, outputs, owner=owner, on_page=on_page,
                                         watch=watch, vl=vl)
    return await convert(services, source, options, outputs, admit_how=Admit.NOW, on_page=on_page, watch=watch,
                         vl=vl)


async def _run(services: Services, source: SourceFile, options: ConvertOptions, outputs: Outputs[T], *,
               admit_how: Admit, info: PdfInfo | None, on_page: PageCallback | None, watch: Watcher | None,
               vl: RegionRecognizer | None, hand_off_owner: str | None) -> T | HandedOff:
    settings = services.settings
    handoff = JobHandoff() if hand_off_owner is not None else None
    cancel = handoff.cancel if handoff is not None else asyncio.Event()
    adopted = converted = False
    images: Path | None = None
    try:
        check_image_mode(source.image_format, options.mode)  # an image has no text layer for `text` mode (422)
        if admit_how is Admit.NOW and options.mode == "vl" and services.vlm is not None:
            services.vlm.raise_if_unavailable()  # before any rendering: a down sidecar means 503 now
        if info is None:  # the PDF validated, its pages selected (415/422/413)
            info = await asyncio.to_thread(inspect_pdf, source.path, settings, options.pages)
        admission = await admit(services, len(info.page_indices), admit_how)
        log.info("converting %d of %d pages (mode=%s dpi=%d lang=%s, %d bytes)", len(info.page_indices),
                 info.page_count, options.mode, options.dpi, options.lang, source.size)
        try:
            images = outputs.images_dir()
        except BaseException:
            admission.release()
            raise
        total = len(info.page_indices)

        async def page_done(page: PageResult) -> None:
            if handoff is not None:
                await handoff.on_page(page)  # buffered until a job adopts the conversion, then checkpointed
            if on_page is not None:
                outcome = on_page(page, total)
                if inspect.isawaitable(outcome):
                    await outcome

        task = asyncio.create_task(
            convert_pages(services.pool, source.path, options, info.page_indices, info.page_count,
                          admission=admission, images_dir=images, on_page=page_done, cancel=cancel,
                          vl=vl or services.vl),
            name=f"convert-{source.path.name}",
        )
        # The admission lives as long as the conversion, whoever ends up awaiting it (this call or a job).
        task.add_done_callback(lambda _t: admission.release())
        watcher = asyncio.create_task(watch(cancel)) if watch is not None else None
        try:
            done, _ = await asyncio.wait({task}, timeout=settings.max_sync_wait_s if handoff is not None else None)
            if not done:
                jobs = services.jobs
                if handoff is not None and jobs is not None and jobs.accepting:
                    handoff.images_dir = images  # a job that adopts the conversion adopts its crops too
                    job = await jobs.adopt(task, source.path, options, hand_off_owner, handoff=handoff,
                                           filename=source.filename)
                    adopted = True  # the job owns the input and the crops now, and removes them when it ends
                    return HandedOff(job)
                result = await task
            else:
                result = task.result()
            converted = True
        finally:
            if watcher is not None:
                watcher.cancel()
            if not task.done() and not adopted:
                cancel.set()
                task.cancel()
    finally:
        if not adopted:
            if source.temporary:
                source.discard()
            if not converted:
                outputs.discard()  # pages still in flight find no directory: no strays

    if admit_how is Admit.NOW:
        services.metrics.observe_document(result.pages)
    log.info("converted %d pages; stage seconds %s", len(result.pages),
             {k: round(v, 3) for k, v in result.timings.items()})
    try:
        return await deliver(settings, result, options, outputs, images)
    finally:
        outputs.discard()
