"""bench/languages.py and bench/russian_pages.py: the Russian set is real Russian text and the scoring counts it."""

from __future__ import annotations

import pypdfium2 as pdfium
import pytest

from bench import russian_pages
from bench.languages import body_reference, words_lost


def test_words_lost_counts_missing_reference_words_with_multiplicity():
    assert words_lost("Договор поставки", "Договор поставки товара") == pytest.approx(1 / 3, abs=1e-3)
    assert words_lost("cat cat", "cat cat cat dog") == 0.5
    assert words_lost("всё на месте", "Всё на месте") == 0.0


def test_the_body_reference_leaves_out_the_running_head_and_the_folio():
    assert body_reference("Руководство — cat\n2\nCAT(1)\nИМЯ") == "CAT(1)\nИМЯ"


def test_man_output_splits_into_a_title_and_paragraphs_with_sections_alone():
    title, body = russian_pages.paragraphs("CAT(1)   Команды   CAT(1)\n\nИМЯ\n       cat - объединяет\n"
                                           "       файлы\n\n       второй абзац\nGNU 9.1  2022\n")
    assert title == "CAT(1) Команды CAT(1)"
    assert body == ["ИМЯ", "cat - объединяет файлы", "второй абзац"]


def test_the_russian_pages_are_typeset_russian_text(tmp_path):
    if not russian_pages.MAN_DIR.is_dir():
        pytest.skip("manpages-ru is not installed (make bench installs it)")
    (path,) = russian_pages.build(tmp_path, 1)
    document = pdfium.PdfDocument(str(path))
    try:
        text = document[0].get_textpage().get_text_range()
    finally:
        document.close()
    letters = [char for char in text if char.isalpha()]
    assert len(letters) > 800
    assert sum("\u0400" <= char <= "\u04ff" for char in letters) > 0.5 * len(letters)
