"""Results on local disk: `OUTPUT_DIR/<request_id>/result.json` and `result.md`, each written atomically.

Only the server-generated (or validated) request id ever names a path; nothing the client called its file
reaches the filesystem, so `../../etc/passwd.pdf` is just a string in a log line.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from pathlib import Path

from app.pipeline.result import DocumentResult

# Request ids we accept from clients (X-Request-ID) and use as directory names.
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

RESULT_JSON = "result.json"
RESULT_MD = "result.md"


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one, never a partial one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def local_outputs(out_dir: Path) -> dict[str, object]:
    """How a response names the files written for it: the result id (the directory's name under OUTPUT_DIR) and
    paths relative to OUTPUT_DIR. Never the absolute path: it tells a client about the host's layout."""
    return {"id": out_dir.name, "files": [f"{out_dir.name}/{RESULT_JSON}", f"{out_dir.name}/{RESULT_MD}"]}


def write_outputs(output_dir: Path, request_id: str, result: DocumentResult, *, fresh_dir: bool = False) -> Path:
    """Write `result.json` and `result.md` under `output_dir/request_id/` and return that directory.

    `fresh_dir`: the directory must be new. Clients choose request ids (`X-Request-ID`) and may reuse one; an
    earlier result is never overwritten: a taken name gets a random suffix (the response says where it went)."""
    if not SAFE_ID.match(request_id):
        raise ValueError(f"unsafe request id {request_id!r}")
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    target = Path(output_dir) / request_id
    while fresh_dir:
        try:
            target.mkdir()
            break
        except FileExistsError:
            target = Path(output_dir) / f"{request_id[:55]}-{uuid.uuid4().hex[:8]}"
    target.mkdir(exist_ok=True)
    atomic_write(target / RESULT_JSON, result.model_dump_json(indent=2).encode("utf-8"))
    atomic_write(target / RESULT_MD, result.markdown.encode("utf-8"))
    return target
