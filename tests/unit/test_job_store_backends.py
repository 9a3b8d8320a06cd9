"""Both job-store backends keep the same semantics (SQLite embedded, PostgreSQL for several replicas), and the
PostgreSQL one shares page work through leases: concurrent claimers never get the same page, a dead holder's pages
come back after the lease, cancel stops renewals, and claims take turns across jobs."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from app.jobs.manager import new_job_id
from app.jobs.store import DuplicateIdempotencyKey, Job, JobStore
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


def _page(number: int) -> PageResult:
    text = f"page {number} text"
    return PageResult(page=number, width=612, height=792, source="text", markdown=text,
                      blocks=[Block(type="text", bbox=(72, 72, 300, 90), text=text)], timings={"layout": 0.5})


async def _fresh_pg(url: str):
    """A store on its own schema-less database state: each test gets a new database in the session's server."""
    import psycopg

    from app.jobs.store_pg import PostgresJobStore

    name = "t" + uuid.uuid4().hex[:12]
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f"CREATE DATABASE {name}")
    store = PostgresJobStore(url.rsplit("/", 1)[0] + "/" + name)
    await store.open()
    return store


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request, tmp_path: Path):
    if request.param == "sqlite":
        s = JobStore(tmp_path / "jobs.db")
        await s.open()
    else:
        s = await _fresh_pg(request.getfixturevalue("postgres_url"))
    yield s
    await s.close()


@pytest.fixture
async def pg(postgres_url: str):
    s = await _fresh_pg(postgres_url)
    yield s
    await s.close()


# --- the same semantics on both backends -------------------------------------------------------------------------
@pytest.mark.anyio
async def test_checkpoints_come_back_in_page_order_and_count_recomputation(store) -> None:
    job = await store.insert(_job(pages=3))
    assert await store.save_page(job.id, _page(3)) == 1
    assert await store.save_page(job.id, _page(1)) == 2
    assert await store.save_page(job.id, _page(1)) == 2
    pages = await store.pages(job.id)
    assert [p.page_index for p in pages] == [0, 2]
    assert [p.computations for p in pages] == [2, 1]
    assert pages[1].result.markdown == "page 3 text"
    assert await store.done_page_indices(job.id) == {0, 2}
    assert (await store.get(job.id)).pages_done == 2


@pytest.mark.anyio
async def test_idempotency_key_names_one_job_per_owner(store) -> None:
    first = await store.insert(_job(owner="o1", key="k"))
    with pytest.raises(DuplicateIdempotencyKey) as raised:
        await store.insert(_job(owner="o1", key="k"))
    assert raised.value.job.id == first.id
    other = await store.insert(_job(owner="o2", key="k"))
    assert other.id != first.id
    assert (await store.by_idempotency_key("o1", "k")).id == first.id


@pytest.mark.anyio
async def test_final_status_is_final_and_first_writer_wins(store) -> None:
    job = await store.insert(_job())
    running = await store.mark_running(job.id)
    assert running.status == "running" and running.runs == 1 and running.started_at
    assert await store.finish(job.id, "cancelled") is True
    assert await store.finish(job.id, "succeeded") is False
    assert await store.mark_running(job.id) is None
    done = await store.get(job.id)
    assert done.status == "cancelled" and done.finished_at


@pytest.mark.anyio
async def test_lists_are_per_owner_newest_first_and_active_oldest_first(store) -> None:
    old = await store.insert(_job(owner="a", created_at=100.0))
    new = await store.insert(_job(owner="a", created_at=200.0))
    await store.insert(_job(owner="b", created_at=150.0))
    assert [j.id for j in await store.list_for_owner("a")] == [new.id, old.id]
    assert [j.created_at for j in await store.active()] == [100.0, 150.0, 200.0]
    await store.finish(old.id, "failed", error_type="x", error_message="boom")
    assert [j.id for j in await store.list_for_owner("a", status="failed")] == [old.id]
    assert [j.id for j in await store.expired(time.time() + 1)] == [old.id]
    assert await store.expired(time.time() - 3600) == []


@pytest.mark.anyio
async def test_delete_removes_the_job_and_its_checkpoints(store) -> None:
    job = await store.insert(_job())
    await store.save_page(job.id, _page(1))
    await store.delete(job.id)
    assert await store.get(job.id) is None
    assert await store.pages(job.id) == []
    assert job.id not in await store.all_ids()


# --- PostgreSQL: leases ------------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_concurrent_claimers_never_get_the_same_page(pg) -> None:
    jobs = [await pg.insert(_job(pages=10)) for _ in range(5)]
    holders = [f"replica-{i}" for i in range(6)]
    claimed: list[tuple[str, int]] = []

    async def drain(holder: str) -> None:
        while leases := await pg.claim_pages(holder, 3, lease_s=30):
            claimed.extend((lease.job_id, lease.page_index) for lease in leases)

    await asyncio.gather(*(drain(h) for h in holders))
    assert len(claimed) == 50
    assert set(claimed) == {(j.id, i) for j in jobs for i in range(10)}


@pytest.mark.anyio
async def test_a_dead_holders_pages_come_back_after_the_lease(pg) -> None:
    job = await pg.insert(_job(pages=2))
    first = await pg.claim_pages("dead", 2, lease_s=0.3)
    assert len(first) == 2
    assert await pg.claim_pages("alive", 2, lease_s=30) == []  # leased and not expired: nobody else gets them
    await asyncio.sleep(0.4)
    taken = await pg.claim_pages("alive", 2, lease_s=30)
    assert {(lease.job_id, lease.page_index) for lease in taken} == {(job.id, 0), (job.id, 1)}
    await pg.save_page(job.id, _page(1))
    assert await pg.claim_pages("third", 5, lease_s=30) == []  # done and leased pages are not claimable


@pytest.mark.anyio
async def test_renewal_keeps_a_live_holders_pages(pg) -> None:
    await pg.insert(_job(pages=1))
    await pg.claim_pages("worker", 1, lease_s=0.3)
    for _ in range(3):
        await asyncio.sleep(0.15)
        assert await pg.renew_leases("worker", lease_s=0.3) == set()
        assert await pg.claim_pages("thief", 1, lease_s=30) == []


@pytest.mark.anyio
async def test_cancel_through_any_replica_stops_claims_and_tells_the_holder(pg) -> None:
    job = await pg.insert(_job(pages=4))
    await pg.claim_pages("a", 2, lease_s=30)
    assert await pg.finish(job.id, "cancelled") is True
    assert await pg.renew_leases("a", lease_s=30) == {job.id}
    assert await pg.claim_pages("b", 4, lease_s=30) == []
    assert await pg.backlog() == 0


@pytest.mark.anyio
async def test_claims_take_turns_across_jobs(pg) -> None:
    big = await pg.insert(_job(pages=50, created_at=1.0))
    small = await pg.insert(_job(pages=2, created_at=2.0))
    leases = await pg.claim_pages("w", 4, lease_s=30)
    by_job = [lease.job_id for lease in leases]
    assert by_job.count(small.id) == 2 and by_job.count(big.id) == 2
    # The next claim serves the big job only once the small one has nothing left.
    assert {lease.job_id for lease in await pg.claim_pages("w", 4, lease_s=30)} == {big.id}
    assert await pg.backlog() == 52


@pytest.mark.anyio
async def test_graceful_release_hands_pages_back_at_once(pg) -> None:
    job = await pg.insert(_job(pages=3))
    await pg.claim_pages("leaving", 3, lease_s=300)
    assert await pg.release_pages("leaving") == 3
    assert len(await pg.claim_pages("staying", 3, lease_s=30)) == 3
    assert (await pg.get(job.id)).status == "queued"


@pytest.mark.anyio
async def test_one_replica_at_a_time_holds_an_advisory_lock(pg) -> None:
    held = await pg.try_advisory_lock(42)
    assert held is not None
    assert await pg.try_advisory_lock(42) is None
    await pg.release_advisory_lock(held, 42)
    again = await pg.try_advisory_lock(42)
    assert again is not None
    await pg.release_advisory_lock(again, 42)


@pytest.mark.anyio
async def test_schema_migration_runs_once_for_replicas_starting_together(postgres_url: str) -> None:
    from app.jobs.store_pg import PostgresJobStore

    first = await _fresh_pg(postgres_url)
    others = [PostgresJobStore(first.url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in others))
    job = await others[0].insert(_job())
    assert (await first.get(job.id)).id == job.id
    for s in [first, *others]:
        await s.close()


@pytest.mark.anyio
async def test_live_replicas_count_recent_heartbeats_only(pg) -> None:
    assert await pg.live_replicas(within_s=5) == 1  # the caller itself, before any heartbeat
    for holder in ("a", "b", "c"):
        await pg.heartbeat(holder)
    assert await pg.live_replicas(within_s=5) == 3
    await pg.forget_replica("c")
    assert await pg.live_replicas(within_s=5) == 2
    await asyncio.sleep(0.3)
    await pg.heartbeat("a")
    assert await pg.live_replicas(within_s=0.2) == 1
