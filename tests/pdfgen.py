"""PDFs the tests generate: born-digital pages with known structure, image-only scans, and bad inputs.

Every function writes to `path` and returns it (`scanned_pdf` also returns the text it typeset), so a test can
check the pipeline's output against what went in. Each one runs in well under a second. The text they typeset is
exposed as module constants (`TITLE`, `RUNNING_HEADER`, ...) for the assertions.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from pathlib import Path

from fpdf import FPDF

# --- the words the generated pages carry ---------------------------------------------------------------------------
TITLE = "Annual Widget Report"
RUNNING_HEADER = "Confidential Draft Widget Works"
SECTION_HEADINGS = ("Introduction", "Market Overview", "Results and Discussion", "Outlook")
PARAGRAPHS = (
    "Widgets are small mechanical parts used in many kinds of machines. This report describes how the widget "
    "market developed during the past year and what we expect for the next one.",
    "Demand for widgets grew steadily in every region. Prices stayed stable while the cost of raw materials "
    "fell slightly, which improved the margins of most manufacturers.",
    "Our own production increased by twelve percent. The new assembly line in the northern plant reached its "
    "planned capacity in the third quarter and now runs three shifts.",
    "We expect the market to keep growing at a moderate pace. The main risks are supply delays and rising "
    "energy prices, which we watch closely.",
)
LEFT_COLUMN = (
    "Apples grow on trees in temperate orchards. The left column talks about fruit that ripens in autumn. "
    "Farmers pick apples by hand to avoid bruising them. Stored apples keep for months in cold rooms."
)
RIGHT_COLUMN = (
    "Zebras live on the open savanna of Africa. The right column talks about animals that graze in herds. "
    "Their stripes may confuse biting flies. A zebra herd moves long distances to find fresh water."
)
TABLE_CAPTION = "Table 1: Widget sales by region"
TABLE_ROWS = (
    ("Region", "Units", "Revenue"),
    ("North", "1200", "4800"),
    ("South", "950", "3800"),
    ("East", "700", "2800"),
    ("West", "1100", "4400"),
)
SCAN_LINES = (
    "The quick brown fox jumps over the lazy dog.",
    "Scanned documents need optical character recognition.",
    "Every line of this page was rendered into a picture.",
    "Numbers like 2024 and 31415 should survive as well.",
)
CJK_TEXT = ("文档解析测试页面", "这是一个中文段落，用于检查文字层的提取。")

# CJK fonts in the places Debian packages put them (fonts-wqy-microhei first, as the tests were written for it).
CJK_FONTS = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
)


def page_number_text(number: int) -> str:
    return f"Page {number}"


def _header_footer_pdf() -> FPDF:
    """A Letter-sized document whose every page has the running header and a page-number footer."""

    class _Doc(FPDF):
        def header(self) -> None:
            self.set_font("Helvetica", "I", 8)
            self.set_xy(self.l_margin, 20)
            self.cell(0, 10, RUNNING_HEADER, align="R")
            self.set_y(60)

        def footer(self) -> None:
            self.set_font("Helvetica", "", 8)
            self.set_y(-40)
            self.cell(0, 10, page_number_text(self.page_no()), align="C")

    doc = _Doc(unit="pt", format="letter")
    doc.set_margins(72, 60, 72)
    doc.set_auto_page_break(True, margin=72)
    return doc


def _write(doc: FPDF, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    doc.output(str(path))
    return path


def text_pdf(path: str | os.PathLike[str], pages: int = 1) -> Path:
    """Born-digital pages: the title (24 pt bold) on page 1, bold section headings (14 pt), 11 pt paragraphs,
    the running header on top and `Page N` at the bottom of each page. Page `n` mentions its number in its text
    ("This is page n of the report.") so page selection can be checked."""
    doc = _header_footer_pdf()
    for number in range(1, pages + 1):
        doc.add_page()
        if number == 1:
            doc.set_font("Helvetica", "B", 24)
            doc.multi_cell(0, 30, TITLE)
            doc.ln(10)
        doc.set_font("Helvetica", "", 11)
        doc.multi_cell(0, 15, f"This is page {number} of the report.")
        doc.ln(6)
        for heading, paragraph in zip(SECTION_HEADINGS, PARAGRAPHS, strict=True):
            doc.set_font("Helvetica", "B", 14)
            doc.multi_cell(0, 20, heading)
            doc.ln(2)
            doc.set_font("Helvetica", "", 11)
            doc.multi_cell(0, 15, paragraph)
            doc.ln(8)
    return _write(doc, path)


def two_column_pdf(path: str | os.PathLike[str]) -> Path:
    """One page: a full-width title, then two columns; everything in the left column comes first in reading
    order, although each of its lines sits at the same height as a line of the right column."""
    doc = _header_footer_pdf()
    doc.add_page()
    doc.set_font("Helvetica", "B", 20)
    doc.multi_cell(0, 26, "Fruit and Animals")
    doc.ln(10)
    top = doc.get_y()
    gutter = 24
    width = (doc.w - doc.l_margin - doc.r_margin - gutter) / 2
    doc.set_font("Helvetica", "", 11)
    for column, text in enumerate((LEFT_COLUMN, RIGHT_COLUMN)):
        x = doc.l_margin + column * (width + gutter)
        doc.set_xy(x, top)
        for _ in range(3):  # a tall column, so that the two really run side by side
            doc.set_x(x)
            doc.multi_cell(width, 15, text)
            doc.ln(6)
    return _write(doc, path)


def table_pdf(path: str | os.PathLike[str]) -> Path:
    """A heading, a paragraph, a 5x3 table drawn with ruling lines and its caption underneath."""
    doc = _header_footer_pdf()
    doc.add_page()
    doc.set_font("Helvetica", "B", 18)
    doc.multi_cell(0, 24, "Sales Summary")
    doc.ln(6)
    doc.set_font("Helvetica", "", 11)
    doc.multi_cell(0, 15, PARAGRAPHS[1])
    doc.ln(14)
    x0, y0 = doc.l_margin, doc.get_y()
    col_w, row_h = 120.0, 22.0
    cols, rows = len(TABLE_ROWS[0]), len(TABLE_ROWS)
    doc.set_line_width(0.8)
    for r in range(rows + 1):
        doc.line(x0, y0 + r * row_h, x0 + cols * col_w, y0 + r * row_h)
    for c in range(cols + 1):
        doc.line(x0 + c * col_w, y0, x0 + c * col_w, y0 + rows * row_h)
    for r, row in enumerate(TABLE_ROWS):
        doc.set_font("Helvetica", "B" if r == 0 else "", 11)
        for c, cell in enumerate(row):
            doc.set_xy(x0 + c * col_w + 6, y0 + r * row_h + 4)
            doc.cell(col_w - 12, 14, cell)
    doc.set_xy(x0, y0 + rows * row_h + 10)
    doc.set_font("Helvetica", "I", 10)
    doc.multi_cell(0, 14, TABLE_CAPTION)
    return _write(doc, path)


def _scan_source() -> FPDF:
    doc = FPDF(unit="pt", format="letter")
    doc.set_margins(72, 72, 72)
    doc.add_page()
    doc.set_font("Helvetica", "", 16)
    for line in SCAN_LINES:
        doc.cell(0, 28, line, new_x="LMARGIN", new_y="NEXT")
    return doc


def scanned_pdf(path: str | os.PathLike[str], dpi: int = 150) -> tuple[Path, str]:
    """An image-only page: a born-digital page rasterised at `dpi` and embedded as the page's only content.
    Returns the path and the text it shows, one line per `SCAN_LINES` entry, joined by newlines."""
    import pypdfium2 as pdfium

    source = pdfium.PdfDocument(bytes(_scan_source().output()))
    try:
        bitmap = source[0].render(scale=dpi / 72, grayscale=True)
        image = bitmap.to_pil()
    finally:
        source.close()
    doc = FPDF(unit="pt", format="letter")
    doc.add_page()
    doc.image(image, x=0, y=0, w=doc.w, h=doc.h)
    return _write(doc, path), "\n".join(SCAN_LINES)


def scanned_page_image(path: str | os.PathLike[str], dpi: int = 150):
    """The page of `scanned_pdf` as the RGB numpy array a worker renders from it at `dpi`."""
    import numpy as np
    import pypdfium2 as pdfium

    source, _ = scanned_pdf(path, dpi=dpi)
    doc = pdfium.PdfDocument(str(source))
    try:
        return np.asarray(doc[0].render(scale=dpi / 72).to_pil().convert("RGB"))
    finally:
        doc.close()


def cjk_font() -> Path | None:
    return next((font for font in CJK_FONTS if font.exists()), None)


def cjk_pdf(path: str | os.PathLike[str]) -> Path:
    """A page of Chinese text in a CJK TrueType collection; skips the calling test when no such font exists."""
    font = cjk_font()
    if font is None:
        import pytest

        pytest.skip("no CJK font installed (apt: fonts-wqy-microhei)")
    doc = FPDF(unit="pt", format="a4")
    doc.set_margins(72, 72, 72)
    doc.add_font("cjk", "", str(font))
    doc.add_page()
    doc.set_font("cjk", "", 22)
    doc.multi_cell(0, 30, CJK_TEXT[0])
    doc.ln(10)
    doc.set_font("cjk", "", 12)
    doc.multi_cell(0, 18, CJK_TEXT[1])
    return _write(doc, path)


def encrypted_pdf(path: str | os.PathLike[str], user_password: str = "secret") -> Path:
    """A one-page text PDF that needs `user_password` to open."""
    doc = FPDF(unit="pt", format="letter")
    doc.set_encryption(owner_password="owner-" + user_password, user_password=user_password)
    doc.add_page()
    doc.set_font("Helvetica", "", 12)
    doc.cell(0, 20, "This document is encrypted.")
    return _write(doc, path)


def _assemble(objects: list[bytes], root: int = 1) -> bytes:
    """A PDF file from numbered objects (object i+1 = objects[i]) with a correct cross-reference table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, root, xref)
    return bytes(out)


def zero_page_pdf(path: str | os.PathLike[str]) -> Path:
    """A well-formed PDF whose page tree is empty."""
    path = Path(path)
    path.write_bytes(_assemble([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]))
    return path


def huge_page_pdf(path: str | os.PathLike[str]) -> Path:
    """One 14400 x 14400 pt page (200 inches square, the largest PDF allows): at 200 DPI that is 1.6 G pixels."""
    doc = FPDF(unit="pt", format=(14400, 14400))
    doc.add_page()
    doc.set_font("Helvetica", "B", 200)
    doc.set_xy(400, 400)
    doc.cell(0, 240, "A very large page")
    doc.set_font("Helvetica", "", 120)
    doc.set_xy(400, 1000)
    doc.cell(0, 150, "with some text on it.")
    return _write(doc, path)


def huge_image_pdf(path: str | os.PathLike[str], side: int = 30_000) -> Path:
    """A Letter page showing one image that declares `side` x `side` 8-bit grey pixels (900 M for the default).

    Its stream holds only a few kilobytes of compressed data, so the file is tiny, but anything that decodes the
    image would allocate the full size first: the pipeline must refuse it from the declared size alone."""
    data = zlib.compress(bytes(side * 2), 9)  # the first two rows; a decoder pads the rest
    image = (
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8 "
        b"/Filter /FlateDecode /Length %d >>\nstream\n" % (side, side, len(data)) + data + b"\nendstream"
    )
    content = b"q 612 0 0 792 0 0 cm /Im0 Do Q"
    path = Path(path)
    path.write_bytes(
        _assemble(
            [
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /Im0 5 0 R >> >> "
                b"/Contents 4 0 R >>",
                b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
                image,
            ]
        )
    )
    return path


def nested_image_pdf(path: str | os.PathLike[str], depth: int, side: int = 30_000) -> Path:
    """`huge_image_pdf`'s image drawn from inside `depth` nested form XObjects: a walk of the page's objects that
    stops short of that depth never sees it, and a render would decode it."""
    data = zlib.compress(bytes(side * 2), 9)
    image = (
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8 "
        b"/Filter /FlateDecode /Length %d >>\nstream\n" % (side, side, len(data)) + data + b"\nendstream"
    )
    first_form = 6
    forms = []
    for level in range(depth):
        innermost = level == depth - 1
        target = 5 if innermost else first_form + level + 1
        content = b"q 612 0 0 792 0 0 cm /X Do Q" if innermost else b"/X Do"
        forms.append(
            b"<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /XObject << /X %d 0 R >> >> "
            b"/Length %d >>\nstream\n" % (target, len(content)) + content + b"\nendstream"
        )
    page_content = b"/X Do"
    path = Path(path)
    path.write_bytes(
        _assemble(
            [
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /X %d 0 R >> >> "
                b"/Contents 4 0 R >>" % first_form,
                b"<< /Length %d >>\nstream\n" % len(page_content) + page_content + b"\nendstream",
                image,
                *forms,
            ]
        )
    )
    return path


def truncated_pdf(src: str | os.PathLike[str], path: str | os.PathLike[str], keep: float = 0.3) -> Path:
    """The first `keep` fraction of `src`: it still starts with `%PDF-`, but its page tree and trailer are gone."""
    data = Path(src).read_bytes()
    path = Path(path)
    path.write_bytes(data[: max(16, int(len(data) * keep))])
    return path


def random_bytes(path: str | os.PathLike[str], size: int = 4096, pdf_header: bool = False) -> Path:
    """Random bytes (not a PDF), or with `pdf_header` a `%PDF-1.7` line followed by random bytes (a corrupt PDF)."""
    data = os.urandom(size)
    if pdf_header:
        data = b"%PDF-1.7\n" + data
    elif data.startswith(b"%PDF-"):  # one chance in 2**40, but keep the function honest
        data = b"\0" + data
    path = Path(path)
    path.write_bytes(data)
    return path


# --- typesetting the text layer must put back together ---------------------------------------------------------------
# DejaVu (fonts-dejavu-core) has the spacing accents, dotless i, Hebrew and Arabic the pages below need.
DEJAVU_DIR = Path("/usr/share/fonts/truetype/dejavu")
# What the accent page reads as: the accents are separate glyphs drawn over plain (or dotless) letters.
ACCENTED_LINES = ("We thank Ján Mináč and José Martínez for their help.", "Music by Antonín Dvořák was played.")
SCRIPT_LINE = "By Pythagoras a2 + b2 = c2 holds."
FRACTION_LINE = "The mean is m = x+y2 for two values."  # \frac{x+y}{2}: numerator first
SUM_LINE = "The total is S = ∑i=1n xi here."  # \sum_{i=1}^{n} x_i: lower limit, then upper
DROP_CAP = "O"
DROP_CAP_LINES = (
    "nce upon a time there was a drop cap at the start",
    "of this paragraph, three lines tall, as old books",
    "have them, and the text runs beside it.",
)
RTL_LINES = ("שלום עולם גדול מאוד", "ספר טוב לקרוא בערב", "مرحبا بالعالم الكبير")
HYPHENATED_LINES = ("The students of the Col-", "lege met for problem-", "solving sessions every week.")


def dejavu_font(name: str = "DejaVuSerif.ttf") -> Path:
    """A DejaVu font file; skips the calling test when it is not installed."""
    font = DEJAVU_DIR / name
    if not font.exists():
        import pytest

        pytest.skip(f"{font} not installed (apt: fonts-dejavu-core)")
    return font


def _put(doc: FPDF, x: float, y: float, text: str, size: float) -> float:
    """Draws `text` as a text object of its own with its baseline at `y`; returns the x where it ends."""
    doc.set_font_size(size)
    doc.text(x, y, text)
    return x + doc.get_string_width(text)


def _accent_over(doc: FPDF, line: str, x: float, y: float, index: int, accent: str) -> None:
    """Draws `accent` centred over `line[index]` of `line` typeset at (x, y), raised a little as TeX does."""
    left = x + doc.get_string_width(line[:index])
    centre = left + doc.get_string_width(line[index]) / 2
    doc.text(centre - doc.get_string_width(accent) / 2, y - 0.5, accent)


def accents_pdf(path: str | os.PathLike[str]) -> Path:
    """`ACCENTED_LINES` typeset the way TeX does it: the plain letters (dotless ı under an accented i), then each
    accent as a glyph of its own over its letter. On the first line the accents come after the text in the content
    stream, on the second before it."""
    doc = FPDF(unit="pt", format="letter")
    doc.add_font("serif", "", str(dejavu_font()))
    doc.add_page()
    doc.set_font("serif", "", 12)
    marks = {"á": ("a", "\u00b4"), "é": ("e", "\u00b4"), "í": ("\u0131", "\u00b4"), "č": ("c", "\u02c7"),
             "ř": ("r", "\u02c7")}
    for n, line in enumerate(ACCENTED_LINES):
        y = 100 + 20 * n
        plain = "".join(marks[ch][0] if ch in marks else ch for ch in line)
        accents = [(k, marks[ch][1]) for k, ch in enumerate(line) if ch in marks]
        if n == 0:
            doc.text(72, y, plain)
        for k, accent in accents:
            _accent_over(doc, plain, 72, y, k, accent)
        if n != 0:
            doc.text(72, y, plain)
    return _write(doc, path)


def math_pdf(path: str | os.PathLike[str]) -> Path:
    """Inline mathematics as TeX draws it, one text object per piece: raised smaller superscripts (`SCRIPT_LINE`),
    a small fraction (`FRACTION_LINE`), a big sum with limits above and below and a subscript (`SUM_LINE`); then a
    paragraph opening with a 36 pt drop cap (`DROP_CAP`) beside three lines of 12 pt text (`DROP_CAP_LINES`)."""
    doc = FPDF(unit="pt", format="letter")
    doc.add_font("serif", "", str(dejavu_font()))
    doc.add_page()
    doc.set_font("serif", "", 12)
    x, y = 72.0, 100.0
    for piece in ("By Pythagoras a", "2", " + b", "2", " = c", "2", " holds."):
        x = _put(doc, x, y - 4 if piece == "2" else y, piece, 8 if piece == "2" else 12)
    y = 140.0
    x = _put(doc, 72, y, "The mean is m = ", 12)
    doc.set_font_size(8)
    width = doc.get_string_width("x+y")
    _put(doc, x, y - 5, "x+y", 8)
    _put(doc, x + (width - doc.get_string_width("2")) / 2, y + 4, "2", 8)
    doc.line(x, y - 3.5, x + width, y - 3.5)
    _put(doc, x + width + 2, y, " for two values.", 12)
    y = 190.0
    x = _put(doc, 72, y, "The total is S = ", 12)
    doc.set_font_size(20)
    sigma = doc.get_string_width("∑")
    _put(doc, x, y + 3, "∑", 20)
    doc.set_font_size(7)
    _put(doc, x + (sigma - doc.get_string_width("n")) / 2, y - 13, "n", 7)
    _put(doc, x + (sigma - doc.get_string_width("i=1")) / 2, y + 11, "i=1", 7)
    x = _put(doc, x + sigma + 2, y, "x", 12)
    x = _put(doc, x, y + 2, "i", 8)
    _put(doc, x + 2, y, " here.", 12)
    _put(doc, 72, 260, DROP_CAP, 36)
    for n, line in enumerate(DROP_CAP_LINES):
        _put(doc, 100, 236 + 14 * n, line, 12)
    return _write(doc, path)


def rtl_pdf(path: str | os.PathLike[str]) -> Path:
    """`RTL_LINES` right-aligned at x = 400 pt, every glyph a text object of its own drawn left to right in visual
    order (the last letter of the line first), the way some producers position right-to-left text."""
    doc = FPDF(unit="pt", format="letter")
    doc.add_font("sans", "", str(dejavu_font("DejaVuSans.ttf")))
    doc.add_page()
    doc.set_font("sans", "", 14)
    for n, line in enumerate(RTL_LINES):
        visual = line[::-1]
        x = 400 - doc.get_string_width(visual)
        for ch in visual:
            x = _put(doc, x, 100 + 20 * n, ch, 14)
    return _write(doc, path)


def hyphenated_pdf(path: str | os.PathLike[str]) -> Path:
    """`HYPHENATED_LINES`: a paragraph whose first two lines end in a word hyphenated over the line break."""
    doc = FPDF(unit="pt", format="letter")
    doc.add_page()
    doc.set_font("Helvetica", "", 11)
    for n, line in enumerate(HYPHENATED_LINES):
        doc.text(72, 100 + 14 * n, line)
    return _write(doc, path)


# --- figures and images -------------------------------------------------------------------------------------------
FIGURE_CAPTIONS = ("Figure 1: Widget sales by quarter", "Figure 2: The northern assembly plant")


def bar_chart_image(width: int = 900, height: int = 600):
    """A bar chart as a PIL image: axes, four coloured bars, tick labels (line art: few colours)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.line([(80, 40), (80, height - 60), (width - 40, height - 60)], fill="black", width=4)
    colours = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")
    for i, (value, colour) in enumerate(zip((0.45, 0.7, 0.55, 0.9), colours, strict=True)):
        x0 = 130 + i * 190
        draw.rectangle([x0, height - 60 - value * (height - 120), x0 + 120, height - 62], fill=colour)
        draw.text((x0 + 40, height - 45), f"Q{i + 1}", fill="black")
    return image


def photo_image(width: int = 800, height: int = 500, seed: int = 7):
    """A photograph-like PIL image: smooth gradients plus grain (thousands of colours)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width * 200, y / height * 180, (x + y) / (width + height) * 220], axis=-1)
    pixels = np.clip(base + rng.normal(0, 18, base.shape), 0, 255).astype("uint8")
    return Image.fromarray(pixels)


def figure_pdf(path: str | os.PathLike[str], pages: int = 2) -> Path:
    """Born-digital pages, each with a heading, a paragraph, one large picture and its caption under it:
    a bar chart on odd pages, a photograph on even pages (captions from `FIGURE_CAPTIONS`)."""
    doc = FPDF(unit="pt", format="letter")
    doc.set_margins(72, 72, 72)
    for number in range(1, pages + 1):
        doc.add_page()
        doc.set_font("Helvetica", "B", 18)
        doc.multi_cell(0, 24, f"{SECTION_HEADINGS[(number - 1) % 4]} {number}", new_x="LMARGIN", new_y="NEXT")
        doc.set_font("Helvetica", "", 11)
        doc.multi_cell(0, 15, PARAGRAPHS[(number - 1) % 4], new_x="LMARGIN", new_y="NEXT")
        doc.ln(12)
        picture = bar_chart_image() if number % 2 else photo_image()
        top = doc.get_y()
        doc.image(picture, x=72, y=top, w=468)
        doc.set_y(top + 468 * picture.height / picture.width + 8)
        doc.set_font("Helvetica", "I", 10)
        doc.multi_cell(0, 14, FIGURE_CAPTIONS[(number - 1) % 2], new_x="LMARGIN", new_y="NEXT")
        doc.ln(8)
        doc.set_font("Helvetica", "", 11)
        doc.multi_cell(0, 15, PARAGRAPHS[number % 4], new_x="LMARGIN", new_y="NEXT")
    return _write(doc, path)


def scan_image(dpi: int = 200):
    """The scanned page of `scanned_pdf` as a PIL image (grey, white paper) rendered at `dpi`."""
    import pypdfium2 as pdfium

    source = pdfium.PdfDocument(bytes(_scan_source().output()))
    try:
        return source[0].render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
    finally:
        source.close()


def png_bomb(path: str | os.PathLike[str], side: int = 12_000) -> Path:
    """A small PNG that declares `side` x `side` grey pixels (144 M for the default, over the 40 M default of
    MAX_PAGE_PIXELS) of zeros: a decompression bomb, ~150 KB on disk. Built 100 rows at a time, so making it
    never holds the pixels in memory."""
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    compressor = zlib.compressobj(6)
    rows = b"\x00" * ((side + 1) * 100)  # 100 rows: filter byte + one byte per pixel each
    body = b"".join(compressor.compress(rows) for _ in range(side // 100)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path = Path(path)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path
# --- tables without rulings, spanning headings, wrapped cells, right-to-left tables --------------------------------
PROSE_ABOVE = (
    "The figures below come from the regional offices and were checked by the finance team before publication.",
    "Each office reports its units and revenue once a quarter, in thousands.",
)
PROSE_BELOW = "Totals may differ from the sum of the rows because of rounding in the regional reports."
BORDERLESS_ROWS = (
    ("Region", "Units", "Revenue", "Margin"),
    ("North America", "1,200", "4,800.50", "12.5"),
    ("South", "950", "3,800.00", "9.1"),
    ("Eastern Europe", "700", "2,800.25", "-3.4"),
    ("West", "1,100", "4,400.75", "11.0"),
    ("Central Asia", "85", "340.10", "0.7"),
)
SPANNING_GROUP = "Revenue"  # centred over the two year columns
SPANNING_ROWS = (
    ("Product", "2023", "2024"),
    ("Widgets", "1,505", "1,580"),
    ("Gadgets", "1,512", "1,586"),
    ("Sprockets", "1,646", "1,677"),
    ("Flanges", "1,693", "1,701"),
)
WRAPPED_ROWS = (  # (cell lines, ...) per row: the middle column of some rows wraps over two lines
    (("No.",), ("Contract description",), ("Amount",)),
    (("1",), ("Procurement of four", "pickup trucks"), ("902,418.00",)),
    (("2",), ("Training simulators",), ("198,770.00",)),
    (("3",), ("Lockers and hand", "drilling machines"), ("235,376.73",)),
    (("4",), ("Speed radar guns",), ("52,350.00",)),
)
RTL_TABLE_ROWS = (  # logical order: the label column first, read from the right
    ("סך הכל", "2.6", "3.2", "3.0"),
    ("הסקטור העסקי", "2.5", "3.4", "2.9"),
    ("בינוי", "-1.7", "1.3", "6.8"),
    ("צריכה", "3.8", "3.5", "3.6"),
)


def _right(doc: FPDF, x_right: float, y: float, text: str) -> None:
    doc.text(x_right - doc.get_string_width(text), y, text)


def borderless_table_pdf(path: str | os.PathLike[str]) -> Path:
    """Two paragraphs, `BORDERLESS_ROWS` as a table without a single rule (labels left-aligned, numbers
    right-aligned, columns only a few spaces apart so the text layer joins a row's cells into one line), and a
    paragraph right under it."""
    doc = FPDF(unit="pt", format="letter")
    doc.add_page()
    doc.set_font("Helvetica", "", 10)
    doc.set_xy(72, 72)
    for text in PROSE_ABOVE:
        doc.multi_cell(468, 13, text)
        doc.ln(4)
    y = doc.get_y() + 16
    rights = (None, 175.0, 225.0, 270.0)  # Units and Revenue only 2-4 spaces apart
    for r, row in enumerate(BORDERLESS_ROWS):
        doc.set_font("Helvetica", "B" if r == 0 else "", 10)
        doc.text(72, y, row[0])
        for c in range(1, len(row)):
            _right(doc, rights[c], y, row[c])
        y += 14
    doc.set_font("Helvetica", "", 10)
    doc.set_xy(72, y + 6)
    doc.multi_cell(468, 13, PROSE_BELOW)
    return _write(doc, path)


def spanning_header_pdf(path: str | os.PathLike[str]) -> Path:
    """A borderless table whose two year columns sit under one heading centred over both (`SPANNING_GROUP`)."""
    doc = FPDF(unit="pt", format="letter")
    doc.add_page()
    doc.set_font("Helvetica", "", 10)
    y = 100.0
    rights = (None, 260.0, 320.0)
    centre = (rights[1] - 20 + rights[2]) / 2
    doc.text(centre - doc.get_string_width(SPANNING_GROUP) / 2, y, SPANNING_GROUP)
    y += 14
    for row in SPANNING_ROWS:
        doc.text(100, y, row[0])
        for c in (1, 2):
            _right(doc, rights[c], y, row[c])
        y += 14
    return _write(doc, path)


def wrapped_cells_pdf(path: str | os.PathLike[str]) -> Path:
    """`WRAPPED_ROWS` in a grid drawn with rules, each row as tall as its tallest cell, cells top-aligned."""
    doc = FPDF(unit="pt", format="letter")
    doc.add_page()
    doc.set_font("Helvetica", "", 10)
    xs = (72.0, 112.0, 262.0, 352.0)
    line_h = 12.0
    y = 100.0
    doc.set_line_width(0.5)
    tops = []
    for row in WRAPPED_ROWS:
        tops.append(y)
        height = max(len(cell) for cell in row) * line_h + 6
        for c, cell in enumerate(row):
            for k, text in enumerate(cell):
                doc.text(xs[c] + 4, y + 11 + k * line_h, text)
        y += height
    tops.append(y)
    for t in tops:
        doc.line(xs[0], t, xs[-1], t)
    for x in xs:
        doc.line(x, tops[0], x, tops[-1])
    return _write(doc, path)


def rtl_table_pdf(path: str | os.PathLike[str]) -> Path:
    """`RTL_TABLE_ROWS` laid out right to left without rules: Hebrew labels right-aligned at the right edge, the
    number columns to their left (first number column nearest the labels). Hebrew glyphs are drawn one text
    object each in visual order, as `rtl_pdf` does."""
    doc = FPDF(unit="pt", format="letter")
    doc.add_font("sans", "", str(dejavu_font("DejaVuSans.ttf")))
    doc.add_page()
    doc.set_font("sans", "", 10)
    y = 100.0
    number_rights = (330.0, 270.0, 210.0)
    for row in RTL_TABLE_ROWS:
        visual = row[0][::-1]
        x = 460 - doc.get_string_width(visual)
        for ch in visual:
            x = _put(doc, x, y, ch, 10)
        for value, right in zip(row[1:], number_rights):
            _right(doc, right, y, value)
        y += 14
    return _write(doc, path)


HOSTILE_LINES = (
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(2)">',
    '<iframe src="https://evil.example/"></iframe>',
    "[click me](javascript:alert(3)) and ![pic](javascript:alert(4))",
    "[ref]: javascript:alert(5)",
    "Fish &amp; chips, AT&T, 3 < 4 > 2",
)


def hostile_text_pdf(path: str | os.PathLike[str]) -> Path:
    """A born-digital page whose text is HTML and Markdown link syntax (HOSTILE_LINES), as paragraphs, a heading
    and a table: what the page says must reach the Markdown as text, never as markup."""
    doc = FPDF(unit="pt", format="letter")
    doc.add_page()
    doc.set_font("Helvetica", "B", 20)
    doc.set_xy(72, 72)
    doc.cell(0, 24, "<b>Heading</b> [x](javascript:alert(0))")
    doc.set_font("Helvetica", "", 11)
    y = 130.0
    for line in HOSTILE_LINES:
        doc.set_xy(72, y)
        doc.cell(0, 14, line)
        y += 30
    y += 20
    for row in (("Name", "Value"), ("<script>x</script>", "[a](javascript:b)"), ("<b>bold</b>", "1 & 2")):
        for col, cell in enumerate(row):
            doc.set_xy(72 + col * 200, y)
            doc.cell(200, 20, cell, border=1)
        y += 20
    return _write(doc, path)


# Pages in other scripts, for the language routing (app/pipeline/recognize/routing.py). Real sentences, so that the
# engines read them as they read documents: Russian, Ukrainian (і, ї, є, ґ are Ukrainian letters Russian lacks), and
# Russian lines with English commands inside.
RUSSIAN_LINES = (
    "Договор поставки заключён в городе Москве",
    "Поставщик обязуется передать покупателю товар",
    "в количестве и в сроки, указанные в приложении",
    "Оплата производится в течение десяти дней",
    "после подписания акта приёма и передачи товара",
    "Споры решаются путём переговоров между сторонами",
)
UKRAINIAN_LINES = (
    "Постачальник зобов'язується передати товар",
    "Покупець сплачує вартість протягом десяти днів",
    "Їхні підписи засвідчують згоду обох сторін",
    "Договір набирає чинності з дня підписання",
    "Усі зміни оформлюються у письмовій формі",
)
MIXED_LINES = (
    "Команда grep выводит строки, в которых найден образец",
    "Ключ --recursive просматривает все каталоги подряд",
    "Программа cat объединяет файлы и печатает их",
    "Параметр --help выводит справку и завершает работу",
    "Сообщайте об ошибках по адресу bugs@example.org",
)


def scanned_lines_pdf(path: str | os.PathLike[str], lines: Sequence[str], dpi: int = 200) -> Path:
    """`lines` typeset in DejaVu Serif 14 pt (it has Cyrillic), rasterised at `dpi` and embedded as an image-only
    page: a scan of them."""
    import pypdfium2 as pdfium

    doc = FPDF(unit="pt", format="A4")
    doc.add_font("serif", "", str(dejavu_font()))
    doc.set_margins(60, 80, 60)
    doc.add_page()
    doc.set_font("serif", "", 14)
    for line in lines:
        doc.cell(0, 26, line, new_x="LMARGIN", new_y="NEXT")
    source = pdfium.PdfDocument(bytes(doc.output()))
    try:
        image = source[0].render(scale=dpi / 72, grayscale=True).to_pil()
    finally:
        source.close()
    scan = FPDF(unit="pt", format="A4")
    scan.add_page()
    scan.image(image, x=0, y=0, w=scan.w, h=scan.h)
    return _write(scan, path)
