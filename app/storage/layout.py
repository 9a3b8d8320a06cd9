"""The output layout, in one place: what a result directory holds and how its files are written.

A result directory (`OUTPUT_DIR/<request id>/`, or a job's `OUTPUT_DIR/jobs/<id>/`, see app/jobs/files.py) holds
`result.json`, `result.md` and the figure crops in `images/`; S3 copies, the zip bundle and the web UI use the same
relative names. Every file is written with `atomic_write` (temp file in the same directory, then rename), so a
reader sees the old file or the whole new one, never a partial one. The pipeline's workers write the crops, the
storage layer the results: both import the names from here.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

IMAGES_DIRNAME = "images"
RESULT_JSON = "result.json"
RESULT_MD = "result.md"


def atomic_write(path: Path, data: bytes, *, durable: bool = True, mode: int | None = None) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one. `durable` syncs the data to
    disk before the rename (results; a crop is re-made by re-converting its page, so crops skip it); `mode` sets
    the permissions (a temp file starts as 0600)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
