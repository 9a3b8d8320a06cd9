"""Build-time model download for the GPU image: `python preload/preload_models.py [--verify] [--models-dir DIR]`.

Downloads PaddleOCR-VL-0.9B and PP-DocLayoutV2 at pinned revisions into `$PADDLEX_HOME/official_models/<name>/`
(the layout PaddleX itself uses, so the layout stage finds PP-DocLayoutV2 where it expects it and vLLM serves
the VLM from a plain directory), then writes `manifest.json` with every file's size and SHA-256.
`--verify` re-hashes everything against the manifest and exits non-zero on any difference; the Dockerfile runs
it in the final stage, so an image with damaged weights never gets built.

Both models live in one Hugging Face repository: the VLM at its root, the layout model in `PP-DocLayoutV2/`.
The revision is a commit hash (a branch name would make two builds of the same Dockerfile differ).
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

from app.models_manifest import LAYOUT_MODEL, VLM_MODEL, ModelSource, problems, write_manifest  # noqa: E402

log = logging.getLogger("preload")

REPO_ID = os.environ.get("PADDLEOCR_VL_REPO", "PaddlePaddle/PaddleOCR-VL")
REVISION = os.environ.get("PADDLEOCR_VL_REVISION", "7fa00a8c55b735ba51ba49a9058f3f9c57a99a11")
SOURCES = [
    ModelSource(name=VLM_MODEL, repo_id=REPO_ID, revision=REVISION),
    ModelSource(name=LAYOUT_MODEL, repo_id=REPO_ID, revision=REVISION, subfolder=LAYOUT_MODEL),
]


def default_models_dir() -> Path:
    return Path(os.environ.get("PADDLEX_HOME", Path.home() / ".paddlex")) / "official_models"


def download(source: ModelSource, target: Path) -> None:
    """Fetch one model into `target` (replaced atomically). The only function here that touches the network."""
    from huggingface_hub import snapshot_download  # build stage only; the runtime never imports it

    others = [f"{s.subfolder}/*" for s in SOURCES if s.subfolder and s.subfolder != source.subfolder]
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


def preload(models_dir: Path) -> None:
    models_dir.mkdir(parents=True, exist_ok=True)
    for source in SOURCES:
        log.info("downloading %s from %s@%s", source.name, source.repo_id, source.revision)
        download(source, models_dir / source.name)
    write_manifest(models_dir, SOURCES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=None, help="default: $PADDLEX_HOME/official_models")
    parser.add_argument("--verify", action="store_true", help="only check the models against manifest.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    models_dir = args.models_dir or default_models_dir()
    if not args.verify:
        preload(models_dir)
    found = problems(models_dir, deep=True)
    for line in found:
        log.error("%s", line)
    if found:
        return 1
    log.info("models in %s match their manifest", models_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
