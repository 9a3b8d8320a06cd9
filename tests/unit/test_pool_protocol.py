"""The wire protocol on its own: units and answers round-trip; what cannot travel becomes a per-task error."""

from __future__ import annotations

import pickle
import threading

import pytest

from app.errors import PageTooLarge
from app.runtime.pool import protocol


def add(a: int, b: int) -> int:
    return a + b


def too_large() -> None:
    raise PageTooLarge("page 3 embeds a 50000x50000 image")


def lock_result() -> threading.Lock:
    return threading.Lock()  # a value that cannot be pickled


class _Unpicklable(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a}-{b}")


def unpicklable_error() -> None:
    raise _Unpicklable(1, 2)


def test_a_unit_round_trips_and_its_answers_keep_their_ids():
    data = protocol.encode_unit([7, 8], [(add, (1, 2)), (too_large, ())])
    unit = protocol.decode_unit(data)
    answers = [protocol.run_one(task_id, fn, args) for task_id, fn, args in unit]
    kind, back, stats = protocol.decode_message(protocol.encode_result(answers, {"rss_mb": 12.5}))
    assert kind == protocol.RESULT and stats == {"rss_mb": 12.5}
    assert [(a[0], a[1]) for a in back] == [(7, "ok"), (8, "err")]
    assert back[0][2] == 3
    error = protocol.load_error(back[1][2])
    assert isinstance(error, PageTooLarge) and "50000x50000" in str(error)


def test_stop_decodes_as_none():
    assert protocol.decode_unit(protocol.encode_stop()) is None


def test_a_call_the_worker_cannot_load_fails_each_of_its_tasks():
    calls = pickle.dumps([(add, (1, 2)), (add, (3, 4))])
    body = calls.replace(b"add", b"nope")  # the function no longer exists by that name
    unit = protocol.decode_unit(pickle.dumps(([1, 2], body)))
    answers = [protocol.run_one(task_id, fn, args) for task_id, fn, args in unit]
    assert [(a[0], a[1]) for a in answers] == [(1, "err"), (2, "err")]
    assert "could not be read in the worker" in str(protocol.load_error(answers[0][2]))


def test_a_result_that_cannot_be_pickled_fails_only_its_own_task():
    answers = [protocol.run_one(1, add, (2, 2)), protocol.run_one(2, lock_result, ())]
    _, back, _ = protocol.decode_message(protocol.encode_result(answers))
    assert back[0][1:3] == ("ok", 4)
    assert back[1][1] == "err" and "could not be sent" in str(protocol.load_error(back[1][2]))


def test_an_unpicklable_error_arrives_readable_with_the_workers_traceback():
    _, status, body, _ = protocol.run_one(1, unpicklable_error, ())
    error = protocol.load_error(body)
    assert status == "err" and "1-2" in str(error)
    assert "in page worker" in "".join(getattr(error, "__notes__", []))


def test_an_unsendable_call_is_refused_in_the_parent():
    with pytest.raises(protocol.UnitNotSendable):
        protocol.encode_unit([1], [(add, (threading.Lock(), 1))])


def test_an_error_the_parent_cannot_read_becomes_a_runtime_error():
    assert isinstance(protocol.load_error(b"not a pickle"), RuntimeError)
    assert isinstance(protocol.load_error(pickle.dumps("just text")), RuntimeError)
