"""Command-line commands, one module each (see app/cli.py)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.settings import Settings


def settings_from_env(prefix: str = "error: ") -> Settings | None:
    """Settings from the environment, or None after printing the one line that says what is wrong (exit 2)."""
    from app.settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        print(f"{prefix}{exc}", file=sys.stderr)
        return None
