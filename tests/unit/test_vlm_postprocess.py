"""Post-processing of PaddleOCR-VL answers, checked against what the official pipeline produces."""

from __future__ import annotations

import pytest

from app.vlm.postprocess import (
    html_table_text,
    normalise_latex_delimiters,
    otsl_to_html,
    postprocess,
    truncate_repetitions,
)
from app.vlm.prompts import PROMPTS, chat_request, task_for


def test_otsl_plain_grid_becomes_html_rows_and_cells():
    html = otsl_to_html("<fcel>Region<fcel>Units<nl><fcel>North<fcel>1200<nl>")
    assert html == "<table><tr><td>Region</td><td>Units</td></tr><tr><td>North</td><td>1200</td></tr></table>"


def test_otsl_left_merge_becomes_colspan_and_up_merge_becomes_rowspan():
    html = otsl_to_html("<fcel>A<fcel>B<fcel>C<nl><fcel>wide<lcel><fcel>x<nl><ucel><ucel><fcel>y<nl>")
    assert '<td rowspan="2" colspan="2">wide</td>' in html
    assert html.count("<tr>") == 3
    # the covered cells of the 2x2 span produce no <td> of their own
    assert html.endswith("<tr><td>y</td></tr></table>")


def test_otsl_ragged_rows_are_padded_with_empty_cells():
    html = otsl_to_html("<fcel>A<fcel>B<fcel>C<nl><fcel>1<nl>")
    assert html == "<table><tr><td>A</td><td>B</td><td>C</td></tr><tr><td>1</td><td></td><td></td></tr></table>"


def test_otsl_cell_text_is_html_escaped():
    assert "<td>a &lt; b &amp; c</td>" in otsl_to_html("<fcel>a < b & c<nl>")


def test_non_otsl_table_answer_is_kept_as_text():
    assert otsl_to_html("just words") == ""
    assert postprocess("just words", "table") == ("just words", None)


def test_table_postprocess_gives_html_and_its_plain_text():
    text, html = postprocess("<fcel>a<fcel>b<nl><fcel>1<fcel>2<nl>", "table")
    assert html.startswith("<table>")
    assert text == "a\tb\n1\t2"
    assert html_table_text(html) == text


def test_inline_and_display_latex_delimiters_become_markdown_math():
    out = normalise_latex_delimiters(r"area \(\pi r^2\) and \[E=mc^2\]")
    assert "$ \\pi r^2 $" in out and "$$ E=mc^2 $$" in out
    assert "\\(" not in out and "\\[" not in out


def test_latex_conversion_needs_a_complete_pair_and_drops_stray_dollars():
    assert normalise_latex_delimiters(r"costs $5 \( only") == r"costs $5 \( only"
    assert normalise_latex_delimiters(r"$5 and \(x\)") == "5 and  $ x $"


def test_long_single_line_ending_in_a_loop_is_cut_to_the_prefix():
    looped = "Total revenue was stable. " + "and the the the market " * 30
    assert truncate_repetitions(looped).startswith("Total revenue was stable.")
    assert "market" not in truncate_repetitions(looped)


def test_string_made_of_one_repeated_unit_collapses_to_the_unit():
    assert truncate_repetitions("ab" * 40) == "ab"


def test_many_identical_lines_collapse_to_one():
    assert truncate_repetitions("\n".join(["same line here"] * 12)) == "same line here"


def test_short_or_varied_text_is_untouched():
    assert truncate_repetitions("ha ha ha") == "ha ha ha"
    varied = "\n".join(f"line {i} says something different" for i in range(20))
    assert truncate_repetitions(varied) == varied


def test_tables_tolerate_repetition_below_5000_chars():
    table = "<fcel>0" * 400 + "<nl>"
    assert postprocess(table, "table")[1].count("<td>0</td>") == 400


@pytest.mark.parametrize(
    ("label", "task"),
    [("text", "ocr"), ("title", "ocr"), ("caption", "ocr"), ("list", "ocr"), ("table", "table"),
     ("formula", "formula"), ("figure", None), ("chart", None)],
)
def test_region_labels_map_to_the_official_prompts(label, task):
    assert task_for(label) == task


def test_charts_are_sent_only_when_chart_recognition_is_on():
    assert task_for("chart", chart_recognition=True) == "chart"
    assert PROMPTS["chart"] == "Chart Recognition:"


def test_request_body_has_the_official_shape():
    body = chat_request(model="PaddleOCR-VL-0.9B", jpeg=b"\xff\xd8jpeg", task="table", max_completion_tokens=4096)
    content = body["messages"][0]["content"]
    assert len(body["messages"]) == 1 and body["messages"][0]["role"] == "user"
    assert content[0]["type"] == "image_url" and content[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert content[1] == {"type": "text", "text": "Table Recognition:"}
    assert body["temperature"] == 0 and body["max_completion_tokens"] == 4096
    assert body["skip_special_tokens"] is True
    # pixel bounds are the server's (--mm-processor-kwargs): newer vLLM rejects them per request with 400
    assert "mm_processor_kwargs" not in body
    assert "repetition_penalty" in body
