"""Fixtures every suite shares: a scrubbed environment and fresh settings per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import AliasChoices

from app.settings import Settings

# Variables that would leak the developer's configuration into a test: every name a setting reads (its field name
# and each alias, from `Settings.model_fields`, so a new setting is scrubbed the day it is added), and the variables
# boto3 (AWS_) and vLLM (VLLM_) read by themselves.
_LIBRARY_PREFIXES = ("AWS_", "VLLM_")


def _settings_variables() -> frozenset[str]:
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        names.add(name)
        for alias in (field.alias, field.validation_alias):
            if isinstance(alias, str):
                names.add(alias)
            elif isinstance(alias, AliasChoices):
                names.update(choice for choice in alias.choices if isinstance(choice, str))
    return frozenset(n.upper() for n in names)  # pydantic-settings matches variables case-insensitively


_SETTINGS_VARIABLES = _settings_variables()

SHARED = Path(__file__).resolve().parents[2] / "shared"
EVAL_DIR = SHARED / "eval" / "olmocr-bench-sample"


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper() in _SETTINGS_VARIABLES or name.startswith(_LIBRARY_PREFIXES):
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
