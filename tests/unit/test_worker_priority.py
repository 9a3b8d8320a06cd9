"""Page workers run below the API process's CPU priority (WORKER_NICE), so probes never queue behind OCR."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from app.runtime.pool import PagePool


def children_nice() -> dict[int, int]:
    """nice value of every child process of this one, by pid."""
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids |= {int(p) for p in (task / "children").read_text().split()}
        except OSError:
            continue
    found = {}
    for pid in pids:
        try:
            found[pid] = os.getpriority(os.PRIO_PROCESS, pid)
        except OSError:
            continue
    return found


@pytest.mark.parametrize("nice", [10, 4])
def test_workers_run_at_worker_nice(make_settings, nice):
    own = os.getpriority(os.PRIO_PROCESS, 0)
    if own >= nice:
        pytest.skip(f"this test process already runs at nice {own}")
    before = set(children_nice())
    pool = PagePool(make_settings(worker_nice=nice), workers=2, preload_engines=False)
    pool.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            new = {pid: value for pid, value in children_nice().items() if pid not in before}
            if sorted(new.values()).count(nice) == 2:
                break
            time.sleep(0.05)
        assert sorted(new.values()).count(nice) == 2, new  # both workers; the API process stays where it was
        assert os.getpriority(os.PRIO_PROCESS, 0) == own
    finally:
        pool.close(grace_s=0)
