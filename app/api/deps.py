"""FastAPI dependencies: a route takes typed components from the app's `Services` (built by app/services.py),
so tests swap them with `app.dependency_overrides` or by replacing a field of `app.state.services`, and a
renamed component is a type error rather than a missing attribute at run time."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.jobs.manager import JobManager
from app.lifecycle import Lifecycle
from app.observability.metrics import Metrics
from app.runtime.pool import PagePool
from app.services import Services
from app.settings import Settings
from app.storage.s3 import S3Uploader
from app.vlm.client import VlmClient
from app.vlm.recognizer import VlRecognizer


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_settings(services: ServicesDep) -> Settings:
    return services.settings


def get_pool(services: ServicesDep) -> PagePool:
    return services.pool


def get_lifecycle(request: Request) -> Lifecycle:
    return request.app.state.lifecycle


def get_metrics(services: ServicesDep) -> Metrics:
    return services.metrics


def get_vlm(services: ServicesDep) -> VlmClient | None:
    """The sidecar client, or None when the VLM sidecar is disabled."""
    return services.vlm


def get_vl(services: ServicesDep) -> VlRecognizer | None:
    """The RegionRecognizer for `vl` mode, or None when the VLM sidecar is disabled."""
    return services.vl


def get_jobs(services: ServicesDep) -> JobManager | None:
    return services.jobs


def get_s3(services: ServicesDep) -> S3Uploader | None:
    return services.s3


def get_request_id(request: Request) -> str:
    return request.state.request_id


SettingsDep = Annotated[Settings, Depends(get_settings)]
PoolDep = Annotated[PagePool, Depends(get_pool)]
LifecycleDep = Annotated[Lifecycle, Depends(get_lifecycle)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
VlmDep = Annotated[VlmClient | None, Depends(get_vlm)]
VlDep = Annotated[VlRecognizer | None, Depends(get_vl)]
JobsDep = Annotated[JobManager | None, Depends(get_jobs)]
S3Dep = Annotated[S3Uploader | None, Depends(get_s3)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
