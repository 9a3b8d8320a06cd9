"""The result as one download: a zip of `result.md`, `result.json` and `images/`, exactly as they lie on disk.

Asked for with `Accept: application/zip` on POST /ocr/pdf or `?format=zip` on GET /jobs/{id}/result. The archive
is written to a temporary file in a thread (images are stored as they are: PNG and JPEG do not deflate) and
streamed from disk, so its size never sits in memory; the file is removed once sent.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import zipfile
from pathlib import Path

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse

from app.jobs.files import same_directory
from app.storage.images import image_files
from app.storage.layout import IMAGES_DIRNAME, RESULT_JSON, RESULT_MD

ZIP_TYPE = "application/zip"


def wants_zip(request: Request) -> bool:
    return ZIP_TYPE in request.headers.get("accept", "").split(",")[0]


def write_bundle(result_dir: Path, dest: Path) -> None:
    """Write the zip of `result_dir`'s result files and images to `dest` (blocking). FileNotFoundError when the
    directory is removed (a job's DELETE) before or while the archive is written: a deleted job's directory is
    renamed away in one step first (app/jobs/files.py), so a directory still in place at the end, the same one
    as at the start, means every file was read from a complete result."""
    before = os.stat(result_dir)
    with zipfile.ZipFile(dest, "w") as archive:
        for name in (RESULT_MD, RESULT_JSON):
            archive.write(result_dir / name, name, compress_type=zipfile.ZIP_DEFLATED)
        for image in image_files(result_dir / IMAGES_DIRNAME):
            archive.write(image, f"{IMAGES_DIRNAME}/{image.name}", compress_type=zipfile.ZIP_STORED)
    if not same_directory(result_dir, before):
        raise FileNotFoundError(f"{result_dir} was removed while it was archived")


async def zip_response(result_dir: Path, *, filename: str, scratch_dir: Path) -> FileResponse:
    fd, tmp = tempfile.mkstemp(prefix="bundle-", suffix=".zip", dir=scratch_dir)
    os.close(fd)
    path = Path(tmp)
    try:
        await asyncio.to_thread(write_bundle, result_dir, path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return FileResponse(path, media_type=ZIP_TYPE, filename=filename,
                        background=BackgroundTask(path.unlink, missing_ok=True))
