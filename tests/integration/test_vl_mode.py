"""`vl` mode end to end: worker pool (CDLA layout, crops) -> the fake vLLM process reading crops with CPU PP-OCR
-> assembly. The fake answers like PaddleOCR-VL would (text, OTSL tables, LaTeX), so the output can be checked."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import httpx
import pytest
from rapidfuzz import fuzz

from app.errors import SidecarUnavailable
from app.runtime.document import convert_document
from app.pipeline.options import ConvertOptions
from app.observability.metrics import Metrics
from app.runtime.pool import PagePool
from app.services import Services
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
    assert info.value.kind == "unavailable" and info.value.retry_after_s
    assert client.breaker_open and time.monotonic() - started < 60


@pytest.mark.anyio
async def test_warmup_pass_runs_the_bundled_page_through_the_sidecar(fake_vllm, pool, make_settings):
    url = fake_vllm("--answers", "echo")
    settings = vl_settings(make_settings, url)
    client = VlmClient(settings)
    try:
        await client.wait_until_ready(30)
        services = Services(settings=settings, metrics=Metrics(), pool=await pool(settings),
                            vl=VlRecognizer(client, settings))
        seconds = await vl_pass(services)
    finally:
        await client.aclose()
    assert seconds > 0
    assert httpx.get(f"{url}/fake/stats").json()["answered"] >= 2


class TwoColumnLayout:
    """PP-DocLayoutV2-shaped regions (its labels in `kind`, its reading order) for pdfgen.two_column_pdf, placed on
    the page's own text lines: the first line of each column (one line that layout cut in two), then the last two
    lines of the left column's first paragraph (the last one shorter: left edges agree, right edges do not) with a
    picture in the gap beside the short line, the way a paragraph flows round an inset image."""

    merge_layout_blocks = True

    def __init__(self, boxes: list[tuple[str, str, tuple[float, float, float, float]]]) -> None:
        self.boxes = boxes  # (label, kind, box in points)

    def detect(self, image):
        from app.pipeline.primitives import Region

        scale = image.shape[1] / 612  # a US Letter page
        return [Region(label=label, bbox=tuple(v * scale for v in box), score=0.9, kind=kind, order=i)
                for i, (label, kind, box) in enumerate(self.boxes)]


class _Upright:
    """The orientation classifier's interface: the page lies upright (tests/unit/test_orientation.py runs the real
    one)."""

    def classify(self, image):
        return 0, 1.0


@pytest.mark.anyio
async def test_text_regions_merged_like_the_official_pipeline_are_one_request_and_read_whole(
        fake_vllm, make_settings, tmp_path):
    import pypdfium2 as pdfium

    from app.pipeline import page as page_mod
    from app.pipeline import textlayer
    from app.pipeline.pdfium_backend import open_page

    url = fake_vllm("--answers", "ocr")
    settings = vl_settings(make_settings, url)
    doc = pdfium.PdfDocument(pdfgen.two_column_pdf(tmp_path / "cols.pdf"))
    try:
        with open_page(doc, 0) as page:
            lines = textlayer.extract(page).lines
        first_row = sorted((ln for ln in lines if ln.text.startswith(("Apples grow", pdfgen.RIGHT_COLUMN[:12]))),
                           key=lambda ln: (ln.bbox[1], ln.bbox[0]))[:2]
        left_column = [ln for ln in lines if ln.bbox[0] < 100 and ln.bbox[1] > first_row[0].bbox[1]]
        end = next(i for i, ln in enumerate(left_column) if ln.bbox[2] < left_column[0].bbox[2] - 20)
        upper, lower = left_column[end - 1], left_column[end]  # a full line, then the paragraph's short last line
        picture = (lower.bbox[2] + 5, lower.bbox[1], upper.bbox[2], lower.bbox[3])
        layout = TwoColumnLayout([("text", "text", first_row[0].bbox), ("text", "text", first_row[1].bbox),
                                  ("text", "text", upper.bbox), ("figure", "image", picture),
                                  ("text", "text", lower.bbox)])
        analysis = page_mod.analyse_for_vl(doc, 0, ConvertOptions(mode="vl", dpi=144),
                                           SimpleNamespace(layout=layout, orientation=_Upright()),  # type: ignore[arg-type]
                                           settings)
    finally:
        doc.close()
    assert len(analysis.crops) == 2  # four text regions, two requests; the picture is never sent

    client = VlmClient(settings)
    try:
        await client.wait_until_ready(30)
        recognized = await VlRecognizer(client, settings).recognize(analysis.crops)
    finally:
        await client.aclose()
    assert httpx.get(f"{url}/fake/stats").json()["answered"] == 2
    result = page_mod.assemble_vl_page(analysis, recognized)
    text_blocks = [b for b in result.blocks if b.type == "text"]
    assert len(text_blocks) == 2
    # each answer holds both pieces of its group, read off the one stacked crop
    for block, pieces in zip(text_blocks, [first_row, [upper, lower]], strict=True):
        for piece in pieces:
            assert fuzz.partial_ratio(piece.text, block.text) > 85, (piece.text, block.text)
            assert block.bbox[0] <= piece.bbox[0] + 0.01 and block.bbox[2] >= piece.bbox[2] - 0.01
    assert [b.type for b in result.blocks].count("figure") == 1
