"""The CDLA layout model on real rendered pages: it must load offline from the wheel and find what is there."""

from __future__ import annotations

import numpy as np
import pypdfium2 as pdfium
import pytest

from app.pipeline.layout import create_layout_engine
from app.pipeline.layout.base import suppress_duplicates
from app.pipeline.layout.cdla import CdlaLayoutEngine
from app.pipeline.primitives import Region
from tests import pdfgen

DPI = 100  # the model sees 800x608 whatever the render size: a small render keeps the test fast


@pytest.fixture(scope="module")
def engine() -> CdlaLayoutEngine:
    layout = CdlaLayoutEngine(threads=1)
    layout.load()
    return layout


def render(path) -> np.ndarray:
    doc = pdfium.PdfDocument(str(path))
    try:
        return doc[0].render(scale=DPI / 72, rev_byteorder=True).to_numpy()[:, :, :3].copy()
    finally:
        doc.close()


def test_factory_builds_the_cdla_engine_unloaded(make_settings):
    engine = create_layout_engine(make_settings(layout_engine="cdla", threads_per_worker=1))
    assert isinstance(engine, CdlaLayoutEngine) and engine.health() is False


def test_table_page_has_a_table_region_around_the_ruled_grid(engine, tmp_path):
    image = render(pdfgen.table_pdf(tmp_path / "table.pdf"))
    regions = engine.detect(image)
    tables = [r for r in regions if r.label == "table"]
    assert len(tables) == 1
    x0, y0, x1, y1 = (v * 72 / DPI for v in tables[0].bbox)
    # pdfgen draws the 3 x 120 pt wide grid from the left margin (72 pt), 5 rows of 22 pt.
    assert 55 < x0 < 85 and 420 < x1 < 460 and (y1 - y0) > 90
    assert all(0 <= v <= s for r in regions for v, s in zip(r.bbox, (850, 1100, 850, 1100)))


def test_title_page_has_a_title_region_at_the_top_and_furniture_labels(engine, tmp_path):
    image = render(pdfgen.text_pdf(tmp_path / "text.pdf"))
    regions = engine.detect(image)
    titles = sorted((r for r in regions if r.label == "title"), key=lambda r: r.bbox[1])
    assert titles and titles[0].bbox[1] * 72 / DPI < 100  # the 24 pt title sits right under the top margin
    assert {"text", "header", "footer"} <= {r.label for r in regions}
    assert engine.health() is True


def test_overlapping_duplicates_keep_the_higher_score():
    regions = [
        Region("text", (10, 10, 200, 100), 0.9),
        Region("title", (12, 11, 198, 99), 0.6),  # same box, other class
        Region("text", (20, 20, 100, 50), 0.5),  # inside the first text region
        Region("figure", (300, 300, 400, 400), 0.7),
    ]
    kept = suppress_duplicates(regions)
    assert [(r.label, r.score) for r in kept] == [("text", 0.9), ("figure", 0.7)]


@pytest.mark.parametrize("make", [pdfgen.table_pdf, pdfgen.two_column_pdf, pdfgen.text_pdf])
def test_fast_pre_and_post_processing_give_rapid_layouts_own_boxes(engine, tmp_path, make):
    """The lookup-table normalisation and the thresholded decoding must not change a single number."""
    from app.pipeline.layout.cdla import _decode, _normalise

    image = render(make(tmp_path / "doc.pdf"))
    handler = engine._model.model_handler.model_processors
    reference_input = handler.preprocess(image)
    fast_input = _normalise(image, handler.img_size)
    assert fast_input.dtype == reference_input.dtype and np.array_equal(fast_input, reference_input)
    preds = handler.session(fast_input)
    boxes, scores, names = handler.postprocess(image.shape[:2], reference_input, preds)
    assert boxes, "the page should have regions"
    assert _decode(handler.pp_postprocess, image.shape[:2], fast_input.shape, preds) == (boxes, names, scores)
