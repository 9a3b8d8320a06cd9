"""The service's long-lived components, built by one factory for the server, the warm-up, `convert` and `batch`.

`Services` is a typed record: a route, the lifecycle or a command reaches a component by a field whose type the
checker knows, so renaming one is a type error rather than an `AttributeError` at run time. The factory only
*constructs*: nothing starts here (no processes, no connections); the server's lifecycle and the commands start
what they use, and `aclose` stops all of it in the right order (jobs, then the pool they feed, then the
sidecar client).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.observability.metrics import Metrics
from app.settings import Settings

if TYPE_CHECKING:
    from app.jobs.manager import JobManager
    from app.runtime.pool import PagePool
    from app.storage.s3 import S3Uploader
    from app.vlm.client import VlmClient
    from app.vlm.recognizer import VlRecognizer

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What one process runs. `vlm`/`vl` are None without a sidecar, `jobs` outside the server, `s3` without
    S3_BUCKET."""

    settings: Settings
    metrics: Metrics
    pool: PagePool
    vlm: VlmClient | None = None
    vl: VlRecognizer | None = None
    jobs: JobManager | None = None
    s3: S3Uploader | None = None

    async def aclose(self, grace_s: float) -> None:
        """Stop jobs (their in-flight pages get `grace_s` to finish and be checkpointed), the pool, the client.
        A component that fails to stop is logged; the others still stop."""
        for name, component in (("jobs", self.jobs), ("pool", self.pool)):
            if component is None:
                continue
            try:
                await component.stop(grace_s)
            except Exception:
                log.exception("stopping the %s failed", name)
        if self.vlm is not None:
            try:
                await self.vlm.aclose()
            except Exception:
                log.exception("closing the VLM client failed")


def build_services(
    settings: Settings,
    *,
    workers: int | None = None,
    preload_engines: bool = True,
    vlm: bool | None = None,
    jobs: bool = False,
    s3: bool | None = None,
    metrics: Metrics | None = None,
) -> Services:
    """Construct (not start) the components. `workers`/`preload_engines` size the page pool (default: WORKERS,
    engines loaded at start); `vlm` builds the sidecar client and its recognizer (default: when the settings
    enable the sidecar); `jobs` adds the job manager (the server only); `s3` the one S3 uploader (default: with
    S3_BUCKET; batch asks for it with buckets of its own)."""
    from app.runtime.pool import PagePool

    pool = PagePool(settings, workers=workers, preload_engines=preload_engines)
    client = recognizer = None
    if settings.vlm_enabled if vlm is None else vlm:
        from app.vlm.client import VlmClient
        from app.vlm.recognizer import VlRecognizer

        client = VlmClient(settings)
        recognizer = VlRecognizer(client, settings)
    uploader = None
    if settings.s3_configured if s3 is None else s3:
        from app.storage.s3 import S3Uploader

        uploader = S3Uploader(settings)
    manager = None
    if jobs:
        from app.jobs.manager import JobManager

        manager = JobManager(settings, pool, vl=recognizer, s3=uploader)
    return Services(settings=settings, metrics=metrics or Metrics(), pool=pool, vlm=client, vl=recognizer,
                    jobs=manager, s3=uploader)
