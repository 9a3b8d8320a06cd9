"""Render: one page to an RGB image at a DPI, never larger than `max_page_pixels` (pixels from the pdfium backend)."""

from __future__ import annotations

import math

import numpy as np

from app.pipeline.pdfium_backend import PdfPage


def render_scale(width_pt: float, height_pt: float, dpi: float, max_pixels: int) -> float:
    """Pixels per point for rendering a page at `dpi`, lowered so that the image stays within `max_pixels`.

    A 200-inch page at 200 DPI would be 1.6 G pixels; the scale shrinks instead of the request failing."""
    scale = dpi / 72.0
    area = max(width_pt, 1.0) * max(height_pt, 1.0)
    if area * scale * scale > max_pixels:
        scale = math.sqrt(max_pixels / area) * 0.999  # rounding up of pixel sizes must not cross the bound
    return scale


def render_page(page: PdfPage, dpi: float, max_pixels: int) -> tuple[np.ndarray, float]:
    """Render `page` (rotation applied, annotations drawn, white background) as an HxWx3 RGB uint8 array.

    Returns the image and the scale actually used in pixels per point: `dpi / 72` unless the page was too large.
    Convert pixel boxes to points with `scale_bbox(box, 1 / scale)`."""
    width, height = page.size()
    scale = render_scale(width, height, dpi, max_pixels)
    return page.render(scale), scale
