"""Render: RGB pixels at the asked DPI, and huge pages scaled down instead of allocating gigabytes."""

from __future__ import annotations

import numpy as np
import pypdfium2 as pdfium
import pytest
from fpdf import FPDF

from app.pipeline.pdfium_backend import PdfPage
from app.pipeline.render import render_page, render_scale
from tests import pdfgen


def _first_page(path):
    doc = pdfium.PdfDocument(path)
    return doc, PdfPage(doc[0])


def test_letter_page_at_72_and_200_dpi(tmp_path):
    doc, page = _first_page(pdfgen.text_pdf(tmp_path / "doc.pdf"))
    try:
        image, scale = render_page(page, 72, 40_000_000)
        assert image.shape == (792, 612, 3) and image.dtype == np.uint8 and scale == pytest.approx(1.0)
        image, scale = render_page(page, 200, 40_000_000)
        assert image.shape == (2200, 1700, 3) and scale == pytest.approx(200 / 72)
        assert image.min() < 50 and np.median(image) == 255  # black text on a white page
    finally:
        doc.close()


def test_channels_are_in_rgb_order(tmp_path):
    pdf = FPDF(unit="pt", format=(200, 200))
    pdf.add_page()
    pdf.set_fill_color(255, 0, 0)
    pdf.rect(0, 0, 100, 200, style="F")
    pdf.set_fill_color(0, 0, 255)
    pdf.rect(100, 0, 100, 200, style="F")
    path = tmp_path / "colours.pdf"
    pdf.output(str(path))
    doc, page = _first_page(path)
    try:
        image, _ = render_page(page, 72, 40_000_000)
        assert tuple(image[100, 50]) == (255, 0, 0)
        assert tuple(image[100, 150]) == (0, 0, 255)
    finally:
        doc.close()


def test_huge_page_is_rendered_at_a_lower_scale_within_the_pixel_budget(tmp_path):
    doc, page = _first_page(pdfgen.huge_page_pdf(tmp_path / "big.pdf"))
    try:
        image, scale = render_page(page, 200, 4_000_000)
        height, width = image.shape[:2]
        assert width * height <= 4_000_000
        assert scale < 200 / 72
        assert width == pytest.approx(14400 * scale, abs=1)
        assert image.min() < 128  # the big text is there
    finally:
        doc.close()


def test_render_scale_is_only_lowered_when_needed():
    assert render_scale(612, 792, 200, 40_000_000) == pytest.approx(200 / 72)
    scale = render_scale(14400, 14400, 200, 40_000_000)
    assert (14400 * scale) ** 2 <= 40_000_000
    assert (14400 * scale) ** 2 > 0.99 * 40_000_000


def test_rotated_page_renders_in_display_orientation(tmp_path):
    source = pdfgen.text_pdf(tmp_path / "doc.pdf")
    doc = pdfium.PdfDocument(source)
    try:
        doc[0].set_rotation(90)
        image, _ = render_page(PdfPage(doc[0]), 72, 40_000_000)
        assert image.shape[:2] == (612, 792)
    finally:
        doc.close()
