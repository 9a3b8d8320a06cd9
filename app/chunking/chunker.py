"""A DocumentResult cut into chunks for retrieval: each with its text, the title path above it, its pages, the
blocks (with boxes) it came from and its size in tokens (`tokens.py`).

Order of work:
1. Units. The body blocks (furniture left out, as in the Markdown) are walked in reading order. A title updates
   the heading path (by its level) instead of becoming text; one with nothing under it becomes its own unit, so no
   text is lost. A caption joins the figure, chart or table next to it on the same page (a text block that reads
   `Table 3 ...`/`Figure 2: ...` counts as a caption there too: the layout model often labels captions as text).
2. Fit. A unit over `max_tokens` is split: a table by rows, its header (and caption) repeated on every piece; any
   other text by semchunk, which cuts at the largest boundary that fits (blank lines, lines, sentences, words).
3. `hierarchical` stops here: one chunk per unit (or piece), like docling's HierarchicalChunker. `hybrid` then
   merges neighbouring chunks under the same heading path while the merged text fits `max_tokens`, like docling's
   HybridChunker (docling's chunkers themselves need a DoclingDocument, which our block model is not).

Every chunk's `tokens` is at most `max_tokens`, and the chunks' texts plus their headings hold every word of the
body blocks (pieces of one block only lose the white space they were cut at).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Literal, get_args

import semchunk
from pydantic import BaseModel, Field

from app.chunking.tokens import TOKENIZER_NAME, count_tokens
from app.pipeline.options import OptionError
from app.pipeline.result import FURNITURE, BBox, Block, DocumentResult

ChunkingMethod = Literal["hierarchical", "hybrid"]
CHUNKING_METHODS: tuple[str, ...] = get_args(ChunkingMethod)
DEFAULT_MAX_TOKENS = 512
# Below this a table header alone can fill a chunk; above it most embedding models truncate anyway.
MIN_MAX_TOKENS, MAX_MAX_TOKENS = 32, 8192

_VISUALS = frozenset({"figure", "chart", "table"})
_CAPTION_TEXT = re.compile(r"^\s*(table|tab\.|figure|fig\.|chart|exhibit)\s*[0-9IVX]+[.:]?\s", re.IGNORECASE)
_PIPE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{3,}")
_HTML_ROW = re.compile(r"(?=<tr[\s>])", re.IGNORECASE)


class BlockRef(BaseModel):
    page: int = Field(description="1-based page number")
    index: int = Field(description="Position of the block in that page's `blocks` list of the JSON result")
    type: str
    bbox: BBox = Field(description="[x0, y0, x1, y1] in PDF points, top-left origin")


class Chunk(BaseModel):
    text: str
    headings: list[str] = Field(description="The titles above the chunk, outermost first")
    pages: list[int]
    blocks: list[BlockRef]
    tokens: int = Field(description="Tokens in `text` by the tokenizer named in the chunk set")


class ChunkSet(BaseModel):
    chunking: ChunkingMethod
    max_tokens: int
    tokenizer: str = Field(description="How `tokens` is counted: tiktoken's cl100k_base (OpenAI embedding models)")
    chunks: list[Chunk]


@dataclass(frozen=True)
class ChunkOptions:
    method: ChunkingMethod = "hybrid"
    max_tokens: int = DEFAULT_MAX_TOKENS


def parse_chunk_options(method: str | None, max_tokens: str | int | None) -> ChunkOptions | None:
    """The chunking a caller asked for, or None when it named no method (a `max_tokens` alone is refused: it
    would be silently ignored). Bad values raise OptionError (422 over HTTP, exit status 2 on the command line)."""
    if method is None or not str(method).strip():
        if max_tokens is not None and str(max_tokens).strip():
            raise OptionError("max_tokens", f"only applies with chunking={'|'.join(CHUNKING_METHODS)}")
        return None
    chosen = str(method).strip()
    if chosen not in CHUNKING_METHODS:
        raise OptionError("chunking", f"must be one of {', '.join(CHUNKING_METHODS)}, got {method!r}")
    if max_tokens is None or not str(max_tokens).strip():
        limit = DEFAULT_MAX_TOKENS
    elif isinstance(max_tokens, int) or str(max_tokens).strip().isascii() and str(max_tokens).strip().isdigit():
        limit = int(max_tokens)
    else:
        raise OptionError("max_tokens", f"must be an integer, got {max_tokens!r}")
    if not MIN_MAX_TOKENS <= limit <= MAX_MAX_TOKENS:
        raise OptionError("max_tokens", f"must be between {MIN_MAX_TOKENS} and {MAX_MAX_TOKENS}, got {limit}")
    return ChunkOptions(chosen, limit)  # type: ignore[arg-type]


@dataclass
class _Unit:
    """What becomes one chunk before fitting: `body` (a table's rows, or text) with its caption, if any."""

    kind: Literal["text", "table", "visual"]
    headings: tuple[str, ...]
    body: str = ""
    caption: str = ""
    refs: list[BlockRef] = field(default_factory=list)
    table_markup: str | None = None  # "pipe" | "html" for a table whose rows can be told apart


@dataclass
class _Piece:
    text: str
    headings: tuple[str, ...]
    refs: list[BlockRef]
    tokens: int


def chunk_document(result: DocumentResult, options: ChunkOptions) -> ChunkSet:
    """See the module docstring."""
    pieces = [piece for unit in _units(result) for piece in _fit(unit, options.max_tokens)]
    if options.method == "hybrid":
        pieces = _merge_peers(pieces, options.max_tokens)
    chunks = [
        Chunk(text=p.text, headings=list(p.headings), pages=sorted({r.page for r in p.refs}), blocks=p.refs,
              tokens=p.tokens)
        for p in pieces
    ]
    return ChunkSet(chunking=options.method, max_tokens=options.max_tokens, tokenizer=TOKENIZER_NAME, chunks=chunks)


# --- 1. units -------------------------------------------------------------------------------------------------------

def _ref(page: int, index: int, block: Block) -> BlockRef:
    return BlockRef(page=page, index=index, type=block.type, bbox=block.bbox)


def _table_text(block: Block) -> tuple[str, str | None]:
    """The table as it reads in the Markdown (a pipe table, or HTML when its cells span) and how its rows are
    marked up."""
    text = block.text.strip()
    lines = text.splitlines()
    if len(lines) >= 2 and lines[0].lstrip().startswith("|") and _PIPE_SEPARATOR.match(lines[1]):
        return text, "pipe"
    if block.html and "<tr" in block.html.lower():
        return block.html.strip(), "html"
    return text, None


def _is_caption(block: Block) -> bool:
    return block.type == "caption" or (block.type == "text" and bool(_CAPTION_TEXT.match(block.text)))


def _units(result: DocumentResult) -> list[_Unit]:
    body = [(page.page, index, block) for page in result.pages
            for index, block in sorted(enumerate(page.blocks), key=lambda item: item[1].order)
            if block.type not in FURNITURE]
    units: list[_Unit] = []
    path: list[tuple[int, str]] = []  # (level, title) from the outermost title down
    orphan: _Unit | None = None  # the latest title, until something is written under it
    used: set[int] = set()  # captions already placed with their visual
    for position, (page, index, block) in enumerate(body):
        if position in used:
            continue
        text = block.text.strip()
        if block.type == "title" and text:
            if orphan is not None:
                units.append(orphan)
            level = block.level or 1
            path = [entry for entry in path if entry[0] < level]
            orphan = _Unit("text", tuple(title for _, title in path), body=text, refs=[_ref(page, index, block)])
            path.append((level, text))
            continue
        headings = tuple(title for _, title in path)
        if block.type in _VISUALS:
            unit = _Unit("table" if block.type == "table" else "visual", headings, refs=[_ref(page, index, block)])
            if block.type == "table":
                unit.body, unit.table_markup = _table_text(block)
            else:
                unit.body = text
            caption = _adjacent_caption(body, position, used)
            if caption is not None:
                cpage, cindex, cblock = body[caption]
                unit.caption = cblock.text.strip()
                unit.refs.insert(0 if caption < position else 1, _ref(cpage, cindex, cblock))
                used.add(caption)
            if unit.body or unit.caption:
                units.append(unit)
                orphan = None
            continue
        if text:
            units.append(_Unit("text", headings, body=text, refs=[_ref(page, index, block)]))
            orphan = None
    if orphan is not None:
        units.append(orphan)
    return units


def _adjacent_caption(body: list[tuple[int, int, Block]], position: int, used: set[int]) -> int | None:
    """The caption right before or after the visual at `position`, on its page: before wins (`Table 1` above the
    table), unless it belongs to the visual before it."""
    page = body[position][0]
    for other in (position - 1, position + 1):
        if not 0 <= other < len(body) or other in used or body[other][0] != page:
            continue
        if not _is_caption(body[other][2]):
            continue
        if other == position - 1 and other - 1 >= 0 and body[other - 1][2].type in _VISUALS \
                and body[other - 1][0] == page and body[other][2].type == "caption":
            continue  # a layout caption between two visuals was already offered to the first one
        return other
    return None


# --- 2. fit ---------------------------------------------------------------------------------------------------------

@functools.cache
def _splitter(max_tokens: int) -> semchunk.Chunker:
    return semchunk.chunkerify(count_tokens, max_tokens, cache_maxsize=4096)  # a server chunks many documents


def _split_text(text: str, max_tokens: int) -> list[str]:
    return [piece for piece in _splitter(max_tokens)(text) if piece.strip()]


def _join(*parts: str) -> str:
    return "\n\n".join(part for part in parts if part)


def _fit(unit: _Unit, max_tokens: int) -> list[_Piece]:
    whole = _join(unit.caption, unit.body)
    tokens = count_tokens(whole)
    if tokens <= max_tokens:
        return [_Piece(whole, unit.headings, unit.refs, tokens)]
    if unit.kind == "table" and unit.table_markup is not None:
        return _split_table(unit, max_tokens)
    return [_Piece(text, unit.headings, unit.refs, count_tokens(text)) for text in _split_text(whole, max_tokens)]


def _table_rows(unit: _Unit) -> tuple[str, list[str], str]:
    """(header, rows, closing) of a table: a pipe table's first line and its separator are the header; an HTML
    table's markup up to its second row is, and `</table>` closes every piece."""
    if unit.table_markup == "pipe":
        lines = unit.body.splitlines()
        return "\n".join(lines[:2]), lines[2:], ""
    parts = _HTML_ROW.split(unit.body)
    head, rows = parts[0] + (parts[1] if len(parts) > 1 else ""), parts[2:]
    closing = ""
    if rows and "</table>" in rows[-1].lower():
        cut = rows[-1].lower().rindex("</table>")
        rows[-1], closing = rows[-1][:cut], rows[-1][cut:]
    return head, rows, closing


def _split_table(unit: _Unit, max_tokens: int) -> list[_Piece]:
    """Rows packed greedily under a repeated prefix: caption + header when that leaves room for rows, else the
    header alone (the caption then gets a piece of its own), else nothing (a header too big to repeat)."""
    header, rows, closing = _table_rows(unit)
    sep = "\n" if unit.table_markup == "pipe" else ""
    pieces: list[_Piece] = []
    prefix_options = [_join(unit.caption, header), header, ""]
    prefix = next((p for p in prefix_options if count_tokens(p + sep + (rows[0] if rows else "") + closing)
                   <= max_tokens), "")
    if unit.caption and unit.caption not in prefix:
        pieces += [_Piece(t, unit.headings, unit.refs, count_tokens(t)) for t in _fit_text(unit.caption, max_tokens)]
    if not prefix:
        # Not even one row fits under the header: the table is read as text, in pieces that fit.
        body = _join(header, sep.join(rows) + closing)
        return pieces + [_Piece(t, unit.headings, unit.refs, count_tokens(t)) for t in _split_text(body, max_tokens)]
    current: list[str] = []
    for row in rows:
        candidate = prefix + sep + sep.join([*current, row]) + closing
        if current and count_tokens(candidate) > max_tokens:
            text = prefix + sep + sep.join(current) + closing
            pieces.append(_Piece(text, unit.headings, unit.refs, count_tokens(text)))
            current = []
        if not current and count_tokens(prefix + sep + row + closing) > max_tokens:
            # One row longer than a chunk: its text is split like prose, each piece under the header.
            room = max_tokens - count_tokens(prefix + sep + closing) - 1
            for part in _split_text(row, max(room, 1)):
                text = prefix + sep + part + closing
                pieces.append(_Piece(text, unit.headings, unit.refs, count_tokens(text)))
            continue
        current.append(row)
    if current:
        text = prefix + sep + sep.join(current) + closing
        pieces.append(_Piece(text, unit.headings, unit.refs, count_tokens(text)))
    return pieces


def _fit_text(text: str, max_tokens: int) -> list[str]:
    return [text] if count_tokens(text) <= max_tokens else _split_text(text, max_tokens)


# --- 3. merge (hybrid) ----------------------------------------------------------------------------------------------

def _merge_peers(pieces: list[_Piece], max_tokens: int) -> list[_Piece]:
    merged: list[_Piece] = []
    for piece in pieces:
        last = merged[-1] if merged else None
        if last is not None and last.headings == piece.headings:
            text = _join(last.text, piece.text)
            tokens = count_tokens(text)
            if tokens <= max_tokens:
                refs = last.refs + [r for r in piece.refs if r not in last.refs]
                merged[-1] = _Piece(text, last.headings, refs, tokens)
                continue
        merged.append(piece)
    return merged
