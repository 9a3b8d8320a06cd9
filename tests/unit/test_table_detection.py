"""Tables on born-digital pages without help from a layout model: found by their columns alone, split into cells
by word boxes, spanning headings, wrapped cells, right-to-left order, rulings drawn in pieces, and no table on
pages of prose."""

from __future__ import annotations

import re

import pypdfium2 as pdfium
import pytest

from app.pipeline.assemble import build_page
from app.runtime.document import merge_pages
from app.pipeline.options import ConvertOptions
from app.pipeline.page import Engines, process_page
from app.pipeline.primitives import Region, TextLine
from app.pipeline.result import Block, PageResult
from app.pipeline.tables import build_table, find_aligned_tables, find_ruled_tables, split_cells
from app.settings import Settings
from tests import pdfgen


def convert_text_mode(path):
    """Page 1 in `text` mode (the text layer only: no model is loaded)."""
    settings = Settings()
    doc = pdfium.PdfDocument(str(path))
    try:
        return process_page(doc, 0, ConvertOptions(mode="text"), Engines(settings), settings)
    finally:
        doc.close()


def tables_of(page) -> list[list[list[str]]]:
    """Each table block's cells, read back from its HTML (spanning cells once, where they start)."""
    grids = []
    for block in page.blocks:
        if block.type != "table":
            continue
        rows = re.findall(r"<tr>(.*?)</tr>", block.html)
        grids.append([[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<t[hd][^>]*>.*?</t[hd]>", row)]
                      for row in rows])
    return grids


def test_borderless_table_between_paragraphs_comes_out_cell_by_cell(tmp_path):
    page = convert_text_mode(pdfgen.borderless_table_pdf(tmp_path / "t.pdf"))
    assert tables_of(page) == [[list(row) for row in pdfgen.BORDERLESS_ROWS]]
    table = next(b for b in page.blocks if b.type == "table")
    # The prose around it stays prose: none of it inside the table, all of it in the page.
    for text in (*pdfgen.PROSE_ABOVE, pdfgen.PROSE_BELOW):
        assert text.split()[0] not in table.text
        assert text in " ".join(page.markdown.split())


def test_spanning_group_heading_spans_the_columns_under_it(tmp_path):
    page = convert_text_mode(pdfgen.spanning_header_pdf(tmp_path / "t.pdf"))
    table = next(b for b in page.blocks if b.type == "table")
    assert f'<th colspan="2">{pdfgen.SPANNING_GROUP}</th>' in table.html
    assert tables_of(page)[0][1:] == [list(row) for row in pdfgen.SPANNING_ROWS]
    # A pipe table cannot express the span: the Markdown carries the HTML table.
    assert table.html in page.markdown


def test_wrapped_cells_of_a_drawn_grid_stay_one_cell(tmp_path):
    page = convert_text_mode(pdfgen.wrapped_cells_pdf(tmp_path / "t.pdf"))
    expected = [[" ".join(cell) for cell in row] for row in pdfgen.WRAPPED_ROWS]
    assert tables_of(page) == [expected]


def test_right_to_left_table_starts_with_its_rightmost_column(tmp_path):
    page = convert_text_mode(pdfgen.rtl_table_pdf(tmp_path / "t.pdf"))
    assert tables_of(page) == [[list(row) for row in pdfgen.RTL_TABLE_ROWS]]


@pytest.mark.parametrize("make", [pdfgen.text_pdf, pdfgen.two_column_pdf])
def test_prose_pages_get_no_table(tmp_path, make):
    page = convert_text_mode(make(tmp_path / "p.pdf"))
    assert [b for b in page.blocks if b.type == "table"] == []
    assert "words" not in page.timings  # nor do they pay for word boxes


def test_three_columns_of_running_text_are_not_a_table():
    # Three text columns whose lines drift past each other (each column set on its own), 8 words a line.
    lines = []
    for col, (x, offset) in enumerate(((70.0, 0.0), (200.0, 4.4), (330.0, 6.2))):
        for k in range(12):
            y = 100 + 10 * k + offset
            lines.append(TextLine(text=" ".join(["word"] * (3 if col == 0 else 8)), bbox=(x, y, x + 110, y + 8.6),
                                  font_size=8))
    assert find_aligned_tables(lines, 612) == []


def test_aligned_number_columns_are_found_even_without_rules_or_layout():
    lines = []
    for r in range(6):
        y = 100 + 14 * r
        lines.append(TextLine(text=f"Item {r}", bbox=(72, y, 110, y + 11), font_size=10))
        for c in range(3):
            x = 200 + 60 * c
            lines.append(TextLine(text=f"{r * 7 + c}.5", bbox=(x, y, x + 18, y + 11), font_size=10))
    found = find_aligned_tables(lines, 612)
    assert len(found) == 1
    assert found[0][1] == 100 and found[0][3] == 100 + 14 * 5 + 11


def words_of(text: str, x: float, y: float, gaps: list[float], char_w: float = 5.0) -> list[TextLine]:
    """Word boxes of a line: each word `char_w` per character, `gaps[k]` points after word k."""
    out = []
    for k, word in enumerate(text.split()):
        out.append(TextLine(text=word, bbox=(x, y, x + char_w * len(word), y + 12), font_size=10))
        x += char_w * len(word) + (gaps[k] if k < len(gaps) else 0)
    return out


def test_word_gaps_wider_than_a_space_split_a_line_into_cells():
    words = words_of("Server closets 1,505 1,580", 100, 100, [2.5, 30, 25])
    line = TextLine(text="Server closets 1,505 1,580", bbox=(100, 100, words[-1].bbox[2], 112), font_size=10)
    assert [p.text for p in split_cells([line], words)] == ["Server closets", "1,505", "1,580"]
    # Words that do not spell the line (the text layer rejoined or dropped something) leave it whole.
    other = TextLine(text="Server closets 1,505 1,58O", bbox=line.bbox, font_size=10)
    assert [p.text for p in split_cells([other], words)] == [other.text]


def test_layout_table_region_uses_word_boxes_for_its_cells():
    # Each row's cells stand 12 pt apart, so the text layer kept every row as one line; the words say where
    # each cell is.
    rows = [("Name", "2023", "2024"), ("Alpha beta", "1,505", "1,580"), ("Gamma", "1,512", "1,586")]
    starts = (72.0, 140.0, 180.0)
    lines, words = [], []
    for r, row in enumerate(rows):
        y = 100 + 14 * r
        row_words = [w for cell, x in zip(row, starts) for w in words_of(cell, x, y, [2.5])]
        words += row_words
        lines.append(TextLine(text=" ".join(row), bbox=(72, y, row_words[-1].bbox[2], y + 12), font_size=10))
    page = build_page(page_number=1, width=612, height=792, source="text",
                      regions=[Region(label="table", bbox=(70, 98, 260, 142))], lines=lines, words=words)
    assert tables_of(page) == [[list(row) for row in rows]]


def test_rules_drawn_in_pieces_make_one_grid():
    # A 3 x 3 grid drawn cell by cell: every rule is three (or two) touching segments.
    x0, y0, w, h = 72.0, 100.0, 100.0, 20.0
    segments = []
    for r in range(4):
        segments += [(x0 + c * w, y0 + r * h - 0.3, x0 + (c + 1) * w, y0 + r * h + 0.3) for c in range(3)]
    for c in range(4):
        segments += [(x0 + c * w - 0.3, y0 + r * h, x0 + c * w + 0.3, y0 + (r + 1) * h) for r in range(3)]
    found = find_ruled_tables(segments, 612)
    assert len(found) == 1
    cells = [("A", "B", "C"), ("1", "2", "3"), ("4", "5", "6")]
    lines = [TextLine(text=t, bbox=(x0 + c * w + 5, y0 + r * h + 4, x0 + c * w + 12, y0 + r * h + 16))
             for r, row in enumerate(cells) for c, t in enumerate(row)]
    assert build_table(lines, found[0], segments).rows == [list(r) for r in cells]


def test_two_grids_one_above_the_other_are_two_tables():
    def grid(top: float) -> list[tuple[float, float, float, float]]:
        rules = [(72, top + 20 * r - 0.3, 372, top + 20 * r + 0.3) for r in range(4)]
        return rules + [(72 + 100 * c - 0.3, top, 72 + 100 * c + 0.3, top + 60) for c in range(4)]

    found = find_ruled_tables(grid(100) + grid(180), 612)  # 20 pt apart: one cluster of rules, two grids
    assert len(found) == 2
    assert found[0][3] <= 161 and found[1][1] >= 179


def test_a_frame_around_many_rows_does_not_make_them_one_row():
    # Rules only around the table and between its columns: every text row is a row of its own.
    frame = [(72, 99.7, 372, 100.3), (72, 179.7, 372, 180.3)]
    frame += [(72 + 100 * c - 0.3, 100, 72 + 100 * c + 0.3, 180) for c in range(4)]
    rows = [(f"r{r}", str(r * 10), str(r * 20)) for r in range(5)]
    lines = [TextLine(text=t, bbox=(72 + 100 * c + 5, 104 + 14 * r, 72 + 100 * c + 30, 114 + 14 * r))
             for r, row in enumerate(rows) for c, t in enumerate(row)]
    assert build_table(lines, (72, 100, 372, 180), frame).rows == [list(r) for r in rows]


def test_a_row_whose_cell_wraps_between_two_rules_stays_one_row():
    # Rules under the heading and between rows only; the last row's third cell runs over three lines.
    rules = [(72, y - 0.4, 472, y + 0.4) for y in (96, 118, 140, 200)]
    cells = [("Animal", "Action", "Result", 100), ("Cat", "Says", "Meow", 122), ("Fox", "Says", "Ring-", 144)]
    lines = []
    for a, b, c, y in cells:
        lines += [TextLine(text=t, bbox=(x, y, x + 30, y + 12)) for t, x in ((a, 80), (b, 220), (c, 360))]
    lines += [TextLine(text=t, bbox=(360, y, 420, y + 12)) for t, y in (("dingding", 158), ("dong", 172))]
    table = build_table(lines, (72, 80, 472, 200), rules)
    assert table.rows == [["Animal", "Action", "Result"], ["Cat", "Says", "Meow"], ["Fox", "Says", "Ring- dingding dong"]]


def test_layout_table_round_a_summary_and_a_ruled_grid_is_cut_at_the_grid():
    # The layout model drew one table round a small summary (no rules) and the ruled grid under it.
    grid_top, w, h = 200.0, 100.0, 20.0
    rules = [(72, grid_top + r * h - 0.3, 372, grid_top + r * h + 0.3) for r in range(5)]
    rules += [(72 + c * w - 0.3, grid_top, 72 + c * w + 0.3, grid_top + 4 * h) for c in range(4)]
    grid = [("Name", "Party", "Vote"), ("Abdala", "Frente", "Yes"), ("Albrieu", "Frente", "No"), ("Alonso", "PJ", "Yes")]
    lines = [TextLine(text=t, bbox=(72 + c * w + 5, grid_top + r * h + 4, 72 + c * w + 50, grid_top + r * h + 16),
                      font_size=10) for r, row in enumerate(grid) for c, t in enumerate(row)]
    lines += [TextLine(text=t, bbox=(x, 150, x + 60, 162), font_size=10)
              for t, x in (("Present 217", 80), ("Absent 40", 200))]
    lines += [TextLine(text="Abstentions 22", bbox=(80, 166, 150, 178), font_size=10)]
    page = build_page(page_number=1, width=612, height=792, source="text", rulings=rules, lines=lines,
                      regions=[Region(label="table", bbox=(60, 140, 380, grid_top + 4 * h + 2))])
    assert [list(r) for r in grid] in tables_of(page)
    assert "Present 217" in page.markdown


def test_sections_of_one_table_under_their_own_headings_are_one_table():
    lines = []
    y = 100.0
    for section in ("First scenario", "Second scenario"):
        lines.append(TextLine(text=section, bbox=(200, y, 280, y + 11), font_size=10))
        y += 14
        for r in range(4):
            lines.append(TextLine(text=f"Row {r}", bbox=(72, y, 110, y + 11), font_size=10))
            lines += [TextLine(text=f"{r}{c},5", bbox=(200 + 60 * c, y, 222 + 60 * c, y + 11), font_size=10)
                      for c in range(3)]
            y += 14
    found = find_aligned_tables(lines, 612)
    assert len(found) == 1 and found[0][1] == 100 and found[0][3] == y - 3


def _page(number: int, *blocks: tuple[str, str | None]) -> PageResult:
    return PageResult(page=number, width=612, height=792, source="text", markdown="", blocks=[
        Block(type=kind, bbox=(0, 0, 1, 1), html=html, order=k) for k, (kind, html) in enumerate(blocks)])


THREE = "<table><tr><th>a</th><th colspan=\"2\">b</th></tr><tr><td>1</td><td>2</td><td>3</td></tr></table>"
TWO = "<table><tr><td>1</td><td>2</td></tr></table>"


def test_a_table_that_goes_on_over_a_page_break_is_marked_continued():
    doc = merge_pages([_page(2, ("table", THREE.replace("th", "td")), ("page_number", None)),
                       _page(1, ("text", None), ("table", THREE)), _page(3, ("table", TWO))], 3)
    assert [[b.continued for b in p.blocks if b.type == "table"] for p in doc.pages] == [[None], [True], [None]]
    # Not after prose, nor across a gap in the selected pages.
    doc = merge_pages([_page(1, ("table", TWO), ("text", None)), _page(2, ("table", TWO)), _page(4, ("table", TWO))], 4)
    assert all(b.continued is None for p in doc.pages for b in p.blocks)


def test_rows_of_a_statement_under_one_rule_stay_rows_and_a_centred_heading_spans_the_dates():
    # A rule under the heading rows and one above the total; "$" columns between the label and number columns.
    rules = [(72, 139.6, 472, 140.4), (72, 193.6, 472, 194.4)]

    def row(y: float, cells: dict[float, str]) -> list[TextLine]:
        return [TextLine(text=t, bbox=(x, y, x + 5 * len(t), y + 10), font_size=9) for x, t in cells.items()]

    lines = row(110, {300: "Year Ended"})
    lines += row(124, {240: "Jan 2025", 320: "Jan 2024", 400: "Jan 2023"})
    lines += row(146, {80: "Cost", 225: "$", 250: "178", 305: "$", 330: "141", 385: "$", 410: "138"})
    lines += row(160, {80: "Research", 250: "3,423", 330: "2,532", 410: "1,892"})
    lines += row(174, {80: "Sales", 250: "1,136", 330: "876", 410: "680"})
    lines += row(198, {80: "Total", 225: "$", 250: "4,737", 305: "$", 330: "3,549", 385: "$", 410: "2,710"})
    table = build_table(lines, (72, 105, 472, 210), rules)
    texts = [[c for c in r if c] for r in table.rows]
    assert ["Research", "3,423", "2,532", "1,892"] in texts and ["Sales", "1,136", "876", "680"] in texts
    top = table.rows[0]
    start = top.index("Year Ended")
    assert table.spans[(0, start)] >= 5  # over the three date columns and the "$" columns between them
