"""Several documents at once (the CLI's convert and batch): the bound is kept and used, and a caller waits for room
in the pool's admission instead of failing its own files."""

from __future__ import annotations

import asyncio

from app.runtime.document import admit_waiting, documents_in_flight, for_each_document
from app.runtime.pool import PagePool


def test_documents_in_flight_keeps_every_worker_fed_and_stays_bounded():
    assert documents_in_flight(1) == 2
    assert documents_in_flight(2) == 4  # two per worker: one converting, one being written/submitted
    assert documents_in_flight(64) == 8


def test_for_each_document_runs_the_bound_at_once_and_every_item_once():
    running, peak, seen = 0, 0, []

    async def convert(index: int, item: str) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01 * (index % 3))  # files of mixed sizes
        seen.append(item)
        running -= 1

    items = [f"f{i}" for i in range(10)]
    asyncio.run(for_each_document(items, convert, in_flight=3))
    assert peak == 3 and sorted(seen) == sorted(items)


def test_admit_waiting_queues_behind_pending_pages_instead_of_raising(make_settings):
    pool = PagePool(make_settings(workers=1, max_pending_pages=4))  # never started: admission is bookkeeping

    async def scenario() -> list[str]:
        events = []
        first = pool.admit(4)  # the pool is at its bound
        waiter = asyncio.ensure_future(admit_waiting(pool, 3, poll_s=0.01))
        await asyncio.sleep(0.05)
        events.append("waiting" if not waiter.done() else "admitted too early")
        first.release()
        second = await asyncio.wait_for(waiter, 2)
        events.append(f"admitted {second.pages}")
        second.release()
        return events

    assert asyncio.run(scenario()) == ["waiting", "admitted 3"]
