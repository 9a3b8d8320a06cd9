"""The pool's scheduler on its own: turns between documents, chunk sizes, cancel and requeue, no processes."""

from __future__ import annotations

from app.runtime.pool.scheduler import MAX_CHUNK_PAGES, Scheduler, Task, chunk_size, fail


def page(tag: str) -> str:
    return tag


def other(tag: str) -> str:
    return tag


class _Ids:
    def __init__(self) -> None:
        self.n = 0

    def tasks(self, doc_id: int, tags: list[str], *, chunkable: bool = False, fn=page) -> list[Task]:
        out = []
        for tag in tags:
            self.n += 1
            out.append(Task(self.n, fn, (tag,), doc_id, chunkable))
        return out


def _drain(scheduler: Scheduler, slots: int = 1) -> list[list[str]]:
    units = []
    while (unit := scheduler.next_unit(slots)) is not None:
        units.append([task.args[0] for task in unit])
    return units


def test_documents_take_turns_one_page_each():
    scheduler, ids = Scheduler(), _Ids()
    scheduler.add(1, ids.tasks(1, [f"A{i}" for i in range(5)]))
    scheduler.add(2, ids.tasks(2, ["B0", "B1"]))
    scheduler.add(3, ids.tasks(3, ["C0"]))
    assert _drain(scheduler) == [["A0"], ["B0"], ["C0"], ["A1"], ["B1"], ["A2"], ["A3"], ["A4"]]


def test_a_document_arriving_late_joins_the_round_robin_at_the_back():
    scheduler, ids = Scheduler(), _Ids()
    scheduler.add(1, ids.tasks(1, [f"A{i}" for i in range(4)]))
    assert _drain_one(scheduler) == ["A0"]
    scheduler.add(2, ids.tasks(2, ["B0", "B1"]))
    assert _drain(scheduler) == [["A1"], ["B0"], ["A2"], ["B1"], ["A3"]]


def _drain_one(scheduler: Scheduler) -> list[str]:
    unit = scheduler.next_unit()
    assert unit is not None
    return [task.args[0] for task in unit]


def test_chunk_size_fills_every_slot_before_growing_and_stops_at_the_maximum():
    assert chunk_size(queued=4, slots=4) == 1  # 2 workers x 2 slots: one page each
    assert chunk_size(queued=20, slots=2, max_chunk=16) == 10
    assert chunk_size(queued=20, slots=2, max_chunk=8) == 8
    assert chunk_size(queued=12, slots=2) == 6
    assert chunk_size(queued=1000, slots=4) == MAX_CHUNK_PAGES
    assert chunk_size(queued=0, slots=4) == 1
    assert chunk_size(queued=5, slots=0) == 5


def test_chunkable_pages_leave_in_chunks_that_shrink_as_the_queue_empties():
    scheduler, ids = Scheduler(), _Ids()
    scheduler.add(1, ids.tasks(1, [f"p{i}" for i in range(20)], chunkable=True))
    sizes = [len(unit) for unit in _drain(scheduler, slots=2)]
    assert sizes == [8, 6, 3, 2, 1]
    assert sum(sizes) == 20


def test_a_chunk_never_mixes_functions_or_unchunkable_tasks():
    scheduler, ids = Scheduler(), _Ids()
    tasks = ids.tasks(1, ["a0", "a1"], chunkable=True) + ids.tasks(1, ["b0", "b1"], chunkable=True, fn=other)
    tasks += ids.tasks(1, ["slow"]) + ids.tasks(1, ["a2"], chunkable=True)
    scheduler.add(1, tasks)
    assert _drain(scheduler) == [["a0", "a1"], ["b0", "b1"], ["slow"], ["a2"]]


def test_another_document_gets_its_turn_between_two_chunks():
    scheduler, ids = Scheduler(), _Ids()
    scheduler.add(1, ids.tasks(1, [f"p{i}" for i in range(20)], chunkable=True))
    scheduler.add(2, ids.tasks(2, ["other"]))
    units = _drain(scheduler, slots=2)
    assert units[1] == ["other"]
    assert [len(u) for u in units] == [8, 1, 6, 3, 2, 1]


def test_cancelled_tasks_are_skipped_and_returned_tasks_are_claimed():
    scheduler, ids = Scheduler(), _Ids()
    tasks = ids.tasks(1, ["a", "b", "c"])
    scheduler.add(1, tasks)
    tasks[0].future.cancel()
    unit = scheduler.next_unit()
    assert [t.args[0] for t in unit] == ["b"]
    assert unit[0].started and unit[0].future.running()


def test_cancel_removes_a_documents_queued_tasks_only():
    scheduler, ids = Scheduler(), _Ids()
    scheduler.add(1, ids.tasks(1, ["A0", "A1", "A2"]))
    scheduler.add(2, ids.tasks(2, ["B0"]))
    dropped = scheduler.cancel(1)
    assert [t.args[0] for t in dropped] == ["A0", "A1", "A2"]
    assert scheduler.queued == 1
    assert _drain(scheduler) == [["B0"]]


def test_requeued_tasks_go_first_in_their_order_and_pool_tasks_come_back_as_orphans():
    scheduler, ids = Scheduler(), _Ids()
    scheduler.add(1, ids.tasks(1, ["A0", "A1", "A2", "A3"]))
    sent = scheduler.next_unit() + scheduler.next_unit()  # A0, A1 went to a worker that died
    warmup = Task(99, page, ("warm",), None)
    orphans = scheduler.requeue([*sent, warmup])
    assert orphans == [warmup]
    scheduler.add(2, ids.tasks(2, ["B0"]))
    assert _drain(scheduler) == [["A0"], ["B0"], ["A1"], ["A2"], ["A3"]]


def test_a_document_requeued_after_its_queue_emptied_gets_a_turn_again():
    scheduler, ids = Scheduler(), _Ids()
    scheduler.add(1, ids.tasks(1, ["A0"]))
    sent = scheduler.next_unit()
    assert scheduler.next_unit() is None
    scheduler.requeue(sent)
    assert _drain(scheduler) == [["A0"]]


def test_take_all_empties_every_queue_and_fail_settles_each_future_once():
    scheduler, ids = Scheduler(), _Ids()
    scheduler.add(1, ids.tasks(1, ["A0", "A1"]))
    scheduler.add(2, ids.tasks(2, ["B0"]))
    tasks = scheduler.take_all()
    assert len(tasks) == 3 and scheduler.queued == 0 and not scheduler.has_work()
    tasks[1].future.cancel()
    for task in tasks:
        fail(task, RuntimeError("stopped"))
        fail(task, RuntimeError("twice"))
    assert str(tasks[0].future.exception()) == "stopped"
    assert tasks[1].future.cancelled()
    assert scheduler.next_unit() is None
