"""No URL query and no S3 key id in the log, at any level: the entrypoint's logging (configure_logging) with
LOG_LEVEL=DEBUG, real httpx and boto3 calls."""

from __future__ import annotations

import io
import logging

import boto3
import httpx
import pytest
from botocore.config import Config

from app.observability.logging import configure_logging
from app.settings import Settings

KEY_ID = "AKIAZZZTESTKEYID0001"


@pytest.fixture
def debug_logging():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging(Settings(_env_file=None, log_level="DEBUG", log_json=False))  # type: ignore[call-arg]
    stream = io.StringIO()
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
        for name in ("botocore", "boto3", "s3transfer", "urllib3", "httpcore"):
            logging.getLogger(name).setLevel(logging.NOTSET)


def test_http_client_lines_keep_the_path_but_not_the_query(debug_logging):
    transport = httpx.MockTransport(lambda request: httpx.Response(204))
    with httpx.Client(transport=transport) as client:
        client.post("http://hooks.example/done?token=s3cr3t-token&x=1")
    err = debug_logging.getvalue()
    assert "http://hooks.example/done?<redacted>" in err
    assert "s3cr3t-token" not in err


def test_s3_client_debug_lines_never_show_the_key_id(debug_logging):
    client = boto3.session.Session().client(
        "s3", endpoint_url="http://127.0.0.1:9", region_name="us-east-1", aws_access_key_id=KEY_ID,
        aws_secret_access_key="secret-key-value", config=Config(retries={"max_attempts": 1}, connect_timeout=0.5))
    with pytest.raises(Exception):
        client.head_bucket(Bucket="b")
    logging.getLogger("app.test").debug("signing with Credential=%s/20260101/us-east-1/s3", KEY_ID)
    err = debug_logging.getvalue()
    assert KEY_ID not in err and "secret-key-value" not in err
    assert "Credential=<redacted>" in err  # our own lines are redacted too, not only silenced
