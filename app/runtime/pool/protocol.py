"""The wire protocol between the pool and its workers: what travels over a worker's pipe, and how.

Parent -> worker: a unit, `(task ids, pickled [(fn, args), ...])`, or `None` (stop). The ids travel outside the
calls so that a worker that cannot unpickle a call (a function it cannot import) still answers each of its tasks.
Worker -> parent: `("ready", pid, stats)`, `("init_failed", pid, detail)`, or `("result", answers, stats)` where
each answer is `(task id, "ok" | "err", value, seconds)` and `stats` is the worker's own report (its RSS). Errors
travel pickled on their own, so one error the parent cannot read never loses the unit's other results.
"""

from __future__ import annotations

import os
import pickle
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from app.errors import AppError

READY = "ready"
INIT_FAILED = "init_failed"
RESULT = "result"

Answer = tuple[int, str, Any, float]  # (task id, "ok" | "err", value or pickled error, seconds)
_PROTOCOL = pickle.HIGHEST_PROTOCOL


class UnitNotSendable(Exception):
    """A task's function or arguments cannot be pickled."""


# --- parent side ----------------------------------------------------------------------------------------------------
def encode_unit(task_ids: Sequence[int], calls: Sequence[tuple[Callable[..., Any], tuple]]) -> bytes:
    try:
        body = pickle.dumps(list(calls), protocol=_PROTOCOL)
        return pickle.dumps((list(task_ids), body), protocol=_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise UnitNotSendable(str(exc)) from exc


def encode_stop() -> bytes:
    return pickle.dumps(None)


def decode_message(data: bytes) -> tuple:
    """A worker's message as a tuple whose first item is READY, INIT_FAILED or RESULT."""
    return pickle.loads(data)


def load_error(body: bytes) -> BaseException:
    """The exception of an "err" answer; a readable RuntimeError when the parent cannot unpickle it."""
    try:
        error = pickle.loads(body)
    except Exception as exc:  # noqa: BLE001 - e.g. an exception class the parent cannot import
        return RuntimeError(f"the page's error could not be read: {exc}")
    return error if isinstance(error, BaseException) else RuntimeError(f"the page failed: {error!r}")


# --- worker side ----------------------------------------------------------------------------------------------------
def encode_ready(pid: int, stats: dict[str, Any] | None = None) -> bytes:
    return pickle.dumps((READY, pid, stats or {}))


def encode_init_failed(pid: int, detail: str) -> bytes:
    return pickle.dumps((INIT_FAILED, pid, detail))


def decode_unit(data: bytes) -> list[tuple[int, Callable[..., Any], tuple]] | None:
    """The worker's view of a unit: [(task id, fn, args)], or None for stop. Calls that cannot be read become
    calls that raise, one per task id."""
    message = pickle.loads(data)
    if message is None:
        return None
    task_ids, body = message
    try:
        calls = pickle.loads(body)
    except Exception as exc:  # noqa: BLE001 - e.g. a task function the worker cannot import
        error = RuntimeError(f"the task could not be read in the worker: {type(exc).__name__}: {exc}")
        calls = [(_raise, (error,)) for _ in task_ids]
    return [(task_id, fn, args) for task_id, (fn, args) in zip(task_ids, calls, strict=True)]


def run_one(task_id: int, fn: Callable[..., Any], args: tuple) -> Answer:
    """Run one task: (id, "ok", value, seconds), or (id, "err", the pickled error, seconds)."""
    start = time.perf_counter()
    try:
        value = fn(*args)
        status = "ok"
    except Exception as exc:  # noqa: BLE001 - every failure goes back to the parent as the page's error
        status, value = "err", _pickled_error(_portable_error(exc))
    return task_id, status, value, time.perf_counter() - start


def encode_result(answers: list[Answer], stats: dict[str, Any] | None = None) -> bytes:
    try:
        return pickle.dumps((RESULT, answers, stats or {}), protocol=_PROTOCOL)
    except Exception:  # noqa: BLE001 - one result that does not pickle must not sink the others
        return pickle.dumps((RESULT, [_sendable(answer) for answer in answers], stats or {}), protocol=_PROTOCOL)


def _sendable(answer: Answer) -> Answer:
    task_id, status, value, seconds = answer
    if status == "ok":
        try:
            pickle.dumps(value)
        except Exception as exc:  # noqa: BLE001
            return task_id, "err", _pickled_error(RuntimeError(f"the page's result could not be sent: {exc}")), seconds
    return answer


def _raise(error: BaseException) -> None:
    raise error


def _pickled_error(error: BaseException) -> bytes:
    try:
        return pickle.dumps(error)
    except Exception as exc:  # noqa: BLE001
        detail = f"{type(error).__name__}: {error} (the error itself could not be sent: {exc})"
        return pickle.dumps(RuntimeError(detail))


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
