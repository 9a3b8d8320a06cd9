"""The document model every caller gets: the CLI writes it, the API returns it, jobs store it page by page.

Coordinates are PDF points with the origin at the page's top-left corner (y grows downwards), so a bbox drawn
on the rendered image is `bbox * dpi / 72`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

BlockType = Literal[
    "title",  # document or section heading
    "text",
    "list",
    "table",
    "figure",
    "caption",  # figure or table caption
    "header",  # running header: kept in JSON, left out of the body Markdown
    "footer",  # running footer, footnote area
    "page_number",
    "formula",
    "reference",
    "chart",
]
PageSource = Literal["text", "ocr", "vl"]
BBox = tuple[float, float, float, float]

# Blocks that belong to the page furniture, not the body: kept in JSON, left out of Markdown.
FURNITURE: frozenset[str] = frozenset({"header", "footer", "page_number"})


class Block(BaseModel):
    type: BlockType
    bbox: BBox = Field(description="[x0, y0, x1, y1] in PDF points, top-left origin")
    text: str = ""
    html: str | None = Field(None, description="Tables: the table as HTML")
    score: float | None = Field(None, description="Layout confidence, when a model produced the block")
    order: int = Field(0, description="Position in reading order within the page")
    level: int | None = Field(None, description="Titles: heading level, 1 is the largest")
    image: str | None = Field(
        None, description="Figures, charts, tables, formulas: the crop, as a path relative to the result "
        "(`images/p3-fig2.png`) or, with images=embed, a data: URI"
    )
    continued: bool | None = Field(
        None, description="Tables: true when this table continues the one that ends the previous page"
    )


class PageResult(BaseModel):
    page: int = Field(description="1-based page number in the file")
    width: float = Field(description="Page width in PDF points")
    height: float = Field(description="Page height in PDF points")
    source: PageSource
    rotation: int = Field(
        0, description="Degrees clockwise the page's content was turned (0, 90, 180, 270), found by the orientation "
        "classifier on pages read from pixels; the page was read turned back upright, and boxes stay in the page's "
        "own coordinates"
    )
    markdown: str
    blocks: list[Block]
    timings: dict[str, float] = Field(default_factory=dict, description="Seconds per stage on this page")


class DocumentResult(BaseModel):
    markdown: str
    page_count: int = Field(description="Pages in the file, selected or not")
    pages: list[PageResult]
    timings: dict[str, float] = Field(default_factory=dict, description="Seconds per stage, summed over pages")
