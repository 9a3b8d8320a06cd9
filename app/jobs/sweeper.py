"""Retention: finished jobs, their files and their S3 objects are deleted JOB_TTL_HOURS after they finished.

Also removes job directories the database does not know (a crash between creating the directory and inserting
the row) once they are older than the TTL, so a crash never leaks disk for good.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from app.jobs import files
from app.jobs.store import JobStore
from app.settings import Settings
from app.storage.images import sweep_staging

if TYPE_CHECKING:
    from app.storage.s3 import S3Uploader

log = logging.getLogger(__name__)


async def sweep_once(settings: Settings, store: JobStore, *, s3: S3Uploader | None = None,
                     now: float | None = None) -> list[str]:
    """Delete every job that finished more than `job_ttl_hours` ago; returns the ids removed."""
    now = time.time() if now is None else now
    cutoff = now - settings.job_ttl_hours * 3600
    removed: list[str] = []
    for job in await store.expired(cutoff):
        try:
            await delete_job_files(settings, s3, job.id)
        except Exception:  # S3 down: keep the row so the next sweep retries
            log.exception("sweep: could not delete the files of job %s", job.id)
            continue
        await store.delete(job.id)
        # Again once the row is gone: a reader fetching the result from S3 meanwhile may have put a copy back.
        await asyncio.to_thread(files.remove_job_dir, settings, job.id)
        removed.append(job.id)
    removed += await _sweep_orphans(settings, store, cutoff)
    await asyncio.to_thread(sweep_staging, settings, cutoff)  # crops of requests a crash interrupted
    if removed:
        log.info("sweep: removed %s expired jobs", len(removed))
    return removed


async def delete_job_files(settings: Settings, s3: S3Uploader | None, job_id: str) -> None:
    """The job's local directory and, with S3, every object under its prefix."""
    if s3 is not None:
        await asyncio.to_thread(files.s3_delete_job, s3, settings, job_id)
    await asyncio.to_thread(files.remove_job_dir, settings, job_id)


async def _sweep_orphans(settings: Settings, store: JobStore, cutoff: float) -> list[str]:
    root = files.jobs_root(settings)
    if not root.is_dir():
        return []
    known = await store.all_ids()

    def scan() -> list[str]:
        return [p.name for p in root.iterdir() if p.is_dir() and p.name not in known and p.stat().st_mtime < cutoff]

    orphans = await asyncio.to_thread(scan)
    for job_id in orphans:
        await asyncio.to_thread(files.remove_job_dir, settings, job_id)
    return orphans


async def run_sweeper(settings: Settings, store: JobStore, s3: S3Uploader | None = None) -> None:
    """Sweep now, then every `job_sweep_interval_s`, until cancelled; a failed sweep is logged and retried."""
    while True:
        try:
            await _sweep_when_ours(settings, store, s3)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job retention sweep failed")
        await asyncio.sleep(settings.job_sweep_interval_s)


# With a shared database one replica at a time sweeps: the others would race it deleting the same jobs.
_SWEEP_LOCK = 0x73776565  # "swee"


async def _sweep_when_ours(settings: Settings, store: JobStore, s3: S3Uploader | None) -> None:
    held = await store.try_advisory_lock(_SWEEP_LOCK)
    if held is None:
        log.debug("another replica is sweeping")
        return
    try:
        await sweep_once(settings, store, s3=s3)
    finally:
        await store.release_advisory_lock(held, _SWEEP_LOCK)
