"""Fixtures every suite shares: a scrubbed environment and fresh settings per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.settings import Settings

# Variables that would leak the developer's configuration into a test.
_PREFIXES = ("CLOUDRU_S3_", "S3_", "AWS_", "VLLM_", "VLM_", "API_KEY", "OUTPUT_DIR", "PADDLEX_HOME", "USE_VLM_API",
             "PROFILE", "WORKERS", "MAX_", "HOST", "PORT", "JOB_", "OCR_LANGS")

SHARED = Path(__file__).resolve().parents[2] / "shared"
EVAL_DIR = SHARED / "eval" / "olmocr-bench-sample"


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def make_settings(tmp_path: Path):
    """Settings for one test: output under tmp_path, no `.env` file, overrides as keyword arguments."""

    def build(**overrides: object) -> Settings:
        overrides.setdefault("output_dir", tmp_path / "output")
        return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]

    return build


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server for the whole session (Debian's package); skipped with one line where absent."""
    from tests.postgres_server import PostgresServer, postgres_bin_dir

    if postgres_bin_dir() is None:
        pytest.skip("PostgreSQL is not installed (apt: postgresql); `make test` installs it where it can")
    server = PostgresServer().start()
    yield server.url
    server.stop()
