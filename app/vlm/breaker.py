"""A circuit breaker for the sidecar: after a few consecutive failures stop sending work and fail fast.

Closed: requests flow; each failure counts, a success resets the count. Open: `allow()` is False, callers
raise SidecarUnavailable at once with `retry_after_s`; the VLM client's probe loop checks the sidecar's /health
and calls `record_success()` when it answers, which closes the breaker. There is no half-open trial request:
the health probe plays that role, so no user request is spent testing a dead sidecar.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    def __init__(self, *, failure_threshold: int, retry_after_s: float, clock: Callable[[], float] = time.monotonic):
        self.failure_threshold = failure_threshold
        self.retry_after_s = retry_after_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self.last_error: str | None = None
        self.times_opened = 0

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow(self) -> bool:
        return self._opened_at is None

    def open_for_s(self) -> float:
        return 0.0 if self._opened_at is None else self._clock() - self._opened_at

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self.last_error = None

    def record_failure(self, error: str, *, definitive: bool = False) -> bool:
        """Count one failure; `definitive` (connection refused, probe failed) opens at once.
        Returns True when this call opened the breaker."""
        self._failures += 1
        self.last_error = error
        if self._opened_at is None and (definitive or self._failures >= self.failure_threshold):
            self._opened_at = self._clock()
            self.times_opened += 1
            return True
        return False
