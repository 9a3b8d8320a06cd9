"""Fixtures: the real server (`serve(**env)`, see tests/server_process.py) and a moto S3 server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server_process import ServerProcess, free_port, wait_until

@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    """`serve(**env) -> ServerProcess`, started and ready; every server is stopped at teardown."""
    servers: list[ServerProcess] = []

    def start(ready: bool = True, **env: str) -> ServerProcess:
        workdir = tmp_path / f"server{len(servers)}"
        workdir.mkdir()
        server = ServerProcess(workdir, {k.upper(): str(v) for k, v in env.items()}).start()
        servers.append(server)
        if ready:
            server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 for the session; yields its endpoint URL."""
    binary = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"moto_server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return True
        except httpx.TransportError:
            return False

    try:
        wait_until(up, 60, "moto_server")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def pdf_dir(tmp_path: Path) -> Path:
    path = tmp_path / "pdfs"
    path.mkdir()
    return path
