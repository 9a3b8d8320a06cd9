"""Batch conversion of PDFs in S3, sharded across processes or Kubernetes Indexed Job completions.

`python -m app batch s3://bucket/in/ --out s3://bucket/out/ --shard i/n` lists every `.pdf` under the input
prefix, keeps the ones whose stable hash falls in shard `i` of `n`, skips those that already have a result,
and converts the rest through one PagePool (models load once per worker for the whole run).

Key scheme: the input `s3://B/in/reports/q3.pdf` (relative key `reports/q3.pdf`; PNG, JPEG, TIFF, WebP and BMP
inputs too) gives `<out>/reports/q3.md`, `<out>/reports/q3.json` and the crops under `<out>/reports/q3_images/`.
Inputs that would share a stem (`q3.pdf` and `q3.png`) keep their whole key instead: `<out>/reports/q3.pdf.json`,
`<out>/reports/q3.png.json` (`result_stems`). The JSON is uploaded last, so its presence means the result
is complete; that is the idempotency check, and a retried pod redoes only what is missing. An input the
pipeline rejects (not a PDF, encrypted, too large: 4xx errors) gets `<out>/reports/q3.error.json` instead and
counts as done, so retries do not grind on it; anything else (S3 trouble, a crashed worker) leaves no marker
and makes the run exit non-zero, so Kubernetes retries that shard.

Sharding hashes the relative key with SHA-256, so shard membership is the same in every process and every run,
whatever the listing order; two runs with `n` shards cover each input exactly once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from app.chunking.chunker import ChunkOptions, chunk_document
from app.errors import AppError, InvalidParameter
from app.pipeline.options import ConvertOptions, resolve_options
from app.settings import Settings
from app.storage.s3 import S3Uploader

log = logging.getLogger(__name__)

PDF_SUFFIX = ".pdf"
# Inputs by key suffix (listing S3 cannot look at bytes); what each file really is, intake decides by its bytes.
INPUT_SUFFIXES = (PDF_SUFFIX, ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")
IMAGES_SUFFIX = "_images/"
MD_SUFFIX = ".md"
JSON_SUFFIX = ".json"
ERROR_SUFFIX = ".error.json"
CHUNKS_SUFFIX = ".chunks.json"  # with --chunking: the retrieval chunks (app/chunking/), uploaded before the JSON


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or ends with "/"

    def key(self, relative: str) -> str:
        return self.prefix + relative

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_s3_url(url: str) -> S3Location:
    """`s3://bucket/some/prefix` -> S3Location("bucket", "some/prefix/"): a prefix always names a folder."""
    if not url.startswith("s3://"):
        raise InvalidParameter(f"{url!r} is not an s3://bucket/prefix URL")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise InvalidParameter(f"{url!r} has no bucket name")
    prefix = prefix.strip("/")
    return S3Location(bucket, prefix + "/" if prefix else "")


def parse_shard(spec: str | None, environ: Mapping[str, str] = os.environ) -> tuple[int, int]:
    """`"i/n"` (0-based i) -> (i, n). Without a spec, Kubernetes Indexed Jobs give i in JOB_COMPLETION_INDEX and
    the Job manifest gives n in BATCH_SHARDS; with neither, one shard takes everything."""
    if spec is None:
        index, count = environ.get("JOB_COMPLETION_INDEX"), environ.get("BATCH_SHARDS")
        if index is None and count is None:
            return 0, 1
        if index is None or count is None:
            raise InvalidParameter("JOB_COMPLETION_INDEX and BATCH_SHARDS must be set together (or pass --shard i/n)")
        spec = f"{index}/{count}"
    try:
        index_text, count_text = spec.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise InvalidParameter(f"shard {spec!r}: expected i/n such as 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise InvalidParameter(f"shard {spec!r}: need 0 <= i < n")
    return index, count


def shard_of(relative_key: str, shards: int) -> int:
    digest = hashlib.sha256(relative_key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shards


def result_stem(relative_key: str) -> str:
    """`reports/q3.pdf` -> `reports/q3` (the suffix is matched case-insensitively)."""
    path = PurePosixPath(relative_key)
    return str(path.with_suffix("")) if path.suffix.lower() in INPUT_SUFFIXES else relative_key


def result_stems(input_keys: Iterable[str]) -> dict[str, str]:
    """Each input's output stem: `result_stem`, unless another input would write the same file (`a.pdf` and
    `a.png` share `a.json`; `a.error.pdf`'s result is `a.pdf`'s error marker `a.error.json`), then the whole key
    (`a.pdf.json`, `a.png.json`), so no output overwrites another or passes for it.

    Decided from the whole listing, not one shard's part of it, so every shard and every run names an input's
    result the same way; repeated because a whole key can itself be another input's stem (`a.pdf.png`)."""
    keys = sorted(set(input_keys))
    stems = {key: result_stem(key) for key in keys}
    while True:
        owners: dict[str, set[str]] = {}
        for key, stem in stems.items():
            for name in _output_names(stem):
                owners.setdefault(name, set()).add(key)
        shared = {key for group in owners.values() if len(group) > 1 for key in group if stems[key] != key}
        if not shared:
            return stems
        for key in shared:  # whole keys never clash (inputs end in an input suffix): each round settles some
            stems[key] = key


def _output_names(stem: str) -> tuple[str, str]:
    """What an input with this stem may write, up to the suffix both kinds of output add (`.json`)."""
    return stem, stem + ERROR_SUFFIX.removesuffix(JSON_SUFFIX)


def is_input(relative_key: str) -> bool:
    return relative_key.lower().endswith(INPUT_SUFFIXES) and not relative_key.endswith("/")


@dataclass
class BatchPlan:
    todo: list[str] = field(default_factory=list)  # relative keys to convert, sorted
    done: list[str] = field(default_factory=list)  # already have a result or an error marker
    other_shards: int = 0
    stems: dict[str, str] = field(default_factory=dict)  # relative key -> output stem (result_stems)


def plan(input_keys: Iterable[str], existing_outputs: Iterable[str], shard: int, shards: int) -> BatchPlan:
    """Decide what this shard converts. Both key lists are relative to their prefixes."""
    existing = set(existing_outputs)
    result = BatchPlan(stems=result_stems(key for key in input_keys if is_input(key)))
    for key in sorted(result.stems):
        if shard_of(key, shards) != shard:
            result.other_shards += 1
            continue
        stem = result.stems[key]
        if stem + JSON_SUFFIX in existing or stem + ERROR_SUFFIX in existing:
            result.done.append(key)
        else:
            result.todo.append(key)
    return result


def list_relative_keys(s3: S3Uploader, location: S3Location) -> Iterator[str]:
    for key in s3.list_keys(location.prefix, bucket=location.bucket):
        yield key[len(location.prefix) :]


@dataclass
class BatchReport:
    shard: int
    shards: int
    converted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # input's fault: error marker written
    failed: dict[str, str] = field(default_factory=dict)  # our side: no marker, retry the shard
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "shard": f"{self.shard}/{self.shards}",
            "converted": len(self.converted),
            "skipped": len(self.skipped),
            "rejected": self.rejected,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
        }


class _BucketOutputs:
    """The conversion's `Outputs` in the destination bucket (app/conversion/service.py): the kept crops under
    `<stem>_images/` and the result's links pointed there, `<stem>.md`, with --chunking `<stem>.chunks.json`, and
    `<stem>.json` last (its presence marks the result complete, so a complete result never links a missing image)."""

    def __init__(self, s3: Any, bucket: str, stem: str, crops: Path, chunk_options: ChunkOptions | None) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.stem = stem
        self.crops = crops
        self.chunk_options = chunk_options

    def images_dir(self) -> Path:
        self.crops.mkdir()
        return self.crops

    async def write(self, result: Any) -> None:
        result = await asyncio.to_thread(self._upload_images, result)
        markdown = result.markdown.encode("utf-8")
        document = result.model_dump_json().encode("utf-8")
        await asyncio.to_thread(self.s3.put_bytes, self.stem + MD_SUFFIX, markdown, "text/markdown", bucket=self.bucket)
        if self.chunk_options is not None:
            options = self.chunk_options
            chunks = await asyncio.to_thread(lambda: chunk_document(result, options).model_dump_json().encode("utf-8"))
            await asyncio.to_thread(self.s3.put_bytes, self.stem + CHUNKS_SUFFIX, chunks, "application/json",
                                    bucket=self.bucket)
        # Last: its presence marks the result complete.
        await asyncio.to_thread(self.s3.put_bytes, self.stem + JSON_SUFFIX, document, "application/json",
                                bucket=self.bucket)

    def discard(self) -> None:
        shutil.rmtree(self.crops, ignore_errors=True)

    def _upload_images(self, result: Any) -> Any:
        from app.storage import images as image_store

        prefix = PurePosixPath(self.stem).name + IMAGES_SUFFIX.rstrip("/")
        for image in image_store.image_files(self.crops):
            media = image_store.MEDIA_TYPES.get(image.suffix.lower(), "application/octet-stream")
            self.s3.upload_file(f"{self.stem}{IMAGES_SUFFIX}{image.name}", image, media, bucket=self.bucket)
        return image_store.relocate(result, prefix)


async def run_batch(
    settings: Settings,
    source: S3Location,
    dest: S3Location,
    *,
    shard: int = 0,
    shards: int = 1,
    options: ConvertOptions | None = None,
    documents_in_flight: int | None = None,
    chunk_options: ChunkOptions | None = None,
) -> BatchReport:
    """Convert this shard's missing results. Documents run concurrently (bounded) through one PagePool, which
    interleaves their pages fairly across its workers; every S3 call goes through the services' one uploader."""
    from app.conversion.service import Admit, convert
    from app.conversion.source import local_file
    from app.runtime.document import documents_in_flight as in_flight
    from app.runtime.document import for_each_document
    from app.services import build_services

    options = options or resolve_options(settings)  # the service defaults
    services = build_services(settings, vlm=options.mode == "vl", s3=True)
    s3 = services.s3
    assert s3 is not None  # asked for above
    started = time.monotonic()
    report = BatchReport(shard=shard, shards=shards)

    try:
        inputs, outputs = await asyncio.gather(
            asyncio.to_thread(lambda: list(list_relative_keys(s3, source))),
            asyncio.to_thread(lambda: list(list_relative_keys(s3, dest))),
        )
    except BaseException:
        await services.aclose(0)
        raise
    work = plan(inputs, outputs, shard, shards)
    report.skipped = work.done
    log.info(
        "batch shard %d/%d: %d to convert, %d already done, %d in other shards",
        shard, shards, len(work.todo), len(work.done), work.other_shards,
    )
    if not work.todo:
        await services.aclose(0)
        report.seconds = time.monotonic() - started
        return report

    pool = services.pool
    try:
        with tempfile.TemporaryDirectory(prefix="batch-") as scratch:

            async def one(index: int, relative: str) -> None:
                local = Path(scratch) / f"{index}.pdf"
                stem = dest.key(work.stems[relative])
                crops = Path(scratch) / f"{index}-images"
                try:
                    await asyncio.to_thread(s3.download_file, source.key(relative), local, bucket=source.bucket)
                    # An image becomes its PDF wrapper (refused in text mode: it has no text layer).
                    document = await asyncio.to_thread(local_file, local, settings, mode=options.mode)
                    await convert(services, document, options,
                                  _BucketOutputs(s3, dest.bucket, stem, crops, chunk_options), admit_how=Admit.WAIT)
                    report.converted.append(relative)
                    log.info("batch: %s -> s3://%s/%s{%s,%s}", relative, dest.bucket, stem, MD_SUFFIX, JSON_SUFFIX)
                except AppError as exc:
                    if exc.caller_fault:
                        marker = {"input": f"s3://{source.bucket}/{source.key(relative)}",
                                  "error": {"type": exc.type, "message": exc.message}}
                        body = json.dumps(marker).encode("utf-8")
                        await asyncio.to_thread(s3.put_bytes, stem + ERROR_SUFFIX, body, "application/json",
                                                bucket=dest.bucket)
                        report.rejected[relative] = exc.type
                        log.warning("batch: %s rejected: %s", relative, exc.message)
                    else:
                        report.failed[relative] = f"{exc.type}: {exc.message}"
                        log.error("batch: %s failed: %s", relative, exc.message)
                except Exception as exc:  # noqa: BLE001 - one bad document must not stop the shard
                    report.failed[relative] = type(exc).__name__
                    log.exception("batch: %s failed", relative)
                finally:
                    local.unlink(missing_ok=True)
                    shutil.rmtree(crops, ignore_errors=True)

            if services.vlm is not None:
                await services.vlm.wait_until_ready(settings.vlm_startup_timeout_s)
            pool.start()
            await for_each_document(work.todo, one, in_flight=documents_in_flight or in_flight(pool.size))
    finally:
        await services.aclose(settings.shutdown_grace_s)
    report.seconds = time.monotonic() - started
    return report
