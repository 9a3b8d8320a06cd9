"""Images out (crops beside the result, links, embed, none, the zip bundle), images in (PNG, JPEG, TIFF, bombs,
truncated files) and the job image routes, in-process on the real PagePool and models."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from rapidfuzz import fuzz

from app.main import create_app
from tests import pdfgen
from tests.api.conftest import running, wait_for, wait_ready

pytestmark = pytest.mark.anyio


def _file(path: Path, media: str = "application/octet-stream") -> dict:
    return {"file": (path.name, path.read_bytes(), media)}


@pytest.fixture
def figure_pdf(tmp_path: Path) -> Path:
    return pdfgen.figure_pdf(tmp_path / "figures.pdf", pages=2)


def _image_blocks(body: dict) -> list[tuple[int, str, str]]:
    return [(p["page"], b["type"], b["image"]) for p in body["pages"] for b in p["blocks"] if b["image"]]


async def test_figures_are_cropped_beside_the_result_and_linked_with_their_captions(make_settings, figure_pdf):
    settings = make_settings(workers=1)
    async with running(create_app(settings)) as client:
        await wait_ready(client)
        response = await client.post("/ocr/pdf", files=_file(figure_pdf), data={"mode": "auto"},
                                     headers={"X-Request-ID": "figs-1"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert _image_blocks(body) == [(1, "figure", "images/p1-fig1.png"), (2, "figure", "images/p2-fig1.jpg")]
        assert f"![{pdfgen.FIGURE_CAPTIONS[0]}](images/p1-fig1.png)" in body["markdown"]
        assert f"![{pdfgen.FIGURE_CAPTIONS[1]}](images/p2-fig1.jpg)" in body["markdown"]
        out = settings.output_dir / body["outputs"]["id"]
        assert sorted(p.name for p in (out / "images").iterdir()) == ["p1-fig1.png", "p2-fig1.jpg"]
        # outputs.files names every file written for the result, the crops too, relative to OUTPUT_DIR
        assert body["outputs"]["files"] == ["figs-1/result.json", "figs-1/result.md", "figs-1/images/p1-fig1.png",
                                            "figs-1/images/p2-fig1.jpg"]
        written = sorted(str(p.relative_to(settings.output_dir)) for p in out.rglob("*") if p.is_file())
        assert written == sorted(body["outputs"]["files"])
        assert (out / "result.md").read_text() == body["markdown"]
        figure = next(b for b in body["pages"][0]["blocks"] if b["type"] == "figure")
        with Image.open(out / "images" / "p1-fig1.png") as crop:
            assert crop.format == "PNG"
            width_pt = figure["bbox"][2] - figure["bbox"][0]  # cropped at IMAGE_DPI (150) plus a 2 pt margin
            assert abs(crop.width - (width_pt + 4) * 150 / 72) <= 3
        with Image.open(out / "images" / "p2-fig1.jpg") as crop:
            assert crop.format == "JPEG"
        assert not any((settings.output_dir / ".images").iterdir())  # staging moved, nothing left behind

        bundle = await client.post("/ocr/pdf", files=_file(figure_pdf), params={"mode": "auto"},
                                   headers={"Accept": "application/zip", "X-Request-ID": "figs-zip"})
        assert bundle.status_code == 200 and bundle.headers["content-type"] == "application/zip"
        archive = zipfile.ZipFile(io.BytesIO(bundle.content))
        assert sorted(archive.namelist()) == ["images/p1-fig1.png", "images/p2-fig1.jpg", "result.json",
                                              "result.md"]
        zipped = settings.output_dir / "figs-zip"
        assert archive.read("images/p2-fig1.jpg") == (zipped / "images" / "p2-fig1.jpg").read_bytes()
        assert json.loads(archive.read("result.json"))["markdown"] == archive.read("result.md").decode()


async def test_images_none_keeps_placeholders_and_embed_inlines_data_uris(make_settings, figure_pdf):
    settings = make_settings(workers=1)
    async with running(create_app(settings)) as client:
        await wait_ready(client)
        none = await client.post("/ocr/pdf", files=_file(figure_pdf), data={"images": "none"})
        assert none.status_code == 200, none.text
        assert _image_blocks(none.json()) == []
        assert none.json()["markdown"].count("![figure](#bbox=") == 2
        assert not ((settings.output_dir / none.json()["outputs"]["id"]) / "images").exists()

        embed = await client.post("/ocr/pdf", files=_file(figure_pdf), params={"images": "embed"})
        assert embed.status_code == 200, embed.text
        images = [image for _, _, image in _image_blocks(embed.json())]
        assert [i.split(";")[0] for i in images] == ["data:image/png", "data:image/jpeg"]
        assert all(f"]({i})" in embed.json()["markdown"] for i in images)
        assert not ((settings.output_dir / embed.json()["outputs"]["id"]) / "images").exists()

        bad = await client.post("/ocr/pdf", files=_file(figure_pdf), data={"images": "inline"})
        assert bad.status_code == 422 and "images" in bad.json()["error"]["message"]


async def test_image_uploads_are_read_like_scans(make_settings, tmp_path):
    png, tiff, jpeg = tmp_path / "scan.png", tmp_path / "scan.tif", tmp_path / "phone.jpg"
    scan = pdfgen.scan_image(dpi=200)
    scan.save(png, dpi=(200, 200))
    blank = Image.new("L", scan.size, 255)
    ImageDraw.Draw(blank).text((100, 100), "x", fill=0)
    blank.save(tiff, save_all=True, append_images=[scan.copy()], dpi=(200, 200))  # frame 2 is the scan
    exif = Image.Exif()
    exif[0x0112] = 8  # stored turned a quarter clockwise: "rotate 90 degrees counter-clockwise to view"
    scan.convert("RGB").rotate(-90, expand=True).save(jpeg, exif=exif, dpi=(200, 200), quality=92)
    expected = "\n".join(pdfgen.SCAN_LINES)
    async with running(create_app(make_settings(workers=1))) as client:
        await wait_ready(client)
        for path, params in ((png, {}), (tiff, {"pages": "2"}), (jpeg, {})):
            response = await client.post("/ocr/pdf", files=_file(path), data=params)
            assert response.status_code == 200, (path.name, response.text)
            body = response.json()
            (page,) = body["pages"]
            assert page["source"] == "ocr"
            assert (round(page["width"]), round(page["height"])) == (612, 792), path.name  # 200 DPI Letter
            assert fuzz.partial_ratio(expected, body["markdown"]) > 85, (path.name, body["markdown"])
        both = await client.post("/ocr/pdf", files=_file(tiff))
        assert both.status_code == 200 and both.json()["page_count"] == 2


async def test_hostile_and_unknown_images_get_clear_errors_and_the_server_stays_up(make_settings, tmp_path):
    bomb = pdfgen.png_bomb(tmp_path / "bomb.png")
    whole = tmp_path / "whole.png"
    pdfgen.photo_image(600, 400).save(whole)
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    gif = tmp_path / "anim.gif"
    Image.new("RGB", (20, 20), "red").save(gif)
    settings = make_settings(workers=1)
    async with running(create_app(settings)) as client:
        await wait_ready(client)
        expected = {bomb: (413, "image_too_large"), cut: (422, "unreadable_image"),
                    gif: (415, "unsupported_media_type")}
        for path, (status, kind) in expected.items():
            for route in ("/ocr/pdf", "/jobs"):
                response = await client.post(route, files=_file(path))
                assert response.status_code == status, (path.name, route, response.text)
                assert response.json()["error"]["type"] == kind
        for route in ("/ocr/pdf", "/jobs"):  # an image has no text layer: text mode would answer empty pages
            text_mode = await client.post(route, files=_file(whole), data={"mode": "text"})
            assert text_mode.status_code == 422, text_mode.text
            assert "has none; use auto, ocr or vl" in text_mode.json()["error"]["message"]
        gif_message = (await client.post("/ocr/pdf", files=_file(gif))).json()["error"]["message"]
        assert "PNG, JPEG, TIFF, WebP, BMP" in gif_message
        assert (await client.get("/readyz")).status_code == 200
        assert list((settings.output_dir / ".uploads").iterdir()) == []


async def test_job_images_bundle_and_key_scoping(make_settings, figure_pdf):
    settings = make_settings(workers=1, api_key="key-a,key-b")
    a, b = {"Authorization": "Bearer key-a"}, {"Authorization": "Bearer key-b"}
    async with running(create_app(settings)) as client:
        await wait_ready(client)
        submitted = await client.post("/jobs", files=_file(figure_pdf), headers=a)
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["job_id"]

        async def done() -> bool:
            state = (await client.get(f"/jobs/{job_id}", headers=a)).json()
            assert state["status"] in ("queued", "running", "succeeded"), state
            return state["status"] == "succeeded"

        await wait_for(done, 180, "the job to succeed")
        result = (await client.get(f"/jobs/{job_id}/result", headers=a)).json()
        assert _image_blocks(result) == [(1, "figure", "images/p1-fig1.png"), (2, "figure", "images/p2-fig1.jpg")]

        image = await client.get(f"/jobs/{job_id}/images/p1-fig1.png", headers=a)
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(image.content)).format == "PNG"
        bundle = await client.get(f"/jobs/{job_id}/result", params={"format": "zip"}, headers=a)
        assert bundle.status_code == 200
        archive = zipfile.ZipFile(io.BytesIO(bundle.content))
        assert archive.read("images/p1-fig1.png") == image.content
        assert json.loads(archive.read("result.json")) == result
        assert "input.pdf" not in archive.namelist()

        assert (await client.get(f"/jobs/{job_id}/images/p1-fig1.png", headers=b)).status_code == 404
        assert (await client.get(f"/jobs/{job_id}/result?format=zip", headers=b)).status_code == 404
        for name in ("p9-fig1.png", "input.pdf", "..%2Fresult.json", "result.json"):
            assert (await client.get(f"/jobs/{job_id}/images/{name}", headers=a)).status_code == 404, name


async def test_a_request_handed_off_to_a_job_keeps_its_crops(make_settings, tmp_path):
    settings = make_settings(workers=1, max_sync_wait_s=0.5)
    pdf = pdfgen.figure_pdf(tmp_path / "four.pdf", pages=4)
    app = create_app(settings)
    async with running(app) as client:
        await wait_ready(client)
        response = await client.post("/ocr/pdf", files=_file(pdf), data={"mode": "ocr", "dpi": "100"})
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]

        async def done() -> bool:
            return (await client.get(f"/jobs/{job_id}")).json()["status"] == "succeeded"

        await wait_for(done, 180, "the handed-off job to succeed")
        result = (await client.get(f"/jobs/{job_id}/result")).json()
        images = [image for _, _, image in _image_blocks(result)]
        assert [i.split("/")[1].split(".")[0] for i in images] == ["p1-fig1", "p2-fig1", "p3-fig1", "p4-fig1"]
        for image in images:
            got = await client.get(f"/jobs/{job_id}/{image}")
            assert got.status_code == 200 and len(got.content) > 1000, image

        async def staging_gone() -> bool:
            return list((settings.output_dir / ".images").iterdir()) == []

        await wait_for(staging_gone, 10, "the request's staging link to be removed")
