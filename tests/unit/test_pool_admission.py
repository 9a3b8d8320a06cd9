"""Admission on its own: the pending-page bound, the idle exception, Retry-After from measured page times."""

from __future__ import annotations

import threading

import pytest

from app.errors import Overloaded
from app.runtime.pool.admission import MAX_RETRY_AFTER_S, Admission, AdmissionControl


def test_the_bound_counts_pages_given_back_one_by_one():
    control = AdmissionControl(limit=10, workers=2)
    first = control.admit(8)
    with pytest.raises(Overloaded):
        control.admit(3)
    first.page_done(5)
    assert control.pending == 3 and first.pages_left == 3
    second = control.admit(7)
    assert control.pending == 10
    first.page_done(100)  # never gives back more than it holds
    assert control.pending == 7
    with second:
        pass
    assert control.pending == 0


def test_an_idle_control_admits_one_document_of_any_size():
    control = AdmissionControl(limit=10, workers=1)
    big = control.admit(500)
    with pytest.raises(Overloaded):
        control.admit(1)
    big.release()
    big.release()
    assert control.pending == 0


def test_retry_after_follows_the_measured_page_time_and_is_capped():
    control = AdmissionControl(limit=10, workers=2)
    control.admit(10)
    for _ in range(50):
        control.record_page_seconds(4.0)  # the running mean converges on 4 s a page
    with pytest.raises(Overloaded) as excinfo:
        control.admit(6)
    assert excinfo.value.retry_after_s == pytest.approx(12.0)  # 6 pages over the bound x 4 s / 2 workers
    with pytest.raises(Overloaded) as excinfo:
        control.admit(100_000)
    assert excinfo.value.retry_after_s == MAX_RETRY_AFTER_S


def test_concurrent_reservations_never_exceed_the_bound():
    control = AdmissionControl(limit=100, workers=4)
    control.admit(1)
    held = []
    lock = threading.Lock()

    def grab():
        for _ in range(200):
            try:
                admission = control.admit(1)
            except Overloaded:
                continue
            with lock:
                held.append(admission)

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert control.pending == 100 and len(held) == 99


def test_an_unmetered_admission_reserves_nothing_and_gives_nothing_back():
    # A job's conversion runs unmetered: a full control still lets it through, and it never frees pages it did
    # not take (which would let requests past the bound).
    control = AdmissionControl(limit=4, workers=1)
    held = control.admit(4)
    job = Admission.unmetered()
    assert job.pages == 0 and job.pages_left == 0
    job.page_done(3)
    job.release()
    assert control.pending == 4
    with pytest.raises(Overloaded):
        control.admit(1)
    held.release()
    assert control.pending == 0
