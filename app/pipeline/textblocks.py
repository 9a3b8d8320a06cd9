"""Lines to paragraphs, and what a paragraph is: heading, list item, page furniture or body text.

Used for the lines no layout region covers (all of them in `text` mode, which runs no layout model) and for the
lines inside a layout text region. Works on text-layer lines (with font size and weight) and OCR lines (boxes
only: the box height stands in for the font size).
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass

from app.pipeline.primitives import TextLine
from app.pipeline.result import BBox

BULLET = re.compile(
    r"^\s*([\u2022\u25e6\u25aa\u25ab\u25cf\u25cb\u25a0\u25a1\u2023\u2043\u2219\u00b7\u2013\u2014*-])\s+"
)
ENUMERATED = re.compile(r"^\s*(\(?(?:\d{1,3}|[a-zA-Z]|[ivxIVX]{1,4})[.)])\s+\S")
PAGE_NUMBER = re.compile(
    r"^\s*(?:page\s+)?(?:[-\u2013\u2014]\s*)?"
    r"(?:\d{1,4}|(?=[ivxlc])c{0,3}(?:xc|xl|l?x{0,3})(?:ix|iv|v?i{0,3}))"  # arabic, or a well-formed roman numeral
    r"(?:\s*[-\u2013\u2014])?"
    r"(?:\s*(?:of|/)\s*\d{1,4})?\s*$",
    re.IGNORECASE,
)
SENTENCE_END = re.compile(r"[.!?:;\"\u201d)]$")
# What PDFs put where a word was hyphenated at a line break: soft hyphen, pdfium's U+FFFE and U+0002 markers.
_SOFT_HYPHENS = frozenset("\u00ad\ufffe\u0002")



def height(box: BBox) -> float:
    return max(box[3] - box[1], 0.1)


def union(boxes: list[BBox]) -> BBox:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def size_of(line: TextLine) -> float:
    """Font size in points when the text layer gave one, else the box height (OCR)."""
    return line.font_size if line.font_size else height(line.bbox) / 1.2


@dataclass
class PageStats:
    """What body text looks like on this page: the yardstick for headings and paragraph gaps."""

    body_size: float
    body_bold: bool
    line_gap: float  # typical gap between consecutive lines of one paragraph (points, may be negative for OCR)

    @classmethod
    def of(cls, lines: list[TextLine]) -> PageStats:
        if not lines:
            return cls(body_size=10.0, body_bold=False, line_gap=2.0)
        weights: dict[float, int] = {}
        bold_chars = 0
        for ln in lines:
            key = round(size_of(ln) * 2) / 2
            weights[key] = weights.get(key, 0) + len(ln.text)
            bold_chars += len(ln.text) if ln.bold else 0
        body = max(weights, key=lambda k: weights[k])
        total = sum(len(ln.text) for ln in lines)
        gaps = []
        ordered = sorted(lines, key=lambda ln: ln.bbox[1])
        for a, b in zip(ordered, ordered[1:]):
            overlap = min(a.bbox[2], b.bbox[2]) - max(a.bbox[0], b.bbox[0])
            gap = b.bbox[1] - a.bbox[3]
            if overlap > 0 and -0.5 * height(a.bbox) < gap < 1.5 * height(a.bbox):
                gaps.append(gap)
        line_gap = statistics.median(gaps) if gaps else 0.2 * body
        return cls(body_size=body, body_bold=bold_chars > total / 2, line_gap=line_gap)


def is_folio(text: str) -> bool:
    """A bare page number: "12", "- 12 -", "Page 3", "3 of 10", "xiv"."""
    return bool(PAGE_NUMBER.match(text))


def is_list_item(text: str) -> bool:
    return bool(BULLET.match(text) or ENUMERATED.match(text))


def group_paragraphs(lines: list[TextLine], stats: PageStats) -> list[list[TextLine]]:
    """Lines grouped into paragraphs, column-aware: a line continues the paragraph right above it when the gap is
    line spacing, they overlap horizontally, and font and weight agree; bullets and indented first lines start
    new paragraphs. Groups come out in no particular order (reading order is decided afterwards)."""
    paragraphs: list[list[TextLine]] = []
    boxes: list[BBox] = []
    for line in sorted(lines, key=lambda ln: (ln.bbox[1], ln.bbox[0])):
        best, best_gap = None, None
        for index, para in enumerate(paragraphs):
            if _continues(para, boxes[index], line, stats):
                gap = line.bbox[1] - para[-1].bbox[3]
                if best_gap is None or gap < best_gap:
                    best, best_gap = index, gap
        if best is None:
            paragraphs.append([line])
            boxes.append(line.bbox)
        else:
            paragraphs[best].append(line)
            boxes[best] = union([boxes[best], line.bbox])
    return paragraphs


def _continues(para: list[TextLine], box: BBox, line: TextLine, stats: PageStats) -> bool:
    last = para[-1]
    h = max(height(last.bbox), height(line.bbox))
    gap = line.bbox[1] - last.bbox[3]
    if gap < -0.5 * h or gap > max(stats.line_gap, 0.0) + 0.45 * h:
        return False
    overlap = min(box[2], line.bbox[2]) - max(box[0], line.bbox[0])
    if overlap <= 0.3 * min(box[2] - box[0], line.bbox[2] - line.bbox[0]):
        return False
    # Starting far to the left of the paragraph means another block (a heading of the next column, say).
    if line.bbox[0] < box[0] - 1.5 * h:
        return False
    size_a, size_b = size_of(last), size_of(line)
    if abs(size_a - size_b) > 0.15 * max(size_a, size_b):
        return False
    if is_list_item(line.text) or is_folio(line.text) or is_folio(last.text):
        return False  # list items start their own paragraph; a folio never belongs to one
    all_bold = all(ln.bold for ln in para)
    if all_bold != line.bold and (all_bold or SENTENCE_END.search(last.text.strip())):
        return False
    # An indented line after a finished sentence is a new paragraph (pages without paragraph spacing).
    left = min(ln.bbox[0] for ln in para)
    if len(para) >= 1 and line.bbox[0] > left + 0.8 * h and SENTENCE_END.search(last.text.strip()) \
            and last.bbox[0] <= left + 0.8 * h and len(para) > 1:
        return False
    return True


def join_lines(texts: list[str]) -> str:
    """One paragraph's lines as one string: single spaces, words hyphenated across a line break rejoined."""
    out = ""
    for raw in texts:
        text = " ".join(raw.split())
        if not text:
            continue
        if not out:
            out = text
        elif out[-1] in _SOFT_HYPHENS:  # soft hyphen: the word simply continues
            out = out[:-1] + text
        elif out.endswith("-") and len(out) > 1 and out[-2].isalpha() and text[0].islower():
            out = out[:-1] + text
        else:
            out += " " + text
    return "".join(ch for ch in out if ch not in _SOFT_HYPHENS)


def heading_level(lines: list[TextLine], stats: PageStats, *, layout_title: bool = False) -> int | None:
    """1 or 2 when these lines read as a heading (larger or bold short text), None when they do not. A layout
    `title` region is a heading whatever its font; the size only picks the level."""
    text = join_lines([ln.text for ln in lines])
    size = statistics.median(size_of(ln) for ln in lines)
    ratio = size / max(stats.body_size, 0.1)
    if layout_title:
        return 1 if ratio >= 1.6 else 2
    if len(lines) > 3 or len(text) > 200 or not any(ch.isalpha() for ch in text):
        return None
    ocr = all(ln.font_size is None for ln in lines)
    needed = 1.35 if ocr else 1.15
    if ratio >= needed and not (len(text) > 120 and text.endswith(".")):
        return 1 if ratio >= 1.6 else 2
    if all(ln.bold for ln in lines) and not stats.body_bold and len(text) <= 120 and not text.endswith(".") \
            and ratio >= 0.95:
        return 2
    return None
