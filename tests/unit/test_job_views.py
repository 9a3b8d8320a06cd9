"""The job's public view over HTTP (app/api/job_views.py): owner hashing, the JSON view, the 202 hand-off body."""

from __future__ import annotations

import json

from app.api.job_views import accepted, job_urls, job_view, owner_for_key
from app.jobs.store import Job
from app.pipeline.options import ConvertOptions


def _job(**changes) -> Job:
    fields = dict(id="jAbCdEfGh12345678", owner="", status="queued", options=ConvertOptions(mode="ocr", dpi=150),
                  upload_sha256="0" * 64, page_count=9, page_indices=[0, 2, 4], created_at=1_700_000_000.25)
    fields.update(changes)
    return Job(**fields)


def test_owner_is_a_stable_hash_never_the_key() -> None:
    assert owner_for_key(None) == owner_for_key("") == ""
    a, b = owner_for_key("secret-key-a"), owner_for_key("secret-key-b")
    assert a == owner_for_key("secret-key-a") and a != b
    assert "secret" not in a and len(a) == 40


def test_job_view_carries_progress_times_and_urls() -> None:
    view = job_view(_job(status="running", pages_done=2, started_at=1_700_000_001.5))
    assert view["job_id"] == "jAbCdEfGh12345678" and view["status"] == "running"
    assert (view["pages_done"], view["pages_total"], view["page_count"]) == (2, 3, 9)
    assert view["options"] == {"mode": "ocr", "pages": None, "dpi": 150, "images": "refer",
                               "lang": "auto"}
    assert view["created_at"] == "2023-11-14T22:13:20.250Z" and view["started_at"] == "2023-11-14T22:13:21.500Z"
    assert view["finished_at"] is None and view["error"] is None
    assert view["status_url"] == "/jobs/jAbCdEfGh12345678"
    assert view["result_url"] == "/jobs/jAbCdEfGh12345678/result"
    assert view["events_url"] == "/jobs/jAbCdEfGh12345678/events"


def test_a_failed_job_shows_its_error_in_the_service_error_shape() -> None:
    view = job_view(_job(status="failed", error_type="encrypted_pdf", error_message="the PDF is encrypted"))
    assert view["error"] == {"type": "encrypted_pdf", "message": "the PDF is encrypted",
                             "request_id": "jAbCdEfGh12345678"}


def test_accepted_is_a_202_whose_location_is_the_status_url() -> None:
    response = accepted(_job())
    body = json.loads(response.body)
    assert response.status_code == 202
    assert response.headers["location"] == body["status_url"] == job_urls("jAbCdEfGh12345678")["status_url"]
    assert body["status"] == "queued" and body["events_url"].endswith("/events")
