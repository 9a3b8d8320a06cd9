"""Clean up what PaddleOCR-VL returns, the way PaddleX's PaddleOCR-VL pipeline does before showing it.

Three steps, in the official order: cut runaway repetition (the model sometimes loops until its token limit),
turn `\\(..\\)` / `\\[..\\]` into `$..$` / `$$..$$`, and convert table output (OTSL) to HTML. The behaviour
follows `paddlex/inference/pipelines/paddleocr_vl/{pipeline.py,uilts.py}`; the code is our own.
"""

from __future__ import annotations

import html
import itertools
import re
from collections import Counter

# --- repetition ----------------------------------------------------------------------------------------------------
# The official pipeline only looks at long outputs: 50 characters for text, 5000 for tables (tables repeat
# legitimately: `<fcel>0<fcel>0...`).
TEXT_MIN_CHARS = 50
TABLE_MIN_CHARS = 5000


def _repeating_suffix(s: str, min_unit: int = 8, min_repeats: int = 5) -> tuple[str, str, int] | None:
    """The longest unit (>= min_unit chars) that ends `s` at least `min_repeats` times in a row."""
    for size in range(len(s) // min_repeats, min_unit - 1, -1):
        unit = s[-size:]
        if not s.endswith(unit * min_repeats):
            continue
        count, end = 0, len(s)
        while end >= size and s[end - size : end] == unit:
            end -= size
            count += 1
        return s[:end], unit, count
    return None


def _whole_string_unit(s: str) -> str | None:
    """The shortest unit that, repeated, makes up all of `s`."""
    n = len(s)
    for size in range(1, n // 2 + 1):
        if n % size == 0 and s[:size] * (n // size) == s:
            return s[:size]
    return None


def truncate_repetitions(text: str, *, min_chars: int = TEXT_MIN_CHARS, line_threshold: int = 10,
                         char_threshold: int = 10) -> str:
    """Drop looping output: a single line ending in one phrase repeated, a string that is one unit repeated,
    or many lines that are mostly the same line. Anything shorter than `min_chars` is left alone."""
    if len(text) < min_chars:
        return text
    stripped = text.strip()
    if not stripped:
        return text
    if "\n" not in stripped:
        if len(stripped) > 100:
            found = _repeating_suffix(stripped)
            if found and len(found[1]) * found[2] > len(stripped) * 0.5:
                return found[0]
        if len(stripped) > 10:
            unit = _whole_string_unit(stripped)
            if unit and len(stripped) // len(unit) >= char_threshold:
                return unit
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if len(lines) >= line_threshold:
        line, count = Counter(lines).most_common(1)[0]
        if count >= line_threshold and count / len(lines) >= 0.8:
            return line
    return text


# --- LaTeX delimiters ----------------------------------------------------------------------------------------------
def normalise_latex_delimiters(text: str) -> str:
    """`\\(x\\)` -> ` $ x $`, `\\[x\\]` -> ` $$ x $$ ` (Markdown math), as the official pipeline does.

    Only when a complete pair is present; stray `$` are removed first so they cannot unbalance the result."""
    if not (("\\(" in text and "\\)" in text) or ("\\[" in text and "\\]" in text)):
        return text
    text = text.replace("$", "")
    text = text.replace("\\(", " $ ").replace("\\)", " $")
    text = text.replace("\\[\\[", "\\[").replace("\\]\\]", "\\]")
    return text.replace("\\[", " $$ ").replace("\\]", " $$ ")


# --- OTSL -> HTML --------------------------------------------------------------------------------------------------
# OTSL (Lysak et al. 2023): one tag per grid cell, rows ended by <nl>. fcel = cell with text, ecel = empty cell,
# lcel = merged with the cell to the left, ucel = merged with the cell above, xcel = merged both ways.
NL, FCEL, ECEL, LCEL, UCEL, XCEL = "<nl>", "<fcel>", "<ecel>", "<lcel>", "<ucel>", "<xcel>"
_CELL_TAGS = (FCEL, ECEL, LCEL, UCEL, XCEL)
_TAG_RE = re.compile("(" + "|".join(re.escape(t) for t in (NL, *_CELL_TAGS)) + ")")


def _rows(otsl: str) -> list[list[tuple[str, str]]]:
    """Split OTSL into rows of (tag, text) cells; text after a tag belongs to that cell."""
    rows: list[list[tuple[str, str]]] = []
    row: list[tuple[str, str]] = []
    parts = _TAG_RE.split(otsl)
    # parts: [leading text, tag, text, tag, text, ...]; text before the first tag has no cell and is dropped.
    for tag, text in zip(parts[1::2], parts[2::2]):
        if tag == NL:
            if row:
                rows.append(row)
            row = []
        else:
            row.append((tag, text))
    if row:
        rows.append(row)
    return rows


def _squared(rows: list[list[tuple[str, str]]]) -> list[list[tuple[str, str]]]:
    """Give every row the same width: the width that changes the fewest cells, but never one that would cut
    a cell with text. Short rows get empty cells, long rows lose trailing cells."""
    if not rows:
        return rows
    min_width = max((max((i + 1 for i, (t, _) in enumerate(r) if t == FCEL), default=0) for r in rows))
    max_width = max(len(r) for r in rows)
    best = min(range(min_width, max(min_width, max_width) + 1), key=lambda w: sum(abs(len(r) - w) for r in rows))
    return [r[:best] + [(ECEL, "")] * (best - len(r)) for r in rows]


def otsl_to_html(otsl: str) -> str:
    """Convert an OTSL table to `<table>` HTML with rowspan/colspan; "" when there is no table in it."""
    grid = _squared(_rows(otsl.strip()))
    if not grid or not grid[0]:
        return ""
    n_rows, n_cols = len(grid), len(grid[0])
    body = []
    for r, row in enumerate(grid):
        cells = []
        for c, (tag, text) in enumerate(row):
            if tag not in (FCEL, ECEL):
                continue  # covered by a span that started elsewhere
            colspan = 1 + sum(1 for _ in itertools.takewhile(lambda t: t[0] in (LCEL, XCEL), row[c + 1 :]))
            rowspan = 1 + sum(
                1 for _ in itertools.takewhile(lambda rr: grid[rr][c][0] in (UCEL, XCEL), range(r + 1, n_rows))
            )
            attrs = (f' rowspan="{rowspan}"' if rowspan > 1 else "") + (f' colspan="{colspan}"' if colspan > 1 else "")
            content = html.escape(text.strip()) if tag == FCEL else ""
            cells.append(f"<td{attrs}>{content}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if n_cols == 0 or not any(body):
        return ""
    return "<table>" + "".join(body) + "</table>"


def html_table_text(table_html: str) -> str:
    """Plain text of an HTML table (cells tab-separated, rows on lines): the block's `text` for search."""
    rows = re.findall(r"<tr>(.*?)</tr>", table_html, flags=re.S)
    lines = []
    for row in rows:
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)
        lines.append("\t".join(html.unescape(c) for c in cells))
    return "\n".join(lines)


# --- the whole chain -----------------------------------------------------------------------------------------------
def postprocess(raw: str | None, kind: str) -> tuple[str, str | None]:
    """Apply the official post-processing for a region of `kind` ("ocr", "table", "formula", "chart").

    Returns `(text, html)`: tables give their HTML (and its plain text); everything else gives text only.
    A table answer that is not OTSL (the model sometimes answers plain text) is kept as text."""
    text = raw or ""
    text = truncate_repetitions(text, min_chars=TABLE_MIN_CHARS if kind == "table" else TEXT_MIN_CHARS)
    text = normalise_latex_delimiters(text)
    if kind == "table":
        table_html = otsl_to_html(text)
        if table_html:
            return html_table_text(table_html), table_html
    return text.strip(), None
