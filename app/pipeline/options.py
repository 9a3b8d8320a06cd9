"""What a caller may ask of one conversion, validated once, shared by the CLI, the API and jobs."""

from __future__ import annotations

import re
from typing import Literal, get_args

from pydantic import BaseModel, Field

from app.errors import InvalidParameter
from app.settings import Mode

# re.ASCII: `\d` alone also matches "١" or "１", which int() happily reads; a selection is ASCII digits only.
_RANGE = re.compile(r"^\s*([0-9]+)\s*(?:-\s*([0-9]*)\s*)?$", re.ASCII)
# The same rule for a whole selection, as a JSON Schema pattern for the OpenAPI document (ECMA `\s` is wider than
# ASCII, hence the explicit class).
_SP = r"[ \t\n\r\f\v]*"
PAGES_PATTERN = rf"^{_SP}([0-9]+{_SP}(-{_SP}[0-9]*{_SP})?,{_SP})*[0-9]+{_SP}(-{_SP}[0-9]*{_SP})?$|^{_SP}$"
_INTEGER = re.compile(r"^[0-9]+$", re.ASCII)
MODES: tuple[str, ...] = get_args(Mode)
MIN_DPI = 36  # matches Settings.default_dpi's lower bound
ImagesMode = Literal["refer", "embed", "none"]
IMAGES_MODES: tuple[str, ...] = get_args(ImagesMode)


class ConvertOptions(BaseModel):
    mode: Mode = "auto"
    pages: str | None = Field(None, description='1-based page selection such as "1-3,7" or "5-"; None = all')
    dpi: int = 200
    images: ImagesMode = Field("refer", description="Figure/table crops: files linked from the result (refer), "
                               "data: URIs inside it (embed), or none")


def parse_mode(raw: str | None, default: str) -> str:
    """A mode the caller named, or `default` when they named none. A parameter sent empty (`mode=`) is a
    mistake, not a request for the default: it gets the same 422 as any other unknown mode."""
    if raw is None:
        return default
    mode = raw.strip()
    if mode not in MODES:
        raise InvalidParameter(f"mode: must be one of {', '.join(MODES)}, got {raw!r}")
    return mode


def parse_dpi(raw: str | None, default: int, max_dpi: int) -> int:
    """The render DPI asked for (ASCII digits, MIN_DPI..max_dpi), or `default` when none was sent."""
    if raw is None:
        return default
    if not _INTEGER.match(raw.strip()):
        raise InvalidParameter(f"dpi: must be an integer, got {raw!r}")
    dpi = int(raw.strip())
    if not MIN_DPI <= dpi <= max_dpi:
        raise InvalidParameter(f"dpi: must be between {MIN_DPI} and {max_dpi}, got {dpi}")
    return dpi


def parse_images(raw: str | None) -> str:
    """How figure and table crops are returned (`refer` when not named); an empty or unknown value is a 422."""
    if raw is None:
        return "refer"
    images = raw.strip()
    if images not in IMAGES_MODES:
        raise InvalidParameter(f"images: must be one of {', '.join(IMAGES_MODES)}, got {raw!r}")
    return images


def check_page_syntax(spec: str | None) -> None:
    """Refuse a selection that cannot be read, before the page count is known (the rest: `parse_page_ranges`)."""
    for part in (spec or "").split(",") if spec and spec.strip() else ():
        if not _RANGE.match(part):
            raise InvalidParameter(f"pages: cannot read {part.strip()!r}; use a form like '1-3,7' or '5-'")


def parse_page_ranges(spec: str | None, page_count: int) -> list[int]:
    """Turn `"1-3,7,10-"` into sorted 0-based page indices, rejecting anything outside the document.

    ASCII digits only, and each page at most once: `"1,1"` or `"1-3,2"` is refused rather than silently
    merged, since a caller who names a page twice has most likely mistyped the selection."""
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
        pages = range(start - 1, end)
        twice = selected.intersection(pages)
        if twice:
            raise InvalidParameter(f"pages: page {min(twice) + 1} is selected more than once")
        selected.update(pages)
    return sorted(selected)
