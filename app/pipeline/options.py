"""What a caller may ask of one conversion, validated once, shared by the CLI, the API and jobs."""

from __future__ import annotations

import re

from typing import Literal

from pydantic import BaseModel, Field

from app.errors import InvalidParameter
from app.settings import Mode

ImagesMode = Literal["refer", "embed", "none"]

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d*)\s*)?$")


class ConvertOptions(BaseModel):
    mode: Mode = "auto"
    pages: str | None = Field(None, description='1-based page selection such as "1-3,7" or "5-"; None = all')
    dpi: int = 200
    images: ImagesMode = Field("refer", description="Figure/table crops: files linked from the result (refer), "
                               "data: URIs inside it (embed), or none")


def parse_page_ranges(spec: str | None, page_count: int) -> list[int]:
    """Turn `"1-3,7,10-"` into sorted 0-based page indices, rejecting anything outside the document."""
    if spec is None or not spec.strip():
        return list(range(page_count))
    selected: set[int] = set()
    for part in spec.split(","):
        match = _RANGE.match(part)
        if not match:
            raise InvalidParameter(f"pages: cannot read {part.strip()!r}; use a form like '1-3,7' or '5-'")
        start = int(match.group(1))
        end = start if match.group(2) is None else (int(match.group(2)) if match.group(2) else page_count)
        if start < 1 or end < start:
            raise InvalidParameter(f"pages: {part.strip()!r} is not an increasing 1-based range")
        if end > page_count:
            raise InvalidParameter(f"pages: {part.strip()!r} goes past the last page ({page_count})")
        selected.update(range(start - 1, end))
    return sorted(selected)
