"""The free-space guard and the full-disk errors, on a real tmpfs filled to the brim (tests/fullfs.py)."""

from __future__ import annotations

import sqlite3

import pytest

from app.errors import InsufficientStorage
from app.pipeline.result import DocumentResult
from app.storage.disk import disk_state, is_disk_full, require_free_space
from app.storage.local import write_outputs
from tests.fullfs import fill, small_filesystem

MB = 1024 * 1024


@pytest.fixture
def full_fs(tmp_path):
    with small_filesystem(tmp_path / "fs", size_mb=4) as path:
        yield path


def big_result(size: int) -> DocumentResult:
    return DocumentResult(markdown="x" * size, page_count=1, pages=[])


def test_result_that_meets_enospc_is_507_and_leaves_no_half_written_directory(full_fs):
    fill(full_fs, leave_bytes=64 * 1024)
    with pytest.raises(InsufficientStorage, match="disk is full"):
        write_outputs(full_fs / "out", "req-1", big_result(200 * 1024), fresh_dir=True)
    assert list((full_fs / "out").iterdir()) == []  # neither result.json alone nor an empty directory


def test_result_that_meets_enospc_in_an_existing_directory_takes_back_its_first_file(full_fs):
    (full_fs / "jobs" / "job-1").mkdir(parents=True)
    (full_fs / "jobs" / "job-1" / "input.pdf").write_bytes(b"%PDF")
    fill(full_fs, leave_bytes=48 * 1024)
    # result.json (~ the markdown, JSON-escaped) fits, result.md after it does not
    with pytest.raises(InsufficientStorage):
        write_outputs(full_fs / "jobs", "job-1", big_result(30 * 1024))
    assert sorted(p.name for p in (full_fs / "jobs" / "job-1").iterdir()) == ["input.pdf"]


def test_sqlite_on_a_full_disk_is_recognised_as_disk_full(full_fs):
    db = sqlite3.connect(full_fs / "jobs.db")
    db.execute("CREATE TABLE t (b BLOB)")
    db.commit()
    fill(full_fs, leave_bytes=16 * 1024)
    with pytest.raises(sqlite3.OperationalError) as caught:
        for _ in range(64):
            db.execute("INSERT INTO t VALUES (?)", (b"\1" * 64 * 1024,))
            db.commit()
    db.close()
    assert is_disk_full(caught.value)
    assert not is_disk_full(sqlite3.OperationalError("no such table: jobs"))
    assert not is_disk_full(PermissionError(13, "denied"))


def test_guard_refuses_below_the_margin_and_recovers_when_space_returns(full_fs, make_settings):
    settings = make_settings(output_dir=full_fs / "out", min_free_disk_mb=1)
    filler = fill(full_fs, leave_bytes=MB // 2)
    assert not disk_state(settings).ok
    with pytest.raises(InsufficientStorage, match="nearly full"):
        require_free_space(settings)
    filler.unlink()
    require_free_space(settings)
    assert disk_state(settings).ok
    with pytest.raises(InsufficientStorage):  # room now, but not for what is about to be written
        require_free_space(settings, incoming_bytes=4 * MB)
