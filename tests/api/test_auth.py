"""The optional API key: required everywhere except the probes (and /metrics unless configured)."""

from __future__ import annotations

import pytest

from app.main import create_app
from tests.api.conftest import GatedPool, running

pytestmark = pytest.mark.anyio

KEY = "s3cr3t-key-value"


def keyed_app(make_settings, **overrides):
    app = create_app(make_settings(workers=1, api_key=KEY, **overrides))
    app.state.services.pool = GatedPool()
    app.state.services.jobs = None
    app.state.services.pool.gate.set()
    return app


async def test_probes_and_metrics_need_no_key(make_settings):
    async with running(keyed_app(make_settings)) as client:
        for path in ("/livez", "/readyz", "/startupz", "/health", "/metrics"):
            assert (await client.get(path)).status_code != 401, path


async def test_everything_else_needs_the_key(make_settings):
    async with running(keyed_app(make_settings)) as client:
        for method, path in (("GET", "/version"), ("GET", "/docs"), ("GET", "/openapi.json"),
                             ("POST", "/ocr/pdf"), ("GET", "/no-such-path")):
            response = await client.request(method, path)
            assert response.status_code == 401, path
            assert response.json()["error"]["type"] == "unauthorized"
            assert KEY not in response.text


async def test_bearer_and_x_api_key_headers_are_accepted_and_wrong_keys_are_not(make_settings):
    async with running(keyed_app(make_settings)) as client:
        assert (await client.get("/version", headers={"Authorization": f"Bearer {KEY}"})).status_code == 200
        assert (await client.get("/version", headers={"X-API-Key": KEY})).status_code == 200
        assert (await client.get("/version", headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (await client.get("/version", headers={"X-API-Key": KEY[:-1]})).status_code == 401
        assert (await client.get("/version", headers={"Authorization": f"Basic {KEY}"})).status_code == 401


async def test_metrics_can_be_put_behind_the_key(make_settings):
    async with running(keyed_app(make_settings, metrics_require_auth=True)) as client:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers={"X-API-Key": KEY})).status_code == 200
        assert (await client.get("/readyz")).status_code in (200, 503)  # probes stay open


async def test_without_a_configured_key_nothing_asks_for_one(make_settings):
    app = create_app(make_settings(workers=1))
    app.state.services.pool = GatedPool()
    app.state.services.jobs = None
    async with running(app) as client:
        assert (await client.get("/version")).status_code == 200
