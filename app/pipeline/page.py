"""One page, start to finish: text layer -> which source to read -> render -> layout -> lines -> assembly.

Runs inside a worker process (see pool/), which holds the engines and an open-document cache in a
`WorkerState`; the same functions run in-process in tests. Models are used only where the page needs them:

- `text`: the text layer alone, no render, no model (blocks come from assembly's heuristics);
- `auto`: a trustworthy text layer gives the lines, and layout runs on a low-resolution render so headings,
  tables and captions come out structured; any other page is read like `ocr`;
- `ocr`: render at the requested DPI, layout + PP-OCR on the pixels;
- `vl`: the worker renders and runs layout (`analyse_for_vl`), the parent sends each region's crop to a
  `RegionRecognizer` (the VLM sidecar) and assembles the page. With the PaddleX layout engine, text regions that
  continue each other are read with one stacked crop and come back as one region (layout/merge.py).
"""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from app.pipeline import figures, orientation, pdf_input, render, scan_cleanup, textlayer
from app.pipeline.figures import ImageTarget
from app.pipeline.layout import merge
from app.pipeline.layout.crop import fit_for_the_vlm, region_crop
from app.pipeline.priority import lower_priority
from app.pipeline.options import ConvertOptions
from app.pipeline.pdfium_backend import PageObjects, open_page
from app.pipeline.primitives import Region, TextLine, scale_bbox, scale_polygon
from app.pipeline.result import BBox, PageResult
from app.pipeline.tables import table_bands
from app.pipeline.trust import decide_source, is_trustworthy
from app.pipeline.words import page_words
from app.settings import Settings

if TYPE_CHECKING:
    from app.pipeline.pdfium_backend import PdfDocument

log = logging.getLogger(__name__)

# Layout only needs the page's shapes, not its letters: a small render keeps `auto` fast on born-digital pages.
LAYOUT_DPI = 100
# Region crops for the VLM: JPEG, a little context around each box.
CROP_JPEG_QUALITY = 92


# --- the vl seam ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RegionCrop:
    """One layout region of one page and its pixels (JPEG), for a recognizer that reads regions as a whole."""

    page_index: int
    region: Region  # bbox in PDF points
    jpeg: bytes


class RegionRecognizer(Protocol):
    """Reads region crops (the VLM in `vl` mode). Returns one Region per crop, in the same order, with `text`
    (and `html` for tables) filled in; regions it does not read (figures) come back unchanged."""

    async def recognize(self, crops: list[RegionCrop]) -> list[Region]: ...


@dataclass(frozen=True)
class VlAnalysis:
    """What a worker hands the parent for a `vl` page: its size, its regions (points) and their crops."""

    page_index: int
    width: float
    height: float
    # every region, figures included, in layout order; a group read together (layout/merge.py) is one region
    regions: list[Region]
    crops: list[RegionCrop]  # the regions to read, each with `crop.region` one of `regions`
    rulings: list[BBox] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    images: list = field(default_factory=list)  # figures.export_regions: (label, bbox, path) of each crop
    images_dir: str | None = None
    rotation: int = 0  # the page's content turned clockwise; width/height/regions are the upright page's


# --- engines ----------------------------------------------------------------------------------------------------
def _loaded(engine):
    engine.load()
    return engine


class Engines:
    """The layout and OCR engines of one process, created by their factories and loaded on first use (or all at
    once with `load()`, as a worker's initializer does), so that `text` mode never pays for a model."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @cached_property
    def layout(self):
        from app.pipeline.layout import create_layout_engine

        return _loaded(create_layout_engine(self._settings))

    @cached_property
    def ocr(self):
        from app.pipeline.recognize.ocr import create_ocr_engine

        return _loaded(create_ocr_engine(self._settings))

    @cached_property
    def orientation(self):
        return _loaded(orientation.OrientationClassifier(threads=self._settings.threads_per_worker))

    @cached_property
    def reader(self):
        """The OCR engine behind the per-script router (recognize/routing.py): what `ocr` pages are read with."""
        from app.pipeline.recognize.routing import ScriptRouter
        from app.pipeline.recognize.tesseract import TesseractReader

        return ScriptRouter(self.ocr, TesseractReader(threads=self._settings.threads_per_worker))

    def load(self) -> None:
        _ = self.layout, self.ocr, self.reader, self.orientation

    def warmup(self) -> None:
        self.layout.warmup()
        self.reader.warmup()
        self.orientation.warmup()

    def health(self) -> bool:
        loaded = (self.__dict__.get(name) for name in ("layout", "ocr", "orientation"))  # what cached_property has built so far
        return all(engine is None or engine.health() for engine in loaded)


# --- one page -----------------------------------------------------------------------------------------------
class _Stopwatch:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def process_page(
    doc: PdfDocument, page_index: int, options: ConvertOptions, engines: Engines, settings: Settings,
    images: ImageTarget | None = None,
) -> PageResult:
    """Convert one page of an open document (modes `text`, `auto`, `ocr`) to a PageResult with stage timings;
    with `images`, crop its figures/tables into files there (figures.py)."""
    from app.pipeline.assemble import build_page

    clock = _Stopwatch()
    rendered = None
    with open_page(doc, page_index) as page:
        with clock.stage("textlayer"):
            width, height = page.size()
            objects = page.objects()
            layer = textlayer.extract(page, objects)
            trustworthy = options.mode == "auto" and is_trustworthy(
                layer, width * height, objects.image_area(width, height)
            )
        # Rendering decodes every image at full size: refuse hostile ones before that can happen (in `text` mode
        # too, so that a file is accepted or refused whatever the mode).
        _check_images(objects, page_index, settings)
        source = decide_source(options.mode, trustworthy)
        regions: list[Region] = []
        lines: list[TextLine] = layer.lines
        rulings = layer.rulings
        angle = 0
        if options.mode != "text":
            dpi = LAYOUT_DPI if source == "text" else options.dpi
            with clock.stage("render"):
                image, scale = render.render_page(page, dpi, settings.max_page_pixels)
            if source == "ocr":  # a page read from its pixels may lie turned: read it upright (orientation.py)
                with clock.stage("orientation"):
                    image, angle = _upright(image, engines)
                with clock.stage("cleanup"):
                    image, _ = scan_cleanup.despeckle(image)  # a no-op on a page without specks
                rulings = [orientation.to_upright(r, angle, width, height) for r in rulings]
                width, height = orientation.upright_size(width, height, angle)
            with clock.stage("layout"):
                regions = _to_points(engines.layout.detect(image), scale)
            if source == "ocr":
                with clock.stage("ocr"):
                    read = engines.reader.recognize(image, dpi=scale * 72, lang=options.lang)
                    lines = [_line_to_points(line, scale) for line in read]
            rendered = (image, scale)
            del image
        words: list[TextLine] = []
        if source == "text" and (bands := table_bands(regions, rulings, lines, width)):
            with clock.stage("words"):
                words = page_words(page, bands)
        with clock.stage("assemble"):
            result = build_page(
                page_number=page_index + 1, width=width, height=height, source=source, regions=regions, lines=lines,
                rulings=rulings, words=words,
            )
        if images is not None and options.mode != "text":  # text mode renders nothing, crops nothing
            with clock.stage("images"):
                if angle and rendered is not None and rendered[1] * 72 < images.dpi * 0.95:
                    sharper, sharper_scale = render.render_page(page, images.dpi, settings.max_page_pixels)
                    rendered = (orientation.turn_upright(sharper, angle), sharper_scale)
                figures.export_from_page(result, page, rendered, images, settings.max_page_pixels)
        del rendered
        orientation.page_to_original(result, angle)
    result.timings = {**result.timings, **clock.timings}
    return result


def analyse_for_vl(
    doc: PdfDocument, page_index: int, options: ConvertOptions, engines: Engines, settings: Settings,
    images: ImageTarget | None = None,
) -> VlAnalysis:
    """Render the page and find its regions; crop every region the VLM reads (all but figures) as JPEG.

    A page where layout finds nothing is sent whole, as one text region. Where the layout engine has the official
    pipeline's `merge_layout_blocks` rule, each group of text regions that continue each other is one crop (theirs,
    stacked) and one region in the analysis (layout/merge.py says which, and what the result shows)."""
    clock = _Stopwatch()
    with open_page(doc, page_index) as page:
        with clock.stage("textlayer"):
            width, height = page.size()
            objects = page.objects()
        _check_images(objects, page_index, settings)
        with clock.stage("render"):
            image, scale = render.render_page(page, options.dpi, settings.max_page_pixels)
    with clock.stage("orientation"):  # before anything is cropped: the VLM reads upright crops
        image, angle = _upright(image, engines)
    rulings = [orientation.to_upright(r, angle, width, height) for r in objects.rulings]
    width, height = orientation.upright_size(width, height, angle)
    with clock.stage("layout"):
        regions = _to_points(engines.layout.detect(image), scale)
    if not regions:
        regions = [Region(label="text", bbox=(0.0, 0.0, width, height), score=0.0)]
    if engines.layout.merge_layout_blocks:
        groups = merge.group_regions(regions, chart_recognition=settings.vlm_chart_recognition)
    else:
        groups = [merge.ReadingGroup((region,)) for region in regions]
    regions = [group.region for group in groups]  # built once: the parent matches answers to them by identity
    with clock.stage("crop"):
        crops = [
            RegionCrop(page_index=page_index, region=region, jpeg=group_jpeg(image, group, scale))
            for group, region in zip(groups, regions, strict=True)
            if region.label != "figure"
        ]
    exported = []
    if images is not None:
        with clock.stage("images"):
            exported = figures.export_regions(regions, image, scale, page_index + 1, images)
    return VlAnalysis(
        page_index=page_index, width=width, height=height, regions=regions, crops=crops, rulings=rulings,
        timings=clock.timings, images=exported, images_dir=images.directory if images is not None else None,
        rotation=angle,
    )


def assemble_vl_page(analysis: VlAnalysis, recognized: Sequence[Region]) -> PageResult:
    """Build a `vl` page from its analysis and the recognizer's answers (one per crop, same order)."""
    from app.pipeline.assemble import build_page

    if len(recognized) != len(analysis.crops):
        raise RuntimeError(f"the recognizer returned {len(recognized)} regions for {len(analysis.crops)} crops")
    read = {id(crop.region): region for crop, region in zip(analysis.crops, recognized, strict=True)}
    regions = [read.get(id(region), region) for region in analysis.regions]
    start = time.perf_counter()
    result = build_page(
        page_number=analysis.page_index + 1, width=analysis.width, height=analysis.height, source="vl",
        regions=regions, lines=[], rulings=analysis.rulings,
    )
    if analysis.images and analysis.images_dir is not None:
        figures.attach(result, analysis.images, Path(analysis.images_dir))
    result.timings = {**result.timings, **analysis.timings, "assemble": time.perf_counter() - start}
    return orientation.page_to_original(result, analysis.rotation)


def group_jpeg(image: np.ndarray, group: merge.ReadingGroup, scale: float) -> bytes:
    """The crop of each member of `group` (`region_crop`: exactly its box, white outside its outline, as the
    official pipeline cuts it), stacked top to bottom as the group's alignments say, as JPEG bytes; the whole page
    when no member has pixels."""
    from PIL import Image

    kept = [(pixels, align) for member, align in zip(group.members, ("left", *group.aligns), strict=True)
            if (pixels := region_crop(image, member, scale)) is not None]
    if not kept:
        pixels = image
    else:
        pixels = fit_for_the_vlm(merge.stack([p for p, _ in kept], [a for _, a in kept[1:]]))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=CROP_JPEG_QUALITY)
    return buffer.getvalue()


def _upright(image: np.ndarray, engines: Engines) -> tuple[np.ndarray, int]:
    """The page image turned upright and the clockwise angle its content lay at (0 when the classifier is unsure)."""
    angle, score = engines.orientation.classify(image)
    if angle:
        log.debug("page turned %d degrees clockwise (score %.2f): read upright", angle, score)
    return orientation.turn_upright(image, angle), angle


def _check_images(objects: PageObjects, page_index: int, settings: Settings) -> None:
    pdf_input.check_image_sizes(objects.image_sizes, page_index + 1, settings)


def _to_points(regions: list[Region], scale: float) -> list[Region]:
    factor = 1.0 / scale
    return [replace(r, bbox=scale_bbox(r.bbox, factor), polygon=scale_polygon(r.polygon, factor)) for r in regions]


def _line_to_points(line: TextLine, scale: float) -> TextLine:
    return TextLine(
        text=line.text, bbox=scale_bbox(line.bbox, 1.0 / scale), score=line.score,
        font_size=line.font_size / scale if line.font_size else None, bold=line.bold,
    )


# --- inside a worker process ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PageTask:
    """One unit of work for a worker: convert (`page`) or analyse for the VLM (`vl`) one page of a file."""

    pdf_path: str
    page_index: int
    options: ConvertOptions
    kind: Literal["page", "vl"] = "page"
    images: ImageTarget | None = None  # where to write the page's figure/table crops (None: no crops)


class WorkerState:
    """What a worker process keeps between tasks: settings, engines, recently opened documents."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engines = Engines(settings)
        self.documents = pdf_input.document_cache(settings)


_STATE: WorkerState | None = None


def init_worker(settings: Settings, preload: bool = True) -> None:
    """Pool initializer: build this process's engines once (loading the models unless `preload` is false)."""
    global _STATE
    lower_priority(settings.worker_nice)  # the API process (probes, uploads) goes first on a busy CPU
    _STATE = WorkerState(settings)
    if preload:
        _STATE.engines.load()


def _state() -> WorkerState:
    if _STATE is None:
        raise RuntimeError("worker state missing: init_worker() did not run in this process")
    return _STATE


def run_task(task: PageTask) -> PageResult | VlAnalysis:
    """Entry point of a page task in a worker: open (or reuse) the document, then convert or analyse the page."""
    state = _state()
    doc = state.documents.get(task.pdf_path)
    if task.kind == "vl":
        return analyse_for_vl(doc, task.page_index, task.options, state.engines, state.settings, images=task.images)
    return process_page(doc, task.page_index, task.options, state.engines, state.settings, images=task.images)


def warmup_worker() -> dict[str, Any]:
    """Run the engines once on small inputs (first inference is slow), report this process's id."""
    state = _state()
    start = time.perf_counter()
    state.engines.warmup()
    return {"pid": os.getpid(), "seconds": time.perf_counter() - start}


def worker_health() -> bool:
    return _state().engines.health()
