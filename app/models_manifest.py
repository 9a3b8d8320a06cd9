"""The baked models' manifest: what the image build downloaded, so the running container can tell it is intact.

`preload/preload_models.py` downloads the models into `$PADDLEX_HOME/official_models/<name>/` at build time and
then calls `write_manifest`, which records every file's size and SHA-256 plus where each model came from.
`verify(models_dir)` is what `/health.models_present` reports: every required model is listed and every listed
file exists with its recorded size. `verify(models_dir, deep=True)` also re-hashes every file; the build runs it
(`preload_models.py --verify`) because hashing ~2 GB takes seconds, too slow for a health endpoint.

Standard library only: the image's model-download stage imports this module without the app's dependencies.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1

# Download bookkeeping that is not part of a model (huggingface_hub keeps `.cache/` inside `local_dir`).
_SKIPPED_DIRS = frozenset({".cache", "__pycache__"})
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelSource:
    """Where one model directory came from: a hub repository at a fixed revision, optionally one subfolder."""

    name: str
    repo_id: str
    revision: str
    subfolder: str | None = None


@dataclass(frozen=True)
class ModelSet:
    """The two models one image serves: the VLM (its directory name is also vLLM's served model name and PaddleX's
    chat template's file name) and the layout model that cuts the page for it, each pinned by revision."""

    vlm: ModelSource
    layout: ModelSource

    @property
    def names(self) -> tuple[str, str]:
        return (self.vlm.name, self.layout.name)


# Keyed by the VLM's name: the image's VLM_MODEL build argument picks one. Revisions are hub commit hashes (a branch
# would make two builds of one Dockerfile differ). PaddleOCR-VL-1.6 pairs with PP-DocLayoutV3 (PaddleX 3.7.2
# configs/pipelines/PaddleOCR-VL-1.6.yaml), which has its own hub repository; the first PaddleOCR-VL keeps
# PP-DocLayoutV2 in a subfolder of its own repository.
MODEL_SETS: dict[str, ModelSet] = {
    "PaddleOCR-VL-1.6-0.9B": ModelSet(
        vlm=ModelSource("PaddleOCR-VL-1.6-0.9B", "PaddlePaddle/PaddleOCR-VL-1.6", "c5630abae1d940eafe0697512a0325494b02ab42"),
        layout=ModelSource("PP-DocLayoutV3", "PaddlePaddle/PP-DocLayoutV3", "7b48a7566925fa464281f930c58eee04fe2c862a"),
    ),
    "PaddleOCR-VL-0.9B": ModelSet(
        vlm=ModelSource("PaddleOCR-VL-0.9B", "PaddlePaddle/PaddleOCR-VL", "7fa00a8c55b735ba51ba49a9058f3f9c57a99a11"),
        layout=ModelSource("PP-DocLayoutV2", "PaddlePaddle/PaddleOCR-VL", "7fa00a8c55b735ba51ba49a9058f3f9c57a99a11",
                           subfolder="PP-DocLayoutV2"),
    ),
}
DEFAULT_VLM = "PaddleOCR-VL-1.6-0.9B"
VLM_MODEL, LAYOUT_MODEL = MODEL_SETS[DEFAULT_VLM].names
REQUIRED_MODELS: tuple[str, ...] = (VLM_MODEL, LAYOUT_MODEL)


def model_set(vlm_name: str) -> ModelSet:
    """The model set whose VLM is `vlm_name` (what VLM_MODEL_NAME serves); ValueError names the known ones."""
    try:
        return MODEL_SETS[vlm_name]
    except KeyError:
        raise ValueError(f"unknown VLM {vlm_name!r}: the image knows {', '.join(MODEL_SETS)}") from None


def paired_layout(vlm_name: str) -> str:
    """The layout model that runs beside `vlm_name` (the default set's for a VLM of no known set)."""
    found = MODEL_SETS.get(vlm_name)
    return found.layout.name if found else LAYOUT_MODEL


def required_for(vlm_name: str) -> tuple[str, ...] | None:
    """The models a container serving `vlm_name` needs baked (None for a VLM of no known set: then the manifest's
    own set is checked)."""
    found = MODEL_SETS.get(vlm_name)
    return found.names if found else None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _model_files(model_dir: Path) -> list[Path]:
    files = []
    for root, dirs, names in os.walk(model_dir):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
        files.extend(Path(root) / name for name in sorted(names))
    return files


def build_manifest(models_dir: Path, sources: list[ModelSource]) -> dict:
    """Describe every file under `models_dir/<source.name>/` (paths relative to `models_dir`, POSIX separators)."""
    files: dict[str, dict[str, object]] = {}
    models: dict[str, dict[str, object]] = {}
    for source in sources:
        model_dir = models_dir / source.name
        if not model_dir.is_dir():
            raise FileNotFoundError(f"model {source.name} is missing: no directory {model_dir}")
        found = _model_files(model_dir)
        if not found:
            raise FileNotFoundError(f"model {source.name} is empty: {model_dir}")
        for path in found:
            relative = path.relative_to(models_dir).as_posix()
            files[relative] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
        models[source.name] = {
            "repo_id": source.repo_id,
            "revision": source.revision,
            "subfolder": source.subfolder,
            "files": len(found),
            "bytes": sum(p.stat().st_size for p in found),
        }
    return {"version": MANIFEST_VERSION, "models": models, "files": files}


def write_manifest(models_dir: Path, sources: list[ModelSource]) -> Path:
    """Hash the downloaded models and write `models_dir/manifest.json` atomically; returns its path."""
    manifest = build_manifest(models_dir, sources)
    target = models_dir / MANIFEST_NAME
    fd, tmp = tempfile.mkstemp(dir=models_dir, prefix=".manifest-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("wrote %s: %d models, %d files", target, len(manifest["models"]), len(manifest["files"]))
    return target


def load_manifest(models_dir: Path) -> dict:
    with (models_dir / MANIFEST_NAME).open(encoding="utf-8") as handle:
        return json.load(handle)


def problems(models_dir: Path, *, deep: bool = False, required: tuple[str, ...] | None = None) -> list[str]:
    """Everything wrong with the baked models, one readable line each; an empty list means intact.

    Checks that the manifest exists and parses, that each `required` model is listed, that every listed file
    exists with its recorded size (and, with `deep`, its recorded SHA-256), and that no file was added under a
    listed model's directory since the build. `required` by default: the model set of the VLM the manifest lists
    (both of its models), else the default set's."""
    models_dir = Path(models_dir)
    try:
        manifest = load_manifest(models_dir)
    except FileNotFoundError:
        return [f"no {MANIFEST_NAME} in {models_dir}"]
    except (OSError, ValueError) as exc:
        return [f"unreadable {MANIFEST_NAME} in {models_dir}: {exc}"]
    if not isinstance(manifest, dict) or manifest.get("version") != MANIFEST_VERSION:
        return [f"{MANIFEST_NAME} in {models_dir} is not a version {MANIFEST_VERSION} manifest"]
    listed_models = manifest.get("models") or {}
    files = manifest.get("files") or {}
    if required is None:
        required = next((MODEL_SETS[name].names for name in listed_models if name in MODEL_SETS), REQUIRED_MODELS)
    found = [f"model {name} is not in the manifest" for name in required if name not in listed_models]
    for relative, entry in sorted(files.items()):
        path = models_dir / relative
        try:
            size = path.stat().st_size
        except OSError:
            found.append(f"{relative}: missing")
            continue
        if size != entry.get("size"):
            found.append(f"{relative}: size {size}, manifest says {entry.get('size')}")
        elif deep and sha256_file(path) != entry.get("sha256"):
            found.append(f"{relative}: sha256 differs from the manifest")
    for name in listed_models:
        model_dir = models_dir / name
        if model_dir.is_dir():
            for path in _model_files(model_dir):
                relative = path.relative_to(models_dir).as_posix()
                if relative not in files:
                    found.append(f"{relative}: not in the manifest")
    return found


def verify(models_dir: Path, *, deep: bool = False, required: tuple[str, ...] | None = None) -> bool:
    """True when the baked models match their manifest (see `problems`); what `/health.models_present` shows."""
    found = problems(models_dir, deep=deep, required=required)
    for line in found[:20]:
        log.warning("models check: %s", line)
    return not found
