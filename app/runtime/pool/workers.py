"""Worker supervision: spawn worker processes, run them, notice their deaths, decide when to give up.

Workers come from a `spawn` context (onnxruntime and threads do not survive `fork`). Each bounds its numeric
libraries' threads (OMP/OpenBLAS/MKL = `threads_per_worker`) before anything imports them, runs the initializer it
is *given* (a picklable callable or a "module:function" string, called with `(settings, preload)`; this module
knows nothing of what a page is), and then serves units from its pipe (see protocol.py) until told to stop.

The `Supervisor` keeps the set of workers at its size: a worker that dies is replaced; workers that die before
they were ever ready count as start failures, retried with a growing back-off, and after
`START_FAILURES_BEFORE_BROKEN` in a row the supervisor is `broken` with the reason the last one gave.
Not thread-safe: the pool calls it under its lock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import logging
import os
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

from app.runtime.pool import protocol
from app.runtime.pool.scheduler import Task
from app.settings import Settings

log = logging.getLogger(__name__)

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "ONNXRUNTIME_INTRA_OP_NUM_THREADS")
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
START_FAILURES_BEFORE_BROKEN = 3  # consecutive workers dying before they were ready: the pool is broken

Initializer = Callable[[Settings, bool], None] | str


class WorkerProcess:
    """The parent's handle on one worker: its process, its pipe, and the units sent to it and not yet answered."""

    def __init__(self, process: Any, conn: Any) -> None:
        self.process = process
        self.conn = conn
        self.units: deque[list[Task]] = deque()  # sent, unfinished, in the order the worker runs them
        self.ready = False
        self.started_at = time.monotonic()
        self.pages = 0  # document tasks it answered
        self.rss_mb: float | None = None  # its resident memory after its last unit, as it reported it
        self.retiring = False  # takes no more units; stopped once it has answered those it holds

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def inflight(self) -> int:
        return sum(len(unit) for unit in self.units)


class Supervisor:
    """Keeps `size` workers running the given initializer (see the module docstring)."""

    def __init__(
        self, context: Any, size: int, settings: Settings, initializer: Initializer, preload: bool,
        *, trim_idle_heap: bool = True,
    ) -> None:
        self._context = context
        self._trim_idle_heap = trim_idle_heap
        self.size = size
        self._settings = settings
        self._initializer = initializer
        self._preload = preload
        self.workers: list[WorkerProcess] = []
        self.restarts = 0  # workers replaced after they had been ready
        self.recycles = 0  # workers replaced on purpose (max pages or max memory reached)
        self.max_pages = settings.worker_max_pages
        self.max_rss_mb = settings.worker_max_rss_mb
        self.start_failures = 0  # consecutive workers that died before they were ready
        self.broken: str | None = None
        self.last_start_error: str | None = None
        self._respawn_at = 0.0

    def all_ready(self) -> bool:
        return len(self.workers) == self.size and all(w.ready for w in self.workers)

    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.process.is_alive()]

    def spawn_missing(self) -> int:
        """Start workers up to `size` unless a start-failure back-off is running; returns how many started."""
        if len(self.workers) >= self.size or time.monotonic() < self._respawn_at:
            return 0
        started = 0
        while len(self.workers) < self.size:
            self.workers.append(self._spawn())
            started += 1
        return started

    def _spawn(self) -> WorkerProcess:
        parent_conn, child_conn = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=worker_main,
            args=(child_conn, self._settings, self._initializer, self._preload, os.getpid(), self._trim_idle_heap),
            name="page-worker",
            daemon=True,
        )
        process.start()
        child_conn.close()
        return WorkerProcess(process, parent_conn)

    def mark_ready(self, worker: WorkerProcess) -> None:
        worker.ready = True
        self.start_failures = 0
        self.broken = None

    def note_init_failure(self, detail: str) -> None:
        log.error("a page worker failed to start: %s", detail)
        self.last_start_error = detail

    def should_retire(self, worker: WorkerProcess) -> str | None:
        """Why `worker` should be replaced now (gunicorn's `max_requests`, and a memory ceiling), or None.

        Native libraries and allocators keep memory a worker no longer uses; a fresh process gives it all back."""
        if self.max_pages and worker.pages >= self.max_pages:
            return f"{worker.pages} pages converted (WORKER_MAX_PAGES={self.max_pages})"
        if self.max_rss_mb and worker.rss_mb is not None and worker.rss_mb >= self.max_rss_mb:
            return f"{worker.rss_mb:.0f} MB resident (WORKER_MAX_RSS_MB={self.max_rss_mb:g})"
        return None

    def page_budget_spent(self, worker: WorkerProcess) -> bool:
        """The pages it converted and holds already reach `max_pages`: sending it more would overrun the limit."""
        return bool(self.max_pages) and worker.pages + worker.inflight >= self.max_pages

    def remove(self, worker: WorkerProcess, *, expected: bool = False) -> int | None:
        """Forget a dead worker and return its exit code. Counts it as a restart or a start failure unless it was
        `expected` to exit (shutdown); may leave the supervisor `broken`."""
        self.workers.remove(worker)
        worker.process.join(timeout=1)
        code = worker.process.exitcode
        try:
            worker.conn.close()
        except OSError:
            pass
        if worker.retiring:
            self.recycles += 1
            return code
        if expected:
            return code
        if not worker.ready:
            self.start_failures += 1
            if self.start_failures >= START_FAILURES_BEFORE_BROKEN:
                self.broken = self.last_start_error or f"worker exited with code {code}"
            self._respawn_at = time.monotonic() + min(30.0, 0.5 * 2 ** self.start_failures)
        else:
            self.restarts += 1
            log.warning("page worker %s died (exit code %s); starting a new one", worker.pid, code)
        return code


def stop_processes(workers: list[WorkerProcess], deadline: float) -> None:
    """Ask each worker to stop, wait until `deadline` (time.monotonic), then terminate, then kill."""
    for worker in workers:
        try:
            worker.conn.send_bytes(protocol.encode_stop())
        except OSError:
            pass
    for worker in workers:
        worker.process.join(timeout=max(0.1, deadline - time.monotonic()))
    for worker in workers:
        if worker.process.is_alive():
            worker.process.terminate()
            worker.process.join(timeout=2)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(timeout=2)


# --- inside the worker process --------------------------------------------------------------------------------------
def resolve_callable(target: Callable[..., Any] | str) -> Callable[..., Any]:
    """A "module:function" string as the function itself; a callable as it is."""
    if callable(target):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def die_with_parent(parent_pid: int) -> bool:
    """Have the kernel SIGKILL this process when its parent dies (Linux `PR_SET_PDEATHSIG`); True when armed.

    A parent killed with SIGKILL (OOM killer, `kill -9`, a crashed container init) cannot stop its workers, and
    each orphan keeps its models in memory while a new parent starts new workers beside it. The signal follows the
    parent *thread* that spawned us, so the pool spawns only from its long-lived dispatcher thread. If the parent
    died before the signal was armed, we exit at once."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux: the pipe's EOF still ends an idle worker
        armed = False
    if os.getppid() != parent_pid:
        os._exit(1)
    return armed


def worker_main(
    conn: Any, settings: Settings, initializer: Initializer, preload: bool, parent_pid: int, trim_idle_heap: bool = True
) -> None:
    """A worker's whole life: bound threads, run the initializer, then run units from the pipe until told to stop."""
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which stops us in order
    threads = str(settings.threads_per_worker)
    for name in THREAD_VARIABLES:
        os.environ[name] = threads
    pid = os.getpid()
    try:
        resolve_callable(initializer)(settings, preload)
        if "cv2" in sys.modules:
            sys.modules["cv2"].setNumThreads(settings.threads_per_worker)
    except BaseException as exc:  # noqa: BLE001 - report anything, then exit
        try:
            conn.send_bytes(protocol.encode_init_failed(pid, f"{type(exc).__name__}: {exc}"))
        except OSError:
            pass
        traceback.print_exc()
        sys.exit(3)
    conn.send_bytes(protocol.encode_ready(pid, {"rss_mb": resident_mb()}))
    while True:
        try:
            if trim_idle_heap and not conn.poll():  # idle: give the heap's free pages back before blocking
                trim_heap()
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the parent is gone
        unit = protocol.decode_unit(data)
        if unit is None:
            return
        answers = [protocol.run_one(task_id, fn, args) for task_id, fn, args in unit]
        try:
            conn.send_bytes(protocol.encode_result(answers, {"rss_mb": resident_mb()}))
        except (EOFError, OSError):
            return


def resident_mb() -> float | None:
    """This process's resident memory in MB (Linux /proc), None where it cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            resident_pages = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 1048576


_LIBC: Any = None


def trim_heap() -> None:
    """Return the C heap's free pages to the system (glibc `malloc_trim`). Page renders and ONNX tensors are freed
    into the heap after each page, and glibc keeps most of them (a worker went from 0.2 to 0.5 GB that way); a
    trim costs a few milliseconds, so it runs only when the worker has nothing to do."""
    global _LIBC
    try:
        if _LIBC is None:
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _LIBC.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim this way
        pass
