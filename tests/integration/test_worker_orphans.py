"""Page workers die with their parent: the real server, killed with SIGKILL mid-conversion, leaves no process
behind (its page workers and multiprocessing's resource tracker), so a supervisor restarting the API does not
stack a new set of model-laden workers beside the old ones."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import httpx

from tests import pdfgen
from tests.server_process import wait_until

WORKERS = 2
GONE_WITHIN_S = 5.0


def _children(pid: int) -> set[int]:
    """Every live descendant of `pid`, from /proc (zombies count as gone)."""
    by_parent: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z":
            by_parent.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in by_parent.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if state[state.rindex(")") + 2] != "Z":
            alive.add(pid)
    return alive


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"


def test_workers_and_resource_tracker_die_within_seconds_of_a_sigkilled_api(serve, tmp_path):
    server = serve(workers=WORKERS)
    assert server.proc is not None
    descendants = _children(server.proc.pid)
    workers = {pid for pid in descendants if "spawn_main" in _cmdline(pid)}
    trackers = {pid for pid in descendants if "resource_tracker" in _cmdline(pid)}
    assert len(workers) == WORKERS and len(trackers) == 1, {pid: _cmdline(pid) for pid in descendants}
    pdf = pdfgen.text_pdf(tmp_path / "doc.pdf", pages=8)
    response: dict[str, object] = {}

    def convert() -> None:  # OCR pages take about a second each: the kill lands while workers are busy
        try:
            with httpx.Client(base_url=server.url, timeout=120) as client:
                response["status"] = client.post(
                    "/ocr/pdf", files={"file": (pdf.name, pdf.read_bytes(), "application/pdf")},
                    data={"mode": "ocr", "dpi": "100"},
                ).status_code
        except httpx.TransportError as exc:
            response["error"] = exc

    client_thread = threading.Thread(target=convert, daemon=True)
    client_thread.start()
    try:
        wait_until(lambda: _pages_in_flight(server.url), 60, "pages in flight")
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=10)
        wait_until(lambda: not _alive(descendants), GONE_WITHIN_S, "the workers and resource tracker to exit",
                   interval_s=0.05)
    finally:
        for pid in _alive(descendants):  # a failing run must not leave ~1 GB orphans on the machine
            os.kill(pid, signal.SIGKILL)
    client_thread.join(timeout=30)
    assert "error" in response and "status" not in response  # the kill really cut the conversion off



def _pages_in_flight(url: str) -> bool:
    """True once the pool has pages running in its workers (the server's own gauge)."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=2).text
    except httpx.TransportError:
        return False
    return any(line.startswith("ocr_inflight_pages ") and float(line.split()[1]) > 0 for line in text.splitlines())
