"""PagePool: the worker processes every conversion shares (CLI, synchronous API, jobs).

- Worker processes come from a `spawn` context (onnxruntime and threads do not survive `fork`). Each sets its
  thread counts (OMP/OpenBLAS/MKL = `threads_per_worker`) before anything imports a numeric library, then builds
  its engines once (`page.init_worker`) and serves tasks from a pipe until told to stop.
- Fair dispatch: each document submits through its own `DocumentQueue`; a dispatcher thread takes one send unit
  from each document in turn, so a 500-page job does not starve a 1-page request. A send unit is one task, or a
  chunk of up to `MAX_CHUNK_PAGES` consecutive tasks submitted `chunkable=True` (cheap pages: `text` mode), which
  go to one worker in one message and come back in one message: per-page IPC and pickling would otherwise cost
  as much as the page itself. Chunks shrink so that a short document still spreads over every worker. A worker
  holds at most `PREFETCH` units (one running, one waiting in its pipe), so cancelled or late-arriving documents
  are never stuck behind a deep backlog. Every task keeps its own future: pages are counted, admitted, cancelled
  (while not sent) and failed one by one.
- Admission: `admit(n_pages)` raises `Overloaded` (503 + Retry-After) when pages accepted but not finished would
  exceed `settings.pending_page_limit`; an idle pool always admits one document whatever its size.
- A worker that dies (killed, out of memory, a native crash) fails the unit it was running (the page, or the
  pages of its chunk) with `WorkerCrashed`, its queued units go back to their documents' queues, and a fresh worker
  takes its place.

Nothing here blocks an event loop: submissions return `concurrent.futures.Future`s (`asyncio.wrap_future` them);
`warmup()` and `stop()` are coroutines that run their waiting in a thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import importlib
import itertools
import logging
import math
import multiprocessing as mp
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_for_any
from typing import Any

from app.errors import AppError, NotReady, Overloaded, WorkerCrashed
from app.settings import Settings

log = logging.getLogger(__name__)

PREFETCH = 2  # units a worker holds at once: the one it runs and the next, already in its pipe
MAX_CHUNK_PAGES = 8  # chunkable tasks per unit: ~0.2 s of text-mode pages, short enough for fairness and cancel
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "ONNXRUNTIME_INTRA_OP_NUM_THREADS")
DEFAULT_INITIALIZER = "app.pipeline.page:init_worker"
START_FAILURES_BEFORE_BROKEN = 3  # consecutive workers dying before they were ready: the pool is broken
READY_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class PoolStats:
    workers: int  # configured worker processes
    alive_workers: int
    inflight_pages: int  # sent to a worker, not finished
    queued_pages: int  # waiting in documents' queues
    pending_pages: int  # admitted, not finished (what admission bounds)
    pending_limit: int
    pages_done: int
    pages_failed: int
    worker_restarts: int


# --- admission ------------------------------------------------------------------------------------------------------
class Admission:
    """A reservation of `pages` pending pages. Each finished page gives one back (`page_done`); `release()` (or
    leaving the `with` block) gives back the rest. Releasing twice is harmless."""

    def __init__(self, pool: PagePool, pages: int) -> None:
        self._pool = pool
        self._left = pages
        self.pages = pages

    @property
    def pages_left(self) -> int:
        return self._left

    @property
    def pool(self) -> PagePool:
        return self._pool

    def page_done(self, count: int = 1) -> None:
        with self._pool._lock:
            count = min(count, self._left)
            self._left -= count
            self._pool._pending -= count

    def release(self) -> None:
        self.page_done(self._left)

    def __enter__(self) -> Admission:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# --- jobs, documents, workers -------------------------------------------------------------------------------------
class _Job:
    __slots__ = ("id", "fn", "args", "future", "doc_id", "started", "chunkable")

    def __init__(
        self, job_id: int, fn: Callable[..., Any], args: tuple, doc_id: int | None, chunkable: bool = False
    ) -> None:
        self.id = job_id
        self.fn = fn
        self.args = args
        self.future: cf.Future = cf.Future()
        self.doc_id = doc_id
        self.started = False
        self.chunkable = chunkable


class DocumentQueue:
    """One document's queue in the pool: the dispatcher takes one of its tasks per turn of the round robin."""

    def __init__(self, pool: PagePool, doc_id: int, name: str) -> None:
        self._pool = pool
        self.id = doc_id
        self.name = name

    def submit(self, fn: Callable[..., Any], *args: Any, chunkable: bool = False) -> cf.Future:
        """Queue `fn(*args)` to run in a worker (`fn` must be importable there); returns its future.
        `chunkable`: a cheap task that may travel to a worker together with this document's next ones (if that
        worker dies, they all fail)."""
        return self._pool._enqueue(self.id, fn, [args], chunkable)[0]

    def submit_many(self, fn: Callable[..., Any], arg_tuples: list[tuple], *, chunkable: bool = False
                    ) -> list[cf.Future]:
        """`submit(fn, *args)` for each tuple, queued at once: the dispatcher sees them all together, so chunks
        are sized for the whole document rather than for whatever was queued when it woke up."""
        return self._pool._enqueue(self.id, fn, arg_tuples, chunkable)

    def cancel(self) -> int:
        """Drop this document's tasks that no worker has started; returns how many were dropped."""
        return self._pool._cancel_queue(self.id)

    def close(self) -> None:
        self.cancel()
        self._pool._drop_queue(self.id)

    def __enter__(self) -> DocumentQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Worker:
    def __init__(self, process: Any, conn: Any) -> None:
        self.process = process
        self.conn = conn
        self.units: deque[list[_Job]] = deque()  # sent, unfinished, in the order the worker runs them
        self.ready = False
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int | None:
        return self.process.pid


# --- the pool -----------------------------------------------------------------------------------------------------
class PagePool:
    """A bounded pool of worker processes with engines loaded once each; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        workers: int | None = None,
        preload_engines: bool = True,
        initializer: str = DEFAULT_INITIALIZER,
    ) -> None:
        self.settings = settings
        self.size = workers or settings.workers
        self.preload_engines = preload_engines
        self._initializer = initializer
        self._context = mp.get_context("spawn")
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._workers: list[_Worker] = []
        self._queues: dict[int, deque[_Job]] = {}
        self._turns: deque[int] = deque()  # documents with queued tasks, in round-robin order
        self._ids = itertools.count(1)
        self._pending = 0
        self._done = 0
        self._failed = 0
        self._restarts = 0
        self._start_failures = 0
        self._broken: str | None = None
        self._last_start_error: str | None = None
        self._respawn_at = 0.0
        self._page_seconds = 1.0  # running mean of a page's time in a worker, for Retry-After
        self._started = False
        self._closing = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._wake_r: Any = None
        self._wake_w: Any = None

    # --- lifecycle ---
    def start(self) -> None:
        """Spawn the workers and the dispatcher thread (idempotent). Workers load their models in the
        background; `warmup()` waits for them."""
        with self._lock:
            if self._started:
                return
            if self._closing:
                raise NotReady("the worker pool has been stopped")
            self._wake_r, self._wake_w = self._context.Pipe(duplex=False)
            for _ in range(self.size):
                self._spawn_locked()
            self._started = True
            self._thread = threading.Thread(target=self._dispatch_loop, name="page-pool-dispatcher", daemon=True)
            self._thread.start()
        log.info("page pool started: %d workers, %d ONNX threads each", self.size, self.settings.threads_per_worker)

    async def warmup(self) -> float:
        """Wait until every worker has loaded its engines, then run each engine once in every worker.
        Returns the seconds it took."""
        return await asyncio.to_thread(self.warmup_sync)

    def warmup_sync(self, timeout_s: float = READY_TIMEOUT_S) -> float:
        from app.pipeline import page

        start = time.monotonic()
        self.start()
        futures = []
        with self._lock:
            if not self._changed.wait_for(
                lambda: self._broken is not None or (
                    len(self._workers) == self.size and all(w.ready for w in self._workers)
                ),
                timeout=timeout_s,
            ):
                raise NotReady(f"workers were not ready after {timeout_s:.0f}s")
            if self._broken is not None:
                raise NotReady(f"the worker pool cannot start: {self._broken}")
            for worker in self._workers:
                job = _Job(next(self._ids), page.warmup_worker, (), None)
                job.future.set_running_or_notify_cancel()
                job.started = True
                self._send_locked(worker, [job])
                futures.append(job.future)
        for future in futures:
            future.result(timeout=timeout_s)
        seconds = time.monotonic() - start
        log.info("page pool warm in %.1fs", seconds)
        return seconds

    async def stop(self, grace_s: float = 30.0) -> None:
        """Stop taking work, let running and queued pages finish for up to `grace_s`, then stop the workers."""
        await asyncio.to_thread(self.close, grace_s)

    def close(self, grace_s: float = 30.0) -> None:
        deadline = time.monotonic() + grace_s
        with self._lock:
            if self._closed:
                return
            self._closing = True
            if self._started:
                self._changed.wait_for(lambda: not self._busy_locked(), timeout=max(0.0, grace_s))
            leftovers = [job for queue in self._queues.values() for job in queue]
            self._queues.clear()
            self._turns.clear()
            workers = list(self._workers)
            for worker in workers:
                try:
                    worker.conn.send_bytes(pickle.dumps(None))
                except OSError:
                    pass
        for job in leftovers:
            _fail(job, NotReady("the service is shutting down"))
        for worker in workers:
            worker.process.join(timeout=max(0.1, deadline - time.monotonic()))
        for worker in workers:
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join(timeout=2)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=2)
        with self._lock:
            self._closed = True
            stranded = [job for worker in self._workers for unit in worker.units for job in unit]
            for worker in self._workers:
                worker.units.clear()
                worker.conn.close()
            self._workers.clear()
            self._wake_locked()
        for job in stranded:
            _fail(job, NotReady("the service is shutting down"))
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            for end in (self._wake_r, self._wake_w):
                if end is not None:
                    end.close()
            self._wake_r = self._wake_w = None
        log.info("page pool stopped")

    def __enter__(self) -> PagePool:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(grace_s=0 if exc[0] is not None else 30.0)

    # --- admission and submission ---
    def admit(self, n_pages: int) -> Admission:
        """Reserve `n_pages` pending pages or raise Overloaded with a Retry-After estimate."""
        with self._lock:
            limit = self.settings.pending_page_limit
            if self._pending > 0 and self._pending + n_pages > limit:
                excess = self._pending + n_pages - limit
                retry = min(600, max(1, math.ceil(excess * self._page_seconds / max(1, self.size))))
                raise Overloaded(
                    f"the service is busy ({self._pending} pages pending, limit {limit}); retry in {retry}s",
                    retry_after_s=float(retry),
                )
            self._pending += n_pages
            return Admission(self, n_pages)

    def document(self, name: str = "") -> DocumentQueue:
        """A new queue for one document's pages, served in turn with every other document's."""
        with self._lock:
            self._check_open_locked()
            doc_id = next(self._ids)
            self._queues[doc_id] = deque()
        return DocumentQueue(self, doc_id, name)

    def _enqueue(
        self, doc_id: int, fn: Callable[..., Any], arg_tuples: list[tuple], chunkable: bool = False
    ) -> list[cf.Future]:
        with self._lock:
            self._check_open_locked()
            jobs = [_Job(next(self._ids), fn, tuple(args), doc_id, chunkable) for args in arg_tuples]
            if self._broken is not None:
                for job in jobs:
                    _fail(job, WorkerCrashed(f"the worker pool cannot start workers: {self._broken}"))
                return [job.future for job in jobs]
            queue = self._queues.setdefault(doc_id, deque())
            if not queue and jobs and doc_id not in self._turns:
                self._turns.append(doc_id)
            queue.extend(jobs)
            self._wake_locked()
        return [job.future for job in jobs]

    def _cancel_queue(self, doc_id: int) -> int:
        with self._lock:
            queue = self._queues.get(doc_id)
            dropped = list(queue) if queue else []
            if queue:
                queue.clear()
        for job in dropped:
            job.future.cancel()
        return len(dropped)

    def _drop_queue(self, doc_id: int) -> None:
        with self._lock:
            self._queues.pop(doc_id, None)

    def _check_open_locked(self) -> None:
        if self._closing:
            raise NotReady("the worker pool is shutting down")
        if not self._started:
            raise NotReady("the worker pool is not started")

    # --- observability ---
    def stats(self) -> PoolStats:
        with self._lock:
            return PoolStats(
                workers=self.size,
                alive_workers=sum(1 for w in self._workers if w.process.is_alive()),
                inflight_pages=sum(len(unit) for w in self._workers for unit in w.units),
                queued_pages=sum(len(q) for q in self._queues.values()),
                pending_pages=self._pending,
                pending_limit=self.settings.pending_page_limit,
                pages_done=self._done,
                pages_failed=self._failed,
                worker_restarts=self._restarts,
            )

    def healthy(self) -> bool:
        with self._lock:
            return (
                self._started and not self._closing and self._broken is None
                and any(w.process.is_alive() for w in self._workers)
            )

    def worker_pids(self) -> list[int]:
        with self._lock:
            return [w.pid for w in self._workers if w.pid is not None]

    # --- internals: workers ---
    def _spawn_locked(self) -> None:
        parent_conn, child_conn = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_worker_main,
            args=(child_conn, self.settings, self._initializer, self.preload_engines),
            name="page-worker",
            daemon=True,
        )
        process.start()
        child_conn.close()
        self._workers.append(_Worker(process, parent_conn))
        self._changed.notify_all()

    def _send_locked(self, worker: _Worker, unit: list[_Job]) -> None:
        """Send a unit (one task, or a chunk) as one message, pickled once."""
        try:
            # The ids travel outside the calls so that a worker that cannot load a call still answers its pages.
            calls = pickle.dumps([(job.fn, job.args) for job in unit], protocol=pickle.HIGHEST_PROTOCOL)
            data = pickle.dumps(([job.id for job in unit], calls), protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            if len(unit) > 1:  # find the culprit: the others go on their own
                for job in unit:
                    self._send_locked(worker, [job])
                return
            _fail(unit[0], RuntimeError(f"task cannot be sent to a worker: {exc}"))
            return
        worker.units.append(unit)
        try:
            worker.conn.send_bytes(data)
        except OSError:  # the worker is gone: put the unit back; its death is handled next
            worker.units.remove(unit)
            self._requeue_locked(unit)

    def _busy_locked(self) -> bool:
        return any(w.units for w in self._workers) or any(self._queues.values())

    def _wake_locked(self) -> None:
        if self._wake_w is not None:
            try:
                self._wake_w.send_bytes(b"!")
            except OSError:
                pass

    def _chunk_size_locked(self, queued: int) -> int:
        """Pages per chunk: up to MAX_CHUNK_PAGES, fewer when the queue would not otherwise fill every worker's
        prefetch (so 4 pages on 2 workers run 2 and 2 at once, not 4 in one worker)."""
        slots = max(1, len(self._workers) * PREFETCH)
        return max(1, min(MAX_CHUNK_PAGES, -(-queued // slots)))

    def _next_unit_locked(self) -> list[_Job] | None:
        """The next document's next task, with the chunkable tasks that follow it in that document's queue."""
        while self._turns:
            doc_id = self._turns.popleft()
            queue = self._queues.get(doc_id)
            if not queue:
                continue
            unit: list[_Job] = []
            limit = self._chunk_size_locked(len(queue)) if queue[0].chunkable else 1
            while queue and len(unit) < limit and (not unit or (queue[0].chunkable and queue[0].fn is unit[0].fn)):
                job = queue.popleft()
                if job.started or job.future.set_running_or_notify_cancel():
                    job.started = True
                    unit.append(job)
            if queue:
                self._turns.append(doc_id)
            if unit:
                return unit
        return None

    def _assign_locked(self) -> None:
        while True:
            candidates = [w for w in self._workers if w.ready and len(w.units) < PREFETCH]
            if not candidates or not self._turns:
                return
            worker = min(candidates, key=lambda w: len(w.units))
            unit = self._next_unit_locked()
            if unit is None:
                return
            self._send_locked(worker, unit)

    def _requeue_locked(self, jobs: list[_Job]) -> None:
        """Put tasks that never ran back at the head of their documents' queues, in their order."""
        for job in reversed(jobs):
            if job.doc_id is None:
                _fail(job, WorkerCrashed("the worker process died before it ran this task"))
                continue
            queue = self._queues.setdefault(job.doc_id, deque())
            if not queue and job.doc_id not in self._turns:
                self._turns.appendleft(job.doc_id)
            queue.appendleft(job)

    # --- internals: the dispatcher thread ---
    def _dispatch_loop(self) -> None:
        while True:
            try:
                if self._dispatch_once():
                    return
            except Exception:  # noqa: BLE001 - the dispatcher must outlive any one bad message
                log.exception("page pool dispatcher error")
                time.sleep(0.1)

    def _dispatch_once(self) -> bool:
        """One round: spawn, assign, wait for something to happen and handle it. True when the pool is closed."""
        with self._lock:
            if self._closed:
                return True
            self._maybe_respawn_locked()
            self._assign_locked()
            waitables: dict[Any, tuple[_Worker, bool]] = {}
            for worker in self._workers:
                waitables[worker.conn] = (worker, True)
                waitables[worker.process.sentinel] = (worker, False)
            wake = self._wake_r
        if wake is None:
            return True
        try:
            ready = wait_for_any([wake, *waitables], timeout=0.5)
        except OSError:  # a connection closed under us during shutdown
            return False
        for obj in ready:
            if obj is wake:
                try:
                    while wake.poll():
                        wake.recv_bytes()
                except (OSError, EOFError):
                    pass
                continue
            worker, is_conn = waitables[obj]
            if is_conn:
                self._receive(worker)
            else:
                self._receive(worker)  # results it sent before dying come first
                self._on_death(worker)
        return False

    def _receive(self, worker: _Worker) -> None:
        while True:
            try:
                if worker.conn.closed or not worker.conn.poll():
                    return
                data = worker.conn.recv_bytes()
            except (EOFError, OSError):
                self._on_death(worker)
                return
            message = pickle.loads(data)
            kind = message[0]
            if kind == "ready":
                with self._lock:
                    worker.ready = True
                    self._start_failures = 0
                    self._broken = None
                    self._changed.notify_all()
                continue
            if kind == "init_failed":
                log.error("a page worker failed to start: %s", message[2])
                with self._lock:
                    self._last_start_error = message[2]
                continue
            _, answers = message
            with self._lock:
                unit = worker.units.popleft() if worker.units else []
                jobs = {job.id: job for job in unit}
                outcomes = []
                for job_id, status, value, seconds in answers:
                    job = jobs.pop(job_id, None)
                    if job is None:
                        log.error("page worker %s answered unknown job %s", worker.pid, job_id)
                        continue
                    if status == "err":  # errors travel pickled on their own: one the parent cannot read
                        value = _load_error(value)  # must not lose the unit's other results
                    if job.doc_id is not None:
                        self._page_seconds = 0.8 * self._page_seconds + 0.2 * seconds
                        if status == "ok":
                            self._done += 1
                        else:
                            self._failed += 1
                    outcomes.append((job, status, value))
                for job in jobs.values():  # cannot happen with a well-behaved worker; never leave a page hanging
                    self._failed += 1
                    outcomes.append((job, "err", RuntimeError("the worker did not answer for this page")))
                self._changed.notify_all()
                self._wake_locked()
            for job, status, value in outcomes:
                if status == "ok":
                    _resolve(job, value)
                else:
                    _fail(job, value)

    def _on_death(self, worker: _Worker) -> None:
        with self._lock:
            if worker not in self._workers:
                return
            self._workers.remove(worker)
            worker.process.join(timeout=1)
            code = worker.process.exitcode
            try:
                worker.conn.close()
            except OSError:
                pass
            units = list(worker.units)
            worker.units.clear()
            crashed = units[0] if units else []
            innocent = [job for unit in units[1:] for job in unit]
            if self._closing:
                self._changed.notify_all()
                for job in innocent:
                    _fail(job, NotReady("the service is shutting down"))
            else:
                self._requeue_locked(innocent)  # they never ran: they go first when a worker is free again
                if not worker.ready:
                    self._start_failures += 1
                    reason = self._last_start_error or f"worker exited with code {code}"
                    if self._start_failures >= START_FAILURES_BEFORE_BROKEN:
                        self._broken = reason
                        self._fail_queued_locked(WorkerCrashed(f"the worker pool cannot start workers: {reason}"))
                    self._respawn_at = time.monotonic() + min(30.0, 0.5 * 2 ** self._start_failures)
                else:
                    self._restarts += 1
                    log.warning("page worker %s died (exit code %s); starting a new one", worker.pid, code)
                self._changed.notify_all()
            self._failed += len(crashed)
        for job in crashed:
            _fail(job, WorkerCrashed(
                f"the worker process died while converting this page (exit code {code}); "
                "the page may be too complex or malformed"
            ))

    def _fail_queued_locked(self, error: AppError) -> None:
        jobs = [job for queue in self._queues.values() for job in queue]
        for queue in self._queues.values():
            queue.clear()
        self._turns.clear()
        for job in jobs:
            _fail(job, error)

    def _maybe_respawn_locked(self) -> None:
        if self._closing or not self._started:
            return
        if len(self._workers) < self.size and time.monotonic() >= self._respawn_at:
            while len(self._workers) < self.size:
                self._spawn_locked()


def _resolve(job: _Job, value: Any) -> None:
    if not job.future.done():
        job.future.set_result(value)


def _fail(job: _Job, error: BaseException) -> None:
    if job.future.done():
        return
    if not job.started and not job.future.set_running_or_notify_cancel():
        return  # cancelled
    job.started = True
    job.future.set_exception(error)


# --- inside the worker process --------------------------------------------------------------------------------------
def _worker_main(conn: Any, settings: Settings, initializer: str, preload: bool) -> None:
    """A worker's whole life: bound threads, build engines, then run tasks from the pipe until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which stops us in order
    threads = str(settings.threads_per_worker)
    for name in THREAD_VARIABLES:
        os.environ[name] = threads
    pid = os.getpid()
    try:
        module, _, name = initializer.partition(":")
        getattr(importlib.import_module(module), name)(settings, preload)
        if "cv2" in sys.modules:
            sys.modules["cv2"].setNumThreads(settings.threads_per_worker)
    except BaseException as exc:  # noqa: BLE001 - report anything, then exit
        detail = f"{type(exc).__name__}: {exc}"
        try:
            conn.send_bytes(pickle.dumps(("init_failed", pid, detail)))
        except OSError:
            pass
        traceback.print_exc()
        sys.exit(3)
    conn.send_bytes(pickle.dumps(("ready", pid, None)))
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the parent is gone
        message = pickle.loads(data)
        if message is None:
            return
        job_ids, calls = message
        try:
            unit = pickle.loads(calls)
        except Exception as exc:  # noqa: BLE001 - e.g. a task function the worker cannot import
            error = RuntimeError(f"the task could not be read in the worker: {type(exc).__name__}: {exc}")
            unit = [(_raise, (error,)) for _ in job_ids]
        answers = [_run_one(job_id, fn, args) for job_id, (fn, args) in zip(job_ids, unit, strict=True)]
        try:
            out = pickle.dumps(("result", answers), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - one result that does not pickle must not sink the others
            out = pickle.dumps(("result", [_sendable(answer) for answer in answers]),
                               protocol=pickle.HIGHEST_PROTOCOL)
        try:
            conn.send_bytes(out)
        except (EOFError, OSError):
            return


def _run_one(job_id: int, fn: Callable[..., Any], args: tuple) -> tuple[int, str, Any, float]:
    """Run one task: (job id, "ok", value, seconds), or (job id, "err", the pickled error, seconds)."""
    start = time.perf_counter()
    try:
        value = fn(*args)
        status = "ok"
    except Exception as exc:  # noqa: BLE001 - every failure goes back to the parent as the page's error
        status, value = "err", _pickled_error(_portable_error(exc))
    return job_id, status, value, time.perf_counter() - start


def _sendable(answer: tuple[int, str, Any, float]) -> tuple[int, str, Any, float]:
    job_id, status, value, seconds = answer
    if status == "ok":
        try:
            pickle.dumps(value)
        except Exception as exc:  # noqa: BLE001
            return job_id, "err", _pickled_error(RuntimeError(f"the page's result could not be sent: {exc}")), seconds
    return answer


def _raise(error: BaseException) -> None:
    raise error


def _pickled_error(error: BaseException) -> bytes:
    try:
        return pickle.dumps(error)
    except Exception as exc:  # noqa: BLE001
        detail = f"{type(error).__name__}: {error} (the error itself could not be sent: {exc})"
        return pickle.dumps(RuntimeError(detail))


def _load_error(body: bytes) -> BaseException:
    try:
        error = pickle.loads(body)
    except Exception as exc:  # noqa: BLE001 - e.g. an exception class the parent cannot import
        return RuntimeError(f"the page's error could not be read: {exc}")
    return error if isinstance(error, BaseException) else RuntimeError(f"the page failed: {error!r}")


def _portable_error(exc: Exception) -> BaseException:
    """An exception that survives pickling; unexpected ones carry the worker's traceback as a note."""
    if isinstance(exc, AppError):
        return exc
    detail = "".join(traceback.format_exception(exc))
    try:
        exc.add_note(f"in page worker {os.getpid()}:\n{detail}")
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001
        error = RuntimeError(f"{type(exc).__name__}: {exc}")
        error.add_note(f"in page worker {os.getpid()}:\n{detail}")
        return error
