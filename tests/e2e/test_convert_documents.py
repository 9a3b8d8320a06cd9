"""Whole documents through the shared page pool, as the API and the jobs call it: ordering, progress callbacks,
cancellation, admission, typed page errors, and `vl` mode's seam with a fake recognizer (real layout model)."""

from __future__ import annotations

import asyncio
import dataclasses
import io

import pytest
from PIL import Image

from app.errors import Cancelled, InvalidParameter, Overloaded, PageTooLarge
from app.runtime.document import convert_document, convert_file_sync, merge_pages
from app.pipeline.options import ConvertOptions
from app.runtime.pool import PagePool
from app.pipeline.result import PageResult
from app.settings import Settings
from tests import pdfgen


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    # Engines load lazily in the workers: the text-mode tests never pay for a model, the vl test loads layout.
    settings = Settings(_env_file=None, output_dir=tmp_path_factory.mktemp("out"), max_pending_pages=20)
    pool = PagePool(settings, workers=2, preload_engines=False)
    pool.start()
    yield pool
    pool.close(grace_s=0)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return pdfgen.text_pdf(tmp_path_factory.mktemp("pdf") / "report.pdf", pages=4)


def _wait_idle(pool: PagePool) -> None:
    async def wait():
        for _ in range(500):
            stats = pool.stats()
            if stats.inflight_pages == 0 and stats.queued_pages == 0:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"pool still busy: {pool.stats()}")

    asyncio.run(wait())


def test_pages_come_back_in_order_with_a_callback_for_each(pool, report):
    seen: list[int] = []
    options = ConvertOptions(mode="text")
    result = asyncio.run(convert_document(pool, report, options, on_page=lambda p: seen.append(p.page)))
    assert sorted(seen) == [1, 2, 3, 4]
    assert [p.page for p in result.pages] == [1, 2, 3, 4]
    assert result.page_count == 4
    assert result.markdown == "\n\n".join(p.markdown.strip("\n") for p in result.pages) + "\n"
    assert result.markdown.count(f"# {pdfgen.TITLE}") == 1
    assert pdfgen.RUNNING_HEADER not in result.markdown
    assert result.timings["total"] > 0
    assert result.timings["textlayer"] == pytest.approx(sum(p.timings["textlayer"] for p in result.pages))
    assert pool.stats().pending_pages == 0


def test_a_long_text_document_travels_in_chunks_but_reports_every_page(pool, tmp_path):
    long = pdfgen.text_pdf(tmp_path / "long.pdf", pages=40)
    before = pool.stats().pages_done
    seen: list[int] = []
    options = ConvertOptions(mode="text")
    result = asyncio.run(convert_document(pool, long, options, on_page=lambda p: seen.append(p.page)))
    assert sorted(seen) == list(range(1, 41))  # one callback per page, chunks or not
    assert [p.page for p in result.pages] == list(range(1, 41))
    assert all(f"This is page {n}" in result.pages[n - 1].markdown for n in (1, 17, 40))
    stats = pool.stats()
    assert stats.pages_done - before == 40 and stats.pending_pages == 0


def test_selected_pages_and_async_callbacks(pool, report):
    seen: list[int] = []

    async def on_page(page: PageResult) -> None:
        await asyncio.sleep(0)
        seen.append(page.page)

    options = ConvertOptions(mode="text", pages="2,4")
    result = asyncio.run(convert_document(pool, report, options, on_page=on_page))
    assert [p.page for p in result.pages] == [2, 4] and sorted(seen) == [2, 4]
    assert "This is page 2" in result.markdown and "This is page 1" not in result.markdown


def test_cancelling_stops_the_document(pool, tmp_path):
    long = pdfgen.text_pdf(tmp_path / "long.pdf", pages=40)

    async def scenario():
        cancel = asyncio.Event()
        done: list[int] = []

        def on_page(page: PageResult) -> None:
            done.append(page.page)
            cancel.set()

        with pytest.raises(Cancelled):
            await convert_document(pool, long, ConvertOptions(mode="text"), on_page=on_page, cancel=cancel)
        return done

    done = asyncio.run(scenario())
    assert 1 <= len(done) < 40
    _wait_idle(pool)
    assert pool.stats().pending_pages == 0


def test_a_page_error_fails_the_document_with_its_typed_error(pool, tmp_path):
    with pytest.raises(PageTooLarge, match="page 1"):
        asyncio.run(convert_document(pool, pdfgen.huge_image_pdf(tmp_path / "img.pdf"), ConvertOptions(mode="text")))
    assert pool.stats().pending_pages == 0


def test_admission_is_taken_once_and_overload_is_refused(pool, report):
    async def scenario():
        # An admission made by the caller (as the API route does) is the one the conversion uses.
        admission = pool.admit(4)
        task = asyncio.create_task(convert_document(pool, report, ConvertOptions(mode="text"), admission=admission))
        await asyncio.sleep(0)
        assert pool.stats().pending_pages <= 4
        await task
        assert admission.pages_left == 0
        admission.release()
        # A busy pool refuses a document that would cross the bound (20 pages here).
        hog = pool.admit(18)
        try:
            with pytest.raises(Overloaded) as excinfo:
                await convert_document(pool, report, ConvertOptions(mode="text"))
            assert excinfo.value.retry_after_s >= 1
        finally:
            hog.release()

    asyncio.run(scenario())
    assert pool.stats().pending_pages == 0


def test_vl_mode_needs_a_recognizer(pool, report):
    with pytest.raises(InvalidParameter, match="sidecar"):
        asyncio.run(convert_document(pool, report, ConvertOptions(mode="vl")))


class FakeRecognizer:
    """Stands in for the VLM sidecar: every region it is sent is 'read' as a sentence naming its label."""

    def __init__(self) -> None:
        self.crops = []

    async def recognize(self, crops):
        self.crops.extend(crops)
        await asyncio.sleep(0)
        return [dataclasses.replace(c.region, text=f"Read region {c.region.label} {i}") for i, c in enumerate(crops)]


def test_vl_mode_sends_region_crops_to_the_recognizer_and_assembles_its_answers(pool, report):
    recognizer = FakeRecognizer()
    options = ConvertOptions(mode="vl", pages="1", dpi=100)
    result = asyncio.run(convert_document(pool, report, options, vl=recognizer))
    page = result.pages[0]
    assert page.source == "vl"
    assert recognizer.crops, "layout found no regions"
    assert all(c.page_index == 0 and c.region.label != "figure" for c in recognizer.crops)
    for crop in recognizer.crops:
        assert Image.open(io.BytesIO(crop.jpeg)).format == "JPEG"
    body = [c for c in recognizer.crops if c.region.label not in ("header", "footer", "page_number")]
    assert any(f"Read region {c.region.label}" in result.markdown for c in body)
    assert "vl" in page.timings and "layout" in page.timings


def test_merge_pages_orders_pages_and_sums_timings():
    pages = [
        PageResult(page=p, width=10, height=10, source="text", markdown=f"Page body {p}\n", blocks=[],
                   timings={"textlayer": 0.5})
        for p in (3, 1, 2)
    ]
    merged = merge_pages(pages, page_count=5)
    assert [p.page for p in merged.pages] == [1, 2, 3]
    assert merged.markdown == "Page body 1\n\nPage body 2\n\nPage body 3\n"
    assert merged.timings == {"textlayer": 1.5, "total": 1.5}
    assert merge_pages([], page_count=0).markdown == ""


def test_convert_file_sync_starts_and_stops_its_own_pool(tmp_path, make_settings):
    source = pdfgen.text_pdf(tmp_path / "doc.pdf", pages=2)
    pages: list[int] = []
    result = convert_file_sync(source, ConvertOptions(mode="text"), make_settings(workers=1),
                               progress=lambda p: pages.append(p.page))
    assert sorted(pages) == [1, 2] and result.page_count == 2
