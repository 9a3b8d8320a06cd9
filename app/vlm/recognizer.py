"""`vl` mode's RegionRecognizer: every region crop becomes one chat completion, all of them in flight together.

The caller (document.py) hands over the crops of every page at once; the VlmClient's process-wide semaphore is
the only bound, so the sidecar's scheduler sees as many sequences as `vlm_max_concurrency` allows and can batch
them. Regions that the official pipeline never sends (figures; charts unless enabled) come back unchanged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from app.pipeline.primitives import Region
from app.settings import Settings
from app.vlm.client import VlmClient
from app.vlm.postprocess import postprocess
from app.vlm.prompts import chat_request, task_for

if TYPE_CHECKING:  # page.py is the pipeline's; only its shape matters here
    from app.pipeline.page import RegionCrop

log = logging.getLogger(__name__)


class VlRecognizer:
    """Implements `RegionRecognizer.recognize(crops) -> regions` (same order) over the VLM sidecar."""

    def __init__(self, client: VlmClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    async def recognize(self, crops: Sequence[RegionCrop]) -> list[Region]:
        tasks = [asyncio.ensure_future(self._one(crop)) for crop in crops]
        if not tasks:
            return []
        try:
            # First failure wins: the others are cancelled so a dead sidecar does not keep 200 requests queued.
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            return [task.result() for task in tasks]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, crop: Any) -> Region:
        region: Region = crop.region
        task = task_for(region.label, chart_recognition=self.settings.vlm_chart_recognition)
        if task is None:
            return region
        body = chat_request(
            model=self.client.model,
            jpeg=crop.jpeg,
            task=task,
            max_completion_tokens=self.settings.vlm_max_completion_tokens,
        )
        raw = await self.client.chat(body)
        text, html = postprocess(raw, task)
        if task == "formula" and text and "$" not in text:
            text = f"$$\n{text}\n$$"  # bare LaTeX still renders as display math in the page Markdown
        return dataclasses.replace(region, text=text, html=html)
