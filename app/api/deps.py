"""FastAPI dependencies: everything a route needs comes from `app.state`, so tests swap it with
`app.dependency_overrides` instead of patching modules."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from app.lifecycle import Lifecycle
from app.observability.metrics import Metrics
from app.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_pool(request: Request) -> Any:
    return request.app.state.pool


def get_lifecycle(request: Request) -> Lifecycle:
    return request.app.state.lifecycle


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def get_vl(request: Request) -> Any | None:
    """The RegionRecognizer for `vl` mode, or None when the VLM sidecar is disabled."""
    return request.app.state.vl


def get_jobs(request: Request) -> Any | None:
    return request.app.state.jobs


def get_s3(request: Request) -> Any | None:
    return request.app.state.s3


def get_request_id(request: Request) -> str:
    return request.state.request_id


SettingsDep = Annotated[Settings, Depends(get_settings)]
PoolDep = Annotated[Any, Depends(get_pool)]
LifecycleDep = Annotated[Lifecycle, Depends(get_lifecycle)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
VlDep = Annotated[Any | None, Depends(get_vl)]
JobsDep = Annotated[Any | None, Depends(get_jobs)]
S3Dep = Annotated[Any | None, Depends(get_s3)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
