"""The pdfium page backend: the one module that calls pdfium (pypdfium2), and the one that holds its lock.

PDFium keeps global state and is not thread-safe, so every call into it in a process holds `PDFIUM_LOCK`; this
module takes the lock itself around each operation, and nothing outside it touches pdfium. What it offers:

- documents: `open_document` (typed errors for damaged, encrypted and page-less files), `page_count`,
  `page_sizes` (from the cross-reference table, no page loaded), `close_document`, and `DocumentCache` (a worker's
  last few open documents);
- a page (`open_page` -> `PdfPage`): its displayed size, the transform from PDF user space to displayed points,
  a render at a given scale, its objects (`PageObjects`: ruling lines, image boxes and the images' declared pixel
  sizes, form XObjects included up to `MAX_FORM_DEPTH`), and its raw text (`PdfPage.text()` -> `TextPage`:
  characters, their boxes in displayed points, fonts).

Everything above this (intake's checks, the text layer's lines, rendering's scale rule) is plain Python on what
these return. All boxes are in displayed PDF points: origin top-left, y down, rotation and crop box applied.
"""

from __future__ import annotations

import ctypes
import io
import math
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from app.errors import EmptyPdf, EncryptedPdf, UnreadablePdf
from app.pipeline.result import BBox

# One lock for every pdfium call in this process: PDFium keeps global state and is not thread-safe.
PDFIUM_LOCK = threading.RLock()

Affine = tuple[float, float, float, float, float, float]  # x' = a*x + c*y + e ; y' = b*x + d*y + f

# Form XObjects nest; hostile files nest them deeply to hide images from a shallow walk. Images deeper than this
# are not seen (neither by the image-size check nor in image boxes), so it is generous.
MAX_FORM_DEPTH = 8
# Path objects at most this thick (points) and at least this long count as ruling lines.
RULING_MAX_THICKNESS = 3.0
RULING_MIN_LENGTH = 6.0
MAX_PATH_OBJECTS = 5000  # beyond this the page is a vector drawing: stop looking for table rulings
MAX_PATH_SEGMENTS = 64

# pdfium's mark for a word hyphenated over a line break, as bulk text spells it (FPDFText_GetUnicode says 0x02).
HYPHEN_MARK = "\ufffe"
HYPHEN_CODE = 0x02
_BOLD_NAME = re.compile(r"bold|black|heavy|semibold|demi|,b$|-b$|extrab", re.IGNORECASE)
_FORCE_BOLD = 0x40000  # FontDescriptor /Flags bit 19


PdfDocument = pdfium.PdfDocument  # an open document, as callers name it in annotations (never call into it)


# --- documents --------------------------------------------------------------------------------------------------
def open_document(target: bytes | Path) -> pdfium.PdfDocument:
    """Open a PDF from its bytes or path; EmptyPdf, EncryptedPdf or UnreadablePdf when pdfium cannot.
    Close it with `close_document`."""
    with PDFIUM_LOCK:
        try:
            return pdfium.PdfDocument(target)
        except pdfium.PdfiumError:
            pass
        # pypdfium2 reports a page-less document with a stale error code, so ask pdfium again, directly.
        raise _classify_load_failure(target)


def close_document(doc: pdfium.PdfDocument) -> None:
    with PDFIUM_LOCK:
        doc.close()


def page_count(doc: pdfium.PdfDocument) -> int:
    with PDFIUM_LOCK:
        return len(doc)


def page_sizes(doc: pdfium.PdfDocument) -> list[tuple[float, float]]:
    """Every page's displayed size in points, read without loading the pages; UnreadablePdf for a damaged one."""
    size = pdfium_c.FS_SIZEF()
    sizes = []
    with PDFIUM_LOCK:
        for index in range(len(doc)):
            if not pdfium_c.FPDF_GetPageSizeByIndexF(doc.raw, index, ctypes.byref(size)):
                raise UnreadablePdf(f"page {index + 1} of the PDF is damaged and cannot be read")
            sizes.append((float(size.width), float(size.height)))
    return sizes


def _classify_load_failure(target: bytes | Path) -> Exception:
    if isinstance(target, Path):
        handle = pdfium_c.FPDF_LoadDocument((str(target) + "\0").encode("utf-8"), None)
    else:
        buffer = ctypes.create_string_buffer(target, len(target))
        handle = pdfium_c.FPDF_LoadMemDocument64(buffer, len(target), None)
    if handle:  # it opens: the document is fine but has no pages
        pdfium_c.FPDF_CloseDocument(handle)
        return EmptyPdf("the PDF has no pages")
    code = pdfium_c.FPDF_GetLastError()
    if code == pdfium_c.FPDF_ERR_PASSWORD:
        return EncryptedPdf("the PDF is encrypted with a password; upload an unencrypted copy")
    if code == pdfium_c.FPDF_ERR_SECURITY:
        return EncryptedPdf("the PDF uses an encryption scheme this service cannot open")
    return UnreadablePdf("the PDF is damaged or truncated and cannot be read")


def document_text(path: Path, page_index: int = 0) -> str:
    """The raw text layer of one page of the PDF at `path`, as pdfium reads it."""
    with PDFIUM_LOCK:
        doc = pdfium.PdfDocument(str(path))
        try:
            page = doc[page_index]
            textpage = page.get_textpage()
            try:
                return textpage.get_text_range()
            finally:
                textpage.close()
                page.close()
        finally:
            doc.close()


# --- writing new documents --------------------------------------------------------------------------------------
def image_page_pdf(width_pt: float, height_pt: float, *, pixels: Image.Image | None = None,
                   jpeg_path: Path | None = None) -> bytes:
    """A one-page PDF of `width_pt` x `height_pt` points showing one image that fills the page: `pixels` (RGB or
    grey), or the JPEG file at `jpeg_path` embedded as it is (no decode-encode round trip, no quality lost)."""
    with PDFIUM_LOCK:
        doc = pdfium.PdfDocument.new()
        try:
            page = doc.new_page(width_pt, height_pt)
            obj = pdfium.PdfImage.new(doc)
            if pixels is None:
                if jpeg_path is None:
                    raise ValueError("image_page_pdf needs pixels or a JPEG file")
                with Path(jpeg_path).open("rb") as fh:
                    obj.load_jpeg(fh, inline=True)
            else:
                bitmap = pdfium.PdfBitmap.from_pil(pixels)
                obj.set_bitmap(bitmap)
                bitmap.close()
            obj.set_matrix(pdfium.PdfMatrix().scale(width_pt, height_pt))
            page.insert_obj(obj)
            page.gen_content()
            page.close()
            buffer = io.BytesIO()
            doc.save(buffer)
        finally:
            doc.close()
    return buffer.getvalue()


class PdfAssembler:
    """A new PDF made of whole PDFs appended one at a time (each imported, in compressed form, as it comes), saved
    to bytes with `to_bytes()`; `close()` (or leaving the `with` block) frees it."""

    def __init__(self) -> None:
        with PDFIUM_LOCK:
            self._doc = pdfium.PdfDocument.new()

    def append(self, pdf: bytes) -> None:
        with PDFIUM_LOCK:
            source = pdfium.PdfDocument(pdf)
            try:
                self._doc.import_pages(source)
            finally:
                source.close()

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        with PDFIUM_LOCK:
            self._doc.save(buffer)
        return buffer.getvalue()

    def close(self) -> None:
        with PDFIUM_LOCK:
            self._doc.close()

    def __enter__(self) -> PdfAssembler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DocumentCache:
    """The last few documents a worker opened, keyed by path and file identity, so that consecutive pages of one
    file do not re-parse it. `opener` opens a path (intake's `open_pdf`, with its checks). Not thread-safe: one
    worker thread uses it."""

    def __init__(self, opener: Callable[[Path], pdfium.PdfDocument], size: int = 4) -> None:
        self._open = opener
        self._size = size
        self._docs: OrderedDict[tuple, pdfium.PdfDocument] = OrderedDict()

    def get(self, path: str | os.PathLike) -> pdfium.PdfDocument:
        path = Path(path)
        try:
            stat = path.stat()
        except OSError as exc:
            raise UnreadablePdf(f"cannot read the file: {exc.strerror or exc}") from None
        key = (str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino)
        doc = self._docs.get(key)
        if doc is not None:
            self._docs.move_to_end(key)
            return doc
        with PDFIUM_LOCK:
            self._drop_stale()
            doc = self._open(path)
            self._docs[key] = doc
            while len(self._docs) > self._size:
                _, old = self._docs.popitem(last=False)
                old.close()
        return doc

    def _drop_stale(self) -> None:
        """Close documents whose file was deleted or replaced: an open handle would keep a deleted upload's
        disk space in use."""
        for key in list(self._docs):
            try:
                stat = os.stat(key[0])
                current = (key[0], stat.st_mtime_ns, stat.st_size, stat.st_ino)
            except OSError:
                current = None
            if current != key:
                self._docs.pop(key).close()

    def close(self) -> None:
        with PDFIUM_LOCK:
            while self._docs:
                self._docs.popitem()[1].close()


# --- pages ------------------------------------------------------------------------------------------------------
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


@contextmanager
def open_page(doc: pdfium.PdfDocument, page_index: int) -> Iterator[PdfPage]:
    """One page of `doc`, loaded for the `with` block and closed after it."""
    with PDFIUM_LOCK:
        page = PdfPage(doc[page_index])
    try:
        yield page
    finally:
        page.close()


class PdfPage:
    """One loaded page. Each method takes `PDFIUM_LOCK` for its own calls."""

    def __init__(self, page: pdfium.PdfPage) -> None:
        self._page = page
        self._transform: Affine | None = None

    def size(self) -> tuple[float, float]:
        """Width and height in points as displayed (rotation applied)."""
        with PDFIUM_LOCK:
            width, height = self._page.get_size()
        return float(width), float(height)

    def transform(self) -> Affine:
        """The affine map from the page's user space (PDF points, y up) to displayed points (top-left origin,
        y down, rotation and crop box applied), taken from pdfium's own page-to-device mapping so it matches
        rendering."""
        if self._transform is None:
            with PDFIUM_LOCK:
                self._transform = _display_transform(self._page)
        return self._transform

    def render(self, scale: float) -> np.ndarray:
        """The page at `scale` pixels per point (rotation applied, annotations and forms drawn, white
        background) as an HxWx3 RGB uint8 array."""
        with PDFIUM_LOCK:
            bitmap = self._page.render(scale=scale, rev_byteorder=True, may_draw_forms=True)
            try:
                # The bitmap's buffer belongs to pdfium: copy it out (dropping the stride padding) before closing.
                return np.array(bitmap.to_numpy()[:, :, :3], dtype=np.uint8, copy=True)
            finally:
                bitmap.close()

    def objects(self) -> PageObjects:
        """Ruling lines and images on the page (inside form XObjects too, `MAX_FORM_DEPTH` deep), in displayed
        points. Reads only object dictionaries and paths: no image is decoded, so it is safe on hostile files."""
        transform = self.transform()
        with PDFIUM_LOCK:
            return _scan_objects(self._page.raw, transform)

    @contextmanager
    def text(self) -> Iterator[TextPage]:
        """The page's text for the `with` block, which holds `PDFIUM_LOCK` throughout (one reader at a time)."""
        transform = self.transform()
        with PDFIUM_LOCK:
            textpage = self._page.get_textpage()
            try:
                yield TextPage(textpage, transform)
            finally:
                textpage.close()

    def close(self) -> None:
        with PDFIUM_LOCK:
            self._page.close()


def _display_transform(page: pdfium.PdfPage) -> Affine:
    """See `PdfPage.transform`; the caller holds PDFIUM_LOCK."""
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


def map_box(t: Affine, left: float, bottom: float, right: float, top: float) -> BBox:
    """The displayed-points box of a user-space rectangle under transform `t`."""
    a, b, c, d, e, f = t
    xs = (a * left + c * bottom + e, a * right + c * top + e, a * left + c * top + e, a * right + c * bottom + e)
    ys = (b * left + d * bottom + f, b * right + d * top + f, b * left + d * top + f, b * right + d * bottom + f)
    return (min(xs), min(ys), max(xs), max(ys))


def box_mapper(t: Affine):
    """`map_box` specialised to one transform: unrotated pages (the usual case) need two products per corner pair,
    not eight. Gives exactly `map_box`'s numbers (adding a zero product changes no float)."""
    a, b, c, d, e, f = t
    if b == 0.0 and c == 0.0:
        def box(left: float, bottom: float, right: float, top: float) -> BBox:
            x0, x1 = a * left + e, a * right + e
            y0, y1 = d * bottom + f, d * top + f
            return (x0 if x0 < x1 else x1, y0 if y0 < y1 else y1, x1 if x1 > x0 else x0, y1 if y1 > y0 else y0)

        return box
    return lambda left, bottom, right, top: map_box(t, left, bottom, right, top)


# --- text -------------------------------------------------------------------------------------------------------
class TextPage:
    """A page's characters as pdfium reads them, boxes in displayed points. Used inside `PdfPage.text()`, which
    holds the lock; its methods are thin so the text layer's per-character loops stay fast."""

    def __init__(self, textpage: pdfium.PdfTextPage, transform: Affine) -> None:
        self._textpage = textpage
        self._raw = raw = textpage.raw
        self.count = max(0, pdfium_c.FPDFText_CountChars(raw))
        self._map = box_mapper(transform)
        self._rect = pdfium_c.FS_RECTF()
        self._rect_ref = ctypes.byref(self._rect)
        self._sides = [ctypes.c_double() for _ in range(4)]
        self._side_refs = [ctypes.byref(v) for v in self._sides]
        self._fonts = _FontReader(raw)
        self.font = self._fonts.read

    def text(self) -> str:
        """The page's text, exactly one string character per pdfium character (`HYPHEN_MARK` for pdfium's mark of
        a word hyphenated over a line break)."""
        if self.count == 0:
            return ""
        text = self._textpage.get_text_range(0, self.count)
        if len(text) != self.count:  # characters outside the BMP, or ones pdfium's text leaves out
            text = self.text_by_chars(0, self.count)
        return text

    def text_by_chars(self, start: int, stop: int) -> str:
        return _text_by_chars(self._textpage, start, stop)

    def rects(self, start: int, count: int) -> list[BBox]:
        """pdfium's rectangles over characters `start..start+count`: one per run of one text object on a line."""
        raw, (left, top, right, bottom) = self._raw, self._sides
        ref_l, ref_t, ref_r, ref_b = self._side_refs
        get_rect, to_box = pdfium_c.FPDFText_GetRect, self._map
        boxes = []
        for i in range(pdfium_c.FPDFText_CountRects(raw, start, count)):
            if get_rect(raw, i, ref_l, ref_t, ref_r, ref_b):
                boxes.append(to_box(left.value, bottom.value, right.value, top.value))
        return boxes

    def char_box(self, index: int) -> BBox:
        """The character's loose box (font ascent to descent)."""
        pdfium_c.FPDFText_GetLooseCharBox(self._raw, index, self._rect_ref)
        r = self._rect
        return self._map(r.left, r.bottom, r.right, r.top)

    def angle(self, index: int) -> float:
        """The character's angle in radians in user space; negative when pdfium cannot tell."""
        return pdfium_c.FPDFText_GetCharAngle(self._raw, index)


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
        return "".join([_char(get_unicode(raw, i)) for i in range(start, stop)])
    piece = textpage.get_text_range(start, stop - start)
    if len(piece) == stop - start:
        if "\ufffe" not in piece:
            return piece
        chars = list(piece)
        for k, ch in enumerate(chars):
            if ch == "\ufffe":
                chars[k] = _char(get_unicode(raw, start + k))
        return "".join(chars)
    middle = (start + stop) // 2
    return _text_by_chars(textpage, start, middle) + _text_by_chars(textpage, middle, stop)


def _char(code: int) -> str:
    """A character as FPDFText_GetUnicode gives it, with the hyphen mark spelt as in pdfium's bulk text."""
    if code == HYPHEN_CODE:
        return HYPHEN_MARK
    return chr(code or 0xFFFD)


class _FontReader:
    """Effective font size (points, text matrix applied) and boldness of a character, with font names cached.
    `read(index) -> (size, bold)`."""

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
def _scan_objects(raw_page, transform: Affine, max_depth: int = MAX_FORM_DEPTH) -> PageObjects:
    """Ruling lines and images on the page (inside form XObjects too), boxes in display points.

    Rulings are thin stroked or filled paths and the axis-aligned edges of small stroked paths (cell borders drawn
    as rectangles). Reads only object dictionaries and paths: no image is decoded."""
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
                box = map_box(transform, left.value, bottom.value, right.value, top.value)
                w, h = box[2] - box[0], box[3] - box[1]
                if min(w, h) <= RULING_MAX_THICKNESS:
                    if max(w, h) >= RULING_MIN_LENGTH:
                        rulings.append(box)
                else:
                    rulings.extend(_stroked_edges(obj, transform))
            elif kind == pdfium_c.FPDF_PAGEOBJ_IMAGE:
                if pdfium_c.FPDFPageObj_GetBounds(obj, *bounds_refs):
                    image_boxes.append(map_box(transform, left.value, bottom.value, right.value, top.value))
                if pdfium_c.FPDFImageObj_GetImagePixelSize(obj, ctypes.byref(px_w), ctypes.byref(px_h)):
                    image_sizes.append((int(px_w.value), int(px_h.value)))
            elif kind == pdfium_c.FPDF_PAGEOBJ_FORM and depth < max_depth:
                visit(
                    pdfium_c.FPDFFormObj_CountObjects(obj),
                    lambda j, o=obj: pdfium_c.FPDFFormObj_GetObject(o, j),
                    depth + 1,
                )

    visit(pdfium_c.FPDFPage_CountObjects(raw_page), lambda i: pdfium_c.FPDFPage_GetObject(raw_page, i), 0)
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
    box = map_box(transform, min(p[0], q[0]), min(p[1], q[1]), max(p[0], q[0]), max(p[1], q[1]))
    w, h = box[2] - box[0], box[3] - box[1]
    if min(w, h) <= 1.0 and max(w, h) >= RULING_MIN_LENGTH:
        return [box]
    return []
