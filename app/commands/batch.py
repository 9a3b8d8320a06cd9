"""`python -m app batch s3://bucket/in/ --out s3://bucket/out/ [--shard i/n] [--mode auto|text|ocr|vl]`.

Converts the PDFs under an S3 prefix into `<out>/<stem>.md` and `<out>/<stem>.json` (see app/batch.py for the
key scheme, sharding and idempotency). Prints a one-line JSON report on stdout. Exit status: 0 when every
input of the shard has a result or an error marker, 1 when some failed on our side (retry the shard),
2 for bad arguments or settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from app.commands import add_chunking_arguments, settings_from_env
from app.pipeline.options import MODES


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("batch", help="convert every PDF under an S3 prefix (shardable, idempotent)")
    parser.add_argument("source", help="s3://bucket/prefix holding the PDFs (and images)")
    parser.add_argument("--out", required=True, help="s3://bucket/prefix for the .md/.json results")
    parser.add_argument("--shard", default=None, help="i/n, 0-based (default: JOB_COMPLETION_INDEX/BATCH_SHARDS)")
    parser.add_argument("--mode", choices=MODES, default=None, help="default: DEFAULT_MODE")
    parser.add_argument("--dpi", type=int, default=None, help="default: DEFAULT_DPI")
    parser.add_argument("--pages", default=None, help='page selection for every file, e.g. "1-3"')
    parser.add_argument("--images", choices=("refer", "embed", "none"), default="refer",
                        help="figure/table crops: uploaded to <stem>_images/ and linked (refer, default), "
                             "data: URIs in the outputs (embed), or none")
    parser.add_argument("--lang", default=None,
                        help="languages OCR reads: ISO 639-1 codes joined by '+' (ru, ru+en, uk, de, zh) or auto "
                             "(default: OCR_LANGS; each page's script decides)")
    add_chunking_arguments(parser, "<stem>.chunks.json")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.batch import parse_s3_url, parse_shard, run_batch
    from app.chunking.chunker import parse_chunk_options
    from app.errors import AppError
    from app.observability.logging import configure_logging
    from app.pipeline.options import resolve_options

    settings = settings_from_env(prefix="batch: ")
    if settings is None:
        return 2
    configure_logging(settings)
    try:
        source, dest = parse_s3_url(args.source), parse_s3_url(args.out)
        shard, shards = parse_shard(args.shard)
        options = resolve_options(settings, mode=args.mode, pages=args.pages, dpi=args.dpi, images=args.images,
                                  lang=args.lang)
        chunk_options = parse_chunk_options(args.chunking, args.max_tokens)
    except AppError as exc:
        print(f"batch: {exc.message}", file=sys.stderr)
        return 2
    report = asyncio.run(run_batch(settings, source, dest, shard=shard, shards=shards, options=options,
                                   chunk_options=chunk_options))
    print(json.dumps(report.as_dict(), sort_keys=True))
    return 0 if report.ok else 1
