"""Results on local disk: `OUTPUT_DIR/<request_id>/result.json` and `result.md`, each written atomically.

Only the server-generated (or validated) request id ever names a path; nothing the client called its file
reaches the filesystem, so `../../etc/passwd.pdf` is just a string in a log line.
"""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

from app.pipeline.result import DocumentResult
from app.settings import Settings
from app.storage.disk import as_insufficient_storage, is_disk_full, require_free_space
from app.storage.images import image_files
from app.storage.layout import IMAGES_DIRNAME, RESULT_JSON, RESULT_MD, atomic_write

# Request ids we accept from clients (X-Request-ID) and use as directory names.
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

def local_outputs(out_dir: Path) -> dict[str, object]:
    """How a response names the files written for it: the result id (the directory's name under OUTPUT_DIR) and
    paths relative to OUTPUT_DIR: result.json, result.md, then the figure crops in `images/` by name. Never the
    absolute path: it tells a client about the host's layout."""
    names = [RESULT_JSON, RESULT_MD] + [f"{IMAGES_DIRNAME}/{p.name}" for p in image_files(out_dir / IMAGES_DIRNAME)]
    return {"id": out_dir.name, "files": [f"{out_dir.name}/{name}" for name in names]}


def write_outputs(output_dir: Path, request_id: str, result: DocumentResult, *, fresh_dir: bool = False,
                  settings: Settings | None = None) -> Path:
    """Write `result.json` and `result.md` under `output_dir/request_id/` and return that directory.

    `fresh_dir`: the directory must be new. Clients choose request ids (`X-Request-ID`) and may reuse one; an
    earlier result is never overwritten: a taken name gets a random suffix (the response says where it went).
    With `settings`, the free-space guard runs first. A full disk raises InsufficientStorage (507) and leaves
    nothing behind: not one file of the pair without the other, no empty directory."""
    if not SAFE_ID.match(request_id):
        raise ValueError(f"unsafe request id {request_id!r}")
    body_json = result.model_dump_json(indent=2).encode("utf-8")
    body_md = result.markdown.encode("utf-8")
    if settings is not None:
        require_free_space(settings, len(body_json) + len(body_md))
    try:
        return _write_pair(Path(output_dir), request_id, body_json, body_md, fresh_dir=fresh_dir)
    except OSError as exc:
        if is_disk_full(exc):
            raise as_insufficient_storage("the result") from None
        raise


def _write_pair(output_dir: Path, request_id: str, body_json: bytes, body_md: bytes, *, fresh_dir: bool) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    target = Path(output_dir) / request_id
    while fresh_dir:
        try:
            target.mkdir()
            break
        except FileExistsError:
            target = Path(output_dir) / f"{request_id[:55]}-{uuid.uuid4().hex[:8]}"
    created = fresh_dir
    if not target.is_dir():
        target.mkdir()
        created = True
    written: list[Path] = []
    try:
        for name, data in ((RESULT_JSON, body_json), (RESULT_MD, body_md)):
            atomic_write(target / name, data)
            written.append(target / name)
    except BaseException:
        # Half a result reads as a whole one to whoever lists the directory: take back what was written.
        if created:
            shutil.rmtree(target, ignore_errors=True)
        else:
            for path in written:
                path.unlink(missing_ok=True)
        raise
    return target
