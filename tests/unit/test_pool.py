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
from app.pipeline.pool import PagePool


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


def failing_init(settings, preload) -> None:
    raise RuntimeError("model file missing")


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
    with pool._lock:
        return all(w.ready for w in pool._workers) and len(pool._workers) == pool.size


# --- admission ------------------------------------------------------------------------------------------------------
def test_admission_raises_overloaded_when_the_pending_bound_is_reached(make_settings):
    pool = PagePool(make_settings(max_pending_pages=10, workers=2))
    first = pool.admit(8)
    with pytest.raises(Overloaded) as excinfo:
        pool.admit(3)
    assert excinfo.value.status == 503
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


def test_pages_of_two_documents_interleave(make_pool):
    pool = make_pool(workers=1)
    first, second = pool.document("big"), pool.document("small")
    order: list[str] = []
    futures = [first.submit(tagged, f"A{i}", 0.05) for i in range(6)]
    futures += [second.submit(tagged, f"B{i}", 0.05) for i in range(3)]
    for future in futures:
        future.add_done_callback(lambda f: order.append(f.result()))
    for future in futures:
        future.result(timeout=60)
    _wait_for(lambda: len(order) == 9, what="callbacks")
    # The small document does not wait for the big one: its pages alternate with the big one's.
    assert order.index("B2") < order.index("A5")
    assert order.index("B0") <= 2
    assert [t for t in order if t.startswith("A")] == [f"A{i}" for i in range(6)]


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
