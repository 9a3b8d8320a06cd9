"""The official PaddleOCR-VL pipeline's overlap filter (PaddleX 3.7.2 `filter_overlap_boxes`) on PaddleX-labelled
regions in pixels."""

from __future__ import annotations

from app.pipeline.layout.overlap import drop_overlapping
from app.pipeline.layout.paddlex import regions_from_paddlex
from app.pipeline.primitives import Region


def region(kind: str, bbox: tuple[float, float, float, float]) -> Region:
    return Region(label="text", bbox=bbox, kind=kind)


def kinds(regions: list[Region]) -> list[str | None]:
    return [r.kind for r in regions]


def test_a_box_mostly_inside_a_larger_one_of_the_same_kind_goes_and_the_order_is_kept():
    title = region("paragraph_title", (0, 0, 500, 40))
    outer = region("text", (0, 50, 500, 300))
    inner = region("text", (10, 60, 400, 120))  # wholly inside: a duplicate request
    after = region("text", (0, 320, 500, 400))
    assert drop_overlapping([title, inner, outer, after]) == [title, outer, after]


def test_boxes_overlapping_by_no_more_than_seven_tenths_of_the_smaller_both_stay():
    a = region("text", (0, 0, 100, 100))
    b = region("text", (30, 0, 130, 100))  # 70 % of b lies inside a: not more than 0.7
    c = region("text", (29, 0, 129, 100))  # 71 %: the smaller (c, equal area: the later one) goes
    assert drop_overlapping([a, b]) == [a, b]
    assert drop_overlapping([a, c]) == [a]


def test_nested_boxes_whose_outlines_barely_overlap_both_stay():
    # PP-DocLayoutV3 (shape mode `auto`): an L-shaped paragraph round a picture's corner, and a text block in the
    # corner the L leaves free. The boxes nest (more than 0.7 of the small one inside the big one), the outlines
    # do not: upstream keeps both (`filter_overlap_boxes` checks the polygons before dropping).
    ell = Region(label="text", bbox=(0, 0, 200, 200), kind="text",
                 polygon=((0, 0), (200, 0), (200, 100), (100, 100), (100, 200), (0, 200)))
    corner = Region(label="text", bbox=(110, 110, 200, 200), kind="text",
                    polygon=((110, 110), (200, 110), (200, 200), (110, 200)))
    assert drop_overlapping([ell, corner]) == [ell, corner]
    # the same boxes without outlines (PP-DocLayoutV2, or shape mode `rect`): the smaller goes
    assert drop_overlapping([region("text", ell.bbox), region("text", corner.bbox)]) == [region("text", ell.bbox)]
    # outlines that do overlap: the smaller goes as before
    inside = Region(label="text", bbox=(10, 10, 90, 90), kind="text",
                    polygon=((10, 10), (90, 10), (90, 90), (10, 90)))
    assert drop_overlapping([ell, inside]) == [ell]


def test_a_caption_or_text_inside_a_picture_or_chart_stays_beside_it():
    for picture in ("image", "chart", "seal"):
        figure = region(picture, (0, 0, 600, 400))
        caption = region("figure_title", (20, 350, 300, 390))
        assert drop_overlapping([figure, caption]) == [figure, caption], picture


def test_text_inside_a_table_goes_since_the_cells_hold_it_but_a_picture_inside_a_table_stays():
    table = region("table", (0, 0, 600, 400))
    text = region("text", (20, 20, 300, 60))
    image = region("image", (400, 300, 580, 390))
    assert drop_overlapping([table, text, image]) == [table, image]


def test_two_pictures_of_one_kind_nested_keep_the_larger():
    outer, inner = region("image", (0, 0, 600, 400)), region("image", (10, 10, 300, 200))
    assert drop_overlapping([inner, outer]) == [outer]


def test_an_inline_formula_more_than_half_inside_another_box_goes_whatever_the_sizes():
    text = region("text", (0, 0, 400, 40))
    formula = region("inline_formula", (290, 5, 490, 35))  # 55 % of it inside the text line
    assert drop_overlapping([formula, text]) == [text]
    assert drop_overlapping([text, region("inline_formula", (350, 5, 550, 35))]) == [
        text, region("inline_formula", (350, 5, 550, 35))]  # a quarter inside: both stay


def test_reference_containers_and_slivers_go():
    kept = drop_overlapping([
        region("reference", (0, 0, 500, 500)),
        region("reference_content", (0, 0, 500, 60)),
        region("text", (0, 100, 5.9, 300)),
        region("text", (0, 400, 500, 405.5)),
    ])
    assert kinds(kept) == ["reference_content"]


def test_a_dropped_box_takes_no_further_part():
    # b is inside a and goes; c then overlaps only b, so nothing else drops it.
    a = region("text", (0, 0, 100, 100))
    b = region("text", (50, 50, 100, 100))
    c = region("text", (60, 60, 160, 160))
    assert drop_overlapping([a, b, c]) == [a, c]


def test_the_paddlex_adapter_applies_the_filter_and_numbers_what_is_left_in_order():
    result = {"boxes": [
        {"label": "text", "score": 0.9, "coordinate": [0, 0, 500, 300]},
        {"label": "text", "score": 0.8, "coordinate": [10, 10, 400, 100]},
        {"label": "paragraph_title", "score": 0.9, "coordinate": [0, 320, 500, 360]},
    ]}
    regions = regions_from_paddlex(result, width=1000, height=1000)
    assert [(r.kind, r.order) for r in regions] == [("text", 0), ("paragraph_title", 1)]
