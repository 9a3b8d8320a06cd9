"""Concurrent uploads past the admission bound: some get 503 + Retry-After, the rest 200, and the server is
healthy afterwards."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests import pdfgen


@pytest.mark.slow
def test_concurrent_uploads_past_the_bound_get_503_with_retry_after_and_the_rest_succeed(serve, pdf_dir):
    server = serve(workers=1, max_pending_pages=2)
    pdf = pdfgen.text_pdf(pdf_dir / "three.pdf", pages=3)
    payload = pdf.read_bytes()

    def upload(_: int) -> httpx.Response:
        return httpx.post(f"{server.url}/ocr/pdf", params={"mode": "ocr", "dpi": "50"}, timeout=300,
                          files={"file": ("three.pdf", payload, "application/pdf")})

    with ThreadPoolExecutor(6) as executor:
        responses = list(executor.map(upload, range(6)))

    codes = sorted(r.status_code for r in responses)
    assert set(codes) <= {200, 503}, codes
    assert 200 in codes and 503 in codes, codes
    for rejected in (r for r in responses if r.status_code == 503):
        assert rejected.json()["error"]["type"] == "overloaded"
        assert int(rejected.headers["Retry-After"]) >= 1
    for accepted in (r for r in responses if r.status_code == 200):
        assert len(accepted.json()["pages"]) == 3

    assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200
    after = upload(0)
    assert after.status_code == 200, after.text  # the bound was released: an idle pool admits again
    metrics = httpx.get(f"{server.url}/metrics", timeout=5).text
    assert f'ocr_rejections_total{{reason="overloaded"}} {float(codes.count(503))}' in metrics
