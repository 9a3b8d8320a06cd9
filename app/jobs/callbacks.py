"""Completion webhooks: when a job ends (succeeded, failed, cancelled) its `callback_url` gets a signed POST.

- Only hosts listed in CALLBACK_ALLOWED_HOSTS may be named (`host` allows any port, `host:port` that port);
  the list is checked when the job is submitted and again before every delivery, redirects are never followed,
  so a client cannot make the service call anything else. An empty list turns the feature off (422).
- The URL is parsed once, at submit, by httpx (the client that delivers it) and stored in httpx's normal form; a
  URL httpx would refuse (a tab, CR or LF in it, say) is a 422 then, never a delivery that cannot start.
- The body is JSON `{job_id, status, pages_done, pages_total, result_url, error}`, signed two ways with
  CALLBACK_SECRET: Standard Webhooks (https://www.standardwebhooks.com: `webhook-id`, `webhook-timestamp`,
  `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`), whose id and timestamp let receivers
  reject replays; and `X-Signature-256: sha256=<hex HMAC-SHA256 of the body>` for receivers built before.
  A `whsec_<base64>` secret is used as Standard Webhooks defines it (its decoded bytes); any other secret's UTF-8
  bytes are the key (give the receiver's library those bytes). The id stays the same across retries.
- Delivery state lives in the job's row (`callback: {state, attempts, last_error}`, shown in the job's status):
  `pending` until a 2xx answer (`delivered`) or CALLBACK_MAX_ATTEMPTS failures (`failed`); errors and non-2xx
  answers are retried after CALLBACK_BACKOFF_S, doubling. A delivery that cannot even be attempted (a URL stored
  before this check existed, say) ends `failed` with the reason, never `pending` forever. The state is written
  before each wait, and a restart resumes every finished job whose callback is still pending, so delivery is at
  least once: a receiver may see a job twice (`webhook-id` makes that detectable), never zero times while
  attempts remain.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import httpx

from app import __version__
from app.errors import InvalidParameter
from app.hosts import parse_hosts, url_host_allowed
from app.jobs.store import Job, JobStore
from app.settings import Settings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Signature-256"
WHSEC_PREFIX = "whsec_"
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
_MAX_BACKOFF_S = 300.0
_MAX_ERROR_CHARS = 300


def allowed_hosts(settings: Settings) -> frozenset[str]:
    return parse_hosts(settings.callback_allowed_hosts)


def host_allowed(url: str | httpx.URL, settings: Settings) -> bool:
    """Whether the URL's host (any port) or host:port is in CALLBACK_ALLOWED_HOSTS, as httpx reads the URL."""
    return url_host_allowed(url, allowed_hosts(settings))


def validate_callback_url(url: str | None, settings: Settings) -> str | None:
    """The callback URL a job may use, in httpx's normal form (what is stored and later POSTed to), or
    InvalidParameter (422) saying why not. None/'' means no callback. Parsed by httpx, the client that delivers
    it, so a URL accepted here is one the delivery can use; httpx refuses control characters (tab, CR, LF)."""
    if not url:
        return None
    if not allowed_hosts(settings):
        raise InvalidParameter("callback_url: webhooks are off on this service (CALLBACK_ALLOWED_HOSTS is empty)")
    if len(url) > 2000:
        raise InvalidParameter("callback_url: longer than 2000 characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise InvalidParameter(f"callback_url: not a usable URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidParameter("callback_url: must be an absolute http(s) URL")
    if parsed.userinfo:
        raise InvalidParameter("callback_url: credentials in the URL are not accepted")
    if not host_allowed(parsed, settings):
        raise InvalidParameter(f"callback_url: host {parsed.host!r} is not in CALLBACK_ALLOWED_HOSTS")
    return str(parsed.copy_with(fragment=None))  # a fragment is never sent: what is stored is what is POSTed


def signing_key(secret: str) -> bytes:
    """The Standard Webhooks key of CALLBACK_SECRET: a `whsec_<base64>` secret's decoded bytes, else its UTF-8
    bytes. ValueError for a `whsec_` secret that is not base64 (checked at boot by Settings)."""
    if secret.startswith(WHSEC_PREFIX):
        try:
            key = base64.b64decode(secret[len(WHSEC_PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a whsec_ secret must be followed by base64") from None
        if not key:
            raise ValueError("a whsec_ secret must not be empty")
        return key
    return secret.encode("utf-8")


def standard_webhook_headers(msg_id: str, timestamp: int, body: bytes, secret: str) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp` and `webhook-signature` (v1: base64 HMAC-SHA256 of "id.timestamp.body"),
    as https://www.standardwebhooks.com specifies them."""
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    signature = base64.b64encode(hmac.new(signing_key(secret), signed, hashlib.sha256).digest()).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": f"v1,{signature}"}


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
        task = asyncio.create_task(self._deliver_or_fail(job.id), name=f"callback-{job.id}")
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

    async def _deliver_or_fail(self, job_id: str) -> None:
        """Deliver; a delivery that breaks for any reason of ours ends `failed` with that reason, so it neither
        stays `pending` forever nor crashes again at every restart."""
        try:
            await self._deliver(job_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("job %s: callback delivery could not run", job_id)
            reason = f"delivery could not run: {type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS]
            try:
                job = await self.store.get(job_id)
                attempts = (job.callback or initial_state()).get("attempts", 0) if job is not None else 0
                await self.store.set_callback(job_id, {"state": FAILED, "attempts": attempts, "last_error": reason})
            except Exception:
                log.exception("job %s: could not record the failed callback", job_id)

    async def _deliver(self, job_id: str) -> None:
        job = await self.store.get(job_id)
        if job is None or not job.callback_url:
            return
        state = dict(job.callback or initial_state())
        try:
            url = validate_callback_url(job.callback_url, self.settings)  # a row stored before today's rules
        except InvalidParameter as exc:
            state.update(state=FAILED, last_error=exc.message[:_MAX_ERROR_CHARS])
            log.warning("job %s: callback not delivered: %s", job.id, exc.message)
            await self.store.set_callback(job.id, state)
            return
        assert url is not None
        body = json.dumps(payload(job), separators=(",", ":"), sort_keys=True).encode("utf-8")
        headers = {"Content-Type": "application/json", "X-Job-Id": job.id}
        secret = self.settings.callback_secret.get_secret_value() if self.settings.callback_secret else None
        if secret is not None:
            headers[SIGNATURE_HEADER] = sign(body, secret)
        while state["attempts"] < self.settings.callback_max_attempts:
            if not host_allowed(url, self.settings):  # the allow-list may have changed since submit
                state.update(state=FAILED, last_error="host no longer in CALLBACK_ALLOWED_HOSTS")
                break
            state["attempts"] += 1
            signed = dict(headers)
            if secret is not None:  # signed at each attempt: the timestamp says when this POST was sent
                signed.update(standard_webhook_headers(f"msg_{job.id}", int(time.time()), body, secret))
            error = await self._post(url, body, signed, attempt=state["attempts"])
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
