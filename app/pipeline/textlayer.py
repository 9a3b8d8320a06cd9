"""Text layer: the lines of text a born-digital page carries, the ruling lines that draw its tables, and whether
the text can be trusted (`auto` mode reads untrustworthy pages with OCR instead).

All boxes come out in PDF points with the origin at the top-left corner of the page as displayed (rotation and
crop box applied), the same space the rest of the pipeline uses. Character boxes are PDFium's "loose" boxes (font
ascent to descent), which give every line of one font the same height whatever its letters are.

Speed matters here (`text` mode aims at hundreds of pages a second), so pdfium is asked for as little as possible
through its raw API: the page's text in one call, then one box for the first and the last character of each word,
and the font of each line's first character.
"""

from __future__ import annotations

import ctypes
import math
import re
from dataclasses import dataclass, field

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from app.pipeline.intake import PDFIUM_LOCK
from app.pipeline.primitives import TextLayer, TextLine
from app.pipeline.result import BBox

Affine = tuple[float, float, float, float, float, float]  # x' = a*x + c*y + e ; y' = b*x + d*y + f

_LINE = re.compile(r"[^\r\n]+")
_WORD = re.compile(r"\S+")
_BOLD_NAME = re.compile(r"bold|black|heavy|semibold|demi|,b$|-b$|extrab", re.IGNORECASE)
_FORCE_BOLD = 0x40000  # FontDescriptor /Flags bit 19

# Words of one line further apart than this many line heights are separate lines (columns, table cells).
GAP_SPLIT = 1.2
# Path objects at most this thick (points) and at least this long count as ruling lines.
RULING_MAX_THICKNESS = 3.0
RULING_MIN_LENGTH = 6.0
MAX_PATH_OBJECTS = 5000  # beyond this the page is a vector drawing: stop looking for table rulings
MAX_PATH_SEGMENTS = 64


@dataclass(frozen=True, slots=True)
class PageObjects:
    """What the page draws besides text: ruling lines (thin paths, for tables), images' boxes and declared sizes."""

    rulings: list[BBox] = field(default_factory=list)
    image_boxes: list[BBox] = field(default_factory=list)
    image_sizes: list[tuple[int, int]] = field(default_factory=list)

    def image_area(self, width: float, height: float) -> float:
        """Points squared of the page covered by images (the largest image, or their clipped sum)."""
        total = 0.0
        for x0, y0, x1, y1 in self.image_boxes:
            total += max(0.0, min(x1, width) - max(x0, 0.0)) * max(0.0, min(y1, height) - max(y0, 0.0))
        return min(total, width * height)


# --- coordinates ------------------------------------------------------------------------------------------------
def display_transform(page: pdfium.PdfPage) -> Affine:
    """The affine map from the page's user space (PDF points, y up) to displayed points (top-left origin, y down,
    rotation and crop box applied), taken from pdfium's own page-to-device mapping so it matches rendering."""
    with PDFIUM_LOCK:
        width, height = page.get_size()
        precision = 64.0  # pdfium maps to integer device pixels: map onto a finer grid, then scale back
        size_x, size_y = max(1, round(width * precision)), max(1, round(height * precision))
        dx, dy = ctypes.c_int(), ctypes.c_int()

        def device(x: float, y: float) -> tuple[float, float]:
            pdfium_c.FPDF_PageToDevice(page.raw, 0, 0, size_x, size_y, 0, x, y, ctypes.byref(dx), ctypes.byref(dy))
            return dx.value / precision, dy.value / precision

        span = 1024.0
        ox, oy = device(0.0, 0.0)
        ax, ay = device(span, 0.0)
        bx, by = device(0.0, span)
    return ((ax - ox) / span, (ay - oy) / span, (bx - ox) / span, (by - oy) / span, ox, oy)


def _box(t: Affine, left: float, bottom: float, right: float, top: float) -> BBox:
    a, b, c, d, e, f = t
    xs = (a * left + c * bottom + e, a * right + c * top + e, a * left + c * top + e, a * right + c * bottom + e)
    ys = (b * left + d * bottom + f, b * right + d * top + f, b * left + d * top + f, b * right + d * bottom + f)
    return (min(xs), min(ys), max(xs), max(ys))


# --- text -------------------------------------------------------------------------------------------------------
def extract(page: pdfium.PdfPage, objects: PageObjects | None = None, transform: Affine | None = None) -> TextLayer:
    """The page's text as lines with boxes, font size and boldness; rulings from `objects` (or scanned now)."""
    if transform is None:
        transform = display_transform(page)
    if objects is None:
        objects = scan_objects(page, transform)
    with PDFIUM_LOCK:
        textpage = page.get_textpage()
        try:
            lines, char_count = _lines(textpage, transform)
        finally:
            textpage.close()
    return TextLayer(lines=lines, rulings=objects.rulings, char_count=char_count)


def _lines(textpage: pdfium.PdfTextPage, transform: Affine) -> tuple[list[TextLine], int]:
    raw = textpage.raw
    count = pdfium_c.FPDFText_CountChars(raw)
    if count <= 0:
        return [], 0
    text = textpage.get_text_range(0, count)
    if len(text) != count:  # characters outside the BMP, or ones pdfium's text leaves out
        text = _text_by_chars(textpage, 0, count)
    reader = _BoxReader(raw, transform)
    fonts = _FontReader(raw)
    rects_of, char_box, word_box, read_font = reader.rects, reader.char_box, reader.word_box, fonts.read
    get_angle = pdfium_c.FPDFText_GetCharAngle
    lines: list[TextLine] = []
    append = lines.append
    search_word = _WORD.search
    # pdfium ends each line it finds with a generated line break. Its rectangles (one per run of characters of
    # one text object) tell in one call whether a line holds far-apart pieces: only then are words measured.
    for match in _LINE.finditer(text):
        line_start, line_end = match.span()
        word = search_word(text, line_start, line_end)
        if word is None:
            continue
        first = word.start()
        end = line_start + len(match.group().rstrip())
        rects = rects_of(first, end - first)
        segments = None
        if len(rects) > 1:
            # Which way the text runs matters only when there are pieces to compare: asked for lazily.
            direction = _direction(transform, get_angle(raw, first))
            if any(_cuts(rects, direction)):
                segments = reader.split_by_words(text, first, end, direction)
        if segments is None:
            segments = [(first, end, _union(rects) if rects else word_box(first, end))]
        for start, stop, box in segments:
            content = " ".join(text[start:stop].split())
            if not content:
                continue
            # Tight glyph boxes vary with the letters; the first character's loose box gives the line its
            # font's full ascent-to-descent height.
            c = char_box(start)
            box = (
                box[0] if box[0] < c[0] else c[0], box[1] if box[1] < c[1] else c[1],
                box[2] if box[2] > c[2] else c[2], box[3] if box[3] > c[3] else c[3],
            )
            size, bold = read_font(start)
            if size <= 0:
                size = min(box[2] - box[0], box[3] - box[1]) / 1.15
            append(TextLine(text=content, bbox=box, font_size=round(size, 2), bold=bold))
    return lines, count


# Below this many characters a range is read character by character rather than split further.
_CHARWISE_SPAN = 32


def _text_by_chars(textpage: pdfium.PdfTextPage, start: int, stop: int) -> str:
    """The text of characters `start..stop` with exactly one string character per pdfium character (what
    `FPDFText_GetUnicode` says for each), for pages whose bulk text does not line up with the characters.

    Asking for every character costs a call each; instead the range is halved until the bulk text of a piece
    lines up, and only the pieces around the odd characters are read one by one. In bulk text pdfium writes
    U+FFFE for characters it cannot place; those few are asked for individually, as a one-by-one read would."""
    raw = textpage.raw
    get_unicode = pdfium_c.FPDFText_GetUnicode
    if stop - start <= _CHARWISE_SPAN:
        return "".join([chr(get_unicode(raw, i) or 0xFFFD) for i in range(start, stop)])
    piece = textpage.get_text_range(start, stop - start)
    if len(piece) == stop - start:
        if "\ufffe" not in piece:
            return piece
        chars = list(piece)
        for k, ch in enumerate(chars):
            if ch == "\ufffe":
                chars[k] = chr(get_unicode(raw, start + k) or 0xFFFD)
        return "".join(chars)
    middle = (start + stop) // 2
    return _text_by_chars(textpage, start, middle) + _text_by_chars(textpage, middle, stop)


def _box_mapper(t: Affine):
    """`_box` specialised to one transform: unrotated pages (the usual case) need two products per corner pair,
    not eight. Gives exactly `_box`'s numbers (adding a zero product changes no float)."""
    a, b, c, d, e, f = t
    if b == 0.0 and c == 0.0:
        def box(left: float, bottom: float, right: float, top: float) -> BBox:
            x0, x1 = a * left + e, a * right + e
            y0, y1 = d * bottom + f, d * top + f
            return (x0 if x0 < x1 else x1, y0 if y0 < y1 else y1, x1 if x1 > x0 else x0, y1 if y1 > y0 else y0)

        return box
    return lambda left, bottom, right, top: _box(t, left, bottom, right, top)


class _BoxReader:
    """Boxes from pdfium's text page, already in display points."""

    def __init__(self, raw, transform: Affine) -> None:
        self._raw = raw
        self._map = _box_mapper(transform)
        self._rect = pdfium_c.FS_RECTF()
        self._rect_ref = ctypes.byref(self._rect)
        self._sides = [ctypes.c_double() for _ in range(4)]
        self._side_refs = [ctypes.byref(v) for v in self._sides]

    def rects(self, start: int, count: int) -> list[BBox]:
        raw, (left, top, right, bottom) = self._raw, self._sides
        ref_l, ref_t, ref_r, ref_b = self._side_refs
        get_rect, to_box = pdfium_c.FPDFText_GetRect, self._map
        boxes = []
        for i in range(pdfium_c.FPDFText_CountRects(raw, start, count)):
            if get_rect(raw, i, ref_l, ref_t, ref_r, ref_b):
                boxes.append(to_box(left.value, bottom.value, right.value, top.value))
        return boxes

    def char_box(self, index: int) -> BBox:
        pdfium_c.FPDFText_GetLooseCharBox(self._raw, index, self._rect_ref)
        r = self._rect
        return self._map(r.left, r.bottom, r.right, r.top)

    def word_box(self, start: int, end: int) -> BBox:
        box = self.char_box(start)
        if end - 1 <= start:
            return box
        other = self.char_box(end - 1)
        return (
            box[0] if box[0] < other[0] else other[0], box[1] if box[1] < other[1] else other[1],
            box[2] if box[2] > other[2] else other[2], box[3] if box[3] > other[3] else other[3],
        )

    def split_by_words(self, text: str, start: int, end: int, direction: int) -> list[tuple[int, int, BBox]]:
        words = [m.span() for m in _WORD.finditer(text, start, end)]
        word_box = self.word_box
        boxes = [word_box(s, e) for s, e in words]
        segments: list[tuple[int, int, BBox]] = []
        first = 0
        cuts = _cuts(boxes, direction)
        for k in range(1, len(words) + 1):
            if k == len(words) or cuts[k]:
                segments.append((words[first][0], words[k - 1][1], _union(boxes[first:k])))
                first = k
        return segments


def _union(boxes: list[BBox]) -> BBox:
    if len(boxes) == 1:
        return boxes[0]
    x0s, y0s, x1s, y1s = zip(*boxes)
    return (min(x0s), min(y0s), max(x1s), max(y1s))


def _direction(transform: Affine, angle: float) -> int:
    """Which way a line's text runs on the displayed page, in quarter turns clockwise from left-to-right."""
    if angle < 0:  # pdfium could not tell
        return 0
    a, b, c, d, _, _ = transform
    ux, uy = math.cos(angle), math.sin(angle)
    dx, dy = a * ux + c * uy, b * ux + d * uy
    if abs(dx) >= abs(dy):
        return 0 if dx >= 0 else 2
    return 1 if dy > 0 else 3


def _in_reading_frame(box: BBox, direction: int) -> BBox:
    """`box` in a frame where the text runs along +x and lines follow each other along +y."""
    x0, y0, x1, y1 = box
    if direction == 1:  # running down the page
        return (y0, -x1, y1, -x0)
    if direction == 2:  # upside down
        return (-x1, -y1, -x0, -y0)
    if direction == 3:  # running up the page
        return (-y1, x0, -y0, x1)
    return box


def _cuts(boxes: list[BBox], direction: int) -> list[bool]:
    """For each box of one line, whether a new segment starts there: too far to the right of the previous one
    (columns, table cells), back to its left, or off its baseline."""
    frames = boxes if direction == 0 else [_in_reading_frame(b, direction) for b in boxes]
    cuts = [False] * len(frames)
    prev = frames[0] if frames else None
    for k in range(1, len(frames)):
        cur = frames[k]
        height = max(prev[3] - prev[1], cur[3] - cur[1], 1.0)
        gap = cur[0] - prev[2]
        drift = abs((cur[1] + cur[3]) - (prev[1] + prev[3])) / 2
        cuts[k] = gap > GAP_SPLIT * height or gap < -height or drift > 0.6 * height
        prev = cur
    return cuts


class _FontReader:
    """Effective font size (points, text matrix applied) and boldness of a character, with font names cached."""

    def __init__(self, raw) -> None:
        self._raw = raw
        self._matrix = pdfium_c.FS_MATRIX()
        self._flags = ctypes.c_int()
        self._name = ctypes.create_string_buffer(128)
        self._bold: dict[tuple[bytes, int], bool] = {}
        self._matrix_ref = ctypes.byref(self._matrix)
        self._flags_ref = ctypes.byref(self._flags)
        self._name_len = len(self._name)

    def read(self, index: int) -> tuple[float, bool]:
        raw = self._raw
        size = pdfium_c.FPDFText_GetFontSize(raw, index)
        if pdfium_c.FPDFText_GetMatrix(raw, index, self._matrix_ref):
            m = self._matrix
            size *= math.sqrt(abs(m.a * m.d - m.b * m.c))
        pdfium_c.FPDFText_GetFontInfo(raw, index, self._name, self._name_len, self._flags_ref)
        key = (self._name.value, self._flags.value)
        bold = self._bold.get(key)
        if bold is None:  # once per font: the weight lookup is the slowest of these calls
            weight = pdfium_c.FPDFText_GetFontWeight(raw, index)
            if weight > 0:
                bold = weight >= 600
            else:
                name = key[0].decode("latin-1").split("+")[-1]
                bold = bool(_BOLD_NAME.search(name)) or bool(key[1] & _FORCE_BOLD)
            self._bold[key] = bold
        return size, bold


# --- paths and images -------------------------------------------------------------------------------------------
def scan_objects(page: pdfium.PdfPage, transform: Affine | None = None, max_depth: int = 4) -> PageObjects:
    """Ruling lines and images on the page (inside form XObjects too), boxes in display points.

    Rulings are thin stroked or filled paths and the axis-aligned edges of small stroked paths (cell borders drawn
    as rectangles). Reads only object dictionaries and paths: no image is decoded."""
    if transform is None:
        transform = display_transform(page)
    rulings: list[BBox] = []
    image_boxes: list[BBox] = []
    image_sizes: list[tuple[int, int]] = []
    left, bottom, right, top = (ctypes.c_float() for _ in range(4))
    bounds_refs = tuple(ctypes.byref(v) for v in (left, bottom, right, top))
    px_w, px_h = ctypes.c_uint(), ctypes.c_uint()
    paths_seen = 0

    def visit(count: int, get, depth: int) -> None:
        nonlocal paths_seen
        for i in range(count):
            obj = get(i)
            kind = pdfium_c.FPDFPageObj_GetType(obj)
            if kind == pdfium_c.FPDF_PAGEOBJ_PATH:
                paths_seen += 1
                if paths_seen > MAX_PATH_OBJECTS:
                    continue
                if not pdfium_c.FPDFPageObj_GetBounds(obj, *bounds_refs):
                    continue
                box = _box(transform, left.value, bottom.value, right.value, top.value)
                w, h = box[2] - box[0], box[3] - box[1]
                if min(w, h) <= RULING_MAX_THICKNESS:
                    if max(w, h) >= RULING_MIN_LENGTH:
                        rulings.append(box)
                else:
                    rulings.extend(_stroked_edges(obj, transform))
            elif kind == pdfium_c.FPDF_PAGEOBJ_IMAGE:
                if pdfium_c.FPDFPageObj_GetBounds(obj, *bounds_refs):
                    image_boxes.append(_box(transform, left.value, bottom.value, right.value, top.value))
                if pdfium_c.FPDFImageObj_GetImagePixelSize(obj, ctypes.byref(px_w), ctypes.byref(px_h)):
                    image_sizes.append((int(px_w.value), int(px_h.value)))
            elif kind == pdfium_c.FPDF_PAGEOBJ_FORM and depth < max_depth:
                visit(
                    pdfium_c.FPDFFormObj_CountObjects(obj),
                    lambda j, o=obj: pdfium_c.FPDFFormObj_GetObject(o, j),
                    depth + 1,
                )

    with PDFIUM_LOCK:
        raw = page.raw
        visit(pdfium_c.FPDFPage_CountObjects(raw), lambda i: pdfium_c.FPDFPage_GetObject(raw, i), 0)
    return PageObjects(rulings=rulings, image_boxes=image_boxes, image_sizes=image_sizes)


def _stroked_edges(obj, transform: Affine) -> list[BBox]:
    """Axis-aligned straight edges of a stroked path with few segments (a rectangle drawn around a cell)."""
    fill_mode, stroke = ctypes.c_int(), ctypes.c_int()
    if not pdfium_c.FPDFPath_GetDrawMode(obj, ctypes.byref(fill_mode), ctypes.byref(stroke)) or not stroke.value:
        return []
    count = pdfium_c.FPDFPath_CountSegments(obj)
    if count <= 1 or count > MAX_PATH_SEGMENTS:
        return []
    matrix = pdfium_c.FS_MATRIX()
    if not pdfium_c.FPDFPageObj_GetMatrix(obj, ctypes.byref(matrix)):
        return []
    m = matrix
    to_page = (m.a, m.b, m.c, m.d, m.e, m.f)
    x, y = ctypes.c_float(), ctypes.c_float()
    points: list[tuple[int, float, float, bool]] = []
    for i in range(count):
        segment = pdfium_c.FPDFPath_GetPathSegment(obj, i)
        if not pdfium_c.FPDFPathSegment_GetPoint(segment, ctypes.byref(x), ctypes.byref(y)):
            return []
        kind = pdfium_c.FPDFPathSegment_GetType(segment)
        closes = bool(pdfium_c.FPDFPathSegment_GetClose(segment))
        px = to_page[0] * x.value + to_page[2] * y.value + to_page[4]
        py = to_page[1] * x.value + to_page[3] * y.value + to_page[5]
        points.append((kind, px, py, closes))
    edges: list[BBox] = []
    start = None
    prev = None
    for kind, px, py, closes in points:
        if kind == pdfium_c.FPDF_SEGMENT_MOVETO:
            start = prev = (px, py)
            continue
        if prev is not None and kind == pdfium_c.FPDF_SEGMENT_LINETO:
            edges.extend(_edge(transform, prev, (px, py)))
        prev = (px, py)
        if closes and start is not None:
            edges.extend(_edge(transform, prev, start))
            prev = start
    return edges


def _edge(transform: Affine, p: tuple[float, float], q: tuple[float, float]) -> list[BBox]:
    box = _box(transform, min(p[0], q[0]), min(p[1], q[1]), max(p[0], q[0]), max(p[1], q[1]))
    w, h = box[2] - box[0], box[3] - box[1]
    if min(w, h) <= 1.0 and max(w, h) >= RULING_MIN_LENGTH:
        return [box]
    return []


# --- trust ------------------------------------------------------------------------------------------------------
MIN_CHARS = 20  # fewer visible characters than this: nothing worth trusting, let OCR look at the pixels
MAX_BAD_RATIO = 0.05
MIN_WORDLIKE_RATIO = 0.6
IMAGE_COVER_RATIO = 0.5
SPARSE_CHARS_PER_PAGE = 200  # a page-sized image with fewer characters than this is a scan with stray text


def is_trustworthy(layer: TextLayer, page_area: float, image_area: float = 0.0) -> bool:
    """Whether `auto` mode may use the text layer instead of OCR for this page.

    False for pages without (enough) text, for text layers that are mostly replacement, control or private-use
    characters or symbol soup (fonts without a usable encoding), for Latin text without vowels (fonts whose codes
    map to the wrong letters), and for pages that a large image covers while the text is sparse (scans with a
    stray caption or stamp). `image_area` is the page area (points squared) covered by images."""
    text = " ".join(line.text for line in layer.lines)
    visible = len(text) - len(_SPACE.findall(text))
    if visible < MIN_CHARS:
        return False
    if len(_BAD.findall(text)) > MAX_BAD_RATIO * visible:
        return False
    if len(_ALNUM.findall(text)) < 0.5 * visible:
        return False
    if not _words_look_real(text):
        return False
    if page_area > 0 and image_area >= IMAGE_COVER_RATIO * page_area and visible < SPARSE_CHARS_PER_PAGE:
        return False
    return True


_SPACE = re.compile(r"\s")
_ALNUM = re.compile(r"[^\W_]")
# Replacement character, C0/C1 controls, private use areas: what mis-encoded fonts extract as.
_BAD = re.compile("[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ue000-\uf8ff\U000f0000-\U0010ffff]")
_LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u00ff]{2,}")
_HAS_VOWEL = re.compile(
    "[aeiouyAEIOUY\u00c0-\u00c6\u00c8-\u00cf\u00d2-\u00d6\u00d8-\u00dd\u00e0-\u00e6\u00e8-\u00ef\u00f2-\u00f6\u00f8-\u00fd\u00ff]"
)


def _words_look_real(text: str) -> bool:
    """Latin-script words should mostly contain a vowel (or be acronyms); other scripts are not judged here."""
    latin = _LATIN_WORD.findall(text)
    if len(latin) < 10:
        return True
    real = sum(1 for word in latin if word.isupper() or _HAS_VOWEL.search(word))
    return real >= MIN_WORDLIKE_RATIO * len(latin)
