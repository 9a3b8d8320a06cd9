"""The one free-space rule for everything the service writes under OUTPUT_DIR, and the one test for "the disk is full".

Every path that takes in new work (uploads to /ocr/pdf and /jobs, hence new job rows) and the synchronous
route's copy of its result ask `require_free_space` before they write, so a nearly full disk is refused up front
with a 507 instead of failing halfway. A job's own result is written whenever it physically fits: the margin
exists so that jobs already accepted can finish. The guard is a look at `statvfs`, not a
reservation: a write can still meet ENOSPC (another process filled the disk meanwhile), so callers turn such an
error into the same 507 with `as_insufficient_storage`. Nothing is cached, so the service recovers by itself
the moment space returns.
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
from dataclasses import dataclass

from app.errors import InsufficientStorage
from app.settings import Settings

_MB = 1024 * 1024
# ENOSPC: no blocks or inodes left; EDQUOT: the user's quota is spent. Both mean "free space and retry".
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


@dataclass(frozen=True)
class DiskState:
    """Free space under OUTPUT_DIR against MIN_FREE_DISK_MB, as `/health` shows it."""

    free_mb: float
    min_free_mb: float

    @property
    def ok(self) -> bool:
        return self.free_mb >= self.min_free_mb

    def view(self) -> dict[str, object]:
        return {"status": "ok" if self.ok else "low", "free_mb": round(self.free_mb), "min_free_mb": self.min_free_mb}


def disk_state(settings: Settings) -> DiskState:
    """Free space on the filesystem holding OUTPUT_DIR (created if missing: it may be a fresh volume)."""
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    return DiskState(shutil.disk_usage(settings.output_dir).free / _MB, settings.min_free_disk_mb)


def require_free_space(settings: Settings, incoming_bytes: int = 0) -> None:
    """Raise 507 unless OUTPUT_DIR keeps MIN_FREE_DISK_MB free after `incoming_bytes` more are written."""
    state = disk_state(settings)
    if state.free_mb - incoming_bytes / _MB < state.min_free_mb:
        need = f"need {state.min_free_mb:g} MB free" + (f" after {incoming_bytes / _MB:.1f} MB" if incoming_bytes else "")
        raise InsufficientStorage(
            f"the output disk is nearly full: {state.free_mb:.0f} MB free ({need}); retry once space is freed"
        )


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` says the disk (or the quota) is full: an OSError from a write, or SQLite's SQLITE_FULL."""
    if isinstance(exc, OSError):
        return exc.errno in _FULL_ERRNOS
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", None)
        return code == sqlite3.SQLITE_FULL or "database or disk is full" in str(exc)
    return False


def as_insufficient_storage(what: str) -> InsufficientStorage:
    """The 507 for a write that met a full disk; `what` says which write (the upload, the result...)."""
    return InsufficientStorage(f"the output disk is full: {what} could not be written; retry once space is freed")

