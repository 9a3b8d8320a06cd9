"""What a caller may ask of one conversion, validated once, shared by the API, jobs, the CLI and batch.

Every entry point hands its raw values (form fields, query parameters, command-line flags) to `resolve_options`
and gets `ConvertOptions` or an `OptionError` (422 over HTTP, exit status 2 on the command line). The `vl`
mode's need for a sidecar is checked by `require_vl_available`; the page selection is read by
`parse_page_ranges` once the page count is known (intake).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import get_args

from pydantic import BaseModel, Field

from app.errors import InvalidParameter
from app.settings import Mode, Settings

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d*)\s*)?$")

MODES: tuple[str, ...] = get_args(Mode)
# Below this a page of body text is a few pixels high: nothing can read it. Settings.default_dpi has the same floor.
MIN_DPI = 36
VL_NEEDS_SIDECAR = "vl mode needs the VLM sidecar: set PROFILE=gpu or USE_VLM_API=true"


class ConvertOptions(BaseModel):
    mode: Mode = "auto"
    pages: str | None = Field(None, description='1-based page selection such as "1-3,7" or "5-"; None = all')
    dpi: int = 200


class OptionError(InvalidParameter):
    """A bad option value. `option` names it (`mode`, `pages`, `dpi`) so the CLI can say `--dpi` and the API
    `dpi`; the message is `"<option>: <problem>"`."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option}: {problem}")
        self.option = option
        self.problem = problem

    def __reduce__(self):  # pickles with both fields (AppError's reduce would pass the message as `option`)
        return (OptionError, (self.option, self.problem))


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def resolve_options(
    settings: Settings, *, mode: str | None = None, pages: str | None = None, dpi: str | int | None = None
) -> ConvertOptions:
    """Validate raw option values; a missing or blank value takes the service default (DEFAULT_MODE,
    DEFAULT_DPI, all pages). The dpi must lie in [MIN_DPI, MAX_DPI]."""
    chosen_mode = settings.default_mode if _blank(mode) else str(mode).strip()
    if chosen_mode not in MODES:
        raise OptionError("mode", f"must be one of {', '.join(MODES)}, got {chosen_mode!r}")
    if _blank(dpi):
        chosen_dpi = settings.default_dpi
    else:
        try:
            chosen_dpi = int(str(dpi).strip()) if not isinstance(dpi, int) else dpi
        except ValueError:
            raise OptionError("dpi", f"must be an integer, got {dpi!r}") from None
        if not MIN_DPI <= chosen_dpi <= settings.max_dpi:
            raise OptionError("dpi", f"must be between {MIN_DPI} and {settings.max_dpi}, got {chosen_dpi}")
    chosen_pages = None if _blank(pages) else str(pages).strip()
    return ConvertOptions(mode=chosen_mode, pages=chosen_pages, dpi=chosen_dpi)  # type: ignore[arg-type]


def require_vl_available(options: ConvertOptions, vlm_enabled: bool) -> None:
    """`vl` mode without a configured sidecar is the caller's mistake (422), caught before any work starts."""
    if options.mode == "vl" and not vlm_enabled:
        raise OptionError("mode", VL_NEEDS_SIDECAR)


def parse_page_ranges(spec: str | None, page_count: int) -> list[int]:
    """Turn `"1-3,7,10-"` into sorted 0-based page indices, rejecting anything outside the document."""
    if spec is None or not spec.strip():
        return list(range(page_count))
    selected: set[int] = set()
    for part in spec.split(","):
        match = _RANGE.match(part)
        if not match:
            raise OptionError("pages", f"cannot read {part.strip()!r}; use a form like '1-3,7' or '5-'")
        start = int(match.group(1))
        end = start if match.group(2) is None else (int(match.group(2)) if match.group(2) else page_count)
        if start < 1 or end < start:
            raise OptionError("pages", f"{part.strip()!r} is not an increasing 1-based range")
        if end > page_count:
            raise OptionError("pages", f"{part.strip()!r} goes past the last page ({page_count})")
        selected.update(range(start - 1, end))
    return sorted(selected)


def options_from_fields(settings: Settings, *sources: Mapping[str, str | None]) -> ConvertOptions:
    """`resolve_options` over named raw values (form fields, query parameters): for each option the first
    source with a non-blank value wins."""

    def pick(name: str) -> str | None:
        for source in sources:
            value = source.get(name)
            if not _blank(value):
                return value
        return None

    return resolve_options(settings, mode=pick("mode"), pages=pick("pages"), dpi=pick("dpi"))
