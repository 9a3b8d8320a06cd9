"""Results land in S3 (a moto server started by the suite) under S3_PREFIX + request_id + "/"."""

from __future__ import annotations

import boto3
import httpx
import pytest

from tests import pdfgen

BUCKET = "ocr-results"
KEYS = {"CLOUDRU_S3_ACCESS_KEY": "moto-access-7c1e", "CLOUDRU_S3_SECRET_KEY": "moto-secret-9f3a"}


@pytest.fixture
def bucket(moto_s3):
    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    s3.create_bucket(Bucket=BUCKET)
    return s3


def test_results_are_uploaded_to_s3_with_the_reference_env_names(serve, moto_s3, bucket, pdf_dir):
    server = serve(cloudru_s3_endpoint=moto_s3, cloudru_s3_bucket=BUCKET, cloudru_s3_prefix="runs/", **KEYS)
    pdf = pdfgen.text_pdf(pdf_dir / "doc.pdf")
    with pdf.open("rb") as fh:
        response = httpx.post(f"{server.url}/ocr/pdf", params={"mode": "text"}, headers={"X-Request-ID": "s3-1"},
                              files={"file": ("doc.pdf", fh, "application/pdf")}, timeout=120)
    assert response.status_code == 200, response.text
    s3_info = response.json()["outputs"]["s3"]
    assert s3_info == {"bucket": BUCKET, "keys": ["runs/s3-1/result.json", "runs/s3-1/result.md"]}
    stored = bucket.get_object(Bucket=BUCKET, Key="runs/s3-1/result.md")
    assert stored["Body"].read().decode() == response.json()["markdown"]
    assert stored["ContentType"].startswith("text/markdown")
    health = httpx.get(f"{server.url}/health", timeout=5).json()
    assert health["s3_storage"] == "configured" and health["status"] == "healthy"
    assert "moto-secret-9f3a" not in server.log()  # credentials never reach the log


def test_s3_failure_keeps_the_local_result_and_degrades_health(serve, moto_s3, bucket, pdf_dir):
    server = serve(s3_endpoint=moto_s3, s3_bucket="no-such-bucket", **KEYS)
    pdf = pdfgen.text_pdf(pdf_dir / "doc.pdf")
    with pdf.open("rb") as fh:
        response = httpx.post(f"{server.url}/ocr/pdf", params={"mode": "text"},
                              files={"file": ("doc.pdf", fh, "application/pdf")}, timeout=120)
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    assert outputs["s3"]["bucket"] == "no-such-bucket" and outputs["s3"]["keys"] == []
    assert "NoSuchBucket" in outputs["s3"]["error"]
    assert (server.output_dir / response.json()["request_id"] / "result.md").read_text() == response.json()["markdown"]
    health = httpx.get(f"{server.url}/health", timeout=5)
    assert health.status_code == 200  # still ready: results are kept locally
    assert health.json()["s3_storage"] == "error" and health.json()["status"] == "degraded"
