"""`vl` mode's RegionRecognizer: every region crop becomes one chat completion, all of them in flight together.

The caller (document.py) hands over the crops of every page at once; the VlmClient's process-wide semaphore is
the only bound, so the sidecar's scheduler sees as many sequences as `vlm_max_concurrency` allows and can batch
them. Regions that the official pipeline never sends (figures and header/footer images; charts unless enabled)
come back unchanged. As in the official pipeline, a formula crop is trimmed to its ink first (the VLM sees the
formula, not the page margin around it), and a formula number's answer loses its `$` signs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

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

    def __init__(self, client: VlmClient, settings: Settings, sampling: Mapping[str, Any] | None = None) -> None:
        self.client = client
        self.settings = settings
        self.sampling = dict(sampling or {})  # chat-request fields one request sets (temperature, top_p...)

    def with_sampling(self, sampling: Mapping[str, Any]) -> VlRecognizer:
        """The same recognizer whose chat requests carry `sampling` (a compatibility API's per-request knobs)."""
        return VlRecognizer(self.client, self.settings, {**self.sampling, **sampling})

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
        task = task_for(region.label, chart_recognition=self.settings.vlm_chart_recognition, kind=region.kind)
        if task is None:
            return region
        jpeg = crop.jpeg
        if task == "formula":
            jpeg = await asyncio.to_thread(trim_to_ink, jpeg)
        body = chat_request(
            model=self.client.model,
            jpeg=jpeg,
            task=task,
            max_completion_tokens=self.settings.vlm_max_completion_tokens,
        )
        body.update(self.sampling)
        raw = await self.client.chat(body)
        text, html = postprocess(raw, task)
        if region.kind == "formula_number":
            text = text.replace("$", "").strip()  # "(3)", not "$(3)$"
        if task == "formula" and text and "$" not in text:
            text = f"$$\n{text}\n$$"  # bare LaTeX still renders as display math in the page Markdown
        return dataclasses.replace(region, text=text, html=html)


# A pixel darker than this, after stretching the crop's gray levels to 0..255, is ink.
INK_LEVEL = 200


def trim_to_ink(jpeg: bytes) -> bytes:
    """The crop cut down to the bounding box of its ink (contrast-stretched gray below INK_LEVEL), re-encoded; the
    crop itself when it is blank, unreadable, or the ink box would be 2 pixels or less on a side."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(jpeg))
        image.load()
    except (UnidentifiedImageError, OSError):
        return jpeg
    gray = np.asarray(image.convert("L"), dtype=np.float32)
    low, high = float(gray.min()), float(gray.max())
    if high <= low:
        return jpeg
    ink = (gray - low) * (255.0 / (high - low)) < INK_LEVEL
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        return jpeg
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    if y1 - y0 <= 2 or x1 - x0 <= 2 or (x0, y0, x1, y1) == (0, 0, image.width, image.height):
        return jpeg
    out = io.BytesIO()
    image.convert("RGB").crop((x0, y0, x1, y1)).save(out, "JPEG", quality=95)
    return out.getvalue()
