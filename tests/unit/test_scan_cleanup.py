"""Specks on a scanned page: found only where they are, removed without touching the strokes, and the real OCR
engine reads the despeckled page better than the speckled one."""

from __future__ import annotations

import numpy as np
import pypdfium2 as pdfium
import pytest

from app.pipeline import scan_cleanup
from tests import pdfgen
from tests.conftest import EVAL_DIR

DPI = 200


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> np.ndarray:
    return pdfgen.scanned_page_image(tmp_path_factory.mktemp("scan") / "scan.pdf", dpi=DPI)


def speckled(page: np.ndarray, fraction: float = 0.006, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = page.copy()
    hit = rng.random(page.shape[:2]) < fraction
    out[hit] = np.where(rng.random(int(hit.sum())) < 0.5, 0, 255)[:, None]
    return out


def test_a_clean_page_goes_through_untouched(page):
    out, share = scan_cleanup.despeckle(page)
    assert out is page and share <= scan_cleanup.SPECK_SHARE


def test_specks_go_and_the_strokes_stay(page):
    noisy = speckled(page)
    out, share = scan_cleanup.despeckle(noisy)
    assert share > scan_cleanup.SPECK_SHARE
    gray_clean, gray_out = page[:, :, 0] < 128, out[:, :, 0] < 128
    paper = ~np.asarray(__import__("cv2").dilate(gray_clean.astype(np.uint8), np.ones((5, 5), np.uint8)), bool)
    noisy_dark_on_paper = np.count_nonzero((noisy[:, :, 0] < 128) & paper)
    assert np.count_nonzero(gray_out & paper) < 0.05 * noisy_dark_on_paper  # pepper on paper is gone
    kept = np.count_nonzero(gray_out & gray_clean) / np.count_nonzero(gray_clean)
    assert kept > 0.97  # the ink of the letters is kept


@pytest.mark.skipif(not (EVAL_DIR / "pdfs" / "multi_column_miss.pdf").exists(), reason="eval sample not found")
def test_the_ocr_engine_reads_a_speckled_dense_page_better_despeckled(make_settings):
    """A dense born-digital page at 200 DPI worn by the benchmark's `specks` family (salt-and-pepper and toner dots):
    its own text layer is the reference, scored as bench.scan_ocr scores."""
    from app.pipeline.recognize.ocr import create_ocr_engine
    from bench.scan_ocr import score
    from bench.worn import degrade_family

    doc = pdfium.PdfDocument(str(EVAL_DIR / "pdfs" / "multi_column_miss.pdf"))
    try:
        reference = doc[0].get_textpage().get_text_range()
        clean = np.asarray(doc[0].render(scale=DPI / 72).to_pil().convert("RGB"))
    finally:
        doc.close()
    noisy, _ = degrade_family(clean, "specks", 17)
    engine = create_ocr_engine(make_settings(threads_per_worker=1))
    engine.load()

    def f1(image: np.ndarray) -> float:
        lines = sorted(engine.recognize(image, dpi=DPI), key=lambda ln: (ln.bbox[1], ln.bbox[0]))
        return score("\n".join(ln.text for ln in lines), reference)["words"]["f1"]

    assert f1(scan_cleanup.despeckle(noisy)[0]) > f1(noisy) + 0.02
