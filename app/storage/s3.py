"""Result upload to any S3-compatible store (Cloud.ru, MinIO, AWS) with the configured endpoint and keys.

Non-AWS endpoints get path-style addressing (`endpoint/bucket/key`): most of them do not serve
virtual-hosted bucket names. Keys are `S3_PREFIX + request_id + "/" + file name`. All calls are blocking
boto3 calls; async callers run them in a thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from app.settings import Settings
from app.storage.images import MEDIA_TYPES, image_files
from app.storage.layout import IMAGES_DIRNAME, RESULT_JSON, RESULT_MD

log = logging.getLogger(__name__)

S3Status = Literal["configured", "error"]

_CONTENT_TYPES = {RESULT_JSON: "application/json", RESULT_MD: "text/markdown; charset=utf-8"}


def make_s3_client(settings: Settings) -> Any:
    """A boto3 S3 client for the configured endpoint; credentials come only from Settings, never logged."""
    endpoint = settings.s3_endpoint
    path_style = bool(endpoint) and "amazonaws.com" not in (endpoint or "")
    config = Config(
        s3={"addressing_style": "path" if path_style else "auto"},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint or None,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key.get_secret_value() if settings.s3_access_key else None,
        aws_secret_access_key=settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None,
        config=config,
    )


class S3Uploader:
    """The process's one S3 client and its health: the sync route's results, jobs' inputs and results, their
    deletion, and batch's reads and writes all go through it. The boto3 client is built on first use (it takes
    ~100 ms) and shared (boto3 clients are thread-safe). Every call records its outcome, so `status` and
    `last_error` tell /health whether S3 works, as the VLM client does for the sidecar."""

    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        self.settings = settings
        self.bucket: str = settings.s3_bucket or ""  # batch names its buckets per call and may have none here
        self._client = client
        self._lock = threading.Lock()
        self.status: S3Status = "configured"
        self.last_error: str | None = None

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = make_s3_client(self.settings)
            return self._client

    # --- health ----------------------------------------------------------------------------------------------
    @contextmanager
    def _recorded(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            self.note_failure(exc)
            raise
        self.note_success()

    def note_failure(self, exc: BaseException) -> None:
        self.status, self.last_error = "error", f"{type(exc).__name__}: {exc}"
        log.warning("S3 storage error: %s", self.last_error)

    def note_success(self) -> None:
        self.status, self.last_error = "configured", None

    def check(self) -> None:
        """Raise if the bucket cannot be reached with these credentials (startup check for /health)."""
        with self._recorded():
            self.client.head_bucket(Bucket=self.bucket)

    def health(self) -> dict[str, Any]:
        return {"status": self.status, "bucket": self.bucket, "last_error": self.last_error}

    # --- objects ---------------------------------------------------------------------------------------------
    def key_for(self, request_id: str, name: str) -> str:
        return f"{self.settings.s3_prefix}{request_id}/{name}"

    def upload_file(self, key: str, path: Path, content_type: str, *, bucket: str | None = None) -> str:
        with self._recorded():
            self.client.upload_file(str(path), bucket or self.bucket, key, ExtraArgs={"ContentType": content_type})
        return key

    def put_bytes(self, key: str, body: bytes, content_type: str, *, bucket: str | None = None) -> str:
        with self._recorded():
            self.client.put_object(Bucket=bucket or self.bucket, Key=key, Body=body, ContentType=content_type)
        return key

    def download_file(self, key: str, path: Path, *, bucket: str | None = None) -> None:
        with self._recorded():
            self.client.download_file(bucket or self.bucket, key, str(path))

    def list_keys(self, prefix: str, *, bucket: str | None = None) -> Iterator[str]:
        """Every key under `prefix`, page by page."""
        with self._recorded():
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket or self.bucket, Prefix=prefix)
            for page in pages:
                for item in page.get("Contents", ()):
                    yield item["Key"]

    def upload_outputs(self, request_id: str, directory: Path) -> dict[str, Any]:
        keys = [
            self.upload_file(self.key_for(request_id, name), Path(directory) / name, _CONTENT_TYPES[name])
            for name in (RESULT_JSON, RESULT_MD)
        ]
        for image in image_files(Path(directory) / IMAGES_DIRNAME):  # beside the result, same relative paths
            media = MEDIA_TYPES.get(image.suffix.lower(), "application/octet-stream")
            keys.append(self.upload_file(self.key_for(request_id, f"{IMAGES_DIRNAME}/{image.name}"), image, media))
        log.info("uploaded %d objects to s3://%s/%s%s/", len(keys), self.bucket, self.settings.s3_prefix, request_id)
        return {"bucket": self.bucket, "keys": keys}

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix`; returns how many were removed."""
        removed = 0
        with self._recorded():
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                objects = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
                if objects:
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
                    removed += len(objects)
        return removed

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True
