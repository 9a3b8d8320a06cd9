"""Schema migrations: a job database the previous release created (its own schema per dialect, no alembic_version)
is upgraded in place when the new store opens it, on SQLite and on the real PostgreSQL the tests start, and keeps
every job, checkpoint, count and pending webhook; jobs in flight then resume and lease as new ones do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.jobs.migrations.versions import r0001_release_before_alembic as release_n1
from app.jobs.sql_database import database_url
from app.jobs.sql_store import SqlJobStore, sqlite_url
from tests.unit.test_job_store import _page


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _job_row(job_id: str, status: str, **extra: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": job_id, "owner": "o", "status": status, "options": '{"mode": "text"}', "upload_sha256": "ab" * 32,
        "page_count": 3, "page_indices": "[0, 1, 2]", "pages_total": 3, "created_at": 1.0, "finished_at": None,
        "callback_url": None, "callback": None,
    }
    return {**row, **extra}


def _create_release_n1(url: str, dialect: str) -> None:
    """The database as release N-1 left it: a running job with page 0 of 3 checkpointed (computed twice), a
    finished job whose webhook is still pending and one whose webhook was delivered."""
    engine = sa.create_engine(database_url(url))
    insert_job = sa.text(
        "INSERT INTO jobs (id, owner, status, options, upload_sha256, page_count, page_indices, pages_total,"
        " created_at, finished_at, callback_url, callback) VALUES (:id, :owner, :status, :options, :upload_sha256,"
        " :page_count, :page_indices, :pages_total, :created_at, :finished_at, :callback_url, :callback)")
    page0 = _page(1).model_dump_json()
    with engine.begin() as conn:
        for statement in release_n1.SQLITE if dialect == "sqlite" else release_n1.POSTGRES:
            conn.exec_driver_sql(statement)
        conn.execute(insert_job, [
            _job_row("jrunning", "running"),
            _job_row("jwebhook", "succeeded", finished_at=2.0, callback_url="http://h/x",
                     callback=json.dumps({"state": "pending", "attempts": 1, "last_error": "503"})),
            _job_row("jdelivered", "succeeded", finished_at=2.0, callback_url="http://h/y",
                     callback=json.dumps({"state": "delivered", "attempts": 1, "last_error": None})),
        ])
        if dialect == "sqlite":  # a page row once checkpointed; the trigger counts it
            conn.execute(sa.text("INSERT INTO pages (job_id, page_index, result, computed_at, computations)"
                                 " VALUES ('jrunning', 0, :r, 5.0, 2)"), {"r": page0})
        else:  # every selected page from submission on, with its lease state; the store counted pages_done
            conn.exec_driver_sql("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            conn.exec_driver_sql("INSERT INTO schema_version VALUES (1)")
            conn.execute(sa.text("INSERT INTO pages (job_id, page_index, state, result, computed_at, computations)"
                                 " VALUES ('jrunning', 0, 'done', :r, 5.0, 2)"), {"r": page0})
            conn.exec_driver_sql("INSERT INTO pages (job_id, page_index) VALUES ('jrunning', 1), ('jrunning', 2)")
            conn.exec_driver_sql("UPDATE jobs SET pages_done = 1 WHERE id = 'jrunning'")
    engine.dispose()


def _tables_and_version(url: str) -> tuple[set[str], list[str]]:
    engine = sa.create_engine(database_url(url))
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        versions = [r[0] for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")]
    engine.dispose()
    return tables, versions


@pytest.fixture(params=("sqlite", "postgres"))
async def release_n1_url(request, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        url = sqlite_url(tmp_path / "jobs.db")
    else:
        from tests.postgres_server import fresh_database

        url = await fresh_database(request.getfixturevalue("postgres_url"))
    dialect = "sqlite" if request.param == "sqlite" else "postgresql"
    _create_release_n1(url, dialect)
    return url, dialect


@pytest.mark.anyio
async def test_a_release_n1_database_is_upgraded_in_place_and_its_jobs_go_on(release_n1_url) -> None:
    url, _ = release_n1_url
    store = SqlJobStore(url)
    await store.open()
    try:
        running = await store.get("jrunning")
        assert running is not None and (running.status, running.pages_done, running.pages_total) == ("running", 1, 3)
        assert [(p.page_index, p.result, p.computations) for p in await store.pages("jrunning")] == [(0, _page(1), 2)]
        assert await store.done_page_indices("jrunning") == {0}
        assert [j.id for j in await store.pending_callbacks()] == ["jwebhook"]
        # The pages still missing are claimable like a new job's, and checkpoints go on counting.
        assert await store.backlog() == 2
        leases = await store.claim_pages("replica-a", 5, lease_s=30)
        assert sorted((lease.job_id, lease.page_index) for lease in leases) == [("jrunning", 1), ("jrunning", 2)]
        assert await store.save_page("jrunning", _page(2)) == 2
        assert await store.save_page("jrunning", _page(1)) == 2  # a recomputation of a migrated checkpoint
        assert [p.computations for p in await store.pages("jrunning")] == [3, 1]
    finally:
        await store.close()
    tables, versions = _tables_and_version(url)
    assert versions == ["r0002"]
    assert "schema_version" not in tables and {"jobs", "pages", "replicas"} <= tables

    again = SqlJobStore(url)  # at head: opening again changes nothing
    await again.open()
    try:
        assert (await again.get("jrunning")).pages_done == 2
    finally:
        await again.close()


@pytest.mark.anyio
async def test_a_new_database_is_created_at_head(tmp_path: Path) -> None:
    store = SqlJobStore.sqlite(tmp_path / "jobs.db")
    await store.open()
    await store.close()
    tables, versions = _tables_and_version(sqlite_url(tmp_path / "jobs.db"))
    assert versions == ["r0002"] and {"jobs", "pages", "replicas", "alembic_version"} == tables
