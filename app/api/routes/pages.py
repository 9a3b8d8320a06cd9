"""GET /jobs/{id}/pages/{n}.png: a page of a job's input at screen resolution (the web UI draws boxes on it).

Scoped like the job itself (another API key gets 404, as for every job URL). Only pages the job converts are
served, as soon as the job exists. Rendering is CPU work: it runs in this module's own small thread pool, never
on the event loop nor in the threads the API uses for file checks; with `_MAX_RENDERS` renders running or waiting,
the next caller gets 503 + Retry-After, as when the worker pool is full.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.api.deps import JobsDep, SettingsDep
from app.api.job_views import OwnerDep, owned_job
from app.errors import NotFound, Overloaded
from app.jobs import files
from app.runtime.page_image import page_png
from app.settings import MIN_DPI

router = APIRouter(tags=["jobs"])

SCREEN_DPI = 120  # a Letter page is 1020 x 1320 pixels: sharp on a laptop screen, ~0.2 MB as PNG
_RENDER_THREADS = 2
_MAX_RENDERS = 4  # running or queued
_renders = threading.BoundedSemaphore(_MAX_RENDERS)
_executor = ThreadPoolExecutor(max_workers=_RENDER_THREADS, thread_name_prefix="page-image")


@router.get(
    "/jobs/{job_id}/pages/{page}.png",
    summary="A page of the job's document as an image",
    description="`page` is the 1-based page number in the file; only pages the job converts exist. `dpi` "
    f"({MIN_DPI}-200, "
    f"default {SCREEN_DPI}) sets the resolution; boxes in the result (PDF points) scale by `dpi / 72`.",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 404: {"description": "No such job, or page not in the job"},
               503: {"description": "Busy rendering other pages; retry after `Retry-After`"}},
)
async def page_image(
    job_id: str,
    page: int,
    jobs: JobsDep,
    owner: OwnerDep,
    settings: SettingsDep,
    dpi: Annotated[int, Query(ge=MIN_DPI, le=200)] = SCREEN_DPI,
) -> Response:
    job = await owned_job(job_id, jobs, owner)
    if page - 1 not in job.page_indices:
        raise NotFound(f"page {page} is not one of the pages of job {job.id}")
    pdf_path = files.job_dir(settings, job.id) / files.INPUT_NAME
    if not _renders.acquire(blocking=False):
        raise Overloaded("busy rendering other page images; retry shortly", retry_after_s=1)

    try:
        future = _executor.submit(page_png, pdf_path, page - 1, dpi, settings)
    except BaseException:
        _renders.release()
        raise
    # Released when the render ends or is dropped from the queue, not when the awaiting request goes away.
    future.add_done_callback(lambda _f: _renders.release())
    try:
        png = await asyncio.wrap_future(future)
    except Exception:
        # The job was deleted before or while its page was rendered (its directory renamed away, then removed):
        # pdfium, the header check or the stat fail in various ways, all of which mean 404 here.
        if not await asyncio.to_thread(pdf_path.exists):
            raise NotFound(f"no job {job_id}") from None
        raise
    # A job's input never changes; the key-scoped URL may be cached by this browser only.
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
