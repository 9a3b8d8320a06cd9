"""The official PaddleOCR-VL pipeline's `merge_layout_blocks` rule (paddlex 3.7.2 `paddleocr_vl/uilts.py`
`merge_blocks`) on boxes in PDF points: which PP-DocLayoutV2 regions are read with one crop, and how it is stacked."""

from __future__ import annotations

import numpy as np
import pytest

from app.pipeline.layout.merge import APART_KINDS, ReadingGroup, apart_kinds, group_regions, stack
from app.pipeline.primitives import Region


def text(x0, y0, x1, y1, kind="text", order=None, label="text"):
    return Region(label=label, bbox=(float(x0), float(y0), float(x1), float(y1)), score=0.9, kind=kind, order=order)


def picture(x0, y0, x1, y1, kind="image"):
    return Region(label="figure", bbox=(float(x0), float(y0), float(x1), float(y1)), score=0.8, kind=kind)


def members(groups: list[ReadingGroup]) -> list[list[Region]]:
    return [list(g.members) for g in groups]


# --- side by side: one line cut in two ----------------------------------------------------------------------------
def test_a_line_cut_in_two_is_read_as_one_centred_stack():
    left, right = text(72, 100, 272, 112, order=3), text(300, 101, 500, 113, order=4)  # gap 28 < 0.3 * 200
    (group,) = group_regions([left, right])
    assert group.members == (left, right) and group.aligns == ("center",)
    region = group.region
    assert region.bbox == (72.0, 100.0, 500.0, 113.0)  # the box round both
    assert (region.label, region.kind, region.order, region.score) == ("text", "text", 3, 0.9)  # the first member's


@pytest.mark.parametrize("right", [
    text(332, 100, 532, 112),  # gap 60 is not under 0.3 of the wider width (200)
    text(260, 100, 460, 112),  # overlaps the left block horizontally: not side by side (nor stacked: same row)
    text(300, 113, 500, 125),  # starts below the left block's bottom
], ids=["gap-too-wide", "overlapping", "below"])
def test_a_block_to_the_right_joins_only_when_it_continues_the_line(right):
    left = text(72, 100, 272, 112)
    assert members(group_regions([left, right])) == [[left], [right]]


def test_the_left_block_must_come_first_in_reading_order():
    left, right = text(72, 100, 272, 112), text(300, 100, 500, 112)
    assert members(group_regions([right, left])) == [[right], [left]]


# --- stacked: text flowing round a picture or table -----------------------------------------------------------
def test_text_flowing_round_a_picture_is_read_as_one_stack_lined_up_on_its_common_edge():
    # The paragraph's top part is narrow beside a picture, its bottom part runs the full width: left edges agree.
    upper, image, lower = text(72, 100, 300, 160), picture(310, 100, 540, 170), text(73, 165, 540, 200)
    groups = group_regions([upper, image, lower])
    assert members(groups) == [[upper, lower], [image]]  # the picture keeps its place after the group
    assert groups[0].aligns == ("left",)
    assert groups[0].region.bbox == (72.0, 100.0, 540.0, 200.0)


def test_right_edges_lined_up_stack_on_the_right():
    image, upper, lower = picture(72, 100, 300, 170), text(310, 100, 540, 160), text(72, 165, 541, 200)
    groups = group_regions([image, upper, lower])
    assert members(groups) == [[image], [upper, lower]] and groups[1].aligns == ("right",)


def test_a_table_counts_like_a_picture_and_is_never_merged():
    upper, table, lower = text(72, 100, 300, 160), Region("table", (310, 100, 540, 170), kind="table"), \
        text(72, 165, 540, 200)
    assert members(group_regions([upper, table, lower])) == [[upper, lower], [table]]


@pytest.mark.parametrize("lower", [
    text(72, 165, 300, 200),  # both edges line up: an ordinary paragraph break, read apart
    text(90, 165, 540, 200),  # neither edge lines up
    text(72, 195, 540, 230),  # the gap (35) is not under half the taller height (60 / 2)
    text(600, 165, 700, 200),  # no horizontal overlap (and not to the right on the same line either)
], ids=["both-edges", "no-edge", "gap-too-tall", "no-overlap"])
def test_stacked_blocks_need_one_common_edge_and_a_small_gap(lower):
    upper, image = text(72, 100, 300, 160), picture(310, 100, 540, 230)
    assert members(group_regions([upper, image, lower])) == [[upper], [image], [lower]]


def test_stacked_blocks_with_no_picture_or_table_in_their_box_stay_apart():
    upper, lower = text(72, 100, 300, 160), text(72, 165, 540, 200)
    assert members(group_regions([upper, lower])) == [[upper], [lower]]
    # a picture that only touches the box round them (no area in common) does not count either
    assert len(group_regions([upper, picture(540, 100, 600, 200), lower])) == 3


def test_edges_line_up_within_two_and_a_half_points():
    image = picture(310, 100, 540, 170)
    assert len(group_regions([text(72, 100, 300, 160), image, text(74.5, 165, 540, 200)])) == 2
    assert len(group_regions([text(72, 100, 300, 160), image, text(75, 165, 540, 200)])) == 3


# --- what never merges ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["paragraph_title", "display_formula", "figure_title", "reference_content", None])
def test_only_text_regions_merge_and_only_with_text(kind):
    other, after = text(72, 100, 272, 112, kind=kind), text(300, 100, 500, 112)
    assert members(group_regions([other, after])) == [[other], [after]]
    later = text(520, 100, 700, 112, kind=kind)  # would continue `after`'s line if it were text
    assert members(group_regions([after, later])) == [[after], [later]]


def test_a_title_between_two_text_blocks_breaks_the_run():
    first, title, second = text(72, 100, 272, 112), text(280, 100, 290, 112, kind="paragraph_title"), \
        text(300, 100, 500, 112)
    assert members(group_regions([first, title, second])) == [[first], [title], [second]]


def test_a_picture_between_two_text_blocks_in_reading_order_does_not_break_the_run():
    first, logo, second = text(72, 100, 272, 112), picture(10, 10, 40, 40, kind="header_image"), \
        text(300, 100, 500, 112)
    assert members(group_regions([first, logo, second])) == [[first, second], [logo]]


def test_a_stack_three_times_taller_than_wide_is_read_block_by_block():
    # Three 60 pt blocks of a 60 pt wide strip cut side by side would stack 180 pt tall: 3x, read apart.
    blocks = [text(0, 0, 60, 60), text(70, 0, 130, 60), text(140, 0, 200, 60)]
    assert members(group_regions(blocks)) == [[b] for b in blocks]
    assert members(group_regions(blocks[:2])) == [blocks[:2]]  # 120 / 60 = 2x: merged


def test_apart_kinds_are_upstreams_non_merge_labels():
    # paddlex 3.7.2: non_merge_labels = image_labels + ["table"]; image_labels = IMAGE_LABELS, + "chart" while chart
    # recognition is off, + "seal" while seal recognition is off (always, here).
    from app.vlm.prompts import IMAGE_KINDS

    assert APART_KINDS == IMAGE_KINDS | {"table", "chart", "seal"}
    assert apart_kinds(chart_recognition=True) == IMAGE_KINDS | {"table", "seal"}


@pytest.mark.parametrize("kind", ["chart", "seal"])
def test_text_flowing_round_a_chart_or_seal_is_read_as_one_stack_and_does_not_merge_through_it(kind):
    # PaddleX-shaped: PP-DocLayout labels; the chart/seal is a figure region the VLM never reads.
    upper, other, lower = (text(72, 100, 300, 160), picture(310, 100, 540, 170, kind=kind),
                           text(73, 165, 540, 200))
    groups = group_regions([upper, other, lower])
    assert members(groups) == [[upper, lower], [other]]


def test_with_chart_recognition_a_chart_is_no_longer_a_reason_to_merge():
    upper, chart, lower = (text(72, 100, 300, 160), picture(310, 100, 540, 170, kind="chart"),
                           text(73, 165, 540, 200))
    assert members(group_regions([upper, chart, lower], chart_recognition=True)) == [[upper], [chart], [lower]]


# --- the stacked crop -------------------------------------------------------------------------------------------
def block(height: int, width: int, value: int) -> np.ndarray:
    return np.full((height, width, 3), value, dtype=np.uint8)


def test_stack_puts_crops_one_below_the_other_on_white():
    out = stack([block(10, 40, 0), block(5, 20, 100)], ["left"])
    assert out.shape == (15, 40, 3) and out.dtype == np.uint8
    assert (out[:10] == 0).all()
    assert (out[10:, :20] == 100).all() and (out[10:, 20:] == 255).all()


def test_stack_lines_up_right_and_centre():
    right = stack([block(10, 40, 0), block(5, 20, 100)], ["right"])
    assert (right[10:, 20:] == 100).all() and (right[10:, :20] == 255).all()
    centre = stack([block(10, 20, 0), block(5, 40, 100)], ["center"])  # the wider one below moves the top one
    assert centre.shape == (15, 40, 3)
    assert (centre[:10, 10:30] == 0).all() and (centre[:10, :10] == 255).all() and (centre[:10, 30:] == 255).all()
    assert (centre[10:] == 100).all()


def test_stack_lines_each_crop_up_against_everything_above_it():
    out = stack([block(2, 10, 0), block(2, 30, 50), block(2, 20, 100)], ["left", "right"])
    assert out.shape == (6, 30, 3)
    assert (out[:2, :10] == 0).all() and (out[:2, 10:] == 255).all()  # left: flush with the stack's left edge
    assert (out[4:, 10:] == 100).all() and (out[4:, :10] == 255).all()


def test_stack_wants_one_alignment_per_joint():
    with pytest.raises(ValueError, match="2 crops need 1"):
        stack([block(2, 2, 0), block(2, 2, 0)], [])
