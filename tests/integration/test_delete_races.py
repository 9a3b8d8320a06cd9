"""DELETE racing the readers of a job, on a real server: every read of the result (JSON, Markdown, zip) and of a
page image answers whole (a complete body of its Content-Length that parses) or 404, never a 5xx and never a
body cut short. 60 rounds, each a fresh finished job deleted while the reads are in flight; then the same with S3
(moto), the local result removed first so that every read fetches it from S3 as another replica would, with
LOG_LEVEL=DEBUG (the S3 key id must not reach the log). No job directory may be left behind either way."""

from __future__ import annotations

import asyncio
import io
import json
import random
import shutil
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


S3_KEY_ID = "AKIARACETESTKEY00001"


@pytest.fixture(scope="module", params=["local", "s3"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    env = {"LOG_LEVEL": "WARNING"}
    if request.param == "s3":
        import boto3

        endpoint = request.getfixturevalue("moto_s3")
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket="races")
        env = {"LOG_LEVEL": "DEBUG", "S3_ENDPOINT": endpoint, "S3_BUCKET": "races", "S3_ACCESS_KEY": S3_KEY_ID,
               "S3_SECRET_KEY": "race-secret-key"}
    server = ServerProcess(tmp_path_factory.mktemp("races"), env).start()
    server.s3 = request.param == "s3"  # type: ignore[attr-defined]
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
            if server.s3:  # as on a replica that did not run the job: the result comes from S3
                job_dir = server.output_dir / "jobs" / job_id
                for name in ("result.json", "result.md"):
                    (job_dir / name).unlink()
                shutil.rmtree(job_dir / "images", ignore_errors=True)

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
    if server.s3:
        assert S3_KEY_ID not in server.log() and "race-secret-key" not in server.log()
