"""Tables from lines: a cell grid from ruling lines where the page draws them, from the lines' own alignment
(rows by y, columns by x) where it does not, rendered as Markdown and HTML.

Born-digital pages give text-layer lines, the thin paths that draw the table (`rulings`) and, where a table may
be, word boxes (`words.py`) that split lines holding several cells; scanned pages give OCR lines only. Either way
the result is a rectangular grid of cell texts, first row as the heading row, spanning headings as colspans,
wrapped cells merged, a right-to-left table's columns in reading order (rightmost first).

Where tables are: layout's table regions (`auto`, `ocr`), grids of rulings (`find_ruled_tables`), and tables
drawn without any rule, found by their columns alone (`find_aligned_tables`: cells on one baseline, short, lining
up down a run of rows that prose above and below does not belong to).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

from app.pipeline.mdtext import escape_text
from app.pipeline.primitives import TextLine
from app.pipeline.result import BBox

# Ruling positions closer than this (points) are one rule.
_SNAP = 2.5
# Rules further apart than this (points) belong to different tables.
_MAX_RULE_GAP = 48.0
# Minimum rulings to call a set of them a table grid on its own (text mode, no layout).
_MIN_GRID_RULES = 3


@dataclass
class Table:
    rows: list[list[str]]
    spans: dict[tuple[int, int], int] = field(default_factory=dict)  # (row, col) -> colspan, for HTML

    @property
    def n_cols(self) -> int:
        return max((len(r) for r in self.rows), default=0)

    def markdown(self) -> str:
        if not self.rows:
            return ""
        width = self.n_cols
        rows = [[_md_cell(c) for c in r] + [""] * (width - len(r)) for r in self.rows]
        out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * width]
        out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(out)

    def html(self) -> str:
        parts = ["<table>"]
        for r, row in enumerate(self.rows):
            tag = "th" if r == 0 else "td"
            cells, c = [], 0
            while c < len(row):
                span = self.spans.get((r, c), 1)
                attr = f' colspan="{span}"' if span > 1 else ""
                cells.append(f"<{tag}{attr}>{html.escape(row[c])}</{tag}>")
                c += span
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</table>")
        return "".join(parts)

    def text(self) -> str:
        return "\n".join(" ".join(c for c in row if c) for row in self.rows)

    def mirror(self) -> None:
        """Columns in right-to-left order: a right-to-left table's first column is its rightmost."""
        width = self.n_cols
        self.rows = [list(reversed(r + [""] * (width - len(r)))) for r in self.rows]
        self.spans = {(r, width - c - span): span for (r, c), span in self.spans.items()}


_RTL = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")


def _mostly_rtl(text: str) -> bool:
    return len(_RTL.findall(text)) * 2 > sum(1 for ch in text if ch.isalpha())


# Words of one line further apart than this many font sizes are separate cells (a space is about a quarter).
_CELL_GAP = 0.8


def split_cells(lines: list[TextLine], words: list[TextLine], cuts: list[float] = ()) -> list[TextLine]:
    """Lines cut where the gap between two of their words is wider than any space, or holds one of the x
    positions `cuts` (a drawn column rule): the text layer keeps a table row's cells in one line when they stand
    only a few spaces apart. A line whose words cannot be matched to its text (accents joined, hyphens dropped)
    stays whole."""
    if not words:
        return lines
    band = 8.0
    buckets: dict[int, list[TextLine]] = {}
    for w in words:
        buckets.setdefault(int((w.bbox[1] + w.bbox[3]) / 2 // band), []).append(w)
    out: list[TextLine] = []
    for line in lines:
        x0, y0, x1, y1 = line.bbox
        found = [w for k in range(int(y0 // band), int(y1 // band) + 1) for w in buckets.get(k, ())
                 if x0 - 1 <= (w.bbox[0] + w.bbox[2]) / 2 <= x1 + 1 and y0 <= (w.bbox[1] + w.bbox[3]) / 2 <= y1]
        if len(found) < 2:
            out.append(line)
            continue
        rtl = _mostly_rtl(line.text)
        found.sort(key=lambda w: -w.bbox[2] if rtl else w.bbox[0])
        if "".join(w.text for w in found) != "".join(line.text.split()):
            out.append(line)
            continue
        size = line.font_size or (y1 - y0) / 1.2
        pieces = [[found[0]]]
        for prev, cur in zip(found, found[1:]):
            gap = prev.bbox[0] - cur.bbox[2] if rtl else cur.bbox[0] - prev.bbox[2]
            left, right = (cur.bbox[2], prev.bbox[0]) if rtl else (prev.bbox[2], cur.bbox[0])
            if gap > _CELL_GAP * size or any(left - 1 <= x <= right + 1 for x in cuts):
                pieces.append([cur])
            else:
                pieces[-1].append(cur)
        if len(pieces) == 1:
            out.append(line)
            continue
        for piece in pieces:
            px0, px1 = min(w.bbox[0] for w in piece), max(w.bbox[2] for w in piece)
            out.append(TextLine(text=" ".join(w.text for w in piece), bbox=(px0, y0, px1, y1), score=line.score,
                                font_size=line.font_size, bold=line.bold))
    return out


def _md_cell(text: str) -> str:
    return " ".join(escape_text(text).replace("|", "\\|").split())


def _center(box: BBox) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def _snap(values: list[float]) -> list[float]:
    out: list[float] = []
    for v in sorted(values):
        if out and v - out[-1] <= _SNAP:
            continue
        out.append(v)
    return out


def split_rulings(rulings: list[BBox], within: BBox | None = None) -> tuple[list[BBox], list[BBox]]:
    """Horizontal and vertical rules among `rulings` (optionally only those touching `within`, padded 4 pt)."""
    horizontal, vertical = [], []
    for r in rulings:
        if within is not None:
            x0, y0, x1, y1 = within
            if r[2] < x0 - 4 or r[0] > x1 + 4 or r[3] < y0 - 4 or r[1] > y1 + 4:
                continue
        w, h = r[2] - r[0], r[3] - r[1]
        if w >= 3 * max(h, 0.1):
            horizontal.append(r)
        elif h >= 3 * max(w, 0.1):
            vertical.append(r)
    return _join_segments(horizontal, 0), _join_segments(vertical, 1)


def _join_segments(rules: list[BBox], axis: int) -> list[BBox]:
    """Collinear rules that meet or nearly meet are one rule: grids drawn cell by cell, or dashed, come as many
    short segments. `axis` 0 joins horizontal rules (same y, along x), 1 vertical ones."""
    if len(rules) < 2:
        return rules
    lo, hi = (0, 2) if axis == 0 else (1, 3)
    across = (1, 3) if axis == 0 else (0, 2)
    ordered = sorted(rules, key=lambda r: (round((r[across[0]] + r[across[1]]) / 2 / _SNAP), r[lo]))
    out: list[list[float]] = []
    for r in ordered:
        mid = (r[across[0]] + r[across[1]]) / 2
        if out:
            last = out[-1]
            if abs((last[across[0]] + last[across[1]]) / 2 - mid) <= _SNAP / 2 and r[lo] <= last[hi] + _SNAP:
                last[hi] = max(last[hi], r[hi])
                last[across[0]], last[across[1]] = min(last[across[0]], r[across[0]]), max(last[across[1]], r[across[1]])
                continue
        out.append(list(r))
    return [tuple(r) for r in out]


def build_table(lines: list[TextLine], bbox: BBox, rulings: list[BBox] = (), words: list[TextLine] = ()) -> Table:
    """The grid of a table region from the lines inside it, using the rulings that cross it when there are any
    and the page's word boxes (`words.page_words`) to split lines that hold several cells."""
    lines = split_cells([ln for ln in lines if ln.text.strip()], words)
    if not lines:
        return Table(rows=[])
    table = _structure(lines, bbox, rulings, words)
    if _mostly_rtl(" ".join(ln.text for ln in lines)):
        table.mirror()
    return table


def _structure(lines: list[TextLine], bbox: BBox, rulings: list[BBox], words: list[TextLine]) -> Table:
    horizontal, vertical = split_rulings(list(rulings), bbox)
    width = max(bbox[2] - bbox[0], 1.0)
    row_rules = _snap([(r[1] + r[3]) / 2 for r in horizontal if r[2] - r[0] >= 0.1 * width])
    col_rules = _snap([(r[0] + r[2]) / 2 for r in vertical])
    height = max(bbox[3] - bbox[1], 1.0)
    long_rows = [y for y in _snap([(r[1] + r[3]) / 2 for r in horizontal if r[2] - r[0] >= 0.6 * width])]
    inner_cols = [
        x for x in col_rules
        if bbox[0] + 4 < x < bbox[2] - 4
        and sum(v[3] - v[1] for v in vertical if abs((v[0] + v[2]) / 2 - x) <= _SNAP) >= 0.5 * height
    ]
    if inner_cols and len(long_rows) >= 2:
        # A drawn grid: every band between two rules is one row (its cells may wrap over several lines)...
        cols = [float("-inf"), *inner_cols, float("inf")]
        rows = [float("-inf"), *[y for y in row_rules if bbox[1] + 2 < y < bbox[3] - 2], float("inf")]
        if not _bands_hold_rows(lines, rows, cols):
            return _grid(split_cells(lines, words, inner_cols), rows, cols)
        # ...unless the rules only frame the table and column groups: then rows come from the lines, as below.
    # Rules between rows only (booktabs) or none: rows from the lines' heights, split again at every rule.
    row_groups = _cluster_rows(lines, row_rules)
    columns = _column_bounds(row_groups, bbox)
    inner_rules = [y for y in row_rules if bbox[1] + 2 < y < bbox[3] - 2]
    if inner_rules and len(columns) >= 2:
        # Rules between the rows: each band between two rules is one row when its later lines only continue
        # some of its cells (a cell that wraps continues its own column, as far down as it needs).
        bands = [float("-inf"), *inner_rules, float("inf")]
        cuts = [float("-inf"), *[(a[1] + b[0]) / 2 for a, b in zip(columns, columns[1:])], float("inf")]
        if _bands_are_wrapped_rows(lines, bands, cuts):
            row_groups = _merge_bands(row_groups, bands)
    return _fill(row_groups, columns)


def _bands_are_wrapped_rows(lines: list[TextLine], bands: list[float], cuts: list[float]) -> bool:
    """Some band between two rules holds several lines of text, and in every such band the lines after the first
    fill at most half the columns its first line fills: cells of one row wrapping, not further rows (a row of
    a financial statement under the same rule fills its label and its number columns again)."""
    grouped: dict[int, list[TextLine]] = {}
    for line in lines:
        cy = _center(line.bbox)[1]
        grouped.setdefault(next(i for i in range(len(bands) - 1) if bands[i] <= cy < bands[i + 1]), []).append(line)

    def filled(row: list[TextLine]) -> set[int]:
        return {next(i for i in range(len(cuts) - 1) if cuts[i] <= _center(ln.bbox)[0] < cuts[i + 1]) for ln in row}

    wrapped = False
    for members in grouped.values():
        rows = _cluster_rows(members, [])
        if len(rows) < 2:
            continue
        first = len(filled(rows[0]))
        if first < 2 or any(len(filled(row)) > max(1, first // 2) for row in rows[1:]):
            return False
        wrapped = True
    return wrapped


def _merge_bands(rows: list[list[TextLine]], bands: list[float]) -> list[list[TextLine]]:
    """Rows between the same two rules made one."""
    merged: dict[int, list[TextLine]] = {}
    for row in rows:
        cy = sum(_center(ln.bbox)[1] for ln in row) / len(row)
        merged.setdefault(next(i for i in range(len(bands) - 1) if bands[i] <= cy < bands[i + 1]), []).extend(row)
    return [sorted(merged[k], key=lambda ln: ln.bbox[0]) for k in sorted(merged)]


def _bands_hold_rows(lines: list[TextLine], rows: list[float], cols: list[float]) -> bool:
    """Some band between two horizontal rules holds several lines that each fill (nearly) every column the band
    uses: those are rows of their own, not one row's wrapped cells (which continue only some columns)."""
    bands: dict[int, list[TextLine]] = {}
    for line in lines:
        cy = _center(line.bbox)[1]
        bands.setdefault(next(i for i in range(len(rows) - 1) if rows[i] <= cy < rows[i + 1]), []).append(line)

    def col_of(line: TextLine) -> int:
        cx = _center(line.bbox)[0]
        return next(i for i in range(len(cols) - 1) if cols[i] <= cx < cols[i + 1])

    for members in bands.values():
        used = {col_of(ln) for ln in members}
        if len(used) < 2:
            continue
        full = sum(1 for row in _cluster_rows(members, []) if len({col_of(ln) for ln in row}) >= 0.8 * len(used))
        if full >= 2:
            return True
    return False


def _grid(lines: list[TextLine], rows: list[float], cols: list[float]) -> Table:
    cells: dict[tuple[int, int], list[TextLine]] = {}
    for line in lines:
        cx, cy = _center(line.bbox)
        r = next(i for i in range(len(rows) - 1) if rows[i] <= cy < rows[i + 1])
        c = next(i for i in range(len(cols) - 1) if cols[i] <= cx < cols[i + 1])
        cells.setdefault((r, c), []).append(line)
    used_rows = sorted({r for r, _ in cells})
    used_cols = sorted({c for _, c in cells})
    grid = [
        [_join_cell(cells.get((r, c), [])) for c in used_cols]
        for r in used_rows
    ]
    return Table(rows=grid)


def _join_cell(lines: list[TextLine]) -> str:
    rtl = _mostly_rtl(" ".join(ln.text for ln in lines))
    ordered = sorted(lines, key=lambda ln: (round(ln.bbox[1] / 3), -ln.bbox[2] if rtl else ln.bbox[0]))
    parts: list[str] = []
    for k, line in enumerate(ordered):
        text = " ".join(line.text.split())
        if k and _touching(ordered[k - 1], line, rtl):
            parts[-1] += text  # pieces of one word the text layer cut apart (glyphs placed one by one)
        else:
            parts.append(text)
    return " ".join(parts)


def _touching(before: TextLine, after: TextLine, rtl: bool) -> bool:
    a, b = before.bbox, after.bbox
    if min(a[3], b[3]) - max(a[1], b[1]) < 0.5 * min(a[3] - a[1], b[3] - b[1]):
        return False
    gap = a[0] - b[2] if rtl else b[0] - a[2]
    return abs(gap) < 0.1 * (before.font_size or (a[3] - a[1]) / 1.2)


def _cluster_rows(lines: list[TextLine], rules: list[float]) -> list[list[TextLine]]:
    """Lines grouped into rows: a line joins the current row when it overlaps its height by half and no rule
    runs between them."""
    ordered = sorted(lines, key=lambda ln: (_center(ln.bbox)[1], ln.bbox[0]))
    rows: list[list[TextLine]] = []
    top = bottom = 0.0
    for line in ordered:
        y0, y1 = line.bbox[1], line.bbox[3]
        if rows:
            overlap = min(bottom, y1) - max(top, y0)
            row_mid, line_mid = (top + bottom) / 2, (y0 + y1) / 2
            ruled = any(row_mid < y < line_mid for y in rules)
            if overlap > 0.5 * min(y1 - y0, bottom - top) and not ruled:
                rows[-1].append(line)
                top, bottom = min(top, y0), max(bottom, y1)
                continue
        rows.append([line])
        top, bottom = y0, y1
    return [sorted(r, key=lambda ln: ln.bbox[0]) for r in rows]


def _column_bounds(rows: list[list[TextLine]], bbox: BBox) -> list[tuple[float, float]]:
    """Column x-ranges: where enough rows have text. A gap that only a few rows cross (a heading spanning two
    columns) still separates columns."""
    x_min = min(ln.bbox[0] for r in rows for ln in r)
    x_max = max(ln.bbox[2] for r in rows for ln in r)
    steps = max(1, int(x_max - x_min) + 1)
    coverage = [0] * (steps + 1)
    for row in rows:
        hit = [False] * (steps + 1)
        for ln in row:
            for x in range(int(ln.bbox[0] - x_min), min(steps, int(ln.bbox[2] - x_min)) + 1):
                hit[x] = True
        for x, h in enumerate(hit):
            coverage[x] += h
    # Columns are the runs of x that some row covers; inside a run, a valley that only a few rows cross (a heading
    # spanning two columns) still separates the strong parts on either side of it. "Few" is relative to the
    # columns either side: a group label spanning a narrow number column and the next ("Proteomics" over "#" and
    # "Topic") crosses the gap in many rows, yet far fewer than fill the columns themselves.
    threshold = max(1, int(0.15 * len(rows))) if len(rows) >= 3 else 0
    columns: list[tuple[float, float]] = []
    for start, stop in _runs(coverage, 0):
        strong = _valley_split(coverage[start:stop], threshold) if len(rows) >= 3 else [(0, stop - start)]
        if len(strong) < 2:
            columns.append((x_min + start, x_min + stop))
            continue
        edges = [start] + [start + (strong[i][1] + strong[i + 1][0]) // 2 for i in range(len(strong) - 1)] + [stop]
        columns += [(x_min + edges[i], x_min + edges[i + 1]) for i in range(len(edges) - 1)]
    return columns or [(x_min, x_max)]


# A valley splits columns when at most this share of the lower of the peaks either side crosses it...
_VALLEY_RATIO = 0.4
# ...and it is at least this wide (points): cells of one column that merely fail to overlap leave slivers.
_VALLEY_MIN_WIDTH = 3


def _valley_split(values: list[int], floor: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of the column parts in one run of coverage: split where coverage is at most `floor`
    or dips well below the peaks on both sides of it (linear: prefix and suffix maxima)."""
    n = len(values)
    left_peak, right_peak = [0] * n, [0] * n
    best = 0
    for i, v in enumerate(values):
        best = max(best, v)
        left_peak[i] = best
    best = 0
    for i in range(n - 1, -1, -1):
        best = max(best, values[i])
        right_peak[i] = best
    low = [v <= floor or v <= _VALLEY_RATIO * min(left_peak[i], right_peak[i]) for i, v in enumerate(values)]
    # Narrow dips are not gaps between columns: keep only low runs at least _VALLEY_MIN_WIDTH wide (a gap below
    # the absolute floor always counts, as before).
    i = 0
    while i < n:
        if not low[i]:
            i += 1
            continue
        j = i
        while j < n and low[j]:
            j += 1
        if j - i < _VALLEY_MIN_WIDTH and not all(values[k] <= floor for k in range(i, j)):
            for k in range(i, j):
                low[k] = False
        i = j
    parts, start = [], None
    for i, is_low in enumerate([*low, True]):
        if not is_low and start is None:
            start = i
        elif is_low and start is not None:
            parts.append((start, i))
            start = None
    return parts


def _runs(values: list[int], above: int) -> list[tuple[int, int]]:
    """[start, stop) index ranges where `values` exceed `above`."""
    runs, start = [], None
    for i, v in enumerate([*values, above]):
        if v > above and start is None:
            start = i
        elif v <= above and start is not None:
            runs.append((start, i))
            start = None
    return runs


def _fill(rows: list[list[TextLine]], columns: list[tuple[float, float]]) -> Table:
    grid: list[list[str]] = []
    spans: dict[tuple[int, int], int] = {}
    parts: list[list[list[TextLine]]] = []
    for row in rows:
        cells: list[list[TextLine]] = [[] for _ in columns]
        if len(row) == 1 and (spread := _spread_words(row[0], columns)):
            pieces = spread  # one spaced-out heading line over column groups ("ReACT   Plan+Execute   ...")
        else:
            pieces = [p for line in row for p in (_split_by_columns(line, columns) if len(row) > 1 or _gappy(line)
                                                  else [line])]
        for line in pieces:
            hits = [i for i, (c0, c1) in enumerate(columns) if min(c1, line.bbox[2]) - max(c0, line.bbox[0]) > 0]
            if not hits:  # in a gap: nearest column by centre
                cx = _center(line.bbox)[0]
                hits = [min(range(len(columns)), key=lambda i: abs((columns[i][0] + columns[i][1]) / 2 - cx))]
            cells[hits[0]].append(line)
            if len(hits) > 1:
                spans[(len(parts), hits[0])] = len(hits)
        parts.append(cells)
    parts, spans = _merge_wrapped_rows(rows, parts, spans)
    for cells in parts:
        grid.append([_join_cell(c) for c in cells])
    _span_centred_headings(grid, spans)
    return Table(rows=grid, spans=spans)


# Words of one line further apart than this many character widths are separate cells, not one phrase.
_WIDE_WORD_GAP = 3.0


def _spread_words(line: TextLine, columns: list[tuple[float, float]]) -> list[TextLine] | None:
    """A row holding one line whose words stand far apart over several columns is a row of group headings (one
    word each, over column pairs say): each word takes the columns whose centres lie nearer to it than to its
    neighbours, and its piece is as wide as those columns so that `_fill` gives it their colspan."""
    x0, y0, x1, y1 = line.bbox
    words = line.text.split()
    spanned = [i for i, (c0, c1) in enumerate(columns) if min(c1, x1) - max(c0, x0) > 0]
    if len(words) < 2 or len(spanned) < len(words):
        return None
    chars = sum(len(w) for w in words)
    char_w = min((x1 - x0) / max(len(line.text), 1), _char_width(line))
    gap_w = ((x1 - x0) - chars * char_w) / (len(words) - 1)
    if gap_w < _WIDE_WORD_GAP * char_w:
        return None
    bounds, done = [], 0  # estimated [x0, x1] of each word
    for k, word in enumerate(words):
        wx0 = x0 + done * char_w + k * gap_w
        bounds.append((wx0, wx0 + len(word) * char_w))
        done += len(word)
    cuts = [(bounds[k][1] + bounds[k + 1][0]) / 2 for k in range(len(words) - 1)]
    owned: dict[int, list[int]] = {}
    for i in spanned:
        mid = (columns[i][0] + columns[i][1]) / 2
        owned.setdefault(sum(mid >= c for c in cuts), []).append(i)
    if len(owned) != len(words):
        return None  # some word has no column of its own: not one heading per column group
    return [
        TextLine(text=words[k], bbox=(columns[cols[0]][0] + 0.5, y0, columns[cols[-1]][1] - 0.5, y1),
                 score=line.score, font_size=line.font_size, bold=line.bold)
        for k, cols in sorted(owned.items())
    ]


def _span_centred_headings(grid: list[list[str]], spans: dict[tuple[int, int], int]) -> None:
    """A heading alone in a top row, centred over the cells of the row below ("Year Ended" over three dates,
    with currency-sign columns between them), spans those columns: in HTML it heads each of them, not only the
    middle one."""
    for r in range(min(len(grid) - 1, 3)):
        row = grid[r]
        filled = [c for c, text in enumerate(row) if text]
        if len(filled) != 1 or any(k[0] == r and k[1] != filled[0] for k in spans):
            continue
        c = filled[0]
        last = c + spans.get((r, c), 1) - 1  # the heading may already span the columns its text overlaps
        below = grid[r + 1]
        cols = [i for i, text in enumerate(below) if text]
        left, right = [i for i in cols if i < c], [i for i in cols if i > last]
        k = min(len(left), len(right))
        over = any(c <= i <= last for i in cols)
        if k == 0 or (not over and len(left) != len(right)):
            continue
        lo, hi = left[-k], right[k - 1]
        spans.pop((r, c), None)
        row[lo], text = row[c], row[c]
        for i in range(lo + 1, hi + 1):
            row[i] = ""
        row[lo] = text
        spans[(r, lo)] = hi - lo + 1


def _split_by_columns(line: TextLine, columns: list[tuple[float, float]]) -> list[TextLine]:
    """A line that runs over several columns in a row with other cells ("Tokens Words", "3.48T 22.38T") is
    several cells the text layer joined: split it at word boundaries, placing each word by where its characters
    fall (assuming evenly wide characters)."""
    x0, y0, x1, y1 = line.bbox
    spanned = [i for i, (c0, c1) in enumerate(columns) if min(c1, x1) - max(c0, x0) > 0]
    words = line.text.split()
    if len(spanned) < 2 or len(words) < 2:
        return [line]
    if len(words) == len(spanned) and _gappy(line):
        # As many words as columns under a stretched line: one word per column, whatever their widths.
        return [
            TextLine(text=word, bbox=(max(x0, columns[i][0]), y0, min(x1, columns[i][1]), y1), score=line.score,
                     font_size=line.font_size, bold=line.bold)
            for word, i in zip(words, spanned)
        ]
    # Where each word sits, assuming evenly wide characters; in a gappy line (cells the text layer joined) the
    # spare width goes to the gaps between words, not to the characters.
    chars = sum(len(w) for w in words)
    char_w = min((x1 - x0) / max(len(line.text), 1), _char_width(line))
    gap_w = max(((x1 - x0) - chars * char_w) / (len(words) - 1), char_w)
    groups: dict[int, list[tuple[str, float, float]]] = {}
    done = 0
    for k, word in enumerate(words):
        wx0 = x0 + done * char_w + k * gap_w
        wx1 = wx0 + len(word) * char_w
        done += len(word)
        mid = (wx0 + wx1) / 2
        col = min(spanned, key=lambda i: 0 if columns[i][0] <= mid <= columns[i][1]
                  else min(abs(mid - columns[i][0]), abs(mid - columns[i][1])))
        groups.setdefault(col, []).append((word, wx0, wx1))
    if len(groups) < 2:
        return [line]
    return [
        TextLine(text=" ".join(w for w, _, _ in ws), bbox=(ws[0][1], y0, ws[-1][2], y1), score=line.score,
                 font_size=line.font_size, bold=line.bold)
        for _, ws in sorted(groups.items())
    ]


def _char_width(line: TextLine) -> float:
    size = line.font_size or (line.bbox[3] - line.bbox[1]) / 1.2
    return 0.55 * size


def _gappy(line: TextLine) -> bool:
    """Much wider than its characters need: several cells read as one line ("Source  Type  Tokens  Words")."""
    words = line.text.split()
    return len(words) >= 3 and (line.bbox[2] - line.bbox[0]) > 1.8 * _char_width(line) * len(line.text)


def _merge_wrapped_rows(rows, parts, spans):
    """A row that only continues cells of the row above (a wrapped cell: fewer cells, all under filled ones,
    much closer than rows usually are) is folded into it."""
    if len(parts) < 3:
        return parts, spans
    tops = [min(ln.bbox[1] for ln in r) for r in rows]
    bottoms = [max(ln.bbox[3] for ln in r) for r in rows]
    gaps = sorted(tops[i + 1] - bottoms[i] for i in range(len(rows) - 1))
    typical = gaps[len(gaps) // 2]
    merged = [parts[0]]
    merged_spans = {k: v for k, v in spans.items() if k[0] == 0}
    last_bottom = bottoms[0]
    for i in range(1, len(parts)):
        prev, cur = merged[-1], parts[i]
        filled_prev = {c for c, cell in enumerate(prev) if cell}
        filled_cur = {c for c, cell in enumerate(cur) if cell}
        gap = tops[i] - last_bottom
        close = typical > 0 and gap < 0.5 * typical and not any(k[0] in (i, i - 1) for k in spans)
        # The wrapped piece is the partial row: below a full row (cells anchored at the top) or above one
        # (anchored at the bottom, or vertically centred).
        wrapped = close and (
            (len(filled_cur) < len(cur) and filled_cur <= filled_prev)
            or (len(filled_prev) < len(prev) and filled_prev <= filled_cur and len(filled_cur) > len(filled_prev))
        )
        if wrapped:
            merged[-1] = [a + b for a, b in zip(prev, cur)]
        else:
            for k, v in spans.items():
                if k[0] == i:
                    merged_spans[(len(merged), k[1])] = v
            merged.append(cur)
        last_bottom = bottoms[i]
    return merged, merged_spans


def find_ruled_tables(rulings: list[BBox], page_width: float, lines: list[TextLine] = ()) -> list[BBox]:
    """Table boxes from the rulings alone (text mode has no layout model): clusters of horizontal rules that
    overlap in x, at least three rules, or two plus vertical rules between them. Rules far apart still belong to
    one table when they have the same ends and the lines between them are laid out in cells (a booktabs table:
    top rule, rule under the heading, bottom rule)."""
    horizontal, vertical = split_rulings(rulings)
    horizontal = [r for r in horizontal if r[2] - r[0] >= 0.08 * page_width]
    horizontal.sort(key=lambda r: r[1])
    clusters: list[list[BBox]] = []
    for rule in horizontal:
        for cluster in clusters:
            box = _union(cluster)
            x_overlap = min(box[2], rule[2]) - max(box[0], rule[0])
            if x_overlap > 0.5 * min(box[2] - box[0], rule[2] - rule[0]) and (
                rule[1] - box[3] < _MAX_RULE_GAP or _same_table(cluster[-1], rule, lines)
            ):
                cluster.append(rule)
                break
        else:
            clusters.append([rule])
    tables = []
    for cluster in [part for cluster in clusters for part in _split_at_open_gaps(cluster, vertical)]:
        box = _union(cluster)
        ys = _snap([(r[1] + r[3]) / 2 for r in cluster])
        verticals = [
            v for v in vertical if v[0] >= box[0] - 4 and v[2] <= box[2] + 4 and v[1] < box[3] and v[3] > box[1]
        ]
        if len(ys) >= _MIN_GRID_RULES or (len(ys) >= 2 and verticals):
            tables.append(box)
    return tables


def _split_at_open_gaps(cluster: list[BBox], vertical: list[BBox]) -> list[list[BBox]]:
    """Two grids drawn one above the other: where the rules' column lines stop and start again (no vertical
    rule crosses the gap between two horizontal rules, while rules stand above and below it), the tables part."""
    box = _union(cluster)
    inside = [v for v in vertical if v[0] >= box[0] - 4 and v[2] <= box[2] + 4 and v[1] < box[3] and v[3] > box[1]]
    if not inside:
        return [cluster]
    ordered = sorted(cluster, key=lambda r: r[1])
    parts = [[ordered[0]]]
    for upper, lower in zip(ordered, ordered[1:]):
        top, bottom = upper[3], lower[1]
        crossed = any(v[1] <= top + _SNAP and v[3] >= bottom - _SNAP for v in inside)
        framed = any(v[3] <= top + _SNAP for v in inside) and any(v[1] >= bottom - _SNAP for v in inside)
        if bottom - top > _SNAP and not crossed and framed:
            parts.append([])
        parts[-1].append(lower)
    return parts


def _same_table(upper: BBox, lower: BBox, lines: list[TextLine]) -> bool:
    """Two rules with the same ends and, between them, text laid out in cells, or one row of cells some of which
    wrap onto further lines (the band between two rules is then one tall row)."""
    if abs(upper[0] - lower[0]) > _SNAP or abs(upper[2] - lower[2]) > _SNAP:
        return False
    box = (upper[0], upper[3], upper[2], lower[1])
    return looks_tabular(lines, box) or _one_wrapped_row(lines, box)


def _one_wrapped_row(lines: list[TextLine], box: BBox) -> bool:
    x0, top, x1, bottom = box
    inside = [ln for ln in lines if top < _center(ln.bbox)[1] < bottom and ln.bbox[0] >= x0 - 4 and ln.bbox[2] <= x1 + 4]
    rows = _cluster_rows(inside, [])
    if len(rows) < 2 or len(rows[0]) < 2:
        return False
    starts = [ln.bbox[0] for ln in rows[0]]
    # Every later line starts under a cell of the first row and stays in that cell's column.
    for row in rows[1:]:
        for ln in row:
            col = max((i for i, x in enumerate(starts) if x <= ln.bbox[0] + 1), default=None)
            if col is None or abs(ln.bbox[0] - starts[col]) > 2 or (
                    col + 1 < len(starts) and ln.bbox[2] > starts[col + 1]):
                return False
    return True


def looks_tabular(lines: list[TextLine], box: BBox) -> bool:
    """The lines inside `box` form rows of at least three separate cells (mostly) that line up in columns; words
    of running text (a text layer giving one word a line) or handwriting on ruled paper do not."""
    x0, top, x1, bottom = box
    inside = [ln for ln in lines if top < (ln.bbox[1] + ln.bbox[3]) / 2 < bottom
              and ln.bbox[0] >= x0 - 4 and ln.bbox[2] <= x1 + 4]
    if not inside:
        return False
    heights = sorted(ln.bbox[3] - ln.bbox[1] for ln in inside)
    typical = heights[len(heights) // 2]
    # Rotated text (a margin stamp) is one tall box that would merge every row it passes.
    rows = _cluster_rows([ln for ln in inside if ln.bbox[3] - ln.bbox[1] <= 3 * typical], [])
    wide = sum(1 for row in rows if len(row) >= 3)
    if len(rows) < 2 or wide < 0.6 * len(rows):
        return False
    # Inner cells line up with cells of many other rows (left, right or centre): columns run down the table,
    # while words of running text meet by chance (and justified text lines up only at its margins).
    seen: dict[tuple[int, int], set[int]] = {}
    for r, row in enumerate(rows):
        for ln in row:
            for kind, x in enumerate((ln.bbox[0], ln.bbox[2], (ln.bbox[0] + ln.bbox[2]) / 2)):
                seen.setdefault((kind, round(x)), set()).add(r)
    need = max(1, int(0.3 * (len(rows) - 1)))
    cells = aligned = 0
    for r, row in enumerate(rows):
        for ln in row[1:-1]:
            cells += 1
            for kind, x in enumerate((ln.bbox[0], ln.bbox[2], (ln.bbox[0] + ln.bbox[2]) / 2)):
                near = set().union(*(seen.get((kind, round(x) + d), set()) for d in (-1, 0, 1)))
                if len(near - {r}) >= need:
                    aligned += 1
                    break
    return cells > 0 and aligned >= 0.7 * cells


def grow_ruled_table(box: BBox, lines: list[TextLine]) -> BBox:
    """Rules often underline only the number columns (financial statements) or sit below the heading row: take
    in the lines that share the rules' rows, and the heading line right above."""
    x0, y0, x1, y1 = box
    for line in lines:
        mid = (line.bbox[1] + line.bbox[3]) / 2
        if y0 < mid < y1:
            x0, x1 = min(x0, line.bbox[0]), max(x1, line.bbox[2])
    above = [ln for ln in lines if ln.bbox[3] <= y0 + 1 and y0 - ln.bbox[3] < 0.8 * (ln.bbox[3] - ln.bbox[1])
             and ln.bbox[0] >= x0 - 1 and ln.bbox[2] <= x1 + 1]
    if above:
        y0 = min(ln.bbox[1] for ln in above)
    return (x0, y0, x1, y1)


def _union(boxes: list[BBox]) -> BBox:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


# Rows of a table without rulings sit at most this many line heights apart (a wrapped cell leaves a wider gap
# only where its row holds other cells beside it).
_ALIGNED_ROW_GAP = 2.5
# Cells of a table are short: running text in columns (a three-column newsletter) has more words a piece.
_MAX_WORDS_PER_CELL = 4
# Line heights: how far the middles of one row's cells may stray from each other.
_BASELINE_DRIFT = 0.25
_MIN_ALIGNED_ROWS = 3


def find_aligned_tables(lines: list[TextLine], page_width: float) -> list[BBox]:
    """Table boxes from alignment alone (no rulings, no layout): runs of consecutive rows that hold several
    separate pieces of text on one baseline, at least three rows of three or more, short pieces (median), and inner cells lining up in
    columns down the run (`looks_tabular`). Prose above and below (one piece a row) ends a run, so the box never
    swallows the paragraphs around the table."""
    if len(lines) < 2 * _MIN_ALIGNED_ROWS:
        return []
    heights = sorted(ln.bbox[3] - ln.bbox[1] for ln in lines)
    typical = heights[len(heights) // 2]
    rows = _cluster_rows([ln for ln in lines if ln.bbox[3] - ln.bbox[1] <= 3 * typical], [])
    tables: list[BBox] = []
    run: list[list[TextLine]] = []
    taken = [0]  # rows before this index belong to a table already

    def close(end: int) -> None:
        wide = [r for r in run if len(r) >= 3]
        if len(wide) >= _MIN_ALIGNED_ROWS:
            cells = [ln for r in run for ln in r]
            counts = sorted(len(ln.text.split()) for ln in cells)
            if counts[len(counts) // 2] <= _MAX_WORDS_PER_CELL:
                box = _union([ln.bbox for ln in cells])
                if looks_tabular(lines, (box[0], box[1] - 0.5, box[2], box[3] + 0.5)):
                    tables.append(_with_headings(box, rows[taken[0]:end - len(run)], typical))
                    taken[0] = end
        run.clear()

    for end, row in enumerate(rows):
        top = min(ln.bbox[1] for ln in row)
        # A table's cells share a baseline; columns of running text, set independently, drift past each other.
        mids = sorted((ln.bbox[1] + ln.bbox[3]) / 2 for ln in row)
        cells = len(row) >= 2 and mids[-1] - mids[0] <= _BASELINE_DRIFT * typical
        if run:
            bottom = max(ln.bbox[3] for ln in run[-1])
            if not cells or top - bottom > _ALIGNED_ROW_GAP * typical:
                close(end)
        if cells:
            run.append(row)
    if run:
        close(len(rows))
    return _join_stacked(tables, typical)


def _join_stacked(tables: list[BBox], typical: float) -> list[BBox]:
    """Tables one right under the other with the same left and right edges are one table whose sections each
    open with a heading row (a heading row, one piece wide, ends a run of cell rows)."""
    out: list[BBox] = []
    for box in tables:
        if out:
            last = out[-1]
            if box[1] - last[3] <= _ALIGNED_ROW_GAP * typical and abs(box[0] - last[0]) <= typical \
                    and abs(box[2] - last[2]) <= typical:
                out[-1] = _union([last, box])
                continue
        out.append(box)
    return out


def _with_headings(box: BBox, above: list[list[TextLine]], typical: float) -> BBox:
    """The table box grown over the heading rows right above it (up to two): short pieces within the table's
    width, close above its first row, not a sentence (a group heading centred over the columns it spans)."""
    x0, y0, x1, y1 = box
    for row in reversed(above[-2:]):
        bottom = max(ln.bbox[3] for ln in row)
        if y0 - bottom > 0.8 * typical or any(
                ln.bbox[0] < x0 - 1 or ln.bbox[2] > x1 + 1 or len(ln.text.split()) > _MAX_WORDS_PER_CELL
                or ln.text.rstrip().endswith(".") for ln in row):
            break
        y0 = min(ln.bbox[1] for ln in row)
    return (x0, y0, x1, y1)


_NUMBER = re.compile(r"[-+(\u2212\u25b3]?[$\u20ac\u00a3\u00a5]?\d[\d,.]*%?\)?")


def _numbers_in_a_row(row: list[TextLine]) -> bool:
    """A line mostly of numbers, three or more: a table row whose number cells the text layer joined (not a
    sentence or a formula that mentions a few)."""
    for ln in row:
        tokens = ln.text.split()
        numbers = sum(1 for token in tokens if _NUMBER.fullmatch(token))
        if numbers >= 3 and 2 * numbers >= len(tokens):
            return True
    return False


def table_bands(regions, rulings: list[BBox], lines: list[TextLine], page_width: float) -> list[tuple[float, float]]:
    """Vertical bands (top, bottom) of a born-digital page worth word boxes: layout's table regions, ruled
    tables, and the span of the rows that hold three or more short pieces on one baseline or a line of three or
    more numbers (rows whose cells the text layer kept in one line show up only once the words split them, so a
    run of such rows is not needed)."""
    boxes = [r.bbox for r in regions if r.label == "table"]
    boxes += [grow_ruled_table(box, lines) for box in find_ruled_tables(rulings, page_width, lines)]
    if len(lines) >= 2 * _MIN_ALIGNED_ROWS:
        heights = sorted(ln.bbox[3] - ln.bbox[1] for ln in lines)
        typical = heights[len(heights) // 2]
        wide = []
        for row in _cluster_rows(lines, []):
            mids = [(ln.bbox[1] + ln.bbox[3]) / 2 for ln in row]
            words = sorted(len(ln.text.split()) for ln in row)
            if (len(row) >= 3 and max(mids) - min(mids) <= _BASELINE_DRIFT * typical
                    and words[len(words) // 2] <= _MAX_WORDS_PER_CELL) or _numbers_in_a_row(row):
                wide.append(row)
        if len(wide) >= _MIN_ALIGNED_ROWS:
            # With room for heading rows above and a last row below whose cells the text layer joined.
            x0, top, x1, bottom = _union([ln.bbox for row in wide for ln in row])
            boxes.append((x0, top - 3 * typical, x1, bottom + 3 * typical))
    return [(box[1] - 2, box[3] + 2) for box in boxes]
