"""Build-time model download for the GPU image: `python preload/preload_models.py [--vlm NAME] [--verify |
--manifest-only] [--models-dir DIR]`.

Downloads one model set (app/models_manifest.py `MODEL_SETS`: the VLM named by `--vlm`, PaddleOCR-VL-1.6-0.9B by
default, and its layout model, PP-DocLayoutV3 for 1.6) at pinned revisions into
`$PADDLEX_HOME/official_models/<name>/` (the layout PaddleX itself uses, so the layout stage finds its model where it
expects it and vLLM serves the VLM from a plain directory), then writes `manifest.json` with every file's size and
SHA-256. `--verify` re-hashes everything against the manifest and exits non-zero on any difference; the Dockerfile
runs it in the final stage, so an image with damaged weights never gets built. `--manifest-only` writes the manifest
of model directories already in place (scripts/rehearse_image.sh, which cannot reach the hub).

A model lives at its repository's root or in a subfolder of it (PP-DocLayoutV2 sits in PaddleOCR-VL's repository);
the revision is a commit hash.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from the build context

from app.models_manifest import (  # noqa: E402
    DEFAULT_VLM,
    MODEL_SETS,
    ModelSource,
    model_set,
    problems,
    write_manifest,
)

log = logging.getLogger("preload")


def default_models_dir() -> Path:
    return Path(os.environ.get("PADDLEX_HOME", Path.home() / ".paddlex")) / "official_models"


def download(source: ModelSource, target: Path, sources: list[ModelSource]) -> None:
    """Fetch one model into `target` (replaced atomically). The only function here that touches the network."""
    from huggingface_hub import snapshot_download  # build stage only; the runtime never imports it

    # The other models of the same repository live in subfolders of it: not part of this one.
    others = [f"{s.subfolder}/*" for s in sources
              if s.repo_id == source.repo_id and s.subfolder and s.subfolder != source.subfolder]
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{source.name}-") as staging:
        snapshot = Path(staging) / "snapshot"
        snapshot_download(
            repo_id=source.repo_id,
            revision=source.revision,
            local_dir=snapshot,
            allow_patterns=[f"{source.subfolder}/*"] if source.subfolder else None,
            ignore_patterns=others or None,
        )
        fetched = snapshot / source.subfolder if source.subfolder else snapshot
        shutil.rmtree(fetched / ".cache", ignore_errors=True)  # huggingface_hub's bookkeeping, not the model
        if target.exists():
            shutil.rmtree(target)
        os.replace(fetched, target)


def preload(models_dir: Path, sources: list[ModelSource]) -> None:
    models_dir.mkdir(parents=True, exist_ok=True)
    for source in sources:
        log.info("downloading %s from %s@%s", source.name, source.repo_id, source.revision)
        download(source, models_dir / source.name, sources)
    write_manifest(models_dir, sources)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vlm", default=DEFAULT_VLM, choices=sorted(MODEL_SETS),
                        help=f"the VLM whose model set is baked (default {DEFAULT_VLM})")
    parser.add_argument("--models-dir", type=Path, default=None, help="default: $PADDLEX_HOME/official_models")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--verify", action="store_true", help="only check the models against manifest.json")
    mode.add_argument("--manifest-only", action="store_true", help="write manifest.json for models already there")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    models_dir = args.models_dir or default_models_dir()
    sources = [model_set(args.vlm).vlm, model_set(args.vlm).layout]
    if args.manifest_only:
        write_manifest(models_dir, sources)
    elif not args.verify:
        preload(models_dir, sources)
    found = problems(models_dir, deep=True)
    for line in found:
        log.error("%s", line)
    if found:
        return 1
    log.info("models in %s match their manifest", models_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
