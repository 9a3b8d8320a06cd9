"""What a caller may ask of one conversion: one model, validated once, shared by the API, jobs, MCP, the CLI and
batch.

`ConvertOptions` holds every rule about an option's value. Its fields check what is true of any value (the mode
and image names, the page grammar, the DPI floor), so a `ConvertOptions(...)` built in code is valid too. Given
an `OptionContext` (`ConvertOptions.model_validate(values, context=...)`, or `resolve_options`), it also applies
what depends on the service: a value not sent (None) takes the service default (DEFAULT_MODE, DEFAULT_DPI or
VL_DPI in `vl` mode, OCR_LANGS), the DPI ceiling (MAX_DPI), the installed languages, `vl` needing the sidecar and
an image upload refusing `text` mode. A bad value is an `OptionError` (422 over HTTP, exit status 2 on the
command line) naming the option. What needs the document itself (the selection against its page count, the page
limit) is read at intake by `parse_page_ranges`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, Field, ValidationInfo, model_validator

from app.errors import InvalidParameter
from app.settings import MIN_DPI, Mode, Settings

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
# Longer than any '+'-joined list of installed codes; which codes are valid is checked against the installed packs.
MAX_LANG_CHARS = 64
LANG_HELP = ("Languages OCR reads: ISO 639-1 codes joined by '+' (ru, ru+en, uk, de, zh) or auto (default "
             "OCR_LANGS; each page's script decides). One not installed is a 422 listing those that are")
VL_NEEDS_SIDECAR = "vl mode needs the VLM sidecar: set PROFILE=gpu or USE_VLM_API=true"


class OptionError(InvalidParameter):
    """A bad option value. `option` names it (`mode`, `pages`, `dpi`, `images`, `lang`) so the CLI can say `--dpi` and the
    API `dpi`; the message is `"<option>: <problem>"`."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option}: {problem}")
        self.option = option
        self.problem = problem

    def __reduce__(self):  # pickles with both fields (AppError's reduce would pass the message as `option`)
        return (OptionError, (self.option, self.problem))


@dataclass(frozen=True)
class OptionContext:
    """What validation knows beyond the values: the service's settings, whether a VLM sidecar is configured
    (None: as the settings say), and the upload's image format (None for a PDF, or when not known yet)."""

    settings: Settings
    vl_available: bool | None = None
    image_format: str | None = None


# The field checks raise OptionError itself (pydantic lets other exceptions through): every entry point gets the
# one message, `"<option>: <problem>"`, whether it validates with a context or builds the model in code.

def _choice(option: str, choices: tuple[str, ...]):
    def check(raw: object) -> str:
        value = raw.strip() if isinstance(raw, str) else raw
        if value not in choices:
            raise OptionError(option, f"must be one of {', '.join(choices)}, got {raw!r}")
        return value  # type: ignore[return-value]
    return check


def _dpi(raw: object) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        dpi = raw
    elif isinstance(raw, str) and _INTEGER.match(raw.strip()):
        dpi = int(raw.strip())
    else:
        raise OptionError("dpi", f"must be an integer, got {raw!r}")
    if dpi < MIN_DPI:
        raise OptionError("dpi", f"must be at least {MIN_DPI}, got {dpi}")
    return dpi


def _pages(raw: object) -> str | None:
    """The selection, trimmed (empty: every page), once its grammar is right; the rest needs the page count."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise OptionError("pages", f"must be text such as '1-3,7', got {raw!r}")
    _ranges(raw)
    return raw.strip() or None


def _lang(raw: object) -> str:
    if not isinstance(raw, str) or len(raw) > MAX_LANG_CHARS:
        raise OptionError("lang", f"must be language codes joined by '+' (at most {MAX_LANG_CHARS} characters)")
    return raw


class ConvertOptions(BaseModel):
    mode: Annotated[Mode, BeforeValidator(_choice("mode", MODES))] = Field(
        "auto", description="auto (text layer where usable, else OCR) | text | ocr | vl (needs the VLM sidecar); "
        "default DEFAULT_MODE")
    pages: Annotated[str | None, BeforeValidator(_pages)] = Field(
        None, description='1-based page selection such as "1-3,7" or "5-"; empty or absent: every page',
        json_schema_extra={"pattern": PAGES_PATTERN})
    dpi: Annotated[int, BeforeValidator(_dpi)] = Field(
        200, description="Render DPI for OCR; default DEFAULT_DPI (VL_DPI in vl mode), at most MAX_DPI",
        json_schema_extra={"minimum": MIN_DPI})
    images: Annotated[ImagesMode, BeforeValidator(_choice("images", IMAGES_MODES))] = Field(
        "refer", description="Figure/table crops: files linked from the result (refer), data: URIs inside it "
        "(embed), or none")
    lang: Annotated[str, BeforeValidator(_lang)] = Field(
        "auto", description=LANG_HELP, json_schema_extra={"maxLength": MAX_LANG_CHARS})

    @model_validator(mode="before")
    @classmethod
    def _service_defaults(cls, data: Any, info: ValidationInfo) -> Any:
        """With a context, a value not sent (None) takes the service's default; `dpi`'s depends on the mode."""
        context = info.context
        if not isinstance(context, OptionContext) or not isinstance(data, Mapping):
            return data
        settings = context.settings
        sent = {name: value for name, value in data.items() if value is not None}
        mode = _choice("mode", MODES)(sent.get("mode", settings.default_mode))
        return {**sent, "mode": mode, "dpi": sent.get("dpi", settings.dpi_for(mode)),  # type: ignore[arg-type]
                "lang": sent.get("lang", settings.ocr_langs)}

    @model_validator(mode="after")
    def _within_the_service(self, info: ValidationInfo) -> ConvertOptions:
        """With a context: the DPI ceiling, the installed languages, the sidecar for `vl`, an image's modes."""
        context = info.context
        if not isinstance(context, OptionContext):
            return self
        if self.dpi > context.settings.max_dpi:
            raise OptionError("dpi", f"must be between {MIN_DPI} and {context.settings.max_dpi}, got {self.dpi}")
        self.lang = _installed_languages(self.lang)
        vl_available = context.settings.vlm_enabled if context.vl_available is None else context.vl_available
        require_vl_available(self, vl_available)
        check_image_mode(context.image_format, self.mode)
        return self


def _installed_languages(raw: str) -> str:
    """`raw` normalised (`RU + en` -> `ru+en`); a language that is not installed is refused with the list of those
    that are."""
    from app.pipeline.recognize.languages import UnknownLanguage, parse_languages

    try:
        return str(parse_languages(raw))
    except UnknownLanguage as exc:
        raise OptionError("lang", str(exc)) from None


def resolve_options(settings: Settings, *, vl_available: bool | None = None, image_format: str | None = None,
                    **values: str | int | None) -> ConvertOptions:
    """`ConvertOptions` from raw values (form fields, query parameters, command-line flags; None = not sent),
    validated with the service's context."""
    context = OptionContext(settings, vl_available=vl_available, image_format=image_format)
    return ConvertOptions.model_validate(values, context=context)


def require_vl_available(options: ConvertOptions, vlm_enabled: bool) -> None:
    """`vl` mode without a configured sidecar is the caller's mistake (422), caught before any work starts."""
    if options.mode == "vl" and not vlm_enabled:
        raise OptionError("mode", VL_NEEDS_SIDECAR)


def check_image_mode(image_format: str | None, mode: str) -> None:
    """An image has no text layer: `text` mode (the text layer only) would return empty pages, so it is refused."""
    if image_format is not None and mode == "text":
        raise InvalidParameter(f"mode=text reads a PDF's text layer and a {image_format} image has none; "
                               "use auto, ocr or vl")


def _ranges(spec: str | None) -> list[tuple[int, int | None]]:
    """The page grammar, in one place: `"1-3,7,10-"` -> [(1, 3), (7, 7), (10, None)] (None: to the last page).
    ASCII digits only; pages are numbered from 1. Empty: no ranges (every page)."""
    ranges: list[tuple[int, int | None]] = []
    for part in spec.split(",") if spec and spec.strip() else ():
        match = _RANGE.match(part)
        if not match:
            raise OptionError("pages", f"cannot read {part.strip()!r}; use a form like '1-3,7' or '5-'")
        start = int(match.group(1))
        end = start if match.group(2) is None else (int(match.group(2)) if match.group(2) else None)
        if start == 0 or end == 0:  # as PAGES_PATTERN says
            raise OptionError("pages", f"{part.strip()!r}: pages are numbered from 1")
        if end is not None and end < start:
            raise OptionError("pages", f"{part.strip()!r} is not an increasing 1-based range")
        ranges.append((start, end))
    return ranges


def parse_page_ranges(spec: str | None, page_count: int) -> list[int]:
    """Turn `"1-3,7,10-"` into sorted 0-based page indices, rejecting anything outside the document.

    Each page at most once: `"1,1"` or `"1-3,2"` is refused rather than silently merged, since a caller who names
    a page twice has most likely mistyped the selection."""
    if spec is None or not spec.strip():
        return list(range(page_count))
    selected: set[int] = set()
    for (start, end), part in zip(_ranges(spec), spec.split(","), strict=True):
        end = page_count if end is None else end
        if end > page_count:
            raise OptionError("pages", f"{part.strip()!r} goes past the last page ({page_count})")
        pages = range(start - 1, end)
        twice = selected.intersection(pages)
        if twice:
            raise OptionError("pages", f"page {min(twice) + 1} is selected more than once")
        selected.update(pages)
    return sorted(selected)
