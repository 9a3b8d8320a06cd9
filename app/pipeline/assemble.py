"""Assembly: layout regions + text lines (PDF points) -> ordered Blocks -> the page's Markdown.

A pure function of its inputs, so the same code serves every mode: text-layer lines with layout (`auto`), OCR
lines with layout (`ocr`), lines without any layout (`text`), and regions whose text a recognizer already read
(`vl`, where `Region.text`/`.html` are used as they are). Steps:

1. regions with preset text become blocks; each remaining line goes to the region covering most of it;
2. table regions become grids (`tables.py`), text regions and uncovered lines become paragraphs
   (`textblocks.py`): nothing a line says is ever dropped;
3. header / footer / page-number blocks (by layout label, confirmed by position, or by position and shape
   alone) stay in `blocks` but not in the Markdown;
4. the body is put in reading order and rendered: the layout model's own order when every body block has one
   (PP-DocLayoutV3 and V2 predict it, as in the official PaddleOCR-VL pipeline), else `reading_order.py` (columns aware).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.pipeline.formula import reads_as_formula
from app.pipeline.furniture import furniture_kind, labelled_furniture, mark_edge_rows, mark_folios
from app.pipeline.layout.base import area, intersection
from app.pipeline.mdtext import escape_text
from app.pipeline.primitives import Region, TextLine
from app.pipeline.reading_order import reading_order
from app.pipeline.result import FURNITURE, BBox, Block, BlockType, PageResult, PageSource
from app.pipeline.tables import (
    build_table,
    find_aligned_tables,
    find_ruled_tables,
    grow_ruled_table,
    looks_tabular,
    split_cells,
)
from app.vlm.titles import heading
from app.pipeline.textblocks import (
    BULLET,
    SENTENCE_END,
    PageStats,
    group_paragraphs,
    heading_level,
    is_list_item,
    join_lines,
    union,
)

log = logging.getLogger(__name__)

# A line belongs to a region when at least this share of its box lies inside it.
MIN_LINE_COVER = 0.5
# Layout header/footer labels are believed only this close to the top/bottom edge (share of page height).
HEADER_ZONE = 0.2
FOOTER_ZONE = 0.8


@dataclass
class _Item:
    type: BlockType
    bbox: BBox
    text: str = ""
    html: str | None = None
    score: float | None = None
    level: int | None = None
    markdown: str | None = None  # when the Markdown differs from `text` (tables, figures, formulas, lists)
    lines: list[TextLine] = field(default_factory=list)
    order: int | None = None  # the layout model's reading-order position (`Region.order`), when it has one


def build_page(
    *,
    page_number: int,
    width: float,
    height: float,
    source: PageSource,
    regions: list[Region],
    lines: list[TextLine],
    rulings: Sequence[BBox] = (),
    words: Sequence[TextLine] = (),
) -> PageResult:
    """Blocks in reading order and the page's Markdown from layout regions and text lines, all in PDF points
    (top-left origin); `words` (born-digital pages that hold a table) split table rows into cells. Header, footer
    and page-number blocks are kept in `blocks` but left out of `markdown`.
    `timings` is left empty for the caller."""
    lines = [ln for ln in lines if ln.text and ln.text.strip()]
    rulings = list(rulings)
    stats = PageStats.of(lines)
    preset = [r for r in regions if r.text is not None or r.html is not None]
    open_regions = [r for r in regions if r.text is None and r.html is None]
    # Tables the page draws with rulings come out as tables even where layout missed them (text mode has no
    # layout at all) or took them for a figure.
    ruled = [grow_ruled_table(box, lines) for box in find_ruled_tables(rulings, width, lines)]
    # A layout table region round a ruled grid and more (a summary box above the main table, or a second grid)
    # is several tables: the rules say where the grid ends, and what lies above or below it is another table.
    split = []
    for region in open_regions:
        inside = [box for box in ruled if _cover(box, region.bbox) >= 0.8] if region.label == "table" else []
        split += _split_at_grids(region, sorted(inside, key=lambda b: b[1]), stats.body_size) if inside else [region]
    open_regions = split
    layout_tables = [r.bbox for r in open_regions if r.label == "table"]
    for box in ruled:
        if any(_cover(box, other) >= 0.5 or _cover(other, box) >= 0.5 for other in layout_tables):
            continue
        taken = [r for r in open_regions if _cover(box, r.bbox) >= 0.5]
        if taken and (any(r.label != "figure" or _cover(r.bbox, box) < 0.6 for r in taken)
                      or not looks_tabular(lines, box)):
            continue  # another region holds it; a figure gives way only to a real grid of cells
        open_regions = [r for r in open_regions if not any(r is t for t in taken)]
        open_regions.append(Region(label="table", bbox=box, score=0.0))
    # Tables drawn without rulings, found by their columns alone, where no layout region says otherwise (text
    # mode, or a layout model that saw nothing there, or only text blocks inside the table).
    for box in find_aligned_tables(split_cells(lines, list(words)) if words else lines, width):
        if any(_cover(box, r.bbox) >= 0.3 or _cover(r.bbox, box) >= 0.3 for r in open_regions if r.label == "table"):
            continue
        taken = [r for r in open_regions if _cover(r.bbox, box) >= 0.6]
        if any(r.label not in ("text", "figure") for r in taken) or any(
                _cover(r.bbox, box) < 0.6 and _cover(box, r.bbox) >= 0.3 for r in open_regions):
            continue
        open_regions = [r for r in open_regions if not any(r is t for t in taken)]
        open_regions.append(Region(label="table", bbox=box, score=0.0))

    items: list[_Item] = [_preset_item(r) for r in preset]
    lines = [ln for ln in lines if not any(_cover(ln.bbox, r.bbox) >= MIN_LINE_COVER for r in preset)]
    assigned, uncovered = _assign(lines, open_regions)
    for region, members in zip(open_regions, assigned):
        items += _region_items(region, members, stats, rulings, width, height, list(words))
    for group in group_paragraphs(uncovered, stats):
        items.append(_paragraph_item(group, stats, width, height))

    mark_folios(items, width, height)
    mark_edge_rows(items, stats.body_size, width, height)
    furniture = [it for it in items if it.type in FURNITURE]
    body = _body_order([it for it in items if it.type not in FURNITURE])
    body = _merge_lists(body)
    head = sorted((it for it in furniture if _mid_y(it.bbox) < height / 2), key=lambda it: it.bbox[1])
    foot = sorted((it for it in furniture if _mid_y(it.bbox) >= height / 2), key=lambda it: it.bbox[1])
    ordered = head + body + foot

    blocks = [
        Block(type=it.type, bbox=_round(it.bbox), text=it.text, html=it.html, score=it.score, order=i, level=it.level)
        for i, it in enumerate(ordered)
    ]
    markdown = "\n\n".join(md for it in body if (md := _markdown(it)))
    return PageResult(page=page_number, width=width, height=height, source=source, markdown=markdown, blocks=blocks)


def _split_at_grids(region: Region, grids: list[BBox], line_height: float) -> list[Region]:
    """The table region cut into its ruled grids (top to bottom) and the strips above, between and below them
    that are tall enough to hold a row; a grid that fills the region leaves it as it is."""
    x0, y0, x1, y1 = region.bbox
    parts: list[BBox] = []
    top = y0
    for grid in grids:
        if grid[1] - top > 2 * line_height:
            parts.append((x0, top, x1, grid[1]))
        parts.append((min(x0, grid[0]), grid[1], max(x1, grid[2]), grid[3]))
        top = grid[3]
    if y1 - top > 2 * line_height:
        parts.append((x0, top, x1, y1))
    if len(parts) == 1:
        return [region]
    return [Region(label="table", bbox=box, score=region.score) for box in parts]


def _body_order(items: list[_Item]) -> list[_Item]:
    """The layout model's reading order when every block carries one (PP-DocLayoutV3/V2 in `vl` mode, as the official
    pipeline emits it), else our own XY-cut reading order."""
    if items and all(it.order is not None for it in items):
        return sorted(items, key=lambda it: it.order)  # type: ignore[arg-type, return-value]
    return reading_order(items, lambda it: it.bbox)


# --- lines to regions -------------------------------------------------------------------------------------------
def _cover(line: BBox, region: BBox) -> float:
    return intersection(line, region) / max(area(line), 1e-9)


def _assign(lines: list[TextLine], regions: list[Region]) -> tuple[list[list[TextLine]], list[TextLine]]:
    assigned: list[list[TextLine]] = [[] for _ in regions]
    uncovered: list[TextLine] = []
    for line in lines:
        best, best_key = None, None
        candidates = []
        for index, region in enumerate(regions):
            cover = _cover(line.bbox, region.bbox)
            if cover < MIN_LINE_COVER:
                continue
            candidates.append(index)
            # Most coverage wins; among equals the smaller (more specific) region.
            key = (round(cover, 2), -area(region.bbox))
            if best_key is None or key > best_key:
                best, best_key = index, key
        if best is not None and len(candidates) > 1:
            # A region nested in the winner (a text block inside a figure the layout drew round a whole panel)
            # owns the line even where its box clips the line's edge: otherwise a paragraph's first and last
            # lines go to the container and the paragraph comes out in pieces.
            nested = [i for i in candidates if i != best and _cover(regions[i].bbox, regions[best].bbox) >= 0.9]
            if nested:
                best = max(nested, key=lambda i: (round(_cover(line.bbox, regions[i].bbox), 2),
                                                  -area(regions[i].bbox)))
        if best is None:
            uncovered.append(line)
        else:
            assigned[best].append(line)
    return assigned, uncovered


# --- items ------------------------------------------------------------------------------------------------------
def _preset_item(region: Region) -> _Item:
    """A region a recognizer already read (vl mode): its text and HTML are the result."""
    text = (region.text or "").strip()
    item = _Item(type=region.label, bbox=region.bbox, text=text, html=region.html, score=region.score,
                 order=region.order)
    if region.label == "table" and region.html:
        item.markdown = region.html  # the table itself; `text` is only its flattened cells
    elif region.label == "title" and text and not text.startswith("#"):
        # the official pipeline's levels, on the text escaped like all document text
        item.level, item.markdown = heading(region.kind, escape_text(text))
    elif region.label == "formula" and text and not text.startswith("$"):
        item.markdown = f"$$\n{escape_text(text)}\n$$"
    elif region.label in ("figure", "chart"):
        item.markdown = _figure_markdown(item)
    return item


def _region_items(
    region: Region, members: list[TextLine], stats: PageStats, rulings: list[BBox], width: float, height: float,
    words: list[TextLine] = (),
) -> list[_Item]:
    label, score = region.label, region.score
    ordered = sorted(members, key=lambda ln: (ln.bbox[1], ln.bbox[0]))
    text = join_lines([ln.text for ln in _row_order(ordered)])
    if label in ("figure", "chart") and _mostly_prose(members):
        label = "text"  # a "figure" full of sentences is a misread text block: keep its paragraphs readable
    if label in ("figure", "chart"):
        # Text inside a figure (labels, or a whole infographic) is kept, in reading order, one paragraph per
        # group: joined row by row it would interleave the figure's own columns.
        groups = reading_order(group_paragraphs(members, stats), lambda g: union([ln.bbox for ln in g]))
        paragraphs = [join_lines([ln.text for ln in _row_order(g)]) for g in groups]
        item = _Item(type=label, bbox=region.bbox, text="\n".join(paragraphs), score=score, lines=members,
                     order=region.order)
        item.markdown = _figure_markdown(item, "\n\n".join(escape_text(p) for p in paragraphs))
        return [item]
    if not members:
        return []  # a text-like region with nothing in it says nothing
    if label == "table":
        table = build_table(members, region.bbox, rulings, words)
        if len(table.rows) >= 2 and table.n_cols >= 2:
            md, html = table.markdown(), table.html()
            # A pipe table cannot say that a cell spans columns: such a table goes into the Markdown as HTML.
            return [_Item(type="table", bbox=region.bbox, text=md, html=html, score=score,
                          markdown=html if table.spans else md)]
        label = "text"  # one row or one column: not worth a grid
    if label == "formula" and not reads_as_formula(text):
        label = "text"  # words without a mathematical sign: a heading or a line of prose (formula.py)
    if label == "formula":
        return [_Item(type="formula", bbox=region.bbox, text=text, score=score,
                      markdown=f"$$\n{escape_text(text)}\n$$")]
    if label in ("header", "footer"):
        top, bottom = region.bbox[3] <= HEADER_ZONE * height, region.bbox[1] >= FOOTER_ZONE * height
        kind = labelled_furniture(text, region.bbox, len(members), width, height) if (
            (label == "header" and top) or (label == "footer" and bottom)) else None
        if kind is not None:
            return [_Item(type="page_number" if kind == "page_number" else label, bbox=region.bbox, text=text,
                          score=score)]
        label = "text"  # far from the edge, or a paragraph: a heading or paragraph, keep it in the body
    if label == "title":
        if len(members) <= 4 and len(text) <= 300:
            level = heading_level(members, stats, layout_title=True)
            return [_Item(type="title", bbox=region.bbox, text=text, score=score, level=level,
                          markdown="#" * (level or 2) + " " + escape_text(text))]
        label = "text"
    if label == "caption":
        return [_Item(type="caption", bbox=region.bbox, text=text, score=score)]
    groups = reading_order(group_paragraphs(members, stats), lambda g: union([ln.bbox for ln in g]))
    # Layout labels many section headings `text`: a short line set larger or bolder than the body, alone in its
    # region or opening it, is promoted as text mode would (further down a region, such a line is emphasis).
    items = [_paragraph_item(g, stats, width, height, score=score, label=label,
                             headings=k == 0 and label == "text"
                             and _heading_shaped(g, groups[1] if len(groups) > 1 else None))
             for k, g in enumerate(groups)]
    items = _rejoin_sentences(items)
    if len(items) == 1 and items[0].type in ("text", "reference"):
        items[0].bbox = region.bbox
    return items


def _rejoin_sentences(items: list[_Item]) -> list[_Item]:
    """Paragraphs of one layout text region that split mid-sentence (a drop cap, an indented run-in line) are
    one paragraph again: a piece that does not end a sentence continues into the next one."""
    out: list[_Item] = []
    for item in items:
        prev = out[-1] if out else None
        if prev is not None and prev.type == item.type and item.type in ("text", "reference") \
                and not SENTENCE_END.search(prev.text) and not is_list_item(item.text):
            prev.text = join_lines([prev.text, item.text])
            prev.bbox = union([prev.bbox, item.bbox])
            prev.lines += item.lines
            continue
        out.append(item)
    return out


def _paragraph_item(
    group: list[TextLine], stats: PageStats, width: float, height: float, *, score: float | None = None,
    label: BlockType = "text", headings: bool = True,
) -> _Item:
    group = _row_order(sorted(group, key=lambda ln: (ln.bbox[1], ln.bbox[0])))
    text = join_lines([ln.text for ln in group])
    box = union([ln.bbox for ln in group])
    kind = furniture_kind(text, box, len(group), width, height)
    if kind is not None:
        return _Item(type=kind, bbox=box, text=text, score=score, lines=group)  # type: ignore[arg-type]
    level = heading_level(group, stats) if headings else None
    if level is not None:
        return _Item(type="title", bbox=box, text=text, score=score, level=level, lines=group,
                     markdown="#" * level + " " + escape_text(text))
    if is_list_item(group[0].text):
        return _Item(type="list", bbox=box, text=text, score=score, lines=group, markdown=_list_line(text))
    return _Item(type=label, bbox=box, text=text, score=score, lines=group)


def _heading_shaped(group: list[TextLine], after: list[TextLine] | None) -> bool:
    """One or two lines of a short phrase that starts a thought and ends one: what a section heading looks like
    (`heading_level` then judges the font). A lead-in set large ("Over the past three decades") runs on into the
    lowercase text after it; a line starting lowercase continues something; a label ends in a colon."""
    if len(group) > 2 or sum(len(ln.text) for ln in group) > 120:
        return False
    first, last = group[0].text.strip(), group[-1].text.strip()
    if not first or first[0].islower() or last.endswith((":", ",", ";")):
        return False
    following = min(after, key=lambda ln: (ln.bbox[1], ln.bbox[0])).text.strip() if after else ""
    return not (following and following[0].islower())


def _mostly_prose(lines: list[TextLine]) -> bool:
    words = sum(len(ln.text.split()) for ln in lines)
    return words >= 40 and words / max(len(lines), 1) >= 6


def _row_order(lines: list[TextLine]) -> list[TextLine]:
    """Lines sorted top-to-bottom, left-to-right within a visual row (OCR may split one row into pieces)."""
    rows: list[list[TextLine]] = []
    for line in lines:
        if rows:
            last = rows[-1][-1]
            overlap = min(last.bbox[3], line.bbox[3]) - max(last.bbox[1], line.bbox[1])
            if overlap > 0.5 * min(last.bbox[3] - last.bbox[1], line.bbox[3] - line.bbox[1]):
                rows[-1].append(line)
                continue
        rows.append([line])
    return [ln for row in rows for ln in sorted(row, key=lambda ln: ln.bbox[0])]


def _list_line(text: str) -> str:
    match = BULLET.match(text)
    return "- " + escape_text(text[match.end():] if match else text)


def _merge_lists(items: list[_Item]) -> list[_Item]:
    """Consecutive list items become one list block (one item per line)."""
    merged: list[_Item] = []
    for item in items:
        prev = merged[-1] if merged else None
        if prev is not None and prev.type == "list" and item.type == "list":
            prev.text += "\n" + item.text
            prev.markdown = (prev.markdown or "") + "\n" + (item.markdown or escape_text(item.text))
            prev.bbox = union([prev.bbox, item.bbox])
            prev.lines += item.lines
            continue
        merged.append(item)
    return merged


# --- rendering --------------------------------------------------------------------------------------------------
def _figure_markdown(item: _Item, body: str | None = None) -> str:
    """An image placeholder carrying the figure's box (PDF points), then whatever text the figure holds."""
    x0, y0, x1, y1 = (round(v) for v in item.bbox)
    md = f"![{item.type}](#bbox={x0},{y0},{x1},{y1})"
    body = escape_text(item.text) if body is None else body
    return f"{md}\n\n{body}" if body else md


def _markdown(item: _Item) -> str:
    """The item's Markdown: what the assembler wrote for it, else its text made literal (app/pipeline/mdtext.py)."""
    if item.markdown is not None:
        return item.markdown.strip()
    return escape_text(item.text.strip())


def _mid_y(box: BBox) -> float:
    return (box[1] + box[3]) / 2


def _round(box: BBox) -> BBox:
    return (round(box[0], 2), round(box[1], 2), round(box[2], 2), round(box[3], 2))
