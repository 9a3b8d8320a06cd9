"""In-process API fixtures: `create_app(Settings(...))` driven by httpx over ASGITransport, lifespan included.

`running(app)` enters the app's real lifespan (so the startup task, heartbeat and shutdown all run) and yields
a client. Probe-state tests swap `app.state.services.pool` for `GatedPool` before entering the lifespan, to hold the
service in "starting" or make its warm-up fail on purpose; every conversion test uses the real PagePool.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.errors import Overloaded


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def running(app: FastAPI, **client_kwargs: object) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", **client_kwargs) as client:
            yield client


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    """Poll `predicate` until it is true; fail the test with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


async def wait_ready(client: httpx.AsyncClient, timeout_s: float = 180.0) -> None:
    async def ready() -> bool:
        response = await client.get("/readyz")
        if response.status_code == 503 and "startup failed" in response.text:
            raise AssertionError(f"startup failed: {response.text}")
        return response.status_code == 200

    await wait_for(ready, timeout_s, "/readyz to turn 200")


@dataclass
class Stats:
    workers: int = 1
    alive_workers: int = 1
    inflight_pages: int = 0
    queued_pages: int = 0
    pending_pages: int = 0
    pending_limit: int = 64
    pages_done: int = 0


class GatedPool:
    """A stand-in PagePool for lifecycle tests: warm-up waits for `gate`, or raises `fail_with`."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.fail_with: BaseException | None = None
        self.is_healthy = True
        self.admit_error: BaseException | None = None
        self.started = self.stopped = False
        self.stop_grace: float | None = None
        self.stats_value = Stats()

    def start(self) -> None:
        self.started = True

    async def warmup(self) -> float:
        await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return 0.01

    async def stop(self, grace_s: float) -> None:
        self.stopped, self.stop_grace = True, grace_s

    def healthy(self) -> bool:
        return self.is_healthy

    def admit(self, n_pages: int) -> object:
        if self.admit_error is not None:
            raise self.admit_error
        raise Overloaded("the stand-in pool converts nothing", retry_after_s=7)

    def stats(self) -> Stats:
        return self.stats_value


@pytest.fixture
def pdfs(tmp_path: Path) -> dict[str, Path]:
    """Small generated PDFs (tests/pdfgen.py) keyed by what they are."""
    from tests import pdfgen

    d = tmp_path / "pdfs"
    d.mkdir()
    return {
        "text1": pdfgen.text_pdf(d / "text1.pdf", pages=1),
        "text3": pdfgen.text_pdf(d / "text3.pdf", pages=3),
        "encrypted": pdfgen.encrypted_pdf(d / "enc.pdf"),
        "zero": pdfgen.zero_page_pdf(d / "zero.pdf"),
        "random": pdfgen.random_bytes(d / "random.pdf"),
        "corrupt": pdfgen.random_bytes(d / "corrupt.pdf", pdf_header=True),
    }
