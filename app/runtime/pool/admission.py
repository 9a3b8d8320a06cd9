"""Admission: how many pages the service has accepted and not finished, and the 503 beyond the bound.

`AdmissionControl.admit(n_pages)` raises `Overloaded` (503 + Retry-After) when the pages accepted but not finished
would exceed the limit; an idle service always admits one document whatever its size. The Retry-After estimate
comes from a running mean of a page's time in a worker (`record_page_seconds`). Pure bookkeeping: no processes,
no I/O; thread-safe (the API's event loop admits while the pool's dispatcher thread records page times).
"""

from __future__ import annotations

import math
import threading

from app.errors import Overloaded

MAX_RETRY_AFTER_S = 600


class AdmissionControl:
    """The pending-page counter behind `PagePool.admit` (see the module docstring)."""

    def __init__(self, limit: int, workers: int) -> None:
        self.limit = limit
        self._workers = max(1, workers)
        self._lock = threading.Lock()
        self._pending = 0
        self._page_seconds = 1.0  # running mean of a page's time in a worker

    @property
    def pending(self) -> int:
        return self._pending

    def admit(self, n_pages: int) -> Admission:
        """Reserve `n_pages` pending pages or raise Overloaded with a Retry-After estimate."""
        with self._lock:
            if self._pending > 0 and self._pending + n_pages > self.limit:
                excess = self._pending + n_pages - self.limit
                retry = min(MAX_RETRY_AFTER_S, max(1, math.ceil(excess * self._page_seconds / self._workers)))
                raise Overloaded(
                    f"the service is busy ({self._pending} pages pending, limit {self.limit}); retry in {retry}s",
                    retry_after_s=float(retry),
                )
            self._pending += n_pages
            return Admission(self, n_pages)

    def record_page_seconds(self, seconds: float) -> None:
        with self._lock:
            self._page_seconds = 0.8 * self._page_seconds + 0.2 * seconds

    def _give_back(self, count: int) -> None:
        with self._lock:
            self._pending -= count


class Admission:
    """A reservation of `pages` pending pages. Each finished page gives one back (`page_done`); `release()` (or
    leaving the `with` block) gives back the rest. Releasing twice is harmless."""

    def __init__(self, control: AdmissionControl | None, pages: int) -> None:
        self._control = control
        self._lock = threading.Lock()
        self._left = pages
        self.pages = pages

    @classmethod
    def unmetered(cls) -> Admission:
        """A reservation of nothing, for a conversion that waits in a queue of its own (a job: its durable queue
        and the running-jobs cap bound it). Admission exists so a request someone waits on gets a quick 503 instead
        of an endless wait; counting jobs' pages would make one big job refuse small jobs and requests alike, the
        starvation the pool's round-robin dispatch is there to prevent."""
        return cls(None, 0)

    @property
    def pages_left(self) -> int:
        return self._left

    def page_done(self, count: int = 1) -> None:
        with self._lock:
            count = min(count, self._left)
            self._left -= count
        if count and self._control is not None:
            self._control._give_back(count)

    def release(self) -> None:
        self.page_done(self._left)

    def __enter__(self) -> Admission:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
