"""Several replicas, one service: real `python -m app serve` processes sharing one real PostgreSQL and one S3 bucket
(moto over HTTP), as pods behind a Service without session affinity.

Any replica answers for any job (status, events, result, the sync call's 202 Location); a replica killed mid-job
loses nothing (another takes its pages once their lease runs out, each page ends up in the result once); cancel on
one replica stops the work on another; a burst of submissions spread over the replicas loses and duplicates none,
and idempotency keys hold across replicas.
"""

from __future__ import annotations

import json
import os
import time
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import httpx
import psycopg
import pytest

from tests import pdfgen
from tests.server_process import ServerProcess, wait_until

pytestmark = pytest.mark.slow

LEASE_S = 3


class Replica(ServerProcess):
    """A server in its own process group, so `kill()` takes its page workers with it like a pod kill does."""

    def start(self) -> Replica:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "app", "serve"], cwd=self.workdir, env=self.env,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.client = httpx.Client(base_url=self.url, timeout=60)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int | None:
        self.client.close()
        code = super().stop()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # any worker left behind
        except (ProcessLookupError, PermissionError):
            pass
        return code


@pytest.fixture
def shared(postgres_url: str, moto_s3: str) -> dict[str, str]:
    """Settings every replica of one test shares: a fresh database and a fresh bucket."""
    database = "r" + uuid.uuid4().hex[:12]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    bucket = "replicas-" + uuid.uuid4().hex[:8]
    boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1", aws_access_key_id="test",
                 aws_secret_access_key="test").create_bucket(Bucket=bucket)
    return {
        "JOBS_DATABASE_URL": postgres_url.rsplit("/", 1)[0] + "/" + database,
        "S3_ENDPOINT": moto_s3, "S3_BUCKET": bucket, "S3_ACCESS_KEY": "test", "S3_SECRET_KEY": "test",
        "JOB_LEASE_S": str(LEASE_S), "WORKERS": "1", "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def replicas(tmp_path: Path, shared: dict[str, str]) -> Iterator:
    started: list[Replica] = []

    def start(count: int, **env: str) -> list[Replica]:
        new = []
        for _ in range(count):
            workdir = tmp_path / f"replica{len(started)}"
            workdir.mkdir()
            replica = Replica(workdir, {**shared, **{k.upper(): str(v) for k, v in env.items()}}).start()
            started.append(replica)
            new.append(replica)
        for replica in new:
            replica.wait_ready()
        return new

    yield start
    for replica in started:
        replica.stop()


def _submit(replica: Replica, pdf: Path, **form: str) -> dict:
    headers = {"Idempotency-Key": form.pop("idempotency_key")} if "idempotency_key" in form else {}
    with pdf.open("rb") as fh:
        response = replica.client.post("/jobs", files={"file": (pdf.name, fh, "application/pdf")}, data=form,
                                       headers=headers)
    assert response.status_code == 202, response.text
    return response.json()


def _wait_status(replica: Replica, job_id: str, statuses: set[str], timeout_s: float = 180) -> dict:
    seen: dict = {}

    def reached() -> bool:
        seen.update(replica.client.get(f"/jobs/{job_id}").json())
        return seen.get("status") in statuses

    wait_until(reached, timeout_s, f"job {job_id} to reach {statuses}", interval_s=0.2)
    return seen


def _leased_to(database: str, job_id: str, replica: Replica) -> set[int]:
    """Pages of the job leased to `replica` and not done (its lease holder name carries its pid)."""
    assert replica.proc is not None
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT page_index FROM pages WHERE job_id = %s AND state = 'leased'"
                            " AND lease_holder LIKE %s", (job_id, f"%-{replica.proc.pid}-%")).fetchall()
    return {index for (index,) in rows}


def _pages_markdown(result: dict) -> list[str]:
    return [page["markdown"] for page in result["pages"]]


def test_any_replica_answers_for_a_job_submitted_on_another(replicas, tmp_path: Path) -> None:
    a, b = replicas(2)
    pdf = pdfgen.text_pdf(tmp_path / "three.pdf", pages=3)
    job = _submit(a, pdf, mode="text")

    with b.client.stream("GET", f"/jobs/{job['job_id']}/events") as events:
        frames = "".join(events.iter_text())
    assert '"status":"succeeded"' in frames

    status = b.client.get(f"/jobs/{job['job_id']}").json()
    assert status["status"] == "succeeded" and status["pages_done"] == 3
    result = b.client.get(f"/jobs/{job['job_id']}/result")
    assert result.status_code == 200
    assert [p["page"] for p in result.json()["pages"]] == [1, 2, 3]
    markdown = b.client.get(f"/jobs/{job['job_id']}/result", params={"format": "markdown"})
    assert markdown.status_code == 200
    assert markdown.text.strip() == result.json()["markdown"].strip() != ""
    assert a.client.get("/jobs").json()["jobs"][0]["job_id"] == b.client.get("/jobs").json()["jobs"][0]["job_id"]


def test_the_sync_calls_202_location_is_answered_by_another_replica(replicas, tmp_path: Path) -> None:
    a, b = replicas(2, max_sync_wait_s="1")
    pdf = pdfgen.text_pdf(tmp_path / "four.pdf", pages=4)  # read by OCR: slow enough to outlast the sync wait
    with pdf.open("rb") as fh:
        response = a.client.post("/ocr/pdf", files={"file": ("four.pdf", fh, "application/pdf")},
                                 data={"mode": "ocr", "dpi": "100"})
    assert response.status_code == 202, response.text
    location = response.headers["Location"]
    final = _wait_status(b, location.rsplit("/", 1)[1], {"succeeded", "failed"})
    assert final["status"] == "succeeded", final
    assert [p["page"] for p in b.client.get(location + "/result").json()["pages"]] == [1, 2, 3, 4]


def test_a_replica_killed_mid_job_loses_nothing(replicas, tmp_path: Path) -> None:
    a, b = replicas(2)
    pdf = pdfgen.text_pdf(tmp_path / "six.pdf", pages=6)  # read by OCR, about a second a page
    job = _submit(a, pdf, mode="ocr", dpi="100")
    job_id = job["job_id"]
    database = a.env["JOBS_DATABASE_URL"]
    # Killed while it holds a lease on a page not yet done: the page that has to move to b.
    wait_until(lambda: a.client.get(f"/jobs/{job_id}").json()["pages_done"] >= 1 and _leased_to(database, job_id, a),
               120, "a first page, and a page leased to a")
    a.kill()
    orphaned = _leased_to(database, job_id, a)  # read at once: the lease runs out only LEASE_S after the kill
    assert orphaned, "a held no lease when killed: nothing had to move"

    final = _wait_status(b, job_id, {"succeeded", "failed"}, timeout_s=240)
    assert final["status"] == "succeeded", final
    result = b.client.get(f"/jobs/{job_id}/result").json()
    assert [p["page"] for p in result["pages"]] == [1, 2, 3, 4, 5, 6]
    with psycopg.connect(database) as conn:
        moved = conn.execute("SELECT page_index, state, claims, computations FROM pages WHERE job_id = %s"
                             " AND page_index = ANY(%s)", (job_id, sorted(orphaned))).fetchall()
    # Each page a held was claimed again (by b, after a's lease ran out), done, and computed once into the result.
    assert sorted(moved) == [(index, "done", 2, 1) for index in sorted(orphaned)]

    reference = _submit(b, pdf, mode="ocr", dpi="100")
    _wait_status(b, reference["job_id"], {"succeeded"})
    uninterrupted = b.client.get(f"/jobs/{reference['job_id']}/result").json()
    assert _pages_markdown(result) == _pages_markdown(uninterrupted)


def test_cancel_on_one_replica_stops_the_work_on_another(replicas, tmp_path: Path) -> None:
    a, b = replicas(2)
    pdf = pdfgen.text_pdf(tmp_path / "eight.pdf", pages=8)
    job_id = _submit(a, pdf, mode="ocr", dpi="100")["job_id"]
    wait_until(lambda: a.client.get(f"/jobs/{job_id}").json()["status"] == "running", 60, "the job to start")
    cancelled = b.client.delete(f"/jobs/{job_id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    done_at_cancel = cancelled.json()["pages_done"]

    # Within a lease period nobody works on it any more: pages_done stops growing (a page in flight may land).
    time.sleep(LEASE_S * 2)
    settled = a.client.get(f"/jobs/{job_id}").json()["pages_done"]
    time.sleep(LEASE_S)
    final = a.client.get(f"/jobs/{job_id}").json()
    assert final["pages_done"] == settled, "pages kept being computed after the cancel"
    assert final["status"] == "cancelled"
    assert final["pages_done"] <= done_at_cancel + 2  # at most the pages in flight on the one worker per replica
    assert final["pages_done"] < 8


def test_a_burst_of_submissions_over_three_replicas_loses_and_duplicates_none(replicas, tmp_path: Path) -> None:
    group = replicas(3)
    pdf = pdfgen.text_pdf(tmp_path / "one.pdf", pages=1)
    submissions = 200

    def submit(i: int) -> dict:
        # Every fourth submission repeats an idempotency key through another replica.
        key = f"key-{i // 4}" if i % 4 < 2 else None
        form = {"mode": "text"} | ({"idempotency_key": key} if key else {})
        return {"i": i, "key": key, **_submit(group[i % 3], pdf, **form)}

    with ThreadPoolExecutor(max_workers=24) as executor:
        answers = list(executor.map(submit, range(submissions)))

    by_key: dict[str, set[str]] = {}
    for answer in answers:
        if answer["key"]:
            by_key.setdefault(answer["key"], set()).add(answer["job_id"])
    assert all(len(ids) == 1 for ids in by_key.values()), "an idempotency key named two jobs"
    unique = {a["job_id"] for a in answers}
    assert len(unique) == submissions - len(by_key)

    for job_id in unique:
        final = _wait_status(group[hash(job_id) % 3], job_id, {"succeeded", "failed"}, timeout_s=300)
        assert final["status"] == "succeeded" and final["pages_done"] == 1
    with psycopg.connect(group[0].env["JOBS_DATABASE_URL"]) as conn:
        counts = conn.execute("SELECT computations, COUNT(*) FROM pages GROUP BY computations").fetchall()
    assert counts == [(1, len(unique))], f"pages computed more than once: {counts}"
    assert json.loads(group[1].client.get("/jobs", params={"limit": 500}).text)["jobs"]
