"""JobManager: durable asynchronous conversions on the shared page pool, as the routes see them.

A job is a row in the store plus a directory holding its input. The work is split by concern:
`submission.py` takes new jobs (idempotency, durable input), `handoff.py` turns a slow synchronous request into a
job, `runner.py` converts jobs page by page with checkpoints, `sweeper.py` expires finished ones. This class wires
them to one store and one event fan-out, starts and stops them, and answers the routes' queries with the owner
check. Restarting the service resumes every queued or running job at its missing pages.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from app.conversion.handoff import JobHandoff
from app.errors import Cancelled, NotFound, NotReady
from app.jobs import files
from app.jobs.callbacks import CallbackDispatcher
from app.jobs.events import JobEvents
from app.jobs.handoff import adopt
from app.jobs.runner import JobRunner
from app.jobs.backends import create_job_store
from app.jobs.store import ACTIVE, Job, JobStore
from app.jobs.submission import JobSubmission
from app.jobs.sweeper import delete_job_files, run_sweeper
from app.pipeline.options import ConvertOptions
from app.pipeline.result import DocumentResult
from app.settings import Settings

if TYPE_CHECKING:
    from app.pipeline.page import RegionRecognizer
    from app.runtime.pool import PagePool
    from app.storage.s3 import S3Uploader

log = logging.getLogger(__name__)


class JobManager:
    """Owns the job store, the runner, submission and the retention sweeper (see the module docstring)."""

    def __init__(self, settings: Settings, pool: PagePool, vl: RegionRecognizer | None = None, *,
                 s3: S3Uploader | None = None, store: JobStore | None = None) -> None:
        self.settings = settings
        self.pool = pool
        self.vl = vl
        self.s3 = s3
        self.store = store or create_job_store(settings)
        self.events = JobEvents()
        self.callbacks = CallbackDispatcher(settings, self.store)
        runner_class = JobRunner
        if settings.jobs_database_url is not None:  # pages of every replica's jobs come from shared leases
            from app.jobs.leased_runner import LeasedJobRunner

            runner_class = LeasedJobRunner
        self.runner = runner_class(settings, pool, self.store, self.events, vl=vl, s3=s3, callbacks=self.callbacks)
        self.submission = JobSubmission(settings, self.store, self.runner, s3=s3)
        self._sweeper: asyncio.Task[None] | None = None
        self._accepting = False

    # --- lifecycle ---------------------------------------------------------------------------------------------
    async def start(self, *, sweep: bool = True) -> None:
        """Open the store, pick up every queued/running job left by the previous process, start the sweeper."""
        await self.store.open()
        await self.callbacks.start()  # webhooks a previous process had not delivered yet
        self.runner.start()
        resumed = await self.store.active()
        for job in resumed:
            self.runner.spawn(job.id)
        if resumed:
            log.info("resuming %s unfinished jobs", len(resumed))
        if sweep:
            self._sweeper = asyncio.create_task(run_sweeper(self.settings, self.store, self.s3), name="job-sweeper")
        self._accepting = True

    async def stop(self, grace_s: float) -> None:
        """Stop taking jobs; the runner gets `grace_s` to checkpoint its in-flight pages (see JobRunner.stop)."""
        self._accepting = False
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self.runner.stop(grace_s)
        if self._sweeper is not None:
            await asyncio.gather(self._sweeper, return_exceptions=True)
        await self.callbacks.stop()
        await self.store.close()

    @property
    def accepting(self) -> bool:
        return self._accepting

    # --- intake ------------------------------------------------------------------------------------------------
    async def submit(self, upload_path: Path, options: ConvertOptions, *, owner: str | None,
                     idempotency_key: str | None = None, filename: str | None = None,
                     callback_url: str | None = None) -> Job:
        """See JobSubmission.submit; refused (503) before start and after stop, and the upload deleted."""
        try:
            self._check_accepting()
        except NotReady:
            upload_path.unlink(missing_ok=True)
            raise
        return await self.submission.submit(upload_path, options, owner=owner, idempotency_key=idempotency_key,
                                            filename=filename, callback_url=callback_url)

    async def adopt(self, task: asyncio.Task[DocumentResult], upload_path: Path, options: ConvertOptions,
                    owner: str | None, *, handoff: JobHandoff | None = None, filename: str | None = None) -> Job:
        """See app/jobs/handoff.py `adopt`."""
        self._check_accepting()
        return await adopt(self.settings, self.store, self.runner, task, upload_path, options, owner,
                           handoff=handoff, filename=filename, s3=self.s3)

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
                self.runner.signal_cancel(job.id)
                log.info("job %s cancelled", job.id)
                job = await self.get(job_id, owner)
                self.runner.publish_status(job)
                return job
            job = await self.get(job_id, owner)  # it finished meanwhile: fall through to delete
        # A cancelled runner may still be draining its in-flight pages.
        await self.runner.wait(job.id, self.settings.shutdown_grace_s)
        await delete_job_files(self.settings, self.s3, job.id)
        await self.store.delete(job.id)
        # Once more now the row is gone: a reader fetching the result from S3 may have put it back meanwhile (it
        # removes its copy itself if it finds the row gone, see result_paths).
        await asyncio.to_thread(files.remove_job_dir, self.settings, job.id)
        log.info("job %s deleted", job.id)
        return None

    async def result_paths(self, job: Job) -> tuple[Path, Path]:
        """A succeeded job's result.json and result.md on this replica's disk; a job another replica completed
        (shared database) is fetched from S3 the first time."""
        directory = files.job_dir(self.settings, job.id)
        if not await asyncio.to_thread((directory / files.RESULT_JSON).exists) and self.s3 is not None:
            try:
                directory = await asyncio.to_thread(files.s3_fetch_result, self.s3, self.settings, job.id)
                fetched = True
            except FileNotFoundError:  # deleted meanwhile (by a DELETE here or on another replica)
                fetched = False
            if await self.store.get(job.id) is None:  # deleted while we fetched: leave nothing behind
                await asyncio.to_thread(files.remove_job_dir, self.settings, job.id)
                fetched = False
            # (A row still there while its result is gone: a DELETE under way, which removes the directory again
            # once the row is gone, see cancel_or_delete.)
            if not fetched:
                raise NotFound(f"no job {job.id}")
        return directory / files.RESULT_JSON, directory / files.RESULT_MD

    @property
    def shared(self) -> bool:
        """Whether other replicas work on the same jobs (their progress is only seen in the store)."""
        return self.settings.jobs_database_url is not None

    async def wait(self, job_id: str, timeout_s: float) -> None:
        """Wait (bounded) for a job's runner to end; for tests and graceful paths."""
        await self.runner.wait(job_id, timeout_s)

    def _check_accepting(self) -> None:
        if not self._accepting:
            raise NotReady("the job service is not running")
