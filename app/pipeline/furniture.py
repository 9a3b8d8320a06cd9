"""Page furniture: running headers, footers and page numbers, found by where they sit and what they say.

They stay in the page's blocks (JSON) but not in its Markdown. Layout labels find most of them; these rules
catch the rest, and are all `text` mode has.
"""

from __future__ import annotations

from typing import Any

from app.pipeline.result import FURNITURE, BBox
from app.pipeline.textblocks import PAGE_NUMBER

# Outer share of the page height where running headers / footers live.
TOP_BAND = 0.08
BOTTOM_BAND = 0.92
SIDE_BAND = 0.07


def furniture_kind(text: str, box: BBox, n_lines: int, width: float, height_: float) -> str | None:
    """`header`, `footer` or `page_number` when a block sits in the page's margin bands and is short enough to be
    a running head, a footer line or a folio; None otherwise."""
    text = text.strip()
    if not text or len(text) > 160 or n_lines > 3:
        return None
    x0, y0, x1, y1 = box
    top = y1 <= TOP_BAND * height_
    bottom = y0 >= BOTTOM_BAND * height_
    side = (x1 <= SIDE_BAND * width or x0 >= (1 - SIDE_BAND) * width) and (y1 - y0) > 3 * (x1 - x0)
    near_edge = y1 <= 0.12 * height_ or y0 >= 0.88 * height_
    if PAGE_NUMBER.match(text) and (top or bottom or near_edge):
        return "page_number"
    if top:
        return "header"
    if bottom or side:
        return "footer"
    return None


# A block the layout model labels `header`/`footer` near the page's edge is furniture when it is this short; a
# longer one is a paragraph the model mislabelled (Russian manuals: the first paragraph of a page as `header`).
LABELLED_MAX_LINES = 2
LABELLED_MAX_CHARS = 100


def labelled_furniture(text: str, box: BBox, n_lines: int, width: float, height: float) -> str | None:
    """For a layout `header`/`footer` block in the edge zones: `page_number`, `header` or `footer` when it looks
    like one (in the margin bands and short, see `furniture_kind`, or a line or two of running head a little below
    them), else None: a paragraph at the top of a page is text."""
    kind = furniture_kind(text, box, n_lines, width, height)
    if kind is not None:
        return kind
    if n_lines <= LABELLED_MAX_LINES and len(text.strip()) <= LABELLED_MAX_CHARS:
        return "header" if (box[1] + box[3]) / 2 < height / 2 else "footer"
    return None


def mark_folios(items: list[Any], width: float, height: float) -> None:
    """A bare number (or "Page 3") that is the last or first thing on the page, and sits centred or near a side,
    is the page number even away from the margin bands (cropped pages, short pages)."""
    body = [it for it in items if it.type not in FURNITURE]
    for item in body:
        if item.type not in ("text", "title") or len(item.text) > 20 or not PAGE_NUMBER.match(item.text):
            continue
        others = [o for o in body if o is not item]
        last = all(o.bbox[3] <= item.bbox[1] + 1 for o in others)
        first = all(o.bbox[1] >= item.bbox[3] - 1 for o in others)
        mid = (item.bbox[0] + item.bbox[2]) / 2
        placed = abs(mid - width / 2) < 0.1 * width or mid < 0.2 * width or mid > 0.8 * width
        if others and (last or first) and placed:
            item.type, item.level, item.markdown = "page_number", None, None
    # A running head shares its row with the folio ("400   BRITISH HUSBANDRY.   [Ch. XIX."): the whole first or
    # last row goes when a page number is in it.
    for folio in [it for it in items if it.type == "page_number"]:
        for item in items:
            if item.type in FURNITURE or len(item.text) > 120:
                continue
            overlap = min(item.bbox[3], folio.bbox[3]) - max(item.bbox[1], folio.bbox[1])
            if overlap > 0.3 * min(item.bbox[3] - item.bbox[1], folio.bbox[3] - folio.bbox[1]):
                item.type = "header" if (folio.bbox[1] + folio.bbox[3]) / 2 < height / 2 else "footer"
                item.level, item.markdown = None, None


# A running footer/header row may sit this far into the page (share of height) when it also looks like one.
EDGE_ROW_ZONE = 0.15
_EDGE_PIECE_CHARS = 60
_EDGE_ROW_CHARS = 120


def mark_edge_rows(items: list[Any], body_size: float, width: float, height: float) -> None:
    """The last (or first) row of the page is a footer (header) a little outside the margin bands when it looks
    like one: short pieces spread across the row with wide gaps ("Revision: 2.4   P/N 119-036   10 June 2019"),
    or short text set smaller than the body ("NETS 2015"). Sentences never qualify."""
    body = [it for it in items if it.type not in FURNITURE]
    if len(body) < 2:
        return
    for bottom in (True, False):
        edge = max(body, key=lambda it: it.bbox[3]) if bottom else min(body, key=lambda it: it.bbox[1])
        row = [it for it in body if _same_row(it.bbox, edge.bbox)]
        rest = [it for it in body if not any(it is r for r in row)]
        if not rest:
            continue
        if bottom:
            in_zone = min(it.bbox[1] for it in row) >= (1 - EDGE_ROW_ZONE) * height
            clear = all(it.bbox[3] <= min(r.bbox[1] for r in row) + 1 for it in rest)
        else:
            in_zone = max(it.bbox[3] for it in row) <= EDGE_ROW_ZONE * height
            clear = all(it.bbox[1] >= max(r.bbox[3] for r in row) - 1 for it in rest)
        if not (in_zone and clear) or any(it.type not in ("text", "title") for it in row):
            continue
        lines = [ln for it in row for ln in it.lines]
        pieces = sorted(lines, key=lambda ln: ln.bbox[0])
        if not pieces:
            continue
        texts = [ln.text.strip() for ln in pieces]
        if any(len(t) > _EDGE_PIECE_CHARS for t in texts) or sum(map(len, texts)) > _EDGE_ROW_CHARS \
                or any(t.endswith(".") for t in texts) or not all(_same_row(ln.bbox, pieces[0].bbox) for ln in pieces):
            continue
        h = max(ln.bbox[3] - ln.bbox[1] for ln in pieces)
        spread = len(pieces) >= 2 and all(b.bbox[0] - a.bbox[2] > 2 * h for a, b in zip(pieces, pieces[1:]))
        small = all(ln.font_size is not None and ln.font_size < 0.9 * body_size for ln in pieces)
        if spread or small:
            for it in row:
                it.type, it.level, it.markdown = ("footer" if bottom else "header"), None, None
            body = [it for it in body if it.type not in FURNITURE]
            if len(body) < 2:
                return


def _same_row(a: BBox, b: BBox) -> bool:
    overlap = min(a[3], b[3]) - max(a[1], b[1])
    return overlap > 0.5 * min(a[3] - a[1], b[3] - b[1])
