"""Command-line commands, one module each (see app/cli.py)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

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


def add_chunking_arguments(parser: Any, where: str) -> None:
    """--chunking and --max-tokens, checked by app/chunking/chunker.py `parse_chunk_options` (exit status 2)."""
    parser.add_argument("--chunking", default=None, metavar="hierarchical|hybrid",
                        help=f"also write retrieval chunks to {where} (docs: README, 'Chunks for retrieval')")
    parser.add_argument("--max-tokens", default=None, metavar="N",
                        help="largest chunk in cl100k_base tokens (default 512; needs --chunking)")
