"""Where a job's files live and how they are written, shipped to S3 and removed.

Layout: `OUTPUT_DIR/jobs/<id>/input.pdf`, `result.json`, `result.md`, `images/`; in S3 everything of a job sits under
`<S3_PREFIX><id>/` (the service's key scheme), so deleting a job is deleting one prefix. Results are written
temp + fsync + rename: a reader sees either no result file or a complete one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.pipeline.result import DocumentResult
from app.settings import Settings
from app.storage.layout import RESULT_JSON, RESULT_MD
from app.storage.local import write_outputs

if TYPE_CHECKING:
    from app.storage.s3 import S3Uploader

log = logging.getLogger(__name__)

INPUT_NAME = "input.pdf"


def jobs_root(settings: Settings) -> Path:
    return settings.output_dir / "jobs"


def job_dir(settings: Settings, job_id: str) -> Path:
    return jobs_root(settings) / job_id


def job_images_dir(settings: Settings, job_id: str) -> Path:
    return job_dir(settings, job_id) / "images"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def place_input(src: Path, dest_dir: Path, *, keep_source: bool) -> Path:
    """Make `src` the job's durable input. Moves it (a rename on the same filesystem), or with `keep_source`
    hard-links it, because a running conversion still reads the original path; copies across filesystems."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / INPUT_NAME
    try:
        if keep_source:
            os.link(src, dest)
        else:
            os.replace(src, dest)
    except OSError:  # another filesystem (EXDEV) or no hard links there
        tmp = dest.with_suffix(".part")
        shutil.copyfile(src, tmp)
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
        if not keep_source:
            src.unlink(missing_ok=True)
    _fsync_dir(dest_dir)
    return dest


def write_result(settings: Settings, job_id: str, result: DocumentResult) -> tuple[Path, Path]:
    """Write result.json and result.md atomically (the service's own writer); returns their paths."""
    directory = write_outputs(jobs_root(settings), job_id, result)
    _fsync_dir(directory)
    return directory / RESULT_JSON, directory / RESULT_MD


# Deleted job directories are first renamed to `.deleting-<id>-<random>` (one atomic step), then removed. A reader
# that opened a file before the rename keeps reading a whole file (POSIX keeps an unlinked, open inode), one that
# comes after finds nothing (404), and a reader of several files (the zip) sees the directory change under it.
DELETING_PREFIX = ".deleting-"


def remove_job_dir(settings: Settings, job_id: str) -> None:
    """Delete the job's directory: rename it out of the way atomically, then remove the renamed tree."""
    directory = job_dir(settings, job_id)
    trash = directory.with_name(f"{DELETING_PREFIX}{job_id}-{secrets.token_hex(4)}")
    try:
        os.rename(directory, trash)
    except FileNotFoundError:
        return
    except OSError:  # not renameable (a mount point in a test, say): remove it where it is
        trash = directory
    shutil.rmtree(trash, ignore_errors=True)


def same_directory(path: Path, before: os.stat_result) -> bool:
    """Whether `path` is still the directory `before` was taken of (not deleted, not replaced meanwhile)."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    return (now.st_dev, now.st_ino) == (before.st_dev, before.st_ino)


# --- S3 ---------------------------------------------------------------------------------------------------------
# Blocking calls on the service's one S3Uploader (app/storage/s3.py); async callers run them in a thread.
def s3_job_prefix(settings: Settings, job_id: str) -> str:
    return f"{settings.s3_prefix}{job_id}/"


def s3_upload_input(s3: S3Uploader, job_id: str, path: Path) -> str:
    """Upload the job's input PDF. Returns its key."""
    return s3.upload_file(s3.key_for(job_id, path.name), path, "application/pdf")


def s3_upload_result(s3: S3Uploader, settings: Settings, job_id: str) -> dict[str, Any]:
    """Upload result.json and result.md. Returns {"bucket", "keys"}."""
    return s3.upload_outputs(job_id, job_dir(settings, job_id))


def s3_fetch_result(s3: S3Uploader, settings: Settings, job_id: str) -> Path:
    """Bring a job's result (result.json, result.md, images/) from S3 into this replica's job directory, for a job
    another replica completed. Everything is downloaded into a private `.fetch-` directory first, whose result
    files are then moved into the job's directory, result.json last, so its presence means the rest is there.
    FileNotFoundError when S3 has no result (the job was deleted meanwhile): nothing is left behind then.
    Returns the job directory."""
    directory = job_dir(settings, job_id)
    staging = directory.with_name(f".fetch-{job_id}-{secrets.token_hex(4)}")
    prefix = s3_job_prefix(settings, job_id)
    try:
        (staging / "images").mkdir(parents=True)
        try:
            for key in sorted(s3.list_keys(prefix + "images/")):
                s3.download_file(key, staging / "images" / key.rsplit("/", 1)[1])
            for name in (RESULT_MD, RESULT_JSON):
                s3.download_file(prefix + name, staging / name)
        except Exception as exc:
            if _s3_missing(exc):
                raise FileNotFoundError(f"job {job_id} has no result in S3") from None
            raise
        try:
            (directory / "images").mkdir(parents=True, exist_ok=True)
            for image in (staging / "images").iterdir():
                os.replace(image, directory / "images" / image.name)
            for name in (RESULT_MD, RESULT_JSON):
                os.replace(staging / name, directory / name)
        except (FileExistsError, FileNotFoundError, NotADirectoryError):  # the directory went (a DELETE)
            raise FileNotFoundError(f"job {job_id}'s directory was removed while its result was put in place") \
                from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def _s3_missing(exc: BaseException) -> bool:
    """An S3 answer saying the object is not there (HeadObject/GetObject 404)."""
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey",
                                                                                          "NotFound")


def s3_delete_job(s3: S3Uploader, settings: Settings, job_id: str) -> int:
    """Delete every object under the job's prefix. Returns how many were removed."""
    return s3.delete_prefix(s3_job_prefix(settings, job_id))


class JobOutputs:
    """A job's `Outputs` for the conversion service (app/conversion/service.py): crops in `jobs/<id>/images/` (they
    stay there for a resumed run), result.json and result.md written atomically beside them, then the result
    uploaded to S3. `write` returns the S3 info: None without S3, or when the upload failed (logged; the local
    result stands, as for a request)."""

    def __init__(self, settings: Settings, job_id: str, s3: S3Uploader | None) -> None:
        self.settings = settings
        self.job_id = job_id
        self.s3 = s3

    def images_dir(self) -> Path:
        directory = job_images_dir(self.settings, self.job_id)
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    async def write(self, result: DocumentResult) -> dict[str, Any] | None:
        await asyncio.to_thread(write_result, self.settings, self.job_id, result)
        if self.s3 is None:
            return None
        try:
            return await asyncio.to_thread(s3_upload_result, self.s3, self.settings, self.job_id)
        except Exception:
            log.exception("job %s: result upload to S3 failed; the result is on local disk", self.job_id)
            return None

    def discard(self) -> None:
        """Nothing: a job's crops go with the job (DELETE, retention)."""
