"""Reading order of boxes: columns, full-width blocks, and the XY-cut trap of coincident paragraph gaps."""

from __future__ import annotations

from app.pipeline.reading_order import reading_order


def order(named: dict[str, tuple[float, float, float, float]]) -> list[str]:
    return reading_order(list(named), lambda name: named[name])


def test_two_columns_read_left_column_first_even_when_paragraph_gaps_line_up():
    # Both columns have a paragraph gap at y=200..210: a plain XY-cut would cut there and interleave L1 R1 L2 R2.
    boxes = {
        "L1": (72, 100, 290, 200), "R1": (320, 100, 540, 200),
        "L2": (72, 210, 290, 400), "R2": (320, 210, 540, 380),
    }
    assert order(boxes) == ["L1", "L2", "R1", "R2"]


def test_full_width_blocks_separate_column_runs():
    boxes = {
        "title": (72, 50, 540, 80),
        "L1": (72, 100, 290, 300), "R1": (320, 100, 540, 300),
        "figure": (72, 320, 540, 500),
        "L2": (72, 520, 290, 700), "R2": (320, 520, 540, 700),
    }
    assert order(boxes) == ["title", "L1", "R1", "figure", "L2", "R2"]


def test_a_column_running_on_below_the_other_stays_in_its_column():
    boxes = {"L1": (72, 100, 290, 300), "R1": (320, 100, 540, 250), "L2": (72, 310, 290, 500)}
    assert order(boxes) == ["L1", "L2", "R1"]


def test_a_section_label_below_both_columns_ends_the_run():
    # The end of one article in two columns, then a section label (left only) and the next article's title.
    boxes = {
        "L1": (72, 100, 290, 300), "R1": (320, 100, 540, 320),
        "label": (72, 360, 200, 380), "title": (72, 390, 540, 430),
    }
    assert order(boxes) == ["L1", "R1", "label", "title"]


def test_grid_rows_far_apart_are_still_read_column_by_column():
    boxes = {"c1": (72, 100, 290, 200), "c3": (320, 100, 540, 215), "c2": (72, 260, 290, 400), "c4": (320, 260, 540, 500)}
    assert order(boxes) == ["c1", "c2", "c3", "c4"]


def test_single_column_is_top_to_bottom():
    boxes = {"c": (72, 300, 540, 400), "a": (72, 100, 540, 150), "b": (72, 160, 300, 290)}
    assert order(boxes) == ["a", "b", "c"]


def test_three_columns_left_to_right():
    boxes = {"m": (230, 100, 380, 700), "r": (400, 100, 540, 700), "l": (72, 100, 210, 700)}
    assert order(boxes) == ["l", "m", "r"]


def test_a_box_overhanging_the_gutter_by_a_few_points_still_splits_columns():
    # A narrow margin-note column whose last box touches the main column's box (drop cap overhang).
    boxes = {
        "note1": (69, 630, 153, 660), "note2": (69, 700, 153, 734),
        "main": (148, 584, 348, 734),
    }
    assert order(boxes) == ["note1", "note2", "main"]
