"""The job runner: one task per active job sends the pages still missing through the conversion service's steps
(app/conversion/service.py: `convert_pages`, unmetered, crops into the job's directory), checkpoints each page as
it finishes, then merges the stored pages, delivers the result (`deliver`: finalized, written atomically, S3) and
only then marks the job succeeded.

Jobs run concurrently (up to a cap) so the pool's round-robin dispatcher interleaves their pages: a small job
submitted after a huge one is not stuck behind it. A conversion that began as a synchronous request and was
handed off (app/jobs/handoff.py) is watched here too, so both kinds end the same way.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING

from app.conversion.service import convert_pages, deliver
from app.errors import AppError, Cancelled
from app.jobs import files
from app.jobs.events import JobEvent, JobEvents
from app.jobs.store import Job, JobStore
from app.pipeline.result import DocumentResult, PageResult
from app.runtime.pool import Admission
from app.settings import Settings
from app.storage.disk import as_insufficient_storage, is_disk_full

if TYPE_CHECKING:
    from app.jobs.callbacks import CallbackDispatcher
    from app.runtime.pool import PagePool
    from app.pipeline.page import RegionRecognizer
    from app.storage.s3 import S3Uploader

log = logging.getLogger(__name__)

# Jobs converting at once, per pool worker. Enough for round-robin fairness between big and small jobs while
# bounding how many documents the pool tracks; the rest wait as `queued` (durably, unlike requests).
RUNNING_JOBS_PER_WORKER = 4
# Retrying the write of a failed job's end (a full disk): soon at first, then at most this often.
_FINISH_RETRY_FIRST_S = 0.5
_FINISH_RETRY_MAX_S = 10.0


def merge_pages(pages: list[PageResult], page_count: int) -> DocumentResult:
    """One document from its pages (any order), exactly as `convert_document` builds it."""
    from app.runtime.document import merge_pages as merge

    return merge(pages, page_count)


class JobRunner:
    """Runs jobs to their end on `pool`; `stop` pauses them (they resume at the next start)."""

    def __init__(self, settings: Settings, pool: PagePool, store: JobStore, events: JobEvents, *,
                 vl: RegionRecognizer | None = None, s3: S3Uploader | None = None,
                 callbacks: CallbackDispatcher | None = None) -> None:
        self.settings = settings
        self.callbacks = callbacks
        self.pool = pool
        self.store = store
        self.events = events
        self.vl = vl
        self.s3 = s3
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancels: dict[str, asyncio.Event] = {}
        self._slots = asyncio.Semaphore(RUNNING_JOBS_PER_WORKER * max(1, settings.workers))
        self._stopping = False

    # --- control -----------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Nothing to start: jobs run as they are spawned (the shared-database runner starts its loops here)."""

    def spawn(self, job_id: str) -> None:
        """Run a queued (or resumed) job: it waits for a slot, then converts its missing pages."""
        self._cancels.setdefault(job_id, asyncio.Event())
        self._track(job_id, asyncio.create_task(self._run(job_id), name=f"job-{job_id}"))

    def cancel_event(self, job_id: str, cancel: asyncio.Event) -> None:
        """Register the event that stops `job_id`'s conversion (a hand-off registers it before its first
        checkpoint, so a DELETE that early still reaches the conversion)."""
        self._cancels[job_id] = cancel

    def watch(self, job: Job, task: asyncio.Task[DocumentResult], cancel: asyncio.Event) -> None:
        """Take over a conversion already running for `job` (a handed-off request): record how it ends."""
        self._cancels[job.id] = cancel
        self._track(job.id, asyncio.create_task(self._watch_adopted(job, task, cancel), name=f"job-{job.id}"))

    def signal_cancel(self, job_id: str) -> None:
        """Pages of the job not yet started are never started (the store already says `cancelled`)."""
        event = self._cancels.get(job_id)
        if event is not None:
            event.set()

    async def wait(self, job_id: str, timeout_s: float) -> None:
        """Wait (bounded) for a job's runner task to end."""
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.wait({task}, timeout=timeout_s)

    async def stop(self, grace_s: float) -> None:
        """Start no more pages and wait up to `grace_s` for in-flight pages to finish and be checkpointed. Jobs
        stay queued/running in the store and resume at the next start."""
        self._stopping = True
        for event in self._cancels.values():
            event.set()
        tasks = [t for t in self._tasks.values() if not t.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _track(self, job_id: str, task: asyncio.Task[None]) -> None:
        self._tasks[job_id] = task
        task.add_done_callback(lambda _t: self._forget(job_id))

    def _forget(self, job_id: str) -> None:
        self._tasks.pop(job_id, None)
        self._cancels.pop(job_id, None)

    # --- one job -----------------------------------------------------------------------------------------------
    async def _run(self, job_id: str) -> None:
        cancel = self._cancels[job_id]
        async with self._slots:
            if cancel.is_set():
                return
            try:
                job = await self.store.mark_running(job_id)
            except Exception as exc:  # a full disk, say: the job must still end, not wait for a restart
                if self._stopping:
                    return
                await self._record_failure(job_id, exc)
                job = None
            if job is None:
                return
            self.publish_status(job)
            await self._settle(job, self._convert(job, cancel))

    async def _watch_adopted(self, job: Job, task: asyncio.Task[DocumentResult], cancel: asyncio.Event) -> None:
        async def outcome() -> DocumentResult:
            result = await task
            done = await self.store.done_page_indices(job.id)
            for page in result.pages:  # pages the request produced without a handoff to checkpoint them
                if page.page - 1 not in done:
                    await self.store.save_page(job.id, page)
            return await self._merge_stored(job)

        self.publish_status(job)
        await self._settle(job, outcome())

    async def _settle(self, job: Job, work: Awaitable[DocumentResult | None]) -> None:
        """Await the conversion and record how it ended (None: nothing to record yet, other pages are pending)."""
        try:
            result = await work
            if result is not None:
                await self._complete(job, result)
            return
        except asyncio.CancelledError:
            if self._stopping:
                return  # grace period over: the job stays running and resumes on restart
            raise
        except Exception as exc:
            if self._stopping:
                # Cancelled by stop(), or the pool refusing/failing pages as it shuts down: not the job's fault.
                log.info("job %s paused by shutdown (%s); resumes on restart", job.id, type(exc).__name__)
                return
            await self._record_failure(job.id, exc)
        final = await self.store.get(job.id)
        if final is not None:
            self.publish_status(final)

    async def _record_failure(self, job_id: str, exc: Exception) -> None:
        if is_disk_full(exc):  # a page checkpoint, a crop or the result met ENOSPC / SQLITE_FULL
            exc = as_insufficient_storage(f"the pages or the result of job {job_id}")
            # The job's crops serve nothing now; removing them gives the status write below room.
            await asyncio.to_thread(shutil.rmtree, files.job_images_dir(self.settings, job_id), True)
        if isinstance(exc, Cancelled):
            await self._finish_failed(job_id, "cancelled", Cancelled.type, "cancelled by the client")
        elif isinstance(exc, AppError):
            log.warning("job %s failed: %s", job_id, exc.message)
            await self._finish_failed(job_id, "failed", exc.type, exc.message)
        else:
            log.error("job %s failed with an internal error", job_id, exc_info=exc)
            await self._finish_failed(job_id, "failed", "internal_error",
                                      "internal error while converting the document")

    async def _finish_failed(self, job_id: str, status: str, error_type: str, error_message: str) -> None:
        """Record a job's failed end, retrying until the store takes it: on a full disk the status write can
        fail too, and a job left `running` with nothing working on it would wait for a restart. The job ends as
        soon as space returns; only a shutdown stops the retries (the job then resumes at the next start)."""
        delay = _FINISH_RETRY_FIRST_S
        while True:
            try:
                await self.store.finish(job_id, status, error_type=error_type, error_message=error_message)
                return
            except Exception as exc:
                if self._stopping:
                    log.warning("job %s: could not record its end before shutdown (%s); resumes on restart",
                                job_id, type(exc).__name__)
                    return
                log.warning("job %s: recording its end failed (%s: %s); retrying in %.0f s", job_id,
                            type(exc).__name__, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _FINISH_RETRY_MAX_S)

    async def _convert(self, job: Job, cancel: asyncio.Event) -> DocumentResult:
        done = await self.store.done_page_indices(job.id)
        missing = [i for i in job.page_indices if i not in done]  # a resumed job converts only these
        if missing:
            await self._convert_pages(job, files.job_dir(self.settings, job.id) / files.INPUT_NAME, missing, cancel)
        return await self._merge_stored(job)

    async def _convert_pages(self, job: Job, input_path: Path, indices: list[int], cancel: asyncio.Event) -> None:
        """Send these pages of the job through the pool, checkpointing each as it finishes, crops to its images/.
        Unmetered: jobs wait in their own durable queue, bounded by the running-jobs cap (`Admission.unmetered`)."""
        images = await asyncio.to_thread(self._outputs(job).images_dir)
        await convert_pages(self.pool, input_path, job.options, indices, job.page_count,
                            admission=Admission.unmetered(), images_dir=images,
                            on_page=lambda page: self.checkpoint(job, page), cancel=cancel, vl=self.vl)

    def _outputs(self, job: Job) -> files.JobOutputs:
        return files.JobOutputs(self.settings, job.id, self.s3)

    async def checkpoint(self, job: Job, page: PageResult) -> None:
        """Store one finished page and tell the job's listeners."""
        job.pages_done = await self.store.save_page(job.id, page)
        self.events.publish(job.id, JobEvent("page", {
            "job_id": job.id, "page": page.page, "pages_done": job.pages_done, "pages_total": job.pages_total,
        }))

    async def _merge_stored(self, job: Job) -> DocumentResult:
        stored = {c.page_index: c.result for c in await self.store.pages(job.id)}
        missing = [i + 1 for i in job.page_indices if i not in stored]
        if missing:
            raise RuntimeError(f"job {job.id}: pages {missing} have no checkpoint after conversion")
        return merge_pages([stored[i] for i in job.page_indices], job.page_count)

    async def _complete(self, job: Job, result: DocumentResult) -> None:
        s3 = await deliver(self.settings, result, job.options, self._outputs(job),
                           files.job_images_dir(self.settings, job.id))
        # Status flips only now, after the files are complete: a succeeded job always has its result.
        if await self.store.finish(job.id, "succeeded", s3=s3):
            log.info("job %s succeeded: %s pages", job.id, job.pages_total)
        final = await self.store.get(job.id)
        if final is not None:
            self.publish_status(final)

    def publish_status(self, job: Job) -> None:
        self.events.publish(job.id, JobEvent.status_of(job))
        if self.callbacks is not None:
            self.callbacks.notify(job)  # a finished job's webhook (a no-op for the others and once under way)
