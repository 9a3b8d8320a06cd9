"""What a caller may ask of one conversion, validated once, shared by the API, jobs, the CLI and batch.

Every entry point hands its raw values (form fields, query parameters, command-line flags) to `resolve_options`
and gets `ConvertOptions` or an `OptionError` (422 over HTTP, exit status 2 on the command line). The `vl`
mode's need for a sidecar is checked by `require_vl_available`; the page selection is read by
`parse_page_ranges` once the page count is known (intake).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal, get_args

from pydantic import BaseModel, Field

from app.errors import InvalidParameter
from app.settings import Mode, Settings

# re.ASCII: `\d` alone also matches "١" or "１", which int() happily reads; a selection is ASCII digits only.
_RANGE = re.compile(r"^\s*([0-9]+)\s*(?:-\s*([0-9]*)\s*)?$", re.ASCII)
# The same rule for a whole selection, as a JSON Schema pattern for the OpenAPI document (ECMA `\s` is wider than
# ASCII, hence the explicit class).
_SP = r"[ \t\n\r\f\v]*"
# Page numbers are 1-based: a number that is all zeros ("0", "00") is refused by the server, so not in the pattern.
_PAGE = "0*[1-9][0-9]*"
_PART = rf"{_PAGE}{_SP}(-{_SP}({_PAGE})?{_SP})?"
PAGES_PATTERN = rf"^{_SP}({_PART},{_SP})*{_PART}$|^{_SP}$"
_INTEGER = re.compile(r"^[0-9]+$", re.ASCII)
ImagesMode = Literal["refer", "embed", "none"]
IMAGES_MODES: tuple[str, ...] = get_args(ImagesMode)
MODES: tuple[str, ...] = get_args(Mode)
# Below this a page of body text is a few pixels high: nothing can read it. Settings.default_dpi has the same floor.
MIN_DPI = 36
# The shape of a `lang` value (whether each code is installed is checked per request).
LANG_HELP = ("Languages OCR reads: ISO 639-1 codes joined by '+' (ru, ru+en, uk, de, zh) or auto (default "
             "OCR_LANGS; each page's script decides). One not installed is a 422 listing those that are")
VL_NEEDS_SIDECAR = "vl mode needs the VLM sidecar: set PROFILE=gpu or USE_VLM_API=true"


class ConvertOptions(BaseModel):
    mode: Mode = "auto"
    pages: str | None = Field(None, description='1-based page selection such as "1-3,7" or "5-"; None = all')
    dpi: int = 200
    images: ImagesMode = Field("refer", description="Figure/table crops: files linked from the result (refer), "
                               "data: URIs inside it (embed), or none")
    lang: str = Field("auto", description="Languages OCR reads: ISO 639-1 codes joined by '+' (ru+en), or auto "
                      "(each page's script decides)")


class OptionError(InvalidParameter):
    """A bad option value. `option` names it (`mode`, `pages`, `dpi`, `images`, `lang`) so the CLI can say `--dpi` and the
    API `dpi`; the message is `"<option>: <problem>"`."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option}: {problem}")
        self.option = option
        self.problem = problem

    def __reduce__(self):  # pickles with both fields (AppError's reduce would pass the message as `option`)
        return (OptionError, (self.option, self.problem))


# A value that was not sent (None) takes the default; a value sent empty (`mode=`) is a mistake, not a request for
# the default, and gets the same 422 as any other bad value.

def parse_mode(raw: str | None, default: str) -> str:
    """The mode the caller named, or `default` when none was sent."""
    if raw is None:
        return default
    mode = raw.strip()
    if mode not in MODES:
        raise OptionError("mode", f"must be one of {', '.join(MODES)}, got {raw!r}")
    return mode


def parse_dpi(raw: str | int | None, default: int, max_dpi: int) -> int:
    """The render DPI asked for (ASCII digits, MIN_DPI..max_dpi), or `default` when none was sent."""
    if raw is None:
        return default
    if isinstance(raw, int):
        dpi = raw
    elif _INTEGER.match(raw.strip()):
        dpi = int(raw.strip())
    else:
        raise OptionError("dpi", f"must be an integer, got {raw!r}")
    if not MIN_DPI <= dpi <= max_dpi:
        raise OptionError("dpi", f"must be between {MIN_DPI} and {max_dpi}, got {dpi}")
    return dpi


def parse_images(raw: str | None) -> str:
    """How figure and table crops are returned (`refer` when not named)."""
    if raw is None:
        return "refer"
    images = raw.strip()
    if images not in IMAGES_MODES:
        raise OptionError("images", f"must be one of {', '.join(IMAGES_MODES)}, got {raw!r}")
    return images


def parse_lang(raw: str | None, default: str) -> str:
    """The languages asked for, normalised (`RU + en` -> `ru+en`), or `default` (OCR_LANGS) when none was sent; a
    language that is not installed is refused with the list of those that are."""
    from app.pipeline.recognize.languages import UnknownLanguage, parse_languages

    try:
        return str(parse_languages(default if raw is None else raw))
    except UnknownLanguage as exc:
        raise OptionError("lang", str(exc)) from None


def check_page_syntax(spec: str | None) -> None:
    """Refuse a selection that cannot be read, before the page count is known (the rest: `parse_page_ranges`).
    An empty selection means every page."""
    for part in spec.split(",") if spec and spec.strip() else ():
        match = _RANGE.match(part)
        if not match:
            raise OptionError("pages", f"cannot read {part.strip()!r}; use a form like '1-3,7' or '5-'")
        if int(match.group(1)) == 0 or (match.group(2) and int(match.group(2)) == 0):  # as PAGES_PATTERN says
            raise OptionError("pages", f"{part.strip()!r}: pages are numbered from 1")


def resolve_options(
    settings: Settings, *, mode: str | None = None, pages: str | None = None, dpi: str | int | None = None,
    images: str | None = None, lang: str | None = None,
) -> ConvertOptions:
    """Validate raw option values; one not sent (None) takes the service default (DEFAULT_MODE, DEFAULT_DPI or
    VL_DPI in `vl` mode, all pages, `refer`, OCR_LANGS)."""
    check_page_syntax(pages)
    chosen_mode = parse_mode(mode, settings.default_mode)
    return ConvertOptions(
        mode=chosen_mode,  # type: ignore[arg-type]
        pages=pages.strip() or None if pages is not None else None,
        dpi=parse_dpi(dpi, settings.dpi_for(chosen_mode), settings.max_dpi),
        images=parse_images(images),  # type: ignore[arg-type]
        lang=parse_lang(lang, settings.ocr_langs),
    )


def require_vl_available(options: ConvertOptions, vlm_enabled: bool) -> None:
    """`vl` mode without a configured sidecar is the caller's mistake (422), caught before any work starts."""
    if options.mode == "vl" and not vlm_enabled:
        raise OptionError("mode", VL_NEEDS_SIDECAR)


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
            raise OptionError("pages", f"cannot read {part.strip()!r}; use a form like '1-3,7' or '5-'")
        start = int(match.group(1))
        end = start if match.group(2) is None else (int(match.group(2)) if match.group(2) else page_count)
        if start < 1 or end < start:
            raise OptionError("pages", f"{part.strip()!r} is not an increasing 1-based range")
        if end > page_count:
            raise OptionError("pages", f"{part.strip()!r} goes past the last page ({page_count})")
        pages = range(start - 1, end)
        twice = selected.intersection(pages)
        if twice:
            raise OptionError("pages", f"page {min(twice) + 1} is selected more than once")
        selected.update(pages)
    return sorted(selected)


def options_from_fields(settings: Settings, *sources: Mapping[str, str | None]) -> ConvertOptions:
    """`resolve_options` over named raw values (form fields, then query parameters): for each option the first
    source that sent it wins. Every value sent is checked, also one another source overrides: both are documented
    with the same bounds, and a bad one is a mistake worth a 422 either way."""
    chosen: dict[str, str | None] = {}
    for source in sources:
        for name in ("mode", "pages", "dpi", "images", "lang"):
            value = source.get(name)
            if value is None:
                continue
            resolve_options(settings, **{name: value})  # validates it alone
            chosen.setdefault(name, value)
    return resolve_options(settings, **chosen)
