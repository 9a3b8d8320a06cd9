"""`vl` mode end to end: worker pool (CDLA layout, crops) -> the fake vLLM process reading crops with CPU PP-OCR
-> assembly. The fake answers like PaddleOCR-VL would (text, OTSL tables, LaTeX), so the output can be checked."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
import pytest
from rapidfuzz import fuzz

from app.errors import SidecarUnavailable
from app.pipeline.document import convert_document
from app.pipeline.options import ConvertOptions
from app.pipeline.pool import PagePool
from app.vlm.client import VlmClient
from app.vlm.recognizer import VlRecognizer
from app.warmup import WARMUP_PDF, vl_pass
from tests import pdfgen
from tests.server_process import ROOT, free_port, wait_until


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def fake_vllm(tmp_path):
    """Start `python -m tests.fakes.fake_vllm` on a free port; killed at the end whatever happens."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*flags: str) -> str:
        port = free_port()
        log = open(tmp_path / f"fake-{port}.log", "wb")  # noqa: SIM115 - the process owns it until killed
        proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.fake_vllm", "--port", str(port), *flags],
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert proc.poll() is None, (tmp_path / f"fake-{port}.log").read_text()
            try:
                return httpx.get(f"{url}/health", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, 60, "the fake vLLM to listen")
        return url

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(10)


@pytest.fixture
async def pool(make_settings):
    pools: list[PagePool] = []

    async def make(settings) -> PagePool:
        p = PagePool(settings)
        p.start()
        pools.append(p)
        return p

    yield make
    for p in pools:
        await p.stop(5.0)


def vl_settings(make_settings, url: str, **over):
    return make_settings(use_vlm_api=True, vllm_url=f"{url}/v1", workers=1, vlm_probe_interval_s=0.2, **over)


@pytest.mark.anyio
async def test_vl_mode_reads_text_and_tables_through_the_sidecar(fake_vllm, pool, make_settings, tmp_path):
    url = fake_vllm("--answers", "ocr")
    settings = vl_settings(make_settings, url)
    client = VlmClient(settings)
    await client.wait_until_ready(30)
    pdf = pdfgen.table_pdf(tmp_path / "table.pdf")
    try:
        result = await convert_document(await pool(settings), pdf, ConvertOptions(mode="vl", dpi=150),
                                        vl=VlRecognizer(client, settings))
    finally:
        await client.aclose()
    page = result.pages[0]
    assert page.source == "vl" and "vl" in page.timings
    tables = [b for b in page.blocks if b.type == "table"]
    assert tables and tables[0].html and "<table>" in tables[0].html
    for row in pdfgen.TABLE_ROWS[1:]:
        assert row[0] in tables[0].html  # region names came back through OCR -> OTSL -> HTML
    assert fuzz.partial_ratio(pdfgen.TABLE_CAPTION, result.markdown) > 80, result.markdown
    stats = httpx.get(f"{url}/fake/stats").json()
    assert stats["answered"] == client.counters["requests"] >= 2


@pytest.mark.anyio
async def test_all_regions_of_all_pages_are_in_flight_together(fake_vllm, pool, make_settings, tmp_path):
    url = fake_vllm("--answers", "echo", "--latency-ms", "300")
    settings = vl_settings(make_settings, url)
    client = VlmClient(settings)
    pdf = pdfgen.text_pdf(tmp_path / "doc.pdf", pages=3)
    try:
        await client.wait_until_ready(30)
        result = await convert_document(await pool(settings), pdf, ConvertOptions(mode="vl", dpi=72),
                                        vl=VlRecognizer(client, settings))
    finally:
        await client.aclose()
    assert len(result.pages) == 3 and all(p.source == "vl" for p in result.pages)
    assert "region " in result.markdown  # echo answers were assembled into the Markdown
    stats = httpx.get(f"{url}/fake/stats").json()
    regions = stats["answered"]
    assert regions >= 6
    # requests overlap (not one region after another): far more than one at once
    assert stats["max_in_flight"] >= max(3, regions // 3)


@pytest.mark.anyio
async def test_a_dead_sidecar_fails_the_document_with_sidecar_unavailable(pool, make_settings, tmp_path):
    settings = make_settings(use_vlm_api=True, vllm_url=f"http://127.0.0.1:{free_port()}/v1", workers=1,
                             vlm_retries=1)
    client = VlmClient(settings)
    client.status = "available"
    started = time.monotonic()
    try:
        with pytest.raises(SidecarUnavailable) as info:
            await convert_document(await pool(settings), WARMUP_PDF, ConvertOptions(mode="vl", dpi=72),
                                   vl=VlRecognizer(client, settings))
    finally:
        await client.aclose()
    assert info.value.status == 503 and info.value.retry_after_s
    assert client.breaker_open and time.monotonic() - started < 60


@pytest.mark.anyio
async def test_warmup_pass_runs_the_bundled_page_through_the_sidecar(fake_vllm, pool, make_settings):
    url = fake_vllm("--answers", "echo")
    settings = vl_settings(make_settings, url)
    client = VlmClient(settings)
    try:
        await client.wait_until_ready(30)
        seconds = await vl_pass(await pool(settings), VlRecognizer(client, settings), settings)
    finally:
        await client.aclose()
    assert seconds > 0
    assert httpx.get(f"{url}/fake/stats").json()["answered"] >= 2
