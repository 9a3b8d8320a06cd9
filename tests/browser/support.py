"""Where the browser is, and the one-line skip when it is not installed."""

from __future__ import annotations

import shutil

import pytest

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
MISSING = [name for name, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)) if path is None]


def skip_without_browser() -> None:
    """Skip the calling test module, in one line, when the browser is not installed."""
    if MISSING:
        pytest.skip(f"browser tests skipped: {' and '.join(MISSING)} not installed (as root: make system-test-deps, or "
                    "apt-get install chromium chromium-driver)", allow_module_level=True)
