"""Bounds on uploads, so slow or stalled clients cannot hold sockets and temp files for as long as they like.

- `UploadSlots`: at most MAX_CONCURRENT_UPLOADS bodies stream at once; the next one is refused at once with
  503 + Retry-After, before a byte of it is stored.
- `paced`: the body must arrive within UPLOAD_DEADLINE_S, and, once UPLOAD_RATE_GRACE_S have passed, at no less
  than UPLOAD_MIN_KB_PER_S averaged since the start; otherwise 408. A client that stops sending is caught by
  the same rule: its next chunk has a deadline.

- `refuse_when_saturated`: while the pool's admission bound is reached, /ocr/pdf is refused (503 + Retry-After)
  before its body is read: under overload every rejected upload would otherwise still be streamed, parsed and
  inspected on the API process, the work that makes probes slow. `check_accepting` is that and readiness, for
  every door that converts while the caller waits (/ocr/pdf, /layout-parsing, the MCP tool).

The header deadline and size bounds sit one layer down, in the connection protocol (app/api/http_server.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from app.errors import AppError, NotReady, Overloaded, RequestTimeout
from app.settings import Settings

if TYPE_CHECKING:
    from app.lifecycle import Lifecycle
    from app.services import Services

_RETRY_AFTER_S = 5


class UploadSlots:
    """A non-blocking counter of uploads in progress (one event loop: no lock needed)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self.in_use >= self.limit:
            raise Overloaded(f"{self.limit} uploads are already in progress; retry shortly",
                             retry_after_s=_RETRY_AFTER_S)
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1


def refuse_when_saturated(pool: Any) -> None:
    """Raise Overloaded when the pool's pending pages are at its admission bound: then no document, however
    short, would be admitted (the exact per-document decision stays `pool.admit`, after intake)."""
    stats = pool.stats()
    if stats.pending_pages >= stats.pending_limit:
        raise Overloaded(f"the service is busy ({stats.pending_pages} pages pending, limit {stats.pending_limit});"
                         " retry shortly", retry_after_s=_RETRY_AFTER_S)


def check_accepting(lifecycle: Lifecycle, services: Services) -> None:
    """503 + Retry-After while the service is not ready or its pool is saturated: before any body is read, since
    under overload every rejected upload would otherwise still be stored and inspected."""
    accepting = lifecycle.accepting(services.pool)
    if not accepting.ok:
        services.metrics.rejections.labels("not_ready").inc()
        raise NotReady(f"not ready: {accepting.reason}", retry_after_s=5)
    try:
        refuse_when_saturated(services.pool)
    except AppError:
        services.metrics.rejections.labels("overloaded").inc()
        raise


async def paced(chunks: AsyncIterator[bytes], settings: Settings) -> AsyncIterator[bytes]:
    """Yield `chunks` while the upload keeps to its deadline and minimum rate; raise RequestTimeout otherwise."""
    start = time.monotonic()
    deadline = start + settings.upload_deadline_s
    rate = settings.upload_min_kb_per_s * 1024
    received = 0
    iterator = chunks.__aiter__()
    while True:
        # The next chunk is due when the average since the start would drop below `rate` without it.
        due = min(deadline, start + settings.upload_rate_grace_s + received / rate) if rate else deadline
        try:
            async with asyncio.timeout(max(0.0, due - time.monotonic())):
                chunk = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError:
            if due >= deadline:
                raise RequestTimeout(
                    f"upload not complete within UPLOAD_DEADLINE_S={settings.upload_deadline_s:g}") from None
            raise RequestTimeout(f"upload slower than UPLOAD_MIN_KB_PER_S={settings.upload_min_kb_per_s:g} "
                                 f"({received} bytes in {time.monotonic() - start:.0f}s)") from None
        received += len(chunk)
        yield chunk
