"""The scheduler: which task goes to a worker next. Pure: no processes, no threads, no I/O.

Each document submits through its own queue; `next_unit` takes one send unit from each document in turn (round
robin), so a 500-page job does not starve a 1-page request. A send unit is one task, or a chunk of up to
`MAX_CHUNK_PAGES` consecutive tasks of one function submitted `chunkable=True` (cheap pages: `text` mode), which a
worker receives in one message and answers in one message: per-page IPC and pickling would otherwise cost as much
as the page itself. Chunks shrink so that a short document still spreads over every worker's free slots. Tasks
that a dead worker never ran go back to the head of their document's queue (`requeue`), so they run first.

Every task keeps its own `concurrent.futures.Future`: pages are counted, cancelled (while not sent) and failed one
by one. Not thread-safe: the pool calls it under its lock.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections import deque
from collections.abc import Callable
from typing import Any

MAX_CHUNK_PAGES = 8  # chunkable tasks per unit: ~0.2 s of text-mode pages, short enough for fairness and cancel


class Task:
    """One call to run in a worker, its future, and the document it belongs to (None: a pool-internal task)."""

    __slots__ = ("id", "fn", "args", "future", "doc_id", "started", "chunkable")

    def __init__(
        self, task_id: int, fn: Callable[..., Any], args: tuple, doc_id: int | None, chunkable: bool = False
    ) -> None:
        self.id = task_id
        self.fn = fn
        self.args = args
        self.future: cf.Future = cf.Future()
        self.doc_id = doc_id
        self.started = False
        self.chunkable = chunkable

    def claim(self) -> bool:
        """Mark the task running; False when its future was cancelled (then it must not be sent)."""
        if not self.started:
            if not self.future.set_running_or_notify_cancel():
                return False
            self.started = True
        return True


def resolve(task: Task, value: Any) -> None:
    if not task.future.done():
        task.future.set_result(value)


def fail(task: Task, error: BaseException) -> None:
    if task.future.done() or not task.claim():
        return  # already settled, or cancelled
    task.future.set_exception(error)


def chunk_size(queued: int, slots: int, max_chunk: int = MAX_CHUNK_PAGES) -> int:
    """Pages per chunk: up to `max_chunk`, fewer when the queue would not otherwise fill every free slot (so 4
    pages on 2 workers with 2 slots each run 1 per slot, not 4 in one worker)."""
    return max(1, min(max_chunk, -(-queued // max(1, slots))))


class Scheduler:
    """Per-document queues and their turns (see the module docstring)."""

    def __init__(self, max_chunk: int = MAX_CHUNK_PAGES) -> None:
        self.max_chunk = max_chunk
        self._queues: dict[int, deque[Task]] = {}
        self._turns: deque[int] = deque()  # documents with queued tasks, in round-robin order

    # --- documents ---
    def open(self, doc_id: int) -> None:
        self._queues.setdefault(doc_id, deque())

    def close(self, doc_id: int) -> list[Task]:
        """Forget a document; returns its tasks that were still queued (the caller cancels them)."""
        dropped = self.cancel(doc_id)
        self._queues.pop(doc_id, None)
        return dropped

    def add(self, doc_id: int, tasks: list[Task]) -> None:
        queue = self._queues.setdefault(doc_id, deque())
        if not queue and tasks and doc_id not in self._turns:
            self._turns.append(doc_id)
        queue.extend(tasks)

    def cancel(self, doc_id: int) -> list[Task]:
        """Remove a document's queued tasks and return them (the caller cancels their futures)."""
        queue = self._queues.get(doc_id)
        if not queue:
            return []
        dropped = list(queue)
        queue.clear()
        return dropped

    def take_all(self) -> list[Task]:
        """Remove and return every queued task (shutdown, or a pool that cannot start workers)."""
        tasks = [task for queue in self._queues.values() for task in queue]
        for queue in self._queues.values():
            queue.clear()
        self._turns.clear()
        return tasks

    # --- dispatch ---
    @property
    def queued(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def has_work(self) -> bool:
        return any(self._queues.values())

    def next_unit(self, slots: int = 1) -> list[Task] | None:
        """The next document's next task, with the chunkable tasks of the same function that follow it in that
        document's queue (a chunk sized for `slots` free worker slots). Cancelled tasks are skipped; every task
        returned is claimed (its future is running). None when nothing is queued."""
        while self._turns:
            doc_id = self._turns.popleft()
            queue = self._queues.get(doc_id)
            if not queue:
                continue
            unit: list[Task] = []
            limit = chunk_size(len(queue), slots, self.max_chunk) if queue[0].chunkable else 1
            while queue and len(unit) < limit and (not unit or (queue[0].chunkable and queue[0].fn is unit[0].fn)):
                task = queue.popleft()
                if task.claim():
                    unit.append(task)
            if queue:
                self._turns.append(doc_id)
            if unit:
                return unit
        return None

    def requeue(self, tasks: list[Task]) -> list[Task]:
        """Put tasks that never ran back at the head of their documents' queues, in their order. Returns those
        that belong to no document (pool-internal tasks), which cannot be requeued: the caller fails them."""
        orphans = []
        for task in reversed(tasks):
            if task.doc_id is None:
                orphans.append(task)
                continue
            queue = self._queues.setdefault(task.doc_id, deque())
            if not queue and task.doc_id not in self._turns:
                self._turns.appendleft(task.doc_id)
            queue.appendleft(task)
        return orphans[::-1]
