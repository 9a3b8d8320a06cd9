"""Bad input and refusals, all in the one error shape. Intake is the real one; the pool is the stand-in
(`GatedPool`), whose admission refuses everything, so a request that passes intake ends in a 503 here."""

from __future__ import annotations

import pytest

from app.main import create_app
from tests.api.conftest import GatedPool, running, wait_for

pytestmark = pytest.mark.anyio


def assert_error(response, status: int, type_: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"type", "message", "request_id"}
    assert error["type"] == type_
    assert error["request_id"] == response.headers["X-Request-ID"]
    return error


@pytest.fixture
async def client(make_settings):
    app = create_app(make_settings(workers=1, max_upload_mb=1, max_pages=2))
    app.state.services.pool = GatedPool()
    app.state.services.jobs = None
    app.state.services.pool.gate.set()
    async with running(app) as client:
        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await wait_for(ready, 10, "ready")
        client.app = app  # type: ignore[attr-defined]
        yield client


async def post_pdf(client, path, **params):
    return await client.post("/ocr/pdf", files={"file": ("doc.pdf", path.read_bytes(), "application/pdf")},
                             params=params)


async def test_unknown_path_is_404_in_the_error_shape(client):
    error = assert_error(await client.get("/nope"), 404, "not_found")
    assert "/nope" in error["message"]


async def test_wrong_method_is_405_in_the_error_shape(client):
    assert_error(await client.get("/ocr/pdf"), 405, "method_not_allowed")


async def test_random_bytes_are_415(client, pdfs):
    assert_error(await post_pdf(client, pdfs["random"]), 415, "unsupported_media_type")


async def test_a_body_that_is_not_multipart_is_415(client, pdfs):
    response = await client.post("/ocr/pdf", content=pdfs["text1"].read_bytes(),
                                  headers={"Content-Type": "application/pdf"})
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(("name", "type_"), [("encrypted", "encrypted_pdf"), ("zero", "empty_pdf"),
                                             ("corrupt", "unreadable_pdf")])
async def test_unusable_pdfs_are_422(client, pdfs, name, type_):
    assert_error(await post_pdf(client, pdfs[name]), 422, type_)


@pytest.mark.parametrize("params", [{"pages": "9"}, {"pages": "x-y"}, {"mode": "magic"}, {"dpi": "abc"},
                                    {"dpi": "5000"}, {"dpi": "10"}, {"pages": "\u0661"}, {"pages": "\uff11"},
                                    {"pages": "1,1,1"}, {"mode": ""}, {"dpi": ""}])
async def test_bad_parameters_are_422(client, pdfs, params):
    error = assert_error(await post_pdf(client, pdfs["text1"], **params), 422, "invalid_parameter")
    assert next(iter(params)) in error["message"]


async def test_bad_form_field_is_422_like_a_bad_query_parameter(client, pdfs):
    response = await client.post("/ocr/pdf", files={"file": ("a.pdf", pdfs["text1"].read_bytes())},
                                 data={"mode": "nonsense"})
    assert "mode" in assert_error(response, 422, "invalid_parameter")["message"]


async def test_empty_mode_form_field_is_422_not_the_default(client, pdfs):
    response = await client.post("/ocr/pdf", files={"file": ("a.pdf", pdfs["text1"].read_bytes())},
                                 data={"mode": ""})
    assert "mode" in assert_error(response, 422, "invalid_parameter")["message"]


async def test_missing_file_field_is_422(client):
    response = await client.post("/ocr/pdf", files={"document": ("a.pdf", b"%PDF-1.7")})
    assert "'file'" in assert_error(response, 422, "invalid_parameter")["message"]


async def test_upload_over_the_limit_is_413(client):
    big = b"%PDF-1.7\n" + b"0" * (1024 * 1024 + 10)
    assert_error(await client.post("/ocr/pdf", files={"file": ("big.pdf", big)}), 413, "upload_too_large")


async def test_upload_over_the_limit_without_content_length_is_413(client):
    async def chunks():
        boundary = b"xyzBOUNDARYxyz"
        yield b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n\r\n%PDF-1.7\n'
        for _ in range(40):  # 2.5 MiB of a 1 MiB limit, never announced up front
            yield b"0" * 65536
        yield b"\r\n--" + boundary + b"--\r\n"

    response = await client.post("/ocr/pdf", content=chunks(),
                                 headers={"Content-Type": "multipart/form-data; boundary=xyzBOUNDARYxyz"})
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_error(response, 413, "upload_too_large")
    uploads = client.app.state.settings.output_dir / ".uploads"
    assert not any(uploads.iterdir()), "the partial upload must be deleted"


async def test_more_pages_than_max_pages_is_413(client, pdfs):
    assert_error(await post_pdf(client, pdfs["text3"]), 413, "too_many_pages")


async def test_overload_is_503_with_retry_after(client, pdfs):
    error = assert_error(await post_pdf(client, pdfs["text1"], mode="text"), 503, "overloaded")
    assert client.app.state.services.pool.admit_error is None and "stand-in" in error["message"]
    response = await post_pdf(client, pdfs["text1"], mode="text")
    assert response.headers["Retry-After"] == "7"
    metrics = (await client.get("/metrics")).text
    assert 'ocr_rejections_total{reason="overloaded"} 2.0' in metrics


async def test_unexpected_exception_is_a_generic_500_without_internals(client, pdfs):
    client.app.state.services.pool.admit_error = RuntimeError("db password is hunter2")
    error = assert_error(await post_pdf(client, pdfs["text1"]), 500, "internal_error")
    assert "hunter2" not in error["message"] and error["message"] == "internal server error"


async def test_temp_uploads_are_removed_after_a_refusal(client, pdfs):
    await post_pdf(client, pdfs["encrypted"])
    await post_pdf(client, pdfs["text1"])  # passes intake, refused by admission
    uploads = client.app.state.settings.output_dir / ".uploads"
    assert list(uploads.iterdir()) == []


async def test_request_id_is_echoed_when_safe_and_replaced_when_not(client):
    response = await client.get("/version", headers={"X-Request-ID": "trace-42.a_b"})
    assert response.headers["X-Request-ID"] == "trace-42.a_b"
    response = await client.get("/nope", headers={"X-Request-ID": "../../etc/passwd"})
    assert response.headers["X-Request-ID"] != "../../etc/passwd"
    assert response.json()["error"]["request_id"] == response.headers["X-Request-ID"]


async def test_version_and_openapi_docs_are_served(client):
    version = (await client.get("/version")).json()
    assert version["profile"] == "cpu" and version["version"]
    schema = (await client.get("/openapi.json")).json()
    body = schema["paths"]["/ocr/pdf"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert "file" in body["required"]
    assert (await client.get("/docs")).status_code == 200


async def test_a_saturated_pool_refuses_before_reading_the_body(client, pdfs):
    """Under overload a rejected upload costs nothing: 503 + Retry-After before a byte of the body is read."""
    stats = client.app.state.services.pool.stats_value
    stats.pending_pages = stats.pending_limit
    pulled = []

    async def body():
        for i in range(1000):
            pulled.append(i)
            yield b"x" * 65536

    response = await client.post("/ocr/pdf", content=body(),
                                 headers={"Content-Type": "multipart/form-data; boundary=b"})
    error = assert_error(response, 503, "overloaded")
    assert int(response.headers["Retry-After"]) >= 1 and "pending" in error["message"]
    assert len(pulled) <= 1  # ASGITransport may pull one chunk ahead; the route itself read nothing
    assert list((client.app.state.settings.output_dir / ".uploads").glob("*")) == []
