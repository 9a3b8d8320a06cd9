"""Word boxes of a born-digital page, for table structure.

The text layer (`textlayer.py`) gives lines, and keeps words of one line together unless they stand far apart. In
a table without rulings the gap between two cells can be as narrow as two or three spaces, so a line such as
"Server closets 1,505 1,580" holds several cells: where each word sits tells them apart. Asked only for the parts of a
page that may hold a table (`tables.table_bands`), so plain prose pages never pay for it.
"""

from __future__ import annotations

import re

from app.pipeline.pdfium_backend import PdfPage
from app.pipeline.primitives import TextLine

_WORD = re.compile(r"\S+")


def page_words(page: PdfPage, bands: list[tuple[float, float]]) -> list[TextLine]:
    """The whitespace-separated words of the page's text whose first character lies within one of the vertical
    `bands` (displayed points, top and bottom: where tables may be), each with its box in displayed points (loose
    boxes of its first and last characters)."""
    if not bands:
        return []
    words = []
    with page.text() as text_page:
        text = text_page.text()  # one string character per pdfium character, so offsets are character indices
        for match in _WORD.finditer(text):
            start, stop = match.span()
            first = text_page.char_box(start)
            mid = (first[1] + first[3]) / 2
            if not any(top <= mid <= bottom for top, bottom in bands):
                continue
            if stop - start > 1:
                last = text_page.char_box(stop - 1)
                first = (min(first[0], last[0]), min(first[1], last[1]), max(first[2], last[2]),
                         max(first[3], last[3]))
            words.append(TextLine(text=match.group(), bbox=first))
    return words
