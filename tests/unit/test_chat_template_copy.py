"""preload/chat_template.py: the image's chat-template step finds PaddleX's template for the served model in the
installed wheel WITHOUT importing paddlex (paddlex 3.7.2's `paddlex.inference.genai` raises on import unless a
genai engine plugin is installed, which failed the image build)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def fake_paddlex(site: Path) -> Path:
    """A paddlex laid out like the 3.7.2 wheel whose every __init__ raises, as genai's does without a plugin."""
    templates = site / "paddlex" / "inference" / "genai" / "chat_templates"
    templates.mkdir(parents=True)
    for package in (site / "paddlex", site / "paddlex" / "inference", site / "paddlex" / "inference" / "genai"):
        (package / "__init__.py").write_text("raise RuntimeError('The generative AI engine plugins are not available')\n")
    (templates / "PaddleOCR-VL-1.6-0.9B.jinja").write_text('{{- "Assistant:\\n" -}}')
    (templates / "PaddleOCR-VL-0.9B.jinja").write_text('{{- "Assistant: " -}}')
    return site


def run(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # -S: no site-packages, so the only paddlex is the one in `site` (the image step needs nothing else either)
    return subprocess.run([sys.executable, "-S", str(ROOT / "preload" / "chat_template.py"), *args],
                          env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize(("model", "cue"), [("PaddleOCR-VL-1.6-0.9B", "Assistant:\\n"), ("PaddleOCR-VL-0.9B", "Assistant: ")])
def test_the_served_models_template_is_copied_without_importing_paddlex(tmp_path, model, cue):
    site = fake_paddlex(tmp_path / "site")
    out = tmp_path / "home" / "chat_templates"
    result = run(site, model, str(out))
    assert result.returncode == 0, result.stderr
    assert (out / f"{model}.jinja").read_text() == f'{{{{- "{cue}" -}}}}'
    assert [p.name for p in out.iterdir()] == [f"{model}.jinja"]  # no temp file left behind


def test_an_unknown_model_fails_naming_the_templates_there(tmp_path):
    result = run(fake_paddlex(tmp_path / "site"), "PaddleOCR-VL-9.9-0.9B", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "no chat template for PaddleOCR-VL-9.9-0.9B" in result.stderr
    assert "PaddleOCR-VL-0.9B, PaddleOCR-VL-1.6-0.9B" in result.stderr


def test_without_paddlex_it_says_so(tmp_path):
    result = run(tmp_path / "empty-site", "PaddleOCR-VL-1.6-0.9B", str(tmp_path / "out"))
    assert result.returncode == 1 and "paddlex is not installed" in result.stderr
