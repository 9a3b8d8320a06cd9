"""A request's outputs (POST /ocr/pdf, PaddleX's /layout-parsing, the MCP tool): the crops staged under
OUTPUT_DIR/.images/, the result written to OUTPUT_DIR/<request id>/ with the crops beside it (a full disk costs the
copy, not the answer: storage/results.py), then uploaded to S3 (a failure is reported, the local result kept)."""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.observability.metrics import Metrics
from app.pipeline.result import DocumentResult
from app.settings import Settings
from app.storage import images as image_store
from app.storage.results import StoredResult, store_result
from app.storage.s3 import S3Uploader

log = logging.getLogger(__name__)


@dataclass
class Converted:
    result: DocumentResult
    stored: StoredResult
    s3: dict[str, Any] | None


class RequestOutputs:
    """`Outputs` of a call someone waits on (see the module docstring); `write` returns `Converted`."""

    def __init__(self, settings: Settings, request_id: str, s3: S3Uploader | None, metrics: Metrics) -> None:
        self.settings = settings
        self.request_id = request_id
        self.s3 = s3
        self.metrics = metrics
        self._staging: Path | None = None

    def images_dir(self) -> Path:
        self._staging = image_store.staging_dir(self.settings, self.request_id)
        return self._staging

    async def write(self, result: DocumentResult) -> Converted:
        stored = await store_result(self.settings, self.request_id, result, images=self._staging)
        s3_info = None
        if stored.directory is not None:
            s3_info = await self._upload_to_s3(stored.directory)
        return Converted(result, stored, s3_info)

    def discard(self) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)

    async def _upload_to_s3(self, out_dir: Path) -> dict[str, Any] | None:
        s3 = self.s3
        if s3 is None:
            return None
        try:
            info = await asyncio.to_thread(s3.upload_outputs, out_dir.name, out_dir)
        except Exception as exc:  # the local result is already written: report the failure, never lose the result
            log.warning("S3 upload failed: %s", exc)  # the uploader recorded it for /health
            self.metrics.s3_uploads.labels("error").inc()
            return {"bucket": s3.bucket, "keys": [], "error": f"{type(exc).__name__}: {exc}"}
        self.metrics.s3_uploads.labels("ok").inc()
        return info
