"""Word boxes of a born-digital page, for table structure.

The text layer (`textlayer.py`) gives lines, and keeps words of one line together unless they stand far apart. In
a table without rulings the gap between two cells can be as narrow as two or three spaces, so a line such as
"Server closets 1,505 1,580" holds several cells: where each word sits tells them apart. Asked only for the parts of a
page that may hold a table (`tables.table_bands`), so plain prose pages never pay for it.
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


def page_words(page: pdfium.PdfPage, transform: Affine, bands: list[tuple[float, float]]) -> list[TextLine]:
    """The whitespace-separated words of the page's text whose first character lies within one of the vertical
    `bands` (displayed points, top and bottom: where tables may be), each with its box in displayed points (loose
    boxes of its first and last characters). Empty when pdfium's text does not map one-to-one onto its
    characters (then tables work from lines alone)."""
    if not bands:
        return []
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
            ref = ctypes.byref(rect)
            get_box = pdfium_c.FPDFText_GetLooseCharBox
            words = []
            a, b, c, d, e, f = transform
            upright = b == 0 and c == 0  # displayed y depends on the PDF's y alone: test the bands before mapping
            for match in _WORD.finditer(text):
                start, stop = match.span()
                get_box(raw, start, ref)
                if upright:
                    mid = d * (rect.bottom + rect.top) / 2 + f
                    if not any(top <= mid <= bottom for top, bottom in bands):
                        continue
                first = _display(transform, rect.left, rect.bottom, rect.right, rect.top)
                if not upright:
                    mid = (first[1] + first[3]) / 2
                    if not any(top <= mid <= bottom for top, bottom in bands):
                        continue
                if stop - start > 1:
                    get_box(raw, stop - 1, ref)
                    last = _display(transform, rect.left, rect.bottom, rect.right, rect.top)
                    first = (min(first[0], last[0]), min(first[1], last[1]), max(first[2], last[2]),
                             max(first[3], last[3]))
                words.append(TextLine(text=match.group(), bbox=first))
        finally:
            textpage.close()
    return words


def _display(t: Affine, left: float, bottom: float, right: float, top: float) -> BBox:
    a, b, c, d, e, f = t
    xs = (a * left + c * bottom + e, a * right + c * top + e, a * left + c * top + e, a * right + c * bottom + e)
    ys = (b * left + d * bottom + f, b * right + d * top + f, b * left + d * top + f, b * right + d * bottom + f)
    return (min(xs), min(ys), max(xs), max(ys))
