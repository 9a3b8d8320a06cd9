"""The baked-models manifest: written from a models dir, verified by `/health` (sizes) and the build (hashes)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from app.models_manifest import (
    LAYOUT_MODEL,
    MANIFEST_NAME,
    VLM_MODEL,
    ModelSource,
    build_manifest,
    model_set,
    problems,
    required_for,
    verify,
    write_manifest,
)

SOURCES = [
    ModelSource(VLM_MODEL, "PaddlePaddle/PaddleOCR-VL", "abc123"),
    ModelSource(LAYOUT_MODEL, "PaddlePaddle/PaddleOCR-VL", "abc123", subfolder=LAYOUT_MODEL),
]


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    """A fake PADDLEX_HOME/official_models with the two models' typical files (tiny contents)."""
    root = tmp_path / "official_models"
    files = {
        f"{VLM_MODEL}/config.json": b'{"architectures": ["PaddleOCRVLForConditionalGeneration"]}',
        f"{VLM_MODEL}/model.safetensors": os.urandom(4096),
        f"{VLM_MODEL}/tokenizer.json": b'{"model": {}}',
        f"{LAYOUT_MODEL}/inference.json": b"{}",
        f"{LAYOUT_MODEL}/inference.pdiparams": os.urandom(2048),
        f"{LAYOUT_MODEL}/inference.yml": b"Global: {model_name: PP-DocLayoutV2}\n",
        # huggingface_hub's download bookkeeping must not count as a model file
        f"{VLM_MODEL}/.cache/huggingface/download/model.safetensors.metadata": b"etag",
    }
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_manifest_lists_every_model_file_with_size_and_sha256(models_dir: Path) -> None:
    path = write_manifest(models_dir, SOURCES)
    manifest = json.loads(path.read_text())
    weights = models_dir / VLM_MODEL / "model.safetensors"
    entry = manifest["files"][f"{VLM_MODEL}/model.safetensors"]
    assert entry == {"size": weights.stat().st_size, "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}
    assert len(manifest["files"]) == 6
    assert not any(".cache" in name for name in manifest["files"])
    assert manifest["models"][LAYOUT_MODEL]["subfolder"] == LAYOUT_MODEL
    assert manifest["models"][VLM_MODEL]["revision"] == "abc123"
    assert manifest["models"][VLM_MODEL]["files"] == 3


def test_freshly_written_manifest_verifies_shallow_and_deep(models_dir: Path) -> None:
    write_manifest(models_dir, SOURCES)
    assert verify(models_dir) is True
    assert verify(models_dir, deep=True) is True
    assert problems(models_dir, deep=True) == []


def test_missing_manifest_is_reported(models_dir: Path) -> None:
    assert verify(models_dir) is False
    assert problems(models_dir) == [f"no {MANIFEST_NAME} in {models_dir}"]


def test_corrupt_manifest_is_reported_not_raised(models_dir: Path) -> None:
    (models_dir / MANIFEST_NAME).write_text("{not json")
    assert verify(models_dir) is False
    assert "unreadable" in problems(models_dir)[0]


def test_deleted_weight_file_fails_verification(models_dir: Path) -> None:
    write_manifest(models_dir, SOURCES)
    (models_dir / LAYOUT_MODEL / "inference.pdiparams").unlink()
    assert verify(models_dir) is False
    assert problems(models_dir) == [f"{LAYOUT_MODEL}/inference.pdiparams: missing"]


def test_truncated_file_fails_the_fast_size_check(models_dir: Path) -> None:
    write_manifest(models_dir, SOURCES)
    weights = models_dir / VLM_MODEL / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert problems(models_dir) == [f"{VLM_MODEL}/model.safetensors: size 100, manifest says 4096"]


def test_same_size_corruption_is_caught_only_by_the_deep_check(models_dir: Path) -> None:
    write_manifest(models_dir, SOURCES)
    weights = models_dir / VLM_MODEL / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[0] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert verify(models_dir) is True  # sizes still match: /health stays cheap
    assert verify(models_dir, deep=True) is False
    assert problems(models_dir, deep=True) == [f"{VLM_MODEL}/model.safetensors: sha256 differs from the manifest"]


def test_file_added_after_the_build_is_reported(models_dir: Path) -> None:
    write_manifest(models_dir, SOURCES)
    (models_dir / LAYOUT_MODEL / "stray.bin").write_bytes(b"x")
    assert problems(models_dir) == [f"{LAYOUT_MODEL}/stray.bin: not in the manifest"]


def test_manifest_without_a_required_model_fails(models_dir: Path) -> None:
    write_manifest(models_dir, SOURCES[:1])
    assert problems(models_dir) == [f"model {LAYOUT_MODEL} is not in the manifest"]


def test_building_a_manifest_for_a_missing_model_dir_raises(models_dir: Path) -> None:
    extra = SOURCES + [ModelSource("PP-OCRv5_server_det", "PaddlePaddle/PP-OCRv5_server_det", "x")]
    with pytest.raises(FileNotFoundError, match="PP-OCRv5_server_det"):
        build_manifest(models_dir, extra)


def test_preload_verify_cli_exits_nonzero_on_damage(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "preload"))
    import preload_models

    write_manifest(models_dir, SOURCES)
    assert preload_models.main(["--verify", "--models-dir", str(models_dir)]) == 0
    (models_dir / VLM_MODEL / "tokenizer.json").write_bytes(b"{}")
    assert preload_models.main(["--verify", "--models-dir", str(models_dir)]) == 1


def test_preload_writes_the_paddlex_layout_and_a_verifiable_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The download step is replaced by a fake hub that materialises files; everything around it is real."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "preload"))
    import preload_models

    fetched: list[ModelSource] = []

    def fake_download(source: ModelSource, target: Path, sources: list[ModelSource]) -> None:
        fetched.append(source)
        target.mkdir(parents=True)
        (target / "config.json").write_text(json.dumps({"name": source.name, "revision": source.revision}))

    monkeypatch.setattr(preload_models, "download", fake_download)
    monkeypatch.setenv("PADDLEX_HOME", str(tmp_path / "pdx"))
    assert preload_models.main([]) == 0
    models = tmp_path / "pdx" / "official_models"
    assert sorted(p.name for p in models.iterdir()) == sorted([LAYOUT_MODEL, MANIFEST_NAME, VLM_MODEL])
    assert verify(models, deep=True)
    # The default: PaddleOCR-VL-1.6 with PP-DocLayoutV3, each from its own repository at a pinned commit.
    assert [(s.name, s.repo_id, s.subfolder) for s in fetched] == [
        ("PaddleOCR-VL-1.6-0.9B", "PaddlePaddle/PaddleOCR-VL-1.6", None),
        ("PP-DocLayoutV3", "PaddlePaddle/PP-DocLayoutV3", None)]
    assert all(len(s.revision) == 40 and int(s.revision, 16) >= 0 for s in fetched)


def test_the_previous_model_set_is_one_argument_away_and_verifies_as_its_own_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "preload"))
    import preload_models

    def fake_download(source: ModelSource, target: Path, sources: list[ModelSource]) -> None:
        target.mkdir(parents=True)
        (target / "inference.yml").write_text(source.name)

    monkeypatch.setattr(preload_models, "download", fake_download)
    models = tmp_path / "official_models"
    assert preload_models.main(["--vlm", "PaddleOCR-VL-0.9B", "--models-dir", str(models)]) == 0
    assert sorted(p.name for p in models.iterdir()) == ["PP-DocLayoutV2", "PaddleOCR-VL-0.9B", MANIFEST_NAME]
    assert problems(models) == []  # the manifest's own set is what is required
    assert problems(models, required=required_for("PaddleOCR-VL-1.6-0.9B")) == [
        "model PaddleOCR-VL-1.6-0.9B is not in the manifest", "model PP-DocLayoutV3 is not in the manifest"]


def test_preload_downloads_only_its_own_subfolder_of_a_shared_repository(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "preload"))
    import preload_models

    calls: list[dict] = []

    def fake_snapshot_download(**kwargs):
        calls.append(kwargs)
        local = Path(kwargs["local_dir"])
        folder = local / kwargs["allow_patterns"][0].rstrip("/*") if kwargs["allow_patterns"] else local
        folder.mkdir(parents=True)
        (folder / "x.bin").write_bytes(b"x")

    import types
    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(snapshot_download=fake_snapshot_download))
    old = model_set("PaddleOCR-VL-0.9B")
    (tmp_path / "m").mkdir()
    preload_models.download(old.vlm, tmp_path / "m" / old.vlm.name, [old.vlm, old.layout])
    preload_models.download(old.layout, tmp_path / "m" / old.layout.name, [old.vlm, old.layout])
    assert calls[0]["ignore_patterns"] == ["PP-DocLayoutV2/*"] and calls[0]["allow_patterns"] is None
    assert calls[1]["allow_patterns"] == ["PP-DocLayoutV2/*"] and calls[1]["ignore_patterns"] is None
    new = model_set("PaddleOCR-VL-1.6-0.9B")  # two repositories: nothing to leave out
    preload_models.download(new.vlm, tmp_path / "m" / new.vlm.name, [new.vlm, new.layout])
    assert calls[2]["ignore_patterns"] is None
