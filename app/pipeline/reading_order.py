"""Reading order of boxes on a page: columns left to right, top to bottom within a column, full-width blocks
(titles, wide figures) between the column runs they separate.

A recursive XY-cut that tries the vertical cut first. Plain XY-cut cuts horizontally wherever both columns happen
to have a paragraph gap at the same height and then interleaves the columns; so when no vertical cut exists, this
version cuts the node into horizontal bands and merges neighbouring bands back together while their union still
has a column gutter. Bands that share a gutter are one multi-column run (a column may run on alone below the
other); a band that spans the gutter (a title) ends the run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from app.pipeline.result import BBox

T = TypeVar("T")

# Gaps narrower than this (points) between boxes are not column gutters.
MIN_GUTTER = 6.0
# Boxes are shrunk by this share of their height before looking for horizontal gaps: layout boxes of
# neighbouring blocks often overlap by a hair.
_Y_SHRINK = 0.15
# A band below every other column of a run continues its own column only across a gap this small (points);
# a larger one is a section break (a section label under a two-column article ends the run).
MAX_COLUMN_GAP = 24.0
# Last resort before sorting by position: trim each box's sides by this share of its width (at most _X_TRIM_MAX pt).
_X_TRIM = 0.05
_X_TRIM_MAX = 10.0


def reading_order(items: Sequence[T], box: Callable[[T], BBox], *, min_gutter: float = MIN_GUTTER) -> list[T]:
    """`items` in reading order, with `box(item)` giving each one's `[x0, y0, x1, y1]` (y down)."""
    indexed = list(range(len(items)))
    boxes = [box(item) for item in items]
    return [items[i] for i in _order(indexed, boxes, min_gutter)]


def _order(ids: list[int], boxes: list[BBox], gutter: float) -> list[int]:
    if len(ids) <= 1:
        return list(ids)
    columns = _vertical_split(ids, boxes, gutter)
    if len(columns) > 1:
        return [i for column in columns for i in _order(column, boxes, gutter)]
    bands = _horizontal_split(ids, boxes)
    if len(bands) <= 1:
        # Boxes overlap every way. Layout boxes often overhang their text by a few points (a drop cap, a margin
        # note's box touching the column): look for a gutter once more with the boxes' sides trimmed, and only
        # then fall back to top-to-bottom, left-to-right.
        trimmed = list(boxes)
        for i in ids:
            x0, y0, x1, y1 = boxes[i]
            pad = min(_X_TRIM * (x1 - x0), _X_TRIM_MAX)
            trimmed[i] = (x0 + pad, y0, x1 - pad, y1)
        columns = _vertical_split(ids, trimmed, gutter)
        if len(columns) > 1:
            return [i for column in columns for i in _order(column, boxes, gutter)]
        return sorted(ids, key=lambda i: (boxes[i][1], boxes[i][0]))
    groups: list[list[int]] = [bands[0]]
    for band in bands[1:]:
        merged = groups[-1] + band
        if len(_vertical_split(merged, boxes, gutter)) > 1 and _continues_run(groups[-1], band, boxes, gutter):
            groups[-1] = merged
        else:
            groups.append(band)
    if len(groups) == 1:  # cannot happen (the whole node had no vertical cut), but never recurse on the same node
        return sorted(ids, key=lambda i: (boxes[i][1], boxes[i][0]))
    return [i for group in groups for i in _order(group, boxes, gutter)]


def _continues_run(group: list[int], band: list[int], boxes: list[BBox], gutter: float) -> bool:
    """Whether `band` belongs to the multi-column run `group`: it has columns itself (the next row of a grid),
    it sits beside content of another column, or it continues the column above it across a paragraph-sized gap
    (a column may run on below a shorter one)."""
    if len(_vertical_split(band, boxes, gutter)) > 1:
        return True
    top = min(boxes[i][1] for i in band)
    left = min(boxes[i][0] for i in band)
    right = max(boxes[i][2] for i in band)
    above = [i for i in group if boxes[i][0] < right and boxes[i][2] > left]
    beside = [i for i in group if i not in above]
    if any(boxes[i][3] > top for i in beside):
        return True
    return bool(above) and top - max(boxes[i][3] for i in above) <= MAX_COLUMN_GAP


def _vertical_split(ids: list[int], boxes: list[BBox], gutter: float) -> list[list[int]]:
    """Split at every x-gap of at least `gutter` that no box crosses; groups come out left to right."""
    spans = sorted(ids, key=lambda i: boxes[i][0])
    groups: list[list[int]] = []
    right = float("-inf")
    for i in spans:
        x0, _, x1, _ = boxes[i]
        if groups and x0 - right < gutter:
            groups[-1].append(i)
        else:
            groups.append([i])
        right = max(right, x1)
    return groups


def _horizontal_split(ids: list[int], boxes: list[BBox]) -> list[list[int]]:
    """Split at every y-gap no box crosses; bands come out top to bottom."""

    def shrunk(i: int) -> tuple[float, float]:
        _, y0, _, y1 = boxes[i]
        pad = max(0.0, y1 - y0) * _Y_SHRINK / 2
        return y0 + pad, y1 - pad

    spans = sorted(ids, key=lambda i: shrunk(i)[0])
    bands: list[list[int]] = []
    bottom = float("-inf")
    for i in spans:
        top, low = shrunk(i)
        if bands and top < bottom:
            bands[-1].append(i)
        else:
            bands.append([i])
        bottom = max(bottom, low)
    return bands
