"""The job database's connections: a synchronous SQLAlchemy engine (pysqlite for the embedded SQLite file, psycopg 3
for PostgreSQL) whose work runs on threads of its own, one whole transaction per call, so the event loop never
waits on the database.

Why not SQLAlchemy's asyncio engine (aiosqlite / async psycopg): it bridges every statement through a greenlet, and
aiosqlite adds a hop to its thread and back for each cursor, execute, fetch, close and commit, so a one-row read
took six loop wake-ups. Here a store call is one hop. Measured on the 2-core dev machine (shared, so medians), CPU
per `get`: SQLite 0.50 -> 0.15 ms, PostgreSQL 0.44 -> 0.34 ms; a one-page job's calls with 20 status polls: SQLite
20 -> 5.7 ms CPU. bench/job_store.py gives the whole-job effect.

- SQLite has one writer at a time: one connection on one thread, so calls run one after another and statements of
  two callers never interleave inside a transaction.
- PostgreSQL serves concurrent calls from a pool, a thread per connection.
- `statement` runs a call that issues one statement, atomic by itself, without BEGIN and COMMIT (autocommit).
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, TypeVarTuple

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from app.storage.disk import is_disk_full

P = ParamSpec("P")
T = TypeVar("T")
Ts = TypeVarTuple("Ts")

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# Alembic's `op` and `context` are process-wide proxies: two migrations at once in one process would mix them up.
_MIGRATING = threading.Lock()


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def database_url(url: str) -> sa.URL:
    """The URL with the driver the store uses: JOBS_DATABASE_URL is written as `postgresql://…` (libpq's form)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _autocommit(dbapi_connection: Any, _record: Any) -> None:
    """The driver's own transactions off, on both databases: `Database` issues BEGIN where a call needs one, and a
    one-statement call runs without (no BEGIN and COMMIT round trips). COMMIT and ROLLBACK still reach the
    database when a transaction is open (both drivers look at the connection's state, not at this flag)."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")  # readers in other processes (tests, tools) may hold it
        cursor.close()
    else:
        dbapi_connection.autocommit = True


def _upgrade(connection: sa.Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    with _MIGRATING:
        command.upgrade(config, "head")


# Statement -> its SQL and parameter order per dialect, for `fetch_mappings`.
_COMPILED: dict[tuple[sa.ClauseElement, str], tuple[str, tuple[str, ...] | None, sa.Compiled]] = {}


def fetch_mappings(connection: sa.Connection, statement: sa.ClauseElement, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of a read-only `statement` built once at import (its compiled form is kept: never pass a statement
    built per call), as dicts, run on the driver's cursor. For the calls made at every status poll: SQLAlchemy's
    execution context costs twice the query itself there (measured on PostgreSQL: 0.185 -> 0.096 ms CPU a `get`),
    and these statements need none of it (no type conversion, no events, no expanding parameters)."""
    key = (statement, connection.dialect.name)
    if key not in _COMPILED:
        compiled = statement.compile(dialect=connection.dialect)
        _COMPILED[key] = (str(compiled), compiled.positiontup, compiled)
    sql, positions, compiled = _COMPILED[key]
    values = compiled.construct_params(params)
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, [values[name] for name in positions] if positions is not None else values)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        cursor.close()


class Database:
    """One job database (`sqlite_url(path)` or `postgresql://…`). `transaction(work, *args)` runs
    `work(connection, *args)` in one transaction on the database's threads and returns what it returns: committed
    when `work` returns, rolled back when it raises. A full disk raises the driver's own error, which
    app/storage/disk.py recognises (the 507)."""

    def __init__(self, url: str, *, max_connections: int = 10) -> None:
        self.url = database_url(url)
        self.dialect = self.url.get_backend_name()
        # Each thread keeps its connection (`_connection`); no rollback when one goes back to the pool at the end:
        # every call ends its transaction itself.
        if self.dialect == "sqlite":
            self.path: Path | None = Path(self.url.database or "")
            self.engine = sa.create_engine(self.url, pool_size=1, max_overflow=0, pool_reset_on_return=None)
            threads = 1
        else:
            self.path = None
            # One connection more than threads: the advisory lock's, held between calls.
            self.engine = sa.create_engine(self.url, pool_size=max_connections, max_overflow=1,
                                           pool_reset_on_return=None)
            threads = max_connections
        sa.event.listen(self.engine, "connect", _autocommit)
        self._begin = "BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN"
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix="job-db")
        self._local = threading.local()
        self._connections: set[sa.Connection] = set()  # every thread's, closed by `close`
        self._held_locks: set[int] = set()  # SQLite's advisory locks

    async def migrate(self) -> None:
        """Bring the database to the newest schema (creating it when empty), in one transaction."""
        if self.path is not None:
            await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
        await self.transaction(_upgrade, durable=True)

    async def close(self) -> None:
        def close() -> None:
            for connection in list(self._connections):
                connection.close()
            self._connections.clear()
            self.engine.dispose()

        await self._on_thread(close)
        self._threads.shutdown(wait=False)

    async def transaction(self, work: Callable[[sa.Connection, *Ts], T], *args: *Ts, durable: bool = False) -> T:
        """`work(connection, *args)` in one transaction; `durable`: a client is told it happened (see `_within`)."""
        return await self._on_thread(self._within, False, durable, work, args)

    async def statement(self, work: Callable[[sa.Connection, *Ts], T], *args: *Ts, durable: bool = False) -> T:
        """`transaction` for a `work` that issues one statement: autocommit, no BEGIN and COMMIT."""
        return await self._on_thread(self._within, True, durable, work, args)

    def _within(self, single: bool, durable: bool, work: Callable[[sa.Connection, *Ts], T], args: tuple[*Ts]) -> T:
        """BEGIN unless the call is one statement (atomic by itself); SQLite: BEGIN IMMEDIATE (the write lock up
        front rather than failing on a read-then-write upgrade), after the commit's durability.

        In WAL mode every SQLite commit reaches the operating system before it returns, so it survives the process's
        death (kill -9) either way; `synchronous` says whether it also waits for the disk (fsync), to survive power
        loss. FULL for what a client is told (a job accepted, finished, deleted, a webhook's state): it costs a few
        ms a commit. NORMAL for work in progress (page checkpoints, leases, run counts): power loss can take back
        its last commits, never corrupt the file, and a lost checkpoint is a page computed again. A FULL commit
        syncs the NORMAL ones before it too, so what is durable is always a prefix of what was committed.
        (PostgreSQL: every commit waits for its WAL flush, as the server is configured.)"""
        connection = self._connection()
        try:
            with connection.begin():  # SQLAlchemy's bookkeeping; the driver begins nothing (`_autocommit`)
                if self.dialect == "sqlite":
                    level = "FULL" if durable else "NORMAL"
                    if connection.info.get("synchronous") != level:  # before BEGIN: not inside a transaction
                        connection.exec_driver_sql(f"PRAGMA synchronous={level}")
                        connection.info["synchronous"] = level
                if not single:
                    connection.exec_driver_sql(self._begin)
                return work(connection, *args)
        except sa.exc.OperationalError as exc:
            if is_disk_full(exc.orig):
                raise exc.orig from None
            raise

    def _connection(self) -> sa.Connection:
        """The calling thread's connection, kept between calls: a pool checkout and a new `Connection` per call
        cost more CPU than the query (measured: 0.28 -> 0.19 ms a `get` on PostgreSQL). One the driver found broken
        (a database restart) is replaced at the next call."""
        connection: sa.Connection | None = getattr(self._local, "connection", None)
        if connection is None or connection.invalidated or connection.closed:
            if connection is not None:
                self._connections.discard(connection)
                connection.close()
            connection = self._local.connection = self.engine.connect()
            self._connections.add(connection)
        return connection

    async def try_advisory_lock(self, key: int) -> object | None:
        """Lock `key` across every process using the database: a handle for `release_advisory_lock`, or None when
        another holder has it. PostgreSQL: a session-level advisory lock on a connection of its own, kept out of
        the pool meanwhile; SQLite: in-process, as one process owns the file."""
        if self.dialect == "sqlite":
            if key in self._held_locks:
                return None
            self._held_locks.add(key)
            return key

        def lock() -> sa.Connection | None:
            connection = self.engine.connect()
            if connection.scalar(sa.select(sa.func.pg_try_advisory_lock(key))):
                connection.commit()  # the session lock outlives the transaction
                return connection
            connection.close()
            return None

        return await self._on_thread(lock)

    async def release_advisory_lock(self, held: object, key: int) -> None:
        if not isinstance(held, sa.Connection):
            self._held_locks.discard(key)
            return

        def unlock() -> None:
            with held:
                held.scalar(sa.select(sa.func.pg_advisory_unlock(key)))
                held.commit()

        await self._on_thread(unlock)

    async def _on_thread(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads,
                                                                functools.partial(call, *args, **kwargs))

