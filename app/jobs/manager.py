"""JobManager: durable asynchronous conversions on the shared page pool.

A job is a row in the store plus a directory holding its input. A runner task per active job sends the pages
still missing through `convert_document`, checkpointing each page as it finishes, then merges the stored pages,
writes the result files atomically and only then marks the job succeeded. Restarting the service resumes every
queued or running job at its missing pages. Jobs run concurrently (up to a cap) so the pool's round-robin
dispatcher interleaves their pages: a small job submitted after a huge one is not stuck behind it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from app.errors import AppError, Cancelled, Conflict, NotFound, NotReady
from app.jobs import files
from app.jobs.events import JobEvent, JobEvents
from app.jobs.store import ACTIVE, DuplicateIdempotencyKey, Job, JobStore
from app.jobs.sweeper import delete_job_files, run_sweeper
from app.pipeline.options import ConvertOptions, require_vl_available
from app.pipeline.result import DocumentResult, PageResult
from app.settings import Settings

log = logging.getLogger(__name__)

# Jobs converting at once, per pool worker. Enough for round-robin fairness between big and small jobs while
# bounding how many documents the pool tracks; the rest wait as `queued` (durably, unlike requests).
_RUNNING_JOBS_PER_WORKER = 4


def new_job_id() -> str:
    # 144 random bits: unguessable, URL- and path-safe; the leading letter keeps it a valid output dir name.
    return "j" + secrets.token_urlsafe(18)


class JobHandoff:
    """Lets a synchronous request hand its running conversion to a job (`JobManager.adopt`).

    The request passes `on_page` and `cancel` to `convert_document`; until adoption, pages are buffered; after,
    they are checkpointed like any job's, so the adopted conversion is as durable as a submitted one."""

    def __init__(self) -> None:
        self.cancel = asyncio.Event()
        self._buffer: list[PageResult] = []
        self._sink: Callable[[PageResult], Awaitable[None]] | None = None

    async def on_page(self, page: PageResult) -> None:
        if self._sink is None:
            self._buffer.append(page)
        else:
            await self._sink(page)

    async def attach(self, sink: Callable[[PageResult], Awaitable[None]]) -> None:
        self._sink = sink
        while self._buffer:
            await sink(self._buffer.pop(0))


def merge_pages(pages: list[PageResult], page_count: int) -> DocumentResult:
    """One document from its pages (any order), exactly as `convert_document` builds it."""
    from app.pipeline.document import merge_pages as merge

    return merge(pages, page_count)


class _Unmetered:
    """The admission a job's conversion runs under: it reserves nothing. Admission exists so synchronous
    requests get a quick 503 instead of an endless wait; jobs wait in their own durable queue (bounded by the
    running-jobs cap) and share the workers through the pool's round-robin dispatch. Counting them would make a
    big job refuse small jobs and sync requests alike, the starvation the dispatcher is there to prevent."""

    def page_done(self, count: int = 1) -> None:
        pass

    def release(self) -> None:
        pass


class JobManager:
    """Owns the job store, the runner tasks and the retention sweeper (see module docstring)."""

    def __init__(self, settings: Settings, pool: Any, vl: Any = None) -> None:
        self.settings = settings
        self.pool = pool
        self.vl = vl
        self.store = JobStore(settings.output_dir / "jobs.db")
        self.events = JobEvents()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancels: dict[str, asyncio.Event] = {}
        self._slots = asyncio.Semaphore(_RUNNING_JOBS_PER_WORKER * max(1, settings.workers))
        self._sweeper: asyncio.Task[None] | None = None
        self._accepting = False
        self._stopping = False

    # --- lifecycle ---------------------------------------------------------------------------------------------
    async def start(self, *, sweep: bool = True) -> None:
        """Open the store, pick up every queued/running job left by the previous process, start the sweeper."""
        await self.store.open()
        resumed = await self.store.active()
        for job in resumed:
            self._spawn(job.id)
        if resumed:
            log.info("resuming %s unfinished jobs", len(resumed))
        if sweep:
            self._sweeper = asyncio.create_task(run_sweeper(self.settings, self.store), name="job-sweeper")
        self._accepting = True

    async def stop(self, grace_s: float) -> None:
        """Stop taking jobs; tell runners to start no more pages and wait up to `grace_s` for in-flight pages
        to finish and be checkpointed. Jobs stay queued/running in the store and resume at the next start."""
        self._accepting = False
        self._stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for event in self._cancels.values():
            event.set()
        tasks = [t for t in self._tasks.values() if not t.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._sweeper is not None:
            await asyncio.gather(self._sweeper, return_exceptions=True)
        await self.store.close()

    @property
    def accepting(self) -> bool:
        return self._accepting

    # --- intake ------------------------------------------------------------------------------------------------
    async def submit(
        self,
        upload_path: Path,
        options: ConvertOptions,
        *,
        owner: str | None,
        idempotency_key: str | None = None,
        filename: str | None = None,
    ) -> Job:
        """Validate the upload, move it into the job's directory (and S3) and queue the job. The returned job is
        durable. A repeated idempotency key returns the first job (409 if it named a different file or options);
        the upload of a repeated or rejected submission is deleted."""
        from app.pipeline.intake import inspect_pdf

        owner = owner or ""
        try:
            self._check_accepting()
            if idempotency_key:
                existing = await self.store.by_idempotency_key(owner, idempotency_key)
                if existing is not None:
                    await self._check_same_request(existing, upload_path, options)
                    return existing
            require_vl_available(options, self.vl is not None)
            await asyncio.to_thread(files.check_free_space, self.settings)
            info = await asyncio.to_thread(inspect_pdf, upload_path, self.settings, options.pages)
            digest = await asyncio.to_thread(files.sha256_file, upload_path)
        except BaseException:
            upload_path.unlink(missing_ok=True)
            raise
        job = Job(
            id=new_job_id(), owner=owner, status="queued", options=options, upload_sha256=digest,
            page_count=info.page_count, page_indices=list(info.page_indices), created_at=time.time(),
            idempotency_key=idempotency_key, filename=filename,
        )
        directory = files.job_dir(self.settings, job.id)
        try:
            input_path = await asyncio.to_thread(files.place_input, upload_path, directory, keep_source=False)
            await self._s3_input(job.id, input_path)
            await self.store.insert(job)
        except DuplicateIdempotencyKey as dup:  # a concurrent submission with the same key won
            await delete_job_files(self.settings, job.id)
            await self._check_same_request(dup.job, None, options, digest=digest)
            return dup.job
        except BaseException:
            await asyncio.shield(delete_job_files(self.settings, job.id))
            raise
        log.info("job %s queued: %s pages", job.id, job.pages_total)
        self._spawn(job.id)
        return job

    async def adopt(
        self,
        task: asyncio.Task[DocumentResult],
        upload_path: Path,
        options: ConvertOptions,
        owner: str | None,
        *,
        handoff: JobHandoff | None = None,
        filename: str | None = None,
    ) -> Job:
        """Turn a running synchronous conversion into a job: the caller answers 202 with the job's Location and
        the conversion goes on. The upload is hard-linked into the job directory; the job takes over
        `upload_path` (the running conversion still reads it) and removes it once `task` is done. With `handoff`
        (passed to that conversion's `on_page`/`cancel`), its pages are checkpointed as they finish and DELETE
        cancels it; without, its pages are stored when it completes."""
        from app.pipeline.intake import inspect_pdf

        self._check_accepting()
        info = await asyncio.to_thread(inspect_pdf, upload_path, self.settings, options.pages)
        digest = await asyncio.to_thread(files.sha256_file, upload_path)
        now = time.time()
        job = Job(
            id=new_job_id(), owner=owner or "", status="running", options=options, upload_sha256=digest,
            page_count=info.page_count, page_indices=list(info.page_indices), created_at=now, started_at=now,
            runs=1, filename=filename,
        )
        input_path = await asyncio.to_thread(
            files.place_input, upload_path, files.job_dir(self.settings, job.id), keep_source=True
        )
        await self._s3_input(job.id, input_path)
        await self.store.insert(job)
        cancel = handoff.cancel if handoff is not None else asyncio.Event()
        self._cancels[job.id] = cancel
        if handoff is not None:
            await handoff.attach(lambda page: self._checkpoint(job, page))
        log.info("request handed off to job %s after %.0f s", job.id, self.settings.max_sync_wait_s)
        task.add_done_callback(lambda _t: upload_path.unlink(missing_ok=True))
        self._tasks[job.id] = asyncio.create_task(self._watch_adopted(job, task, cancel), name=f"job-{job.id}")
        self._tasks[job.id].add_done_callback(lambda _t, jid=job.id: self._forget(jid))
        return job

    # --- queries and control -----------------------------------------------------------------------------------
    async def get(self, job_id: str, owner: str | None) -> Job:
        """The job, if it exists and belongs to `owner`; NotFound otherwise (never 403: ids are not confirmed)."""
        job = await self.store.get(job_id)
        if job is None or job.owner != (owner or ""):
            raise NotFound(f"no job {job_id}")
        return job

    async def list_jobs(self, owner: str | None, limit: int = 50, status: str | None = None) -> list[Job]:
        return await self.store.list_for_owner(owner or "", limit, status)

    async def cancel_or_delete(self, job_id: str, owner: str | None) -> Job | None:
        """Cancel an active job (its pages not yet started never start; returns the cancelled job) or delete a
        finished one with its files (returns None)."""
        job = await self.get(job_id, owner)
        if job.status in ACTIVE:
            if await self.store.finish(job.id, "cancelled", error_type=Cancelled.type,
                                       error_message="cancelled by the client"):
                event = self._cancels.get(job.id)
                if event is not None:
                    event.set()
                log.info("job %s cancelled", job.id)
                job = await self.get(job_id, owner)
                self._publish_status(job)
                return job
            job = await self.get(job_id, owner)  # it finished meanwhile: fall through to delete
        task = self._tasks.get(job.id)
        if task is not None:  # a cancelled runner may still be draining its in-flight pages
            await asyncio.wait({task}, timeout=self.settings.shutdown_grace_s)
        await delete_job_files(self.settings, job.id)
        await self.store.delete(job.id)
        log.info("job %s deleted", job.id)
        return None

    def result_paths(self, job: Job) -> tuple[Path, Path]:
        directory = files.job_dir(self.settings, job.id)
        return directory / files.RESULT_JSON, directory / files.RESULT_MD

    async def wait(self, job_id: str, timeout_s: float) -> None:
        """Wait (bounded) for a job's runner to end; for tests and graceful paths."""
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.wait({task}, timeout=timeout_s)

    # --- running -----------------------------------------------------------------------------------------------
    def _check_accepting(self) -> None:
        if not self._accepting:
            raise NotReady("the job service is not running")

    async def _check_same_request(self, job: Job, upload: Path | None, options: ConvertOptions, *,
                                  digest: str | None = None) -> None:
        if digest is None and upload is not None:
            digest = await asyncio.to_thread(files.sha256_file, upload)
            upload.unlink(missing_ok=True)
        if digest != job.upload_sha256 or options != job.options:
            raise Conflict("Idempotency-Key was already used with a different file or options")

    def _spawn(self, job_id: str) -> None:
        self._cancels.setdefault(job_id, asyncio.Event())
        task = asyncio.create_task(self._run(job_id), name=f"job-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _t: self._forget(job_id))

    def _forget(self, job_id: str) -> None:
        self._tasks.pop(job_id, None)
        self._cancels.pop(job_id, None)

    async def _run(self, job_id: str) -> None:
        cancel = self._cancels[job_id]
        async with self._slots:
            if cancel.is_set():
                return
            job = await self.store.mark_running(job_id)
            if job is None:
                return
            self._publish_status(job)
            await self._settle(job, self._convert(job, cancel))

    async def _watch_adopted(self, job: Job, task: asyncio.Task[DocumentResult], cancel: asyncio.Event) -> None:
        async def outcome() -> DocumentResult:
            result = await task
            done = await self.store.done_page_indices(job.id)
            for page in result.pages:  # pages the request produced without a handoff to checkpoint them
                if page.page - 1 not in done:
                    await self.store.save_page(job.id, page)
            return await self._merge_stored(job)

        self._publish_status(job)
        await self._settle(job, outcome())

    async def _settle(self, job: Job, work: Awaitable[DocumentResult]) -> None:
        """Await the conversion and record how it ended."""
        try:
            result = await work
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
            if isinstance(exc, Cancelled):
                await self.store.finish(job.id, "cancelled", error_type=Cancelled.type,
                                        error_message="cancelled by the client")
            elif isinstance(exc, AppError):
                log.warning("job %s failed: %s", job.id, exc.message)
                await self.store.finish(job.id, "failed", error_type=exc.type, error_message=exc.message)
            else:
                log.exception("job %s failed with an internal error", job.id)
                await self.store.finish(job.id, "failed", error_type="internal_error",
                                        error_message="internal error while converting the document")
        final = await self.store.get(job.id)
        if final is not None:
            self._publish_status(final)

    async def _convert(self, job: Job, cancel: asyncio.Event) -> DocumentResult:
        from app.pipeline.document import convert_document

        input_path = files.job_dir(self.settings, job.id) / files.INPUT_NAME
        done = await self.store.done_page_indices(job.id)
        missing = [i for i in job.page_indices if i not in done]  # a resumed job converts only these
        if missing:
            await convert_document(
                self.pool, input_path, job.options, page_indices=missing,
                on_page=lambda page: self._checkpoint(job, page), cancel=cancel, vl=self.vl,
                page_count=job.page_count, admission=_Unmetered(),  # type: ignore[arg-type]
            )
        return await self._merge_stored(job)

    async def _checkpoint(self, job: Job, page: PageResult) -> None:
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
        await asyncio.to_thread(files.write_result, self.settings, job.id, result)
        s3 = None
        if self.settings.s3_configured:
            try:
                s3 = await asyncio.to_thread(files.s3_upload_result, self.settings, job.id)
            except Exception:  # like the sync route: the local result stands, S3 trouble is logged
                log.exception("job %s: result upload to S3 failed; the result is on local disk", job.id)
        # Status flips only now, after the files are complete: a succeeded job always has its result.
        if await self.store.finish(job.id, "succeeded", s3=s3):
            log.info("job %s succeeded: %s pages", job.id, job.pages_total)
        final = await self.store.get(job.id)
        if final is not None:
            self._publish_status(final)

    async def _s3_input(self, job_id: str, path: Path) -> None:
        if not self.settings.s3_configured:
            return
        try:
            await asyncio.to_thread(files.s3_upload_input, self.settings, job_id, path)
        except Exception:  # the local copy is what resumes the job; S3 holds a copy for operators
            log.exception("job %s: input upload to S3 failed; continuing with the local copy", job_id)

    def _publish_status(self, job: Job) -> None:
        self.events.publish(job.id, JobEvent.status_of(job))

