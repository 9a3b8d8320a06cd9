"""The web UI's server side in-process: /ui and its static files, `/`, and GET /jobs/{id}/pages/{n}.png.

The page itself is exercised in a real browser in tests/browser/; here: what is served, to whom, and the page
images' size, content and scoping.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from app.api.routes import pages as pages_route
from app.api.routes.ui import STATIC_DIR
from app.main import create_app
from tests.api.conftest import running, wait_for, wait_ready

pytestmark = pytest.mark.anyio

TEST_IDS = ("file-input", "submit", "progress", "page-image", "markdown-view", "download-json", "download-md")


async def _finished_job(client: httpx.AsyncClient, pdf: Path, headers: dict[str, str] | None = None,
                        **fields: str) -> tuple[str, dict]:
    response = await client.post("/jobs", files={"file": (pdf.name, pdf.read_bytes(), "application/pdf")},
                                 data={"mode": "text", **fields}, headers=headers)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]

    async def done() -> bool:
        return (await client.get(f"/jobs/{job_id}", headers=headers)).json()["status"] == "succeeded"

    await wait_for(done, 120, f"job {job_id} to succeed")
    result = (await client.get(f"/jobs/{job_id}/result", headers=headers)).json()
    return job_id, result


def _dark_fraction(image: np.ndarray, box: tuple[float, float, float, float], scale: float) -> float:
    x0, y0, x1, y1 = (round(v * scale) for v in box)
    return float((image[y0:y1, x0:x1].mean(axis=2) < 128).mean())


async def test_page_image_shows_the_page_at_screen_resolution_where_the_result_boxes_are(make_settings, pdfs):
    app = create_app(make_settings(workers=1))
    async with running(app) as client:
        await wait_ready(client)
        job_id, result = await _finished_job(client, pdfs["text3"])
        for page in result["pages"]:
            response = await client.get(f"/jobs/{job_id}/pages/{page['page']}.png")
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "image/png"
            image = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
            scale = pages_route.SCREEN_DPI / 72
            height, width = image.shape[:2]
            assert abs(width - page["width"] * scale) <= 1 and abs(height - page["height"] * scale) <= 1
            # Ink inside the boxes the result reports, paper outside them: the image is this page, unshifted.
            title = next(b for b in page["blocks"] if b["type"] == "title")
            assert _dark_fraction(image, title["bbox"], scale) > 0.05
            mask = np.ones(image.shape[:2], dtype=bool)
            for block in page["blocks"]:
                x0, y0, x1, y1 = (round(v * scale) for v in block["bbox"])
                mask[max(0, y0 - 3):y1 + 3, max(0, x0 - 3):x1 + 3] = False
            assert float((image[mask].mean(axis=1) < 128).mean()) < 0.001

        small = await client.get(f"/jobs/{job_id}/pages/2.png", params={"dpi": 36})
        width = Image.open(io.BytesIO(small.content)).size[0]
        assert abs(width - result["pages"][1]["width"] * 36 / 72) <= 1

        too_sharp = await client.get(f"/jobs/{job_id}/pages/1.png", params={"dpi": 1200})
        assert too_sharp.status_code == 422 and too_sharp.json()["error"]["type"] == "invalid_parameter"


async def test_page_images_exist_only_for_the_jobs_pages_and_its_owner(make_settings, pdfs):
    app = create_app(make_settings(workers=1, api_key="key-of-alice,key-of-bob"))
    alice, bob = {"Authorization": "Bearer key-of-alice"}, {"X-API-Key": "key-of-bob"}
    async with running(app) as client:
        await wait_ready(client)
        job_id, result = await _finished_job(client, pdfs["text3"], headers=alice, pages="2-3")
        assert [p["page"] for p in result["pages"]] == [2, 3]
        assert (await client.get(f"/jobs/{job_id}/pages/2.png", headers=alice)).status_code == 200
        assert (await client.get(f"/jobs/{job_id}/pages/2.png")).status_code == 401
        for url, headers in ((f"/jobs/{job_id}/pages/2.png", bob),  # another key: as if it did not exist
                             (f"/jobs/{job_id}/pages/1.png", alice),  # not one of the job's pages
                             (f"/jobs/{job_id}/pages/9.png", alice),
                             ("/jobs/jNoSuchJobAtAll123/pages/1.png", alice)):
            response = await client.get(url, headers=headers)
            assert response.status_code == 404, (url, response.text)
            assert response.json()["error"]["type"] == "not_found"

        assert (await client.delete(f"/jobs/{job_id}", headers=alice)).status_code == 204
        assert (await client.get(f"/jobs/{job_id}/pages/2.png", headers=alice)).status_code == 404


async def test_page_images_answer_503_with_retry_after_while_the_renderers_are_full(make_settings, pdfs):
    app = create_app(make_settings(workers=1))
    async with running(app) as client:
        await wait_ready(client)
        job_id, _ = await _finished_job(client, pdfs["text1"])
        held = 0
        try:
            while pages_route._renders.acquire(blocking=False):  # every render slot taken
                held += 1
            busy = await client.get(f"/jobs/{job_id}/pages/1.png")
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
            assert busy.json()["error"]["type"] == "overloaded"
        finally:
            for _ in range(held):
                pages_route._renders.release()
        assert held == pages_route._MAX_RENDERS
        assert (await client.get(f"/jobs/{job_id}/pages/1.png")).status_code == 200


async def test_ui_and_its_files_are_served_without_a_key_while_the_api_needs_one(make_settings):
    app = create_app(make_settings(api_key="secret-key"))
    async with running(app) as client:
        page = await client.get("/ui")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        for test_id in TEST_IDS:
            assert f'data-testid="{test_id}"' in page.text, test_id
        # Everything the page loads, and everything its modules import, is served here (nothing from the internet).
        assets = re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', page.text)
        assert assets
        seen: set[str] = set()
        while assets:
            url = assets.pop()
            if url in seen:
                continue
            seen.add(url)
            response = await client.get(url)
            assert response.status_code == 200, url
            if url.endswith((".js", ".mjs")):
                assert response.headers["content-type"].startswith("text/javascript"), url
                base = url.rsplit("/", 1)[0]
                for imported in re.findall(r'^import\b[^"\n]*"(\./[^"]+)"', response.text, re.M):
                    assets.append(f"{base}/{imported[2:]}")
        assert {"/ui/static/vendor/marked.esm.js", "/ui/static/vendor/purify.es.mjs"} <= seen
        assert "https://" not in page.text and "http://" not in page.text

        assert (await client.get("/jobs")).status_code == 401
        assert (await client.get("/ui/static/nope.js")).status_code == 404
        assert (await client.get("/ui/static/..%2F..%2Fmain.py")).status_code == 404
        assert (await client.get("/", headers={"Accept": "text/html"})).headers["location"] == "/ui"
        assert (await client.get("/")).json()["ui"] == "/ui"


def test_vendored_libraries_match_the_checksums_and_licences_in_their_readme():
    vendor = STATIC_DIR / "vendor"
    readme = (vendor / "README.md").read_text()
    rows = re.findall(r"\| `([^`]+)` \|[^|]+\|[^|]*`([^`]+\.LICENSE)`[^|]*\|[^|]+\| `([0-9a-f]{64})` \|", readme)
    assert {name for name, _, _ in rows} == {p.name for p in vendor.iterdir() if p.suffix in (".js", ".mjs")}
    for name, licence, digest in rows:
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
        assert (vendor / licence).stat().st_size > 500, licence
