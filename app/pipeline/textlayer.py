"""Text layer: the lines of text a born-digital page carries, built from the characters, boxes and fonts the pdfium
backend (`pdfium_backend.TextPage`) returns, and the ruling lines that draw its tables (from the backend's page
objects). Whether `auto` mode trusts these lines is decided in `trust.py`. No pdfium call happens here.

All boxes come out in PDF points with the origin at the top-left corner of the page as displayed (rotation and
crop box applied), the same space the rest of the pipeline uses. Character boxes are PDFium's "loose" boxes (font
ascent to descent), which give every line of one font the same height whatever its letters are.

Speed matters here (`text` mode aims at hundreds of pages a second), so the backend is asked for as little as
possible: the page's text in one call, then one box for the first and the last character of each word, and the
font of each line's first character.
"""

from __future__ import annotations

import math
import re
import unicodedata

from app.pipeline.pdfium_backend import HYPHEN_MARK, Affine, PageObjects, PdfPage, TextPage
from app.pipeline.primitives import TextLayer, TextLine
from app.pipeline.result import BBox

_LINE = re.compile(r"[^\r\n]+")
_WORD = re.compile(r"\S+")

# Words of one line further apart than this many line heights are separate lines (columns, table cells).
GAP_SPLIT = 1.2


# --- text -------------------------------------------------------------------------------------------------------
def extract(page: PdfPage, objects: PageObjects | None = None) -> TextLayer:
    """The page's text as lines with boxes, font size and boldness; rulings from `objects` (or scanned now)."""
    if objects is None:
        objects = page.objects()
    with page.text() as textpage:
        lines, char_count = _lines(textpage, page.transform())
    return TextLayer(lines=lines, rulings=objects.rulings, char_count=char_count)


def _lines(textpage: TextPage, transform: Affine) -> tuple[list[TextLine], int]:
    count = textpage.count
    if count <= 0:
        return [], 0
    text = textpage.text()
    reader = _BoxReader(textpage)
    hyphens = _HYPHEN in text
    if hyphens:
        reader.hyphen_text = text
    rects_of, char_box, word_box, read_font = reader.rects, reader.char_box, reader.word_box, textpage.font
    get_angle = textpage.angle
    lines: list[TextLine] = []
    append = lines.append
    search_word = _WORD.search
    records: list[tuple[int, int, BBox]] = []
    add = records.append
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
            direction = _direction(transform, get_angle(first))
            if any(_cuts(rects, direction)):
                segments = reader.split_by_words(text, first, end, direction)
        if segments is None:
            segments = [(first, end, _union(rects) if rects else word_box(first, end))]
        for start, stop, box in segments:
            # Tight glyph boxes vary with the letters; the first character's loose box gives the line its
            # font's full ascent-to-descent height.
            c = char_box(start)
            add((start, stop, (
                box[0] if box[0] < c[0] else c[0], box[1] if box[1] < c[1] else c[1],
                box[2] if box[2] > c[2] else c[2], box[3] if box[3] > c[3] else c[3],
            )))
    fonts_seen: dict[int, tuple[float, bool]] = {}

    def font_of(index: int) -> tuple[float, bool]:
        font = fonts_seen.get(index)
        if font is None:
            font = fonts_seen[index] = read_font(index)
        return font

    accents = _ACCENT_FIND(text) is not None
    page_direction = _direction(transform, 0.0)
    for group in _visual_lines(records, text, font_of, accents, page_direction):
        host_start, host_stop, box = group[0]
        if len(group) == 1 and not (accents and _ACCENT_FIND(text, host_start, host_stop)):
            content = " ".join(text[host_start:host_stop].split())
        else:
            content, box = _join_group(group, text, reader, font_of, accents, page_direction)
            if not content:
                continue
        size, bold = font_of(host_start)
        if size <= 0:
            size = min(box[2] - box[0], box[3] - box[1]) / 1.15
        if hyphens and _HYPHEN in content:
            content = content.replace(_HYPHEN, "")
            if not content.strip():
                continue
        append(TextLine(text=content, bbox=box, font_size=round(size, 2), bold=bold))
    return lines, count


# pdfium joins a word hyphenated over a line break into one word ("Col\ufffelege"), its hyphen replaced by this
# mark (in bulk text; FPDFText_GetUnicode says 0x02 for it) and no line break between the two halves. The word is
# kept whole at the end of the line where it starts (its box is that of the first half and the hyphen), and the
# mark is dropped: the reading text keeps the word intact and every line box stays on its own line.
_HYPHEN = HYPHEN_MARK


# --- visual lines -----------------------------------------------------------------------------------------------
# pdfium breaks a line wherever the text stream leaves the baseline: at superscripts, subscripts, limits and TeX
# accents (glyphs of their own drawn over a letter), and before every word of right-to-left text. Pieces it gives
# one after another that sit on one visual line are joined again here, in reading order.

# Spacing accents typesetters draw as glyphs of their own, and the combining mark each stands for.
_ACCENT_MARKS = {
    "\u00b4": "\u0301", "\u02ca": "\u0301", "\u02cb": "\u0300", "\u02c7": "\u030c", "\u00a8": "\u0308",
    "\u02c6": "\u0302", "\u02dc": "\u0303", "\u00b8": "\u0327", "\u02d8": "\u0306", "\u02d9": "\u0307",
    "\u02da": "\u030a", "\u02dd": "\u030b", "\u00af": "\u0304", "\u02c9": "\u0304", "\u02db": "\u0328",
}
_ACCENT_CLASS = "[" + "".join(_ACCENT_MARKS) + "\u0300-\u036f]"
_ACCENT_FIND = re.compile(_ACCENT_CLASS).search
_ONLY_ACCENTS = re.compile(r"(?:\s|" + _ACCENT_CLASS + ")+").fullmatch
# Dotless i and j carry TeX's accents (\'{\i}); with a mark they are the ordinary letters' accented forms.
_DOTLESS = {"\u0131": "i", "\u0237": "j"}
_RTL = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")

SAME_LINE_REACH = 0.8  # line heights: how far beside a line a piece on its baseline may start and still join it
SCRIPT_REACH = 0.25  # line heights above or below a line that a script or a limit may reach into
SCRIPT_SIZE = 0.85  # a script's font is at most this fraction of its line's
SCRIPT_MAX_CHARS = 16
SPACE_GAP = 0.1  # font sizes: pieces joined with no wider gap than this are one word (x and its superscript 2)
MAX_LINE_HEIGHT = 3.0  # font sizes: a taller piece spans lines (a big operator's loose box reaches 2.3)
HYPHEN_LINE_HEIGHT = 1.5  # font sizes, for a piece with pdfium's mark of a word hyphenated over a line break
BASE_BAND = 0.25  # line heights around a line's middle: a piece centred there is on the baseline, not a script

Record = tuple[int, int, BBox]  # a piece of a line: text[start:stop] and its box


def _visual_lines(records: list[Record], text: str, font_of, accents: bool, direction: int) -> list[list[Record]]:
    """`records` (pdfium's line pieces, in its order) grouped into visual lines: each group starts with its host,
    the piece that opened it, followed by the consecutive pieces that belong on the host's line."""
    groups: list[list[Record]] = []
    group: list[Record] | None = None
    host = ext = (0.0, 0.0, 0.0, 0.0)
    host_start = 0
    orphans: list[Record] = []
    for record in records:
        start, stop, box = record
        frame = box if direction == 0 else _in_reading_frame(box, direction)
        if accents and _ONLY_ACCENTS(text, start, stop):
            if group is not None and _accent_fits(frame, host, ext):
                group.append(record)
            else:  # perhaps drawn before the line it belongs to
                orphans.append(record)
            continue
        if group is not None and host_start >= 0 and _joins(frame, text, start, stop, host, ext, host_start, font_of):
            group.append(record)
            ext = (min(ext[0], frame[0]), min(ext[1], frame[1]), max(ext[2], frame[2]), max(ext[3], frame[3]))
            continue
        group = [record]
        groups.append(group)
        host = ext = frame
        host_start = start if _can_host(frame, text, start, stop, font_of) else -1
        if orphans:
            for orphan in orphans:
                if _accent_fits(orphan[2] if direction == 0 else _in_reading_frame(orphan[2], direction), host, ext):
                    group.append(orphan)
            orphans = []
    return groups


def _can_host(frame: BBox, text: str, start: int, stop: int, font_of) -> bool:
    """Whether pieces may join this one: not text running across the reading frame (a rotated label), nor a
    piece far taller than its font (pdfium's join of a word hyphenated over two lines)."""
    if stop - start <= 2:
        return True
    width, height = frame[2] - frame[0], frame[3] - frame[1]
    if width < height:
        return False
    size = font_of(start)[0]
    return height <= (HYPHEN_LINE_HEIGHT if "\ufffe" in text[start:stop] else MAX_LINE_HEIGHT) * size


def _accent_fits(frame: BBox, host: BBox, ext: BBox) -> bool:
    middle = (frame[0] + frame[2]) / 2
    overlap = min(frame[3], host[3]) - max(frame[1], host[1])
    return ext[0] <= middle <= ext[2] and overlap >= 0.3 * min(frame[3] - frame[1], host[3] - host[1])


def _joins(frame: BBox, text: str, start: int, stop: int, host: BBox, ext: BBox, host_start: int, font_of) -> bool:
    """Whether a piece belongs on the line of `host` (whose pieces so far span `ext`)."""
    h = host[3] - host[1]
    reach = SAME_LINE_REACH * h
    if frame[0] > ext[2] + reach or frame[2] < ext[0] - reach:
        return False
    rh = frame[3] - frame[1]
    piece = text[start:stop]
    chars = len(piece) - piece.count(" ")
    if chars > 2 and frame[2] - frame[0] < rh:
        return False  # running across the reading frame
    overlap = min(frame[3], host[3]) - max(frame[1], host[1])
    if overlap >= 0.5 * min(h, rh) and rh <= 1.6 * h and (
            rh >= 0.6 * h or font_of(start)[0] >= 0.6 * font_of(host_start)[0]):
        return True  # same baseline and size (a tall operator makes a line tall; a drop cap makes it large)
    if chars > SCRIPT_MAX_CHARS:
        return False
    if chars <= 2 and overlap >= 0.5 * min(h, rh) or chars <= 4 and overlap >= 0.3 * min(h, rh):
        return True  # a tall delimiter or operator, a fraction's numerator or denominator
    if frame[3] < host[1] - SCRIPT_REACH * h or frame[1] > host[3] + SCRIPT_REACH * h:
        return False
    return font_of(start)[0] <= SCRIPT_SIZE * font_of(host_start)[0]


# A word of a visual line: text, box in the reading frame, box on the page, index of its piece, index in the piece.
_Word = tuple[str, BBox, BBox, int, int]


def _join_group(group: list[Record], text: str, reader: _BoxReader, font_of, accents: bool,
                direction: int) -> tuple[str, BBox]:
    """One visual line's text (words in reading order, accents on their letters) and its box on the page."""
    host = group[0][2] if direction == 0 else _in_reading_frame(group[0][2], direction)
    h = host[3] - host[1]
    size = font_of(group[0][0])[0]
    space = SPACE_GAP * size if size > 0 else 0.08 * h
    if accents:
        words = _accented_words(group, text, reader, direction, space)
    else:
        words = []
        for m, (start, stop, _) in enumerate(group):
            for k, match in enumerate(_WORD.finditer(text, start, stop)):
                box = reader.word_box(*match.span())
                words.append((match.group(), box if direction == 0 else _in_reading_frame(box, direction), box, m, k))
    if not words:
        return "", group[0][2]
    joined = "".join(w[0] for w in words)
    rtl = len(_RTL.findall(joined)) * 2 > sum(1 for ch in joined if ch.isalpha())
    if rtl:
        words.sort(key=lambda w: -w[1][2])
    else:
        words = _reading_order(words, host, group, font_of)
    parts = [words[0][0]]
    for prev, cur in zip(words, words[1:]):
        if prev[3] == cur[3] and cur[4] == prev[4] + 1:
            parts.append(" ")  # neighbours in one piece: pdfium saw the space
        else:
            gap = prev[1][0] - cur[1][2] if rtl else cur[1][0] - prev[1][2]
            if gap > space:
                parts.append(" ")
        parts.append(cur[0])
    return "".join(parts), _union([w[2] for w in words])


def _reading_order(words: list[_Word], host: BBox, group: list[Record], font_of) -> list[_Word]:
    """Left to right; words stacked over one another (limits over and under an operator, scripts over and
    under each other, a fraction's numerator and denominator) in the order LaTeX writes them."""
    words.sort(key=lambda w: w[1][0])
    middle = (host[1] + host[3]) / 2
    band = BASE_BAND * (host[3] - host[1])
    host_size = font_of(group[0][0])[0]
    ordered: list[_Word] = []
    column = [words[0]]
    x0, x1 = words[0][1][0], words[0][1][2]
    for word in words[1:]:
        wx0, wx1 = word[1][0], word[1][2]
        if min(x1, wx1) - max(x0, wx0) >= 0.5 * min(x1 - x0, wx1 - wx0):
            column.append(word)
            x0, x1 = min(x0, wx0), max(x1, wx1)
            continue
        ordered.extend(_stack_order(column, middle, band, group, font_of, host_size))
        column = [word]
        x0, x1 = wx0, wx1
    ordered.extend(_stack_order(column, middle, band, group, font_of, host_size))
    return ordered


def _stack_order(column: list[_Word], middle: float, band: float, group: list[Record], font_of,
                 host_size: float) -> list[_Word]:
    if len(column) == 1:
        return column

    def centre(w: _Word) -> float:
        return (w[1][1] + w[1][3]) / 2

    base = [w for w in column if abs(centre(w) - middle) <= band]
    below = sorted((w for w in column if centre(w) - middle > band), key=centre)
    above = sorted((w for w in column if middle - centre(w) > band), key=centre, reverse=True)
    if base:
        return base + below + above  # \sum_{below}^{above}
    if all(font_of(group[w[3]][0])[0] <= SCRIPT_SIZE * host_size for w in column):
        return below + above  # x_{sub}^{sup}
    return sorted(column, key=centre)  # a fraction: numerator first


def _accented_words(group: list[Record], text: str, reader: _BoxReader, direction: int,
                    space: float) -> list[_Word]:
    """The words of a visual line read character by character, each accent glyph put on the letter under it."""
    chars: list[list] = []  # [text, frame box, page box, piece, space before, accent removed just before]
    marks: list[tuple[str, BBox]] = []
    for m, (start, stop, _) in enumerate(group):
        gap, after_accent = False, False
        for i in range(start, stop):
            ch = text[i]
            if ch.isspace():
                gap = True
                continue
            box = reader.char_box(i)
            frame = box if direction == 0 else _in_reading_frame(box, direction)
            mark = _ACCENT_MARKS.get(ch, ch if "\u0300" <= ch <= "\u036f" else None)
            if mark is not None:
                marks.append((mark, frame))
                after_accent = True
                continue
            chars.append([ch, frame, box, m, gap, after_accent])
            gap, after_accent = False, False
    for mark, frame in marks:
        best, best_overlap = None, 0.0
        for c in chars:
            if c[0].isalpha():
                overlap = min(frame[2], c[1][2]) - max(frame[0], c[1][0])
                if overlap > best_overlap:
                    best, best_overlap = c, overlap
        if best is not None:
            base = _DOTLESS.get(best[0][0], best[0][0])
            best[0] = unicodedata.normalize("NFC", base + best[0][1:] + mark)
    words: list[_Word] = []
    current: list[list] = []

    def close() -> None:
        if current:
            words.append(("".join(c[0] for c in current), _union([c[1] for c in current]),
                          _union([c[2] for c in current]), current[0][3], len(words)))

    for c in chars:
        if current and (c[3] != current[-1][3] or c[4] and not (c[5] and c[1][0] - current[-1][1][2] <= space)):
            close()
            current = []
        current.append(c)
    close()
    # Words of one piece are numbered in a row so that joining keeps pdfium's spaces between them.
    return [(w[0], w[1], w[2], w[3], k) for k, w in enumerate(words)]


class _BoxReader:
    """Word and line boxes from the backend's character boxes (displayed points)."""

    def __init__(self, textpage: TextPage) -> None:
        self.rects = textpage.rects
        self.char_box = textpage.char_box
        self.hyphen_text: str | None = None  # the page's text when it holds pdfium's hyphen mark

    def word_box(self, start: int, end: int) -> BBox:
        box = self.char_box(start)
        if end - 1 <= start:
            return box
        if self.hyphen_text is not None:
            mark = self.hyphen_text.find(_HYPHEN, start, end)
            if mark >= 0:
                end = self._hyphen_end(box, mark, end)
        other = self.char_box(end - 1)
        return (
            box[0] if box[0] < other[0] else other[0], box[1] if box[1] < other[1] else other[1],
            box[2] if box[2] > other[2] else other[2], box[3] if box[3] > other[3] else other[3],
        )

    def _hyphen_end(self, first: BBox, mark: int, end: int) -> int:
        """Where the box of a word with the hyphen mark at `mark` ends: at the mark when the rest of the word
        went on to another line, else at the word's end."""
        rest = self.char_box(end - 1)
        height = max(first[3] - first[1], rest[3] - rest[1], 1.0)
        if abs((rest[1] + rest[3]) - (first[1] + first[3])) / 2 > 0.6 * height:
            return mark + 1
        return end

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


