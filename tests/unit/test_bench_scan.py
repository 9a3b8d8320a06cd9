"""bench.scan_ocr's inputs and arithmetic: clean and worn sets of the same pages, two tesseract passes as one."""

from __future__ import annotations

import numpy as np
import pytest
import pypdfium2 as pdfium
from PIL import Image

from bench.scan_ocr import ScanPage, contender_report, merge_passes, normalize_lines, rasterise, score, words_of
from tests import pdfgen


def test_rasterise_makes_a_clean_and_a_reproducibly_worn_image_only_copy_of_each_page(tmp_path):
    source = pdfgen.text_pdf(tmp_path / "doc.pdf")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = rasterise([source], tmp_path / "a", 100, seed=5)
    again = rasterise([source], tmp_path / "b", 100, seed=5)
    clean, worn = first["clean"][0], first["worn"][0]
    assert clean.reference == worn.reference and "page" in clean.reference.lower()
    assert clean.wear is None and worn.wear is not None and worn.wear == again["worn"][0].wear
    clean_px, worn_px = np.asarray(Image.open(clean.png)), np.asarray(Image.open(worn.png))
    assert clean_px.shape == worn_px.shape and not np.array_equal(clean_px, worn_px)
    assert np.array_equal(worn_px, np.asarray(Image.open(again["worn"][0].png)))
    for page in (clean, worn):  # image-only: the OCR has to read it, there is no text layer to fall back on
        document = pdfium.PdfDocument(str(page.pdf))
        try:
            assert document[0].get_textpage().get_text_range().strip() == ""
        finally:
            document.close()


def test_two_tesseract_passes_report_pages_per_second_over_both(tmp_path):
    pages = [ScanPage(f"p{i}", tmp_path / "x.png", tmp_path / "x.pdf", "alpha beta") for i in range(2)]
    one = {"texts": ["alpha beta", "alpha"], "wall_s": 4.0, "cpu_s": 6.0, "page_service_s": [2.0, 2.0]}
    two = {"texts": ["alpha beta", "alpha"], "wall_s": 6.0, "cpu_s": 10.0, "page_service_s": [3.0, 3.0]}
    report = contender_report(merge_passes(one, two), pages, verbose=False)
    assert report["pages_per_s"] == 0.4  # 4 pages read in 10 s
    assert report["cpu_s_per_page"] == 4.0  # 16 CPU-s over 4 pages
    assert report["pass_wall_s"] == [4.0, 6.0]
    assert report["word_f1"] == pytest.approx((1.0 + 2 / 3) / 2, abs=1e-3)  # scored once, on the first pass's text


def test_tex_spacing_accents_in_the_reference_score_like_the_accented_letters_read():
    reference = "thank Jan Min \u00b4 a\u00b4c and Milan Basi\u02c7 c, Duy T \u02c7 an, \u02c6 Isomorphic"
    read = "thank Ján Mináč and Milan Bašić, Duy Tân, Isomorphic"
    expected = ["thank Jan Minac and Milan Basic, Duy Tan, Isomorphic"]
    assert normalize_lines(reference) == normalize_lines(read) == expected
    assert score(read, reference)["words"]["f1"] == 1.0
    # An accent at a line's end joins nothing across the break.
    assert normalize_lines("Spirkl, and \u02c7\nNguyen") == ["Spirkl, and", "Nguyen"]
    # A misread is still a misread: only accents are dropped.
    assert score("thank Jan Minoc", "thank Jan Min \u00b4 a\u00b4c")["words"]["f1"] < 1.0


def test_words_split_where_letters_meet_digits_so_a_superscript_counts_the_same_glued_or_not():
    assert words_of("Garry4 10Department 16t 2 x") == ["Garry", "4", "10", "Department", "16", "t", "2", "x"]
    glued, spaced = "Shaffer1 and 16t2", "Shaffer 1 and 16t 2"
    assert score(glued, spaced)["words"]["f1"] == 1.0
    assert score("16t3", "16t 2")["words"]["f1"] < 1.0  # a wrong exponent is still wrong


def test_a_hyphen_at_a_lines_end_joins_letters_not_a_number_range():
    assert normalize_lines("problem-\nsolving, pages 406\u2013\n415") == ["problemsolving, pages 406-", "415"]
