"""A really full filesystem for disk-full tests: a small tmpfs mounted for one test, and a filler file that
leaves exactly as much free space as the test wants. Not a mock: writes meet the kernel's ENOSPC.

Mounting needs root (CAP_SYS_ADMIN); where it cannot be done, the test is skipped with one line saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

FILLER = ".filler"


@contextmanager
def small_filesystem(path: Path, size_mb: int) -> Iterator[Path]:
    """Mount a `size_mb` tmpfs on `path` for the block; unmount (lazily, if still busy) afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    mount = shutil.which("mount")
    done = subprocess.run([mount or "mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
                          capture_output=True, text=True, check=False) if mount else None
    if done is None or done.returncode != 0:
        why = done.stderr.strip() if done is not None else "no mount command"
        pytest.skip(f"cannot mount a small tmpfs for a real full disk (needs root): {why}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill(path: Path, leave_bytes: int) -> Path:
    """Grow the filler file under `path` until only about `leave_bytes` stay free (tmpfs counts 4 KiB pages)."""
    filler = path / FILLER
    filler.unlink(missing_ok=True)
    free = shutil.disk_usage(path).free
    with filler.open("wb") as fh:
        remaining = max(0, free - leave_bytes)
        chunk = b"\0" * (1 << 20)
        while remaining > 0:
            remaining -= fh.write(chunk[: min(len(chunk), remaining)])
        fh.flush()
        os.fsync(fh.fileno())
    return filler


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free
