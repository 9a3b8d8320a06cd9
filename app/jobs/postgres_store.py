"""Durable job state shared by every replica: PostgreSQL, the same operations and semantics as the SQLite store,
plus page leases so that any replica's workers can take any job's pages.

Why leases in the job database rather than a queue library: a page is claimed, renewed and checkpointed in the
same transactional store that holds the job, so "this page is done" and "this page's result is stored" are one
commit (a crash can repeat only pages in flight, never lose or double-count one), cancel is visible to a claim in
the same query, and fairness across jobs is an ORDER BY. `SELECT … FOR UPDATE SKIP LOCKED` lets replicas claim
concurrently without blocking each other.

Page results stay in the database beside their lease (a checkpoint is a few KiB of JSON, and committing it with the
lease is what makes each page count exactly once); uploads and final results live in S3.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, errors
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from app.jobs.store import DuplicateIdempotencyKey, Job, JobStatus, PageCheckpoint, job_from_row
from app.pipeline.result import PageResult

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

# Each entry migrates the schema from version i to i+1; boot applies the missing ones under an advisory lock, so
# replicas starting together migrate once.
_MIGRATIONS = [
    """
    CREATE TABLE jobs (
        id              TEXT PRIMARY KEY,
        owner           TEXT NOT NULL DEFAULT '',
        idempotency_key TEXT,
        status          TEXT NOT NULL,
        options         TEXT NOT NULL,
        filename        TEXT,
        upload_sha256   TEXT NOT NULL,
        page_count      INTEGER NOT NULL,
        page_indices    TEXT NOT NULL,
        pages_total     INTEGER NOT NULL,
        pages_done      INTEGER NOT NULL DEFAULT 0,
        runs            INTEGER NOT NULL DEFAULT 0,
        created_at      DOUBLE PRECISION NOT NULL,
        started_at      DOUBLE PRECISION,
        finished_at     DOUBLE PRECISION,
        error_type      TEXT,
        error_message   TEXT,
        s3              TEXT,
        callback_url    TEXT,
        callback        TEXT
    );
    CREATE UNIQUE INDEX jobs_idempotency ON jobs (owner, idempotency_key) WHERE idempotency_key IS NOT NULL;
    CREATE INDEX jobs_owner_created ON jobs (owner, created_at);
    CREATE INDEX jobs_status ON jobs (status, finished_at);
    CREATE TABLE pages (
        job_id           TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        page_index       INTEGER NOT NULL,
        state            TEXT NOT NULL DEFAULT 'pending',  -- pending | leased | done
        lease_holder     TEXT,
        lease_expires_at DOUBLE PRECISION,
        claims           INTEGER NOT NULL DEFAULT 0,
        result           TEXT,
        computed_at      DOUBLE PRECISION,
        computations     INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (job_id, page_index)
    );
    CREATE INDEX pages_claimable ON pages (state, lease_expires_at);
    CREATE TABLE replicas (
        holder    TEXT PRIMARY KEY,
        last_seen DOUBLE PRECISION NOT NULL
    );
    """,
]

_ADVISORY_MIGRATE = 0x6A6F6273  # "jobs"


@dataclass(frozen=True)
class PageLease:
    """A page one holder may compute until `expires_at` (epoch seconds), renewed while it works."""

    job_id: str
    page_index: int
    holder: str
    expires_at: float




class PostgresJobStore:
    """The job store on PostgreSQL. `open()` connects and migrates, `close()` releases the connections.

    `holder` names this replica in page leases. A job inserted already `running` (a synchronous request handed off
    to a job) is being computed here: its pages are inserted leased to `holder` for `lease_s`, so no other replica
    takes them while this one renews, and any replica does once it stops."""

    def __init__(self, url: str, *, holder: str = "", lease_s: float = 30.0, min_connections: int = 1,
                 max_connections: int = 10) -> None:
        self.url = url
        self.holder = holder
        self.lease_s = lease_s
        self._pool = AsyncConnectionPool(
            url, min_size=min_connections, max_size=max_connections, open=False,
            kwargs={"autocommit": True, "row_factory": dict_row},
        )

    # --- lifecycle ---------------------------------------------------------------------------------------------
    async def open(self) -> None:
        await self._pool.open(wait=True, timeout=30)
        async with self._pool.connection() as conn:
            await self._migrate(conn)

    async def close(self) -> None:
        await self._pool.close()

    async def _migrate(self, conn: AsyncConnection) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_MIGRATE,))
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = await (await conn.execute("SELECT version FROM schema_version")).fetchone()
            current = row["version"] if row else 0
            if current > SCHEMA_VERSION:
                raise RuntimeError(f"job database schema {current} is newer than this build's {SCHEMA_VERSION}")
            for version in range(current, SCHEMA_VERSION):
                log.info("job database: migrating schema %d -> %d", version, version + 1)
                await conn.execute(_MIGRATIONS[version])
            if row is None:
                await conn.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION,))
            else:
                await conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))

    async def _fetchall(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        async with self._pool.connection() as conn:
            return await (await conn.execute(sql, args)).fetchall()

    async def _fetchone(self, sql: str, args: tuple[Any, ...] = ()) -> dict[str, Any] | None:
        async with self._pool.connection() as conn:
            return await (await conn.execute(sql, args)).fetchone()

    # --- jobs --------------------------------------------------------------------------------------------------
    async def insert(self, job: Job) -> Job:
        """Store a new job and its pending pages. Raises `DuplicateIdempotencyKey` (carrying the existing job) when
        the owner already used the key, also when the other submission came through another replica."""
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute(
                    "INSERT INTO jobs (id, owner, idempotency_key, status, options, filename, upload_sha256,"
                    " page_count, page_indices, pages_total, pages_done, runs, created_at, started_at, finished_at,"
                    " callback_url, callback)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        job.id, job.owner, job.idempotency_key, job.status, job.options.model_dump_json(),
                        job.filename, job.upload_sha256, job.page_count, json.dumps(job.page_indices),
                        job.pages_total, job.pages_done, job.runs, job.created_at, job.started_at, job.finished_at,
                        job.callback_url, json.dumps(job.callback) if job.callback else None,
                    ),
                )
                running_here = job.status == "running" and self.holder
                state, holder, expires = ("leased", self.holder, time.time() + self.lease_s) if running_here else (
                    "pending", None, None)
                async with conn.cursor() as cur:
                    await cur.executemany(
                        "INSERT INTO pages (job_id, page_index, state, lease_holder, lease_expires_at)"
                        " VALUES (%s, %s, %s, %s, %s)",
                        [(job.id, index, state, holder, expires) for index in job.page_indices],
                    )
        except errors.UniqueViolation:
            existing = await self.by_idempotency_key(job.owner, job.idempotency_key or "")
            if existing is None or job.idempotency_key is None:
                raise
            raise DuplicateIdempotencyKey(existing) from None
        return job

    async def get(self, job_id: str) -> Job | None:
        row = await self._fetchone("SELECT * FROM jobs WHERE id = %s", (job_id,))
        return job_from_row(row) if row else None

    async def by_idempotency_key(self, owner: str, key: str) -> Job | None:
        row = await self._fetchone("SELECT * FROM jobs WHERE owner = %s AND idempotency_key = %s", (owner, key))
        return job_from_row(row) if row else None

    async def list_for_owner(self, owner: str, limit: int = 50, status: str | None = None) -> list[Job]:
        sql, args = "SELECT * FROM jobs WHERE owner = %s", [owner]
        if status:
            sql += " AND status = %s"
            args.append(status)
        rows = await self._fetchall(sql + " ORDER BY created_at DESC, id LIMIT %s", (*args, limit))
        return [job_from_row(r) for r in rows]

    async def active(self) -> list[Job]:
        """Jobs not yet final (queued or running), oldest first."""
        rows = await self._fetchall("SELECT * FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_at, id")
        return [job_from_row(r) for r in rows]

    async def expired(self, finished_before: float) -> list[Job]:
        rows = await self._fetchall(
            "SELECT * FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at < %s",
            (finished_before,),
        )
        return [job_from_row(r) for r in rows]

    async def all_ids(self) -> set[str]:
        return {r["id"] for r in await self._fetchall("SELECT id FROM jobs")}

    async def mark_running(self, job_id: str) -> Job | None:
        """queued/running -> running, counting the run; None when the job is gone or already final."""
        row = await self._fetchone(
            "UPDATE jobs SET status = 'running', runs = runs + 1, started_at = COALESCE(started_at, %s)"
            " WHERE id = %s AND status IN ('queued', 'running') RETURNING *",
            (time.time(), job_id),
        )
        return job_from_row(row) if row else None

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
        row = await self._fetchone(
            "UPDATE jobs SET status = %s, finished_at = %s, error_type = %s, error_message = %s, s3 = %s"
            " WHERE id = %s AND status IN ('queued', 'running') RETURNING id",
            (status, time.time(), error_type, error_message, json.dumps(s3) if s3 else None, job_id),
        )
        return row is not None

    async def delete(self, job_id: str) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("DELETE FROM pages WHERE job_id = %s", (job_id,))
            await conn.execute("DELETE FROM jobs WHERE id = %s", (job_id,))

    async def set_callback(self, job_id: str, state: dict[str, Any]) -> None:
        await self._fetchone("UPDATE jobs SET callback = %s WHERE id = %s RETURNING id", (json.dumps(state), job_id))

    async def pending_callbacks(self) -> list[Job]:
        rows = await self._fetchall(
            "SELECT * FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled') AND callback_url IS NOT NULL"
            " AND (callback IS NULL OR callback::jsonb ->> 'state' = 'pending') ORDER BY finished_at, id"
        )
        return [job_from_row(r) for r in rows]

    # --- page checkpoints --------------------------------------------------------------------------------------
    async def save_page(self, job_id: str, page: PageResult) -> int:
        """Checkpoint one finished page (0-based index = `page.page - 1`), ending its lease, and return the job's
        pages_done. Saving a page twice keeps the newest result and counts the extra computation."""
        async with self._pool.connection() as conn, conn.transaction():
            # The job row's lock orders checkpoints of one job, so each counts its own page and no other's.
            await conn.execute("SELECT id FROM jobs WHERE id = %s FOR UPDATE", (job_id,))
            await conn.execute(
                "UPDATE pages SET state = 'done', result = %s, computed_at = %s, computations = computations + 1,"
                " lease_holder = NULL, lease_expires_at = NULL WHERE job_id = %s AND page_index = %s",
                (page.model_dump_json(), time.time(), job_id, page.page - 1),
            )
            row = await (await conn.execute(
                "UPDATE jobs SET pages_done = (SELECT COUNT(*) FROM pages WHERE job_id = %s AND state = 'done')"
                " WHERE id = %s RETURNING pages_done",
                (job_id, job_id),
            )).fetchone()
        return int(row["pages_done"]) if row else 0

    async def pages(self, job_id: str) -> list[PageCheckpoint]:
        rows = await self._fetchall(
            "SELECT page_index, result, computed_at, computations FROM pages"
            " WHERE job_id = %s AND state = 'done' ORDER BY page_index",
            (job_id,),
        )
        return [
            PageCheckpoint(r["page_index"], PageResult.model_validate_json(r["result"]), r["computed_at"],
                           r["computations"])
            for r in rows
        ]

    async def done_page_indices(self, job_id: str) -> set[int]:
        rows = await self._fetchall("SELECT page_index FROM pages WHERE job_id = %s AND state = 'done'", (job_id,))
        return {r["page_index"] for r in rows}

    # --- leases: shared work across replicas -------------------------------------------------------------------
    async def claim_pages(self, holder: str, limit: int, lease_s: float) -> list[PageLease]:
        """Lease up to `limit` pages of active jobs to `holder`: pending pages, or pages whose lease ran out (their
        holder died). Fair across jobs: the job with the fewest claims so far goes first, so a 500-page job does
        not starve a 1-page one whichever replica submitted them. Concurrent claimers never get the same page."""
        if limit <= 0:
            return []
        now = time.time()
        expires = now + lease_s
        async with self._pool.connection() as conn, conn.transaction():
            # A job's k-th claimable page takes turn (pages already served + k): ordering by turn interleaves
            # the jobs page by page within one claim and across claims. Nothing is written to the job row, so
            # claimers of different pages never wait on each other. The window runs in its own query level,
            # since a row lock cannot share one with it.
            rows = await (await conn.execute(
                "WITH claimable AS ("
                "  SELECT p.job_id, p.page_index, j.created_at,"
                "         ROW_NUMBER() OVER (PARTITION BY p.job_id ORDER BY p.page_index)"
                "         + (SELECT COUNT(*) FROM pages s WHERE s.job_id = p.job_id AND s.state <> 'pending') AS turn"
                "  FROM pages p JOIN jobs j ON j.id = p.job_id"
                "  WHERE j.status IN ('queued', 'running')"
                "    AND (p.state = 'pending' OR (p.state = 'leased' AND p.lease_expires_at < %(now)s)))"
                " SELECT p.job_id, p.page_index FROM pages p"
                " JOIN claimable c ON c.job_id = p.job_id AND c.page_index = p.page_index"
                " WHERE p.state = 'pending' OR (p.state = 'leased' AND p.lease_expires_at < %(now)s)"
                " ORDER BY c.turn, c.created_at, c.job_id, p.page_index"
                " LIMIT %(limit)s FOR UPDATE OF p SKIP LOCKED",
                {"now": now, "limit": limit},
            )).fetchall()
            if not rows:
                return []
            keys = [(r["job_id"], r["page_index"]) for r in rows]
            async with conn.cursor() as cur:
                await cur.executemany(
                    "UPDATE pages SET state = 'leased', lease_holder = %s, lease_expires_at = %s, claims = claims + 1"
                    " WHERE job_id = %s AND page_index = %s",
                    [(holder, expires, job_id, index) for job_id, index in keys],
                )
        return [PageLease(job_id, index, holder, expires) for job_id, index in keys]

    async def renew_leases(self, holder: str, lease_s: float) -> set[str]:
        """Extend every lease `holder` still has on pages of active jobs; returns the ids of jobs whose leased
        pages it should stop computing (cancelled, failed or deleted meanwhile, through any replica)."""
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(
                "UPDATE pages p SET lease_expires_at = %s FROM jobs j"
                " WHERE p.job_id = j.id AND p.lease_holder = %s AND p.state = 'leased'"
                "   AND j.status IN ('queued', 'running')",
                (time.time() + lease_s, holder),
            )
            rows = await (await conn.execute(
                "SELECT DISTINCT p.job_id FROM pages p LEFT JOIN jobs j ON j.id = p.job_id"
                " WHERE p.lease_holder = %s AND p.state = 'leased'"
                "   AND (j.id IS NULL OR j.status NOT IN ('queued', 'running'))",
                (holder,),
            )).fetchall()
        return {r["job_id"] for r in rows}

    async def release_pages(self, holder: str) -> int:
        """Hand back every unfinished page `holder` leased (a graceful stop), so others take them at once."""
        rows = await self._fetchall(
            "UPDATE pages SET state = 'pending', lease_holder = NULL, lease_expires_at = NULL"
            " WHERE lease_holder = %s AND state = 'leased' RETURNING page_index",
            (holder,),
        )
        return len(rows)

    async def backlog(self) -> int:
        """Pages of active jobs not done yet, across every replica (the HPA's global queue length)."""
        row = await self._fetchone(
            "SELECT COUNT(*) AS n FROM pages p JOIN jobs j ON j.id = p.job_id"
            " WHERE j.status IN ('queued', 'running') AND p.state <> 'done'"
        )
        return int(row["n"]) if row else 0

    async def heartbeat(self, holder: str) -> None:
        """Record that `holder` is alive (it renews its leases at the same time)."""
        await self._fetchone(
            "INSERT INTO replicas (holder, last_seen) VALUES (%s, %s)"
            " ON CONFLICT (holder) DO UPDATE SET last_seen = excluded.last_seen RETURNING holder",
            (holder, time.time()),
        )

    async def live_replicas(self, within_s: float) -> int:
        """Replicas seen in the last `within_s` seconds (at least 1: the caller is one)."""
        row = await self._fetchone("SELECT COUNT(*) AS n FROM replicas WHERE last_seen > %s", (time.time() - within_s,))
        return max(1, int(row["n"]) if row else 0)

    async def forget_replica(self, holder: str) -> None:
        await self._fetchone("DELETE FROM replicas WHERE holder = %s RETURNING holder", (holder,))

    async def try_advisory_lock(self, key: int) -> AsyncConnection | None:
        """A session-level advisory lock (e.g. the TTL sweep, one replica at a time): the connection that holds
        it, to be given back with `release_advisory_lock`, or None when another replica holds it."""
        conn = await self._pool.getconn()
        row = await (await conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (key,))).fetchone()
        if row and row["ok"]:
            return conn
        await self._pool.putconn(conn)
        return None

    async def release_advisory_lock(self, conn: AsyncConnection, key: int) -> None:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        await self._pool.putconn(conn)
