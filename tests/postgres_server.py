"""A real PostgreSQL server for the tests: Debian's binaries, a fresh cluster in a temp dir, a free port.

PostgreSQL refuses to run as root, so under root (CI) the cluster belongs to the `postgres` system user the Debian
package creates and every server command runs through `runuser`; as anyone else it runs as that user. The server
listens on 127.0.0.1 only and trusts local connections (a throw-away cluster; nothing else can reach it).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.server_process import free_port

_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def postgres_bin_dir() -> Path | None:
    """Newest installed PostgreSQL's bin directory, or None when the Debian package is absent."""
    found = sorted(Path("/").glob(_BIN_GLOB.lstrip("/")), key=lambda p: int(p.parent.name), reverse=True)
    return next((p for p in found if (p / "initdb").exists()), None)


class PostgresServer:
    """`start()` makes and starts a cluster, `url` connects to its `appliance` database, `stop()` removes it."""

    def __init__(self) -> None:
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (apt: postgresql)")
        self.bin = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="pg-"))
        self.data = self.root / "data"
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self.url = f"postgresql://{self.user}@127.0.0.1:{self.port}/appliance"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresServer:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        # fsync off: a throw-away cluster, and the tests are about semantics, not durability of the disk.
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", self.user, "--no-sync", "-E", "UTF8")
        options = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root}" \
                  " -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")
        deadline = time.monotonic() + 30
        while True:
            try:
                self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "appliance")
                return self
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.root, ignore_errors=True)


async def fresh_store(server_url: str, **options: object):
    """An open PostgreSQL `SqlJobStore` on a new, empty database of the server at `server_url`."""
    from app.jobs.sql_store import SqlJobStore

    store = SqlJobStore(await fresh_database(server_url), **options)  # type: ignore[arg-type]
    await store.open()
    return store


async def fresh_database(server_url: str) -> str:
    """The URL of a new, empty database on the server at `server_url`."""
    import uuid

    import psycopg

    name = "t" + uuid.uuid4().hex[:12]
    async with await psycopg.AsyncConnection.connect(server_url, autocommit=True) as conn:
        await conn.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + "/" + name
