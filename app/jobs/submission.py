"""Submitting a job: validate the upload, honour the caller's idempotency key, make the input durable (the job's
directory, and S3 when configured), store the job row and hand it to the runner."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import Conflict, NotReady
from app.jobs import callbacks, files
from app.jobs.runner import JobRunner
from app.jobs.store import DuplicateIdempotencyKey, Job, JobStore
from app.jobs.sweeper import delete_job_files
from app.pipeline.options import ConvertOptions
from app.settings import Settings

if TYPE_CHECKING:
    from app.storage.s3 import S3Uploader

log = logging.getLogger(__name__)


def new_job_id() -> str:
    # 144 random bits: unguessable, URL- and path-safe; the leading letter keeps it a valid output dir name.
    return "j" + secrets.token_urlsafe(18)


async def place_job_input(settings: Settings, s3: S3Uploader | None, job_id: str, upload_path: Path, *,
                          keep_source: bool) -> Path:
    """Make the upload the job's durable input (moved, or hard-linked with `keep_source`) and copy it to S3.
    An S3 failure is logged, not raised: the local copy is what resumes the job; S3 holds one for operators."""
    input_path = await asyncio.to_thread(
        files.place_input, upload_path, files.job_dir(settings, job_id), keep_source=keep_source
    )
    if s3 is not None:
        try:
            await asyncio.to_thread(files.s3_upload_input, s3, job_id, input_path)
        except Exception:
            if settings.jobs_database_url is not None:  # other replicas read the input from S3: no job without it
                log.exception("job %s: input upload to S3 failed", job_id)
                raise NotReady("S3 is unavailable; the job cannot be shared with the other replicas", retry_after_s=5)
            log.exception("job %s: input upload to S3 failed; continuing with the local copy", job_id)
    return input_path


async def check_same_request(job: Job, options: ConvertOptions, digest: str) -> None:
    """A reused idempotency key must name the same file and options as the job it first created."""
    if digest != job.upload_sha256 or options != job.options:
        raise Conflict("Idempotency-Key was already used with a different file or options")


class JobSubmission:
    """`submit` for POST /jobs; the runner gets every job it stores."""

    def __init__(self, settings: Settings, store: JobStore, runner: JobRunner, *,
                 s3: S3Uploader | None = None) -> None:
        self.settings = settings
        self.store = store
        self.runner = runner
        self.s3 = s3

    async def submit(
        self,
        upload_path: Path,
        options: ConvertOptions,
        *,
        owner: str | None,
        idempotency_key: str | None = None,
        filename: str | None = None,
        callback_url: str | None = None,
    ) -> Job:
        """Validate the upload, move it into the job's directory (and S3) and queue the job. The returned job is
        durable. A repeated idempotency key returns the first job (409 if it named a different file or options);
        the upload of a repeated or rejected submission is deleted."""
        from app.runtime.intake import inspect_pdf

        owner = owner or ""
        idempotency_key = (idempotency_key or "").strip() or None  # an empty header names no key
        try:
            if idempotency_key:
                existing = await self.store.by_idempotency_key(owner, idempotency_key)
                if existing is not None:
                    digest = await asyncio.to_thread(files.sha256_file, upload_path)
                    upload_path.unlink(missing_ok=True)  # the first submission's copy is the job's input
                    await check_same_request(existing, options, digest)
                    return existing
            info = await asyncio.to_thread(inspect_pdf, upload_path, self.settings, options.pages)
            digest = await asyncio.to_thread(files.sha256_file, upload_path)
        except BaseException:
            upload_path.unlink(missing_ok=True)
            raise
        job = Job(
            id=new_job_id(), owner=owner, status="queued", options=options, upload_sha256=digest,
            page_count=info.page_count, page_indices=list(info.page_indices), created_at=time.time(),
            idempotency_key=idempotency_key, filename=filename, callback_url=callback_url,
            callback=callbacks.initial_state() if callback_url else None,
        )
        try:
            await place_job_input(self.settings, self.s3, job.id, upload_path, keep_source=False)
            await self.store.insert(job)
        except DuplicateIdempotencyKey as dup:  # a concurrent submission with the same key won
            await delete_job_files(self.settings, self.s3, job.id)
            await check_same_request(dup.job, options, digest)
            return dup.job
        except BaseException:
            await asyncio.shield(delete_job_files(self.settings, self.s3, job.id))
            raise
        log.info("job %s queued: %s pages", job.id, job.pages_total)
        self.runner.spawn(job.id)
        return job
