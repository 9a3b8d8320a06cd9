"""Tables split by a page break: the table that opens a page continues the one that closes the page before it
when both have the same number of columns. Noted on the later table block (`Block.continued`), so a reader of
the JSON can join the rows; each page's Markdown keeps its own table."""

from __future__ import annotations

import re

from app.pipeline.result import FURNITURE, Block, PageResult

_ROW = re.compile(r"<tr>(.*?)</tr>", re.DOTALL)
_CELL = re.compile(r"<t[hd](?:\s+colspan=\"(\d+)\")?[^>]*>")


def mark_continued_tables(pages: list[PageResult]) -> None:
    """Set `continued` on each page's first body block when it is a table continuing the previous page's last
    body block (consecutive page numbers, both tables, as many columns)."""
    for before, after in zip(pages, pages[1:]):
        if after.page != before.page + 1:
            continue
        last, first = _body_edge(before, last=True), _body_edge(after, last=False)
        if last is None or first is None or last.type != "table" or first.type != "table":
            continue
        width = _columns(last.html)
        if width and width == _columns(first.html):
            first.continued = True


def _body_edge(page: PageResult, *, last: bool) -> Block | None:
    body = sorted((b for b in page.blocks if b.type not in FURNITURE), key=lambda b: b.order)
    return (body[-1] if last else body[0]) if body else None


def _columns(html: str | None) -> int:
    """Columns of a table's widest row (colspans counted)."""
    if not html:
        return 0
    return max((sum(int(span or 1) for span in _CELL.findall(row)) for row in _ROW.findall(html)), default=0)
