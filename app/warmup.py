"""Warm-up: wait for the VLM sidecar, then push one small bundled page through the whole pipeline, and time it.

The service runs `vl_pass` in its startup task (after the worker pool's own warm-up) so the first user request
finds every stage hot: PP-DocLayoutV3 (or V2)/CDLA in the workers, region crops, the sidecar's CUDA graphs and
assembly. `python warmup.py` (`main`) does the same standalone, for build-time smoke tests and operators: it
prints one JSON line with the timings and exits non-zero with one clear line when something is wrong.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.pipeline.options import resolve_options
from app.settings import Settings

if TYPE_CHECKING:
    from app.pipeline.result import DocumentResult
    from app.services import Services

log = logging.getLogger(__name__)

WARMUP_PDF = Path(__file__).resolve().parent / "assets" / "warmup_page.pdf"
# Low resolution: the point is to touch every stage, not to read the page well.
WARMUP_DPI = 100


async def wait_for_sidecar(client: Any, timeout_s: float) -> float:
    """Wait until the sidecar answers /health and lists its model; seconds waited."""
    started = time.perf_counter()
    await client.wait_until_ready(timeout_s)
    return time.perf_counter() - started


async def warmup_pass(services: Services, mode: str) -> DocumentResult:
    """The bundled page through the conversion service (app/conversion/service.py), admitted waiting, no outputs."""
    from app.conversion.service import Admit, ResultOnly, convert
    from app.conversion.source import local_file

    source = await asyncio.to_thread(local_file, WARMUP_PDF, services.settings, mode=mode)
    return await convert(services, source, resolve_options(services.settings, mode=mode, dpi=WARMUP_DPI, vl_available=True), ResultOnly(),
                         admit_how=Admit.WAIT)


async def vl_pass(services: Services) -> float:
    """One full `vl`-mode conversion of the bundled page (layout -> crops -> VLM -> assembly); seconds taken.
    Raises what the conversion raises (SidecarUnavailable, ...)."""
    started = time.perf_counter()
    result = await warmup_pass(services, "vl")
    elapsed = time.perf_counter() - started
    blocks = sum(len(p.blocks) for p in result.pages)
    log.info("vl warm-up pass: %d blocks in %.2fs", blocks, elapsed)
    return elapsed


def _record(settings: Settings, report: dict[str, Any]) -> None:
    """Keep the last warm-up's timings in OUTPUT_DIR/warmup.json (atomic), for operators."""
    try:
        settings.output_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=settings.output_dir, prefix=".warmup-", suffix=".json")
        with os.fdopen(fd, "w") as handle:
            json.dump(report, handle)
        os.replace(tmp, settings.output_dir / "warmup.json")
    except OSError as exc:
        log.warning("could not record the warm-up time in %s: %s", settings.output_dir, exc)


async def run(settings: Settings) -> dict[str, Any]:
    """The standalone warm-up: sidecar wait (when enabled), worker pool warm-up, one full pipeline pass."""
    from app.services import build_services

    report: dict[str, Any] = {"profile": settings.profile, "vlm": settings.vlm_enabled}
    started = time.perf_counter()
    services = build_services(settings)
    try:
        if services.vlm is not None:
            report["sidecar_wait_s"] = round(await wait_for_sidecar(services.vlm, settings.vlm_startup_timeout_s), 3)
        services.pool.start()
        report["pool_warmup_s"] = round(await services.pool.warmup(), 3)
        if services.vl is not None:
            report["vl_pass_s"] = round(await vl_pass(services), 3)
        else:
            t0 = time.perf_counter()
            await warmup_pass(services, "ocr")
            report["ocr_pass_s"] = round(time.perf_counter() - t0, 3)
    finally:
        await services.aclose(5.0)
    report["total_s"] = round(time.perf_counter() - started, 3)
    _record(settings, report)
    return report


def main(argv: list[str] | None = None) -> int:
    from app.errors import AppError
    from app.settings import SettingsError, load_settings

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        report = asyncio.run(run(settings))
    except SettingsError as exc:
        print(f"warmup failed: {exc}", file=sys.stderr)
        return 2
    except AppError as exc:
        print(f"warmup failed: {exc.type}: {exc.message}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - one clear line for the operator; the traceback is in the log
        log.debug("warm-up failed", exc_info=True)
        print(f"warmup failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0
