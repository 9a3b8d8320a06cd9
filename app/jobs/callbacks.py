"""Completion webhooks: when a job ends (succeeded, failed, cancelled) its `callback_url` gets a signed POST.

- Only hosts listed in CALLBACK_ALLOWED_HOSTS may be named (`host` allows any port, `host:port` that port);
  the list is checked when the job is submitted and again before every delivery, redirects are never followed,
  so a client cannot make the service call anything else. An empty list turns the feature off (422).
- The body is JSON `{job_id, status, pages_done, pages_total, result_url, error}`; `X-Signature-256:
  sha256=<hex>` is the HMAC-SHA256 of exactly those bytes with CALLBACK_SECRET, which receivers recompute.
- Delivery state lives in the job's row (`callback: {state, attempts, last_error}`, shown in the job's status):
  `pending` until a 2xx answer (`delivered`) or CALLBACK_MAX_ATTEMPTS failures (`failed`); errors and non-2xx
  answers are retried after CALLBACK_BACKOFF_S, doubling. The state is written before each wait, and a restart
  resumes every finished job whose callback is still pending, so delivery is at least once: a receiver may see
  a job twice (the job id makes that detectable), never zero times while attempts remain.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from typing import Any
from urllib.parse import urlsplit

import httpx

from app import __version__
from app.errors import InvalidParameter
from app.hosts import parse_hosts, url_host_allowed
from app.jobs.store import Job, JobStore
from app.settings import Settings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Signature-256"
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
_MAX_BACKOFF_S = 300.0
_MAX_ERROR_CHARS = 300


def allowed_hosts(settings: Settings) -> frozenset[str]:
    return parse_hosts(settings.callback_allowed_hosts)


def host_allowed(url: str, settings: Settings) -> bool:
    return url_host_allowed(url, allowed_hosts(settings))


def validate_callback_url(url: str | None, settings: Settings) -> str | None:
    """The callback URL a job may use, or InvalidParameter (422) saying why not. None/'' means no callback."""
    if not url:
        return None
    if not allowed_hosts(settings):
        raise InvalidParameter("callback_url: webhooks are off on this service (CALLBACK_ALLOWED_HOSTS is empty)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameter("callback_url: must be an absolute http(s) URL")
    if parts.username or parts.password:
        raise InvalidParameter("callback_url: credentials in the URL are not accepted")
    if len(url) > 2000:
        raise InvalidParameter("callback_url: longer than 2000 characters")
    if not host_allowed(url, settings):
        raise InvalidParameter(f"callback_url: host {parts.hostname!r} is not in CALLBACK_ALLOWED_HOSTS")
    return url


def sign(body: bytes, secret: str) -> str:
    """The `X-Signature-256` value of `body`: `sha256=` + hex HMAC-SHA256 with `secret`."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def payload(job: Job) -> dict[str, Any]:
    error = {"type": job.error_type, "message": job.error_message} if job.error_type else None
    return {"job_id": job.id, "status": job.status, "pages_done": job.pages_done, "pages_total": job.pages_total,
            "result_url": f"/jobs/{job.id}/result", "error": error}


def initial_state() -> dict[str, Any]:
    return {"state": PENDING, "attempts": 0, "last_error": None}


class CallbackDispatcher:
    """Delivers the callbacks of finished jobs, one task per job; `notify` on every status change is enough."""

    def __init__(self, settings: Settings, store: JobStore, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.store = store
        self._http = http
        self._own_http = http is None
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        """Resume the deliveries a previous process left pending (the store is open)."""
        for job in await self.store.pending_callbacks():
            self.notify(job)

    async def stop(self) -> None:
        """Stop delivering; pending callbacks stay pending in the store and resume at the next start."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    def notify(self, job: Job) -> None:
        """Start delivering `job`'s callback if it has one, has finished and it is not delivered or under way."""
        if not job.callback_url or not job.finished or job.id in self._tasks:
            return
        if (job.callback or initial_state()).get("state") != PENDING:
            return
        task = asyncio.create_task(self._deliver(job.id), name=f"callback-{job.id}")
        self._tasks[job.id] = task
        task.add_done_callback(lambda _t, job_id=job.id: self._tasks.pop(job_id, None))

    async def wait(self, job_id: str, timeout_s: float) -> None:
        """Wait (bounded) for a delivery under way to end; for tests and graceful paths."""
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.wait({task}, timeout=timeout_s)

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=False, headers={"User-Agent": f"paddleocr-vl/{__version__}"})
        return self._http

    async def _deliver(self, job_id: str) -> None:
        job = await self.store.get(job_id)
        if job is None or not job.callback_url:
            return
        state = dict(job.callback or initial_state())
        body = json.dumps(payload(job), separators=(",", ":"), sort_keys=True).encode("utf-8")
        headers = {"Content-Type": "application/json", "X-Job-Id": job.id}
        if self.settings.callback_secret is not None:
            headers[SIGNATURE_HEADER] = sign(body, self.settings.callback_secret.get_secret_value())
        while state["attempts"] < self.settings.callback_max_attempts:
            if not host_allowed(job.callback_url, self.settings):  # the allow-list may have changed since submit
                state.update(state=FAILED, last_error="host no longer in CALLBACK_ALLOWED_HOSTS")
                break
            state["attempts"] += 1
            error = await self._post(job.callback_url, body, headers, attempt=state["attempts"])
            if error is None:
                state.update(state=DELIVERED, last_error=None)
                log.info("job %s: callback delivered (attempt %d)", job.id, state["attempts"])
                break
            state["last_error"] = error
            if state["attempts"] >= self.settings.callback_max_attempts:
                state["state"] = FAILED
                log.warning("job %s: callback failed after %d attempts: %s", job.id, state["attempts"], error)
                break
            await self.store.set_callback(job.id, state)  # durable before the wait: a restart resumes from here
            delay = min(_MAX_BACKOFF_S, self.settings.callback_backoff_s * 2 ** (state["attempts"] - 1))
            log.info("job %s: callback attempt %d failed (%s); retrying in %.1f s", job.id, state["attempts"], error,
                     delay)
            await asyncio.sleep(delay)
        await self.store.set_callback(job.id, state)

    async def _post(self, url: str, body: bytes, headers: dict[str, str], *, attempt: int) -> str | None:
        """One delivery; None on a 2xx answer, else what went wrong (no URL query, no secret in it)."""
        try:
            response = await self.http.post(url, content=body, headers={**headers, "X-Delivery-Attempt": str(attempt)},
                                            timeout=self.settings.callback_timeout_s)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS]
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"
