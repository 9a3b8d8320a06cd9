"""Table grids from text lines: drawn grids, rules between rows only, no rules at all (OCR)."""

from __future__ import annotations

from app.pipeline.primitives import TextLine
from app.pipeline.tables import Table, build_table, find_ruled_tables

ROWS = (("Region", "Units", "Revenue"), ("North", "1200", "4800"), ("South", "950", "3800"))
X0, Y0, COL_W, ROW_H = 72.0, 100.0, 120.0, 22.0


def cell_lines(rows=ROWS) -> list[TextLine]:
    lines = []
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            x, y = X0 + c * COL_W + 6, Y0 + r * ROW_H + 5
            lines.append(TextLine(text=text, bbox=(x, y, x + 5.5 * len(text), y + 12), font_size=11))
    return lines


def grid_rulings(n_rows: int = 3, n_cols: int = 3) -> list[tuple[float, float, float, float]]:
    right, bottom = X0 + n_cols * COL_W, Y0 + n_rows * ROW_H
    horizontal = [(X0, Y0 + r * ROW_H - 0.4, right, Y0 + r * ROW_H + 0.4) for r in range(n_rows + 1)]
    vertical = [(X0 + c * COL_W - 0.4, Y0, X0 + c * COL_W + 0.4, bottom) for c in range(n_cols + 1)]
    return horizontal + vertical


TABLE_BOX = (X0, Y0, X0 + 3 * COL_W, Y0 + 3 * ROW_H)


def test_drawn_grid_gives_one_cell_per_ruled_box():
    table = build_table(cell_lines(), TABLE_BOX, grid_rulings())
    assert table.rows == [list(r) for r in ROWS]


def test_wrapped_cell_inside_a_drawn_grid_stays_one_cell():
    lines = cell_lines()
    # A second line inside the North/Units cell, below "1200".
    lines.append(TextLine(text="(est.)", bbox=(X0 + COL_W + 6, Y0 + ROW_H + 13, X0 + COL_W + 40, Y0 + ROW_H + 21)))
    table = build_table(lines, TABLE_BOX, grid_rulings())
    assert table.rows[1] == ["North", "1200 (est.)", "4800"]


def test_rules_between_rows_only_still_split_columns_by_alignment():
    booktabs = [r for r in grid_rulings() if r[2] - r[0] > r[3] - r[1]]  # horizontal rules only
    table = build_table(cell_lines(), TABLE_BOX, booktabs)
    assert table.rows == [list(r) for r in ROWS]


def test_ocr_lines_without_rules_cluster_into_rows_and_columns():
    # OCR boxes wobble by a few points; the grid must still come out 3 x 3.
    wobbly = [
        TextLine(text=ln.text, bbox=(ln.bbox[0] + (i % 3), ln.bbox[1] + (i % 2) * 2, ln.bbox[2], ln.bbox[3] + 1))
        for i, ln in enumerate(cell_lines())
    ]
    table = build_table(wobbly, TABLE_BOX)
    assert table.rows == [list(r) for r in ROWS]


def test_joined_cells_of_one_text_line_are_split_back_into_columns():
    lines = [ln for ln in cell_lines() if ln.text not in ("Units", "Revenue")]
    # The text layer read the two heading cells as one line "Units Revenue" spanning both columns.
    x = X0 + COL_W + 6
    lines.append(TextLine(text="Units Revenue", bbox=(x, Y0 + 5, x + COL_W + 5.5 * 7, Y0 + 17)))
    table = build_table(lines, TABLE_BOX)
    assert table.rows[0] == ["Region", "Units", "Revenue"]


def test_markdown_and_html_render_every_cell_and_escape_markup():
    table = Table(rows=[["a|b", "<c>"], ["1", "2"]])
    assert table.markdown().splitlines() == ["| a\\|b | &lt;c&gt; |", "|---|---|", "| 1 | 2 |"]  # app/pipeline/mdtext.py
    assert table.html() == "<table><tr><th>a|b</th><th>&lt;c&gt;</th></tr><tr><td>1</td><td>2</td></tr></table>"


def test_ruled_tables_are_found_from_rulings_alone():
    found = find_ruled_tables(grid_rulings(), page_width=612)
    assert len(found) == 1
    x0, y0, x1, y1 = found[0]
    assert abs(x0 - X0) < 1 and abs(y0 - Y0) < 1 and abs(x1 - (X0 + 3 * COL_W)) < 1 and abs(y1 - (Y0 + 66)) < 1


def test_a_single_rule_is_not_a_table():
    assert find_ruled_tables([(72, 300, 540, 301)], page_width=612) == []


def test_a_heading_row_read_as_one_wide_line_is_split_into_its_columns():
    lines = [ln for ln in cell_lines() if ln.text not in ROWS[0]]
    # "Region Units Revenue" as ONE line stretched over the three columns: far wider than its 20 characters.
    lines.append(TextLine(text="Region Units Revenue", bbox=(X0 + 6, Y0 + 5, X0 + 2 * COL_W + 6 + 5.5 * 7, Y0 + 17),
                          font_size=11))
    table = build_table(lines, TABLE_BOX)
    assert table.rows[0] == ["Region", "Units", "Revenue"]


def test_a_spanning_heading_of_ordinary_width_is_not_split():
    lines = cell_lines()
    lines.append(TextLine(text="Sales by region in units", bbox=(X0 + 6, Y0 - 20, X0 + 6 + 5.5 * 24, Y0 - 8),
                          font_size=11))
    table = build_table(lines, (X0, Y0 - 22, X0 + 3 * COL_W, Y0 + 3 * ROW_H))
    assert table.rows[0][0] == "Sales by region in units" and table.rows[1] == list(ROWS[0])


def _booktabs(rows, x0=100.0, y0=100.0):
    lines = [TextLine(text=t, bbox=(x0 + c * 90, y0 + 8 + r * 16, x0 + c * 90 + 40, y0 + 18 + r * 16), font_size=9)
             for r, row in enumerate(rows) for c, t in enumerate(row)]
    bottom = y0 + 8 + len(rows) * 16 + 4
    rulings = [(x0 - 5, y0, x0 + 330, y0 + 1), (x0 - 5, y0 + 24, x0 + 330, y0 + 25), (x0 - 5, bottom, x0 + 330, bottom + 1)]
    return lines, rulings


def test_booktabs_rules_far_apart_with_cells_between_are_one_table():
    rows = [("Source", "Type", "Tokens", "Words")] + [(f"src{i}", "web", f"{i}.1T", f"{i}.2T") for i in range(6)]
    lines, rulings = _booktabs(rows)
    tables = find_ruled_tables(rulings, 612.0, lines)
    assert len(tables) == 1 and tables[0][1] == 100 and tables[0][3] > 200


def test_same_rules_around_running_text_are_not_a_table():
    words = "the quick brown fox jumps over a lazy dog and keeps running far away".split()
    # One word a line, as some text layers give RTL text: many pieces a row, but nothing lines up in columns.
    lines, rulings = _booktabs([("Source", "Type", "Tokens", "Words")])
    for r in range(8):
        x = 100.0 + (r * 7) % 23
        for w in words[r % 3:r % 3 + 6]:
            lines.append(TextLine(text=w, bbox=(x, 130 + r * 16, x + 6 * len(w), 140 + r * 16), font_size=9))
            x += 6 * len(w) + 4 + (r % 4)
    rulings[2] = (95, 260, 430, 261)
    assert find_ruled_tables(rulings, 612.0, lines) == []


def _row(y: float, cells: list[tuple[str, float]], size: float = 7.0) -> list[TextLine]:
    return [TextLine(text=t, bbox=(x, y, x + 0.5 * size * len(t), y + 6.3), font_size=size) for t, x in cells]


def test_narrow_column_is_split_from_the_next_even_when_group_labels_span_both():
    # "#" (x 100) and "Topic" (x 118) columns; every fourth row is a group label starting at x 100 that runs over
    # the gap: more rows than a fixed share of the table cross it, far fewer than fill either column.
    lines: list[TextLine] = []
    y, n = 100.0, 1
    for group in ("Proteomics", "Chemistry", "Archaeology"):
        lines += _row(y, [(group, 100), ("Clustering", 170)])
        y += 8
        for level in ("Easy", "Normal", "Challenge"):
            lines += _row(y, [(str(n), 100), (level, 118), ("Task text", 170), ("0.87", 230)])
            y += 8
            n += 1
    table = build_table(lines, (95, 95, 260, y + 2))
    assert table.rows[1][:4] == ["1", "Easy", "Task text", "0.87"]
    assert table.rows[9][:2] == ["7", "Easy"]
    assert table.spans.get((0, 0)) == 2  # the group label spans "#" and "Topic"


def test_spaced_out_heading_line_over_column_pairs_gives_one_spanning_cell_per_word():
    lines = [TextLine(text="ReACT Plan+Execute Hypothesizer", bbox=(200, 100, 350, 106.3), font_size=7.0, bold=True)]
    xs = (195, 220, 250, 275, 305, 330)
    for r, y in enumerate((110, 118, 126)):
        lines += _row(y, [("x", 150)] + [(f"0.{r}{c}", x) for c, x in enumerate(xs)])
    table = build_table(lines, (145, 95, 360, 135))
    assert table.rows[0] == ["", "ReACT", "", "Plan+Execute", "", "Hypothesizer", ""]
    assert '<th colspan="2">ReACT</th><th colspan="2">Plan+Execute</th><th colspan="2">Hypothesizer</th>' \
        in table.html()
    assert "| ReACT |  | Plan+Execute |" in table.markdown()


def test_heading_centred_over_three_columns_spans_them_in_html():
    lines = _row(100, [("Year Ended", 288)])
    lines += _row(110, [("Jan 26", 240), ("Jan 28", 290), ("Jan 29", 340)])
    lines += _row(120, [("Revenue", 150), ("178", 244), ("141", 294), ("138", 344)])
    lines += _row(130, [("Total", 150), ("1,136", 242), ("876", 294), ("680", 344)])
    table = build_table(lines, (145, 95, 370, 140))
    assert table.rows[0] == ["", "Year Ended", "", ""]
    assert '<tr><th></th><th colspan="3">Year Ended</th></tr>' in table.html()
    assert table.rows[3] == ["Total", "1,136", "876", "680"]
