"""The job store shares page work between replicas through leases: concurrent claimers never get the same page, a
dead holder's pages come back after the lease, cancel stops renewals, claims take turns across jobs, and a job
handed off while running is leased to the replica computing it. Replicas share PostgreSQL; the embedded SQLite
database keeps the same protocol (one store, app/jobs/sql_store.py), so the lease tests run on both."""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.test_job_store import _job, _page
from tests.postgres_server import fresh_store


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=("postgres", "sqlite"))
async def pg(request, tmp_path):
    """An open store on a new database: PostgreSQL, or SQLite (the name stays: most of these are about replicas)."""
    if request.param == "sqlite":
        from app.jobs.sql_store import SqlJobStore

        s = SqlJobStore.sqlite(tmp_path / "jobs.db")
        await s.open()
    else:
        s = await fresh_store(request.getfixturevalue("postgres_url"))
    yield s
    await s.close()


# --- leases ------------------------------------------------------------------------------------------------------
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
    from app.jobs.sql_store import SqlJobStore

    first = await fresh_store(postgres_url)
    others = [SqlJobStore(first.url) for _ in range(3)]
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


@pytest.mark.anyio
async def test_a_job_handed_off_while_running_is_leased_to_the_replica_computing_it(postgres_url: str) -> None:
    here = await fresh_store(postgres_url, holder="replica-a", lease_s=0.3)
    try:
        adopted = _job(pages=2)
        adopted.status = "running"
        await here.insert(adopted)
        assert await here.claim_pages("replica-b", 5, lease_s=30) == []  # replica-a is computing them
        await asyncio.sleep(0.4)  # replica-a died: its lease ran out
        taken = await here.claim_pages("replica-b", 5, lease_s=30)
        assert sorted(lease.page_index for lease in taken) == [0, 1]
    finally:
        await here.close()
