"""The table benchmark's measures: row recall and adjacency triples, spans counted once, either column order for
right-to-left tables, and each expected table compared with its best-matching output table."""

from __future__ import annotations

from bench.tables import Cell, figures, html_grids, markdown_grids, read_expected, score_page, triples

EXPECTED = [["Name", "2023", "2024"], ["Alpha", "1", ""], ["Beta", "3", "4"]]


def test_a_perfect_table_scores_one_on_every_figure():
    counts = score_page([EXPECTED], [[row[:] for row in EXPECTED]])
    assert figures(counts) == {"row_recall": 1.0, "adjacency_f1": 1.0, "precision": 1.0, "recall": 1.0}


def test_empty_cells_are_skipped_to_the_nearest_neighbour():
    got = triples(EXPECTED)
    assert got[("1", "4", "below")] == 0 and got[("2024", "4", "below")] == 1
    assert got[("alpha", "1", "right")] == 1 and sum(got.values()) == 10


def test_merged_cells_lose_the_row_and_their_triples():
    merged = [["Name", "2023 2024"], ["Alpha", "1"], ["Beta", "3", "4"]]
    counts = score_page([EXPECTED], [merged])
    assert counts["rows_found"] == 2 and counts["rows"] == 3
    assert 0 < figures(counts)["precision"] < 1 and figures(counts)["recall"] < 1


def test_a_mirrored_table_counts_as_the_same_table():
    mirrored = [list(reversed(row)) for row in EXPECTED]
    assert figures(score_page([EXPECTED], [mirrored]))["adjacency_f1"] == 1.0


def test_other_tables_on_the_page_neither_help_nor_hurt():
    unrelated = [["x", "y"], ["z", "w"]]
    alone = figures(score_page([EXPECTED], [[row[:] for row in EXPECTED]]))
    assert figures(score_page([EXPECTED], [unrelated, [row[:] for row in EXPECTED]])) == alone


def test_a_spanning_cell_is_one_cell():
    span = Cell("Revenue")
    grid = [["", span, span], ["Name", "2023", "2024"]]
    got = triples(grid)
    assert got[("revenue", "2023", "below")] == 1 and got[("revenue", "revenue", "right")] == 0
    assert sum(got.values()) == 3
    html = '<table><tr><th></th><th colspan="2">Revenue</th></tr><tr><td>Name</td><td>2023</td><td>2024</td></tr></table>'
    assert triples(html_grids(html)[0]) == got


def test_markdown_pipe_tables_are_read_and_csv_tables_split_by_width(tmp_path):
    assert markdown_grids("text\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nmore") == [[["a", "b"], ["1", "2"]]]
    csv = tmp_path / "t.csv"
    csv.write_text('a,b\n1,2\nx,y,z\n"multi\nline",2,3\n', encoding="utf-8")
    assert read_expected(csv) == [[["a", "b"], ["1", "2"]], [["x", "y", "z"], ["multi\nline", "2", "3"]]]
