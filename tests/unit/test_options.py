"""Request options (app/pipeline/options.py): one model, validated once with the service as context, for the
API, jobs, MCP, the CLI and batch."""

from __future__ import annotations

import pickle

import pytest

from app.errors import InvalidParameter
from app.pipeline.options import (
    MIN_DPI, VL_NEEDS_SIDECAR, ConvertOptions, OptionContext, OptionError, resolve_options,
)


def test_missing_values_take_the_service_defaults_and_vl_its_own_dpi(make_settings) -> None:
    settings = make_settings(default_mode="ocr", default_dpi=150, vl_dpi=144)
    assert resolve_options(settings) == ConvertOptions(mode="ocr", pages=None, dpi=150, images="refer")
    assert resolve_options(settings, pages="") == ConvertOptions(mode="ocr", dpi=150)  # empty selection: all pages
    assert resolve_options(settings, mode="vl", vl_available=True).dpi == 144


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
    assert isinstance(err.value, InvalidParameter) and err.value.kind == "invalid_request"
    assert err.value.option == option and err.value.message.startswith(f"{option}: ")


def test_the_rules_that_need_no_service_hold_for_options_built_in_code() -> None:
    # batch, warm-up and tests build ConvertOptions directly: the floor, the names and the grammar still apply.
    for bad, option in (({"dpi": MIN_DPI - 1}, "dpi"), ({"mode": "fast"}, "mode"), ({"pages": "0"}, "pages"),
                        ({"pages": "3-1"}, "pages"), ({"images": "inline"}, "images"), ({"lang": "x" * 65}, "lang")):
        with pytest.raises(OptionError) as err:
            ConvertOptions(**bad)
        assert err.value.option == option
    # Without a context no setting is consulted: the model's own defaults, any DPI above the floor.
    assert ConvertOptions(dpi=5000).dpi == 5000 and ConvertOptions().mode == "auto"


def test_the_context_brings_the_service_defaults_and_limits(make_settings) -> None:
    settings = make_settings(default_mode="ocr", default_dpi=150, max_dpi=300)
    context = OptionContext(settings)
    assert ConvertOptions.model_validate({"dpi": None}, context=context).dpi == 150
    with pytest.raises(OptionError, match="between 36 and 300"):
        ConvertOptions.model_validate({"dpi": 301}, context=context)


def test_vl_without_a_sidecar_is_refused_and_other_modes_pass(make_settings) -> None:
    settings = make_settings()
    with pytest.raises(OptionError) as err:
        resolve_options(settings, mode="vl", vl_available=False)
    assert err.value.problem == VL_NEEDS_SIDECAR
    assert resolve_options(settings, mode="vl", vl_available=True).mode == "vl"
    assert resolve_options(settings, mode="ocr", vl_available=False).mode == "ocr"


@pytest.mark.parametrize(("mode", "refused"), [("text", True), ("ocr", False), ("auto", False)])
def test_an_image_upload_refuses_the_text_mode(make_settings, mode, refused) -> None:
    if refused:
        with pytest.raises(InvalidParameter, match="PNG image has none"):
            resolve_options(make_settings(), mode=mode, image_format="PNG")
    else:
        assert resolve_options(make_settings(), mode=mode, image_format="PNG").mode == mode
    assert resolve_options(make_settings(), mode=mode).mode == mode  # a PDF


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
    if accepted:
        resolve_options(make_settings(), pages=value)
    else:
        with pytest.raises(OptionError) as err:
            resolve_options(make_settings(), pages=value)
        assert err.value.option == "pages"


def test_the_http_forms_and_query_are_documented_from_the_model() -> None:
    from app.api.request_form import JobRequest, form_schema, query_parameters

    form = form_schema(ConvertOptions)["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file"] and set(form["properties"]) == {"file", *ConvertOptions.model_fields}
    assert form["properties"]["dpi"] == {**form["properties"]["dpi"], "type": "integer", "minimum": MIN_DPI}
    # A plain bounded string: a regular expression of the syntax made schemathesis' generator 20x slower.
    assert form["properties"]["lang"]["maxLength"] == 64 and "pattern" not in form["properties"]["lang"]
    assert all("default" not in p and "anyOf" not in p for p in form["properties"].values())  # settings decide
    query = {p["name"]: p["schema"] for p in query_parameters()}
    assert query["dpi"]["type"] == "integer" and query["pages"]["type"] == "string" and "pattern" in query["pages"]
    jobs = form_schema(JobRequest)["content"]["multipart/form-data"]["schema"]["properties"]
    assert set(jobs) == {*form["properties"], "callback_url"}


def test_a_job_request_checks_its_callback_with_the_service_and_stores_plain_options(make_settings) -> None:
    from app.api.request_form import JobRequest

    context = OptionContext(make_settings(callback_allowed_hosts="hooks.example", callback_secret="s" * 32))
    request = JobRequest.model_validate({"mode": "text", "callback_url": "https://hooks.example/x#frag"},
                                        context=context)
    assert request.callback_url == "https://hooks.example/x" and type(request.options()) is ConvertOptions
    assert request.options().mode == "text"
    with pytest.raises(InvalidParameter, match="not in CALLBACK_ALLOWED_HOSTS"):
        JobRequest.model_validate({"callback_url": "https://evil.example/"}, context=context)
