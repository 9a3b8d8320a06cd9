"""PaddleX's serving API for PaddleOCR-VL, so its clients (the official snippet, RAG loaders, desktop apps) work
against this service unchanged: `POST /layout-parsing` and `POST /restructure-pages` (app/compat/paddlex.py).

A thin adapter over the conversion service (app/conversion/service.py), so API keys, upload limits, page limits,
503 when busy, metrics and S3 apply exactly as on /ocr/pdf. Order of work: readiness -> the JSON body (bounded
like an upload) -> the request model (422) -> the file: base64 decoded, or a URL fetched from an allowed host
(app/storage/remote_file.py) -> file type -> the shared path with every page (no hand-off to a job: these
clients cannot follow a 202; long documents belong on /jobs) -> the PaddleX-shaped answer, built in a thread.
Every error leaves in PaddleX's envelope `{logId, errorCode, errorMsg}` with `errorCode` = the HTTP status.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from PIL import Image
from pydantic import BaseModel
from starlette.types import Scope

from app.api.deps import LifecycleDep, RequestIdDep, ServicesDep, SettingsDep, VlDep
from app.api.job_views import OwnerDep
from app.api.limits import check_accepting
from app.api.error_handlers import register_error_shape
from app.api.upload import receive_json_body, received_file, scratch_upload
from app.compat import paddlex
from app.compat import paddlex_pages as pages
from app.conversion.request_outputs import Converted
from app.conversion.service import convert_request
from app.errors import AppError, InvalidParameter, NotAPdf
from app.runtime.image_input import sniff_file
from app.pipeline.options import ConvertOptions, resolve_options
from app.runtime.page_image import page_rgb
from app.settings import Settings
from app.storage.disk import require_free_space
from app.storage.remote_file import download, is_url
from app.storage.upload_size import check_upload_size

log = logging.getLogger(__name__)

router = APIRouter(tags=["paddlex"])

LAYOUT_PARSING = "/layout-parsing"
RESTRUCTURE_PAGES = "/restructure-pages"
_OK = {200: {"description": "PaddleX's success envelope", "content": {"application/json": {
    "schema": paddlex.SUCCESS_SCHEMA}}}}
_JSON_SLACK_BYTES = 64 * 1024  # the other fields of the request body
RequestT = TypeVar("RequestT", paddlex.LayoutParsingRequest, paddlex.RestructurePagesRequest)


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON Schema with its `$defs` written in place: the body is read by hand (its size is bounded
    while it streams), so FastAPI does not register these models, and a `#/$defs/...` reference would point
    nowhere inside the OpenAPI document."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return inline(schema)


def install(app: FastAPI) -> None:
    """Mount the routes and make every error on their paths PaddleX-shaped."""
    app.include_router(router)
    register_error_shape(app, (LAYOUT_PARSING, RESTRUCTURE_PAGES), _envelope, paddlex.ErrorEnvelope)


def _envelope(status: int, _type: str, message: str, scope: Scope) -> dict[str, Any]:
    state = scope.get("state", {})
    return paddlex.failure(state.get("log_id") or state.get("request_id") or "", status, message)


def _body_limit(settings: Settings) -> int:
    # base64 carries 3 bytes in 4 characters
    return settings.max_upload_bytes * 4 // 3 + 4 + _JSON_SLACK_BYTES


async def _read_request(request: Request, settings: Settings, request_id: str, model: type[RequestT]
                        ) -> tuple[RequestT, str]:
    """The JSON body (bounded like an upload) as `model` (422 in PaddleX's envelope), and the log id its answer
    and errors carry: the client's `logId`, else our request id."""
    body = await receive_json_body(request, settings, _body_limit(settings))
    req = paddlex.parse_request(body, model)
    del body
    assert isinstance(req, model)
    log_id = req.logId or request_id
    request.state.log_id = log_id
    return req, log_id


async def _answer(request: Request, log_id: str, build: Any, *args: Any) -> JSONResponse:
    try:
        result = await asyncio.to_thread(build, *args)
    except AppError:
        raise
    except Exception:
        log.exception("building the PaddleX answer failed")
        return JSONResponse(paddlex.failure(log_id, 500, "Internal server error"), status_code=500)
    return JSONResponse(paddlex.success(log_id, result))


@router.post(LAYOUT_PARSING, summary="PaddleX serving API: parse a PDF or image (PaddleOCR-VL contract)",
             responses=_OK, openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": _inline_schema(paddlex.LayoutParsingRequest)}}}})
async def layout_parsing(request: Request, services: ServicesDep, lifecycle: LifecycleDep, owner: OwnerDep,
                         request_id: RequestIdDep, vl: VlDep) -> JSONResponse:
    check_accepting(lifecycle, services)  # before the body: a full queue costs a rejection nothing to read
    settings = services.settings
    req, log_id = await _read_request(request, settings, request_id, paddlex.LayoutParsingRequest)

    path = scratch_upload(settings, request_id)
    try:
        if is_url(req.file):
            size = await download(req.file, path, settings)
        else:
            size = await asyncio.to_thread(_write_base64, req.file, path, settings)
        req.file = ""  # the base64 text can go now
        image_format = await asyncio.to_thread(sniff_file, path)
        file_type = paddlex.check_file_type(req.fileType, image_format, await asyncio.to_thread(_head, path))
        frame_sizes = await asyncio.to_thread(paddlex.image_frame_sizes, path, image_format) if image_format else None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    upload = await received_file(path, size, None, settings)

    fields = paddlex.convert_fields(settings)
    sampling = paddlex.sampling_overrides(req)
    use_vl = fields["mode"] == "vl" and vl is not None
    request_vl = vl.with_sampling(sampling) if use_vl and sampling and vl is not None else None
    upload.temporary = False  # this route removes the PDF itself, after rendering the answer's pages from it
    try:
        options = resolve_options(settings, vl_available=vl is not None, image_format=image_format, **fields)
        outcome = await convert_request(services, upload, options, request_id=request_id, owner=owner,
                                        hand_off=False, vl=request_vl)
        assert isinstance(outcome, Converted)  # hand_off=False: never a 202
        ignored = paddlex.ignored_fields(req, vl=use_vl)
        return await _answer(request, log_id, _layout_parsing_result, outcome, options, upload.path, req,
                             settings, file_type, image_format, frame_sizes, ignored)
    except NotAPdf as exc:  # PaddleX answers a file it cannot read with 422 ("Invalid input file")
        raise InvalidParameter(exc.message) from None
    finally:
        upload.discard()


def _write_base64(value: str, path: Path, settings: Settings) -> int:
    data = paddlex.decode_file(value)
    check_upload_size(settings, len(data), "file")
    require_free_space(settings, len(data))  # 507 before writing, as for a multipart upload
    path.write_bytes(data)
    return len(data)


def _head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(1024)


def _layout_parsing_result(outcome: Converted, options: ConvertOptions, pdf_path: Path,
                           req: paddlex.LayoutParsingRequest, settings: Settings,
                           file_type: int, image_format: str | None, frame_sizes: list[tuple[int, int]] | None,
                           ignored: list[str]) -> dict[str, Any]:
    """`result` of /layout-parsing from our DocumentResult (blocking: images are read and pages rendered)."""
    result = outcome.result
    ignore_labels = (list(req.markdownIgnoreLabels) if req.markdownIgnoreLabels is not None
                     else list(paddlex.DEFAULT_MARKDOWN_IGNORE_LABELS))
    model_settings = {
        "use_doc_preprocessor": False, "use_layout_detection": True, "use_chart_recognition": False,
        "use_seal_recognition": False, "use_ocr_for_image_block": False,
        "format_block_content": bool(req.formatBlockContent),
        "merge_layout_blocks": options.mode == "vl" and settings.layout_engine == "paddlex",
        "markdown_ignore_labels": ignore_labels, "return_layout_polygon_points": False,
        "mode": options.mode, "ignored_request_fields": ignored,
    }
    sizes = [frame_sizes[p.page - 1] if frame_sizes and p.page <= len(frame_sizes)
             else pages.pdf_page_pixels(p.width, p.height) for p in result.pages]
    pruned = [pages.pruned_page(p, size, {**model_settings, "page_source": p.source},
                                format_block_content=bool(req.formatBlockContent))
              for p, size in zip(result.pages, sizes)]
    for entry in pruned:
        entry["page_count"] = result.page_count if file_type == paddlex.PDF or len(sizes) > 1 else None
    relevel = False
    if req.restructurePages:
        pruned = pages.restructure(pruned, merge_tables=req.mergeTables, concatenate=False)
        relevel = req.relevelTitles
    visualize = True if req.visualize is None else req.visualize  # PaddleX's serving default
    directory = outcome.stored.directory
    entries = []
    for page, entry, keys in zip(result.pages, pruned, pages.image_keys(pruned)):
        images = _read_images(directory, keys) if req.returnMarkdownImages else None
        output_images = input_image = None
        if visualize:
            rgb = page_rgb(pdf_path, page.page - 1, 72.0 * entry["width"] / page.width, settings)
            output_images = {"layout_det_res": _b64(pages.layout_picture(rgb, entry))}
            input_image = _b64(pages.jpeg(Image.fromarray(rgb)))
        entries.append(pages.answer_page(entry, images, pretty=req.prettifyMarkdown, relevel=relevel,
                                         output_images=output_images, input_image=input_image))
    return {"layoutParsingResults": entries, "dataInfo": paddlex.data_info(file_type, image_format, sizes)}


def _read_images(directory: Path | None, keys: list[str]) -> dict[str, str]:
    """The crops a page's Markdown links, base64, from beside the stored result (none if it could not be
    stored: the answer still goes out, as on /ocr/pdf)."""
    images: dict[str, str] = {}
    if directory is None:
        return images
    for key in keys:
        path = directory / key
        if path.is_file() and directory in path.resolve().parents:
            images[key] = _b64(path.read_bytes())
    return images


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@router.post(RESTRUCTURE_PAGES, summary="PaddleX serving API: join pages /layout-parsing answered",
             responses=_OK, openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": _inline_schema(paddlex.RestructurePagesRequest)}}}})
async def restructure_pages(request: Request, settings: SettingsDep, request_id: RequestIdDep) -> JSONResponse:
    req, log_id = await _read_request(request, settings, request_id, paddlex.RestructurePagesRequest)
    if len(req.pages) > settings.max_pages:
        raise InvalidParameter(f"pages: at most {settings.max_pages} (MAX_PAGES)")
    return await _answer(request, log_id, _restructured, req)


def _restructured(req: paddlex.RestructurePagesRequest) -> dict[str, Any]:
    pruned = pages.restructure([p.prunedResult.model_dump() for p in req.pages], merge_tables=req.mergeTables,
                               concatenate=req.concatenatePages)
    entries = []
    for index, entry in enumerate(pruned):
        if not req.returnMarkdownImages:
            images = None
        elif req.concatenatePages:
            images = {k: v for p in req.pages for k, v in (p.markdownImages or {}).items()}
        else:
            images = req.pages[index].markdownImages
        entries.append(pages.answer_page(entry, images, pretty=req.prettifyMarkdown, relevel=req.relevelTitles))
    return {"layoutParsingResults": entries}
