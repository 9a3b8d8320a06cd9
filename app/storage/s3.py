"""Result upload to any S3-compatible store (Cloud.ru, MinIO, AWS) with the configured endpoint and keys.

Non-AWS endpoints get path-style addressing (`endpoint/bucket/key`): most of them do not serve
virtual-hosted bucket names. Keys are `S3_PREFIX + request_id + "/" + file name`. All calls are blocking
boto3 calls; async callers run them in a thread.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from app.settings import Settings
from app.pipeline.figures import IMAGES_DIRNAME
from app.storage.images import MEDIA_TYPES, image_files
from app.storage.local import RESULT_JSON, RESULT_MD

log = logging.getLogger(__name__)

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
    """Uploads one request's outputs; the boto3 client is built on first use (it takes ~100 ms)."""

    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        if not settings.s3_bucket:
            raise ValueError("S3Uploader needs S3_BUCKET")
        self.settings = settings
        self.bucket: str = settings.s3_bucket
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = make_s3_client(self.settings)
            return self._client

    def key_for(self, request_id: str, name: str) -> str:
        return f"{self.settings.s3_prefix}{request_id}/{name}"

    def check(self) -> None:
        """Raise if the bucket cannot be reached with these credentials (startup check for /health)."""
        self.client.head_bucket(Bucket=self.bucket)

    def upload_outputs(self, request_id: str, directory: Path) -> dict[str, Any]:
        keys = []
        for name in (RESULT_JSON, RESULT_MD):
            key = self.key_for(request_id, name)
            self.client.upload_file(
                str(Path(directory) / name), self.bucket, key, ExtraArgs={"ContentType": _CONTENT_TYPES[name]}
            )
            keys.append(key)
        for image in image_files(Path(directory) / IMAGES_DIRNAME):  # beside the result, same relative paths
            key = self.key_for(request_id, f"{IMAGES_DIRNAME}/{image.name}")
            media = MEDIA_TYPES.get(image.suffix.lower(), "application/octet-stream")
            self.client.upload_file(str(image), self.bucket, key, ExtraArgs={"ContentType": media})
            keys.append(key)
        log.info("uploaded %d objects to s3://%s/%s%s/", len(keys), self.bucket, self.settings.s3_prefix, request_id)
        return {"bucket": self.bucket, "keys": keys}

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True
