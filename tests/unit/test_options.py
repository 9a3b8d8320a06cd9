"""Request options (app/pipeline/options.py): one validation for the API, jobs, the CLI and batch."""

from __future__ import annotations

import pickle

import pytest

from app.errors import InvalidParameter
from app.pipeline.options import (
    MIN_DPI, VL_NEEDS_SIDECAR, ConvertOptions, OptionError, options_from_fields, require_vl_available,
    resolve_options,
)


def test_missing_values_take_the_service_defaults_and_vl_its_own_dpi(make_settings) -> None:
    settings = make_settings(default_mode="ocr", default_dpi=150, vl_dpi=144)
    assert resolve_options(settings) == ConvertOptions(mode="ocr", pages=None, dpi=150, images="refer")
    assert resolve_options(settings, pages="") == ConvertOptions(mode="ocr", dpi=150)  # empty selection: all pages
    assert resolve_options(settings, mode="vl").dpi == 144


@pytest.mark.parametrize("blank", ["mode", "dpi", "images"])
def test_a_value_sent_empty_is_a_mistake_not_the_default(make_settings, blank) -> None:
    with pytest.raises(OptionError) as err:
        resolve_options(make_settings(), **{blank: " "})
    assert err.value.option == blank


def test_values_are_trimmed_and_dpi_read_from_text_or_int(make_settings) -> None:
    settings = make_settings()
    assert resolve_options(settings, mode=" text ", pages=" 1-3 ", dpi=" 300 ") == ConvertOptions(
        mode="text", pages="1-3", dpi=300)
    assert resolve_options(settings, dpi=MIN_DPI).dpi == MIN_DPI


@pytest.mark.parametrize(("changes", "option"), [
    ({"mode": "fast"}, "mode"),
    ({"dpi": "high"}, "dpi"),
    ({"dpi": MIN_DPI - 1}, "dpi"),
    ({"dpi": "401"}, "dpi"),  # past MAX_DPI (400 here)
])
def test_bad_values_are_422_naming_the_option(make_settings, changes, option) -> None:
    with pytest.raises(OptionError) as err:
        resolve_options(make_settings(max_dpi=400), **changes)
    assert isinstance(err.value, InvalidParameter) and err.value.status == 422
    assert err.value.option == option and err.value.message.startswith(f"{option}: ")


def test_form_fields_win_over_query_parameters_and_every_value_sent_is_checked(make_settings) -> None:
    options = options_from_fields(make_settings(), {"mode": "ocr"}, {"mode": "text", "dpi": "120"})
    assert (options.mode, options.dpi) == ("ocr", 120)
    with pytest.raises(OptionError) as err:  # overridden by the form, but wrong all the same
        options_from_fields(make_settings(), {"mode": "ocr"}, {"mode": "fast"})
    assert err.value.option == "mode"


def test_vl_without_a_sidecar_is_refused_and_other_modes_pass() -> None:
    with pytest.raises(OptionError) as err:
        require_vl_available(ConvertOptions(mode="vl"), vlm_enabled=False)
    assert err.value.problem == VL_NEEDS_SIDECAR
    require_vl_available(ConvertOptions(mode="vl"), vlm_enabled=True)
    require_vl_available(ConvertOptions(mode="ocr"), vlm_enabled=False)


def test_an_option_error_survives_the_trip_from_a_worker_process() -> None:
    copy = pickle.loads(pickle.dumps(OptionError("pages", "goes past the last page (3)")))
    assert (copy.option, copy.problem, copy.message) == ("pages", "goes past the last page (3)",
                                                         "pages: goes past the last page (3)")


@pytest.mark.parametrize(("value", "accepted"), [
    ("1", True), ("1-3,7", True), ("5-", True), (" 2 - 4 , 9 ", True), ("01", True), ("", True),
    ("0", False), ("00", False), ("0-2", False), ("1-0", False), ("1,0", False), ("x", False), ("1;2", False),
])
def test_the_published_pages_pattern_is_what_the_server_accepts(make_settings, value, accepted) -> None:
    # The syntax check (before the page count is known) and the OpenAPI pattern agree, also on page 0.
    import re

    from app.pipeline.options import PAGES_PATTERN

    assert bool(re.match(PAGES_PATTERN, value)) is accepted
    options_from_fields(make_settings(), {"pages": "1"}, {"pages": "1"})
    if accepted:
        options_from_fields(make_settings(), {"pages": "1"}, {"pages": value})  # overridden, but checked
    else:
        with pytest.raises(OptionError) as err:
            options_from_fields(make_settings(), {"pages": "1"}, {"pages": value})
        assert err.value.option == "pages"
