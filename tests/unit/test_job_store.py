"""The job store: durable rows, page checkpoints, idempotency, and state transitions that cannot go backwards."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from app.jobs import files
from app.jobs.events import JobEvent, JobEvents
from app.jobs.handoff import JobHandoff
from app.jobs.runner import merge_pages
from app.jobs.sql_store import SqlJobStore
from app.jobs.store import DuplicateIdempotencyKey, Job, JobStore
from app.jobs.submission import new_job_id
from app.jobs.sweeper import sweep_once
from app.pipeline.options import ConvertOptions
from app.pipeline.result import Block, PageResult


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _job(owner: str = "", key: str | None = None, pages: int = 3, created_at: float | None = None) -> Job:
    return Job(
        id=new_job_id(), owner=owner, status="queued", options=ConvertOptions(mode="text", dpi=100),
        upload_sha256="ab" * 32, page_count=pages, page_indices=list(range(pages)),
        created_at=time.time() if created_at is None else created_at, idempotency_key=key,
    )


def _page(number: int, text: str = "") -> PageResult:
    text = text or f"page {number} text"
    return PageResult(page=number, width=612, height=792, source="text", markdown=text,
                      blocks=[Block(type="text", bbox=(72, 72, 300, 90), text=text)], timings={"layout": 0.5})


# Every backend of the JobStore protocol runs the same tests: the embedded SQLite database, and PostgreSQL (a real
# server the session starts; each test gets a database of its own) for several replicas.
BACKENDS = ("postgres", "sqlite")


@pytest.fixture(params=BACKENDS)
async def store(request, tmp_path: Path):
    if request.param == "sqlite":
        s: JobStore = SqlJobStore.sqlite(tmp_path / "jobs.db")
        await s.open()
    else:
        from tests.postgres_server import fresh_store

        s = await fresh_store(request.getfixturevalue("postgres_url"))
    yield s
    await s.close()


@pytest.mark.anyio
async def test_concurrent_checkpoints_and_status_changes_stay_consistent(store: JobStore) -> None:
    import asyncio

    job = await store.insert(_job(pages=40))
    done = await asyncio.gather(*(store.save_page(job.id, _page(n)) for n in range(1, 41)),
                                store.mark_running(job.id), *(store.get(job.id) for _ in range(10)))
    counts = sorted(done[:40])
    assert counts == list(range(1, 41))  # each checkpoint saw its own transaction, none interleaved
    stored = await store.get(job.id)
    assert stored is not None and stored.pages_done == 40 and stored.status == "running" and stored.runs == 1
    assert await store.done_page_indices(job.id) == set(range(40))


@pytest.mark.anyio
async def test_sqlite_waits_for_the_disk_for_what_a_client_is_told_only(tmp_path: Path) -> None:
    """A job accepted or finished survives power loss (synchronous=FULL); a page checkpoint and a run count only a
    process kill (NORMAL, no fsync per commit): losing one to power loss costs a page computed again."""
    import sqlalchemy as sa

    store = SqlJobStore.sqlite(tmp_path / "jobs.db")
    level = "?"
    writes: list[tuple[str, str]] = []  # (statement's first words, synchronous level it committed under)

    def seen(_conn, _cursor, statement: str, *_args) -> None:
        nonlocal level
        if statement.startswith("PRAGMA synchronous="):
            level = statement.split("=")[1]
        elif statement.startswith(("INSERT", "UPDATE")):
            writes.append((" ".join(statement.split()[:3]), level))

    sa.event.listen(store._db.engine, "before_cursor_execute", seen)
    await store.open()
    writes.clear()  # the migration's
    try:
        job = await store.insert(_job(pages=1))
        await store.mark_running(job.id)
        await store.save_page(job.id, _page(1))
        await store.finish(job.id, "succeeded")
    finally:
        await store.close()
    assert writes == [
        ("INSERT INTO jobs", "FULL"), ("INSERT INTO pages", "FULL"),  # the submission: the job, its pending pages
        ("UPDATE jobs SET", "NORMAL"),  # mark_running
        ("INSERT INTO pages", "NORMAL"), ("UPDATE jobs SET", "NORMAL"),  # the checkpoint and its count
        ("UPDATE jobs SET", "FULL"),  # finish
    ]


@pytest.mark.anyio
async def test_database_is_in_wal_mode_and_survives_reopening(tmp_path: Path) -> None:
    store = SqlJobStore.sqlite(tmp_path / "jobs.db")
    await store.open()
    job = _job(owner="o1")
    job.filename = "a.pdf"
    await store.insert(job)
    await store.save_page(job.id, _page(2))
    await store.close()

    with sqlite3.connect(tmp_path / "jobs.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    again = SqlJobStore.sqlite(tmp_path / "jobs.db")
    await again.open()
    try:
        loaded = await again.get(job.id)
        assert loaded is not None
        assert (loaded.owner, loaded.filename, loaded.pages_done, loaded.options) == ("o1", "a.pdf", 1, job.options)
        pages = await again.pages(job.id)
        assert [p.page_index for p in pages] == [1]
        assert pages[0].result == _page(2)
    finally:
        await again.close()


@pytest.mark.anyio
async def test_saving_a_page_twice_counts_the_recomputation(store: JobStore) -> None:
    job = await store.insert(_job())
    assert await store.save_page(job.id, _page(1)) == 1
    assert await store.save_page(job.id, _page(3)) == 2
    first = {p.page_index: p for p in await store.pages(job.id)}
    assert await store.save_page(job.id, _page(1, "redone")) == 2  # still two distinct pages
    again = {p.page_index: p for p in await store.pages(job.id)}
    assert again[0].computations == 2 and again[2].computations == 1
    assert again[0].result.markdown == "redone"
    assert again[0].computed_at >= first[0].computed_at
    assert await store.done_page_indices(job.id) == {0, 2}


@pytest.mark.anyio
async def test_same_idempotency_key_of_the_same_owner_names_one_job(store: JobStore) -> None:
    first = await store.insert(_job(owner="alice", key="k1"))
    with pytest.raises(DuplicateIdempotencyKey) as dup:
        await store.insert(_job(owner="alice", key="k1"))
    assert dup.value.job.id == first.id
    # Another owner, or no key at all, is a different job.
    other = await store.insert(_job(owner="bob", key="k1"))
    assert other.id != first.id
    await store.insert(_job(owner="alice"))
    await store.insert(_job(owner="alice"))
    assert (await store.by_idempotency_key("alice", "k1")).id == first.id  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_finished_status_is_final_and_first_writer_wins(store: JobStore) -> None:
    job = await store.insert(_job())
    running = await store.mark_running(job.id)
    assert running is not None and running.status == "running" and running.runs == 1
    assert running.started_at is not None
    assert await store.finish(job.id, "cancelled", error_type="cancelled", error_message="by client")
    assert not await store.finish(job.id, "succeeded")  # a runner finishing late cannot overwrite the cancel
    assert await store.mark_running(job.id) is None  # nor restart it
    final = await store.get(job.id)
    assert final is not None and final.status == "cancelled" and final.finished_at is not None
    assert (final.error_type, final.error_message) == ("cancelled", "by client")


@pytest.mark.anyio
async def test_active_jobs_come_back_oldest_first_and_list_is_per_owner(store: JobStore) -> None:
    now = time.time()
    old = await store.insert(_job(owner="a", created_at=now - 10))
    new = await store.insert(_job(owner="a", created_at=now))
    done = await store.insert(_job(owner="b"))
    await store.mark_running(new.id)
    await store.finish(done.id, "succeeded")
    assert [j.id for j in await store.active()] == [old.id, new.id]
    assert [j.id for j in await store.list_for_owner("a")] == [new.id, old.id]
    assert [j.id for j in await store.list_for_owner("b")] == [done.id]
    assert [j.id for j in await store.list_for_owner("a", status="running")] == [new.id]


@pytest.mark.anyio
async def test_delete_removes_the_job_and_its_checkpoints(store: JobStore) -> None:
    job = await store.insert(_job())
    await store.save_page(job.id, _page(1))
    await store.delete(job.id)
    assert await store.get(job.id) is None
    assert await store.pages(job.id) == []


@pytest.mark.anyio
async def test_sweep_removes_only_jobs_finished_longer_ago_than_the_ttl(make_settings, store: JobStore) -> None:
    settings = make_settings(job_ttl_hours=1)
    expired, fresh, running = [await store.insert(_job()) for _ in range(3)]
    for job in (expired, fresh, running):
        files.job_dir(settings, job.id).mkdir(parents=True)
        (files.job_dir(settings, job.id) / "input.pdf").write_bytes(b"%PDF-1.7")
    await store.finish(expired.id, "succeeded")
    await store.finish(fresh.id, "failed")
    await store.mark_running(running.id)
    orphan = files.job_dir(settings, "jorphan")
    orphan.mkdir()
    # Pretend the sweep runs two hours from now: `expired` and `fresh` both finished over an hour before then.
    later = time.time() + 2 * 3600
    removed = await sweep_once(settings, store, now=later)
    assert set(removed) == {expired.id, fresh.id, "jorphan"}
    assert not files.job_dir(settings, expired.id).exists() and not orphan.exists()
    assert files.job_dir(settings, running.id).exists()
    assert await store.get(expired.id) is None and await store.get(running.id) is not None
    # Now, nothing has aged past the TTL.
    assert await sweep_once(settings, store) == []


def test_job_ids_are_random_and_safe_as_directory_names() -> None:
    from app.storage.local import SAFE_ID

    ids = {new_job_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(SAFE_ID.match(i) and len(i) >= 24 for i in ids)


def test_merged_pages_come_in_page_order_whatever_order_they_finished() -> None:
    merged = merge_pages([_page(3), _page(1), _page(2)], page_count=5)
    assert [p.page for p in merged.pages] == [1, 2, 3]
    assert merged.page_count == 5
    assert merged.markdown.index("page 1 text") < merged.markdown.index("page 2 text") < merged.markdown.index(
        "page 3 text")


@pytest.mark.anyio
async def test_events_reach_every_listener_and_the_final_one_survives_a_full_queue() -> None:
    events = JobEvents()
    async with events.subscribe("j1") as slow, events.subscribe("j1") as other:
        for n in range(2000):
            events.publish("j1", JobEvent("page", {"page": n}))
        events.publish("j1", JobEvent("status", {"status": "succeeded"}))
        events.publish("j2", JobEvent("status", {"status": "failed"}))  # someone else's job
        drained = [slow.get_nowait() for _ in range(slow.qsize())]
        assert drained[-1].final and drained[-1].data["status"] == "succeeded"
        assert other.qsize() == len(drained)
    assert events.listeners("j1") == 0


@pytest.mark.anyio
async def test_handoff_buffers_pages_until_a_job_adopts_the_conversion() -> None:
    handoff = JobHandoff()
    await handoff.on_page(_page(2))
    await handoff.on_page(_page(1))
    seen: list[int] = []

    async def sink(page: PageResult) -> None:
        seen.append(page.page)

    await handoff.attach(sink)
    await handoff.on_page(_page(3))
    assert seen == [2, 1, 3]


@pytest.mark.anyio
async def test_sweep_deletes_an_expired_jobs_s3_objects_and_only_those(make_settings, store: JobStore) -> None:
    from moto import mock_aws

    from app.pipeline.result import DocumentResult
    from app.storage.s3 import S3Uploader

    settings = make_settings(s3_bucket="results", s3_access_key="test", s3_secret_key="test", s3_prefix="ocr/")
    with mock_aws():
        s3 = S3Uploader(settings)
        client = s3.client
        client.create_bucket(Bucket="results")
        expired, kept = await store.insert(_job()), await store.insert(_job())
        for job in (expired, kept):
            directory = files.job_dir(settings, job.id)
            directory.mkdir(parents=True)
            (directory / files.INPUT_NAME).write_bytes(b"%PDF-1.7 test")
            files.s3_upload_input(s3, job.id, directory / files.INPUT_NAME)
            files.write_result(settings, job.id, DocumentResult(markdown="# hi\n", page_count=1, pages=[]))
            assert files.s3_upload_result(s3, settings, job.id)["keys"] == [
                f"ocr/{job.id}/result.json", f"ocr/{job.id}/result.md"]
        await store.finish(expired.id, "succeeded")
        await store.mark_running(kept.id)

        assert await sweep_once(settings, store, s3=s3, now=time.time() + 10 * 24 * 3600) == [expired.id]
        keys = {obj["Key"] for obj in client.list_objects_v2(Bucket="results").get("Contents", [])}
        assert keys == {f"ocr/{kept.id}/input.pdf", f"ocr/{kept.id}/result.json", f"ocr/{kept.id}/result.md"}
