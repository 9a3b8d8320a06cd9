"""The job store on SQL: one implementation of `JobStore` (app/jobs/store.py) for the embedded SQLite database under
OUTPUT_DIR and for the PostgreSQL database several replicas share (JOBS_DATABASE_URL), on SQLAlchemy Core (async:
aiosqlite, psycopg 3). The schema is the Alembic migrations' (app/jobs/migrations), run by `open()`.

Both databases hold the same rows: a job, and a row per selected page from submission on (pending, leased to a
replica, or done with its result). Why leases in the job database rather than a queue library: a page is claimed,
renewed and checkpointed in the same transactional store that holds the job, so "this page is done" and "this
page's result is stored" are one commit (a crash repeats only pages in flight, never loses or double-counts one),
cancel is visible to a claim in the same query, and fairness across jobs is an ORDER BY.

Where the two dialects differ, SQLAlchemy writes each its own SQL (upserts, `FOR UPDATE … SKIP LOCKED`, which
SQLite leaves out); the rest is spelled out here:
- SQLite has one writer at a time, so the store keeps one connection, begins every transaction `IMMEDIATE` (it
  takes the write lock up front rather than failing on a read-then-write upgrade), and lets one caller at a time use
  it (`_serial`): statements of two callers must not interleave inside one transaction.
- PostgreSQL serves concurrent callers from a connection pool; advisory locks are PostgreSQL's, and on SQLite (one
  process owns the file) an in-process set of held keys stands for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.ext.compiler import compiles

from app.jobs.store import ACTIVE, FINISHED, DuplicateIdempotencyKey, Job, JobStatus, PageCheckpoint, PageLease
from app.jobs.store import job_from_row
from app.pipeline.result import PageResult
from app.storage.disk import is_disk_full

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# What the queries see of the schema (app/jobs/migrations creates it; types here only convert values).
metadata = sa.MetaData()
jobs = sa.Table(
    "jobs", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("owner", sa.Text, nullable=False),  # hash of the caller's API key; '' without authentication
    sa.Column("idempotency_key", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("options", sa.Text, nullable=False),  # ConvertOptions JSON
    sa.Column("filename", sa.Text),
    sa.Column("upload_sha256", sa.Text, nullable=False),
    sa.Column("page_count", sa.Integer, nullable=False),  # pages in the file
    sa.Column("page_indices", sa.Text, nullable=False),  # JSON list of the selected 0-based pages
    sa.Column("pages_total", sa.Integer, nullable=False),
    sa.Column("pages_done", sa.Integer, nullable=False),
    sa.Column("runs", sa.Integer, nullable=False),  # how many times a runner started on it (resumes count)
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("started_at", sa.Double),
    sa.Column("finished_at", sa.Double),
    sa.Column("error_type", sa.Text),
    sa.Column("error_message", sa.Text),
    sa.Column("s3", sa.Text),  # JSON {"bucket","keys"} once uploaded
    sa.Column("callback_url", sa.Text),  # completion webhook (jobs/callbacks.py)
    sa.Column("callback", sa.Text),  # JSON {"state","attempts","last_error"} of its delivery
)
pages = sa.Table(
    "pages", metadata,
    sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("page_index", sa.Integer, primary_key=True),  # 0-based page in the file
    sa.Column("state", sa.Text, nullable=False),  # pending | leased | done
    sa.Column("lease_holder", sa.Text),
    sa.Column("lease_expires_at", sa.Double),
    sa.Column("claims", sa.Integer, nullable=False),
    sa.Column("result", sa.Text),  # PageResult JSON once done
    sa.Column("computed_at", sa.Double),
    sa.Column("computations", sa.Integer, nullable=False),  # >1 would mean a page was converted again
)
replicas = sa.Table(
    "replicas", metadata,
    sa.Column("holder", sa.Text, primary_key=True),
    sa.Column("last_seen", sa.Double, nullable=False),
)

_ACTIVE = sorted(ACTIVE)
_FINISHED = sorted(FINISHED)


class _CallbackState(sa.sql.functions.FunctionElement[str]):
    """`callback`'s "state" member: JSON kept as TEXT, read by each database's own JSON function."""

    type = sa.Text()
    inherit_cache = True


@compiles(_CallbackState, "sqlite")
def _callback_state_sqlite(element: _CallbackState, compiler: Any, **kw: Any) -> str:
    return f"json_extract({compiler.process(element.clauses, **kw)}, '$.state')"


@compiles(_CallbackState, "postgresql")
def _callback_state_postgres(element: _CallbackState, compiler: Any, **kw: Any) -> str:
    return f"(CAST({compiler.process(element.clauses, **kw)} AS jsonb) ->> 'state')"


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def _async_url(url: str) -> sa.URL:
    """The URL with its async driver: JOBS_DATABASE_URL is written as `postgresql://…` (libpq's form)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # the driver's own BEGIN off: `_begin_immediate` issues it
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a checkpoint acknowledged to the pipeline survives power loss, not just a process kill.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")  # readers in other processes (tests, tools) may hold it
    cursor.close()


def _begin_immediate(connection: sa.Connection) -> None:
    if not connection.get_execution_options().get("single_statement"):  # one statement is atomic by itself
        connection.exec_driver_sql("BEGIN IMMEDIATE")


# Alembic's `op` and `context` are process-wide proxies: two migrations at once in one process would mix them up.
_MIGRATING = threading.Lock()


def upgrade_schema(url: sa.URL) -> None:
    """Bring the database at `url` to the newest schema (creating it when empty), in one transaction. Blocking:
    Alembic is synchronous, so it runs on a thread with the sync flavour of the driver, once per `open()`."""
    sync_url = url.set(drivername="sqlite") if url.get_backend_name() == "sqlite" else url
    engine = sa.create_engine(sync_url, poolclass=sa.pool.NullPool)
    if url.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _begin_immediate)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with _MIGRATING, engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()


def _job_values(job: Job) -> dict[str, Any]:
    return {
        "id": job.id, "owner": job.owner, "idempotency_key": job.idempotency_key, "status": job.status,
        "options": job.options.model_dump_json(), "filename": job.filename, "upload_sha256": job.upload_sha256,
        "page_count": job.page_count, "page_indices": json.dumps(job.page_indices), "pages_total": job.pages_total,
        "pages_done": job.pages_done, "runs": job.runs, "created_at": job.created_at, "started_at": job.started_at,
        "finished_at": job.finished_at, "callback_url": job.callback_url,
        "callback": json.dumps(job.callback) if job.callback else None,
    }


def _checkpoints(rows: list[sa.Row[Any]]) -> list[PageCheckpoint]:
    return [
        PageCheckpoint(r.page_index, PageResult.model_validate_json(r.result), r.computed_at, r.computations)
        for r in rows
    ]


def _claimable(table: sa.FromClause, now: float) -> sa.ColumnElement[bool]:
    """A page anyone may lease: never leased, or its holder stopped renewing."""
    return sa.or_(table.c.state == "pending", sa.and_(table.c.state == "leased", table.c.lease_expires_at < now))


# The statements every job runs, built once with bind parameters: SQLAlchemy then reuses their compiled form
# without building and hashing a new statement per call (what a page checkpoint costs matters at many pages/s).
_p = sa.bindparam
_GET = sa.select(jobs).where(jobs.c.id == _p("job_id"))
_MARK_RUNNING = (
    jobs.update()
    .where(jobs.c.id == _p("job_id"), jobs.c.status.in_(_ACTIVE))
    .values(status="running", runs=jobs.c.runs + 1, started_at=sa.func.coalesce(jobs.c.started_at, _p("now")))
    .returning(*jobs.c)
)
_FINISH = (
    jobs.update()
    .where(jobs.c.id == _p("job_id"), jobs.c.status.in_(_ACTIVE))
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


def _claim_query() -> sa.Select[Any]:
    """Up to :limit claimable pages, locked (PostgreSQL, skipping rows other claimers hold), in turn order: a job's
    k-th claimable page takes turn (pages already served + k), so ordering by turn interleaves jobs. The window
    function sits in a CTE because PostgreSQL locks no rows of a query that has one."""
    now = _p("now")
    p, served_pages = pages.alias("p"), pages.alias("s")
    served = sa.select(sa.func.count()).where(served_pages.c.job_id == p.c.job_id,
                                              served_pages.c.state != "pending").scalar_subquery()
    turn = sa.func.row_number().over(partition_by=p.c.job_id, order_by=p.c.page_index) + served
    claimable = (
        sa.select(p.c.job_id, p.c.page_index, jobs.c.created_at, turn.label("turn"))
        .select_from(p.join(jobs, jobs.c.id == p.c.job_id))
        .where(jobs.c.status.in_(_ACTIVE), _claimable(p, now))
        .cte("claimable")
    )
    return (
        sa.select(pages.c.job_id, pages.c.page_index)
        .join(claimable, sa.and_(claimable.c.job_id == pages.c.job_id, claimable.c.page_index == pages.c.page_index))
        .where(_claimable(pages, now))
        .order_by(claimable.c.turn, claimable.c.created_at, claimable.c.job_id, pages.c.page_index)
        .limit(_p("limit"))
        .with_for_update(of=pages, skip_locked=True)  # replicas claim side by side (SQLite: one writer anyway)
    )


_CLAIM = _claim_query()
_LEASE = (
    pages.update()
    .where(pages.c.job_id == _p("key_job"), pages.c.page_index == _p("key_index"))
    .values(state="leased", lease_holder=_p("holder"), lease_expires_at=_p("expires"), claims=pages.c.claims + 1)
)
_HELD = sa.and_(pages.c.lease_holder == _p("holder"), pages.c.state == "leased")
_ACTIVE_IDS = sa.select(jobs.c.id).where(jobs.c.status.in_(_ACTIVE))
_RENEW = pages.update().where(_HELD, pages.c.job_id.in_(_ACTIVE_IDS)).values(lease_expires_at=_p("expires"))
_STOPPED = sa.select(pages.c.job_id).distinct().where(_HELD, pages.c.job_id.not_in(_ACTIVE_IDS))
_BACKLOG = (
    sa.select(sa.func.count()).select_from(pages.join(jobs, jobs.c.id == pages.c.job_id))
    .where(jobs.c.status.in_(_ACTIVE), pages.c.state != "done")
)
_LIVE = sa.select(sa.func.count()).where(replicas.c.last_seen > _p("since"))


def _upserts(insert: Any) -> tuple[Any, Any]:
    """The two upserts, in the dialect's own syntax: a page checkpoint, and a replica's heartbeat."""
    page = insert(pages).values(job_id=_p("job_id"), page_index=_p("page_index"), state="done", result=_p("result"),
                                computed_at=_p("now"), claims=0, computations=1)
    page = page.on_conflict_do_update(
        index_elements=[pages.c.job_id, pages.c.page_index],
        set_={"state": "done", "result": page.excluded.result, "computed_at": page.excluded.computed_at,
              "computations": pages.c.computations + 1, "lease_holder": None, "lease_expires_at": None},
    )
    beat = insert(replicas).values(holder=_p("holder"), last_seen=_p("now"))
    beat = beat.on_conflict_do_update(index_elements=[replicas.c.holder], set_={"last_seen": beat.excluded.last_seen})
    return page, beat


class SqlJobStore:
    """`JobStore` on SQLite or PostgreSQL, chosen by the URL (`sqlite_url(path)`, or `postgresql://…`). `open()`
    connects and migrates, `close()` releases the connections.

    `holder` names this replica in page leases. A job inserted already `running` (a synchronous request handed off
    to a job) is being computed here: its pages are inserted leased to `holder` for `lease_s`, so no other replica
    takes them while this one renews, and any replica does once it stops."""

    def __init__(self, url: str, *, holder: str = "", lease_s: float = 30.0, max_connections: int = 10) -> None:
        self.url = url
        self.holder = holder
        self.lease_s = lease_s
        target = _async_url(url)
        self.dialect = target.get_backend_name()
        if self.dialect == "sqlite":
            self.path: Path | None = Path(target.database or "")
            self._engine = create_async_engine(target, pool_size=1, max_overflow=0)
            sa.event.listen(self._engine.sync_engine, "connect", _sqlite_pragmas)
            sa.event.listen(self._engine.sync_engine, "begin", _begin_immediate)
            self._serial: contextlib.AbstractAsyncContextManager[Any] = asyncio.Lock()
            self._checkpoint, self._heartbeat = _upserts(sqlite.insert)
            self._single_statements = self._engine.execution_options(single_statement=True)
        else:
            self.path = None
            # No rollback when a connection goes back to the pool: every use ends its transaction itself (`_begin`
            # commits or rolls back; the advisory lock's connection commits), so it would be a wasted hop.
            self._engine = create_async_engine(target, pool_size=max_connections, max_overflow=0,
                                               pool_reset_on_return=None)
            self._serial = contextlib.nullcontext()
            self._checkpoint, self._heartbeat = _upserts(postgresql.insert)
            self._single_statements = self._engine.execution_options(isolation_level="AUTOCOMMIT")
        self._held_locks: set[int] = set()  # SQLite's advisory locks

    @classmethod
    def sqlite(cls, path: Path) -> SqlJobStore:
        return cls(sqlite_url(path))

    # --- lifecycle ---------------------------------------------------------------------------------------------
    async def open(self) -> None:
        if self.path is not None:
            await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(upgrade_schema, self._engine.url)

    async def close(self) -> None:
        async with self._serial:
            await self._engine.dispose()

    @contextlib.asynccontextmanager
    async def _begin(self, *, single: bool = False) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back when it raises. `single`: the block runs one
        statement, atomic by itself, so it runs in autocommit (no BEGIN and COMMIT round trips). A full
        disk surfaces as the driver's own error, which app/storage/disk.py recognises (the 507)."""
        engine = self._single_statements if single else self._engine
        try:
            async with self._serial, engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            if is_disk_full(exc.orig):
                raise exc.orig from None
            raise

    async def _jobs(self, query: sa.Executable, params: dict[str, Any] | None = None) -> list[Job]:
        async with self._begin(single=True) as conn:
            rows = (await conn.execute(query, params)).mappings().all()
        return [job_from_row(r) for r in rows]

    async def _job(self, query: sa.Executable, params: dict[str, Any] | None = None) -> Job | None:
        found = await self._jobs(query, params)
        return found[0] if found else None

    # --- jobs --------------------------------------------------------------------------------------------------
    async def insert(self, job: Job) -> Job:
        """Store a new job and its pending pages. Raises `DuplicateIdempotencyKey` (carrying the existing job) when
        the owner already used the key, also when the other submission came through another replica."""
        running_here = job.status == "running" and self.holder
        lease = {"state": "leased", "lease_holder": self.holder, "lease_expires_at": time.time() + self.lease_s} \
            if running_here else {"state": "pending"}
        try:
            async with self._begin() as conn:
                await conn.execute(jobs.insert().values(_job_values(job)))
                if job.page_indices:
                    await conn.execute(pages.insert(), [
                        {"job_id": job.id, "page_index": index, "claims": 0, "computations": 0, **lease}
                        for index in job.page_indices
                    ])
        except sa.exc.IntegrityError:
            existing = None
            if job.idempotency_key is not None:
                existing = await self.by_idempotency_key(job.owner, job.idempotency_key)
            if existing is None:
                raise
            raise DuplicateIdempotencyKey(existing) from None
        return job

    async def get(self, job_id: str) -> Job | None:
        return await self._job(_GET, {"job_id": job_id})

    async def by_idempotency_key(self, owner: str, key: str) -> Job | None:
        return await self._job(sa.select(jobs).where(jobs.c.owner == owner, jobs.c.idempotency_key == key))

    async def list_for_owner(self, owner: str, limit: int = 50, status: str | None = None) -> list[Job]:
        query = sa.select(jobs).where(jobs.c.owner == owner)
        if status:
            query = query.where(jobs.c.status == status)
        return await self._jobs(query.order_by(jobs.c.created_at.desc(), jobs.c.id).limit(limit))

    async def active(self) -> list[Job]:
        """Jobs not yet final (queued or running), oldest first."""
        return await self._jobs(sa.select(jobs).where(jobs.c.status.in_(_ACTIVE)).order_by(jobs.c.created_at,
                                                                                           jobs.c.id))

    async def expired(self, finished_before: float) -> list[Job]:
        return await self._jobs(sa.select(jobs).where(jobs.c.status.in_(_FINISHED),
                                                      jobs.c.finished_at < finished_before))

    async def all_ids(self) -> set[str]:
        async with self._begin(single=True) as conn:
            return set((await conn.execute(sa.select(jobs.c.id))).scalars())

    async def mark_running(self, job_id: str) -> Job | None:
        """queued/running -> running, counting the run; None when the job is gone or already final (a cancel or
        delete won the race)."""
        return await self._job(_MARK_RUNNING, {"job_id": job_id, "now": time.time()})

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
        async with self._begin(single=True) as conn:
            row = (await conn.execute(_FINISH, {
                "job_id": job_id, "status": status, "now": time.time(), "error_type": error_type,
                "error_message": error_message, "s3": json.dumps(s3) if s3 else None,
            })).first()
        return row is not None

    async def delete(self, job_id: str) -> None:
        async with self._begin() as conn:
            await conn.execute(pages.delete().where(pages.c.job_id == job_id))
            await conn.execute(jobs.delete().where(jobs.c.id == job_id))

    async def set_callback(self, job_id: str, state: dict[str, Any]) -> None:
        async with self._begin(single=True) as conn:
            await conn.execute(jobs.update().where(jobs.c.id == job_id).values(callback=json.dumps(state)))

    async def pending_callbacks(self) -> list[Job]:
        return await self._jobs(
            sa.select(jobs)
            .where(jobs.c.status.in_(_FINISHED), jobs.c.callback_url.is_not(None),
                   sa.or_(jobs.c.callback.is_(None), _CallbackState(jobs.c.callback) == "pending"))
            .order_by(jobs.c.finished_at, jobs.c.id)
        )

    # --- page checkpoints --------------------------------------------------------------------------------------
    async def save_page(self, job_id: str, page: PageResult) -> int:
        """Checkpoint one finished page (0-based index = `page.page - 1`), ending its lease, and return the job's
        pages_done (0 when the job is gone). Saving a page twice keeps the newest result and counts the extra
        computation."""
        params = {"job_id": job_id, "page_index": page.page - 1, "result": page.model_dump_json(), "now": time.time()}
        async with self._begin() as conn:
            # The job row's lock orders checkpoints of one job, so each counts its own page and no other's
            # (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises every writer).
            if (await conn.execute(_LOCK_JOB, params)).first() is None:
                return 0
            await conn.execute(self._checkpoint, params)
            pages_done = (await conn.execute(_COUNT_DONE, params)).scalar_one()
        return int(pages_done)

    async def pages(self, job_id: str) -> list[PageCheckpoint]:
        """Stored pages of a job in page order."""
        async with self._begin(single=True) as conn:
            rows = list((await conn.execute(_DONE_PAGES, {"job_id": job_id})).all())
        return await asyncio.to_thread(_checkpoints, rows)  # a few hundred pages of JSON: off the event loop

    async def done_page_indices(self, job_id: str) -> set[int]:
        async with self._begin(single=True) as conn:
            return set((await conn.execute(_DONE_INDICES, {"job_id": job_id})).scalars())

    # --- leases: shared work across replicas -------------------------------------------------------------------
    async def claim_pages(self, holder: str, limit: int, lease_s: float) -> list[PageLease]:
        """Lease up to `limit` pages of active jobs to `holder`: pending pages, or pages whose lease ran out (their
        holder died). Fair across jobs: the job with the fewest claims so far goes first, so a 500-page job does
        not starve a 1-page one whichever replica submitted them. Concurrent claimers never get the same page."""
        if limit <= 0:
            return []
        now = time.time()
        expires = now + lease_s
        async with self._begin() as conn:
            keys = [(r.job_id, r.page_index) for r in await conn.execute(_CLAIM, {"now": now, "limit": limit})]
            if keys:
                await conn.execute(_LEASE, [{"key_job": job_id, "key_index": index, "holder": holder,
                                             "expires": expires} for job_id, index in keys])
        return [PageLease(job_id, index, holder, expires) for job_id, index in keys]

    async def renew_leases(self, holder: str, lease_s: float) -> set[str]:
        """Extend every lease `holder` still has on pages of active jobs; returns the ids of jobs whose leased
        pages it should stop computing (cancelled, failed or deleted meanwhile, through any replica)."""
        async with self._begin() as conn:
            await conn.execute(_RENEW, {"holder": holder, "expires": time.time() + lease_s})
            return set((await conn.execute(_STOPPED, {"holder": holder})).scalars())

    async def release_pages(self, holder: str) -> int:
        """Hand back every unfinished page `holder` leased (a graceful stop), so others take them at once."""
        async with self._begin(single=True) as conn:
            result = await conn.execute(
                pages.update().where(pages.c.lease_holder == holder, pages.c.state == "leased")
                .values(state="pending", lease_holder=None, lease_expires_at=None)
            )
            return int(result.rowcount)

    async def backlog(self) -> int:
        """Pages of active jobs not done yet, across every replica (the HPA's global queue length)."""
        async with self._begin(single=True) as conn:
            return int((await conn.execute(_BACKLOG)).scalar_one())

    async def heartbeat(self, holder: str) -> None:
        """Record that `holder` is alive (it renews its leases at the same time)."""
        async with self._begin(single=True) as conn:
            await conn.execute(self._heartbeat, {"holder": holder, "now": time.time()})

    async def live_replicas(self, within_s: float) -> int:
        """Replicas seen in the last `within_s` seconds (at least 1: the caller is one)."""
        async with self._begin(single=True) as conn:
            seen = (await conn.execute(_LIVE, {"since": time.time() - within_s})).scalar_one()
        return max(1, int(seen))

    async def forget_replica(self, holder: str) -> None:
        async with self._begin(single=True) as conn:
            await conn.execute(replicas.delete().where(replicas.c.holder == holder))

    # --- one holder at a time across replicas ------------------------------------------------------------------
    async def try_advisory_lock(self, key: int) -> object | None:
        """A lock held across replicas (e.g. the TTL sweep, one replica at a time): a handle to give back with
        `release_advisory_lock`, or None when another holder has it. PostgreSQL: a session-level advisory lock on
        a connection kept out of the pool meanwhile; SQLite: in-process, as one process owns the file."""
        if self.dialect == "sqlite":
            if key in self._held_locks:
                return None
            self._held_locks.add(key)
            return key
        conn = await self._engine.connect()
        if await conn.scalar(sa.select(sa.func.pg_try_advisory_lock(key))):
            await conn.commit()  # the session lock outlives the transaction
            return conn
        await conn.close()
        return None

    async def release_advisory_lock(self, held: object, key: int) -> None:
        if isinstance(held, AsyncConnection):
            try:
                await held.execute(sa.select(sa.func.pg_advisory_unlock(key)))
                await held.commit()
            finally:
                await held.close()
        else:
            self._held_locks.discard(key)
