"""The job service's parts, each on its own over a real SQLite store: the runner (jobs/runner.py), submission
(jobs/submission.py) and the sync hand-off (jobs/handoff.py). The page pool is not needed here: the runner is
driven through `watch`, which takes over a conversion task the test controls, and submission's runner only
records what it was asked to spawn."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from app.errors import Conflict, EncryptedPdf
from app.jobs import files
from app.jobs.events import JobEvents
from app.jobs.handoff import JobHandoff, adopt
from app.jobs.runner import JobRunner
from app.jobs.sql_store import SqlJobStore
from app.jobs.store import Job
from app.jobs.submission import JobSubmission
from app.runtime.document import merge_pages
from app.pipeline.options import ConvertOptions
from app.pipeline.result import Block, DocumentResult, PageResult
from tests import pdfgen

OPTIONS = ConvertOptions(mode="text", dpi=100)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(tmp_path: Path):
    s = SqlJobStore.sqlite(tmp_path / "jobs.db")
    await s.open()
    yield s
    await s.close()


def _page(number: int) -> PageResult:
    return PageResult(page=number, width=612, height=792, source="text", markdown=f"page {number}",
                      blocks=[Block(type="text", bbox=(72, 72, 300, 90), text=f"page {number}")])


def _job(pages: int = 2) -> Job:
    from app.jobs.submission import new_job_id

    return Job(id=new_job_id(), owner="", status="running", options=OPTIONS, upload_sha256="ab" * 32,
               page_count=pages, page_indices=list(range(pages)), created_at=1.0, runs=1)


class RecordingRunner:
    def __init__(self) -> None:
        self.spawned: list[str] = []

    def spawn(self, job_id: str) -> None:
        self.spawned.append(job_id)


# --- runner -----------------------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_runner_finishes_a_watched_conversion_with_checkpoints_files_and_a_final_event(
    make_settings, store
) -> None:
    settings = make_settings()
    events = JobEvents()
    runner = JobRunner(settings, pool=None, store=store, events=events)  # type: ignore[arg-type]
    job = await store.insert(_job(2))
    release = asyncio.Event()

    async def conversion() -> DocumentResult:
        await release.wait()
        return merge_pages([_page(1), _page(2)], 2)

    async with events.subscribe(job.id) as queue:
        runner.watch(job, asyncio.create_task(conversion()), asyncio.Event())
        release.set()
        await runner.wait(job.id, 10)
        kinds = [queue.get_nowait() for _ in range(queue.qsize())]
    final = await store.get(job.id)
    assert final is not None and final.status == "succeeded" and final.pages_done == 2
    assert [c.page_index for c in await store.pages(job.id)] == [0, 1]
    result = json.loads((files.job_dir(settings, job.id) / files.RESULT_JSON).read_text())
    assert [p["page"] for p in result["pages"]] == [1, 2]
    assert kinds[-1].final and kinds[-1].job is not None and kinds[-1].job.status == "succeeded"


@pytest.mark.anyio
async def test_runner_records_a_failed_conversion_in_the_error_shape(make_settings, store) -> None:
    runner = JobRunner(make_settings(), pool=None, store=store, events=JobEvents())  # type: ignore[arg-type]
    job = await store.insert(_job())

    async def conversion() -> DocumentResult:
        raise EncryptedPdf("the PDF is encrypted")

    runner.watch(job, asyncio.create_task(conversion()), asyncio.Event())
    await runner.wait(job.id, 10)
    final = await store.get(job.id)
    assert final is not None and (final.status, final.error_type) == ("failed", "encrypted_pdf")


@pytest.mark.anyio
async def test_runner_stop_pauses_a_job_instead_of_failing_it(make_settings, store) -> None:
    runner = JobRunner(make_settings(), pool=None, store=store, events=JobEvents())  # type: ignore[arg-type]
    job = await store.insert(_job())
    cancel = asyncio.Event()

    async def conversion() -> DocumentResult:
        await cancel.wait()  # like convert_document: pages stop once cancel is set
        raise RuntimeError("pool shutting down")

    runner.watch(job, asyncio.create_task(conversion()), cancel)
    await runner.stop(grace_s=5)
    assert cancel.is_set()
    final = await store.get(job.id)
    assert final is not None and final.status == "running"  # resumes at the next start


# --- submission -------------------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_submission_stores_a_queued_job_with_its_input_and_spawns_it(make_settings, store, tmp_path) -> None:
    settings = make_settings()
    runner = RecordingRunner()
    submission = JobSubmission(settings, store, runner)  # type: ignore[arg-type]
    upload = pdfgen.text_pdf(tmp_path / "upload.pdf", pages=3)
    job = await submission.submit(upload, ConvertOptions(mode="text", pages="2-3"), owner="o", filename="r.pdf")
    assert runner.spawned == [job.id] and not upload.exists()
    stored = await store.get(job.id)
    assert stored is not None and (stored.status, stored.page_indices, stored.filename) == ("queued", [1, 2], "r.pdf")
    assert (files.job_dir(settings, job.id) / files.INPUT_NAME).is_file()


@pytest.mark.anyio
async def test_a_repeated_idempotency_key_returns_the_first_job_or_409(make_settings, store, tmp_path) -> None:
    runner = RecordingRunner()
    submission = JobSubmission(make_settings(), store, runner)  # type: ignore[arg-type]
    pdf = pdfgen.text_pdf(tmp_path / "a.pdf")
    again_upload = tmp_path / "b.pdf"
    again_upload.write_bytes(pdf.read_bytes())  # the same file again (a new rendering could differ in its date)
    first = await submission.submit(pdf, OPTIONS, owner="o", idempotency_key="k")
    again = await submission.submit(again_upload, OPTIONS, owner="o", idempotency_key="k")
    assert again.id == first.id and runner.spawned == [first.id] and not again_upload.exists()
    other_upload = pdfgen.text_pdf(tmp_path / "c.pdf")
    with pytest.raises(Conflict):
        await submission.submit(other_upload, ConvertOptions(mode="ocr"), owner="o", idempotency_key="k")
    assert not other_upload.exists()
    # Another owner's key of the same name is another job.
    theirs = await submission.submit(pdfgen.text_pdf(tmp_path / "d.pdf"), OPTIONS, owner="p", idempotency_key="k")
    assert theirs.id != first.id


# --- hand-off ---------------------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_adopt_checkpoints_buffered_pages_and_the_job_takes_over_the_upload(
    make_settings, store, tmp_path
) -> None:
    settings = make_settings()
    runner = JobRunner(settings, pool=None, store=store, events=JobEvents())  # type: ignore[arg-type]
    upload = pdfgen.text_pdf(tmp_path / "upload.pdf", pages=2)
    handoff = JobHandoff()
    await handoff.on_page(_page(1))  # finished before the sync wait ran out
    release = asyncio.Event()

    async def conversion() -> DocumentResult:
        await release.wait()
        await handoff.on_page(_page(2))
        return merge_pages([_page(1), _page(2)], 2)

    task = asyncio.create_task(conversion())
    job = await adopt(settings, store, runner, task, upload, OPTIONS, "o", handoff=handoff)
    assert job.status == "running" and [c.page_index for c in await store.pages(job.id)] == [0]
    assert upload.exists()  # the running conversion still reads it
    release.set()
    await runner.wait(job.id, 10)
    final = await store.get(job.id)
    assert final is not None and final.status == "succeeded" and final.pages_done == 2
    assert not upload.exists() and (files.job_dir(settings, job.id) / files.INPUT_NAME).is_file()
