"""The page pool: admission bound, crash recovery, fairness between documents, typed errors from workers.

Workers here load no models (`preload_engines=False`) and run small functions of this module, so the tests
exercise the pool itself in a few seconds."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from app.errors import NotReady, Overloaded, PageTooLarge, WorkerCrashed
from app.runtime.pool import PagePool


# --- functions the workers run (importable from the spawned processes) ----------------------------------------
def pid_of_worker() -> int:
    return os.getpid()


def sleep_then_pid(seconds: float, marker: str | None = None) -> int:
    if marker:
        Path(marker).write_text(str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()


def tagged(tag: str, seconds: float) -> str:
    time.sleep(seconds)
    return tag


def wait_for_file(marker: str, gate: str) -> str:
    """Holds its worker until the test opens the gate (creates `gate`); `marker` says it has started."""
    Path(marker).write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while not Path(gate).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the gate was never opened")
        time.sleep(0.005)
    return "gate"


def die_if(tag: str, die: bool) -> str:
    if die:
        os.kill(os.getpid(), signal.SIGKILL)
    return tag


_KEPT: list[bytes] = []


def fragment_heap(megabytes: int) -> float:
    """Allocate `megabytes` in 4 KiB blocks and free all but one in 64: the heap cannot shrink from its top, so
    only a trim gives the freed pages back. Returns the resident MB right after."""
    from app.runtime.pool.workers import resident_mb

    blocks = [bytes(4096) for _ in range(megabytes * 256)]
    _KEPT.extend(blocks[::64])
    del blocks
    return resident_mb()


def resident() -> float:
    from app.runtime.pool.workers import resident_mb

    return resident_mb()


def failing_init(settings, preload) -> None:
    raise RuntimeError("model file missing")


def slow_init(settings, preload) -> None:
    time.sleep(60)  # a worker still loading its models when the service is told to stop


def raise_page_too_large() -> None:
    raise PageTooLarge("page 7 embeds a 40000x40000 image")


class _Unpicklable(Exception):
    def __init__(self, a, b):  # two required arguments: default exception pickling cannot rebuild it
        super().__init__(f"{a} {b}")


def raise_unpicklable() -> None:
    raise _Unpicklable(1, 2)


# --- helpers ------------------------------------------------------------------------------------------------------
def _wait_for(condition, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def make_pool(make_settings):
    pools: list[PagePool] = []

    def build(workers: int = 1, **overrides) -> PagePool:
        pool = PagePool(make_settings(**overrides), workers=workers, preload_engines=False)
        pools.append(pool)
        pool.start()
        _wait_for(lambda: pool.stats().alive_workers == workers and _all_ready(pool), what="workers ready")
        return pool

    yield build
    for pool in pools:
        pool.close(grace_s=0)


def _all_ready(pool: PagePool) -> bool:
    return pool.all_ready()


# --- admission ------------------------------------------------------------------------------------------------------
def test_admission_raises_overloaded_when_the_pending_bound_is_reached(make_settings):
    pool = PagePool(make_settings(max_pending_pages=10, workers=2))
    first = pool.admit(8)
    with pytest.raises(Overloaded) as excinfo:
        pool.admit(3)
    assert excinfo.value.kind == "overloaded"
    assert excinfo.value.retry_after_s is not None and excinfo.value.retry_after_s >= 1
    second = pool.admit(2)  # exactly at the bound
    assert pool.stats().pending_pages == 10
    first.page_done(5)
    third = pool.admit(5)
    for admission in (first, second, third):
        admission.release()
        admission.release()  # twice is harmless
    assert pool.stats().pending_pages == 0


def test_an_idle_pool_admits_a_document_larger_than_the_bound(make_settings):
    pool = PagePool(make_settings(max_pending_pages=10))
    with pool.admit(500):
        with pytest.raises(Overloaded):
            pool.admit(1)
    assert pool.stats().pending_pages == 0
    assert pool.admit(1).pages_left == 1


# --- workers --------------------------------------------------------------------------------------------------------
def test_results_and_typed_errors_come_back_from_the_workers(make_pool):
    pool = make_pool()
    queue = pool.document("doc")
    assert queue.submit(pid_of_worker).result(timeout=30) in pool.worker_pids()
    with pytest.raises(PageTooLarge, match="40000x40000"):
        queue.submit(raise_page_too_large).result(timeout=30)
    with pytest.raises(Exception, match="1 2") as excinfo:
        queue.submit(raise_unpicklable).result(timeout=30)
    assert "page worker" in "".join(getattr(excinfo.value, "__notes__", []))
    stats = pool.stats()
    assert stats.pages_done == 1 and stats.pages_failed == 2
    assert pool.healthy()


def test_a_killed_worker_fails_its_page_and_is_replaced(make_pool, tmp_path):
    pool = make_pool(workers=1)
    queue = pool.document("doc")
    marker = tmp_path / "running"
    running = queue.submit(sleep_then_pid, 60, str(marker))
    waiting = queue.submit(pid_of_worker)  # already in the worker's pipe: must survive the crash
    _wait_for(marker.exists, what="the task to start")
    victim = int(marker.read_text())
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(WorkerCrashed, match="died"):
        running.result(timeout=30)
    replacement = waiting.result(timeout=60)
    assert replacement != victim
    assert queue.submit(pid_of_worker).result(timeout=30) == replacement
    stats = pool.stats()
    assert stats.worker_restarts == 1 and stats.alive_workers == 1
    assert pool.healthy()


def _hold_the_worker(pool: PagePool, tmp_path: Path):
    """Occupy a 1-worker pool with a task that waits for a gate; returns (its future, open_gate)."""
    marker, gate = tmp_path / "gate-started", tmp_path / "gate-open"
    future = pool.document("gate").submit(wait_for_file, str(marker), str(gate))
    _wait_for(marker.exists, what="the gate task to start")
    return future, lambda: gate.write_text("open")


def _record_order(futures) -> list[str]:
    order: list[str] = []
    for future in futures:
        future.add_done_callback(lambda f: order.append(f.result()))
    return order


def test_pages_of_two_documents_interleave(make_pool, tmp_path):
    pool = make_pool(workers=1)
    held, open_gate = _hold_the_worker(pool, tmp_path)
    first, second = pool.document("big"), pool.document("small")
    big = [first.submit(tagged, f"A{i}", 0) for i in range(6)]
    # The worker's pipe takes one task behind the gate (A0); the rest wait in the documents' queues, so what
    # follows depends on the dispatcher's round robin alone, not on timing.
    _wait_for(lambda: pool.stats().inflight_pages == 2, what="A0 sent behind the gate")
    small = [second.submit(tagged, f"B{i}", 0) for i in range(3)]
    order = _record_order(big + small)
    open_gate()
    assert held.result(timeout=60) == "gate"
    for future in big + small:
        future.result(timeout=60)
    _wait_for(lambda: len(order) == 9, what="callbacks")
    # The small document does not wait for the big one: once both are queued they take turns.
    assert order == ["A0", "A1", "B0", "A2", "B1", "A3", "B2", "A4", "A5"]


def test_chunkable_pages_travel_together_and_still_count_one_by_one(make_pool, tmp_path):
    pool = make_pool(workers=1)
    held, open_gate = _hold_the_worker(pool, tmp_path)
    queue = pool.document("text")
    futures = queue.submit_many(tagged, [(f"p{i}", 0) for i in range(20)], chunkable=True)
    # Behind the gate, one message carries a chunk: min(MAX_CHUNK_PAGES, 20 pages / 2 prefetch slots) = 8 pages.
    _wait_for(lambda: pool.stats().inflight_pages == 1 + 8, what="a chunk of 8 sent behind the gate")
    assert pool.stats().queued_pages == 12
    other = pool.document("other").submit(tagged, "other", 0)
    order = _record_order(futures + [other])
    open_gate()
    held.result(timeout=60)
    assert [f.result(timeout=60) for f in futures] == [f"p{i}" for i in range(20)]
    assert other.result(timeout=60) == "other"
    _wait_for(lambda: len(order) == 21, what="callbacks")
    # The other document gets its turn after the chunk already sent and the next one (smaller: 12 pages left over
    # 2 prefetch slots), not after all 20 pages.
    assert order.index("other") == 8 + 6
    stats = pool.stats()
    assert stats.pages_done == 1 + 20 + 1 and stats.inflight_pages == 0 and stats.queued_pages == 0


def test_a_crash_inside_a_chunk_fails_only_that_chunks_pages(make_pool, tmp_path):
    pool = make_pool(workers=1)
    held, open_gate = _hold_the_worker(pool, tmp_path)
    queue = pool.document("text")
    futures = queue.submit_many(die_if, [(f"p{i}", i == 1) for i in range(12)], chunkable=True)
    _wait_for(lambda: pool.stats().inflight_pages == 1 + 6, what="a chunk of 6 sent behind the gate")
    open_gate()
    held.result(timeout=60)
    for future in futures[:6]:
        with pytest.raises(WorkerCrashed, match="died"):
            future.result(timeout=60)
    assert [f.result(timeout=60) for f in futures[6:]] == [f"p{i}" for i in range(6, 12)]
    stats = pool.stats()
    assert stats.pages_failed == 6 and stats.worker_restarts == 1 and pool.healthy()


def test_cancelling_a_chunked_document_drops_the_pages_not_yet_sent(make_pool, tmp_path):
    pool = make_pool(workers=1)
    held, open_gate = _hold_the_worker(pool, tmp_path)
    queue = pool.document("text")
    futures = queue.submit_many(tagged, [(f"p{i}", 0) for i in range(20)], chunkable=True)
    _wait_for(lambda: pool.stats().inflight_pages == 1 + 8, what="a chunk of 8 sent behind the gate")
    assert queue.cancel() == 12
    open_gate()
    held.result(timeout=60)
    assert [f.result(timeout=60) for f in futures[:8]] == [f"p{i}" for i in range(8)]
    assert all(f.cancelled() for f in futures[8:])


def test_cancelling_a_document_drops_its_unstarted_pages(make_pool):
    pool = make_pool(workers=1)
    queue = pool.document("doc")
    futures = [queue.submit(tagged, str(i), 0.2) for i in range(6)]
    time.sleep(0.1)
    dropped = queue.cancel()
    assert dropped >= 3
    assert sum(f.cancelled() for f in futures) == dropped
    for future in futures:
        if not future.cancelled():
            future.result(timeout=30)


def test_the_event_loop_is_not_blocked_while_pages_run(make_pool):
    pool = make_pool(workers=1)

    async def scenario():
        queue = pool.document("doc")
        page = asyncio.wrap_future(queue.submit(sleep_then_pid, 0.5))
        ticks = 0
        while not page.done():
            await asyncio.sleep(0.02)
            ticks += 1
        await page
        return ticks

    assert asyncio.run(scenario()) >= 10


def test_a_stopped_pool_refuses_work_and_fails_queued_pages(make_settings):
    pool = PagePool(make_settings(), workers=1, preload_engines=False)
    pool.start()
    queue = pool.document("doc")
    futures = [queue.submit(tagged, str(i), 5) for i in range(4)]
    pool.close(grace_s=0)
    for future in futures:
        with pytest.raises(NotReady):
            future.result(timeout=10)
    with pytest.raises(NotReady):
        pool.document("late")
    assert not pool.healthy()


def test_stop_is_safe_on_a_pool_that_never_started(make_settings):
    pool = PagePool(make_settings())
    asyncio.run(pool.stop(1))
    assert not pool.healthy()


def test_workers_that_cannot_start_make_the_pool_unhealthy_with_the_reason(make_settings):
    pool = PagePool(make_settings(), workers=1, preload_engines=False,
                    initializer=f"{failing_init.__module__}:failing_init")
    pool.start()
    try:
        with pytest.raises(NotReady, match="model file missing"):
            pool.warmup_sync(timeout_s=120)
        assert not pool.healthy()
        with pytest.raises(WorkerCrashed, match="model file missing"):
            pool.document("doc").submit(pid_of_worker).result(timeout=10)
    finally:
        pool.close(grace_s=0)


def test_a_stop_during_warm_up_ends_the_warm_up_wait_at_once(make_settings):
    """The thread waiting for the workers to load must not outlive the pool (it would hold up the event loop's
    shutdown, which joins its executor threads)."""
    import threading

    pool = PagePool(make_settings(), workers=1, preload_engines=False,
                    initializer=f"{slow_init.__module__}:slow_init")
    outcome: list[BaseException] = []

    def warm() -> None:
        try:
            pool.warmup_sync(timeout_s=120)
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            outcome.append(exc)

    waiter = threading.Thread(target=warm)
    waiter.start()
    time.sleep(1.0)
    started = time.monotonic()
    pool.close(grace_s=0)
    waiter.join(timeout=20)
    assert not waiter.is_alive() and time.monotonic() - started < 20
    assert len(outcome) == 1 and isinstance(outcome[0], NotReady)


# --- recycling and memory -------------------------------------------------------------------------------------------
def test_a_worker_is_replaced_after_max_pages_without_failing_a_page(make_pool):
    pool = make_pool(workers=1, worker_max_pages=3)
    queue = pool.document("doc")
    one_by_one = [queue.submit(pid_of_worker).result(timeout=60) for _ in range(7)]
    assert [len(set(one_by_one[i:i + 3])) for i in (0, 3)] == [1, 1]
    assert len(set(one_by_one)) == 3 and one_by_one[0] != one_by_one[3] != one_by_one[6]
    burst = [f.result(timeout=60) for f in queue.submit_many(pid_of_worker, [()] * 7)]
    assert max(burst.count(pid) for pid in set(burst)) <= 3
    stats = pool.stats()
    assert stats.pages_failed == 0 and stats.worker_restarts == 0 and stats.worker_recycles >= 4
    _wait_for(lambda: pool.stats().alive_workers == 1 and pool.all_ready(), what="the replacement")
    assert pool.healthy()


def test_a_worker_over_the_memory_ceiling_is_replaced_after_its_page(make_pool):
    pool = make_pool(workers=1, worker_max_rss_mb=1)  # every worker is over 1 MB: each serves one unit
    queue = pool.document("doc")
    pids = [queue.submit(pid_of_worker).result(timeout=60) for _ in range(3)]
    assert len(set(pids)) == 3
    assert pool.stats().worker_recycles >= 2 and pool.stats().worker_restarts == 0


def test_an_idle_worker_gives_its_freed_heap_back(make_pool):
    pool = make_pool(workers=1, worker_max_rss_mb=0)
    queue = pool.document("doc")
    baseline = queue.submit(resident).result(timeout=60)
    peak = queue.submit(fragment_heap, 300).result(timeout=60)
    assert peak - baseline > 250  # the blocks are freed but the heap still holds them
    readings: list[float] = []

    def settled() -> bool:
        readings.append(queue.submit(resident).result(timeout=60))
        return readings[-1] - baseline < 60

    _wait_for(settled, timeout=20, what=f"the worker's memory to go back down from {peak:.0f} MB "
              f"to its baseline {baseline:.0f} MB")
