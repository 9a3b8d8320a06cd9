"""DELETE racing the readers of a job, on a real server: every read of the result (JSON, Markdown, zip), of a
page image and of a crop answers whole (a complete body of its Content-Length that parses) or 404, never a 5xx
and never a body cut short. 60 rounds, each a fresh finished job deleted while the reads are in flight."""

from __future__ import annotations

import asyncio
import io
import json
import random
import zipfile

import httpx
import pytest

from tests import pdfgen
from tests.server_process import ServerProcess

ROUNDS = 60
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    server = ServerProcess(tmp_path_factory.mktemp("races"), {"LOG_LEVEL": "WARNING"}).start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _whole(kind: str, response: httpx.Response) -> bool:
    """Whether a 200's body is complete and what it says it is."""
    body = response.content
    if int(response.headers["content-length"]) != len(body):
        return False
    if kind == "json":
        return bool(json.loads(body)["pages"])
    if kind == "markdown":
        return pdfgen.TITLE in body.decode()
    if kind == "zip":
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            return archive.testzip() is None and {"result.md", "result.json"} <= set(archive.namelist())
    return body.startswith(b"\x89PNG\r\n\x1a\n") and body.endswith(b"IEND\xaeB`\x82")


async def test_reads_racing_delete_answer_whole_or_404(server, tmp_path):
    pdf = pdfgen.text_pdf(tmp_path / "three.pdf", pages=3).read_bytes()
    reads = {"json": ("/result", {}), "markdown": ("/result", {"format": "markdown"}),
             "zip": ("/result", {"format": "zip"}), "png": ("/pages/1.png", {"dpi": "72"})}
    outcomes: dict[str, list[int]] = {kind: [] for kind in reads}
    failures: list[str] = []
    rng = random.Random(27)
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        for _ in range(ROUNDS):
            job = await client.post("/jobs", data={"mode": "text"}, files={"file": ("t.pdf", pdf, "application/pdf")})
            assert job.status_code == 202, job.text
            job_id = job.json()["job_id"]
            for _ in range(600):
                status = (await client.get(f"/jobs/{job_id}")).json()["status"]
                if status != "queued" and status != "running":
                    break
                await asyncio.sleep(0.05)
            assert status == "succeeded"

            async def read(kind: str) -> None:
                path, params = reads[kind]
                await asyncio.sleep(rng.random() * 0.02)
                try:
                    response = await client.get(f"/jobs/{job_id}{path}", params=params)
                except httpx.HTTPError as exc:  # a body shorter than its Content-Length, a dropped connection
                    failures.append(f"{kind}: {type(exc).__name__}: {exc}")
                    return
                outcomes[kind].append(response.status_code)
                if response.status_code == 200 and not _whole(kind, response):
                    failures.append(f"{kind}: a 200 that is not whole ({len(response.content)} bytes)")
                elif response.status_code not in (200, 404):
                    failures.append(f"{kind}: {response.status_code} {response.text[:200]}")

            async def delete() -> None:
                await asyncio.sleep(rng.random() * 0.02)
                response = await client.delete(f"/jobs/{job_id}")
                assert response.status_code == 204, response.text

            await asyncio.gather(delete(), *(read(kind) for kind in reads for _ in range(2)))
            assert (await client.get(f"/jobs/{job_id}/result")).status_code == 404
    assert failures == [], failures[:10]
    assert "unhandled error" not in server.log()
    # The race was real: both sides of it were seen (some reads served whole, some after the delete).
    seen = {code for codes in outcomes.values() for code in codes}
    assert seen == {200, 404}, outcomes
    leftovers = [p.name for p in (server.output_dir / "jobs").iterdir()]
    assert leftovers == [], leftovers  # no directory left behind by a delete or a read
