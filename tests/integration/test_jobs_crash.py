"""Jobs survive the server process dying: the real `python -m app serve`, killed mid-job, then started again.

What is checked, from the job database itself: every page has exactly one checkpoint computation (a page done
before the crash is not converted again: its `computed_at` is unchanged), the job ends `succeeded`, and its
result equals an uninterrupted run of the same file. The resumed job's progress is followed over SSE.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import pdfgen
from tests.server_process import ROOT, STARTUP_DEADLINE_S, free_port, wait_until

# OCR pages (about a second each here) so that a kill reliably lands mid-job; text pages are too fast for that.
PAGES = 12
MODE = "ocr"
DPI = 100


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str, proc: subprocess.Popen | None = None) -> None:
    def check() -> bool:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode} while waiting for {what}")
        return predicate()

    wait_until(check, timeout_s, what, interval_s=0.05)


class Server:
    """One `python -m app serve` process in its own session, so its page workers can be killed with it (the
shared `serve` fixture gives each server its own output directory; a restart here must reuse it)."""

    def __init__(self, output_dir: Path, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # A scrubbed environment and a scratch working directory: no developer `.env` or S3 settings leak in.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
               "PYTHONPATH": str(ROOT), "HOST": "127.0.0.1", "PORT": str(self.port), "OUTPUT_DIR": str(output_dir),
               "WORKERS": "1", "SHUTDOWN_GRACE_S": "30", "PYTHONUNBUFFERED": "1"}
        self.log = log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "app", "serve"], cwd=log_path.parent, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def wait_ready(self, timeout_s: float = STARTUP_DEADLINE_S) -> None:
        def ready() -> bool:
            try:
                return self.client.get("/readyz").status_code == 200
            except httpx.TransportError:
                return False

        _wait(ready, timeout_s, "/readyz", self.proc)

    def kill_everything(self) -> None:
        """SIGKILL to the server and its workers at once: what a container kill or power loss does."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def close(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        else:  # the workers of a server that exited by itself must not outlive it either
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[[], Server]]:
    servers: list[Server] = []
    output_dir = tmp_path / "output"

    def start() -> Server:
        server = Server(output_dir, tmp_path / "server.log")
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def document(tmp_path: Path) -> Path:
    return pdfgen.text_pdf(tmp_path / "doc.pdf", pages=PAGES)


def _db(output_dir: Path) -> Any:
    return closing(sqlite3.connect(output_dir / "jobs.db", timeout=10))


def _checkpoints(output_dir: Path, job_id: str) -> dict[int, tuple[float, int]]:
    with _db(output_dir) as db:
        rows = db.execute("SELECT page_index, computed_at, computations FROM pages WHERE job_id = ? AND state = 'done'",
                          (job_id,))
        return {index: (at, n) for index, at, n in rows}


def _job_row(output_dir: Path, job_id: str) -> tuple[str, int]:
    with _db(output_dir) as db:
        return db.execute("SELECT status, runs FROM jobs WHERE id = ?", (job_id,)).fetchone()


def _submit(server: Server, pdf: Path) -> str:
    response = server.client.post("/jobs", files={"file": (pdf.name, pdf.read_bytes(), "application/pdf")},
                                  data={"mode": MODE, "dpi": str(DPI)})
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def _wait_pages(server: Server, job_id: str, at_least: int) -> None:
    _wait(lambda: server.client.get(f"/jobs/{job_id}").json()["pages_done"] >= at_least, 120,
          f"{at_least} pages of {job_id}", server.proc)


def _wait_succeeded(server: Server, job_id: str) -> dict[str, Any]:
    state: dict[str, Any] = {}

    def finished() -> bool:
        state.update(server.client.get(f"/jobs/{job_id}").json())
        return state["status"] in ("succeeded", "failed", "cancelled")

    _wait(finished, 300, f"job {job_id} to finish", server.proc)
    assert state["status"] == "succeeded", state
    return state


def _comparable(document: dict[str, Any]) -> dict[str, Any]:
    return {"markdown": document["markdown"], "page_count": document["page_count"],
            "pages": [{k: v for k, v in p.items() if k != "timings"} for p in document["pages"]]}


def _follow_events(server: Server, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Read the job's SSE stream to its end. At the first page event, ask for the status on another connection:
    the job must still be running then, i.e. events arrive as pages finish, not in one batch at the end."""
    events: list[tuple[str, dict[str, Any]]] = []
    kind = ""
    with server.client.stream("GET", f"/jobs/{job_id}/events", timeout=300) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, json.loads(line.removeprefix("data: "))))
                if kind == "page" and sum(k == "page" for k, _ in events) == 1:
                    live = server.client.get(f"/jobs/{job_id}").json()
                    assert live["status"] == "running" and live["pages_done"] < PAGES, live
    return events


def _assert_resumed_cleanly(server: Server, output_dir: Path, job_id: str, before: dict[int, tuple[float, int]],
                            pdf: Path) -> None:
    state = _wait_succeeded(server, job_id)
    assert state["pages_done"] == state["pages_total"] == PAGES
    after = _checkpoints(output_dir, job_id)
    assert sorted(after) == list(range(PAGES))
    assert all(n == 1 for _, n in after.values()), {i: n for i, (_, n) in after.items() if n != 1}
    assert {i: after[i] for i in before} == before  # checkpointed before the crash: not computed again
    assert _job_row(output_dir, job_id) == ("succeeded", 2)  # one run before the crash, one after

    resumed = server.client.get(f"/jobs/{job_id}/result").json()
    reference_id = _submit(server, pdf)  # the same file, never interrupted
    _wait_succeeded(server, reference_id)
    reference = server.client.get(f"/jobs/{reference_id}/result").json()
    assert _comparable(resumed) == _comparable(reference)
    assert [p["page"] for p in resumed["pages"]] == list(range(1, PAGES + 1))


def test_kill_9_mid_job_then_restart_finishes_the_job_without_redoing_pages(start_server, document, tmp_path):
    output_dir = tmp_path / "output"
    server = start_server()
    job_id = _submit(server, document)
    _wait_pages(server, job_id, 3)
    server.kill_everything()
    before = _checkpoints(output_dir, job_id)
    assert 3 <= len(before) < PAGES, "the job should have been cut off midway; make its pages slower"
    assert _job_row(output_dir, job_id) == ("running", 1)
    assert not (output_dir / "jobs" / job_id / "result.json").exists()

    server = start_server()
    events = _follow_events(server, job_id)
    assert events[0][0] == "status" and events[0][1]["status"] == "running"
    assert events[-1][0] == "status" and events[-1][1]["status"] == "succeeded"
    pages = [data["page"] for kind, data in events if kind == "page"]
    assert pages and not set(pages) & {i + 1 for i in before}  # only the pages missing at the crash
    _assert_resumed_cleanly(server, output_dir, job_id, before, document)


def test_sigterm_mid_job_stops_gracefully_and_restart_finishes_the_job(start_server, document, tmp_path):
    output_dir = tmp_path / "output"
    server = start_server()
    job_id = _submit(server, document)
    _wait_pages(server, job_id, 3)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=60) == 0  # in-flight pages finish (or are dropped) within the grace period
    before = _checkpoints(output_dir, job_id)
    assert 3 <= len(before) < PAGES
    assert _job_row(output_dir, job_id) == ("running", 1)  # paused, not failed or cancelled

    _assert_resumed_cleanly(start_server(), output_dir, job_id, before, document)
