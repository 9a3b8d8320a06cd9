"""Underscores tesseract drops between two words, found in the pixels (recognize/underscores.py)."""

from __future__ import annotations

import numpy as np

from app.pipeline.recognize.tesseract import Word
from app.pipeline.recognize.underscores import join_underscores

LEFT = Word("начальная", (20.0, 20.0, 120.0, 50.0), 0.96, True)
RIGHT = Word("кодировка", (140.0, 20.0, 240.0, 50.0), 0.95, True)


def _page(stroke_rows: tuple[int, int] | None) -> np.ndarray:
    """A white line with two word blocks and, between them, a 2-pixel stroke over `stroke_rows` (or none)."""
    image = np.full((80, 260, 3), 255, dtype=np.uint8)
    image[22:50, 20:120] = 0
    image[22:50, 140:240] = 0
    if stroke_rows is not None:
        image[stroke_rows[0]:stroke_rows[1], 118:142] = 0
    return image


def test_a_stroke_at_the_foot_of_the_gap_joins_the_words_with_an_underscore():
    joined = join_underscores([LEFT, RIGHT], _page((51, 53)))
    assert [w.text for w in joined] == ["начальная_кодировка"]
    assert joined[0].bbox == (20.0, 20.0, 240.0, 50.0) and joined[0].in_dictionary


def test_a_dash_half_way_up_or_an_empty_gap_keeps_two_words():
    assert [w.text for w in join_underscores([LEFT, RIGHT], _page((34, 36)))] == ["начальная", "кодировка"]
    assert [w.text for w in join_underscores([LEFT, RIGHT], _page(None))] == ["начальная", "кодировка"]


def test_a_thick_bar_or_ink_above_the_stroke_is_no_underscore():
    page = _page((46, 56))  # ten pixels thick: a rule or a block, not an underscore
    assert len(join_underscores([LEFT, RIGHT], page)) == 2
    page = _page((51, 53))
    page[25:45, 128:132] = 0  # a letter tesseract left out stands in the gap
    assert len(join_underscores([LEFT, RIGHT], page)) == 2


def test_an_underscore_tesseract_kept_on_one_side_is_glued_to_its_neighbour():
    af = Word("AF", (20.0, 20.0, 50.0, 50.0), 0.9)
    rest = Word("_UNSPEC", (56.0, 20.0, 160.0, 50.0), 0.9)
    far = Word("_x", (400.0, 20.0, 430.0, 50.0), 0.9)
    assert [w.text for w in join_underscores([af, rest], _page(None))] == ["AF_UNSPEC"]
    assert [w.text for w in join_underscores([af, far], np.full((80, 460, 3), 255, np.uint8))] == ["AF", "_x"]


def _touching_page(stem_above: bool) -> np.ndarray:
    """Two words whose boxes touch at x=140: letters (blocks) end at 120 and start at 160; the right box starts with
    a 2-pixel stroke at its foot (rows 48-50), under nothing, or under a letter's stem (д's flat foot)."""
    image = np.full((80, 260, 3), 255, dtype=np.uint8)
    image[22:44, 20:120] = 0
    image[22:44, 160:240] = 0
    image[48:50, 140:158] = 0
    if stem_above:
        image[30:48, 142:145] = 0
    return image


def test_a_stroke_at_the_foot_where_two_boxes_touch_is_an_underscore_a_letters_foot_is_not():
    left = Word("--output=файл", (20.0, 20.0, 140.0, 50.0), 0.9)
    right = Word("результата", (140.0, 20.0, 240.0, 50.0), 0.9)
    assert [w.text for w in join_underscores([left, right], _touching_page(False))] == ["--output=файл_результата"]
    assert len(join_underscores([left, right], _touching_page(True))) == 2
