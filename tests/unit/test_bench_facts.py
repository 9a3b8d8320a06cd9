"""The olmOCR-style fact checkers in bench/facts.py, on hand-written page outputs (each can pass and fail)."""

from __future__ import annotations

import random

import pytest

from bench.facts import (
    PageOutput,
    best_distance,
    check_fact,
    linearize_latex,
    load_facts,
    match_starts,
    normalize_latex,
    normalize_text,
    parse_html_tables,
    parse_markdown_tables,
    summarize,
)


def page(markdown: str, *tables_html: str) -> PageOutput:
    return PageOutput(markdown=markdown, tables_html=tables_html)


def _brute_substring_distance(needle: str, haystack: str) -> int:
    # Textbook semi-global DP: free start and end in the haystack.
    previous = [0] * (len(haystack) + 1)
    for i, a in enumerate(needle, start=1):
        current = [i] + [0] * len(haystack)
        for j, b in enumerate(haystack, start=1):
            current[j] = min(previous[j - 1] + (a != b), previous[j] + 1, current[j - 1] + 1)
        previous = current
    return min(previous)


# --- normalisation and approximate search --------------------------------------------------------------------------
def test_normalize_unifies_quotes_dashes_ligatures_markdown_and_whitespace():
    raw = "## The \u201cof\ufb01ce\u201d \u2014 **bold**  and *it*\n\nnext\u2019s   line \\_x\\_ 5\u22123"
    assert normalize_text(raw) == "The \"office\" - bold and it next's line _x_ 5-3"


def test_best_distance_agrees_with_a_brute_force_dynamic_program():
    rng = random.Random(7)
    for _ in range(300):
        needle = "".join(rng.choice("abc") for _ in range(rng.randint(1, 9)))
        haystack = "".join(rng.choice("abcd") for _ in range(rng.randint(0, 30)))
        assert best_distance(needle, haystack) == _brute_substring_distance(needle, haystack), (needle, haystack)


def test_best_distance_handles_needles_longer_than_a_machine_word():
    needle = "x" * 40 + "middle" + "y" * 40
    assert best_distance(needle, "noise " + "x" * 40 + "midle" + "y" * 40 + " noise") == 1


def test_match_starts_reports_where_each_fuzzy_occurrence_begins():
    assert match_starts("cat", "a cat and a cot", 0) == [2]
    assert 12 in match_starts("cat", "a cat and a cot", 1)


# --- present / absent ----------------------------------------------------------------------------------------------
def test_present_passes_on_exact_text_and_fails_when_missing():
    fact = {"id": "p", "type": "present", "text": "The quick brown fox"}
    assert check_fact(fact, page("# Title\n\nThe quick  brown\nfox jumps.")).passed
    assert not check_fact(fact, page("A slow green turtle.")).passed


def test_present_honours_max_diffs_as_an_edit_budget():
    text = "corporate social responsibility"
    garbled = "corparate sociel responsibility"  # two substitutions
    assert not check_fact({"id": "p", "type": "present", "text": text}, page(garbled)).passed
    assert not check_fact({"id": "p", "type": "present", "text": text, "max_diffs": 1}, page(garbled)).passed
    assert check_fact({"id": "p", "type": "present", "text": text, "max_diffs": 2}, page(garbled)).passed


def test_present_is_case_sensitive_unless_the_fact_says_otherwise():
    assert not check_fact({"id": "p", "type": "present", "text": "Master Bath"}, page("MASTER BATH")).passed
    fact = {"id": "p", "type": "present", "text": "Master Bath", "case_sensitive": False}
    assert check_fact(fact, page("MASTER BATH")).passed


def test_present_sees_through_typographic_quotes_and_emphasis():
    fact = {"id": "p", "type": "present", "text": 'The term "corporate social responsibility" is in vogue'}
    assert check_fact(fact, page("The term \u201c**corporate** social responsibility\u201d is in vogue")).passed
    # TeX-style doubled single quotes, as text layers of LaTeX papers spell them
    assert check_fact(fact, page("The term \u2018\u2018corporate social responsibility\u2019\u2019 is in vogue")).passed
    assert not check_fact(fact, page("The term 'corporate social responsibility' is in vogue")).passed


def test_absent_fails_when_a_running_header_leaks_into_the_body():
    fact = {"id": "a", "type": "absent", "text": "PLOS Neglected Tropical Diseases | www.plosntds.org"}
    assert check_fact(fact, page("Body text about Lassa fever.")).passed
    leaked = page("Body text.\n\nPLOS Neglected Tropical Diseases | www.plosntds.org\n")
    verdict = check_fact(fact, leaked)
    assert not verdict.passed and "found" in verdict.reason


def test_absent_with_max_diffs_also_catches_near_copies():
    fact = {"id": "a", "type": "absent", "text": "Download date: 28 Dec 2018", "max_diffs": 4}
    assert not check_fact(fact, page("Downlaod date 28 Dec. 2018")).passed
    assert check_fact(fact, page("Nothing like that here at all")).passed


def test_absent_with_last_n_only_looks_at_the_end_of_the_page():
    fact = {"id": "a", "type": "absent", "text": "1", "last_n": 20}
    assert check_fact(fact, page("Table 1 shows results." + " words" * 10)).passed
    assert not check_fact(fact, page("Long body text without digits here.\n\n1")).passed


# --- order -----------------------------------------------------------------------------------------------------------
def test_order_passes_in_reading_order_and_fails_when_columns_are_swapped():
    fact = {"id": "o", "type": "order", "before": "Euler's Identity", "after": "Pythagorean Theorem"}
    assert check_fact(fact, page("1. Euler\u2019s Identity\n\n2. Pythagorean Theorem")).passed
    verdict = check_fact(fact, page("2. Pythagorean Theorem\n\n1. Euler's Identity"))
    assert not verdict.passed and "comes before" in verdict.reason


def test_order_fails_when_one_side_is_missing_and_honours_max_diffs():
    fact = {"id": "o", "type": "order", "before": "first part here", "after": "second part here", "max_diffs": 2}
    assert not check_fact(fact, page("only the first part here")).passed
    assert check_fact(fact, page("frist part here ... secnod part here")).passed


# --- tables ----------------------------------------------------------------------------------------------------------
MD_TABLE = """Some text.

| Source | Type | Tokens | Words |
|---|---|---|---|
| DCLM | Web | 3.71T | 3.32T |
| arXiv | Papers | 20.8B | 12.2B |
| OpenWebMath | Math | 12.2B | 11.8B |
| Algebraic Stack | Math proofs code | 11.8B | 3.7B |
"""


def test_markdown_tables_parse_into_a_grid():
    (table,) = parse_markdown_tables(MD_TABLE)
    assert table.n_rows == 5 and table.n_cols == 4
    assert table.texts[2][0] == "arXiv" and table.header_rows == {0}


@pytest.mark.parametrize(
    ("fact", "ok"),
    [
        ({"cell": "3.32T", "left": "3.71T"}, True),
        ({"cell": "3.32T", "left": "Web"}, False),
        ({"cell": "12.2B", "down": "11.8B"}, True),
        ({"cell": "11.8B", "up": "12.2B"}, True),
        ({"cell": "11.8B", "up": "20.8B"}, False),
        ({"cell": "Web", "right": "3.71T"}, True),
        ({"cell": "3.32T", "top_heading": "Words"}, True),
        ({"cell": "3.32T", "top_heading": "Tokens"}, False),
        ({"cell": "Math proofs code", "left_heading": "Algebraic Stack"}, True),
        ({"cell": "Math proofs code", "left_heading": "OpenWebMath"}, False),
        ({"cell": "47.2B"}, False),
    ],
)
def test_table_facts_check_the_cell_and_its_neighbours(fact, ok):
    assert check_fact({"id": "t", "type": "table", **fact}, page(MD_TABLE)).passed is ok


def test_table_fact_fails_without_any_table():
    verdict = check_fact({"id": "t", "type": "table", "cell": "Type"}, page("Source Type Tokens"))
    assert not verdict.passed and "no table" in verdict.reason


HTML_TABLE = """<table>
<tr><td rowspan="2"></td><td colspan="2">Year Ended</td></tr>
<tr><td>Jan 28, 2024</td><td>Jan 29, 2023</td></tr>
<tr><td>Research and development</td><td>2,532</td><td>1,892</td></tr>
<tr><td>Sales, general and administrative</td><td>1,136</td><td>680</td></tr>
</table>"""


def test_html_tables_expand_row_and_column_spans():
    (table,) = parse_html_tables(HTML_TABLE)
    assert table.n_rows == 4 and table.n_cols == 3
    assert table.texts[0][1] == table.texts[0][2] == "Year Ended"
    assert table.ids[0][1] == table.ids[0][2]


@pytest.mark.parametrize(
    ("fact", "ok"),
    [
        ({"cell": "1,136", "top_heading": "Year Ended"}, True),
        ({"cell": "680", "top_heading": "Year Ended"}, True),  # under the colspan
        ({"cell": "680", "up": "1,892"}, True),
        ({"cell": "680", "up": "2,532"}, False),
        ({"cell": "2,532", "left_heading": "Research and development"}, True),
        ({"cell": "1,136", "left_heading": "Research and development"}, False),
        ({"cell": "Year Ended"}, True),
    ],
)
def test_table_facts_read_html_from_table_blocks(fact, ok):
    out = page("Markdown without a table", HTML_TABLE)
    assert check_fact({"id": "t", "type": "table", **fact}, out).passed is ok


def test_left_and_right_neighbours_skip_the_same_spanning_cell():
    html = "<table><tr><td colspan='2'>wide</td><td>next</td></tr><tr><td>a</td><td>b</td><td>c</td></tr></table>"
    assert check_fact({"id": "t", "type": "table", "cell": "wide", "right": "next"}, page("", html)).passed
    assert check_fact({"id": "t", "type": "table", "cell": "b", "up": "wide"}, page("", html)).passed


# --- math ------------------------------------------------------------------------------------------------------------
def test_normalize_latex_ignores_spacing_sizing_and_redundant_braces():
    assert normalize_latex(r"$$ a^{2} + b^{2} = c^{2} $$") == normalize_latex("a^2+b^2=c^2")
    assert normalize_latex(r"\left( x_{i} \right)") == normalize_latex("(x_i)")
    assert normalize_latex(r"\lambda_{g^{\prime}}") == normalize_latex("\\lambda_{g'}")
    assert normalize_latex(r"\operatorname{Ann}_{R}") == normalize_latex(r"\mathrm{Ann}_R")
    assert normalize_latex("a^{23}") != normalize_latex("a^23")


def test_math_fact_passes_on_an_equivalent_latex_span_and_fails_on_a_different_formula():
    fact = {"id": "m", "type": "math", "math": r"\int_{a}^{b} f(x) d x=F(b)-F(a)"}
    assert check_fact(fact, page(r"The theorem: $$\int_a^b f(x)\,dx = F(b) - F(a)$$ holds.")).passed
    assert not check_fact(fact, page(r"The theorem: $$\int_a^b g(x)\,dx = G(b) - G(a)$$ holds.")).passed


def test_math_fact_accepts_the_formula_spelled_as_text():
    fact = {"id": "m", "type": "math", "math": r"e^{i \pi}+1=0"}
    assert linearize_latex(fact["math"]) == "eiπ+1=0"
    verdict = check_fact(fact, page("Euler: e iπ + 1 = 0 connects five constants."))
    assert verdict.passed and verdict.reason == "plain text"
    assert not check_fact(fact, page("Euler connects five constants.")).passed


# --- loading and summarising ------------------------------------------------------------------------------------------
def test_load_facts_skips_blank_lines_and_rejects_unknown_types(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a", "type": "present", "text": "x"}\n\n{"id": "b", "type": "absent", "text": "y"}\n')
    assert [f["id"] for f in load_facts(path)] == ["a", "b"]
    path.write_text('{"id": "c", "type": "baseline"}\n')
    with pytest.raises(ValueError, match="unknown fact type"):
        load_facts(path)


def test_summarize_reports_rates_per_type_and_overall():
    from bench.facts import Verdict

    results = [
        ({"type": "present"}, Verdict(True)),
        ({"type": "present"}, Verdict(False, "x")),
        ({"type": "absent"}, Verdict(True)),
    ]
    summary = summarize(results)
    assert summary["overall"] == {"passed": 2, "total": 3, "rate": 0.6667}
    assert summary["per_type"]["present"]["rate"] == 0.5
    assert summary["per_type"]["absent"]["rate"] == 1.0
