"""page_png: the pipeline's own render of the page, losslessly as PNG (greyscale when the page has no colour)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from fpdf import FPDF
from PIL import Image

from app.pipeline.pdf_input import open_pdf
from app.pipeline.pdfium_backend import close_document, open_page
from app.runtime.page_image import page_png
from app.pipeline.render import render_page
from tests import pdfgen


def _rendered(path: Path, index: int, dpi: int, settings) -> np.ndarray:
    doc = open_pdf(path, settings)
    try:
        with open_page(doc, index) as page:
            return render_page(page, dpi, settings.max_page_pixels)[0]
    finally:
        close_document(doc)


def _colour_pdf(path: Path) -> Path:
    doc = FPDF(unit="pt", format=(300, 200))
    doc.add_page()
    doc.set_fill_color(200, 30, 30)
    doc.rect(20, 20, 120, 60, style="F")
    doc.output(str(path))
    return path


def test_a_grey_page_comes_back_as_the_same_pixels_in_greyscale(make_settings, tmp_path):
    settings = make_settings()
    pdf = pdfgen.text_pdf(tmp_path / "text.pdf", pages=2)
    image = Image.open(io.BytesIO(page_png(pdf, 1, 90, settings)))
    assert image.mode == "L"
    expected = _rendered(pdf, 1, 90, settings)
    assert np.array_equal(np.asarray(image), expected[..., 0])


def test_a_coloured_page_keeps_its_colours_exactly(make_settings, tmp_path):
    settings = make_settings()
    pdf = _colour_pdf(tmp_path / "colour.pdf")
    image = Image.open(io.BytesIO(page_png(pdf, 0, 72, settings)))
    assert image.mode == "RGB" and image.size == (300, 200)
    pixels = np.asarray(image)
    assert np.array_equal(pixels, _rendered(pdf, 0, 72, settings))
    assert tuple(pixels[50, 80]) == (200, 30, 30)
