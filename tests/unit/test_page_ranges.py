"""Page selection: `"1-3,7,10-"` style, 1-based, validated against the document."""

from __future__ import annotations

import pytest

from app.errors import InvalidParameter
from app.runtime.intake import inspect_pdf
from app.pipeline.options import parse_page_ranges, resolve_options
from tests import pdfgen


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        ("", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        ("1", [0]),
        ("1-3,7", [0, 1, 2, 6]),
        (" 2 - 4 , 9 ", [1, 2, 3, 8]),
        ("8-", [7, 8, 9]),
        ("3,1,2", [0, 1, 2]),
        ("10", [9]),
    ],
)
def test_valid_selections_become_sorted_zero_based_indices(spec, expected):
    assert parse_page_ranges(spec, 10) == expected


@pytest.mark.parametrize("spec", ["0", "4-2", "11", "1-11", "abc", "1,,2", "-3", "1-2-3", "2.5",
                                  "\u0661", "\uff11", "1-\u0663", "1,1,1", "1-3,2", "8-,9"])
def test_invalid_selections_are_refused_with_a_readable_message(spec):
    with pytest.raises(InvalidParameter, match="pages"):
        parse_page_ranges(spec, 10)


def test_intake_applies_the_selection_to_the_file(tmp_path, make_settings):
    path = pdfgen.text_pdf(tmp_path / "doc.pdf", pages=5)
    assert inspect_pdf(path, make_settings(), "2-3,5").page_indices == [1, 2, 4]
    assert inspect_pdf(path, make_settings(), "4-").page_indices == [3, 4]
    with pytest.raises(InvalidParameter):
        inspect_pdf(path, make_settings(), "6")


@pytest.mark.parametrize(("raw", "expected"), [(None, "auto"), ("ocr", "ocr"), (" text ", "text")])
def test_mode_defaults_only_when_absent(make_settings, raw, expected):
    assert resolve_options(make_settings(default_mode="auto"), mode=raw).mode == expected


@pytest.mark.parametrize("raw", ["", "  ", "OCR", "magic"])
def test_empty_or_unknown_mode_is_refused(make_settings, raw):
    with pytest.raises(InvalidParameter, match="mode"):
        resolve_options(make_settings(), mode=raw)


@pytest.mark.parametrize("raw", ["", "abc", "\u0661\u0665\u0660", "1_50", "150.0", "35", "401", True, 150.0])
def test_dpi_must_be_ascii_digits_in_bounds(make_settings, raw):
    with pytest.raises(InvalidParameter, match="dpi"):
        resolve_options(make_settings(max_dpi=400), dpi=raw)


def test_dpi_defaults_only_when_absent(make_settings):
    settings = make_settings(default_dpi=200, max_dpi=400)
    assert resolve_options(settings, mode="ocr").dpi == 200 and resolve_options(settings, dpi=" 150 ").dpi == 150
