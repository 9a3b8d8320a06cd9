"""Images out, parent side: where a document's crops are written, the per-document budget, embed, and placement.

The workers write crops into one directory per document (`figures.py`); a synchronous request uses a staging
directory under `OUTPUT_DIR/.images/`, a job writes straight into `OUTPUT_DIR/jobs/<id>/images/` (a resumed job
rewrites the same names). Once every page is in, `finalize` applies the document's budget in page order (the
first MAX_IMAGES_PER_DOCUMENT crops within MAX_IMAGE_MB_PER_DOCUMENT are kept; the others are deleted and their
blocks go back to the placeholder), and with `images=embed` swaps each path for a data: URI and deletes the
files. `place` then moves the directory beside result.json. Nothing here holds more than one image in memory,
except the embedded result itself, which the budget bounds.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import uuid
from pathlib import Path

from app.pipeline.figures import ImageTarget
from app.pipeline.result import DocumentResult
from app.settings import Settings
from app.storage.layout import IMAGES_DIRNAME

log = logging.getLogger(__name__)

MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
STAGING_DIRNAME = ".images"


def image_target(settings: Settings, mode: str, directory: Path) -> ImageTarget | None:
    """What the workers need to write a document's crops into `directory`; None when `mode` is `none`."""
    if mode == "none" or settings.max_images_per_document == 0:
        return None
    return ImageTarget(directory=str(directory), dpi=settings.image_dpi,
                       max_count=settings.max_images_per_document,
                       max_bytes=settings.max_image_bytes_per_document)


def staging_dir(settings: Settings, request_id: str) -> Path:
    """A fresh, existing directory for one synchronous request's crops (moved beside its result by `place`).
    Workers never create it: once a cancelled request has removed it, a page still in flight writes nothing."""
    root = settings.output_dir / STAGING_DIRNAME
    directory = root / f"{request_id[:40]}-{uuid.uuid4().hex[:12]}"
    directory.mkdir(parents=True)
    return directory


def finalize(result: DocumentResult, directory: Path, mode: str, settings: Settings) -> DocumentResult:
    """Apply the document's image budget in page order and, for `embed`, inline the kept crops (blocking: run it
    in a thread). Mutates and returns `result`; `result.markdown` is rebuilt from the pages' Markdown."""
    if mode == "none":
        return result
    max_count, max_bytes = settings.max_images_per_document, settings.max_image_bytes_per_document
    kept = used = 0
    changed = False
    for page in result.pages:
        for block in page.blocks:
            if not block.image or block.image.startswith("data:"):
                continue
            path = directory / Path(block.image).name
            try:
                size = path.stat().st_size
            except OSError:
                size = -1
            if size < 0 or kept >= max_count or used + size > max_bytes:
                if size >= 0:
                    log.info("image budget reached: dropping %s", path.name)
                    path.unlink(missing_ok=True)
                page.markdown = _unlink(page.markdown, block.image, block)
                block.image = None
                changed = True
                continue
            kept += 1
            used += size
            if mode == "embed":
                uri = data_uri(path)
                page.markdown = page.markdown.replace(f"]({block.image})", f"]({uri})")
                block.image = uri
                path.unlink(missing_ok=True)
                changed = True
    if changed:
        bodies = [p.markdown.strip("\n") for p in result.pages if p.markdown.strip()]
        result.markdown = "\n\n".join(bodies) + "\n" if bodies else ""
    return result


def relocate(result: DocumentResult, directory_name: str) -> DocumentResult:
    """Point every crop at `directory_name/` instead of `images/` (the CLI writes `OUT/<stem>_images/` beside
    `OUT/<stem>.md`). Markdown links are percent-encoded so a stem with spaces stays one link."""
    from urllib.parse import quote

    old, new = f"]({IMAGES_DIRNAME}/", f"]({quote(directory_name)}/"
    for page in result.pages:
        for block in page.blocks:
            if block.image and block.image.startswith(f"{IMAGES_DIRNAME}/"):
                block.image = directory_name + block.image[len(IMAGES_DIRNAME):]
        page.markdown = page.markdown.replace(old, new)
    result.markdown = result.markdown.replace(old, new)
    return result


def data_uri(path: Path) -> str:
    media = MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{media};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _unlink(markdown: str, link: str, block: object) -> str:
    """Put a dropped crop's placeholder back (the same one assembly writes)."""
    start = markdown.find(f"]({link})")
    if start < 0:
        return markdown
    open_at = markdown.rfind("![", 0, start)
    x0, y0, x1, y1 = (round(v) for v in block.bbox)  # type: ignore[attr-defined]
    placeholder = f"![{block.type}](#bbox={x0},{y0},{x1},{y1})"  # type: ignore[attr-defined]
    return markdown[:open_at] + placeholder + markdown[start + len(link) + 3:]


def place(source: Path, out_dir: Path) -> Path | None:
    """Move the crops in `source` to `out_dir/images` (a rename on the same filesystem) and remove `source`.
    Returns the images directory, or None when there is none."""
    target = out_dir / IMAGES_DIRNAME
    if not source.is_dir() or not any(source.iterdir()):
        shutil.rmtree(source, ignore_errors=True)
        return None
    if target.exists():
        shutil.rmtree(target)
    try:
        os.replace(source, target)
    except OSError:  # another filesystem
        shutil.copytree(source, target)
        shutil.rmtree(source, ignore_errors=True)
    return target


def adopt_dir(staging: Path, job_images: Path) -> None:
    """A job takes over a running request's crops: the directory moves into the job (so the crops survive a
    restart with the job's checkpoints) and a link at the old path keeps the pages in flight writing into it."""
    job_images.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, job_images)
    os.symlink(job_images.resolve(), staging)


def sweep_staging(settings: Settings, cutoff: float) -> list[str]:
    """Remove staging directories (and hand-off links) last touched before `cutoff` (epoch seconds): what a crash
    mid-request leaves behind. A live request's directory is minutes old; the sweeper passes the job TTL."""
    root = settings.output_dir / STAGING_DIRNAME
    removed = []
    if not root.is_dir():
        return removed
    for entry in root.iterdir():
        try:
            if entry.lstat().st_mtime >= cutoff:
                continue
            if entry.is_symlink() or not entry.is_dir():
                entry.unlink()
            else:
                shutil.rmtree(entry)
            removed.append(entry.name)
        except OSError:
            log.warning("could not remove stale staging entry %s", entry.name)
    return removed


def image_files(directory: Path) -> list[Path]:
    """The finished crops in `directory` (temporary files of an interrupted write excluded), sorted by name."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
