"""POST /ocr/pdf in-process with the REAL pipeline (PagePool with one worker, text mode where OCR is not the
point). One app serves the whole module: starting workers and loading models is the slow part."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.main import create_app
from app.settings import Settings
from tests import pdfgen
from tests.api.conftest import running, wait_ready

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def pdf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pdfs")
    pdfgen.text_pdf(d / "text3.pdf", pages=3)
    pdfgen.scanned_pdf(d / "scan.pdf", dpi=100)
    return d


@pytest.fixture(scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("out")
    # The module-scoped fixture cannot use make_settings (function-scoped); no env file, explicit output dir.
    settings = Settings(_env_file=None, workers=1, output_dir=out, max_upload_mb=5,  # type: ignore[call-arg]
                        s3_endpoint="http://127.0.0.1:9", s3_bucket="unreachable", s3_access_key="k",
                        s3_secret_key="v")
    app = create_app(settings)
    async with running(app, timeout=300) as client:
        await wait_ready(client)
        client.app = app  # type: ignore[attr-defined]
        yield client


async def post(client, path: Path, *, headers=None, filename: str | None = None, **params):
    return await client.post("/ocr/pdf", params=params, headers=headers,
                             files={"file": (filename or path.name, path.read_bytes(), "application/pdf")})


async def test_json_result_carries_pages_request_id_and_written_outputs(client, pdf_dir):
    response = await post(client, pdf_dir / "text3.pdf", mode="text", headers={"X-Request-ID": "req-json"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["request_id"] == "req-json"
    assert body["page_count"] == 3 and [p["page"] for p in body["pages"]] == [1, 2, 3]
    assert {p["source"] for p in body["pages"]} == {"text"}
    assert pdfgen.TITLE in body["markdown"]
    assert body["outputs"]["id"] == "req-json"
    assert body["outputs"]["files"] == ["req-json/result.json", "req-json/result.md"]
    out = client.app.state.settings.output_dir / "req-json"
    assert (out / "result.md").read_text() == body["markdown"]
    assert json.loads((out / "result.json").read_text())["pages"] == body["pages"]
    assert sorted(p.name for p in out.iterdir()) == ["result.json", "result.md"]  # no temp files left


async def test_no_absolute_path_reaches_a_response_or_the_health_body(client, pdf_dir):
    root = str(client.app.state.settings.output_dir.resolve())
    response = await post(client, pdf_dir / "text3.pdf", mode="text", pages="1")
    assert response.status_code == 200
    outputs = response.json()["outputs"]
    assert not any(str(f).startswith("/") for f in outputs["files"]) and "dir" not in outputs
    assert root not in response.text
    health = await client.get("/health")
    assert "models_path" not in health.json() and "output_dir" not in health.json()
    assert not any(isinstance(v, str) and v.startswith("/") for v in health.json().values())


async def test_markdown_is_returned_for_accept_text_markdown(client, pdf_dir):
    response = await post(client, pdf_dir / "text3.pdf", mode="text", pages="1",
                          headers={"Accept": "text/markdown"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/markdown; charset=utf-8"
    assert response.text.lstrip().startswith("#") and pdfgen.TITLE in response.text


async def test_page_selection_and_form_fields_are_honoured(client, pdf_dir):
    response = await client.post(
        "/ocr/pdf", data={"pages": "2-3", "mode": "text"},
        files={"file": ("a.pdf", (pdf_dir / "text3.pdf").read_bytes(), "application/pdf")},
    )
    assert response.status_code == 200, response.text
    assert [p["page"] for p in response.json()["pages"]] == [2, 3]
    assert pdfgen.TITLE not in response.json()["markdown"]


async def test_scanned_page_goes_through_real_ocr(client, pdf_dir):
    response = await post(client, pdf_dir / "scan.pdf", mode="ocr", dpi="150")
    assert response.status_code == 200, response.text
    page = response.json()["pages"][0]
    assert page["source"] == "ocr"
    assert "quick brown fox" in response.json()["markdown"].lower()


async def test_hostile_filename_stays_out_of_every_path(client, pdf_dir):
    response = await post(client, pdf_dir / "text3.pdf", mode="text", pages="1", filename="../../etc/passwd.pdf")
    assert response.status_code == 200
    root = client.app.state.settings.output_dir
    assert (root / response.json()["outputs"]["id"] / "result.json").is_file()
    assert not any("passwd" in str(p) for p in root.parent.rglob("*"))


async def test_s3_failure_is_reported_and_the_local_result_kept(client, pdf_dir):
    response = await post(client, pdf_dir / "text3.pdf", mode="text", pages="1")
    assert response.status_code == 200
    s3 = response.json()["outputs"]["s3"]
    assert s3["bucket"] == "unreachable" and s3["keys"] == [] and s3["error"]
    root = client.app.state.settings.output_dir
    assert (root / response.json()["outputs"]["files"][0]).is_file()
    health = await client.get("/health")
    assert health.status_code == 200 and health.json()["s3_storage"] == "error"
    assert health.json()["status"] == "degraded"


async def test_vl_mode_without_the_sidecar_is_422(client, pdf_dir):
    response = await post(client, pdf_dir / "text3.pdf", mode="vl")
    assert response.status_code == 422
    assert "sidecar" in response.json()["error"]["message"]


async def test_metrics_count_pages_by_source_and_stage_timings(client, pdf_dir):
    assert (await post(client, pdf_dir / "text3.pdf", mode="text", pages="1")).status_code == 200
    metrics = (await client.get("/metrics")).text
    assert 'ocr_pages_total{source="text"}' in metrics
    assert "ocr_stage_duration_seconds_bucket" in metrics
    assert 'http_requests_total{method="POST",route="/ocr/pdf",status="200"}' in metrics
    assert "ocr_inflight_pages 0.0" in metrics and "ocr_workers_alive 1.0" in metrics
    uploads = client.app.state.settings.output_dir / ".uploads"
    assert list(uploads.iterdir()) == []  # temp uploads are gone once answered


async def test_a_reused_request_id_never_overwrites_an_earlier_result(client, pdf_dir):
    first = await post(client, pdf_dir / "text3.pdf", mode="text", pages="1", headers={"X-Request-ID": "req-twice"})
    second = await post(client, pdf_dir / "text3.pdf", mode="text", pages="2", headers={"X-Request-ID": "req-twice"})
    assert first.status_code == second.status_code == 200
    root = client.app.state.settings.output_dir
    first_dir, second_dir = root / first.json()["outputs"]["id"], root / second.json()["outputs"]["id"]
    assert first_dir != second_dir and second_dir.name.startswith("req-twice-")
    assert [p["page"] for p in json.loads((first_dir / "result.json").read_text())["pages"]] == [1]
    assert [p["page"] for p in json.loads((second_dir / "result.json").read_text())["pages"]] == [2]


async def test_vl_is_refused_before_any_page_work_while_the_sidecar_breaker_is_open(client, pdf_dir):
    from app.vlm.client import VlmClient

    app = client.app
    settings = app.state.settings.model_copy(update={"use_vlm_api": True, "vllm_url": "http://127.0.0.1:9/v1"})
    vlm = VlmClient(settings)
    vlm.breaker.record_failure("connection refused", definitive=True)

    class MustNotBeCalled:
        async def recognize(self, crops):  # pragma: no cover - reaching it is the failure
            raise AssertionError("the recognizer was reached while the breaker was open")

    saved = app.state.services.vlm, app.state.services.vl
    app.state.services.vlm, app.state.services.vl = vlm, MustNotBeCalled()
    pages_before = app.state.services.pool.stats().pages_done
    try:
        response = await post(client, pdf_dir / "text3.pdf", mode="vl")
    finally:
        app.state.services.vlm, app.state.services.vl = saved
        await vlm.aclose()
    assert response.status_code == 503, response.text
    assert response.json()["error"]["type"] == "sidecar_unavailable"
    assert float(response.headers["Retry-After"]) >= 1
    assert app.state.services.pool.stats().pages_done == pages_before  # no page was rendered or laid out


async def test_a_language_that_is_not_installed_is_422_listing_the_installed_ones(client, pdf_dir):
    response = await post(client, pdf_dir / "scan.pdf", lang="ru+xx")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] and error["request_id"]
    assert error["message"].startswith("lang: 'xx' is not installed; installed: ")
    assert "ru" in error["message"] and "uk" in error["message"]
    form = await client.post("/jobs", data={"lang": "klingon"},
                             files={"file": ("scan.pdf", (pdf_dir / "scan.pdf").read_bytes(), "application/pdf")})
    assert form.status_code == 422 and "lang: cannot read" not in form.json()["error"]["message"]
    assert "installed: " in form.json()["error"]["message"]
    assert (await client.get("/health")).status_code == 200  # the service shrugs it off


async def test_version_lists_the_languages_lang_may_name(client):
    body = (await client.get("/version")).json()
    assert {"en", "ru", "uk", "zh"} <= set(body["languages"]) and body["default_lang"] == "auto"


async def test_a_russian_scan_reads_as_russian_with_no_language_given(client, tmp_path):
    path = pdfgen.scanned_lines_pdf(tmp_path / "ru.pdf", pdfgen.RUSSIAN_LINES)
    response = await post(client, path)
    assert response.status_code == 200, response.text
    markdown = response.json()["markdown"]
    assert "Договор поставки" in markdown and "Москве" in markdown, markdown
