"""Prometheus metrics, one registry per app so that tests building several apps never collide.

Request counters are labelled by the route *template* (`/jobs/{job_id}`), never the raw path, so a scanner
hitting random URLs cannot blow up the label cardinality; unmatched paths count as `unmatched`.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """Every metric the service exports. `render(pool)` refreshes the pool gauges and serialises the registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("http_requests_total", "HTTP requests", ["route", "method", "status"], registry=r)
        self.latency = Histogram(
            "http_request_duration_seconds", "HTTP request latency", ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.pages = Counter("ocr_pages_total", "Pages converted, by how their text was obtained", ["source"], registry=r)
        self.stage = Histogram(
            "ocr_stage_duration_seconds", "Seconds per pipeline stage per page", ["stage"], buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self.rejections = Counter("ocr_rejections_total", "Requests turned away, by reason", ["reason"], registry=r)
        self.inflight_pages = Gauge("ocr_inflight_pages", "Pages being processed by a worker", registry=r)
        self.queued_pages = Gauge("ocr_queued_pages", "Pages accepted and waiting for a worker", registry=r)
        self.pending_limit = Gauge("ocr_pending_pages_limit", "Admission bound on pending pages", registry=r)
        self.workers_alive = Gauge("ocr_workers_alive", "Live worker processes", registry=r)
        self.ready = Gauge("service_ready", "1 when the service takes work", registry=r)
        self.backlog_per_replica = Gauge(
            "ocr_backlog_pages_per_replica",
            "With a shared job database: unfinished pages of every replica's jobs, divided by the live replicas",
            registry=r,
        )
        self.mcp_calls = Counter("mcp_tool_calls_total", "MCP tool calls, by tool and outcome (ok or error type)",
                                 ["tool", "outcome"], registry=r)
        self.s3_uploads = Counter("s3_uploads_total", "Result uploads to S3", ["outcome"], registry=r)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method, str(status)).observe(seconds)

    def observe_document(self, pages: list[Any]) -> None:
        """Count pages by source and feed each page's stage timings into the stage histogram."""
        for page in pages:
            self.pages.labels(page.source).inc()
            for stage, seconds in (page.timings or {}).items():
                self.stage.labels(stage).observe(seconds)

    def render(self, pool: Any | None, ready: bool, backlog_per_replica: float | None = None) -> bytes:
        if pool is not None:
            try:
                stats = pool.stats()
            except Exception:  # a pool that is not started yet has no stats; the gauges keep their last value
                stats = None
            if stats is not None:
                self.inflight_pages.set(stats.inflight_pages)
                self.queued_pages.set(stats.queued_pages)
                self.pending_limit.set(stats.pending_limit)
                self.workers_alive.set(stats.alive_workers)
        self.ready.set(1 if ready else 0)
        if backlog_per_replica is not None:
            self.backlog_per_replica.set(backlog_per_replica)
        return generate_latest(self.registry)
