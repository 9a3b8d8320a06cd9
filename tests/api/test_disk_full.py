"""A full output disk, for real (a small tmpfs filled to the brim): 507 in the JSON shape on every write path,
the conversion still answered when only its copy on disk failed, nothing half-written, `/health` showing the
disk, and recovery without a restart once space returns. Real PagePool, text pages."""

from __future__ import annotations

import pytest

from app.main import create_app
from tests import pdfgen
from tests.api.conftest import running, wait_ready
from tests.api.test_errors import assert_error
from tests.fullfs import fill, free_bytes, small_filesystem

pytestmark = pytest.mark.anyio

KB, MB = 1024, 1024 * 1024


def leftovers(output_dir):
    """Every file under OUTPUT_DIR but the filler and the job database: what a failed write left behind."""
    return sorted(str(p.relative_to(output_dir)) for p in output_dir.rglob("*")
                  if p.is_file() and p.name != ".filler" and not p.name.startswith("jobs.db"))


async def test_full_disk_is_507_everywhere_keeps_the_answer_and_recovers(make_settings, tmp_path):
    pdf = pdfgen.text_pdf(tmp_path / "ten.pdf", pages=10)  # ~11 KB in, ~64 KB of result out
    with small_filesystem(tmp_path / "out", size_mb=8) as out:
        settings = make_settings(workers=1, output_dir=out, min_free_disk_mb=1, max_upload_mb=5)
        app = create_app(settings)
        async with running(app, timeout=300) as client:
            await wait_ready(client)
            files = {"file": ("ten.pdf", pdf.read_bytes(), "application/pdf")}

            # Below the margin: new work of either kind is refused before its body is stored.
            filler = fill(out, leave_bytes=MB // 2)
            assert_error(await client.post("/ocr/pdf", params={"mode": "text"}, files=files), 507,
                         "insufficient_storage")
            assert_error(await client.post("/jobs", data={"mode": "text"}, files=files), 507,
                         "insufficient_storage")
            health = await client.get("/health")
            assert health.json()["disk"]["status"] == "low" and health.json()["status"] == "degraded"
            assert "disk" in health.json()["reason"]

            # Room for the upload but not for the copy of the result: the caller still gets the conversion.
            filler.unlink()
            fill(out, leave_bytes=MB + 32 * KB)
            response = await client.post("/ocr/pdf", params={"mode": "text"}, files=files)
            assert response.status_code == 200, response.text
            body = response.json()
            assert [p["page"] for p in body["pages"]] == list(range(1, 11)) and pdfgen.TITLE in body["markdown"]
            assert body["outputs"]["files"] == [] and body["outputs"]["id"] is None
            assert body["outputs"]["error"]["type"] == "insufficient_storage"
            assert leftovers(out) == []

            # A body without Content-Length that runs into ENOSPC while streaming: 507, temp file gone.
            (out / ".filler").unlink()
            fill(out, leave_bytes=MB + MB // 2)

            async def chunked_body():
                yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.pdf"\r\n\r\n%PDF-1.7\n'
                for _ in range(48):
                    yield b"0" * (64 * KB)
                yield b"\r\n--b--\r\n"

            response = await client.post("/ocr/pdf", content=chunked_body(),
                                         headers={"Content-Type": "multipart/form-data; boundary=b"})
            assert_error(response, 507, "insufficient_storage")
            assert leftovers(out) == []

            # Space returns: the same requests succeed without a restart, and /health says so.
            (out / ".filler").unlink()
            assert free_bytes(out) > 4 * MB
            response = await client.post("/ocr/pdf", params={"mode": "text"}, files=files)
            assert response.status_code == 200 and response.json()["outputs"]["error"] is None
            assert (out / response.json()["outputs"]["files"][0]).is_file()
            job = await client.post("/jobs", data={"mode": "text"}, files=files)
            assert job.status_code == 202, job.text
            health = await client.get("/health")
            assert health.json()["disk"]["status"] == "ok" and health.json()["status"] == "healthy"


async def test_any_write_that_meets_a_full_disk_is_a_507_not_a_500(make_settings, tmp_path):
    """Whatever write meets ENOSPC (a file, SQLite's "database or disk is full"), the answer is the 507 shape."""
    import sqlite3

    import httpx

    with small_filesystem(tmp_path / "fs", size_mb=4) as fs:
        app = create_app(make_settings(output_dir=fs / "out"))

        @app.post("/test-only/sqlite")
        async def write_rows() -> None:
            with sqlite3.connect(fs / "t.db") as db:
                db.execute("CREATE TABLE IF NOT EXISTS t (b BLOB)")
                for _ in range(128):
                    db.execute("INSERT INTO t VALUES (?)", (b"\1" * 64 * KB,))
                    db.commit()

        @app.post("/test-only/file")
        async def write_file() -> None:
            (fs / "big.bin").write_bytes(b"\0" * 8 * MB)

        fill(fs, leave_bytes=64 * KB)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            for path in ("/test-only/sqlite", "/test-only/file"):
                error = assert_error(await client.post(path), 507, "insufficient_storage")
                assert "full" in error["message"]


async def test_a_disk_that_fills_up_mid_job_ends_every_job(make_settings, tmp_path):
    """The disk fills while jobs checkpoint their pages (SQLite's "database or disk is full", ENOSPC on crops and
    results): each job ends, `failed` with `insufficient_storage` or `succeeded`, none stays `running` with nothing
    working on it, and once space returns, without a restart, the service takes and finishes new jobs."""
    import time

    from app.jobs.store import FINISHED
    from tests.api.conftest import wait_for

    pdf = pdfgen.text_pdf(tmp_path / "long.pdf", pages=300)
    with small_filesystem(tmp_path / "out", size_mb=32) as out:
        settings = make_settings(workers=1, output_dir=out, min_free_disk_mb=1, max_upload_mb=5)
        async with running(create_app(settings), timeout=300) as client:
            await wait_ready(client)
            files = {"file": ("long.pdf", pdf.read_bytes(), "application/pdf")}
            ids = []
            for _ in range(3):
                response = await client.post("/jobs", data={"mode": "text"}, files=files)
                assert response.status_code == 202, response.text
                ids.append(response.json()["job_id"])
            filler = fill(out, leave_bytes=0)  # mid-job: the first job is converting, the others queued or so

            async def views() -> list[dict]:
                return [(await client.get(f"/jobs/{job_id}")).json() for job_id in ids]

            # While the disk stays full nothing moves any more (no job finishes a page it cannot store).
            last: list[tuple] = []
            stable_since = time.monotonic()

            async def settled() -> bool:
                nonlocal last, stable_since
                now = [(v["status"], v["pages_done"]) for v in await views()]
                if now != last:
                    last, stable_since = now, time.monotonic()
                return time.monotonic() - stable_since > 3

            await wait_for(settled, 120, "the jobs to stop progressing on the full disk")
            filler.unlink()  # space returns

            async def all_ended() -> bool:
                return all(v["status"] in FINISHED for v in await views())

            await wait_for(all_ended, 60, "every job to end once space returned (no restart)")
            ended = await views()
            assert all(v["status"] in ("succeeded", "failed") for v in ended), ended
            failed = [v for v in ended if v["status"] == "failed"]
            assert failed, f"no job met the full disk: {ended}"
            assert {v["error"]["type"] for v in failed} == {"insufficient_storage"}, failed
            assert all("full" in v["error"]["message"] for v in failed)
            for view in failed:  # the 409 of a job without a result, not a 500
                assert (await client.get(f"/jobs/{view['job_id']}/result")).status_code == 409

            small = {"file": ("one.pdf", pdfgen.text_pdf(tmp_path / "one.pdf").read_bytes(), "application/pdf")}
            job_id = (await client.post("/jobs", data={"mode": "text"}, files=small)).json()["job_id"]

            async def done() -> bool:
                return (await client.get(f"/jobs/{job_id}")).json()["status"] in FINISHED

            await wait_for(done, 60, "a job submitted after recovery")
            assert (await client.get(f"/jobs/{job_id}")).json()["status"] == "succeeded"
