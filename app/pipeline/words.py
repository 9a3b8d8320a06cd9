"""Word boxes of a born-digital page, for table structure.

The text layer (`textlayer.py`) gives lines, and keeps words of one line together unless they stand far apart. In
a table without rulings the gap between two cells can be as narrow as two or three spaces, so a line such as
"Server closets 1,505 1,580" holds several cells: where each word sits tells them apart. Asked only for pages that
hold a table (a layout table region or a ruled grid), so plain prose pages never pay for it.
"""

from __future__ import annotations

import ctypes
import re

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from app.pipeline.intake import PDFIUM_LOCK
from app.pipeline.primitives import TextLine
from app.pipeline.result import BBox

Affine = tuple[float, float, float, float, float, float]  # as textlayer.display_transform returns it
_WORD = re.compile(r"\S+")


def page_words(page: pdfium.PdfPage, transform: Affine) -> list[TextLine]:
    """Every whitespace-separated word of the page's text with its box in displayed points (loose boxes of its
    first and last characters) and font size. Empty when pdfium's text does not map one-to-one onto its
    characters (then tables work from lines alone)."""
    with PDFIUM_LOCK:
        textpage = page.get_textpage()
        try:
            raw = textpage.raw
            count = pdfium_c.FPDFText_CountChars(raw)
            if count <= 0:
                return []
            text = textpage.get_text_range(0, count)
            if len(text) != count:
                return []
            rect = pdfium_c.FS_RECTF()
            get_box, get_size = pdfium_c.FPDFText_GetLooseCharBox, pdfium_c.FPDFText_GetFontSize
            words = []
            for match in _WORD.finditer(text):
                start, stop = match.span()
                get_box(raw, start, ctypes.byref(rect))
                a = (rect.left, rect.bottom, rect.right, rect.top)
                get_box(raw, stop - 1, ctypes.byref(rect))
                b = (rect.left, rect.bottom, rect.right, rect.top)
                box = _display(transform, min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                words.append(TextLine(text=match.group(), bbox=box, font_size=round(get_size(raw, start), 2)))
        finally:
            textpage.close()
    return words


def _display(t: Affine, left: float, bottom: float, right: float, top: float) -> BBox:
    a, b, c, d, e, f = t
    xs = (a * left + c * bottom + e, a * right + c * top + e, a * left + c * top + e, a * right + c * bottom + e)
    ys = (b * left + d * bottom + f, b * right + d * top + f, b * left + d * top + f, b * right + d * bottom + f)
    return (min(xs), min(ys), max(xs), max(ys))
