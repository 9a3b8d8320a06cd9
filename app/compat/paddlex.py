"""PaddleX's serving contract for the PaddleOCR-VL pipeline (`POST /layout-parsing`, `POST /restructure-pages`),
declared here from its documentation and schemas (paddlex/inference/serving/schemas/paddleocr_vl.py,
schemas/shared/ocr.py, infra/models.py): the request models, which of their fields our pipeline honours, the
mapping onto `ConvertOptions`, `dataInfo`, and the `{logId, errorCode, errorMsg, result}` envelope.

Every request field is accepted. One our pipeline has no knob for is not refused (a PaddleX client sends them
by habit) but named in the answer, `prunedResult.model_settings.ignored_request_fields`, so nobody mistakes it
for applied. The answer's pages are built by app/compat/paddlex_pages.py.
"""

from __future__ import annotations

import base64
import binascii
import json
import warnings
from typing import Any, Literal

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.errors import InvalidParameter
from app.runtime.image_input import ACCEPTED
from app.settings import Settings

FileType = Literal[0, 1]  # 0 = PDF, 1 = image
PDF, IMAGE = 0, 1

# The labels a PaddleOCR-VL answer leaves out of Markdown unless the request names others (the pipeline's default).
DEFAULT_MARKDOWN_IGNORE_LABELS = ("number", "footnote", "header", "header_image", "footer", "footer_image",
                                  "aside_text")
PROMPT_LABELS = ("ocr", "formula", "table", "chart", "seal", "spotting")
MERGE_BBOXES_MODES = ("large", "small", "union")
OUTPUT_IMAGE_MAX_PX = 2000  # PaddleX's default max_output_img_size: visualisations are shrunk to fit


class LayoutParsingRequest(BaseModel):
    """The body of `POST /layout-parsing`. Unknown fields are ignored, as PaddleX's own model does; JSON types
    are strict (`0` is not `false`), as the OpenAPI document says."""

    model_config = ConfigDict(strict=True)

    file: str = Field(description="The file as base64, or an http(s) URL on a host in FILE_URL_ALLOWED_HOSTS")
    fileType: FileType | None = Field(None, description="0 = PDF, 1 = image; guessed from the bytes when absent")
    useDocOrientationClassify: bool | None = None
    useDocUnwarping: bool | None = None
    useLayoutDetection: bool | None = None
    useChartRecognition: bool | None = None
    useSealRecognition: bool | None = None
    useOcrForImageBlock: bool | None = None
    layoutThreshold: float | dict[str, float] | None = None
    layoutNms: bool | None = None
    layoutUnclipRatio: float | list[float] | dict[str, Any] | None = None
    layoutMergeBboxesMode: str | dict[str, str] | None = None
    layoutShapeMode: Literal["rect", "quad", "poly", "auto"] = "auto"
    promptLabel: str | None = None
    formatBlockContent: bool | None = None
    repetitionPenalty: float | None = Field(None, gt=0)
    temperature: float | None = Field(None, ge=0)
    topP: float | None = Field(None, gt=0, le=1)
    minPixels: int | None = Field(None, gt=0)
    maxPixels: int | None = Field(None, gt=0)
    maxNewTokens: int | None = Field(None, gt=0)
    mergeLayoutBlocks: bool | None = None
    markdownIgnoreLabels: list[str] | None = None
    vlmExtraArgs: dict[str, Any] | None = None
    prettifyMarkdown: bool = True
    showFormulaNumber: bool = False
    returnMarkdownImages: bool = True
    restructurePages: bool = False
    mergeTables: bool = True
    relevelTitles: bool = True
    visualize: bool | None = None
    outputFormats: list[str] | None = None
    logId: str | None = None

    @model_validator(mode="after")
    def _check_ranges(self) -> LayoutParsingRequest:
        if self.promptLabel is not None and self.promptLabel not in PROMPT_LABELS:
            raise ValueError(f"`promptLabel` must be one of: {', '.join(PROMPT_LABELS)}")
        thresholds = (self.layoutThreshold.values() if isinstance(self.layoutThreshold, dict)
                      else [self.layoutThreshold] if self.layoutThreshold is not None else [])
        if any(not 0 <= t <= 1 for t in thresholds):
            raise ValueError("`layoutThreshold` must be between 0 and 1 inclusive")
        modes = (self.layoutMergeBboxesMode.values() if isinstance(self.layoutMergeBboxesMode, dict)
                 else [self.layoutMergeBboxesMode] if self.layoutMergeBboxesMode is not None else [])
        if any(m not in MERGE_BBOXES_MODES for m in modes):
            raise ValueError(f"`layoutMergeBboxesMode` must be one of: {', '.join(MERGE_BBOXES_MODES)}")
        if self.minPixels is not None and self.maxPixels is not None and self.minPixels > self.maxPixels:
            raise ValueError("`minPixels` cannot be greater than `maxPixels`")
        return self


class PrunedBlock(BaseModel):
    """One entry of `parsing_res_list` as far as restructuring reads it; other keys are kept as they are."""

    model_config = ConfigDict(extra="allow", strict=True)

    block_label: str = "text"
    block_content: str | None = ""
    block_bbox: list[float] | None = None


class LayoutBoxes(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    boxes: list[dict[str, Any]] = []


class PrunedSettings(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    markdown_ignore_labels: list[str] = list(DEFAULT_MARKDOWN_IGNORE_LABELS)


class PrunedResult(BaseModel):
    """A page's `prunedResult` as /restructure-pages reads it (one /layout-parsing answered, ours or PaddleX's)."""

    model_config = ConfigDict(extra="allow", strict=True)

    parsing_res_list: list[PrunedBlock] = []
    model_settings: PrunedSettings = PrunedSettings()
    layout_det_res: LayoutBoxes | None = None


class RestructurePage(BaseModel):
    model_config = ConfigDict(strict=True)

    prunedResult: PrunedResult
    markdownImages: dict[str, str] | None = None


class RestructurePagesRequest(BaseModel):
    """The body of `POST /restructure-pages`: pages a `/layout-parsing` answered, joined into one document."""

    model_config = ConfigDict(strict=True)

    pages: list[RestructurePage]
    mergeTables: bool = True
    relevelTitles: bool = True
    concatenatePages: bool = False
    prettifyMarkdown: bool = True
    showFormulaNumber: bool = False
    returnMarkdownImages: bool = True
    outputFormats: list[str] | None = None
    logId: str | None = None


# --- which fields we honour ------------------------------------------------------------------------------------
# Sent with any value, these change nothing here: there is no such stage (orientation, unwarping, seals, NMS,
# box shapes), or the layout model's post-processing is fixed at load time, or an export format we do not write.
_NO_KNOB = ("useDocOrientationClassify", "useDocUnwarping", "useChartRecognition", "useSealRecognition",
            "useOcrForImageBlock", "layoutThreshold", "layoutNms", "layoutUnclipRatio", "layoutMergeBboxesMode",
            "promptLabel", "mergeLayoutBlocks", "outputFormats")
# The VLM's sampling: honoured in `vl` mode (the sidecar), not applicable without one.
VLM_SAMPLING = {"temperature": "temperature", "topP": "top_p", "repetitionPenalty": "repetition_penalty",
                "maxNewTokens": "max_completion_tokens"}
_VLM_ONLY_NO_KNOB = ("minPixels", "maxPixels", "vlmExtraArgs")


def ignored_fields(request: LayoutParsingRequest, *, vl: bool) -> list[str]:
    """The fields the caller sent that this answer does not apply, in the request model's order."""
    sent = request.model_fields_set
    ignored = {name for name in _NO_KNOB + _VLM_ONLY_NO_KNOB if name in sent and getattr(request, name) is not None}
    if not vl:
        ignored |= {name for name in VLM_SAMPLING if name in sent and getattr(request, name) is not None}
    if request.useLayoutDetection is False:
        ignored.add("useLayoutDetection")  # every mode here detects layout first
    if request.layoutShapeMode != "auto":
        ignored.add("layoutShapeMode")  # boxes are always rectangles
    if request.showFormulaNumber:
        ignored.add("showFormulaNumber")  # formula numbers are not told apart from their formulas here
    return [name for name in LayoutParsingRequest.model_fields if name in ignored]


def sampling_overrides(request: LayoutParsingRequest) -> dict[str, Any]:
    """The sidecar's chat-request fields this request sets (vl mode)."""
    return {key: getattr(request, name) for name, key in VLM_SAMPLING.items() if getattr(request, name) is not None}


def convert_fields(settings: Settings) -> dict[str, str]:
    """Our options for a PaddleOCR-VL request: the VLM (`vl`) wherever the sidecar is configured, as PaddleOCR-VL
    itself reads every region with it; DEFAULT_MODE otherwise (the CPU profile's models). Every page, and crops
    as files for `markdown.images`."""
    mode = "vl" if settings.vlm_enabled else settings.default_mode
    return {"mode": mode, "images": "refer"}


# --- the request body ------------------------------------------------------------------------------------------
def parse_request(body: bytes, model: type[BaseModel]) -> BaseModel:
    """The JSON `body` as `model`, or InvalidParameter (422) listing each problem as PaddleX does
    (`[{"type", "loc", "msg"}]`, JSON in the message)."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        problems = [{"type": e["type"], "loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]}
                    for e in exc.errors()]
        raise InvalidParameter(json.dumps(problems)) from None


def decode_file(value: str) -> bytes:
    """The bytes of a base64 `file` (standard alphabet, padding optional, whitespace tolerated)."""
    compact = "".join(value.split())
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParameter("file: neither base64 nor an http(s) URL") from None


def check_file_type(declared: int | None, sniffed: str | None, head: bytes) -> int:
    """The file type to report: what the bytes are (`sniffed`: the image format, None when not an image; `head`:
    the file's first KiB). A declared `fileType` that contradicts the bytes is refused (422), as PaddleX fails
    to read such a file."""
    if sniffed is None and b"%PDF" not in head:
        raise InvalidParameter(f"file: neither a PDF nor an accepted image ({ACCEPTED})")
    actual = PDF if sniffed is None else IMAGE
    if declared is not None and declared != actual:
        named = "a PDF" if declared == PDF else "an image"
        found = "a PDF" if actual == PDF else f"a {sniffed} image"
        raise InvalidParameter(f"fileType says {named}, but the file is {found}")
    return actual


def image_frame_sizes(path: Any, image_format: str) -> list[tuple[int, int]] | None:
    """Width and height in pixels of every page an image file becomes (every frame of a TIFF, else the first),
    as displayed (EXIF orientation applied); headers only. None when Pillow cannot tell: the image checks
    (image_input.ensure_pdf) then answer with their own typed error."""
    sizes: list[tuple[int, int]] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own pixel limit applies later
            with Image.open(path) as image:
                frames = getattr(image, "n_frames", 1) if image_format == "TIFF" else 1
                for index in range(frames):
                    image.seek(index)
                    width, height = image.size
                    if image.getexif().get(0x0112) in (5, 6, 7, 8):  # displayed turned a quarter
                        width, height = height, width
                    sizes.append((width, height))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError, EOFError):
        return None
    return sizes


def data_info(file_type: int, image_format: str | None, page_sizes_px: list[tuple[int, int]]) -> dict[str, Any]:
    """`dataInfo`: an image's size; a PDF's or a multi-frame TIFF's page count and page sizes, in pixels of the
    page images the boxes refer to."""
    pages = [{"width": w, "height": h} for w, h in page_sizes_px]
    if file_type == IMAGE and len(pages) == 1:
        return {"width": pages[0]["width"], "height": pages[0]["height"], "type": "image"}
    kind = "tiff" if image_format == "TIFF" else "pdf"
    return {"numPages": len(pages), "pages": pages, "type": kind}


# --- the envelope ----------------------------------------------------------------------------------------------
class ErrorEnvelope(BaseModel):
    """PaddleX's error body (its `AIStudioNoResultResponse`)."""

    logId: str
    errorCode: int
    errorMsg: str


SUCCESS_SCHEMA = {"type": "object", "required": ["logId", "errorCode", "errorMsg", "result"],
                  "properties": {"logId": {"type": "string"}, "errorCode": {"const": 0},
                                 "errorMsg": {"const": "Success"}, "result": {"type": "object"}}}


def success(log_id: str, result: dict[str, Any]) -> dict[str, Any]:
    return {"logId": log_id, "errorCode": 0, "errorMsg": "Success", "result": result}


def failure(log_id: str, status: int, message: str) -> dict[str, Any]:
    """PaddleX's error body: `errorCode` is the HTTP status, `errorMsg` says why."""
    return {"logId": log_id, "errorCode": status, "errorMsg": message}
