"""A page of a PDF as a PNG for people to look at (the web UI draws the result's boxes on top of it).

The same render as the pipeline (`render.render_page`: rotation applied, forms drawn, bounded by
`max_page_pixels`), at screen resolution. Blocking: the service calls it in a thread.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from app.pipeline.pdf_input import open_pdf
from app.pipeline.pdfium_backend import close_document, open_page
from app.pipeline.render import render_page
from app.settings import Settings

# Low PNG compression: the image is looked at once and cached; level 1 is several times faster than the default
# for a few percent more bytes.
_PNG_COMPRESS_LEVEL = 1


def page_rgb(pdf_path: Path, page_index: int, dpi: float, settings: Settings) -> np.ndarray:
    """Page `page_index` (0-based) of the PDF at `pdf_path`, rendered at `dpi`, as an HxWx3 RGB array."""
    doc = open_pdf(pdf_path, settings)
    try:
        with open_page(doc, page_index) as page:
            image, _scale = render_page(page, dpi, settings.max_page_pixels)
    finally:
        close_document(doc)
    return image


def page_png(pdf_path: Path, page_index: int, dpi: int, settings: Settings) -> bytes:
    """Page `page_index` (0-based) of the PDF at `pdf_path`, rendered at `dpi`, as PNG bytes."""
    image = page_rgb(pdf_path, page_index, dpi, settings)
    picture = Image.fromarray(image)
    if _is_grey(image):  # most scans and plain-text pages: a third of the bytes, half the encoding time
        picture = picture.convert("L")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=_PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def _is_grey(image: np.ndarray) -> bool:
    """Whether every pixel has R == G == B, so the greyscale image is the same picture."""
    return bool((image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all())
