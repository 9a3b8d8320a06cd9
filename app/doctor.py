"""`python -m app doctor`'s checks: is this node ready for real work? Each check gives one line.

- models: the baked model directory matches the manifest the image build wrote (gpu profile; the cpu profile's
  ONNX models come inside their wheels);
- opencv: one OpenCV distribution, and on the PaddleX layout engine it is `opencv-contrib-python`, the only name
  PaddleX's image reader accepts (it checks the distribution name, not `import cv2`);
- layout: the layout model loads and runs on a blank page;
- sidecar: the VLM sidecar is up and serves the model name the client asks for;
- vl: one `vl` conversion of the bundled warm-up page, whose text is its own text layer, reads it back with a word
  F1 of at least `min_f1` (0.9 with the real PaddleOCR-VL; a random-weight test model cannot read).

`cpu_only` runs the first three (the image build does, without a GPU). The layout engine and the VLM client come
from `build_parts`, the one place that constructs them here.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from app.settings import Settings

if TYPE_CHECKING:
    from app.services import Services

Outcome = Literal["ok", "FAIL", "skip"]
OPENCV_DISTRIBUTIONS = ("opencv-python", "opencv-python-headless", "opencv-contrib-python",
                        "opencv-contrib-python-headless")
PADDLEX_OPENCV = "opencv-contrib-python"
BLANK_PAGE_PX = (1100, 850)  # a letter page at 100 DPI
_WORD = re.compile(r"[^\W_]+")
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class CheckResult:
    name: str
    outcome: Outcome
    detail: str

    @property
    def failed(self) -> bool:
        return self.outcome == "FAIL"

    def line(self) -> str:
        return f"{self.outcome:<4} {self.name}: {self.detail}"


@dataclass
class DoctorParts:
    settings: Settings
    layout: Any  # app.pipeline.layout.LayoutEngine, not yet loaded
    services: Services  # one page worker; the sidecar client and recognizer when the sidecar is on

    @property
    def vlm(self) -> Any | None:
        return self.services.vlm


def build_parts(settings: Settings) -> DoctorParts:
    """The layout engine, and the services (app/services.py, as the server builds them) the checks use."""
    from app.pipeline.layout import create_layout_engine
    from app.services import build_services

    return DoctorParts(settings=settings, layout=create_layout_engine(settings),
                       services=build_services(settings, workers=1))


# --- checks ----------------------------------------------------------------------------------------------------------
def check_models(settings: Settings) -> CheckResult:
    if settings.profile != "gpu":
        from app.lifecycle import models_status

        present, where = models_status(settings)
        return CheckResult("models", "ok" if present else "FAIL",
                           f"cpu profile models {'present' if present else 'missing'} in {where}")
    from app import models_manifest

    required = models_manifest.required_for(settings.vlm_model_name)
    found = models_manifest.problems(settings.models_path, required=required)
    if found:
        more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
        return CheckResult("models", "FAIL", f"{settings.models_path}: " + "; ".join(found[:3]) + more)
    served = ", ".join(required or (settings.vlm_model_name,))
    return CheckResult("models", "ok", f"{served} match the manifest in "
                                       f"{settings.models_path}")


def check_languages(settings: Settings) -> CheckResult:
    """The languages OCR reads here, and whether OCR_LANGS names only those."""
    from app.pipeline.recognize.languages import UnknownLanguage, installed_languages, parse_languages

    installed = installed_languages()
    try:
        parse_languages(settings.ocr_langs, installed)
    except UnknownLanguage as exc:
        return CheckResult("languages", "FAIL", f"OCR_LANGS: {exc}")
    return CheckResult("languages", "ok", f"installed: {', '.join(installed)}; OCR_LANGS={settings.ocr_langs}")


def installed_opencv() -> list[str]:
    found = []
    for name in OPENCV_DISTRIBUTIONS:
        try:
            found.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def check_opencv(settings: Settings, installed: list[str] | None = None) -> CheckResult:
    installed = installed_opencv() if installed is None else installed
    if not installed:
        return CheckResult("opencv", "FAIL", "no OpenCV distribution is installed")
    listing = ", ".join(installed)
    if settings.layout_engine == "paddlex":
        names = [entry.split("==")[0] for entry in installed]
        if PADDLEX_OPENCV not in names:
            return CheckResult("opencv", "FAIL", f"PaddleX's image reader requires the {PADDLEX_OPENCV} "
                                                 f"distribution; installed: {listing}")
        if len(names) > 1:
            return CheckResult("opencv", "FAIL", f"several OpenCV distributions share one cv2 package and overwrite "
                                                 f"each other's files: {listing}; keep only {PADDLEX_OPENCV}")
    return CheckResult("opencv", "ok", listing)


def check_layout(layout: Any) -> CheckResult:
    started = time.perf_counter()
    try:
        layout.load()
        loaded = time.perf_counter()
        regions = layout.detect(np.full((*BLANK_PAGE_PX, 3), 255, dtype=np.uint8))
    except Exception as exc:  # noqa: BLE001 - the check's whole point is to say what went wrong, in one line
        message = " ".join(str(exc).split()) or type(exc).__name__
        return CheckResult("layout", "FAIL", f"{layout.name} cannot load or run: {type(exc).__name__}: {message}")
    done = time.perf_counter()
    return CheckResult("layout", "ok", f"{layout.name} loaded in {loaded - started:.1f}s, blank page in "
                                       f"{done - loaded:.2f}s ({len(regions)} regions)")


async def check_sidecar(vlm: Any, timeout_s: float) -> CheckResult:
    started = time.perf_counter()
    try:
        await vlm.wait_until_ready(timeout_s)
    except Exception as exc:  # noqa: BLE001 - SidecarUnavailable and anything unexpected: one line
        return CheckResult("sidecar", "FAIL", getattr(exc, "message", None) or str(exc))
    return CheckResult("sidecar", "ok", f"{vlm.base_url} serves {vlm.model} "
                                        f"(answered in {time.perf_counter() - started:.1f}s)")


def words(text: str) -> list[str]:
    return _WORD.findall(_TAG.sub(" ", text).lower())


def word_f1(expected: str, got: str) -> float:
    """F1 of the two texts' word multisets (case, punctuation, Markdown and HTML tags ignored)."""
    want, have = Counter(words(expected)), Counter(words(got))
    common = sum((want & have).values())
    if not common:
        return 0.0
    precision, recall = common / sum(have.values()), common / sum(want.values())
    return 2 * precision * recall / (precision + recall)


def warmup_page_text() -> str:
    """The bundled warm-up page's own text layer: what a perfect reading of it says."""
    from app.pipeline.pdfium_backend import document_text
    from app.warmup import WARMUP_PDF

    return document_text(WARMUP_PDF)


async def check_vl(services: Services, min_f1: float) -> CheckResult:
    from app.conversion.service import Admit, ResultOnly, convert
    from app.conversion.source import local_file
    from app.pipeline.options import resolve_options
    from app.warmup import WARMUP_PDF

    settings = services.settings
    started = time.perf_counter()
    try:
        services.pool.start()
        source = local_file(WARMUP_PDF, settings, mode="vl")
        result = await convert(services, source, resolve_options(settings, mode="vl", vl_available=True), ResultOnly(),
                               admit_how=Admit.WAIT)
    except Exception as exc:  # noqa: BLE001 - one line for the operator
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return CheckResult("vl", "FAIL", f"the warm-up page's vl conversion failed: {message}")
    elapsed = time.perf_counter() - started
    got = "\n".join(block.text or block.html or "" for page in result.pages for block in page.blocks)
    score = word_f1(warmup_page_text(), got)
    sample = " ".join(got.split())[:60]
    detail = f"word F1 {score:.2f} on the warm-up page in {elapsed:.1f}s (read: {sample!r})"
    if score < min_f1:
        return CheckResult("vl", "FAIL", f"{detail}; needs >= {min_f1:.2f}: the model answers but does not read "
                                         f"the page (wrong weights, chat template or pixel bounds?)")
    return CheckResult("vl", "ok", detail)


async def run_checks(parts: DoctorParts, *, cpu_only: bool, timeout_s: float, min_f1: float) -> list[CheckResult]:
    settings = parts.settings
    results = [check_models(settings), check_opencv(settings), check_languages(settings)]
    results.append(await asyncio.to_thread(check_layout, parts.layout))
    if cpu_only:
        reason = "--cpu-only"
    elif parts.vlm is None:
        reason = "the VLM sidecar is off (PROFILE=cpu and USE_VLM_API unset)"
    else:
        reason = ""
    if reason:
        results += [CheckResult("sidecar", "skip", reason), CheckResult("vl", "skip", reason)]
        return results
    sidecar = await check_sidecar(parts.vlm, timeout_s)
    results.append(sidecar)
    if sidecar.failed:
        results.append(CheckResult("vl", "skip", "needs the sidecar"))
    else:
        results.append(await check_vl(parts.services, min_f1))
    return results
