"""Which of PP-DocLayoutV3's (or V2's) boxes the official PaddleOCR-VL pipeline keeps when they overlap.

PaddleX 3.7.2 (`paddleocr_vl/pipeline.py` runs `paddleocr_vl/uilts.py` `filter_overlap_boxes` on every page before
it crops anything) cleans the layout model's boxes so that no text is sent to the VLM twice:

- `reference` boxes go first: they hold the `reference_content` entries, which are read one by one;
- a box narrower or shorter than `MIN_SIDE_PX` (pixels of the page at the pipeline's 144 DPI) goes;
- an inline formula that lies more than `INLINE_FORMULA_COVERED` inside another box goes (the text around it
  carries it);
- of two boxes overlapping by more than `COVERED` (of the smaller box's area), the smaller goes, unless their
  outlines (PP-DocLayoutV3's `polygon_points`, shape mode `auto`) overlap by less than `COVERED` of the smaller
  outline (an L-shaped paragraph round a picture: the boxes nest, the text does not), or one of
  them is a picture, chart, seal or table and the other is a different kind, in which case both stay (a caption
  or a chart's text inside a picture is a block of its own); a table with a box of another kind (text, a title)
  inside it is the exception: that box goes, since the table's cells hold it.

Pairs are visited in the model's reading order, first box against every later one, and a box once dropped takes
no further part: the order decides which of three nested boxes survive, so it is upstream's order. Pure on boxes
in pixels (`Region.kind` carries PaddleX's label); only the PaddleX layout engine applies it.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.pipeline.primitives import Region
from app.pipeline.result import BBox

CONTAINER_KIND = "reference"
MIN_SIDE_PX = 6.0
INLINE_FORMULA_KIND = "inline_formula"
INLINE_FORMULA_COVERED = 0.5
COVERED = 0.7
PICTURE_KINDS = frozenset({"image", "table", "seal", "chart"})


def drop_overlapping(regions: Sequence[Region]) -> list[Region]:
    """The regions (pixels, reading order) the official pipeline keeps, in the same order."""
    boxes = [r for r in regions if r.kind != CONTAINER_KIND]
    dropped: set[int] = set()
    for i, first in enumerate(boxes):
        if _side(first.bbox) < MIN_SIDE_PX:
            dropped.add(i)
        for j in range(i + 1, len(boxes)):
            if i in dropped or j in dropped:
                continue
            dropped |= _loser(i, j, boxes)
    return [r for k, r in enumerate(boxes) if k not in dropped]


def _loser(i: int, j: int, boxes: Sequence[Region]) -> set[int]:
    """Which of boxes i and j (if any) the pair's overlap drops."""
    a, b = boxes[i], boxes[j]
    covered = _covered(a.bbox, b.bbox)
    if INLINE_FORMULA_KIND in (a.kind, b.kind):
        if covered > INLINE_FORMULA_COVERED:
            return {k for k, r in ((i, a), (j, b)) if r.kind == INLINE_FORMULA_KIND}
        return set()
    if covered <= COVERED:
        return set()
    if a.polygon is not None and b.polygon is not None and _outline_covered(a.polygon, b.polygon) < COVERED:
        return set()
    kinds = {a.kind, b.kind}
    if kinds & PICTURE_KINDS and len(kinds) > 1 and ("table" not in kinds or kinds <= PICTURE_KINDS):
        return set()
    return {j} if _area(a.bbox) >= _area(b.bbox) else {i}


def _covered(a: BBox, b: BBox) -> float:
    """The share of the smaller box's area that lies inside the other box."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    smaller = min(_area(a), _area(b))
    if width <= 0 or height <= 0 or smaller <= 0:
        return 0.0
    return width * height / smaller


def _outline_covered(a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]]) -> float:
    """The share of the smaller outline's area inside the other outline (upstream's `calculate_polygon_overlap_ratio`
    in `small` mode; an invalid outline is mended with a zero buffer first, as upstream's `make_valid`)."""
    from shapely.geometry import Polygon  # a PaddleX dependency: outlines only come from PaddleX's layout models

    first, second = (p if p.is_valid else p.buffer(0) for p in (Polygon(a), Polygon(b)))
    smaller = min(first.area, second.area)
    return first.intersection(second).area / smaller if smaller > 0 else 0.0


def _area(box: BBox) -> float:
    return abs((box[2] - box[0]) * (box[3] - box[1]))


def _side(box: BBox) -> float:
    return min(box[2] - box[0], box[3] - box[1])
