"""PaddleX's serving API (POST /layout-parsing, /restructure-pages) in-process with the REAL pipeline; every
answer, success or error, is validated with PaddleX's own pydantic models (tests/paddlex_schemas.py)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw
from rapidfuzz import fuzz

from app.main import create_app
from app.settings import Settings
from tests import pdfgen
from tests.api.conftest import running, wait_ready
from tests.paddlex_schemas import validate_failure, validate_request, validate_success

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("files")
    scan = pdfgen.scan_image(dpi=200)
    scan.save(d / "scan.png", dpi=(200, 200))
    blank = Image.new("L", (850, 1100), 255)
    ImageDraw.Draw(blank).text((100, 100), "x", fill=0)
    blank.save(d / "two.tif", save_all=True, append_images=[scan.copy()], dpi=(100, 100))
    Image.new("RGB", (20, 20), "red").save(d / "anim.gif")
    return {"pdf": pdfgen.figure_pdf(d / "figures.pdf", pages=2), "png": d / "scan.png", "tiff": d / "two.tif",
            "gif": d / "anim.gif"}


@pytest.fixture(scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory):
    settings = Settings(_env_file=None, workers=1, output_dir=tmp_path_factory.mktemp("out"),  # type: ignore[call-arg]
                        max_upload_mb=5)
    app = create_app(settings)
    async with running(app, timeout=300) as client:
        await wait_ready(client)
        client.app = app  # type: ignore[attr-defined]
        yield client


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


async def parse(client: httpx.AsyncClient, payload: dict, headers: dict | None = None) -> httpx.Response:
    validate_request(payload)  # we speak PaddleX's request contract, not our reading of it
    return await client.post("/layout-parsing", json=payload, headers=headers)


def decoded_image(data: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data)))


async def test_a_pdf_answers_every_page_in_paddlex_shape_with_crops_and_visualisations(client, files):
    payload = {"file": b64(files["pdf"]), "fileType": 0, "logId": "log-pdf", "useDocOrientationClassify": True,
               "layoutThreshold": 0.4, "temperature": 0.2, "prettifyMarkdown": False}
    response = await parse(client, payload, headers={"X-Request-ID": "req-px"})
    assert response.status_code == 200, response.text
    body = response.json()
    validate_success(body)
    assert (body["logId"], body["errorCode"], body["errorMsg"]) == ("log-pdf", 0, "Success")
    # the same path as /ocr/pdf: the result and its crops are stored under OUTPUT_DIR (and go to S3 when set)
    stored = client.app.state.settings.output_dir / "req-px"
    assert len(json.loads((stored / "result.json").read_text())["pages"]) == 2
    assert sorted(p.name for p in (stored / "images").iterdir()) == ["p1-fig1.png", "p2-fig1.jpg"]
    result = body["result"]
    info = result["dataInfo"]
    assert info["type"] == "pdf" and info["numPages"] == 2 and len(result["layoutParsingResults"]) == 2
    for page, size in zip(result["layoutParsingResults"], info["pages"]):
        pruned = page["prunedResult"]
        assert (pruned["width"], pruned["height"]) == (size["width"], size["height"]) == (1224, 1584)  # 2x Letter
        settings = pruned["model_settings"]
        # sent, and without a knob here (the CPU profile has no VLM either): named, never silently dropped
        assert settings["ignored_request_fields"] == ["useDocOrientationClassify", "layoutThreshold", "temperature"]
        assert settings["markdown_ignore_labels"][:3] == ["number", "footnote", "header"]
        blocks = pruned["parsing_res_list"]
        assert blocks and all(0 <= b["block_bbox"][0] < b["block_bbox"][2] <= size["width"] for b in blocks)
        assert all(0 <= b["block_bbox"][1] < b["block_bbox"][3] <= size["height"] for b in blocks)
        orders = [b["block_order"] for b in blocks if b["block_order"] is not None]
        assert orders == list(range(1, len(orders) + 1))
        pictures = [b for b in blocks if b["block_label"] in ("image", "chart")]
        assert pictures, blocks
        markdown = page["markdown"]
        assert set(markdown["images"]) == {b["block_image"] for b in pictures}
        for key, data in markdown["images"].items():
            assert f"![]({key})" in markdown["text"]  # prettifyMarkdown=false: plain Markdown image links
            assert decoded_image(data).format == {".png": "PNG", ".jpg": "JPEG"}[Path(key).suffix]
        assert markdown["isStart"] in (True, False) and markdown["isEnd"] in (True, False)
        layout = decoded_image(page["outputImages"]["layout_det_res"])
        assert layout.format == "JPEG" and layout.size == (1224, 1584)
        assert decoded_image(page["inputImage"]).size == (1224, 1584)
    assert pdfgen.FIGURE_CAPTIONS[0] in result["layoutParsingResults"][0]["markdown"]["text"]


async def test_a_png_is_one_image_page_in_its_own_pixels(client, files):
    response = await parse(client, {"file": b64(files["png"]), "fileType": 1, "visualize": False})
    assert response.status_code == 200, response.text
    body = response.json()
    validate_success(body)
    (page,) = body["result"]["layoutParsingResults"]
    width, height = Image.open(files["png"]).size
    assert body["result"]["dataInfo"] == {"width": width, "height": height, "type": "image"}
    assert (page["prunedResult"]["width"], page["prunedResult"]["height"]) == (width, height)
    assert "outputImages" not in page and "inputImage" not in page  # visualize=false
    assert page["prunedResult"]["model_settings"]["ignored_request_fields"] == []
    assert fuzz.partial_ratio("\n".join(pdfgen.SCAN_LINES), page["markdown"]["text"]) > 85, page["markdown"]["text"]


async def test_a_multi_page_tiff_without_file_type_is_guessed_and_paged(client, files):
    response = await parse(client, {"file": b64(files["tiff"]), "visualize": False})
    assert response.status_code == 200, response.text
    body = response.json()
    validate_success(body)
    info = body["result"]["dataInfo"]
    scan = Image.open(files["png"]).size
    assert info == {"numPages": 2, "pages": [{"width": 850, "height": 1100}, {"width": scan[0], "height": scan[1]}],
                    "type": "tiff"}
    second = body["result"]["layoutParsingResults"][1]["markdown"]["text"]
    assert fuzz.partial_ratio("\n".join(pdfgen.SCAN_LINES), second) > 85


@pytest.mark.parametrize(("payload", "needle"), [
    ({"fileType": 0}, '"loc": "file"'),
    ({"file": "%%% not base64 %%%", "fileType": 0}, "neither base64 nor an http(s) URL"),
    ({"file": "aGVsbG8=", "fileType": 7}, '"loc": "fileType"'),
    ({"file": "aGVsbG8=", "topP": 1.5}, '"loc": "topP"'),
    ({"file": "https://example.com/a.pdf"}, "FILE_URL_ALLOWED_HOSTS is empty"),
])
async def test_bad_requests_get_paddlex_error_envelopes(client, payload, needle):
    response = await client.post("/layout-parsing", json=payload)
    assert response.status_code == 422, response.text
    body = response.json()
    validate_failure(body)
    assert body["errorCode"] == 422 and needle in body["errorMsg"]
    assert body["logId"]


async def test_files_that_are_not_what_they_claim_get_422_and_nothing_stays_behind(client, files):
    cases = [({"file": b64(files["png"]), "fileType": 0}, "fileType says a PDF, but the file is a PNG image"),
             ({"file": b64(files["pdf"]), "fileType": 1}, "fileType says an image, but the file is a PDF"),
             ({"file": b64(files["gif"])}, "neither a PDF nor an accepted image"),
             ({"file": base64.b64encode(b"%PDF-1.7 truncated").decode(), "logId": "mine"}, "")]
    for payload, needle in cases:
        response = await client.post("/layout-parsing", json=payload)
        assert response.status_code == 422, response.text
        body = validate_failure(response.json())
        assert needle in body.errorMsg
    assert body.logId == "mine"
    broken = await client.post("/layout-parsing", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 422 and validate_failure(broken.json()).errorCode == 422
    assert list((client.app.state.settings.output_dir / ".uploads").iterdir()) == []
    assert (await client.get("/readyz")).status_code == 200


async def test_restructure_pages_joins_what_layout_parsing_answered(client, files):
    first = (await parse(client, {"file": b64(files["pdf"]), "fileType": 0, "visualize": False})).json()
    pages = [{"prunedResult": r["prunedResult"], "markdownImages": r["markdown"]["images"]}
             for r in first["result"]["layoutParsingResults"]]
    payload = {"pages": pages, "concatenatePages": True, "logId": "joined"}
    validate_request(payload, "RestructurePagesRequest")
    response = await client.post("/restructure-pages", json=payload)
    assert response.status_code == 200, response.text
    body = response.json()
    validate_success(body, "RestructurePagesResult")
    (joined,) = body["result"]["layoutParsingResults"]
    assert set(joined["markdown"]["images"]) == {k for p in pages for k in p["markdownImages"]}
    blocks = joined["prunedResult"]["parsing_res_list"]
    assert len(blocks) == sum(len(p["prunedResult"]["parsing_res_list"]) for p in pages)
    separate = (await client.post("/restructure-pages", json={"pages": pages})).json()
    validate_success(separate, "RestructurePagesResult")
    assert len(separate["result"]["layoutParsingResults"]) == 2
    bad = await client.post("/restructure-pages", json={"pages": [{"markdownImages": {}}]})
    assert bad.status_code == 422 and validate_failure(bad.json()).errorCode == 422


async def test_api_key_and_readiness_errors_keep_the_envelope(make_settings, files):
    app = create_app(make_settings(api_key="sesame", workers=1))
    transport = httpx.ASGITransport(app=app)  # no lifespan: the service never becomes ready
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        payload = {"file": b64(files["png"]), "fileType": 1}
        denied = await client.post("/layout-parsing", json=payload)
        assert denied.status_code == 401 and validate_failure(denied.json()).errorCode == 401
        # PaddleX's clients send `Authorization: token <key>`: accepted like Bearer
        starting = await client.post("/layout-parsing", json=payload, headers={"Authorization": "token sesame"})
        assert starting.status_code == 503 and int(starting.headers["retry-after"]) > 0
        assert validate_failure(starting.json()).errorCode == 503
        ours = await client.post("/ocr/pdf", headers={"Authorization": "token sesame"})
        assert ours.status_code == 503 and json.loads(ours.text)["error"]["type"] == "not_ready"  # our own shape


async def test_a_file_over_max_upload_mb_is_413_in_the_envelope(client):
    big = base64.b64encode(b"%PDF-1.7\n" + bytes(5 * 1024 * 1024)).decode()  # MAX_UPLOAD_MB=5 in this module
    response = await client.post("/layout-parsing", json={"file": big, "fileType": 0})
    assert response.status_code == 413, response.text[:300]
    assert "MAX_UPLOAD_MB=5" in validate_failure(response.json()).errorMsg
    assert list((client.app.state.settings.output_dir / ".uploads").iterdir()) == []


async def test_hostile_images_get_the_image_checks_typed_errors_in_the_envelope(client, tmp_path):
    bomb = pdfgen.png_bomb(tmp_path / "bomb.png")
    whole = tmp_path / "whole.png"
    pdfgen.photo_image(600, 400).save(whole)
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    for path, status in ((bomb, 413), (cut, 422)):
        response = await client.post("/layout-parsing", json={"file": b64(path), "fileType": 1})
        assert response.status_code == status, (path.name, response.text)
        assert validate_failure(response.json()).errorCode == status
    assert (await client.get("/readyz")).status_code == 200
