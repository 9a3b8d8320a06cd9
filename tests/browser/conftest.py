"""Fixtures for the browser tests: Debian's headless Chromium driven by selenium, and real servers.

Test modules call `support.skip_without_browser()` first: without chromium or chromedriver they skip with one
line (`make system-test-deps` installs both from Debian when run as root; CI does). Nothing is downloaded at test time:
the driver is the system one, given by path, so selenium's own driver manager never runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.browser.support import CHROMEDRIVER, CHROMIUM
from tests.server_process import ServerProcess


@pytest.fixture(scope="module")
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ServerProcess]]:
    """`start(**env)`: a real server (`python -m app serve`), ready; all stopped when the module ends."""
    servers: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        workdir = tmp_path_factory.mktemp("server")
        server = ServerProcess(workdir, {k.upper(): str(v) for k, v in env.items()}).start()
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator:
    """A fresh headless Chromium (its own profile and download folder, `browser.download_dir`)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # --no-sandbox: CI runs the tests as root, where Chromium's sandbox refuses to start.
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1366,900", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False,
    })
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.download_dir = downloads
    try:
        yield driver
    finally:
        driver.quit()
