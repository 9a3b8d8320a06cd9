"""Typed views of the service's JSON: results, pages, blocks, chunks, jobs and errors. Each keeps the raw JSON
in `raw`, so fields the server adds later are not lost."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BBox = tuple[float, float, float, float]


class ApiError(Exception):
    """An error answer of the service: its HTTP status and the body's `{"error": {type, message, request_id}}`."""

    def __init__(self, status: int, type: str, message: str, request_id: str | None = None,  # noqa: A002
                 retry_after_s: float | None = None) -> None:
        super().__init__(f"{status} {type}: {message}")
        self.status = status
        self.type = type
        self.message = message
        self.request_id = request_id
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Block:
    type: str
    bbox: BBox
    text: str
    order: int
    html: str | None = None
    level: int | None = None
    image: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Block:
        return cls(type=data["type"], bbox=tuple(data["bbox"]), text=data.get("text", ""),  # type: ignore[arg-type]
                   order=data.get("order", 0), html=data.get("html"), level=data.get("level"),
                   image=data.get("image"))


@dataclass(frozen=True)
class Page:
    page: int
    width: float
    height: float
    source: str
    markdown: str
    blocks: list[Block]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Page:
        return cls(page=data["page"], width=data["width"], height=data["height"], source=data["source"],
                   markdown=data["markdown"], blocks=[Block.from_json(b) for b in data.get("blocks", [])])


@dataclass(frozen=True)
class BlockRef:
    page: int
    index: int
    type: str
    bbox: BBox


@dataclass(frozen=True)
class Chunk:
    text: str
    headings: list[str]
    pages: list[int]
    blocks: list[BlockRef]
    tokens: int


@dataclass(frozen=True)
class ChunkSet:
    chunking: str
    max_tokens: int
    tokenizer: str
    chunks: list[Chunk]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChunkSet:
        chunks = [Chunk(text=c["text"], headings=list(c["headings"]), pages=list(c["pages"]),
                        blocks=[BlockRef(page=b["page"], index=b["index"], type=b["type"],
                                         bbox=tuple(b["bbox"])) for b in c["blocks"]],  # type: ignore[misc]
                        tokens=c["tokens"]) for c in data["chunks"]]
        return cls(chunking=data["chunking"], max_tokens=data["max_tokens"], tokenizer=data["tokenizer"],
                   chunks=chunks, raw=data)


@dataclass(frozen=True)
class ConversionResult:
    markdown: str
    page_count: int
    pages: list[Page]
    request_id: str | None = None
    job_id: str | None = None
    chunks: ChunkSet | None = None
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any], *, job_id: str | None = None) -> ConversionResult:
        chunks = ChunkSet.from_json(data["chunks"]) if isinstance(data.get("chunks"), dict) else None
        return cls(markdown=data["markdown"], page_count=data["page_count"],
                   pages=[Page.from_json(p) for p in data["pages"]], request_id=data.get("request_id"),
                   job_id=job_id, chunks=chunks, raw=data)


FINISHED = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class Job:
    job_id: str
    status: str
    pages_done: int = 0
    pages_total: int | None = None
    error: dict[str, Any] | None = None
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        return cls(job_id=data["job_id"], status=data["status"], pages_done=data.get("pages_done") or 0,
                   pages_total=data.get("pages_total"), error=data.get("error"), raw=data)

    def with_progress(self, pages_done: int, pages_total: int | None) -> Job:
        """The job as a `page` event moves it on (the event carries only the numbers)."""
        return Job(job_id=self.job_id, status="running", pages_done=pages_done,
                   pages_total=pages_total if pages_total is not None else self.pages_total, error=None, raw=self.raw)
