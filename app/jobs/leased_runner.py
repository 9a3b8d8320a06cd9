"""The job runner of a replica that shares its jobs (JOBS_DATABASE_URL): pages come from leases in PostgreSQL, not
from one task per job, so every replica's idle workers take any replica's pages.

Two loops run beside the conversions. The claim loop leases as many pages as this replica's pool has room for
(`claim_pages` takes turns across jobs, whoever submitted them), fetches a job's input from S3 when this replica
does not hold it yet, and sends each job's claimed pages through `convert_pages` (app/conversion/service.py); a
checkpoint ends a page's lease in the same commit. The renew loop extends this replica's leases every third of
`JOB_LEASE_S`, records its heartbeat (the HPA's backlog per replica divides by the live ones), and stops the pages
of jobs cancelled or failed through another replica. A replica that dies stops renewing: once its leases run out,
other replicas take its pages, so only the pages in flight are computed twice.

Whichever replica checkpoints a job's last page merges the stored pages and completes the job (result files, S3,
`succeeded`); `finish` lets only the first writer win. A job whose last pages landed but whose completer died is
completed by the next claim loop that notices it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from pathlib import Path

from app.jobs import files
from app.jobs.runner import JobRunner
from app.jobs.store import Job
from app.pipeline.result import DocumentResult

log = logging.getLogger(__name__)

# Pages leased per worker at once: as many jobs as the single-replica runner lets run per worker.
_PAGES_PER_WORKER = 4
_IDLE_POLL_S = 0.5  # how often an idle replica looks for new pages (a local submission wakes it at once)


class LeasedJobRunner(JobRunner):
    """`JobRunner` whose work comes from page leases in the shared database (see the module docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.holder: str = self.store.holder
        self.lease_s = self.settings.job_lease_s
        self.backlog_per_replica: float = 0.0  # /metrics: the HPA's view of the shared backlog
        self._wake = asyncio.Event()
        self._in_flight = 0
        self._groups: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._inputs: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._orphans_checked_at = 0.0

    # --- control -----------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._loops = [asyncio.create_task(self._claim_loop(), name="job-claims"),
                       asyncio.create_task(self._renew_loop(), name="job-leases")]

    def spawn(self, job_id: str) -> None:
        """A job was stored (here or, on restart, found active): look for its pages now rather than at the next
        poll. Its pages may as well be taken by another replica."""
        self._wake.set()

    async def wait(self, job_id: str, timeout_s: float) -> None:
        tasks = [t for t in self._groups if t.get_name() == f"job-{job_id}"]
        adopted = self._tasks.get(job_id)
        if adopted is not None:
            tasks.append(adopted)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)

    async def stop(self, grace_s: float) -> None:
        """Claim no more; in-flight pages get `grace_s` to be checkpointed; then the leases still held go back at
        once (others need not wait for them to run out)."""
        self._stopping = True
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        for event in self._cancels.values():
            event.set()
        tasks = [t for t in (*self._groups, *self._tasks.values()) if not t.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        try:
            released = await self.store.release_pages(self.holder)
            await self.store.forget_replica(self.holder)
            if released:
                log.info("handed back %d leased pages", released)
        except Exception:  # the database may be gone too; the leases then simply run out
            log.warning("could not hand back the leased pages; they return when their lease runs out")

    # --- loops -------------------------------------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        capacity = _PAGES_PER_WORKER * max(1, self.pool.size)
        while True:
            try:
                leases = []
                if self._in_flight < capacity:
                    leases = await self.store.claim_pages(self.holder, capacity - self._in_flight, self.lease_s)
                by_job: dict[str, list[int]] = defaultdict(list)
                for lease in leases:
                    by_job[lease.job_id].append(lease.page_index)
                for job_id, indices in by_job.items():
                    self._in_flight += len(indices)
                    task = asyncio.create_task(self._run_pages(job_id, sorted(indices)), name=f"job-{job_id}")
                    self._groups.add(task)
                    task.add_done_callback(self._groups.discard)
                if not leases:
                    if time.monotonic() - self._orphans_checked_at > self.lease_s / 3:  # rare: not at every wake
                        self._orphans_checked_at = time.monotonic()
                        await self._complete_orphans()
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), timeout=_IDLE_POLL_S)
                    except TimeoutError:
                        pass
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup must not end the loop: log, wait, try again
                log.exception("claiming pages failed; retrying")
                await asyncio.sleep(1.0)

    async def _renew_loop(self) -> None:
        while True:
            try:
                await self.store.heartbeat(self.holder)
                for job_id in await self.store.renew_leases(self.holder, self.lease_s):
                    self.signal_cancel(job_id)  # cancelled, failed or deleted through another replica
                backlog = await self.store.backlog()
                replicas = await self.store.live_replicas(self.lease_s)
                self.backlog_per_replica = backlog / replicas
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("renewing page leases failed; retrying")
            await asyncio.sleep(self.lease_s / 3)

    # --- one job's claimed pages -------------------------------------------------------------------------------
    async def _run_pages(self, job_id: str, indices: list[int]) -> None:
        try:
            job = await self.store.mark_running(job_id)
            if job is None:  # finished meanwhile (its pages are no longer claimable)
                return
            self.publish_status(job)
            cancel = self._cancels.setdefault(job_id, asyncio.Event())
            await self._settle(job, self._convert_claimed(job, indices, cancel))
        finally:
            self._in_flight -= len(indices)
            self._wake.set()

    async def _convert_claimed(self, job: Job, indices: list[int], cancel: asyncio.Event) -> DocumentResult | None:
        await self._convert_pages(job, await self._local_input(job), indices, cancel)
        return await self._result_if_complete(job)

    async def _result_if_complete(self, job: Job) -> DocumentResult | None:
        """The merged document once every page of the job is checkpointed (by any replica), else None."""
        current = await self.store.get(job.id)
        if current is None or current.finished or current.pages_done < current.pages_total:
            return None
        return await self._merge_stored(current)

    async def _complete_orphans(self) -> None:
        """Complete jobs whose every page is stored but which are still active: the replica that stored the last
        page died before it could finish the job."""
        for job in await self.store.active():
            if job.pages_done >= job.pages_total and job.id not in self._tasks:
                await self._settle(job, self._result_if_complete(job))

    async def _local_input(self, job: Job) -> Path:
        """The job's input on this replica's disk: fetched from S3 (where submission put it) the first time."""
        path = files.job_dir(self.settings, job.id) / files.INPUT_NAME
        async with self._inputs[job.id]:
            if not await asyncio.to_thread(path.exists):
                if self.s3 is None:
                    raise RuntimeError(f"job {job.id}: input not on this replica and no S3 to fetch it from")
                await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
                partial = path.with_suffix(".part")
                await asyncio.to_thread(self.s3.download_file, self.s3.key_for(job.id, files.INPUT_NAME), partial)
                await asyncio.to_thread(partial.replace, path)
        return path
