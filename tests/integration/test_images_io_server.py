"""The real server over HTTP: figure crops uploaded to S3 beside the result, an image upload answered as a zip,
and a job's webhook reaching a local receiver, signed."""

from __future__ import annotations

import io
import json
import zipfile

import httpx
from rapidfuzz import fuzz

from app.jobs.callbacks import sign
from tests import pdfgen
from tests.integration.test_s3 import BUCKET, KEYS, bucket  # noqa: F401 - the fixture
from tests.webhook_receiver import start_receiver

SECRET = "server-webhook-secret"


def test_images_s3_zip_and_webhook_on_the_real_server(serve, moto_s3, bucket, pdf_dir):  # noqa: F811
    receiver = start_receiver()
    try:
        server = serve(cloudru_s3_endpoint=moto_s3, cloudru_s3_bucket=BUCKET, cloudru_s3_prefix="imgs/",
                       callback_allowed_hosts=f"127.0.0.1:{receiver.port}", callback_secret=SECRET,
                       workers=1, **KEYS)
        figures = pdfgen.figure_pdf(pdf_dir / "figures.pdf", pages=2)
        with figures.open("rb") as fh:
            response = httpx.post(f"{server.url}/ocr/pdf", headers={"X-Request-ID": "img-1"},
                                  files={"file": ("figures.pdf", fh, "application/pdf")}, timeout=300)
        assert response.status_code == 200, response.text
        keys = response.json()["outputs"]["s3"]["keys"]
        assert keys == ["imgs/img-1/result.json", "imgs/img-1/result.md", "imgs/img-1/images/p1-fig1.png",
                        "imgs/img-1/images/p2-fig1.jpg"]
        stored = bucket.get_object(Bucket=BUCKET, Key="imgs/img-1/images/p2-fig1.jpg")
        assert stored["ContentType"] == "image/jpeg"
        assert stored["Body"].read() == (server.output_dir / "img-1" / "images" / "p2-fig1.jpg").read_bytes()

        scan = io.BytesIO()
        pdfgen.scan_image(dpi=200).save(scan, format="JPEG", quality=92, dpi=(200, 200))
        bundle = httpx.post(f"{server.url}/ocr/pdf", headers={"Accept": "application/zip"},
                            files={"file": ("scan.pdf", scan.getvalue(), "application/pdf")}, timeout=300)
        assert bundle.status_code == 200, bundle.text
        archive = zipfile.ZipFile(io.BytesIO(bundle.content))
        assert {"result.md", "result.json"} <= set(archive.namelist())
        assert fuzz.partial_ratio(pdfgen.SCAN_LINES[0], archive.read("result.md").decode()) > 85

        text = pdfgen.text_pdf(pdf_dir / "text.pdf")
        with text.open("rb") as fh:
            job = httpx.post(f"{server.url}/jobs", data={"mode": "text", "callback_url": receiver.url("/done")},
                             files={"file": ("text.pdf", fh, "application/pdf")}, timeout=60)
        assert job.status_code == 202, job.text
        (delivery,) = receiver.wait_for(1, timeout_s=60)
        assert delivery.headers["x-signature-256"] == sign(delivery.body, SECRET)
        assert json.loads(delivery.body)["status"] == "succeeded"
        assert SECRET not in server.log()
    finally:
        receiver.close()
