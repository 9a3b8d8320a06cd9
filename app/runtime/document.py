"""A whole file through the page pool: admission, fair submission, progress callbacks, cancellation, ordering.

`convert_document` is what the API and the jobs await; `convert_file_sync` is the same for the CLI, which owns no
event loop. Pages finish in any order (`on_page` sees them as they come, so jobs can checkpoint), the result
lists them in page order. The first page that fails fails the document with that page's error; pages not yet
started are then dropped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from app.errors import AppError, Cancelled, Overloaded
from app.pipeline import page as page_mod
from app.pipeline.continuation import mark_continued_tables
from app.pipeline.figures import ImageTarget
from app.runtime.intake import inspect_pdf
from app.pipeline.options import ConvertOptions, require_vl_available
from app.pipeline.page import PageTask, RegionRecognizer, VlAnalysis
from app.runtime.pool import Admission, PagePool
from app.pipeline.result import DocumentResult, PageResult
from app.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
OnPage = Callable[[PageResult], Awaitable[None] | None]

# Modes whose pages need the layout/OCR engines in the workers.
MODEL_MODES = frozenset({"auto", "ocr", "vl"})
# Modes whose pages are cheap enough that per-page IPC matters; model pages (a second or more) never chunk, so a
# crash or a cancel never takes more than the one slow page with it.
CHUNKABLE_MODES = frozenset({"text"})


async def convert_document(
    pool: PagePool,
    pdf_path: Path,
    options: ConvertOptions,
    *,
    page_indices: list[int] | None = None,
    on_page: OnPage | None = None,
    cancel: asyncio.Event | None = None,
    vl: RegionRecognizer | None = None,
    page_count: int | None = None,
    admission: Admission | None = None,
    images: ImageTarget | None = None,
) -> DocumentResult:
    """Convert the selected pages of `pdf_path` (0-based `page_indices`, else `options.pages`) on `pool`.

    Admission: uses `admission` when the caller already reserved the pages (the API route admits before it
    starts the task), else admits them itself (raising `Overloaded`). Setting `cancel` stops the conversion: pages not yet started
    are dropped and `Cancelled` is raised. In `vl` mode the workers find and crop the regions and `vl` reads them;
    without `vl` the request is refused. With `images`, workers write figure/table crops there (figures.py)."""
    started = time.perf_counter()
    require_vl_available(options, vl is not None)
    if page_indices is None or page_count is None:
        info = await asyncio.to_thread(inspect_pdf, pdf_path, pool.settings, options.pages)
        page_indices = info.page_indices if page_indices is None else page_indices
        page_count = info.page_count
    page_indices = sorted(set(page_indices))
    if cancel is not None and cancel.is_set():
        raise Cancelled("the conversion was cancelled")

    own_admission = None
    if admission is None:
        admission = own_admission = pool.admit(len(page_indices))

    kind = "vl" if options.mode == "vl" else "page"
    # Text-mode pages cost a few milliseconds: the pool may send several in one message (see pool/scheduler.py).
    chunkable = options.mode in CHUNKABLE_MODES
    loop = asyncio.get_running_loop()
    # Every finished page (pool future or vl reading task) lands here once: waiting on one queue costs the same
    # per page however many pages are outstanding, where `asyncio.wait` over all of them costs O(pages) each time.
    finished: asyncio.Queue[tuple[int, Any] | None] = asyncio.Queue()

    def on_worker_done(index: int, future: cf.Future) -> None:  # runs in the pool's dispatcher thread
        try:
            loop.call_soon_threadsafe(finished.put_nowait, (index, future))
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    queue = pool.document(name=str(pdf_path))
    results: dict[int, PageResult] = {}
    submitted: list[cf.Future] = []
    reading: set[asyncio.Task] = set()  # vl pages whose regions the recognizer is reading
    cancel_wait = asyncio.ensure_future(cancel.wait()) if cancel is not None else None
    if cancel_wait is not None:
        cancel_wait.add_done_callback(lambda _: finished.put_nowait(None))
    try:
        tasks = [(PageTask(pdf_path=str(pdf_path), page_index=i, options=options, kind=kind, images=images),)
                 for i in page_indices]
        submitted = queue.submit_many(page_mod.run_task, tasks, chunkable=chunkable)
        for index, future in zip(page_indices, submitted, strict=True):
            future.add_done_callback(functools.partial(on_worker_done, index))
        while len(results) < len(page_indices):
            event = await finished.get()
            if event is None:
                raise Cancelled("the conversion was cancelled")
            index, future = event
            value = _page_value(future, index)
            if isinstance(value, VlAnalysis):
                reader = asyncio.ensure_future(_read_regions(vl, value))
                reading.add(reader)
                reader.add_done_callback(functools.partial(_read_done, finished, reading, index))
                continue
            results[index] = value
            admission.page_done()
            if on_page is not None:
                outcome = on_page(value)
                if inspect.isawaitable(outcome):
                    await outcome
    finally:
        queue.close()
        for future in submitted:
            future.cancel()  # no-op for pages a worker already has
        leftovers = list(reading)
        if cancel_wait is not None:
            leftovers.append(cancel_wait)
        for future in leftovers:
            future.cancel()
        if leftovers:
            await asyncio.gather(*leftovers, return_exceptions=True)
        if own_admission is not None:
            own_admission.release()
    return merge_pages([results[i] for i in page_indices], page_count, total_s=time.perf_counter() - started)


# --- several documents at once (CLI convert, batch) ------------------------------------------------------------
def documents_in_flight(workers: int) -> int:
    """How many documents a caller with many files keeps converting at once: two per worker (the pool keeps two
    send units per worker in flight, so a worker never waits while one document is written out and the next one
    inspected), at least 2, at most 8 (memory: each holds its result until written)."""
    return max(2, min(8, 2 * workers))


async def for_each_document(items: Sequence[T], convert: Callable[[int, T], Awaitable[None]], *,
                            in_flight: int) -> None:
    """`await convert(index, item)` for every item, `in_flight` at a time, started in order: the pool sees several
    documents at once, so its width is used whatever the mix of file sizes. `convert` handles its own errors."""
    limit = asyncio.Semaphore(max(1, in_flight))

    async def one(index: int, item: T) -> None:
        async with limit:
            await convert(index, item)

    await asyncio.gather(*(one(index, item) for index, item in enumerate(items)))


async def admit_waiting(pool: PagePool, n_pages: int, *, poll_s: float = 0.2) -> Admission:
    """`pool.admit(n_pages)`, waiting while the pool is at its pending-page bound instead of failing: a caller
    converting its own files (CLI, batch) queues behind its other documents; an idle pool always admits."""
    while True:
        try:
            return pool.admit(n_pages)
        except Overloaded:
            await asyncio.sleep(poll_s)


def _read_done(finished: asyncio.Queue, reading: set, index: int, task: asyncio.Task) -> None:
    reading.discard(task)
    if not task.cancelled():
        finished.put_nowait((index, task))


async def _read_regions(vl: RegionRecognizer | None, analysis: VlAnalysis) -> PageResult:
    assert vl is not None
    start = time.perf_counter()
    recognized = await vl.recognize(list(analysis.crops)) if analysis.crops else []
    result = page_mod.assemble_vl_page(analysis, recognized)
    result.timings["vl"] = time.perf_counter() - start
    return result


def _page_value(future: cf.Future | asyncio.Future, index: int):
    """The page's result, or its error re-raised with the page number in the message."""
    try:
        return future.result()
    except AppError as exc:
        if exc.message.lower().startswith("page "):
            raise
        raise type(exc)(f"page {index + 1}: {exc.message}", retry_after_s=exc.retry_after_s) from None


def merge_pages(pages: list[PageResult], page_count: int, *, total_s: float | None = None) -> DocumentResult:
    """One document from its pages (in any order): Markdown joined with a blank line between pages, timings summed
    per stage, plus `total` (the wall time when given, else the sum of the stages); a table continuing one that
    ends the page before is marked `continued`."""
    ordered = sorted(pages, key=lambda p: p.page)
    mark_continued_tables(ordered)
    timings: dict[str, float] = {}
    for page in ordered:
        for stage, seconds in page.timings.items():
            timings[stage] = timings.get(stage, 0.0) + seconds
    timings["total"] = total_s if total_s is not None else sum(timings.values())
    bodies = [p.markdown.strip("\n") for p in ordered if p.markdown.strip()]
    markdown = "\n\n".join(bodies) + "\n" if bodies else ""
    return DocumentResult(markdown=markdown, page_count=page_count, pages=ordered, timings=timings)


def convert_file_sync(
    path: Path,
    options: ConvertOptions,
    settings: Settings,
    progress: Callable[[PageResult], None] | None = None,
    *,
    pool: PagePool | None = None,
    vl: RegionRecognizer | None = None,
) -> DocumentResult:
    """Convert one file from synchronous code (the CLI). Uses `pool` when given, else starts one sized for the
    file (no models loaded for `text` mode) and stops it afterwards. `progress` is called with each finished
    page."""
    info = inspect_pdf(path, settings, options.pages)
    own_pool = pool is None
    if pool is None:
        pool = PagePool(
            settings,
            workers=max(1, min(settings.workers, len(info.page_indices))),
            preload_engines=options.mode in MODEL_MODES,
        )
        pool.start()
    try:
        return asyncio.run(
            convert_document(
                pool, Path(path), options, page_indices=info.page_indices, page_count=info.page_count,
                on_page=progress, vl=vl,
            )
        )
    finally:
        if own_pool:
            pool.close(grace_s=0)
