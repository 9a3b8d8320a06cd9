"""Page assembly on synthetic regions and lines: order, furniture, tables, headings, lists, preset regions."""

from __future__ import annotations

from app.pipeline.assemble import build_page
from app.pipeline.primitives import Region, TextLine

W, H = 612.0, 792.0


def line(text: str, x0: float, y0: float, *, size: float = 10.0, bold: bool = False, width: float | None = None,
         font: bool = True) -> TextLine:
    """A text-layer line (font known) or, with font=False, an OCR line (box only)."""
    x1 = x0 + (width if width is not None else 0.5 * size * len(text))
    return TextLine(text=text, bbox=(x0, y0, x1, y0 + 1.2 * size), font_size=size if font else None, bold=bold)


def column(words: list[str], x0: float, y0: float, *, width: float = 210.0, lead: float = 14.0) -> list[TextLine]:
    return [line(w, x0, y0 + i * lead, width=width) for i, w in enumerate(words)]


def page(lines, regions=(), rulings=(), source="text"):
    return build_page(page_number=1, width=W, height=H, source=source, regions=list(regions), lines=list(lines),
                      rulings=list(rulings))


LEFT = ["alpha one starts the left column and", "alpha two continues the left column", "alpha three ends it."]
RIGHT = ["omega one starts the right column and", "omega two continues the right column", "omega three ends it."]


def two_column_lines() -> list[TextLine]:
    title = line("A Study of Two Columns", 72, 80, size=20, bold=True)
    return [title, *column(LEFT, 72, 140), *column(RIGHT, 330, 140)]


def test_two_column_text_mode_reads_title_then_left_then_right_column():
    md = page(two_column_lines()).markdown
    assert md.index("# A Study of Two Columns") < md.index("alpha one") < md.index("alpha three")
    assert md.index("alpha three") < md.index("omega one")
    # Lines of one paragraph are joined with single spaces, never interleaved with the other column.
    assert "alpha one starts the left column and alpha two continues the left column alpha three ends it." in md


def test_two_column_layout_regions_read_left_column_first():
    regions = [
        Region("title", (70, 78, 400, 106), 0.9),
        Region("text", (70, 138, 285, 185), 0.9),
        Region("text", (328, 138, 545, 185), 0.9),
    ]
    result = page(two_column_lines(), regions)
    texts = [b.text for b in result.blocks]
    assert texts[0] == "A Study of Two Columns"
    assert texts[1].startswith("alpha one") and texts[2].startswith("omega one")
    assert [b.order for b in result.blocks] == list(range(len(result.blocks)))


def test_headers_footers_and_page_numbers_stay_in_blocks_but_not_in_markdown():
    lines = [
        line("Journal of Testing Vol 3", 72, 20, size=8),
        *column(LEFT, 72, 100, width=400),
        line("Confidential - do not distribute", 200, 750, size=8),
        line("7", 300, 765, size=8),
    ]
    result = page(lines)
    kinds = {b.text: b.type for b in result.blocks}
    assert kinds["Journal of Testing Vol 3"] == "header"
    assert kinds["Confidential - do not distribute"] == "footer"
    assert kinds["7"] == "page_number"
    assert "Journal" not in result.markdown and "Confidential" not in result.markdown
    assert result.markdown.strip().endswith("alpha three ends it.")


def test_a_paragraph_the_layout_labels_header_at_the_top_of_a_page_stays_text():
    # Russian manuals: the layout model labels the page's opening paragraph `header` (and the body `reference`).
    paragraph = ["Эта программа читает файлы и выводит их содержимое на стандартный",
                 "вывод; если файл не задан, читается стандартный ввод, а ошибки",
                 "записываются в поток ошибок с указанием имени программы и файла."]
    lines = [line("Руководство пользователя", 72, 20, size=8),
             *[line(text, 72, 60 + 14 * i, width=460) for i, text in enumerate(paragraph)],
             line("Второй абзац идёт дальше по странице.", 72, 300, width=300)]
    regions = [Region("header", (70, 18, 200, 32), 0.9), Region("header", (70, 58, 535, 104), 0.8),
               Region("text", (70, 298, 375, 314), 0.9)]
    result = page(lines, regions)
    assert "Руководство пользователя" not in result.markdown  # short, in the margin: a running head
    for text in paragraph:
        assert text in result.markdown
    kinds = {block.text.split()[0]: block.type for block in result.blocks}
    assert kinds["Руководство"] == "header" and kinds["Эта"] == "text"


def test_layout_header_label_is_trusted_only_near_the_top_edge():
    lines = [line("Running head", 72, 20, size=8), line("Not a header at all", 72, 400, size=10)]
    regions = [Region("header", (70, 18, 200, 32), 0.9), Region("header", (70, 398, 300, 414), 0.6)]
    result = page(lines, regions)
    assert "Running head" not in result.markdown
    assert "Not a header at all" in result.markdown


def test_lines_no_region_covers_are_kept_as_text():
    lines = [*column(LEFT, 72, 100, width=400), line("An orphan line nobody detected", 72, 300, width=300)]
    regions = [Region("text", (70, 98, 480, 145), 0.9)]
    md = page(lines, regions).markdown
    assert "alpha two continues" in md and "An orphan line nobody detected" in md


def test_headings_from_font_size_and_weight_in_text_mode():
    lines = [
        line("Big Document Title", 72, 60, size=24, bold=True),
        line("Section heading", 72, 120, size=14, bold=True),
        *column(LEFT, 72, 150, width=400),
        line("Bold run-in heading", 72, 220, size=10, bold=True),
        *column(RIGHT, 72, 240, width=400),
    ]
    result = page(lines)
    md = result.markdown
    assert "# Big Document Title" in md and "## Section heading" in md and "## Bold run-in heading" in md
    assert {b.text: b.level for b in result.blocks if b.type == "title"} == {
        "Big Document Title": 1, "Section heading": 2, "Bold run-in heading": 2,
    }


def test_bullets_become_markdown_list_items_with_wrapped_lines_joined():
    lines = [
        line("• first item that wraps onto", 72, 100, width=300),
        line("a second line", 84, 114, width=100),
        line("• second item", 72, 128, width=120),
    ]
    result = page(lines)
    assert "- first item that wraps onto a second line\n- second item" in result.markdown
    assert [b.type for b in result.blocks] == ["list"]


def test_hyphenated_line_breaks_are_rejoined():
    lines = [line("the experi-", 72, 100, width=300), line("ment worked well.", 72, 114, width=300)]
    assert "the experiment worked well." in page(lines).markdown


def test_table_region_with_rulings_gives_markdown_and_html():
    cells = (("Name", "Qty"), ("Bolts", "12"), ("Nuts", "40"))
    lines = [line(t, 80 + c * 100, 200 + r * 20, width=40) for r, row in enumerate(cells) for c, t in enumerate(row)]
    rulings = [(72, 196 + r * 20, 272, 196.6 + r * 20) for r in range(4)]
    rulings += [(72 + c * 100, 196, 72.6 + c * 100, 256) for c in range(3)]
    result = page(lines, [Region("table", (70, 194, 275, 258), 0.95)], rulings)
    table = next(b for b in result.blocks if b.type == "table")
    assert "| Name | Qty |" in result.markdown and "| Nuts | 40 |" in result.markdown
    assert table.html is not None and "<th>Name</th>" in table.html and "<td>Bolts</td><td>12</td>" in table.html


def test_ruled_table_is_found_without_any_layout():
    cells = (("Name", "Qty"), ("Bolts", "12"), ("Nuts", "40"))
    lines = [line(t, 80 + c * 100, 200 + r * 20, width=40) for r, row in enumerate(cells) for c, t in enumerate(row)]
    rulings = [(72, 196 + r * 20, 272, 196.6 + r * 20) for r in range(4)]
    result = page(lines, [], rulings)
    assert [b.type for b in result.blocks] == ["table"]
    assert "| Bolts | 12 |" in result.markdown


def test_table_from_ocr_lines_without_rulings():
    cells = (("City", "Pop"), ("Oslo", "709"), ("Rome", "2873"), ("Lima", "9751"))
    lines = [line(t, 80 + c * 150 + (r % 2), 300 + r * 25 + (c % 2), width=45, font=False)
             for r, row in enumerate(cells) for c, t in enumerate(row)]
    result = page(lines, [Region("table", (70, 290, 300, 410), 0.9)], source="ocr")
    assert "| City | Pop |" in result.markdown
    assert "| Rome | 2873 |" in result.markdown


def test_figures_are_noted_with_their_box_and_keep_their_text():
    lines = [line("axis label", 120, 320, width=60)]
    result = page(lines, [Region("figure", (100, 300, 400, 500), 0.8)])
    figure = next(b for b in result.blocks if b.type == "figure")
    assert figure.bbox == (100, 300, 400, 500) and figure.text == "axis label"
    assert "![figure](#bbox=100,300,400,500)" in result.markdown


def test_preset_region_text_and_html_are_used_as_is():
    regions = [
        Region("title", (72, 50, 500, 80), 0.9, text="Recognised Title"),
        Region("text", (72, 100, 500, 200), 0.9, text="Paragraph the VLM read."),
        Region("table", (72, 220, 500, 300), 0.9, html="<table><tr><td>x</td></tr></table>"),
        Region("formula", (72, 320, 500, 350), 0.9, text="E = mc^2"),
    ]
    result = page([], regions, source="vl")
    md = result.markdown
    assert md.index("## Recognised Title") < md.index("Paragraph the VLM read.") < md.index("<table>")
    assert "$$\nE = mc^2\n$$" in md
    assert next(b for b in result.blocks if b.type == "table").html == "<table><tr><td>x</td></tr></table>"


def test_empty_page_gives_empty_markdown():
    result = page([])
    assert result.markdown == "" and result.blocks == [] and result.page == 1 and result.source == "text"


def test_a_bare_number_ending_a_page_is_its_page_number_even_mid_page():
    # A cropped page: the folio "62" sits at 63% of the height, below everything else, centred.
    lines = [*column(LEFT, 72, 100, width=400), line("62", 303, 499, width=6)]
    result = page(lines)
    assert {b.text: b.type for b in result.blocks}["62"] == "page_number"
    assert "62" not in result.markdown


def test_words_that_look_like_roman_numerals_are_not_page_numbers():
    from app.pipeline.textblocks import is_folio

    assert [is_folio(t) for t in ("12", "- 7 -", "Page 3", "3 of 10", "xiv")] == [True] * 5
    assert [is_folio(t) for t in ("did", "civil", "lid", "12 apples")] == [False] * 4


def test_spread_last_row_above_the_bottom_band_is_a_footer():
    # "Revision  P/N  date" spread over the last row at 89% of the page height: a footer, not body text.
    body = column(["The manual describes the instrument in detail and", "explains how to set it up for use."], 72, 600,
                  width=400)
    foot = [line("Revision: 2.4", 72, 703), line("P/N 119-036", 276, 703), line("10 June 2019", 496, 703)]
    result = page(body + foot)
    assert "Revision" not in result.markdown and "10 June 2019" not in result.markdown
    assert "explains how to set it up" in result.markdown
    assert {b.type for b in result.blocks if b.text.startswith(("Revision", "P/N", "10 June"))} == {"footer"}


def test_small_print_last_line_near_the_bottom_is_a_footer_but_body_size_text_is_not():
    body = column(["Presenting author and co-authors of the talk", "are listed on this title page"], 72, 300,
                  width=400)
    small = line("NETS 2015", 640, 700, size=7)
    assert "NETS 2015" not in page([*body, small]).markdown
    same_size = line("Closing remark", 72, 700)
    assert "Closing remark" in page([*body, same_size]).markdown


def test_ruled_table_inside_a_layout_figure_becomes_a_table():
    rows = [("Topic", "ReACT", "Hypo"), ("Dialog", "1.00", "0.60"), ("Measure", "0.87", "0.40"),
            ("Place", "0.90", "0.80")]
    lines = [line(text, 100 + c * 120, 120 + r * 14, width=40) for r, row in enumerate(rows) for c, text in enumerate(row)]
    rulings = [(95, 115, 400, 116), (95, 133, 400, 134), (95, 178, 400, 179)]
    result = page(lines, [Region("figure", (90, 110, 410, 185), 0.8)], rulings, source="text")
    assert [b.type for b in result.blocks] == ["table"]
    assert "| Measure | 0.87 | 0.40 |" in result.markdown


def test_auto_mode_promotes_a_larger_or_bold_line_opening_a_layout_text_region():
    heading = line("Results and Discussion", 72, 100, size=14, bold=True)
    body = column(["Alpha one starts the section and", "alpha two ends it."], 72, 122, width=400)
    lone = line("Related Work", 72, 200, size=10, bold=True)
    more = column(RIGHT, 72, 240, width=400)
    regions = [Region(label="text", bbox=(70, 98, 474, 165)), Region(label="text", bbox=(70, 198, 474, 214)),
               Region(label="text", bbox=(70, 238, 474, 283))]
    result = page([heading, *body, lone, *more], regions)
    assert "## Results and Discussion\n\nAlpha one" in result.markdown
    assert "## Related Work" in result.markdown
    assert {b.text: b.level for b in result.blocks if b.type == "title"} == {
        "Results and Discussion": 2, "Related Work": 2}


def test_auto_mode_keeps_a_large_lead_in_that_runs_on_into_its_paragraph_as_text():
    lead_in = line("Over the past three decades", 72, 100, size=14)
    rest = column(["increasing numbers of studies have", "looked at this question."], 72, 122, width=400)
    result = page([lead_in, *rest], [Region(label="text", bbox=(70, 98, 474, 150))])
    assert not [b for b in result.blocks if b.type == "title"]
    assert "#" not in result.markdown


def test_text_region_inside_a_figure_keeps_lines_its_box_clips():
    # The layout drew a figure round a whole panel and a text box inside it that clips the paragraph's first and
    # last lines by a few points: the paragraph must still come out whole, in one block.
    lines = column(["Connects five constants and", "reveals a deep link between", "them and trigonometry."], 80, 200,
                   width=280)
    regions = [Region(label="figure", bbox=(50, 100, 560, 500)), Region(label="text", bbox=(78, 203, 362, 236))]
    result = page(lines, regions)
    texts = [b.text for b in result.blocks if b.type == "text"]
    assert texts == ["Connects five constants and reveals a deep link between them and trigonometry."]


def test_vl_blocks_keep_the_layout_models_reading_order():
    # PP-DocLayoutV2 read the right column first (say, a sidebar it ranks first); XY-cut would read left first.
    regions = [
        Region("text", (330, 140, 540, 200), 0.9, text="Right column, read first.", order=0),
        Region("text", (72, 140, 282, 200), 0.9, text="Left column, read second.", order=1),
        Region("figure", (72, 220, 282, 300), 0.9, order=2),
        Region("footer", (72, 760, 540, 780), 0.9, text="Footer", order=3),
    ]
    md = page([], regions, source="vl").markdown
    assert md.index("Right column") < md.index("Left column") < md.index("![")
    without_order = [Region(r.label, r.bbox, r.score, text=r.text) for r in regions]
    md = page([], without_order, source="vl").markdown
    assert md.index("Left column") < md.index("Right column")  # no model order: our own reading order


# --- formula typing (app/pipeline/formula.py) ---------------------------------------------------------------------
def test_a_heading_the_layout_calls_a_formula_comes_out_as_a_heading():
    heading = line("Changes to packages in the tools category", 72, 100, size=14, font=False)
    body = [line("The tools category gained three packages this release and", 72, 130, font=False),
            line("lost one that nobody used.", 72, 144, font=False)]
    regions = [Region("formula", (70, 98, 400, 118), 0.8), Region("text", (70, 128, 480, 160), 0.9)]
    result = page([heading, *body], regions, source="ocr")
    assert [b.type for b in result.blocks if "tools category" in b.text][0] in ("title", "text")
    assert not [b for b in result.blocks if b.type == "formula"]
    assert "$$" not in result.markdown and "Changes to packages in the tools category" in result.markdown


def test_a_formula_read_by_ocr_stays_a_formula():
    equation = line("f(x) = x^2 + 2x + 1", 200, 300, size=12, font=False)
    lonely = line("x y", 200, 340, size=12, font=False)  # OCR dropped the signs: not words, still a formula
    regions = [Region("formula", (190, 298, 420, 318), 0.8), Region("formula", (190, 338, 260, 356), 0.8)]
    result = page([equation, lonely], regions, source="ocr")
    formulas = [b for b in result.blocks if b.type == "formula"]
    assert [b.text for b in formulas] == ["f(x) = x^2 + 2x + 1", "x y"]
    assert result.markdown.count("$$") == 4


def test_reads_as_formula_needs_a_mathematical_sign_or_no_words():
    from app.pipeline.formula import reads_as_formula

    for text in ("E = mc^2", "α + β", "x² + y²", "a ≤ b", "∑ i", "x y", "(3.1)", "p/q"):
        assert reads_as_formula(text), text
    for text in ("Changes to packages in the tools category", "Introduction", "Results and discussion",
                 "The sum of x and y"):
        assert not reads_as_formula(text), text
