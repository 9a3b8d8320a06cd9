"""Worker supervision on its own, with real spawned processes: the initializer it is given, the wire, and the
start-failure accounting that marks a pool broken."""

from __future__ import annotations

import multiprocessing as mp
import os
import time

import pytest

from app.runtime.pool import protocol
from app.runtime.pool.workers import START_FAILURES_BEFORE_BROKEN, Supervisor, WorkerProcess

_CONTEXT = mp.get_context("spawn")


def remember_init(settings, preload) -> None:
    os.environ["POOL_TEST_INIT"] = f"preload={preload} threads={settings.threads_per_worker}"


def read_init() -> str:
    return os.environ.get("POOL_TEST_INIT", "") + f" omp={os.environ.get('OMP_NUM_THREADS')}"


def broken_init(settings, preload) -> None:
    raise RuntimeError("layout model file missing")


def _message(worker, timeout: float = 60.0) -> tuple:
    assert worker.conn.poll(timeout), "the worker said nothing"
    return protocol.decode_message(worker.conn.recv_bytes())


@pytest.fixture
def supervisors():
    made: list[Supervisor] = []
    yield made
    for supervisor in made:
        for worker in list(supervisor.workers):
            worker.process.kill()
            worker.process.join(5)


def test_a_worker_runs_the_initializer_it_is_given_then_serves_units(make_settings, supervisors):
    supervisor = Supervisor(_CONTEXT, 1, make_settings(threads_per_worker=1), remember_init, preload=False)
    supervisors.append(supervisor)
    assert supervisor.spawn_missing() == 1
    worker = supervisor.workers[0]
    kind, pid, _ = _message(worker)
    assert kind == protocol.READY and pid == worker.pid
    supervisor.mark_ready(worker)
    assert supervisor.all_ready()
    worker.conn.send_bytes(protocol.encode_unit([1], [(read_init, ())]))
    kind, answers, _ = _message(worker)
    assert answers[0][1:3] == ("ok", "preload=False threads=1 omp=1")
    worker.conn.send_bytes(protocol.encode_stop())
    worker.process.join(30)
    assert worker.process.exitcode == 0
    supervisor.remove(worker, expected=True)
    assert supervisor.restarts == 0 and supervisor.start_failures == 0


def test_workers_that_die_before_ready_back_off_then_break_the_supervisor_with_the_reason(
    make_settings, supervisors
):
    supervisor = Supervisor(_CONTEXT, 1, make_settings(), broken_init, preload=False)
    supervisors.append(supervisor)
    deadline = time.monotonic() + 120
    while supervisor.broken is None:
        assert time.monotonic() < deadline, "the supervisor never gave up"
        if supervisor.spawn_missing():
            worker = supervisor.workers[0]
            kind, _, detail = _message(worker)
            assert kind == protocol.INIT_FAILED
            supervisor.note_init_failure(detail)
            worker.process.join(30)
            supervisor.remove(worker)
            if supervisor.broken is None:
                assert supervisor.spawn_missing() == 0  # the back-off holds the next start
        time.sleep(0.05)
    assert supervisor.start_failures == START_FAILURES_BEFORE_BROKEN
    assert supervisor.broken == "RuntimeError: layout model file missing"
    assert supervisor.restarts == 0


def test_a_worker_retires_at_its_page_count_or_memory_ceiling_whichever_comes_first(make_settings):
    supervisor = Supervisor(_CONTEXT, 1, make_settings(worker_max_pages=100, worker_max_rss_mb=800), remember_init,
                            preload=False)
    worker = WorkerProcess(process=None, conn=None)
    worker.pages, worker.rss_mb = 99, 799.0
    assert supervisor.should_retire(worker) is None
    worker.units.append([object()])  # one page in flight: the budget is spent, send it nothing more
    assert supervisor.page_budget_spent(worker)
    worker.pages = 100
    assert "100 pages" in supervisor.should_retire(worker)
    worker.pages, worker.rss_mb = 5, 812.0
    assert "812 MB" in supervisor.should_retire(worker)
    unbounded = Supervisor(_CONTEXT, 1, make_settings(worker_max_pages=0, worker_max_rss_mb=0), remember_init,
                           preload=False)
    worker.pages, worker.rss_mb = 10**6, 10**6
    assert unbounded.should_retire(worker) is None and not unbounded.page_budget_spent(worker)
