"""The job store on SQL: one implementation of `JobStore` (app/jobs/store.py) for the embedded SQLite database under
OUTPUT_DIR and for the PostgreSQL database several replicas share (JOBS_DATABASE_URL), on SQLAlchemy Core. Both
databases hold the same rows: a job, and a row per selected page from submission on (pending, leased to a replica,
or done with its result).

This module holds the jobs and their page checkpoints; sql_schema.py the tables, sql_leases.py how replicas share
pages, sql_database.py the connections (each call below is one transaction on the database's threads) and the
Alembic migrations (app/jobs/migrations) that `open()` runs. `durable=True` marks what a client is told (a job
accepted, finished, deleted, a webhook's state): on SQLite only those commits wait for the disk (sql_database.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app.jobs import sql_leases
from app.jobs.sql_database import Database, fetch_mappings, sqlite_url
from app.jobs.sql_schema import ACTIVE_STATUSES, FINISHED_STATUSES, CallbackState, checkpoints, each_dialect
from app.jobs.sql_schema import job_values, jobs, pages
from app.jobs.store import DuplicateIdempotencyKey, Job, JobStatus, PageCheckpoint, PageLease, job_from_row
from app.pipeline.result import PageResult

__all__ = ["SqlJobStore", "sqlite_url"]

# The statements every job runs, built once with bind parameters: SQLAlchemy then reuses their compiled form
# without building and hashing a new statement per call (what a page checkpoint costs matters at many pages/s).
_p = sa.bindparam
_GET = sa.select(jobs).where(jobs.c.id == _p("job_id"))
_MARK_RUNNING = (
    jobs.update()
    .where(jobs.c.id == _p("job_id"), jobs.c.status.in_(ACTIVE_STATUSES))
    .values(status="running", runs=jobs.c.runs + 1, started_at=sa.func.coalesce(jobs.c.started_at, _p("now")))
    .returning(*jobs.c)
)
_FINISH = (
    jobs.update()
    .where(jobs.c.id == _p("job_id"), jobs.c.status.in_(ACTIVE_STATUSES))
    .values(status=_p("status"), finished_at=_p("now"), error_type=_p("error_type"),
            error_message=_p("error_message"), s3=_p("s3"))
    .returning(jobs.c.id)
)
_LOCK_JOB = sa.select(jobs.c.id).where(jobs.c.id == _p("job_id")).with_for_update()
_COUNT_DONE = (
    jobs.update().where(jobs.c.id == _p("job_id"))
    .values(pages_done=sa.select(sa.func.count()).where(pages.c.job_id == _p("job_id"), pages.c.state == "done")
            .scalar_subquery())
    .returning(jobs.c.pages_done)
)
_DONE_PAGES = (
    sa.select(pages.c.page_index, pages.c.result, pages.c.computed_at, pages.c.computations)
    .where(pages.c.job_id == _p("job_id"), pages.c.state == "done").order_by(pages.c.page_index)
)
_DONE_INDICES = sa.select(pages.c.page_index).where(pages.c.job_id == _p("job_id"), pages.c.state == "done")
_INSERT_JOB = jobs.insert()
_INSERT_PAGES = pages.insert()
_DELETE_PAGES = pages.delete().where(pages.c.job_id == _p("job_id"))
_DELETE_JOB = jobs.delete().where(jobs.c.id == _p("job_id"))
_SET_CALLBACK = jobs.update().where(jobs.c.id == _p("job_id")).values(callback=_p("callback"))


def _checkpoint_upsert(insert: Any) -> sa.Executable:
    """A page's result stored: a new row, or the page's row (pending, leased or done before) updated, counted."""
    page = insert(pages).values(job_id=_p("job_id"), page_index=_p("page_index"), state="done", result=_p("result"),
                                computed_at=_p("now"), claims=0, computations=1)
    return page.on_conflict_do_update(
        index_elements=[pages.c.job_id, pages.c.page_index],
        set_={"state": "done", "result": page.excluded.result, "computed_at": page.excluded.computed_at,
              "computations": pages.c.computations + 1, "lease_holder": None, "lease_expires_at": None},
    )


_CHECKPOINT = each_dialect(_checkpoint_upsert)


def _get(conn: sa.Connection, job_id: str) -> Job | None:
    found = fetch_mappings(conn, _GET, {"job_id": job_id})  # every status poll: the leanest read
    return job_from_row(found[0]) if found else None


def _jobs(conn: sa.Connection, query: sa.Executable, params: dict[str, Any] | None = None) -> list[Job]:
    return [job_from_row(r) for r in conn.execute(query, params).mappings()]


def _job(conn: sa.Connection, query: sa.Executable, params: dict[str, Any] | None = None) -> Job | None:
    found = _jobs(conn, query, params)
    return found[0] if found else None


def _insert(conn: sa.Connection, job: Job, page_values: dict[str, Any]) -> None:
    conn.execute(_INSERT_JOB, job_values(job))
    if job.page_indices:
        conn.execute(_INSERT_PAGES, [
            {"job_id": job.id, "page_index": index, "claims": 0, "computations": 0, **page_values}
            for index in job.page_indices
        ])


def _finish(conn: sa.Connection, params: dict[str, Any]) -> bool:
    return conn.execute(_FINISH, params).first() is not None


def _delete(conn: sa.Connection, job_id: str) -> None:
    conn.execute(_DELETE_PAGES, {"job_id": job_id})
    conn.execute(_DELETE_JOB, {"job_id": job_id})


def _set_callback(conn: sa.Connection, job_id: str, state: str) -> None:
    conn.execute(_SET_CALLBACK, {"job_id": job_id, "callback": state})


def _save_page(conn: sa.Connection, params: dict[str, Any]) -> int:
    # The job row's lock orders checkpoints of one job, so each counts its own page and no other's (PostgreSQL;
    # SQLite's BEGIN IMMEDIATE already serialises every writer).
    if conn.execute(_LOCK_JOB, params).first() is None:
        return 0
    conn.execute(_CHECKPOINT[conn.dialect.name], params)
    return int(conn.execute(_COUNT_DONE, params).scalar_one())


def _scalars(conn: sa.Connection, query: sa.Executable, params: dict[str, Any] | None = None) -> set[Any]:
    return set(conn.execute(query, params).scalars())


def _rows(conn: sa.Connection, query: sa.Executable, params: dict[str, Any]) -> list[sa.Row[Any]]:
    return list(conn.execute(query, params))


class SqlJobStore:
    """`JobStore` on SQLite or PostgreSQL, chosen by the URL (`sqlite_url(path)`, or `postgresql://…`). `open()`
    migrates the schema, `close()` releases the connections.

    `holder` names this replica in page leases. A job inserted already `running` (a synchronous request handed off
    to a job) is being computed here: its pages are inserted leased to `holder` for `lease_s`, so no other replica
    takes them while this one renews, and any replica does once it stops."""

    def __init__(self, url: str, *, holder: str = "", lease_s: float = 30.0, max_connections: int = 10) -> None:
        self.url = url
        self.holder = holder
        self.lease_s = lease_s
        self._db = Database(url, max_connections=max_connections)
        self.path = self._db.path

    @classmethod
    def sqlite(cls, path: Path) -> SqlJobStore:
        return cls(sqlite_url(path))

    # --- lifecycle ---------------------------------------------------------------------------------------------
    async def open(self) -> None:
        await self._db.migrate()

    async def close(self) -> None:
        await self._db.close()

    # --- jobs --------------------------------------------------------------------------------------------------
    async def insert(self, job: Job) -> Job:
        """Store a new job and its pending pages. Raises `DuplicateIdempotencyKey` (carrying the existing job) when
        the owner already used the key, also when the other submission came through another replica."""
        running_here = job.status == "running" and self.holder
        lease = {"state": "leased", "lease_holder": self.holder, "lease_expires_at": time.time() + self.lease_s} \
            if running_here else {"state": "pending"}
        try:
            await self._db.transaction(_insert, job, lease, durable=True)
        except sa.exc.IntegrityError:
            existing = None
            if job.idempotency_key is not None:
                existing = await self.by_idempotency_key(job.owner, job.idempotency_key)
            if existing is None:
                raise
            raise DuplicateIdempotencyKey(existing) from None
        return job

    async def get(self, job_id: str) -> Job | None:
        return await self._db.statement(_get, job_id)

    async def by_idempotency_key(self, owner: str, key: str) -> Job | None:
        query = sa.select(jobs).where(jobs.c.owner == owner, jobs.c.idempotency_key == key)
        return await self._db.statement(_job, query)

    async def list_for_owner(self, owner: str, limit: int = 50, status: str | None = None) -> list[Job]:
        query = sa.select(jobs).where(jobs.c.owner == owner)
        if status:
            query = query.where(jobs.c.status == status)
        return await self._db.statement(_jobs, query.order_by(jobs.c.created_at.desc(), jobs.c.id).limit(limit))

    async def active(self) -> list[Job]:
        """Jobs not yet final (queued or running), oldest first."""
        query = sa.select(jobs).where(jobs.c.status.in_(ACTIVE_STATUSES)).order_by(jobs.c.created_at, jobs.c.id)
        return await self._db.statement(_jobs, query)

    async def expired(self, finished_before: float) -> list[Job]:
        query = sa.select(jobs).where(jobs.c.status.in_(FINISHED_STATUSES), jobs.c.finished_at < finished_before)
        return await self._db.statement(_jobs, query)

    async def all_ids(self) -> set[str]:
        return await self._db.statement(_scalars, sa.select(jobs.c.id))

    async def mark_running(self, job_id: str) -> Job | None:
        """queued/running -> running, counting the run; None when the job is gone or already final (a cancel or
        delete won the race)."""
        return await self._db.statement(_job, _MARK_RUNNING, {"job_id": job_id, "now": time.time()})

    async def finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        error_type: str | None = None,
        error_message: str | None = None,
        s3: dict[str, Any] | None = None,
    ) -> bool:
        """Move an active job to a final status; False when it was already final (first writer wins, across
        replicas). Its unfinished pages stop being claimable at once: claims only take pages of active jobs."""
        return await self._db.statement(_finish, {
            "job_id": job_id, "status": status, "now": time.time(), "error_type": error_type,
            "error_message": error_message, "s3": json.dumps(s3) if s3 else None,
        }, durable=True)

    async def delete(self, job_id: str) -> None:
        await self._db.transaction(_delete, job_id, durable=True)

    async def set_callback(self, job_id: str, state: dict[str, Any]) -> None:
        await self._db.statement(_set_callback, job_id, json.dumps(state), durable=True)

    async def pending_callbacks(self) -> list[Job]:
        return await self._db.statement(_jobs, (
            sa.select(jobs)
            .where(jobs.c.status.in_(FINISHED_STATUSES), jobs.c.callback_url.is_not(None),
                   sa.or_(jobs.c.callback.is_(None), CallbackState(jobs.c.callback) == "pending"))
            .order_by(jobs.c.finished_at, jobs.c.id)
        ))

    # --- page checkpoints --------------------------------------------------------------------------------------
    async def save_page(self, job_id: str, page: PageResult) -> int:
        """Checkpoint one finished page (0-based index = `page.page - 1`), ending its lease, and return the job's
        pages_done (0 when the job is gone). Saving a page twice keeps the newest result and counts the extra
        computation."""
        params = {"job_id": job_id, "page_index": page.page - 1, "result": page.model_dump_json(), "now": time.time()}
        return await self._db.transaction(_save_page, params)

    async def pages(self, job_id: str) -> list[PageCheckpoint]:
        """Stored pages of a job in page order."""
        rows = await self._db.statement(_rows, _DONE_PAGES, {"job_id": job_id})
        return await asyncio.to_thread(checkpoints, rows)  # a few hundred pages of JSON: off the database thread

    async def done_page_indices(self, job_id: str) -> set[int]:
        return await self._db.statement(_scalars, _DONE_INDICES, {"job_id": job_id})

    # --- leases: shared work across replicas (sql_leases.py) ---------------------------------------------------
    async def claim_pages(self, holder: str, limit: int, lease_s: float) -> list[PageLease]:
        """Lease up to `limit` pages of active jobs to `holder`: pending pages, or pages whose lease ran out (their
        holder died). Fair across jobs: the job with the fewest claims so far goes first, so a 500-page job does
        not starve a 1-page one whichever replica submitted them. Concurrent claimers never get the same page."""
        if limit <= 0:
            return []
        now = time.time()
        return await self._db.transaction(sql_leases.claim, holder, limit, now, now + lease_s)

    async def renew_leases(self, holder: str, lease_s: float) -> set[str]:
        """Extend every lease `holder` still has on pages of active jobs; returns the ids of jobs whose leased
        pages it should stop computing (cancelled, failed or deleted meanwhile, through any replica)."""
        return await self._db.transaction(sql_leases.renew, holder, time.time() + lease_s)

    async def release_pages(self, holder: str) -> int:
        """Hand back every unfinished page `holder` leased (a graceful stop), so others take them at once."""
        return await self._db.statement(sql_leases.release, holder)

    async def backlog(self) -> int:
        """Pages of active jobs not done yet, across every replica (the HPA's global queue length)."""
        return await self._db.statement(sql_leases.backlog)

    async def heartbeat(self, holder: str) -> None:
        """Record that `holder` is alive (it renews its leases at the same time)."""
        await self._db.statement(sql_leases.heartbeat, holder, time.time())

    async def live_replicas(self, within_s: float) -> int:
        """Replicas seen in the last `within_s` seconds (at least 1: the caller is one)."""
        return max(1, await self._db.statement(sql_leases.live_replicas, time.time() - within_s))

    async def forget_replica(self, holder: str) -> None:
        await self._db.statement(sql_leases.forget_replica, holder)

    # --- one holder at a time across replicas ------------------------------------------------------------------
    async def try_advisory_lock(self, key: int) -> object | None:
        """A lock held across replicas (e.g. the TTL sweep, one replica at a time): a handle to give back with
        `release_advisory_lock`, or None when another holder has it."""
        return await self._db.try_advisory_lock(key)

    async def release_advisory_lock(self, held: object, key: int) -> None:
        await self._db.release_advisory_lock(held, key)
