"""One page in-process with fake engines: which source each mode reads, what gets rendered at which DPI, pixel
boxes converted to points, `text` mode touching no engine, and the crops `vl` mode sends."""

from __future__ import annotations

import io
import pickle
from dataclasses import replace

import pypdfium2 as pdfium
import pytest
from PIL import Image

from app.errors import PageTooLarge
from app.pipeline import page as page_mod
from app.pipeline.options import ConvertOptions
from app.pipeline.primitives import Region, TextLine
from app.pipeline.recognize.routing import ScriptRouter
from tests import pdfgen


class FakeLayout:
    """Finds one title region at the top of whatever image it gets (pixel boxes), remembering the image sizes."""

    merge_layout_blocks = False

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def detect(self, image):
        self.shapes.append(image.shape)
        height, width = image.shape[:2]
        return [
            Region(label="title", bbox=(0.05 * width, 0.05 * height, 0.95 * width, 0.15 * height), score=0.9),
            Region(label="figure", bbox=(0.1 * width, 0.5 * height, 0.9 * width, 0.9 * height), score=0.8),
        ]


class FakeOcr:
    name = "fake"

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []
        self.dpis: list[float | None] = []

    def recognize(self, image, *, dpi=None):
        self.shapes.append(image.shape)
        self.dpis.append(dpi)
        height = image.shape[0]
        return [
            TextLine(text="Recognised heading", bbox=(144.0, 0.08 * height, 720.0, 0.12 * height), score=0.99),
            TextLine(text="A line outside every region", bbox=(144.0, 0.30 * height, 720.0, 0.33 * height)),
        ]


class UprightPages:
    """The orientation classifier's interface: every page lies upright (test_orientation.py runs the real one)."""

    def classify(self, image):
        return 0, 1.0


class FakeEngines:
    def __init__(self) -> None:
        self.layout = FakeLayout()
        self.ocr = FakeOcr()
        self.orientation = UprightPages()
        self.reader = ScriptRouter(self.ocr, None)  # no tesseract: every page goes to the (fake) OCR engine


class NoEngines:
    """`text` mode must not touch an engine."""

    @property
    def layout(self):
        raise AssertionError("text mode used the layout engine")

    @property
    def ocr(self):
        raise AssertionError("text mode used the OCR engine")

    @property
    def reader(self):
        raise AssertionError("text mode used the OCR engine")


@pytest.fixture
def open_doc():
    docs = []

    def open_(path):
        doc = pdfium.PdfDocument(path)
        docs.append(doc)
        return doc

    yield open_
    for doc in docs:
        doc.close()


def test_text_mode_reads_the_text_layer_without_rendering_or_models(tmp_path, open_doc, make_settings):
    doc = open_doc(pdfgen.text_pdf(tmp_path / "doc.pdf"))
    result = page_mod.process_page(doc, 0, ConvertOptions(mode="text"), NoEngines(), make_settings())
    assert result.source == "text" and result.page == 1
    assert result.markdown.startswith(f"# {pdfgen.TITLE}")
    assert set(result.timings) == {"textlayer", "assemble"}


def test_auto_mode_uses_the_text_layer_and_runs_layout_on_a_small_render(tmp_path, open_doc, make_settings):
    engines = FakeEngines()
    doc = open_doc(pdfgen.text_pdf(tmp_path / "doc.pdf"))
    result = page_mod.process_page(doc, 0, ConvertOptions(mode="auto", dpi=300), engines, make_settings())
    assert result.source == "text"
    assert engines.layout.shapes == [(round(792 * page_mod.LAYOUT_DPI / 72), round(612 * page_mod.LAYOUT_DPI / 72), 3)]
    assert engines.ocr.shapes == []  # the text layer is trusted: no OCR
    assert pdfgen.PARAGRAPHS[0] in result.markdown
    assert {"textlayer", "render", "layout", "assemble"} <= set(result.timings)


def test_auto_mode_reads_a_scanned_page_with_ocr_at_the_requested_dpi(tmp_path, open_doc, make_settings):
    engines = FakeEngines()
    path, _ = pdfgen.scanned_pdf(tmp_path / "scan.pdf")
    doc = open_doc(path)
    result = page_mod.process_page(doc, 0, ConvertOptions(mode="auto", dpi=144), engines, make_settings())
    assert result.source == "ocr"
    assert engines.ocr.shapes == [(1584, 1224, 3)] == engines.layout.shapes
    assert engines.ocr.dpis == [pytest.approx(144)]  # the engine is told the render's resolution
    title = [b for b in result.blocks if b.type == "title"][0]
    assert title.text == "Recognised heading"
    assert title.bbox == pytest.approx((0.05 * 612, 0.05 * 792, 0.95 * 612, 0.15 * 792), abs=1.0)
    # 144 DPI: pixel boxes are twice the point boxes
    line = [b for b in result.blocks if b.text == "A line outside every region"][0]
    assert line.bbox == pytest.approx((72.0, 0.30 * 792, 360.0, 0.33 * 792), abs=1.0)
    assert "ocr" in result.timings


def test_ocr_mode_ignores_even_a_good_text_layer(tmp_path, open_doc, make_settings):
    engines = FakeEngines()
    doc = open_doc(pdfgen.text_pdf(tmp_path / "doc.pdf"))
    result = page_mod.process_page(doc, 0, ConvertOptions(mode="ocr", dpi=72), engines, make_settings())
    assert result.source == "ocr"
    assert "Recognised heading" in result.markdown and pdfgen.PARAGRAPHS[0] not in result.markdown


def test_huge_page_render_is_capped_by_max_page_pixels(tmp_path, open_doc, make_settings):
    engines = FakeEngines()
    doc = open_doc(pdfgen.huge_page_pdf(tmp_path / "big.pdf"))
    settings = make_settings(max_page_pixels=2_000_000)
    page_mod.process_page(doc, 0, ConvertOptions(mode="ocr", dpi=200), engines, settings)
    height, width, _ = engines.ocr.shapes[0]
    assert width * height <= 2_000_000
    assert engines.ocr.dpis[0] < 200  # the resolution actually rendered, not the one asked for


@pytest.mark.parametrize("mode", ["text", "auto", "ocr"])
def test_huge_embedded_image_is_refused_in_every_mode(tmp_path, open_doc, make_settings, mode):
    doc = open_doc(pdfgen.huge_image_pdf(tmp_path / "img.pdf"))
    with pytest.raises(PageTooLarge, match="page 1"):
        page_mod.process_page(doc, 0, ConvertOptions(mode=mode), FakeEngines(), make_settings())


@pytest.mark.parametrize("mode", ["text", "auto", "ocr"])
def test_an_image_hidden_six_forms_deep_is_refused_before_rendering(tmp_path, open_doc, make_settings, mode):
    # The walk production uses goes MAX_FORM_DEPTH (8) forms deep; a 4-deep walk never saw this image.
    doc = open_doc(pdfgen.nested_image_pdf(tmp_path / "nested.pdf", depth=6))
    with pytest.raises(PageTooLarge, match="30000x30000"):
        page_mod.process_page(doc, 0, ConvertOptions(mode=mode), FakeEngines(), make_settings())
    with pytest.raises(PageTooLarge, match="30000x30000"):
        page_mod.analyse_for_vl(doc, 0, ConvertOptions(mode="vl"), FakeEngines(), make_settings())


def test_vl_analysis_crops_every_region_but_figures(tmp_path, open_doc, make_settings):
    doc = open_doc(pdfgen.text_pdf(tmp_path / "doc.pdf"))
    analysis = page_mod.analyse_for_vl(doc, 0, ConvertOptions(mode="vl", dpi=144), FakeEngines(), make_settings())
    assert [r.label for r in analysis.regions] == ["title", "figure"]
    assert [c.region.label for c in analysis.crops] == ["title"]
    crop = analysis.crops[0]
    x0, y0, x1, y1 = crop.region.bbox  # points
    assert (x0, y0) == pytest.approx((0.05 * 612, 0.05 * 792), abs=1)
    image = Image.open(io.BytesIO(crop.jpeg))
    assert image.format == "JPEG"
    assert image.size[0] == pytest.approx((x1 - x0) * 2, abs=1)  # 144 DPI, the box exactly (no margin)
    # The analysis travels from a worker to the parent: region identity must survive pickling.
    copy = pickle.loads(pickle.dumps(analysis))
    read = [Region(label="title", bbox=copy.crops[0].region.bbox, text="Read by the VLM")]
    result = page_mod.assemble_vl_page(copy, read)
    assert result.source == "vl"
    assert "Read by the VLM" in result.markdown
    assert any(b.type == "figure" for b in result.blocks)


class PaddlexLikeLayout:
    """PP-DocLayoutV2-shaped regions (its own labels in `kind`, its reading order): a title, then one line of text
    that layout cut in two side by side, then a picture."""

    def __init__(self, merge: bool) -> None:
        self.merge_layout_blocks = merge

    def detect(self, image):
        height, width = image.shape[:2]
        boxes = [("title", "paragraph_title", (0.1, 0.05, 0.9, 0.1)), ("text", "text", (0.1, 0.2, 0.45, 0.25)),
                 ("text", "text", (0.5, 0.2, 0.9, 0.24)), ("figure", "image", (0.1, 0.5, 0.9, 0.9))]
        return [Region(label=label, bbox=(x0 * width, y0 * height, x1 * width, y1 * height), score=0.9, kind=kind,
                       order=i) for i, (label, kind, (x0, y0, x1, y1)) in enumerate(boxes)]


class PaddlexLikeEngines(FakeEngines):
    def __init__(self, merge: bool) -> None:
        super().__init__()
        self.layout = PaddlexLikeLayout(merge)


def test_vl_reads_text_regions_that_continue_each_other_with_one_crop(tmp_path, open_doc, make_settings):
    doc = open_doc(pdfgen.text_pdf(tmp_path / "doc.pdf"))
    apart = page_mod.analyse_for_vl(doc, 0, ConvertOptions(mode="vl", dpi=144), PaddlexLikeEngines(False),
                                    make_settings())
    assert [c.region.kind for c in apart.crops] == ["paragraph_title", "text", "text"]
    merged = page_mod.analyse_for_vl(doc, 0, ConvertOptions(mode="vl", dpi=144), PaddlexLikeEngines(True),
                                     make_settings())
    assert [c.region.kind for c in merged.crops] == ["paragraph_title", "text"]  # one request fewer
    assert [r.kind for r in merged.regions] == ["paragraph_title", "text", "image"]
    left, right = (c.region for c in apart.crops[1:])
    group = merged.crops[1].region
    assert group.bbox == (left.bbox[0], left.bbox[1], right.bbox[2], left.bbox[3]) and group.order == 1
    # The crop is the two pieces' crops (each with its margin) one below the other, as wide as the wider.
    sizes = [Image.open(io.BytesIO(c.jpeg)).size for c in apart.crops[1:]]
    stacked = Image.open(io.BytesIO(merged.crops[1].jpeg))
    assert stacked.size == (max(w for w, _ in sizes), sum(h for _, h in sizes))

    copy = pickle.loads(pickle.dumps(merged))
    read = [replace(c.region, text=answer) for c, answer in zip(copy.crops, ["Section", "the whole line"],
                                                                  strict=True)]
    result = page_mod.assemble_vl_page(copy, read)
    texts = [(b.type, b.text) for b in result.blocks]
    assert texts == [("title", "Section"), ("text", "the whole line"), ("figure", "")]
    assert result.blocks[1].bbox == pytest.approx(group.bbox, abs=0.01)
    assert result.markdown.count("the whole line") == 1


def test_vl_page_where_layout_finds_nothing_is_sent_whole(tmp_path, open_doc, make_settings):
    class EmptyLayout(FakeEngines):
        def __init__(self) -> None:
            super().__init__()
            self.layout.detect = lambda image: []

    doc = open_doc(pdfgen.text_pdf(tmp_path / "doc.pdf"))
    analysis = page_mod.analyse_for_vl(doc, 0, ConvertOptions(mode="vl", dpi=72), EmptyLayout(), make_settings())
    assert len(analysis.crops) == 1
    assert analysis.crops[0].region.bbox == (0.0, 0.0, 612.0, 792.0)


def test_decide_source():
    from app.pipeline.trust import decide_source

    assert decide_source("text", False) == "text"
    assert decide_source("ocr", True) == "ocr"
    assert decide_source("auto", True) == "text"
    assert decide_source("auto", False) == "ocr"
