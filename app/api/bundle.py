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

from app.storage.images import image_files
from app.storage.layout import IMAGES_DIRNAME, RESULT_JSON, RESULT_MD

ZIP_TYPE = "application/zip"


def wants_zip(request: Request) -> bool:
    return ZIP_TYPE in request.headers.get("accept", "").split(",")[0]


def write_bundle(result_dir: Path, dest: Path) -> None:
    """Write the zip of `result_dir`'s result files and images to `dest` (blocking)."""
    with zipfile.ZipFile(dest, "w") as archive:
        for name in (RESULT_MD, RESULT_JSON):
            path = result_dir / name
            if path.is_file():
                archive.write(path, name, compress_type=zipfile.ZIP_DEFLATED)
        for image in image_files(result_dir / IMAGES_DIRNAME):
            archive.write(image, f"{IMAGES_DIRNAME}/{image.name}", compress_type=zipfile.ZIP_STORED)


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
