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
_DROP_SOFT_HYPHENS = dict.fromkeys(map(ord, _SOFT_HYPHENS))



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
    paragraphs: list[_Para] = []
    active: list[_Para] = []  # paragraphs a later line can still continue, in creation order
    ordered = sorted(lines, key=lambda ln: (ln.bbox[1], ln.bbox[0]))
    # Lines come top to bottom, so a paragraph whose last line ends further above the current line than any
    # continuation gap allows can never grow again: retiring it keeps this near linear on long pages.
    line_gap = max(stats.line_gap, 0.0)
    # The tallest line from here on bounds how far below its last line a paragraph can still be continued.
    taller = [0.0] * (len(ordered) + 1)
    for i in range(len(ordered) - 1, -1, -1):
        taller[i] = max(taller[i + 1], height(ordered[i].bbox))
    for i, line in enumerate(ordered):
        top = line.bbox[1]
        if active:
            tallest = taller[i]
            if any(top - p.lines[-1].bbox[3] > line_gap + 0.45 * max(tallest, height(p.lines[-1].bbox))
                   for p in active):
                active = [p for p in active
                          if top - p.lines[-1].bbox[3] <= line_gap + 0.45 * max(tallest, height(p.lines[-1].bbox))]
        best, best_gap = None, None
        x0, x1 = line.bbox[0], line.bbox[2]
        line_h = line.bbox[3] - top
        for para in active:
            # The cheap geometric tests of `_continues` first: most open paragraphs are in another row or column.
            last = para.lines[-1].bbox
            gap = top - last[3]
            h = max(last[3] - last[1], line_h, 0.1)
            if gap < -0.5 * h or gap > line_gap + 0.45 * h:
                continue
            box = para.box
            if min(box[2], x1) - max(box[0], x0) <= 0.3 * min(box[2] - box[0], x1 - x0):
                continue
            if (best_gap is None or gap < best_gap) and _continues(para, line, stats):
                best, best_gap = para, gap
        if best is None:
            para = _Para(line)
            paragraphs.append(para)
            active.append(para)
        else:
            best.add(line)
    return [p.lines for p in paragraphs]


class _Para:
    """A paragraph being grown: its lines and the aggregates `_continues` asks about on every candidate line."""

    __slots__ = ("lines", "box", "left", "all_bold")

    def __init__(self, line: TextLine) -> None:
        self.lines = [line]
        self.box = line.bbox
        self.left = line.bbox[0]
        self.all_bold = line.bold

    def add(self, line: TextLine) -> None:
        self.lines.append(line)
        b, lb = self.box, line.bbox
        self.box = (min(b[0], lb[0]), min(b[1], lb[1]), max(b[2], lb[2]), max(b[3], lb[3]))
        self.left = min(self.left, lb[0])
        self.all_bold = self.all_bold and line.bold


def _continues(para: _Para, line: TextLine, stats: PageStats) -> bool:
    last = para.lines[-1]
    lb, pb = line.bbox, last.bbox
    h = max(pb[3] - pb[1], lb[3] - lb[1], 0.1)
    gap = lb[1] - pb[3]
    if gap < -0.5 * h or gap > max(stats.line_gap, 0.0) + 0.45 * h:
        return False
    box = para.box
    overlap = min(box[2], lb[2]) - max(box[0], lb[0])
    if overlap <= 0.3 * min(box[2] - box[0], lb[2] - lb[0]):
        return False
    # Starting far to the left of the paragraph means another block (a heading of the next column, say).
    if lb[0] < box[0] - 1.5 * h:
        return False
    size_a, size_b = size_of(last), size_of(line)
    if abs(size_a - size_b) > 0.15 * max(size_a, size_b):
        return False
    if is_list_item(line.text) or is_folio(line.text) or is_folio(last.text):
        return False  # list items start their own paragraph; a folio never belongs to one
    all_bold = para.all_bold
    if all_bold != line.bold and (all_bold or SENTENCE_END.search(last.text.strip())):
        return False
    # An indented line after a finished sentence is a new paragraph (pages without paragraph spacing).
    left = para.left
    if len(para.lines) > 1 and lb[0] > left + 0.8 * h and SENTENCE_END.search(last.text.strip()) \
            and pb[0] <= left + 0.8 * h:
        return False
    return True


def join_lines(texts: list[str]) -> str:
    """One paragraph's lines as one string: single spaces, words hyphenated across a line break rejoined."""
    parts: list[str] = []  # joined once at the end: growing one string line by line is quadratic on long blocks
    for raw in texts:
        text = " ".join(raw.split())
        if not text:
            continue
        if not parts:
            parts.append(text)
            continue
        prev = parts[-1]
        if prev[-1] in _SOFT_HYPHENS:  # soft hyphen: the word simply continues
            parts[-1] = prev[:-1] + text
        elif prev[-1] == "-" and len(prev) > 1 and prev[-2].isalpha() and text[0].islower():
            parts[-1] = prev[:-1] + text
        else:
            parts.append(text)
    out = " ".join(parts)
    return out.translate(_DROP_SOFT_HYPHENS) if any(ch in out for ch in _SOFT_HYPHENS) else out


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

