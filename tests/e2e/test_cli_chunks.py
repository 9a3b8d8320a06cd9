"""`python -m app convert --chunking`: the chunks file beside the Markdown and JSON, and its option errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests import pdfgen

ROOT = Path(__file__).resolve().parents[2]


def _convert(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    pdf = pdfgen.text_pdf(tmp_path / "doc.pdf", pages=2)
    return subprocess.run([sys.executable, "-m", "app", "convert", str(pdf), "-o", str(tmp_path / "out"), "-q",
                           "--mode", "text", *flags], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_convert_with_chunking_writes_a_chunks_file_within_max_tokens(tmp_path):
    done = _convert(tmp_path, "--chunking", "hierarchical", "--max-tokens", "40")
    assert done.returncode == 0, done.stderr
    chunks = json.loads((tmp_path / "out" / "doc.chunks.json").read_text())
    assert chunks["chunking"] == "hierarchical" and chunks["tokenizer"] == "cl100k_base"
    assert chunks["chunks"] and all(c["tokens"] <= 40 for c in chunks["chunks"])
    assert (tmp_path / "out" / "doc.json").exists()


def test_convert_refuses_max_tokens_without_chunking_with_exit_status_2(tmp_path):
    done = _convert(tmp_path, "--max-tokens", "100")
    assert done.returncode == 2
    assert "error: --max-tokens: only applies with chunking" in done.stderr
    assert not (tmp_path / "out" / "doc.json").exists()
