"""The /jobs API in-process, on the real PagePool with born-digital (`text` mode) pages.

Each test starts its own app (lifespan included) with the settings it is about; waits are polls with deadlines.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api.job_views import owner_for_key
from app.main import create_app
from tests import pdfgen
from tests.api.conftest import running, wait_for, wait_ready

pytestmark = pytest.mark.anyio

FINAL = {"succeeded", "failed", "cancelled"}


def _files(path: Path) -> dict[str, Any]:
    return {"file": (path.name, path.read_bytes(), "application/pdf")}


async def _submit(client: httpx.AsyncClient, path: Path, data: dict[str, str] | None = None,
                  headers: dict[str, str] | None = None) -> httpx.Response:
    return await client.post("/jobs", files=_files(path), data={"mode": "text", **(data or {})}, headers=headers)


async def _wait_final(client: httpx.AsyncClient, job_id: str, timeout_s: float = 120.0,
                      headers: dict[str, str] | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {}

    async def finished() -> bool:
        response = await client.get(f"/jobs/{job_id}", headers=headers)
        assert response.status_code == 200, response.text
        state.update(response.json())
        return state["status"] in FINAL

    await wait_for(finished, timeout_s, f"job {job_id} to finish")
    return state


def _comparable(document: dict[str, Any]) -> dict[str, Any]:
    """A result without what legitimately differs between two runs (timings, request ids, output paths)."""
    return {
        "markdown": document["markdown"],
        "page_count": document["page_count"],
        "pages": [{k: v for k, v in page.items() if k != "timings"} for page in document["pages"]],
    }


def _checkpoints(output_dir: Path, job_id: str) -> dict[int, tuple[float, int]]:
    """page index -> (computed_at, computations), read straight from the database file."""
    with closing(sqlite3.connect(output_dir / "jobs.db")) as db:
        rows = db.execute("SELECT page_index, computed_at, computations FROM pages WHERE job_id = ? AND state = 'done'",
                          (job_id,))
        return {index: (at, n) for index, at, n in rows}


def _status(output_dir: Path, job_id: str) -> str:
    with closing(sqlite3.connect(output_dir / "jobs.db")) as db:
        return db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]


def _uploads(settings_output: Path) -> list[Path]:
    d = settings_output / ".uploads"
    return sorted(d.iterdir()) if d.exists() else []


async def test_job_runs_to_completion_with_the_same_result_as_the_sync_endpoint(make_settings, pdfs) -> None:
    settings = make_settings(workers=1, default_mode="text")
    app = create_app(settings)
    async with running(app) as client:
        await wait_ready(client)
        response = await _submit(client, pdfs["text3"], {"pages": "1-3"})
        assert response.status_code == 202, response.text
        body = response.json()
        job_id = body["job_id"]
        assert response.headers["location"] == body["status_url"] == f"/jobs/{job_id}"
        assert body["result_url"] == f"/jobs/{job_id}/result"

        state = await _wait_final(client, job_id)
        assert state["status"] == "succeeded", state
        assert (state["pages_done"], state["pages_total"], state["error"]) == (3, 3, None)
        assert state["created_at"] <= state["started_at"] <= state["finished_at"]

        as_json = await client.get(f"/jobs/{job_id}/result")
        assert as_json.status_code == 200 and as_json.headers["content-type"].startswith("application/json")
        sync = await client.post("/ocr/pdf", files=_files(pdfs["text3"]), data={"mode": "text"})
        assert sync.status_code == 200, sync.text
        assert _comparable(as_json.json()) == _comparable(sync.json())
        assert "This is page 3 of the report." in as_json.json()["markdown"]

        by_query = await client.get(f"/jobs/{job_id}/result", params={"format": "markdown"})
        by_accept = await client.get(f"/jobs/{job_id}/result", headers={"Accept": "text/markdown"})
        assert by_query.status_code == by_accept.status_code == 200
        assert by_query.headers["content-type"].startswith("text/markdown")
        assert by_query.text == by_accept.text == as_json.json()["markdown"]

        listed = (await client.get("/jobs")).json()["jobs"]
        assert [j["job_id"] for j in listed] == [job_id]
        assert _uploads(settings.output_dir) == []  # the upload moved into the job, nothing left behind


async def test_bad_uploads_get_the_same_errors_as_ocr_pdf_and_leave_nothing(make_settings, pdfs) -> None:
    settings = make_settings(workers=1)
    app = create_app(settings)
    async with running(app) as client:
        await wait_ready(client)
        for name, status in (("random", 415), ("encrypted", 422), ("zero", 422), ("corrupt", 422)):
            job = await _submit(client, pdfs[name])
            sync = await client.post("/ocr/pdf", files=_files(pdfs[name]), data={"mode": "text"})
            assert job.status_code == sync.status_code == status, (name, job.text)
            assert job.json()["error"]["type"] == sync.json()["error"]["type"]
        bad_pages = await _submit(client, pdfs["text3"], {"pages": "2-9"})
        assert bad_pages.status_code == 422 and "pages" in bad_pages.json()["error"]["message"]
        assert (await client.get("/jobs")).json()["jobs"] == []
        assert _uploads(settings.output_dir) == []
        jobs_dir = settings.output_dir / "jobs"
        assert not jobs_dir.exists() or not any(jobs_dir.iterdir())


async def test_new_jobs_get_507_when_the_output_disk_is_nearly_full(make_settings, pdfs) -> None:
    app = create_app(make_settings(workers=1, min_free_disk_mb=1e12))
    async with running(app) as client:
        await wait_ready(client)
        response = await _submit(client, pdfs["text1"])
        assert response.status_code == 507
        assert response.json()["error"]["type"] == "insufficient_storage"


async def test_idempotency_key_returns_the_same_job_and_refuses_another_file(make_settings, pdfs) -> None:
    app = create_app(make_settings(workers=1))
    async with running(app) as client:
        await wait_ready(client)
        first = await _submit(client, pdfs["text1"], headers={"Idempotency-Key": "order-42"})
        again = await _submit(client, pdfs["text1"], headers={"Idempotency-Key": "order-42"})
        other = await _submit(client, pdfs["text1"], headers={"Idempotency-Key": "order-43"})
        assert first.status_code == again.status_code == other.status_code == 202
        assert first.json()["job_id"] == again.json()["job_id"] != other.json()["job_id"]
        clash = await _submit(client, pdfs["text3"], headers={"Idempotency-Key": "order-42"})
        assert clash.status_code == 409
        assert len((await client.get("/jobs")).json()["jobs"]) == 2
        for job_id in (first.json()["job_id"], other.json()["job_id"]):
            assert (await _wait_final(client, job_id))["status"] == "succeeded"


async def test_a_job_is_invisible_to_any_other_api_key(make_settings, pdfs) -> None:
    settings = make_settings(workers=1, api_key="key-of-alice, key-of-bob")  # one key per client
    app = create_app(settings)
    alice, bob = {"Authorization": "Bearer key-of-alice"}, {"X-API-Key": "key-of-bob"}
    async with running(app) as client:
        await wait_ready(client)
        job_id = (await _submit(client, pdfs["text1"], headers=alice)).json()["job_id"]
        await _wait_final(client, job_id, headers=alice)
        assert (await client.get(f"/jobs/{job_id}")).status_code == 401  # no key at all
        assert (await client.get(f"/jobs/{job_id}", headers={"X-API-Key": "key-of-eve"})).status_code == 401

        for method, url in (("GET", f"/jobs/{job_id}"), ("GET", f"/jobs/{job_id}/result"),
                            ("GET", f"/jobs/{job_id}/events"), ("DELETE", f"/jobs/{job_id}")):
            response = await client.request(method, url, headers=bob)
            assert response.status_code == 404, (method, url, response.text)
            assert response.json()["error"]["type"] == "not_found"
        assert (await client.get("/jobs", headers=bob)).json()["jobs"] == []
        assert [j["job_id"] for j in (await client.get("/jobs", headers=alice)).json()["jobs"]] == [job_id]

        assert (await client.get(f"/jobs/{job_id}/result", headers=alice)).status_code == 200
        stored = await app.state.services.jobs.store.get(job_id)
        assert stored.owner == owner_for_key("key-of-alice") and "alice" not in stored.owner
    db = (settings.output_dir / "jobs.db").read_bytes()
    assert b"key-of-alice" not in db and b"key-of-bob" not in db


async def test_cancel_stops_a_running_job_and_delete_removes_it(make_settings, tmp_path) -> None:
    settings = make_settings(workers=1)
    big = pdfgen.text_pdf(tmp_path / "big.pdf", pages=60)
    app = create_app(settings)
    async with running(app) as client:
        await wait_ready(client)
        job_id = (await _submit(client, big)).json()["job_id"]
        early = await client.get(f"/jobs/{job_id}/result")
        assert early.status_code == 409 and early.json()["error"]["type"] == "conflict"

        async def started() -> bool:
            return (await client.get(f"/jobs/{job_id}")).json()["pages_done"] >= 1

        await wait_for(started, 60, "the first page")
        cancelled = await client.delete(f"/jobs/{job_id}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        await app.state.services.jobs.wait(job_id, 60)  # the runner drains the pages already in flight
        done_at_end = len(await app.state.services.jobs.store.pages(job_id))
        state = (await client.get(f"/jobs/{job_id}")).json()
        assert state["status"] == "cancelled" and state["error"]["type"] == "cancelled"
        assert state["pages_done"] == done_at_end < 60  # the remaining pages were never started
        assert (await client.get(f"/jobs/{job_id}/result")).status_code == 409

        job_dir = settings.output_dir / "jobs" / job_id
        assert job_dir.exists()
        assert (await client.delete(f"/jobs/{job_id}")).status_code == 204
        assert not job_dir.exists()
        assert (await client.get(f"/jobs/{job_id}")).status_code == 404


async def test_event_stream_reports_every_page_then_the_final_status(make_settings, tmp_path) -> None:
    doc = pdfgen.text_pdf(tmp_path / "five.pdf", pages=5)
    app = create_app(make_settings(workers=1))
    async with running(app) as client:
        await wait_ready(client)
        job_id = (await _submit(client, doc)).json()["job_id"]
        response = await client.get(f"/jobs/{job_id}/events")  # ends by itself after the final event
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = []
        for frame in response.text.strip().split("\n\n"):
            lines = dict(line.split(": ", 1) for line in frame.splitlines() if not line.startswith(":"))
            events.append((lines["event"], json.loads(lines["data"])))
        assert events[0][0] == "status"
        assert events[-1][0] == "status" and events[-1][1]["status"] == "succeeded"
        assert events[-1][1]["pages_done"] == 5
        pages = [data for kind, data in events if kind == "page"]
        # Every page that finished after we subscribed is reported, with a growing count.
        seen_before = events[0][1]["pages_done"]
        assert len(pages) == 5 - seen_before
        assert sorted(p["page"] for p in pages) == sorted(set(p["page"] for p in pages))
        assert [p["pages_done"] for p in pages] == list(range(seen_before + 1, 6))
        # Connecting after the end gives the final status at once.
        late = await client.get(f"/jobs/{job_id}/events")
        assert late.text.count("event: status") == 1 and '"status":"succeeded"' in late.text


async def test_sync_request_past_max_sync_wait_becomes_a_job(make_settings, tmp_path) -> None:
    # OCR pages take about a second each here: the 0.5 s sync wait always runs out mid-document, however fast
    # text pages get.
    settings = make_settings(workers=1, max_sync_wait_s=0.5)
    doc = pdfgen.text_pdf(tmp_path / "four.pdf", pages=4)
    app = create_app(settings)
    async with running(app) as client:
        await wait_ready(client)
        response = await client.post("/ocr/pdf", files=_files(doc), data={"mode": "ocr", "dpi": "100"})
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        assert response.headers["location"] == f"/jobs/{job_id}"
        state = await _wait_final(client, job_id)
        assert state["status"] == "succeeded" and state["pages_done"] == state["pages_total"] == 4
        checkpoints = await app.state.services.jobs.store.pages(job_id)
        assert [c.page_index for c in checkpoints] == list(range(4))
        assert all(c.computations == 1 for c in checkpoints)  # handed over, not converted again
        result = (await client.get(f"/jobs/{job_id}/result")).json()
        assert [p["page"] for p in result["pages"]] == list(range(1, 5))
        assert {p["source"] for p in result["pages"]} == {"ocr"}

        async def upload_gone() -> bool:
            return _uploads(settings.output_dir) == []

        await wait_for(upload_gone, 10, "the handed-off upload to be removed")


async def test_finished_jobs_and_their_files_expire_after_the_ttl(make_settings, pdfs) -> None:
    settings = make_settings(workers=1, job_ttl_hours=0.5 / 3600, job_sweep_interval_s=0.1)  # TTL half a second
    app = create_app(settings)
    async with running(app) as client:
        await wait_ready(client)
        job_id = (await _submit(client, pdfs["text1"])).json()["job_id"]
        assert (await _wait_final(client, job_id))["status"] == "succeeded"
        job_dir = settings.output_dir / "jobs" / job_id
        assert (job_dir / "result.json").exists()

        async def swept() -> bool:
            return (await client.get(f"/jobs/{job_id}")).status_code == 404

        await wait_for(swept, 30, "the sweep to remove the job")
        assert not job_dir.exists()


async def test_a_small_job_submitted_after_a_big_one_finishes_first(make_settings, tmp_path) -> None:
    # Text pages take milliseconds each: the big job must outlast the small one's whole submission by a margin
    # (with 80 pages, a fast job store let it finish first on a loaded machine).
    big_pages = 400
    big = pdfgen.text_pdf(tmp_path / "big.pdf", pages=big_pages)
    small = pdfgen.text_pdf(tmp_path / "small.pdf", pages=1)
    app = create_app(make_settings(workers=1))
    async with running(app) as client:
        await wait_ready(client)
        big_id = (await _submit(client, big)).json()["job_id"]

        async def big_started() -> bool:
            return (await client.get(f"/jobs/{big_id}")).json()["pages_done"] >= 1

        await wait_for(big_started, 60, "the big job to start")
        small_id = (await _submit(client, small)).json()["job_id"]
        small_state = await _wait_final(client, small_id)
        big_state = (await client.get(f"/jobs/{big_id}")).json()
        assert small_state["status"] == "succeeded"
        assert big_state["status"] == "running" and big_state["pages_done"] < big_pages, big_state
        await client.delete(f"/jobs/{big_id}")


async def test_graceful_stop_then_restart_resumes_without_recomputing_pages(make_settings, tmp_path) -> None:
    settings = make_settings(workers=1, shutdown_grace_s=30)
    doc = pdfgen.text_pdf(tmp_path / "forty.pdf", pages=40)
    first = create_app(settings)
    async with running(first) as client:
        await wait_ready(client)
        job_id = (await _submit(client, doc)).json()["job_id"]

        async def some_done() -> bool:
            return (await client.get(f"/jobs/{job_id}")).json()["pages_done"] >= 3

        await wait_for(some_done, 60, "three pages")
    # Lifespan exit = the SIGTERM path: remaining pages were not started; the job is still active on disk.
    before = _checkpoints(settings.output_dir, job_id)
    assert 3 <= len(before) < 40
    assert _status(settings.output_dir, job_id) == "running"
    second = create_app(settings)
    async with running(second) as client:
        await wait_ready(client)
        state = await _wait_final(client, job_id)
        assert state["status"] == "succeeded" and state["pages_done"] == 40
        after = _checkpoints(settings.output_dir, job_id)
        assert sorted(after) == list(range(40))
        assert all(computations == 1 for _, computations in after.values())
        assert {i: after[i] for i in before} == before  # pages done before the stop were not redone
        assert (await second.state.services.jobs.store.get(job_id)).runs == 2
        result = (await client.get(f"/jobs/{job_id}/result")).json()
        again = (await client.post("/ocr/pdf", files=_files(doc), data={"mode": "text"})).json()
        assert _comparable(result) == _comparable(again)
