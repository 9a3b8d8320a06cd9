"""Completion webhooks against a real HTTP receiver on 127.0.0.1: signed bodies, retries with backoff,
delivery state in the job's status, refused hosts, and delivery resumed after a restart."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
from pathlib import Path

import pytest

from app.jobs.callbacks import sign, validate_callback_url
from app.errors import InvalidParameter
from app.main import create_app
from app.settings import Settings
from tests import pdfgen
from tests.api.conftest import running, wait_for, wait_ready
from tests.webhook_receiver import start_receiver

pytestmark = pytest.mark.anyio

SECRET = "webhook-test-secret"


def _submit_files(path: Path) -> dict:
    return {"file": (path.name, path.read_bytes(), "application/pdf")}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _job_state(client, job_id: str, predicate, what: str, timeout_s: float = 60.0) -> dict:
    state: dict = {}

    async def check() -> bool:
        state.update((await client.get(f"/jobs/{job_id}")).json())
        return predicate(state)

    await wait_for(check, timeout_s, what)
    return state


async def test_a_finished_job_posts_a_signed_body_and_retries_until_a_2xx(make_settings, tmp_path):
    receiver = start_receiver(fail_with=[500, 503])
    settings = make_settings(workers=1, callback_allowed_hosts=f"127.0.0.1:{receiver.port}", callback_secret=SECRET,
                             callback_backoff_s=0.05)
    pdf = pdfgen.text_pdf(tmp_path / "a.pdf", pages=2)
    try:
        async with running(create_app(settings)) as client:
            await wait_ready(client)
            response = await client.post("/jobs", files=_submit_files(pdf),
                                         data={"mode": "text", "callback_url": receiver.url("/hook?x=1")})
            assert response.status_code == 202, response.text
            job_id = response.json()["job_id"]
            state = await _job_state(client, job_id, lambda s: s.get("callback", {}).get("state") == "delivered",
                                     "the callback to be delivered")
            assert state["status"] == "succeeded"
            assert state["callback"] == {"state": "delivered", "attempts": 3, "last_error": None}

            deliveries = receiver.wait_for(3, timeout_s=5)
            assert [d.path for d in deliveries] == ["/hook?x=1"] * 3
            assert [d.headers["x-delivery-attempt"] for d in deliveries] == ["1", "2", "3"]
            assert len({d.body for d in deliveries}) == 1  # the same signed body every time
            body = deliveries[-1].body
            expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(deliveries[-1].headers["x-signature-256"], expected)
            assert json.loads(body) == {"job_id": job_id, "status": "succeeded", "pages_done": 2, "pages_total": 2,
                                        "result_url": f"/jobs/{job_id}/result", "error": None}
    finally:
        receiver.close()


async def test_cancelled_and_failing_deliveries_are_recorded(make_settings, tmp_path):
    receiver = start_receiver(fail_with=[500, 500, 500])
    settings = make_settings(workers=1, callback_allowed_hosts="127.0.0.1", callback_secret=SECRET,
                             callback_backoff_s=0.05, callback_max_attempts=2)
    pdf = pdfgen.text_pdf(tmp_path / "a.pdf", pages=1)
    try:
        async with running(create_app(settings)) as client:
            await wait_ready(client)
            response = await client.post("/jobs", files=_submit_files(pdf),
                                         data={"mode": "text", "callback_url": receiver.url()})
            job_id = response.json()["job_id"]
            state = await _job_state(client, job_id, lambda s: s.get("callback", {}).get("state") == "failed",
                                     "the callback to be given up")
            assert state["callback"] == {"state": "failed", "attempts": 2, "last_error": "HTTP 500"}
            assert len(receiver.wait_for(2, timeout_s=5)) == 2
    finally:
        receiver.close()


async def test_callback_urls_outside_the_allow_list_are_refused(make_settings, tmp_path):
    pdf = pdfgen.text_pdf(tmp_path / "a.pdf")
    on = make_settings(workers=1, callback_allowed_hosts="hooks.example.com, 127.0.0.1:9", callback_secret=SECRET)
    async with running(create_app(on)) as client:
        await wait_ready(client)
        for url, reason in (("http://169.254.169.254/latest/meta-data", "not in CALLBACK_ALLOWED_HOSTS"),
                            ("http://127.0.0.1:8081/jobs", "not in CALLBACK_ALLOWED_HOSTS"),
                            ("file:///etc/passwd", "http(s)"),
                            ("https://user:pw@hooks.example.com/x", "credentials")):
            response = await client.post("/jobs", files=_submit_files(pdf), data={"mode": "text", "callback_url": url})
            assert response.status_code == 422, url
            assert reason in response.json()["error"]["message"], (url, response.text)
        assert (await client.get("/jobs")).json()["jobs"] == []
    off = make_settings(workers=1, output_dir=tmp_path / "off")
    async with running(create_app(off)) as client:
        await wait_ready(client)
        response = await client.post("/jobs", files=_submit_files(pdf),
                                     params={"callback_url": "https://hooks.example.com/x"}, data={"mode": "text"})
        assert response.status_code == 422 and "webhooks are off" in response.json()["error"]["message"]


async def test_a_pending_callback_is_delivered_after_a_restart(make_settings, tmp_path):
    port = _free_port()  # nothing listens yet: every attempt of the first process fails to connect
    settings = make_settings(workers=1, callback_allowed_hosts=f"127.0.0.1:{port}", callback_secret=SECRET,
                             callback_backoff_s=30.0)
    pdf = pdfgen.text_pdf(tmp_path / "a.pdf")
    async with running(create_app(settings)) as client:
        await wait_ready(client)
        response = await client.post("/jobs", files=_submit_files(pdf),
                                     data={"mode": "text", "callback_url": f"http://127.0.0.1:{port}/done"})
        job_id = response.json()["job_id"]
        state = await _job_state(client, job_id, lambda s: s.get("callback", {}).get("attempts") == 1,
                                 "the first failed attempt")
        assert state["status"] == "succeeded" and state["callback"]["state"] == "pending"
        assert "ConnectError" in state["callback"]["last_error"]

    receiver = start_receiver(port=port)
    try:
        async with running(create_app(settings)) as client:  # same OUTPUT_DIR: the job database persists
            await wait_ready(client)
            state = await _job_state(client, job_id, lambda s: s["callback"]["state"] == "delivered",
                                     "the resumed delivery")
            assert state["callback"]["attempts"] == 2
            (delivery,) = receiver.wait_for(1, timeout_s=5)
            assert json.loads(delivery.body)["job_id"] == job_id
            assert delivery.headers["x-signature-256"] == sign(delivery.body, SECRET)
    finally:
        receiver.close()


def test_signature_is_hex_hmac_sha256_of_the_raw_body():
    body = b'{"job_id":"j1"}'
    assert sign(body, "k") == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()


def test_allow_list_entries_match_a_host_or_a_host_and_port():
    settings = Settings(_env_file=None, callback_allowed_hosts="a.example, b.example:8443",  # type: ignore[call-arg]
                        callback_secret=SECRET)
    assert validate_callback_url("https://A.example:1234/x", settings)
    assert validate_callback_url("https://b.example:8443/x", settings)
    for url in ("https://b.example/x", "https://c.example/x", "http://a.example.evil.com/"):
        with pytest.raises(InvalidParameter):
            validate_callback_url(url, settings)
    assert validate_callback_url("", settings) is None


def test_an_allow_list_without_a_secret_fails_at_boot():
    with pytest.raises(ValueError, match="CALLBACK_SECRET"):
        Settings(_env_file=None, callback_allowed_hosts="a.example")  # type: ignore[call-arg]


async def test_stop_leaves_the_delivery_pending_for_the_next_start(make_settings):
    # The dispatcher's own contract, without the HTTP layer: stop() cancels a waiting retry, state stays pending.
    from app.jobs.callbacks import CallbackDispatcher
    from app.jobs.sql_store import SqlJobStore
    from app.jobs.store import Job
    from app.pipeline.options import ConvertOptions

    settings = make_settings(callback_allowed_hosts=f"127.0.0.1:{_free_port()}", callback_secret=SECRET,
                             callback_backoff_s=60)
    store = SqlJobStore.sqlite(settings.output_dir / "jobs.db")
    await store.open()
    job = Job(id="jcallback0001", owner="", status="failed", options=ConvertOptions(), upload_sha256="0",
              page_count=1, page_indices=[0], created_at=0.0, finished_at=1.0, error_type="x", error_message="y",
              callback_url=f"http://{settings.callback_allowed_hosts}/h", callback={"state": "pending", "attempts": 0,
                                                                                    "last_error": None})
    await store.insert(job)
    dispatcher = CallbackDispatcher(settings, store)
    await dispatcher.start()

    async def attempted() -> bool:
        return ((await store.get(job.id)).callback or {}).get("attempts") == 1

    await wait_for(attempted, 10, "the first attempt")
    await dispatcher.stop()
    await asyncio.sleep(0)
    assert (await store.get(job.id)).callback["state"] == "pending"
    assert [j.id for j in await store.pending_callbacks()] == [job.id]
    await store.close()


async def test_a_job_database_from_before_webhooks_gains_the_columns(make_settings):
    import sqlite3
    from contextlib import closing

    from app.jobs.migrations.versions.r0001_release_before_alembic import SQLITE
    from app.jobs.sql_store import SqlJobStore

    settings = make_settings()
    settings.output_dir.mkdir(parents=True)
    old_schema = ";".join(SQLITE).replace("    s3              TEXT,", "    s3              TEXT")
    old_schema = "\n".join(line for line in old_schema.splitlines() if "callback" not in line)
    with closing(sqlite3.connect(settings.output_dir / "jobs.db")) as db:
        db.executescript(old_schema + ";")
        db.execute("INSERT INTO jobs (id, status, options, upload_sha256, page_count, page_indices, pages_total,"
                   " created_at, finished_at) VALUES ('jold00000001', 'succeeded', '{}', '0', 1, '[0]', 1, 0, 1)")
        db.commit()
        assert "callback" not in {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    store = SqlJobStore.sqlite(settings.output_dir / "jobs.db")
    await store.open()
    try:
        old = await store.get("jold00000001")
        assert old is not None and old.callback_url is None and old.callback is None
        assert await store.pending_callbacks() == []
        await store.set_callback(old.id, {"state": "delivered", "attempts": 1, "last_error": None})
        assert (await store.get(old.id)).callback == {"state": "delivered", "attempts": 1, "last_error": None}
    finally:
        await store.close()


WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


async def test_deliveries_verify_with_the_standard_webhooks_library_and_old_ones_are_refused(make_settings, tmp_path):
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    receiver = start_receiver(fail_with=[500])
    settings = make_settings(workers=1, callback_allowed_hosts=f"127.0.0.1:{receiver.port}", callback_secret=WHSEC,
                             callback_backoff_s=0.05)
    pdf = pdfgen.text_pdf(tmp_path / "a.pdf", pages=1)
    try:
        async with running(create_app(settings)) as client:
            await wait_ready(client)
            response = await client.post("/jobs", files=_submit_files(pdf),
                                         data={"mode": "text", "callback_url": receiver.url("/hook")})
            job_id = response.json()["job_id"]
            await _job_state(client, job_id, lambda s: s.get("callback", {}).get("state") == "delivered",
                             "the callback to be delivered")
        first, second = receiver.wait_for(2, timeout_s=5)
        verified = Webhook(WHSEC).verify(second.body, dict(second.headers))
        assert verified["job_id"] == job_id and verified["status"] == "succeeded"
        # One message, retried: the same id (receivers deduplicate on it), each attempt signed at its own time.
        assert first.headers["webhook-id"] == second.headers["webhook-id"] == f"msg_{job_id}"
        assert second.headers["x-signature-256"] == sign(second.body, WHSEC)  # the older header stays
        # A replay: the same bytes and headers, sent again later than the receiver's tolerance, are refused.
        replay = dict(second.headers, **{"webhook-timestamp": str(int(second.headers["webhook-timestamp"]) - 600)})
        with pytest.raises(WebhookVerificationError):
            Webhook(WHSEC).verify(second.body, replay)
        with pytest.raises(WebhookVerificationError):  # and a body changed in transit
            Webhook(WHSEC).verify(second.body.replace(b"succeeded", b"failed"), dict(second.headers))
    finally:
        receiver.close()


def test_a_plain_secret_signs_with_its_utf8_bytes_as_the_standard_webhooks_key():
    import time

    from standardwebhooks.webhooks import Webhook

    from app.jobs.callbacks import standard_webhook_headers

    body = b'{"job_id":"j1"}'
    headers = standard_webhook_headers("msg_j1", int(time.time()), body, SECRET)
    assert Webhook(SECRET.encode()).verify(body, headers) == {"job_id": "j1"}


def test_a_whsec_secret_that_is_not_base64_fails_at_boot():
    with pytest.raises(ValueError, match="whsec_"):
        Settings(_env_file=None, callback_allowed_hosts="a.example",  # type: ignore[call-arg]
                 callback_secret="whsec_not base64!")


async def test_control_characters_in_a_callback_url_are_a_422(make_settings, tmp_path):
    pdf = pdfgen.text_pdf(tmp_path / "a.pdf")
    settings = make_settings(workers=1, callback_allowed_hosts="127.0.0.1", callback_secret=SECRET)
    async with running(create_app(settings)) as client:
        await wait_ready(client)
        for url in ("http://127.0.0.1:9\t/x", "http://127.0.0.1:9/x\r\nX-Injected: 1", "http://127.0.0.1/\nx",
                    "http://127.0.0.1/x\x00"):
            for where in ("data", "params"):
                fields = {"callback_url": url}
                response = await client.post("/jobs", files=_submit_files(pdf),
                                             **({"data": {"mode": "text", **fields}} if where == "data"
                                                else {"data": {"mode": "text"}, "params": fields}))
                assert response.status_code == 422, (url, where, response.text)
                assert response.json()["error"]["type"] == "invalid_parameter"
                assert "callback_url" in response.json()["error"]["message"]
        assert (await client.get("/jobs")).json()["jobs"] == []


def test_callback_urls_are_stored_in_the_senders_normal_form():
    settings = Settings(_env_file=None, callback_allowed_hosts="a.example",  # type: ignore[call-arg]
                        callback_secret=SECRET)
    assert validate_callback_url("HTTP://A.example/a b?q=1", settings) == "http://a.example/a%20b?q=1"
    assert validate_callback_url("http://a.example/x?y=1#frag", settings) == "http://a.example/x?y=1"


async def test_a_stored_url_the_sender_cannot_use_ends_failed_with_the_reason(make_settings):
    # A row written before URLs were checked this way (the tab URL of the issue): failed, with why, at once.
    from app.jobs.callbacks import CallbackDispatcher
    from app.jobs.sql_store import SqlJobStore
    from app.jobs.store import Job
    from app.pipeline.options import ConvertOptions

    settings = make_settings(callback_allowed_hosts="127.0.0.1", callback_secret=SECRET)
    store = SqlJobStore.sqlite(settings.output_dir / "jobs.db")
    await store.open()
    job = Job(id="jcallback0002", owner="", status="succeeded", options=ConvertOptions(), upload_sha256="0",
              page_count=1, page_indices=[0], created_at=0.0, finished_at=1.0,
              callback_url="http://127.0.0.1:9\t/x", callback={"state": "pending", "attempts": 0, "last_error": None})
    await store.insert(job)
    dispatcher = CallbackDispatcher(settings, store)
    await dispatcher.start()
    try:
        async def settled() -> bool:
            return ((await store.get(job.id)).callback or {}).get("state") != "pending"

        await wait_for(settled, 10, "the delivery to settle")
        state = (await store.get(job.id)).callback
        assert state["state"] == "failed" and state["attempts"] == 0
        assert "not a usable URL" in state["last_error"] and "non-printable" in state["last_error"]
        assert await store.pending_callbacks() == []
    finally:
        await dispatcher.stop()
        await store.close()
