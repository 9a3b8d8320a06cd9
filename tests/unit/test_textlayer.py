"""Text layer: lines with boxes in top-left points, font size and boldness, rulings, and the trust check."""

from __future__ import annotations

import pypdfium2 as pdfium
import pytest

from app.pipeline import pdfium_backend as backend
from app.pipeline import textlayer, trust
from app.pipeline.primitives import TextLayer, TextLine
from app.pipeline.render import render_page
from tests import pdfgen


@pytest.fixture
def open_page():
    docs = []

    def open_(path, index=0, rotation=None):
        doc = pdfium.PdfDocument(path)
        docs.append(doc)
        page = doc[index]
        if rotation is not None:
            page.set_rotation(rotation)
        return backend.PdfPage(page)

    yield open_
    for doc in docs:
        doc.close()


def _line(layer, text):
    matches = [line for line in layer.lines if line.text == text]
    assert matches, f"{text!r} not among {[line.text for line in layer.lines]}"
    return matches[0]


def test_born_digital_page_gives_lines_with_fonts_and_top_left_boxes(tmp_path, open_page):
    page = open_page(pdfgen.text_pdf(tmp_path / "doc.pdf"))
    layer = textlayer.extract(page)
    title = _line(layer, pdfgen.TITLE)
    heading = _line(layer, pdfgen.SECTION_HEADINGS[0])
    header = _line(layer, pdfgen.RUNNING_HEADER)
    footer = _line(layer, pdfgen.page_number_text(1))
    assert title.font_size == pytest.approx(24, abs=0.1) and title.bold
    assert heading.font_size == pytest.approx(14, abs=0.1) and heading.bold
    body = [line for line in layer.lines if line.text.startswith("Widgets are small")][0]
    assert body.font_size == pytest.approx(11, abs=0.1) and not body.bold
    # y grows downwards: header above the title above the body above the footer
    assert header.bbox[3] <= title.bbox[1] < body.bbox[1] < footer.bbox[1]
    assert footer.bbox[3] <= 792 and header.bbox[1] >= 0
    for line in layer.lines:
        x0, y0, x1, y1 = line.bbox
        assert 0 <= x0 < x1 <= 612 and 0 <= y0 < y1 <= 792
    assert layer.char_count >= sum(len(line.text) for line in layer.lines) * 0.9


def test_boxes_cover_the_rendered_glyphs(tmp_path, open_page):
    page = open_page(pdfgen.text_pdf(tmp_path / "doc.pdf"))
    layer = textlayer.extract(page)
    image, scale = render_page(page, 72, 40_000_000)
    x0, y0, x1, y1 = (round(v * scale) for v in _line(layer, pdfgen.TITLE).bbox)
    inside = (image[y0:y1, x0:x1] < 128).sum()
    assert inside > 0.9 * (image[max(0, y0 - 5):y1 + 5, max(0, x0 - 5):x1 + 5] < 128).sum()


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_pages_give_boxes_in_display_orientation(tmp_path, open_page, rotation):
    page = open_page(pdfgen.table_pdf(tmp_path / "t.pdf"), rotation=rotation)
    layer = textlayer.extract(page)
    title = _line(layer, "Sales Summary")  # a whole line, not one line per word
    image, scale = render_page(page, 72, 40_000_000)
    x0, y0, x1, y1 = (round(v) for v in title.bbox)
    assert (image[y0:y1, x0:x1, 0] < 128).mean() > 0.1
    width, height = page.size()
    assert all(0 <= v <= max(width, height) for v in title.bbox)


def test_two_columns_are_never_merged_into_one_line(tmp_path, open_page):
    layer = textlayer.extract(open_page(pdfgen.two_column_pdf(tmp_path / "two.pdf")))
    texts = [line.text for line in layer.lines]
    assert any("Apples" in t for t in texts) and any("Zebras" in t for t in texts)
    assert not any("Apples" in t and "Zebras" in t for t in texts)
    left = [line for line in layer.lines if "left column" in line.text][0]
    right = [line for line in layer.lines if "right column" in line.text][0]
    assert left.bbox[2] < right.bbox[0]


def test_table_cells_become_separate_lines_and_rulings_are_found(tmp_path, open_page):
    layer = textlayer.extract(open_page(pdfgen.table_pdf(tmp_path / "t.pdf")))
    texts = [line.text for line in layer.lines]
    for row in pdfgen.TABLE_ROWS:
        for cell in row:
            assert cell in texts
    horizontal = [r for r in layer.rulings if r[2] - r[0] > 100 and r[3] - r[1] < 3]
    vertical = [r for r in layer.rulings if r[3] - r[1] > 100 and r[2] - r[0] < 3]
    assert len(horizontal) == len(pdfgen.TABLE_ROWS) + 1
    assert len(vertical) == len(pdfgen.TABLE_ROWS[0]) + 1
    region = _line(layer, "North").bbox
    assert min(r[0] for r in vertical) < region[0] < max(r[2] for r in vertical)


def test_rectangle_cell_borders_count_as_rulings(tmp_path, open_page):
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format="letter")
    pdf.add_page()
    pdf.rect(100, 100, 200, 40)  # one stroked rectangle: four edges
    path = tmp_path / "rect.pdf"
    pdf.output(str(path))
    objects = open_page(path).objects()
    assert len(objects.rulings) == 4
    ys = sorted({round(r[1]) for r in objects.rulings if r[2] - r[0] > 100})
    assert ys in ([100, 140], [99, 139], [100, 139], [99, 140])


def test_image_objects_are_measured_without_decoding(tmp_path, open_page):
    path, _ = pdfgen.scanned_pdf(tmp_path / "scan.pdf")
    objects = open_page(path).objects()
    assert len(objects.image_boxes) == 1
    assert objects.image_area(612, 792) == pytest.approx(612 * 792, rel=0.01)
    assert objects.image_sizes and objects.image_sizes[0][0] > 1000
    huge = open_page(pdfgen.huge_image_pdf(tmp_path / "huge.pdf")).objects()
    assert huge.image_sizes == [(30000, 30000)]


def test_cjk_text_is_extracted(tmp_path, open_page):
    page = open_page(pdfgen.cjk_pdf(tmp_path / "cjk.pdf"))
    layer = textlayer.extract(page)
    text = "".join(line.text for line in layer.lines)
    assert pdfgen.CJK_TEXT[0] in text
    assert trust.is_trustworthy(layer, 595 * 842)


# --- trust -------------------------------------------------------------------------------------------------------
def _layer(*texts: str) -> TextLayer:
    lines = [TextLine(text=t, bbox=(0, 20.0 * i, 500, 20.0 * i + 12)) for i, t in enumerate(texts)]
    return TextLayer(lines=lines, char_count=sum(len(t) for t in texts))


def test_born_digital_pages_are_trustworthy(tmp_path, open_page):
    for path in (pdfgen.text_pdf(tmp_path / "a.pdf"), pdfgen.two_column_pdf(tmp_path / "b.pdf"),
                 pdfgen.table_pdf(tmp_path / "c.pdf")):
        page = open_page(path)
        objects = page.objects()
        assert trust.is_trustworthy(textlayer.extract(page, objects), 612 * 792, objects.image_area(612, 792))


def test_scanned_page_is_not_trustworthy(tmp_path, open_page):
    path, _ = pdfgen.scanned_pdf(tmp_path / "scan.pdf")
    page = open_page(path)
    objects = page.objects()
    layer = textlayer.extract(page, objects)
    assert layer.lines == [] and layer.char_count == 0
    assert not trust.is_trustworthy(layer, 612 * 792, objects.image_area(612, 792))


def test_little_text_is_not_trustworthy():
    assert not trust.is_trustworthy(_layer("Page 3"), 612 * 792)


def test_replacement_and_private_use_characters_are_garbage():
    assert not trust.is_trustworthy(_layer("\ufffd" * 40 + " some words here"), 612 * 792)
    assert not trust.is_trustworthy(_layer("".join(chr(0xE000 + i) for i in range(60))), 612 * 792)
    assert not trust.is_trustworthy(_layer("\x01\x02\x03\x04 " * 20), 612 * 792)


def test_symbol_soup_is_garbage():
    assert not trust.is_trustworthy(_layer("!#$% &*()+ ,-./: ;<=>? @[]^ " * 5), 612 * 792)


def test_latin_words_without_vowels_are_garbage():
    # What a font whose codes map to the wrong letters extracts as.
    assert not trust.is_trustworthy(_layer("Tkhl qwbrt znxsp vkflg hwrst bcdfg lmnpq rstvw xzbcd fghjk"), 612 * 792)
    assert trust.is_trustworthy(_layer("The quick brown fox jumps over the lazy dog again and again"), 612 * 792)


def test_non_latin_scripts_are_not_judged_by_vowels():
    layer = _layer("Доклад о состоянии рынка деталей за год", "这是一个中文段落，用于检查文字层的提取。")
    assert trust.is_trustworthy(layer, 612 * 792)


def test_page_covered_by_an_image_with_sparse_text_is_not_trustworthy():
    sparse = _layer("Scanned by ACME Scanner 3000 on 2024-01-01")
    assert trust.is_trustworthy(sparse, 612 * 792, image_area=0)
    assert not trust.is_trustworthy(sparse, 612 * 792, image_area=0.9 * 612 * 792)
    dense = _layer(*(["An invisible OCR text layer on top of a scanned page with many words."] * 10))
    assert trust.is_trustworthy(dense, 612 * 792, image_area=612 * 792)


# --- the fast paths give what a plain character-by-character reading gives ---------------------------------------
def _reference_segments(page) -> list[str]:
    """Each pdfium line split word by word with per-character loose boxes and the same gap rule: what the text
    layer must find, however few pdfium calls it makes to find it."""
    import pypdfium2.raw as pdfium_c

    transform = page.transform()
    textpage = page._page.get_textpage()  # pdfium itself, as the reference
    try:
        raw = textpage.raw
        count = pdfium_c.FPDFText_CountChars(raw)
        text = "".join(chr(pdfium_c.FPDFText_GetUnicode(raw, i)) for i in range(count))
        rect = pdfium_c.FS_RECTF()

        def box(i):
            pdfium_c.FPDFText_GetLooseCharBox(raw, i, rect)
            return backend.map_box(transform, rect.left, rect.bottom, rect.right, rect.top)

        segments = []
        for line in textlayer._LINE.finditer(text):
            words = list(textlayer._WORD.finditer(text, line.start(), line.end()))
            if not words:
                continue
            boxes = [textlayer._union([box(w.start()), box(w.end() - 1)]) for w in words]
            direction = textlayer._direction(transform, pdfium_c.FPDFText_GetCharAngle(raw, words[0].start()))
            cuts = textlayer._cuts(boxes, direction)
            current: list[str] = []
            for word, cut in zip(words, cuts):
                if cut and current:
                    segments.append(" ".join(current))
                    current = []
                current.append(word.group())
            segments.append(" ".join(current))
        return segments
    finally:
        textpage.close()


@pytest.mark.parametrize("make", [pdfgen.two_column_pdf, pdfgen.table_pdf, pdfgen.text_pdf])
def test_lines_match_a_word_by_word_reading_of_columns_and_table_cells(tmp_path, open_page, make):
    page = open_page(make(tmp_path / "doc.pdf"))
    assert [line.text for line in textlayer.extract(page).lines] == _reference_segments(page)


def test_text_read_in_pieces_matches_reading_every_character(tmp_path, open_page):
    import pypdfium2.raw as pdfium_c

    page = open_page(pdfgen.two_column_pdf(tmp_path / "two.pdf"))
    textpage = page._page.get_textpage()  # pdfium itself, as the reference
    try:
        count = pdfium_c.FPDFText_CountChars(textpage.raw)
        assert count > 4 * backend._CHARWISE_SPAN  # the halving is exercised, not just the one-by-one read
        expected = "".join(chr(pdfium_c.FPDFText_GetUnicode(textpage.raw, i)) for i in range(count))
        assert backend._text_by_chars(textpage, 0, count) == expected
        assert backend._text_by_chars(textpage, 7, count - 5) == expected[7:count - 5]
    finally:
        textpage.close()


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_specialised_box_mapping_gives_the_generic_numbers(tmp_path, open_page, rotation):
    transform = open_page(pdfgen.text_pdf(tmp_path / "doc.pdf"), rotation=rotation).transform()
    mapper = backend.box_mapper(transform)
    for left, bottom, right, top in [(72.0, 700.5, 300.25, 712.0), (0.0, 0.0, 612.0, 792.0), (10.5, 20.0, 11.0, 21.5)]:
        assert mapper(left, bottom, right, top) == backend.map_box(transform, left, bottom, right, top)


# --- pieces pdfium splits off a visual line are put back ----------------------------------------------------------
_ACCENT_GLYPHS = set("\u00b4\u02c7`\u02cb\u00a8\u02c6\u02dc\u00b8\u02d8\u02d9\u02da\u02dd\u00af\u02db") | {
    chr(c) for c in range(0x300, 0x370)}


def test_tex_accents_are_combined_with_the_letters_under_them(tmp_path, open_page):
    layer = textlayer.extract(open_page(pdfgen.accents_pdf(tmp_path / "accents.pdf")))
    texts = [line.text for line in layer.lines]
    # dotless ı under an acute reads as í; accents drawn after or before their line both land on their letters
    assert texts == list(pdfgen.ACCENTED_LINES)
    assert not any(ch in _ACCENT_GLYPHS for text in texts for ch in text)
    assert _line(layer, pdfgen.ACCENTED_LINES[0]).bbox[3] < _line(layer, pdfgen.ACCENTED_LINES[1]).bbox[1]


def test_scripts_fractions_and_limits_join_their_line_in_latex_order(tmp_path, open_page):
    layer = textlayer.extract(open_page(pdfgen.math_pdf(tmp_path / "math.pdf")))
    texts = [line.text for line in layer.lines]
    assert texts[:3] == [pdfgen.SCRIPT_LINE, pdfgen.FRACTION_LINE, pdfgen.SUM_LINE]
    script = _line(layer, pdfgen.SCRIPT_LINE)
    assert script.font_size == pytest.approx(12, abs=0.1)  # the line's own size, not its superscripts'
    assert script.bbox[3] - script.bbox[1] < 20  # one line tall


def test_a_drop_cap_stays_apart_from_the_lines_beside_it(tmp_path, open_page):
    layer = textlayer.extract(open_page(pdfgen.math_pdf(tmp_path / "math.pdf")))
    assert [line.text for line in layer.lines][3:] == [pdfgen.DROP_CAP, *pdfgen.DROP_CAP_LINES]
    cap = _line(layer, pdfgen.DROP_CAP)
    assert cap.font_size == pytest.approx(36, abs=0.1)
    assert all(cap.bbox[2] <= _line(layer, text).bbox[0] + 2 for text in pdfgen.DROP_CAP_LINES)


def test_right_to_left_lines_are_read_right_to_left(tmp_path, open_page):
    layer = textlayer.extract(open_page(pdfgen.rtl_pdf(tmp_path / "rtl.pdf")))
    assert [line.text for line in layer.lines] == list(pdfgen.RTL_LINES)  # Hebrew and Arabic, one line each
    for line in layer.lines:
        assert line.bbox[2] == pytest.approx(400, abs=1)


# --- pdfium's mark of a word hyphenated over a line break ---------------------------------------------------------
def test_a_word_hyphenated_over_a_line_break_is_kept_whole_on_its_first_line(tmp_path, open_page):
    layer = textlayer.extract(open_page(pdfgen.hyphenated_pdf(tmp_path / "hyphen.pdf")))
    texts = [line.text for line in layer.lines]
    assert not any("\ufffe" in text for text in texts)
    assert texts == ["The students of the College", "met for problemsolving", "sessions every week."]
    boxes = [line.bbox for line in layer.lines]
    for upper, lower in zip(boxes, boxes[1:]):
        assert upper[3] <= lower[1] + 1.5  # each box on its own line: the joined word does not stretch it
    assert all(box[3] - box[1] < 16 for box in boxes)


def test_text_read_character_by_character_spells_the_hyphen_mark_as_the_bulk_text(tmp_path, open_page):
    page = open_page(pdfgen.hyphenated_pdf(tmp_path / "hyphen.pdf"))
    textpage = page._page.get_textpage()  # pdfium itself, as the reference
    try:
        count = textpage.count_chars()
        bulk = textpage.get_text_range(0, count)
        assert "\ufffe" in bulk  # what the fix is about: pdfium still marks the hyphenation
        assert backend._text_by_chars(textpage, 0, count) == bulk
        assert backend._text_by_chars(textpage, 0, 30) == bulk[:30]  # one by one
    finally:
        textpage.close()
