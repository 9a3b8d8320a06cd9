"""PagePool: the worker processes every conversion shares (CLI, synchronous API, jobs), and the thread that feeds
them. It joins the parts: admission (admission.py), the scheduler's turns and chunks (scheduler.py), worker
supervision (workers.py) and the wire protocol (protocol.py).

One dispatcher thread owns the pipes and the worker processes. Each round it starts missing workers (always from
this thread, which lives as long as the pool: the kernel kills a worker when the thread that spawned it dies, see
`workers.die_with_parent`), hands units to workers with a free slot (a worker holds at most `PREFETCH` units: one
running, one waiting in its pipe, so cancelled or late-arriving documents are never stuck behind a deep backlog),
then waits for any pipe or process to say something. A worker that dies (killed, out of memory, a native crash)
fails the unit it was running with `WorkerCrashed`; its other units go back to their documents' queues, and a
fresh worker takes its place.

Nothing here blocks an event loop: submissions return `concurrent.futures.Future`s (`asyncio.wrap_future` them);
`warmup()` and `stop()` are coroutines that run their waiting in a thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import itertools
import logging
import multiprocessing as mp
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_for_any
from typing import Any

from app.errors import AppError, NotReady, WorkerCrashed
from app.runtime.pool import protocol
from app.runtime.pool.admission import Admission, AdmissionControl
from app.runtime.pool.scheduler import Scheduler, Task, fail, resolve
from app.runtime.pool.workers import Initializer, Supervisor, WorkerProcess, resolve_callable, stop_processes
from app.settings import Settings

log = logging.getLogger(__name__)

PREFETCH = 2  # units a worker holds at once: the one it runs and the next, already in its pipe
# What a page worker is: the pool is generic, these defaults make it the page pipeline's.
DEFAULT_INITIALIZER = "app.pipeline.page:init_worker"
DEFAULT_WARMUP = "app.pipeline.page:warmup_worker"
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
    worker_recycles: int = 0  # workers replaced on purpose: WORKER_MAX_PAGES or WORKER_MAX_RSS_MB reached


class DocumentQueue:
    """One document's queue in the pool: the dispatcher takes one of its units per turn of the round robin."""

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
        return self._pool._cancel_queue(self.id, forget=False)

    def close(self) -> None:
        self._pool._cancel_queue(self.id, forget=True)

    def __enter__(self) -> DocumentQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PagePool:
    """A bounded pool of worker processes with engines loaded once each; see the module docstring.

    `initializer` runs once in each worker with `(settings, preload_engines)`; `warmup` is a function run once in
    every worker by `warmup()`. Both are callables importable in a worker, or "module:function" strings.
    `trim_idle_heap`: idle workers give freed heap pages back to the system (off only to measure what it saves)."""

    def __init__(
        self,
        settings: Settings,
        *,
        workers: int | None = None,
        preload_engines: bool = True,
        initializer: Initializer = DEFAULT_INITIALIZER,
        warmup: Callable[[], Any] | str = DEFAULT_WARMUP,
        trim_idle_heap: bool = True,
    ) -> None:
        self.settings = settings
        self.size = workers or settings.workers
        self.preload_engines = preload_engines
        self._warmup_fn = warmup
        self._context = mp.get_context("spawn")
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._admission = AdmissionControl(settings.pending_page_limit, self.size)
        self._scheduler = Scheduler()
        self._supervisor = Supervisor(self._context, self.size, settings, initializer, preload_engines,
                                      trim_idle_heap=trim_idle_heap)
        self._ids = itertools.count(1)
        self._done = 0
        self._failed = 0
        self._warm = False  # warmup() ran: replacement workers warm up as soon as they are ready
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
            self._started = True  # the dispatcher spawns the workers: they die with the thread that spawned them
            self._thread = threading.Thread(target=self._dispatch_loop, name="page-pool-dispatcher", daemon=True)
            self._thread.start()
        log.info("page pool started: %d workers, %d ONNX threads each", self.size, self.settings.threads_per_worker)

    async def warmup(self) -> float:
        """Wait until every worker has loaded its engines, then run the warm-up function once in every worker.
        Returns the seconds it took."""
        return await asyncio.to_thread(self.warmup_sync)

    def warmup_sync(self, timeout_s: float = READY_TIMEOUT_S) -> float:
        start = time.monotonic()
        self.start()
        warmup = resolve_callable(self._warmup_fn)
        futures = []
        supervisor = self._supervisor
        with self._lock:
            # A stop during warm-up ends the wait too: the thread waiting here must not outlive the pool.
            if not self._changed.wait_for(
                lambda: self._closing or supervisor.broken is not None or supervisor.all_ready(), timeout=timeout_s
            ):
                raise NotReady(f"workers were not ready after {timeout_s:.0f}s")
            if self._closing:
                raise NotReady("the worker pool has been stopped")
            if supervisor.broken is not None:
                raise NotReady(f"the worker pool cannot start: {supervisor.broken}")
            for worker in supervisor.workers:
                futures.append(self._send_warmup_locked(worker, warmup))
            self._warm = True
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
            self._changed.notify_all()  # a warm-up still waiting for its workers gives up
            if self._started:
                self._changed.wait_for(lambda: not self._busy_locked(), timeout=max(0.0, grace_s))
            leftovers = self._scheduler.take_all()
            workers = list(self._supervisor.workers)
        for task in leftovers:
            fail(task, NotReady("the service is shutting down"))
        stop_processes(workers, deadline)
        with self._lock:
            self._closed = True
            stranded = [task for worker in self._supervisor.workers for unit in worker.units for task in unit]
            for worker in list(self._supervisor.workers):
                worker.units.clear()
                self._supervisor.remove(worker, expected=True)
            self._wake_locked()
        for task in stranded:
            fail(task, NotReady("the service is shutting down"))
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
        return self._admission.admit(n_pages)

    def document(self, name: str = "") -> DocumentQueue:
        """A new queue for one document's pages, served in turn with every other document's."""
        with self._lock:
            self._check_open_locked()
            doc_id = next(self._ids)
            self._scheduler.open(doc_id)
        return DocumentQueue(self, doc_id, name)

    def _enqueue(
        self, doc_id: int, fn: Callable[..., Any], arg_tuples: list[tuple], chunkable: bool = False
    ) -> list[cf.Future]:
        with self._lock:
            self._check_open_locked()
            tasks = [Task(next(self._ids), fn, tuple(args), doc_id, chunkable) for args in arg_tuples]
            if self._supervisor.broken is not None:
                error = WorkerCrashed(f"the worker pool cannot start workers: {self._supervisor.broken}")
                for task in tasks:
                    fail(task, error)
                return [task.future for task in tasks]
            self._scheduler.add(doc_id, tasks)
            self._wake_locked()
        return [task.future for task in tasks]

    def _cancel_queue(self, doc_id: int, *, forget: bool) -> int:
        with self._lock:
            dropped = self._scheduler.close(doc_id) if forget else self._scheduler.cancel(doc_id)
        for task in dropped:
            task.future.cancel()
        return len(dropped)

    def _check_open_locked(self) -> None:
        if self._closing:
            raise NotReady("the worker pool is shutting down")
        if not self._started:
            raise NotReady("the worker pool is not started")

    # --- observability ---
    def stats(self) -> PoolStats:
        with self._lock:
            workers = self._supervisor.workers
            return PoolStats(
                workers=self.size,
                alive_workers=len(self._supervisor.alive()),
                inflight_pages=sum(w.inflight for w in workers),
                queued_pages=self._scheduler.queued,
                pending_pages=self._admission.pending,
                pending_limit=self._admission.limit,
                pages_done=self._done,
                pages_failed=self._failed,
                worker_restarts=self._supervisor.restarts,
                worker_recycles=self._supervisor.recycles,
            )

    def healthy(self) -> bool:
        with self._lock:
            return (
                self._started and not self._closing and self._supervisor.broken is None
                and bool(self._supervisor.alive())
            )

    def all_ready(self) -> bool:
        """Every configured worker is running and has loaded its engines."""
        with self._lock:
            return self._supervisor.all_ready()

    def worker_pids(self) -> list[int]:
        with self._lock:
            return [w.pid for w in self._supervisor.workers if w.pid is not None]

    # --- internals: sending ---
    def _send_warmup_locked(self, worker: WorkerProcess, warmup: Callable[[], Any] | None = None) -> cf.Future:
        task = Task(next(self._ids), warmup or resolve_callable(self._warmup_fn), (), None)
        task.claim()
        self._send_locked(worker, [task])
        return task.future

    def _send_locked(self, worker: WorkerProcess, unit: list[Task]) -> None:
        """Send a unit (one task, or a chunk) as one message, pickled once."""
        try:
            data = protocol.encode_unit([task.id for task in unit], [(task.fn, task.args) for task in unit])
        except protocol.UnitNotSendable as exc:
            if len(unit) > 1:  # find the culprit: the others go on their own
                for task in unit:
                    self._send_locked(worker, [task])
                return
            fail(unit[0], RuntimeError(f"task cannot be sent to a worker: {exc}"))
            return
        worker.units.append(unit)
        try:
            worker.conn.send_bytes(data)
        except OSError:  # the worker is gone: put the unit back; its death is handled next
            worker.units.remove(unit)
            self._requeue_locked(unit)

    def _busy_locked(self) -> bool:
        return any(w.units for w in self._supervisor.workers) or self._scheduler.has_work()

    def _wake_locked(self) -> None:
        if self._wake_w is not None:
            try:
                self._wake_w.send_bytes(b"!")
            except OSError:
                pass

    def _assign_locked(self) -> None:
        while True:
            candidates = [
                w for w in self._supervisor.workers
                if w.ready and not w.retiring and len(w.units) < PREFETCH and not self._supervisor.page_budget_spent(w)
            ]
            if not candidates:
                return
            slots = max(1, len(self._supervisor.workers) * PREFETCH)
            unit = self._scheduler.next_unit(slots)
            if unit is None:
                return
            self._send_locked(min(candidates, key=lambda w: len(w.units)), unit)

    def _requeue_locked(self, tasks: list[Task]) -> None:
        for task in self._scheduler.requeue(tasks):
            fail(task, WorkerCrashed("the worker process died before it ran this task"))

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
            if not self._closing and self._supervisor.spawn_missing():
                self._changed.notify_all()
            self._assign_locked()
            waitables: dict[Any, tuple[WorkerProcess, bool]] = {}
            for worker in self._supervisor.workers:
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
            self._receive(worker)  # a dying worker's last results come before its death
            if not is_conn:
                self._on_death(worker)
        return False

    def _receive(self, worker: WorkerProcess) -> None:
        while True:
            try:
                if worker.conn.closed or not worker.conn.poll():
                    return
                data = worker.conn.recv_bytes()
            except (EOFError, OSError):
                self._on_death(worker)
                return
            message = protocol.decode_message(data)
            kind = message[0]
            if kind == protocol.READY:
                with self._lock:
                    self._supervisor.mark_ready(worker)
                    if self._warm and not self._closing:
                        self._send_warmup_locked(worker)
                    self._changed.notify_all()
            elif kind == protocol.INIT_FAILED:
                with self._lock:
                    self._supervisor.note_init_failure(message[2])
            else:
                self._on_result(worker, message[1], message[2])

    def _on_result(self, worker: WorkerProcess, answers: list[protocol.Answer], report: dict[str, Any]) -> None:
        with self._lock:
            unit = worker.units.popleft() if worker.units else []
            worker.pages += sum(1 for task in unit if task.doc_id is not None)
            worker.rss_mb = report.get("rss_mb")
            self._maybe_retire_locked(worker)
            tasks = {task.id: task for task in unit}
            outcomes = []
            for task_id, status, value, seconds in answers:
                task = tasks.pop(task_id, None)
                if task is None:
                    log.error("page worker %s answered unknown task %s", worker.pid, task_id)
                    continue
                if status == "err":
                    value = protocol.load_error(value)
                if task.doc_id is not None:
                    self._admission.record_page_seconds(seconds)
                    if status == "ok":
                        self._done += 1
                    else:
                        self._failed += 1
                outcomes.append((task, status, value))
            for task in tasks.values():  # cannot happen with a well-behaved worker; never leave a page hanging
                self._failed += 1
                outcomes.append((task, "err", RuntimeError("the worker did not answer for this page")))
            self._changed.notify_all()
            self._wake_locked()
        for task, status, value in outcomes:
            if status == "ok":
                resolve(task, value)
            else:
                fail(task, value)

    def _on_death(self, worker: WorkerProcess) -> None:
        with self._lock:
            if worker not in self._supervisor.workers:
                return
            units = list(worker.units)
            worker.units.clear()
            code = self._supervisor.remove(worker, expected=self._closing or worker.retiring)
            crashed = units[0] if units else []
            innocent = [task for unit in units[1:] for task in unit]
            if self._closing:
                for task in innocent:
                    fail(task, NotReady("the service is shutting down"))
            else:
                self._requeue_locked(innocent)  # they never ran: they go first when a worker is free again
                if self._supervisor.broken is not None:
                    self._fail_queued_locked(
                        WorkerCrashed(f"the worker pool cannot start workers: {self._supervisor.broken}")
                    )
            self._changed.notify_all()
            self._failed += len(crashed)
        for task in crashed:
            fail(task, WorkerCrashed(
                f"the worker process died while converting this page (exit code {code}); "
                "the page may be too complex or malformed"
            ))

    def _maybe_retire_locked(self, worker: WorkerProcess) -> None:
        """Replace a worker that reached its page or memory limit: it gets no new units, and once it has answered
        the ones it holds it is asked to stop; the supervisor then starts a fresh one (see `_on_death`)."""
        if not worker.retiring and not self._closing:
            reason = self._supervisor.should_retire(worker)
            if reason is None:
                return
            worker.retiring = True
            log.info("replacing page worker %s: %s", worker.pid, reason)
        if worker.retiring and not worker.units:
            try:
                worker.conn.send_bytes(protocol.encode_stop())
            except OSError:
                pass  # already gone: its death is handled next

    def _fail_queued_locked(self, error: AppError) -> None:
        for task in self._scheduler.take_all():
            fail(task, error)

