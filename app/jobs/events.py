"""In-process fan-out of job progress to Server-Sent-Events listeners.

The manager publishes one event per finished page and one final status event; each `GET /jobs/{id}/events`
connection holds a queue. Events are hints for live progress, the store stays the truth: a listener that
connects late first gets the job's current state from the store, then the events that follow.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

from app.jobs.store import FINISHED, Job

log = logging.getLogger(__name__)

# A listener this far behind loses page events (it still gets the final one): progress is advisory.
_QUEUE_LIMIT = 1024


@dataclass(frozen=True)
class JobEvent:
    """`page`: data {job_id, page, pages_done, pages_total}. `status`: data {status}, and `job` the job as it
    stands after the change (the API renders it as its public view)."""

    kind: Literal["page", "status"]
    data: dict[str, Any]
    job: Job | None = None

    @classmethod
    def status_of(cls, job: Job) -> JobEvent:
        return cls("status", {"status": job.status}, job)

    @property
    def final(self) -> bool:
        return self.kind == "status" and self.data.get("status") in FINISHED


class JobEvents:
    def __init__(self) -> None:
        self._listeners: dict[str, set[asyncio.Queue[JobEvent]]] = defaultdict(set)

    @asynccontextmanager
    async def subscribe(self, job_id: str) -> AsyncIterator[asyncio.Queue[JobEvent]]:
        queue: asyncio.Queue[JobEvent] = asyncio.Queue(maxsize=_QUEUE_LIMIT)
        self._listeners[job_id].add(queue)
        try:
            yield queue
        finally:
            listeners = self._listeners.get(job_id)
            if listeners is not None:
                listeners.discard(queue)
                if not listeners:
                    del self._listeners[job_id]

    def publish(self, job_id: str, event: JobEvent) -> None:
        for queue in list(self._listeners.get(job_id, ())):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                if not event.final:
                    continue
                # The final event must get through: drop the backlog of page events to make room.
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(event)

    def listeners(self, job_id: str) -> int:
        return len(self._listeners.get(job_id, ()))
