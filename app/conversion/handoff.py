"""What lets a synchronous call hand its running conversion to a job without starting over (the 202): the pages
that finish before a job adopts the conversion are buffered, then given to the job's checkpoint in order, so the
adopted conversion is as durable as a submitted one. The job side (storing the job, adopting the input and the
crops, watching the task) is app/jobs/handoff.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from app.pipeline.result import PageResult


class JobHandoff:
    """The running conversion's cancel event, its crops directory and its pages, for a job to adopt."""

    def __init__(self) -> None:
        self.cancel = asyncio.Event()
        self.images_dir: Path | None = None  # where the conversion writes its crops (storage/images.py)
        self._buffer: list[PageResult] = []
        self._sink: Callable[[PageResult], Awaitable[None]] | None = None

    async def on_page(self, page: PageResult) -> None:
        if self._sink is None:
            self._buffer.append(page)
        else:
            await self._sink(page)

    async def attach(self, sink: Callable[[PageResult], Awaitable[None]]) -> None:
        self._sink = sink
        while self._buffer:
            await sink(self._buffer.pop(0))
