"""Which layout regions the VLM reads together: the official PaddleOCR-VL pipeline's `merge_layout_blocks`.

PaddleX 3.7.2 (`paddleocr_vl/pipeline.py` with `merge_layout_blocks: True`, the rule in `paddleocr_vl/uilts.py`
`merge_blocks`) sends some neighbouring PP-DocLayoutV3/V2 `text` blocks as ONE crop: their crops stacked top to
bottom on white, one `OCR:` request, one answer. Walking the regions in the model's reading order, skipping the
kinds that are never merged (`apart_kinds`: upstream's `non_merge_labels`), a `text` region joins the run of the `text` region before it when

- it continues the same line to the right (`side_by_side`): no horizontal overlap, it starts right of the
  previous one's right edge, its top is above the previous one's bottom, and the gap is under 0.3 of the wider
  one's width; stacked centred; or
- it continues the paragraph just below it (`stacked`): the two overlap horizontally, exactly one edge (left or
  right) lines up within `ALIGN_TOLERANCE_PT`, the vertical gap is under half the taller one's height, and the box
  round the pair overlaps a region that is never merged (text flowing round a picture or a table, which the layout
  model cuts into blocks of different widths); stacked on the edge that lines up.

A run whose stacked crop would be 3 or more times taller than wide (measured on the boxes) is read block by block
after all. Other labels (titles, formulas, captions, lists...) are never merged.

What the result shows for a merged group: ONE region, the first member's (label, kind, score and place in the
reading order) with the box round all members, carrying the group's whole answer. Upstream keeps the members as
separate blocks sharing a `group_id`, the first with the whole answer and the others empty; one block whose box
covers the text it holds says the same without empty blocks. The picture or table the text flows round keeps its
own place after the group, as upstream emits it.

Pure geometry on boxes in PDF points (`group_regions`) and on pixels (`stack`); the caller decides whether the
rule applies (the PaddleX layout engine's `merge_layout_blocks`, `vl` mode only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Literal

import numpy as np

from app.pipeline.primitives import Region
from app.pipeline.result import BBox
from app.vlm.prompts import IMAGE_KINDS

Align = Literal["left", "right", "center"]

# Upstream's `non_merge_labels` (paddleocr_vl/pipeline.py `_paddleocr_vl_merge_adjacent_blocks`: `image_labels +
# ["table"]`), where `image_labels` (`get_layout_parsing_results`) is IMAGE_LABELS (pictures, header and footer
# logos: never sent to the VLM, see app.vlm.prompts.IMAGE_KINDS) plus `chart` while chart recognition is off and
# `seal` while seal recognition is off (it always is here: seals are figures). Never merged, and what text flowing
# round them is recognised by.
SEAL_KIND, CHART_KIND, TABLE_KIND = "seal", "chart", "table"


def apart_kinds(*, chart_recognition: bool = False) -> frozenset[str]:
    """The labels never merged: upstream's `non_merge_labels` for this chart-recognition setting."""
    kinds = IMAGE_KINDS | {SEAL_KIND, TABLE_KIND}
    return kinds if chart_recognition else kinds | {CHART_KIND}


APART_KINDS = apart_kinds()  # the official default: chart recognition off
# The only kind that merges (the PP-DocLayout label), and only with its own kind.
MERGED_KIND = "text"
# Upstream allows 5 pixels on the pages it renders at zoom 2 (144 DPI): 2.5 points.
ALIGN_TOLERANCE_PT = 2.5
SIDE_GAP_OF_WIDTH = 0.3  # side by side: gap below this fraction of the wider block's width
STACK_GAP_OF_HEIGHT = 0.5  # stacked: gap below this fraction of the taller block's height
MAX_STACK_ASPECT = 3.0  # a stack at least this many times taller than wide is read block by block


@dataclass(frozen=True)
class ReadingGroup:
    """Regions the VLM reads with one crop: `members` in reading order, and how each member after the first is
    lined up against the stack above it (`aligns`, one fewer than `members`)."""

    members: tuple[Region, ...]
    aligns: tuple[Align, ...] = ()

    @cached_property  # one object: the parent matches the recognizer's answers to regions by identity
    def region(self) -> Region:
        """The region the result shows for the group: the first member with the box round all of them."""
        first = self.members[0]
        if len(self.members) == 1:
            return first
        boxes = [m.bbox for m in self.members]
        return replace(first, bbox=(min(b[0] for b in boxes), min(b[1] for b in boxes),
                                    max(b[2] for b in boxes), max(b[3] for b in boxes)))


def group_regions(regions: Sequence[Region], *, chart_recognition: bool = False) -> list[ReadingGroup]:
    """The regions (in the layout model's reading order, boxes in points) as reading groups, ordered by their first
    member: runs of `text` regions that continue each other become one group, everything else stays alone.
    `chart_recognition`: charts are read by the VLM, so they are no longer kept apart (as upstream)."""
    apart = apart_kinds(chart_recognition=chart_recognition)
    candidates = [i for i, r in enumerate(regions) if r.kind not in apart]
    runs: list[tuple[list[int], list[Align]]] = []
    for position, index in enumerate(candidates):
        align = _joins(regions, candidates[position - 1], index, apart) if position else None
        if align is None:
            runs.append(([index], []))
        else:
            runs[-1][0].append(index)
            runs[-1][1].append(align)
    starts: dict[int, ReadingGroup] = {i: ReadingGroup((regions[i],)) for i, r in enumerate(regions)
                                       if r.kind in apart}
    for members, aligns in runs:
        if len(members) > 1 and _too_tall([regions[i].bbox for i in members]):
            starts.update({i: ReadingGroup((regions[i],)) for i in members})
        else:
            starts[members[0]] = ReadingGroup(tuple(regions[i] for i in members), tuple(aligns))
    return [starts[i] for i in sorted(starts)]


def _joins(regions: Sequence[Region], previous: int, current: int, apart: frozenset[str]) -> Align | None:
    """How region `current` joins the run ending at `previous` (the candidate before it), or None."""
    a, b = regions[previous], regions[current]
    if a.kind != MERGED_KIND or b.kind != MERGED_KIND:
        return None
    if side_by_side(a.bbox, b.bbox):
        return "center"
    if stacked(a.bbox, b.bbox) and _round_an_apart_region(regions, previous, current, apart):
        return "left" if _aligned(a.bbox[0], b.bbox[0]) else "right"
    return None


def side_by_side(a: BBox, b: BBox) -> bool:
    """`b` continues `a`'s line to its right: no horizontal overlap, starts right of `a`, its top above `a`'s
    bottom, and a gap under SIDE_GAP_OF_WIDTH of the wider box's width."""
    return (_x_overlap(a, b) <= 0 and b[0] > a[2] and b[1] < a[3]
            and b[0] - a[2] < SIDE_GAP_OF_WIDTH * max(a[2] - a[0], b[2] - b[0]))


def stacked(a: BBox, b: BBox) -> bool:
    """`b` sits just above or below `a` with exactly one side edge lined up: horizontal overlap, `b`'s bottom not
    above `a`'s top, a vertical gap (`b`'s top to `a`'s bottom) under STACK_GAP_OF_HEIGHT of the taller box, and
    the left edges or the right edges (not both) within ALIGN_TOLERANCE_PT."""
    return (_x_overlap(a, b) > 0 and b[3] >= a[1]
            and abs(b[1] - a[3]) < STACK_GAP_OF_HEIGHT * max(a[3] - a[1], b[3] - b[1])
            and _aligned(a[0], b[0]) != _aligned(a[2], b[2]))


def _round_an_apart_region(regions: Sequence[Region], first: int, second: int, apart: frozenset[str]) -> bool:
    """The box round the two regions overlaps (with some area) a region that is never merged."""
    a, b = regions[first].bbox, regions[second].bbox
    pair = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
    return any(i not in (first, second) and r.kind in apart and _x_overlap(pair, r.bbox) > 0
               and min(pair[3], r.bbox[3]) - max(pair[1], r.bbox[1]) > 0 for i, r in enumerate(regions))


def _x_overlap(a: BBox, b: BBox) -> float:
    return min(a[2], b[2]) - max(a[0], b[0])


def _aligned(u: float, v: float) -> bool:
    return abs(u - v) <= ALIGN_TOLERANCE_PT


def _too_tall(boxes: list[BBox]) -> bool:
    width = max(b[2] - b[0] for b in boxes)
    height = sum(b[3] - b[1] for b in boxes)
    return width <= 0 or height / width >= MAX_STACK_ASPECT


def stack(crops: Sequence[np.ndarray], aligns: Sequence[Align]) -> np.ndarray:
    """The crops (RGB) one below the other on a white canvas as wide as the widest. Each crop after the first is
    lined up against everything stacked above it: `left` edges flush, `right` edges flush, or both centred (the
    narrower side moves)."""
    if len(aligns) != len(crops) - 1:
        raise ValueError(f"{len(crops)} crops need {len(crops) - 1} alignments, got {len(aligns)}")
    if len(crops) == 1:
        return crops[0]
    offsets = [0]
    width = crops[0].shape[1]
    for crop, align in zip(crops[1:], aligns, strict=True):
        grown = max(width, crop.shape[1])
        shift, own = {"left": (0, 0), "right": (grown - width, grown - crop.shape[1]),
                      "center": ((grown - width) // 2, (grown - crop.shape[1]) // 2)}[align]
        offsets = [x + shift for x in offsets] + [own]
        width = grown
    canvas = np.full((sum(c.shape[0] for c in crops), width, 3), 255, dtype=np.uint8)
    top = 0
    for crop, left in zip(crops, offsets, strict=True):
        canvas[top:top + crop.shape[0], left:left + crop.shape[1]] = crop
        top += crop.shape[0]
    return canvas
