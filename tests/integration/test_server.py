"""The real server over HTTP: conversions, probes under load, and a graceful SIGTERM."""

from __future__ import annotations

import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests import pdfgen
from tests.server_process import wait_until

# The reference deployment's probe timeout (timeoutSeconds: 5): a probe slower than this counts as failed.
PROBE_TIMEOUT_S = 5.0


def metric_value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def post(server, path: Path, timeout: float = 300.0, headers: dict | None = None, **params) -> httpx.Response:
    with path.open("rb") as fh:
        return httpx.post(f"{server.url}/ocr/pdf", files={"file": (path.name, fh, "application/pdf")},
                          params=params, headers=headers, timeout=timeout)


def test_server_converts_to_json_and_markdown_and_reports_health(serve, pdf_dir):
    server = serve()
    pdf = pdfgen.text_pdf(pdf_dir / "report.pdf", pages=2)

    response = post(server, pdf, mode="text", headers={"X-Request-ID": "itest-1"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["request_id"] == "itest-1" == response.headers["X-Request-ID"]
    assert body["page_count"] == 2 and [p["page"] for p in body["pages"]] == [1, 2]
    assert pdfgen.TITLE in body["markdown"]
    assert body["outputs"]["id"] == "itest-1" and body["outputs"]["s3"] is None
    out = server.output_dir / "itest-1"
    assert json.loads((out / "result.json").read_text())["markdown"] == body["markdown"]
    assert (out / "result.md").read_text() == body["markdown"]

    markdown = post(server, pdf, mode="text", pages="2", headers={"Accept": "text/markdown"})
    assert markdown.status_code == 200
    assert markdown.headers["content-type"] == "text/markdown; charset=utf-8"
    assert pdfgen.TITLE not in markdown.text  # page 1 was not selected

    health = httpx.get(f"{server.url}/health", timeout=PROBE_TIMEOUT_S)
    assert health.status_code == 200
    assert health.json()["status"] == "healthy" and health.json()["models_present"] is True

    metrics = httpx.get(f"{server.url}/metrics", timeout=PROBE_TIMEOUT_S).text
    assert 'ocr_pages_total{source="text"} 3.0' in metrics
    assert 'http_requests_total{method="POST",route="/ocr/pdf",status="200"} 2.0' in metrics

    # One JSON access line per request, with its id; probes and scrapes stay out of the access log.
    access = [json.loads(line) for line in server.log().splitlines()
              if line.startswith("{") and json.loads(line).get("logger") == "app.access"]
    first = next(a for a in access if a["request_id"] == "itest-1")
    assert first["status"] == 200 and first["pages"] == 2 and first["duration_ms"] > 0
    assert not any(a["path"] in ("/readyz", "/health", "/metrics") for a in access)


def test_hostile_filename_never_reaches_the_filesystem(serve, pdf_dir):
    server = serve()
    pdf = pdfgen.text_pdf(pdf_dir / "x.pdf")
    with pdf.open("rb") as fh:
        response = httpx.post(f"{server.url}/ocr/pdf", params={"mode": "text"}, timeout=120,
                              files={"file": ("../../etc/passwd.pdf", fh, "application/pdf")})
    assert response.status_code == 200
    written = [p.name for p in server.workdir.rglob("*")]
    assert not any("passwd" in name for name in written)
    assert (server.output_dir / response.json()["outputs"]["id"] / "result.json").is_file()


@pytest.mark.slow
def test_probes_answer_fast_while_ocr_saturates_every_worker(serve, pdf_dir):
    server = serve(workers=2)
    pdf, _ = pdfgen.scanned_pdf(pdf_dir / "scan.pdf", dpi=100)
    with ThreadPoolExecutor(4) as executor:
        futures = [executor.submit(post, server, pdf, mode="ocr", dpi="100") for _ in range(4)]

        def busy() -> bool:
            metrics = httpx.get(f"{server.url}/metrics", timeout=PROBE_TIMEOUT_S).text
            return metric_value(metrics, "ocr_inflight_pages") >= 2  # every worker has a page

        wait_until(busy, 60, "both workers busy")
        probed = 0
        while not all(f.done() for f in futures) and probed < 20:
            for path in ("/livez", "/readyz"):
                # A probe that does not answer within the platform's timeout raises here.
                assert httpx.get(f"{server.url}{path}", timeout=PROBE_TIMEOUT_S).status_code == 200, path
            probed += 1
            time.sleep(0.2)
        assert probed > 0
        assert all(f.result().status_code == 200 for f in futures)


@pytest.mark.slow
def test_sigterm_finishes_in_flight_requests_then_exits_cleanly(serve, pdf_dir):
    server = serve(shutdown_grace_s="60")
    pdf = pdfgen.text_pdf(pdf_dir / "slow.pdf", pages=2)
    result: dict[str, httpx.Response] = {}
    request = threading.Thread(target=lambda: result.setdefault("r", post(server, pdf, mode="ocr", dpi="72")))
    request.start()

    def converting() -> bool:
        return "converting 2 of 2 pages" in server.log()

    wait_until(converting, 60, "the request to start converting")
    server.proc.send_signal(signal.SIGTERM)
    request.join(timeout=120)
    assert result["r"].status_code == 200, result["r"].text
    assert len(result["r"].json()["pages"]) == 2
    assert server.proc.wait(timeout=60) == 0
    log = server.log()
    assert log.index("readiness is now false") < log.index("shutdown complete")
    # The port is closed after the drain.
    try:
        httpx.get(f"{server.url}/livez", timeout=2)
        raise AssertionError("server still answering after exit")
    except httpx.TransportError:
        pass
