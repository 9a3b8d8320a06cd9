"""The synchronous route's copy of its result on local disk, and what the response says about it.

The caller already has the result in hand, so a disk that is full (or below MIN_FREE_DISK_MB) costs only the
copy: the conversion is answered all the same, and `outputs` says the copy is missing and why.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from app.errors import InsufficientStorage
from app.pipeline.result import DocumentResult
from app.settings import Settings
from app.storage.images import place
from app.storage.local import local_outputs, write_outputs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredResult:
    directory: Path | None  # where it went (for the S3 upload); None when the disk copy failed
    outputs: dict[str, Any]  # the response's `outputs`, less `s3`: ids and relative paths only


async def store_result(settings: Settings, request_id: str, result: DocumentResult,
                       images: Path | None = None) -> StoredResult:
    """Write the result under OUTPUT_DIR (in a thread) and move the crops staged in `images` beside it, so that
    `outputs.files` lists everything written; a full disk is reported in `outputs.error`, not raised."""
    try:
        out_dir = await asyncio.to_thread(
            partial(write_outputs, fresh_dir=True, settings=settings), settings.output_dir, request_id, result
        )
    except InsufficientStorage as exc:
        log.warning("result not stored on disk: %s", exc.message)
        return StoredResult(None, {"id": None, "files": [], "error": {"type": exc.type, "message": exc.message}})
    if images is not None:
        await asyncio.to_thread(place, images, out_dir)
    outputs = await asyncio.to_thread(local_outputs, out_dir)
    return StoredResult(out_dir, {**outputs, "error": None})
