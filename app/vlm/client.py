"""HTTP client of the vLLM sidecar (OpenAI-compatible API at `settings.vllm_url`, ending in /v1).

One instance per process (`app.state.vlm`). It owns:
- one `asyncio.Semaphore(settings.vlm_max_concurrency)`: every chat completion in the process passes through it,
  so many documents together never put more requests in flight than the sidecar is tuned for;
- retries (tenacity) with jittered exponential backoff on connection errors and 5xx (a 4xx is our bug or a
  misconfiguration and is not retried);
- a circuit breaker: after `vlm_breaker_failures` consecutive failures (at once on connection refused or a
  failed health probe) new work fails fast with `SidecarUnavailable` (503 + Retry-After), and a background loop
  probes `/health` every `vlm_probe_interval_s` until the sidecar answers, which closes the breaker;
- `status` / `last_error` for readiness and /health, including supervisord's word when it gave up on the
  sidecar (FATAL).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Literal

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from app.errors import SidecarFailed, SidecarUnavailable
from app.pipeline.options import VL_NEEDS_SIDECAR
from app.settings import Settings
from app.vlm import supervisor
from app.vlm.breaker import CircuitBreaker

log = logging.getLogger(__name__)

Status = Literal["available", "unavailable", "disabled"]

BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 8.0


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


def _error_message(response: httpx.Response) -> str:
    """vLLM's error text: `{"error": {"message": ...}}` (>= 0.10) or `{"message": ...}` (older)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if body.get("message"):
            return str(body["message"])
    return response.text[:200]


class _Failure(Exception):
    """A failed attempt (already recorded against the sidecar); the message says what went wrong."""


class _RetryableFailure(_Failure):
    """A connection error or a 5xx: worth another attempt."""


def _backoff(state: RetryCallState) -> float:
    # Exponential from BACKOFF_BASE_S, capped, with jitter so that restarted clients don't form a thundering herd.
    delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (state.attempt_number - 1))
    return delay * (0.5 + random.random() / 2)


class VlmClient:
    """Client of the VLM sidecar; see the module docstring. `http` is injectable for tests (MockTransport)."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.base_url = settings.vllm_url.rstrip("/")
        self.root_url = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url
        self.model = settings.vlm_model_name
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.vlm_timeout_s, connect=min(10.0, settings.vlm_timeout_s)),
            # One connection per permitted request, so the pool never becomes a second, hidden queue.
            limits=httpx.Limits(
                max_connections=settings.vlm_max_concurrency + 4,
                max_keepalive_connections=settings.vlm_max_concurrency,
            ),
        )
        self.enabled = settings.vlm_enabled
        self.status: Status = "unavailable" if self.enabled else "disabled"
        self.last_error: str | None = "not checked yet" if self.enabled else None
        self.sidecar_state: str | None = None  # supervisord's state of the `vlm` program, when known
        self.breaker = CircuitBreaker(
            failure_threshold=settings.vlm_breaker_failures,
            retry_after_s=max(5.0, 2 * settings.vlm_probe_interval_s),
        )
        self._semaphore = asyncio.Semaphore(settings.vlm_max_concurrency)
        self._probe_task: asyncio.Task[None] | None = None
        self._closed = False
        self.in_flight = 0
        self.counters = {"requests": 0, "failures": 0, "retries": 0, "prompt_tokens": 0, "completion_tokens": 0}

    # --- state -----------------------------------------------------------------------------------------------
    @property
    def breaker_open(self) -> bool:
        return self.breaker.is_open

    @property
    def ready(self) -> bool:
        return self.status == "available" and not self.breaker.is_open

    def snapshot(self) -> dict[str, Any]:
        """What /health shows about the sidecar."""
        return {
            "status": self.status,
            "url": self.base_url,
            "model": self.model,
            "last_error": self.last_error,
            "breaker_open": self.breaker.is_open,
            "sidecar_program_state": self.sidecar_state,
            "in_flight": self.in_flight,
            "max_concurrency": self.settings.vlm_max_concurrency,
        }

    def _mark_up(self) -> None:
        if self.status != "available" or self.breaker.is_open:
            log.info("VLM sidecar available at %s", self.base_url)
        self.breaker.record_success()
        self.status = "available"
        self.last_error = None
        self.sidecar_state = None

    def _mark_down(self, error: str, *, definitive: bool) -> None:
        opened = self.breaker.record_failure(error, definitive=definitive)
        if self.breaker.is_open:
            self.status = "unavailable"
            self.last_error = error
            if opened:
                log.warning("VLM sidecar circuit breaker opened: %s", error)
            self._ensure_probe_loop()

    def _ensure_probe_loop(self) -> None:
        if self._closed or (self._probe_task is not None and not self._probe_task.done()):
            return
        try:
            self._probe_task = asyncio.get_running_loop().create_task(self._probe_loop(), name="vlm-probe")
        except RuntimeError:  # no running loop (synchronous caller): the next check() starts it
            self._probe_task = None

    async def _probe_loop(self) -> None:
        # Readiness comes back by itself: probe until the sidecar answers, which closes the breaker.
        while self.breaker.is_open and not self._closed:
            await asyncio.sleep(self.settings.vlm_probe_interval_s)
            await self.check()

    async def _supervisor_reason(self, error: str) -> str:
        state = await supervisor.program_state(timeout_s=self.settings.vlm_health_timeout_s)
        if state is None:
            return error
        self.sidecar_state = state.name
        if state.gave_up:
            return (
                f"VLM sidecar is FATAL in supervisord (gave up restarting it: {state.detail or 'exited too quickly'}); "
                f"see the container log. Last probe: {error}"
            )
        return f"{error} (supervisord: {state.name})"

    # --- probes ----------------------------------------------------------------------------------------------
    async def check(self) -> bool:
        """One quick probe of the sidecar's /health; updates `status`, `last_error` and the breaker."""
        if not self.enabled:
            return False
        try:
            response = await self.http.get(f"{self.root_url}/health", timeout=self.settings.vlm_health_timeout_s)
            error = None if response.status_code == 200 else f"sidecar /health answered {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"sidecar /health: {_describe(exc)}"
        if error is None:
            self._mark_up()
            return True
        self._mark_down(await self._supervisor_reason(error), definitive=True)
        return False

    async def wait_until_ready(self, timeout_s: float) -> None:
        """Poll /health, then /v1/models until the served model is listed. Raises SidecarUnavailable on timeout,
        when supervisord gave up on the sidecar, or when the sidecar serves another model name."""
        if not self.enabled:
            raise SidecarUnavailable("the VLM sidecar is disabled (PROFILE=cpu and USE_VLM_API unset)")
        deadline = time.monotonic() + timeout_s
        poll_s = min(0.5, self.settings.vlm_probe_interval_s)
        while True:
            error = await self._probe_models()
            if error is None:
                self._mark_up()
                return
            if error.startswith("wrong model"):
                self.status, self.last_error = "unavailable", error
                raise SidecarUnavailable(error)
            reason = await self._supervisor_reason(error)
            self.status, self.last_error = "unavailable", f"waiting for the sidecar: {reason}"
            if self.sidecar_state == "FATAL":
                raise SidecarUnavailable(reason)
            if time.monotonic() >= deadline:
                raise SidecarUnavailable(f"VLM sidecar not ready after {timeout_s:.0f}s: {reason}")
            await asyncio.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))

    async def _probe_models(self) -> str | None:
        timeout = self.settings.vlm_health_timeout_s
        try:
            health = await self.http.get(f"{self.root_url}/health", timeout=timeout)
            if health.status_code != 200:
                return f"sidecar /health answered {health.status_code}"
            models = await self.http.get(f"{self.base_url}/models", timeout=timeout)
            if models.status_code != 200:
                return f"sidecar /v1/models answered {models.status_code}"
            served = [str(m.get("id")) for m in models.json().get("data", [])]
        except httpx.HTTPError as exc:
            return f"sidecar: {_describe(exc)}"
        except (ValueError, AttributeError) as exc:
            return f"sidecar /v1/models answered something unexpected: {exc}"
        if self.model not in served:
            return (
                f"wrong model: the sidecar serves {served}, not {self.model!r}; start vLLM with "
                f"--served-model-name {self.model} (or set VLM_MODEL_NAME)"
            )
        return None

    # --- requests --------------------------------------------------------------------------------------------
    def raise_if_unavailable(self) -> None:
        """Refuse at once (503 + Retry-After) while the sidecar is disabled or its breaker is open."""
        if not self.enabled:
            raise SidecarUnavailable(VL_NEEDS_SIDECAR)
        if self.breaker.is_open:
            raise SidecarUnavailable(
                f"VLM sidecar unavailable: {self.last_error or self.breaker.last_error}",
                retry_after_s=self.breaker.retry_after_s,
            )

    async def chat(self, body: dict[str, Any]) -> str:
        """POST one chat completion and return the assistant message's text.

        Raises SidecarUnavailable (retryable, 503) when the sidecar is down or keeps failing, SidecarFailed (502)
        when it rejects the request or answers something unusable. tenacity drives the retries: up to
        `vlm_retries` more attempts after a retryable failure, with jittered exponential backoff."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.vlm_retries + 1),
            wait=_backoff,
            retry=retry_if_exception_type(_RetryableFailure),
            before_sleep=self._count_retry,
            reraise=True,
        )
        attempts = 0
        try:
            async for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    return await self._attempt(body)
        except _Failure as failure:
            raise SidecarUnavailable(
                f"VLM sidecar failed after {attempts} attempt(s): {failure}",
                retry_after_s=self.breaker.retry_after_s,
            ) from None
        raise AssertionError("unreachable: tenacity either returns the answer or re-raises the last failure")

    async def _attempt(self, body: dict[str, Any]) -> str:
        """One request through the concurrency bound; a failed one raises `_Failure` (retryable or not)."""
        self.raise_if_unavailable()
        async with self._semaphore:
            self.raise_if_unavailable()  # it may have opened while this request waited for a slot
            self.in_flight += 1
            self.counters["requests"] += 1
            try:
                outcome = await self._post_once(body)
            finally:
                self.in_flight -= 1
        if isinstance(outcome, str):
            return outcome
        error, retryable = outcome
        self.counters["failures"] += 1
        raise (_RetryableFailure if retryable else _Failure)(error)

    def _count_retry(self, _state: RetryCallState) -> None:
        self.counters["retries"] += 1

    async def _post_once(self, body: dict[str, Any]) -> str | tuple[str, bool]:
        """The answer text, or (error, retryable) after recording the failure."""
        try:
            response = await self.http.post(
                f"{self.base_url}/chat/completions", json=body, timeout=self.settings.vlm_timeout_s
            )
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout):
                self._mark_down(f"cannot connect to the sidecar: {_describe(exc)}", definitive=False)
                return f"connect timeout: {_describe(exc)}", True
            # A hung sidecar: count it, but don't multiply the wait by retrying.
            self._mark_down(f"no answer within {self.settings.vlm_timeout_s:.0f}s", definitive=False)
            return f"no answer within {self.settings.vlm_timeout_s:.0f}s", False
        except httpx.TransportError as exc:
            refused = isinstance(exc, httpx.ConnectError)
            error = f"{'cannot connect to' if refused else 'connection to'} the sidecar: {_describe(exc)}"
            self._mark_down(error, definitive=refused)
            return error, True
        if response.status_code >= 500:
            error = f"sidecar answered {response.status_code}: {_error_message(response)}"
            self._mark_down(error, definitive=False)
            return error, True
        if response.status_code != 200:
            # Not retried and not held against the sidecar: the request or the configuration is wrong.
            raise SidecarFailed(f"the VLM sidecar rejected the request ({response.status_code}): {_error_message(response)}")
        try:
            payload = response.json()
            choice = payload["choices"][0]
            text = choice["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise SidecarFailed(f"the VLM sidecar answered something unexpected: {exc!r}") from None
        usage = payload.get("usage") or {}
        self.counters["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
        self.counters["completion_tokens"] += int(usage.get("completion_tokens") or 0)
        if choice.get("finish_reason") == "length":
            log.debug("VLM answer hit max_completion_tokens (%s)", self.settings.vlm_max_completion_tokens)
        if self.breaker.consecutive_failures or self.status != "available":
            self._mark_up()
        return text

    async def aclose(self) -> None:
        self._closed = True
        if self._probe_task is not None:
            self._probe_task.cancel()
            try:
                await self._probe_task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
        if self._own_http:
            await self.http.aclose()
