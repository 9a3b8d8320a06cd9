"""The sync hand-off, the job side: a POST /ocr/pdf whose conversion outlives MAX_SYNC_WAIT_S becomes a job, without
starting over. The conversion service runs the request with a `JobHandoff` (app/conversion/handoff.py) as its
`on_page`/`cancel`; its pages are buffered until `adopt` stores the job, then checkpointed like any job's, so the
adopted conversion is as durable as a submitted one and DELETE cancels it."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from app.conversion.handoff import JobHandoff
from app.jobs import files
from app.jobs.runner import JobRunner
from app.jobs.store import Job, JobStore
from app.jobs.submission import new_job_id, place_job_input
from app.pipeline.options import ConvertOptions
from app.pipeline.result import DocumentResult
from app.settings import Settings
from app.storage import images as image_store

if TYPE_CHECKING:
    from app.storage.s3 import S3Uploader

log = logging.getLogger(__name__)


async def adopt(
    settings: Settings,
    store: JobStore,
    runner: JobRunner,
    task: asyncio.Task[DocumentResult],
    upload_path: Path,
    options: ConvertOptions,
    owner: str | None,
    *,
    handoff: JobHandoff | None = None,
    filename: str | None = None,
    s3: S3Uploader | None = None,
) -> Job:
    """Turn a running synchronous conversion into a job: the caller answers 202 with the job's Location and
    the conversion goes on. The upload is hard-linked into the job directory; the job takes over `upload_path`
    (the running conversion still reads it) and removes it once `task` is done. With `handoff`, its pages are
    checkpointed as they finish and DELETE cancels it; without, its pages are stored when it completes."""
    from app.runtime.intake import inspect_pdf

    info = await asyncio.to_thread(inspect_pdf, upload_path, settings, options.pages)
    digest = await asyncio.to_thread(files.sha256_file, upload_path)
    now = time.time()
    job = Job(
        id=new_job_id(), owner=owner or "", status="running", options=options, upload_sha256=digest,
        page_count=info.page_count, page_indices=list(info.page_indices), created_at=now, started_at=now,
        runs=1, filename=filename,
    )
    await place_job_input(settings, s3, job.id, upload_path, keep_source=True)
    await store.insert(job)
    cancel = handoff.cancel if handoff is not None else asyncio.Event()
    runner.cancel_event(job.id, cancel)
    if handoff is not None:
        if handoff.images_dir is not None:
            await asyncio.to_thread(image_store.adopt_dir, handoff.images_dir, files.job_images_dir(settings, job.id))
        await handoff.attach(lambda page: runner.checkpoint(job, page))
    log.info("request handed off to job %s after %.0f s", job.id, settings.max_sync_wait_s)
    task.add_done_callback(lambda _t: upload_path.unlink(missing_ok=True))
    if handoff is not None and handoff.images_dir is not None:  # the link adopt_dir left for pages in flight
        task.add_done_callback(lambda _t, link=handoff.images_dir: link.unlink(missing_ok=True))
    runner.watch(job, task, cancel)
    return job
