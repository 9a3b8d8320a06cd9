"""The one S3 uploader (app/storage/s3.py): every call records S3's health for /health, and it serves the job
and batch operations (keys, prefixes, other buckets). S3 is moto's in-process mock here; tests/integration
runs the moto server over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from app.storage.s3 import S3Uploader


@pytest.fixture
def uploader(make_settings):
    with mock_aws():
        yield S3Uploader(make_settings(s3_bucket="results", s3_access_key="k", s3_secret_key="s", s3_prefix="ocr/"))


def test_a_failing_call_marks_s3_unhealthy_and_the_next_success_heals_it(uploader: S3Uploader, tmp_path) -> None:
    source = tmp_path / "input.pdf"
    source.write_bytes(b"%PDF-1.7")
    with pytest.raises(ClientError):
        uploader.check()  # the bucket does not exist yet
    assert uploader.status == "error" and (uploader.last_error or "").startswith("ClientError")
    assert uploader.health()["status"] == "error"
    uploader.client.create_bucket(Bucket="results")
    key = uploader.upload_file(uploader.key_for("j1", source.name), source, "application/pdf")
    assert key == "ocr/j1/input.pdf" and uploader.exists(key)
    assert (uploader.status, uploader.last_error) == ("configured", None)


def test_delete_prefix_removes_one_jobs_objects_only(uploader: S3Uploader) -> None:
    uploader.client.create_bucket(Bucket="results")
    for key in ("ocr/j1/a", "ocr/j1/b", "ocr/j10/a", "ocr/j2/a"):
        uploader.put_bytes(key, b"x", "text/plain")
    assert uploader.delete_prefix("ocr/j1/") == 2
    assert sorted(uploader.list_keys("ocr/")) == ["ocr/j10/a", "ocr/j2/a"]


def test_batch_reads_and_writes_buckets_of_its_own(uploader: S3Uploader, tmp_path: Path) -> None:
    uploader.client.create_bucket(Bucket="inputs")
    uploader.put_bytes("in/a.pdf", b"%PDF-1.7 a", "application/pdf", bucket="inputs")
    assert list(uploader.list_keys("in/", bucket="inputs")) == ["in/a.pdf"]
    uploader.download_file("in/a.pdf", tmp_path / "a.pdf", bucket="inputs")
    assert (tmp_path / "a.pdf").read_bytes() == b"%PDF-1.7 a"


def test_fetching_a_result_s3_no_longer_has_leaves_nothing_behind(uploader: S3Uploader) -> None:
    # The job was deleted (its objects gone) while another replica came to fetch it: FileNotFoundError (the route
    # answers 404), no `jobs/<id>/images/` nor staging directory left on this replica's disk.
    from app.jobs import files

    settings = uploader.settings
    job_id = "jfetch000001"
    uploader.client.create_bucket(Bucket=uploader.bucket)
    uploader.put_bytes(uploader.key_for(job_id, "images/p1-fig1.png"), b"png", "image/png")  # result.* already gone
    with pytest.raises(FileNotFoundError):
        files.s3_fetch_result(uploader, settings, job_id)
    root = files.jobs_root(settings)
    assert not root.exists() or list(root.iterdir()) == []

    for name, body in (("result.md", b"# t"), ("result.json", b"{}")):
        uploader.put_bytes(uploader.key_for(job_id, name), body, "text/plain")
    directory = files.s3_fetch_result(uploader, settings, job_id)
    assert sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*")) == [
        "images", "images/p1-fig1.png", "result.json", "result.md"]
    assert [p.name for p in root.iterdir()] == [job_id]  # the staging directory is gone
