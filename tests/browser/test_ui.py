"""The web UI in a real browser (Debian's headless Chromium) against the real server, as a person uses it.

Pick or drop a multi-page PDF, watch the progress reach the end, see every block's box over pages 1 and 2 where the
result puts it, hover for its text, select it to scroll the Markdown to it, download the JSON and Markdown and
get what the API returns; the same behind an API key; a bad file shows the API's error message; cancel stops a
running job. The result view is saved as a screenshot under output/browser/ (path printed in the test log).
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests import pdfgen
from tests.browser.support import skip_without_browser
from tests.server_process import ROOT, ServerProcess

skip_without_browser()

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402 - after the skip: optional here
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

API_KEY = "browser-test-key"
SCREENSHOT = ROOT / "output" / "browser" / "ui-result.png"
WAIT_S = 120.0


@pytest.fixture(scope="module")
def open_server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory()


@pytest.fixture(scope="module")
def key_server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(api_key=API_KEY)


def by_id(driver: Any, test_id: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="{test_id}"]')


def wait(driver: Any, condition: Callable[[Any], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    return WebDriverWait(driver, timeout_s, poll_frequency=0.1).until(condition, message=f"waiting for {what}")


def watch_progress(driver: Any) -> None:
    """Record every value the progress bar shows, from now on, in `window.progressSeen`."""
    driver.execute_script("""
        window.progressSeen = [];
        const bar = document.querySelector('[data-testid="progress"]');
        new MutationObserver(() => window.progressSeen.push(Number(bar.getAttribute('aria-valuenow'))))
            .observe(bar, {attributes: true, attributeFilter: ['aria-valuenow']});
    """)


def submit(driver: Any, pdf: Path, mode: str | None = None) -> None:
    by_id(driver, "file-input").send_keys(str(pdf))
    if mode:
        Select(driver.find_element(By.ID, "mode")).select_by_value(mode)
    by_id(driver, "submit").click()


def drop_file(driver: Any, pdf: Path) -> None:
    """Drop `pdf` on the drop zone as a drag from the desktop would (a DataTransfer carrying the file)."""
    driver.execute_script("""
        const [name, b64] = arguments;
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, {type: "application/pdf"}));
        document.getElementById("drop-zone").dispatchEvent(
            new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    """, pdf.name, base64.b64encode(pdf.read_bytes()).decode())


def wait_for_job_end(driver: Any, status: str = "succeeded") -> str:
    """Waits for the progress bar's final state; returns the job id the page shows."""
    bar = by_id(driver, "progress")
    wait(driver, lambda d: bar.get_attribute("data-status") in ("succeeded", "failed", "cancelled"), "the job's end")
    assert bar.get_attribute("data-status") == status, by_id(driver, "progress-text").text
    return driver.execute_script("return location.hash.match(/job=([A-Za-z0-9_-]+)/)[1]")


def wait_page_shown(driver: Any, page: int) -> None:
    image = by_id(driver, "page-image")

    def shown(d: Any) -> bool:
        return (image.get_attribute("data-page") == str(page) and image.get_attribute("data-loaded") == "true"
                and d.execute_script("return arguments[0].naturalWidth", image) > 0)

    wait(driver, shown, f"page {page}'s image")


def check_boxes_match(driver: Any, page: dict[str, Any]) -> list[Any]:
    """Every block of `page` has one box, in reading order, with its type, where its bbox puts it on the image."""
    boxes = driver.find_elements(By.CSS_SELECTOR, '[data-testid="block-box"]')
    blocks = sorted(page["blocks"], key=lambda b: b["order"])
    assert [b.get_attribute("data-type") for b in boxes] == [b["type"] for b in blocks]
    image = by_id(driver, "page-image").rect
    for box, block in zip(boxes, blocks, strict=True):
        rect = box.rect
        x0, y0, x1, y1 = block["bbox"]
        assert abs((rect["x"] - image["x"]) / image["width"] - x0 / page["width"]) < 0.01, block
        assert abs((rect["y"] - image["y"]) / image["height"] - y0 / page["height"]) < 0.01, block
        assert abs(rect["width"] / image["width"] - (x1 - x0) / page["width"]) < 0.01, block
    return boxes


def downloaded(driver: Any, test_id: str) -> bytes:
    """Click a download link and return the file the browser saved under the link's file name."""
    link = by_id(driver, test_id)
    target = driver.download_dir / link.get_attribute("download")
    assert not target.exists()
    link.click()
    # Chromium writes to a temporary name and renames when complete: the final name means the whole file.
    wait(driver, lambda d: target.exists(), f"the {test_id} file {target.name}", timeout_s=30)
    return target.read_bytes()


def api(server: ServerProcess, path: str, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx.get(server.url + path, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response


def test_a_dropped_pdf_is_converted_shown_with_its_boxes_and_downloaded(browser, open_server, tmp_path):
    pdf = pdfgen.text_pdf(tmp_path / "report.pdf", pages=3)
    browser.get(f"{open_server.url}/ui")
    watch_progress(browser)
    submit(browser, pdf)
    job_id = wait_for_job_end(browser)

    bar = by_id(browser, "progress")
    assert bar.get_attribute("aria-valuenow") == bar.get_attribute("aria-valuemax") == "3"
    seen = browser.execute_script("return window.progressSeen")
    assert seen and seen == sorted(seen) and seen[-1] == 3, seen
    states = browser.find_elements(By.CSS_SELECTOR, "#page-states li")
    assert [(s.text, s.get_attribute("data-state")) for s in states] == [("1", "done"), ("2", "done"), ("3", "done")]

    result = api(open_server, f"/jobs/{job_id}/result").json()
    wait_page_shown(browser, 1)
    boxes = check_boxes_match(browser, result["pages"][0])

    # Hover: the block's type and text appear beside it.
    blocks = sorted(result["pages"][0]["blocks"], key=lambda b: b["order"])
    paragraph = next(i for i, b in enumerate(blocks) if b["type"] == "text" and len(b["text"]) > 60)
    ActionChains(browser).move_to_element(boxes[paragraph]).perform()
    tooltip = by_id(browser, "tooltip")
    wait(browser, lambda d: tooltip.is_displayed(), "the tooltip")
    assert tooltip.text.split("\n", 1) == ["text", blocks[paragraph]["text"]]

    # Select a block lower down: the Markdown pane scrolls to the paragraph that holds its text.
    last = max(i for i, b in enumerate(blocks) if b["type"] == "text")
    boxes[last].click()
    markdown = by_id(browser, "markdown-view")
    chosen = markdown.find_element(By.CSS_SELECTOR, ".selected")
    assert blocks[last]["text"][:40] in chosen.text
    pane, target = markdown.rect, chosen.rect
    assert pane["y"] <= target["y"] and target["y"] + target["height"] <= pane["y"] + pane["height"] + 1
    assert "Annual Widget Report" in markdown.find_element(By.TAG_NAME, "h1").text
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    ActionChains(browser).move_to_element(boxes[paragraph]).perform()
    browser.save_screenshot(str(SCREENSHOT))
    print(f"result view screenshot: {SCREENSHOT}")

    # Page 2, by keyboard: focus the next-page button and press Enter.
    by_id(browser, "next-page").send_keys("\n")
    wait_page_shown(browser, 2)
    check_boxes_match(browser, result["pages"][1])
    page2_text = next(b["text"] for b in result["pages"][1]["blocks"] if b["type"] == "text")
    assert page2_text[:40] in by_id(browser, "markdown-view").text

    assert json.loads(downloaded(browser, "download-json")) == result
    assert downloaded(browser, "download-md") == api(open_server, f"/jobs/{job_id}/result?format=markdown").content

    # The job is listed among the recent jobs.
    recent = by_id(browser, "recent-jobs").text
    assert "report.pdf" in recent and "succeeded · 3/3" in recent


def test_behind_an_api_key_the_page_asks_for_the_key_and_uses_it(browser, key_server, tmp_path):
    pdf = pdfgen.text_pdf(tmp_path / "keyed.pdf", pages=2)
    browser.get(f"{key_server.url}/ui")
    dialog = browser.find_element(By.ID, "key-dialog")
    wait(browser, lambda d: dialog.get_attribute("open") is not None, "the API key dialog")

    by_id(browser, "key-input").send_keys("not-the-key")
    by_id(browser, "key-save").click()
    wait(browser, lambda d: "API key" in d.find_element(By.ID, "key-message").text, "the refusal")
    assert dialog.get_attribute("open") is not None

    by_id(browser, "key-input").clear()
    by_id(browser, "key-input").send_keys(API_KEY)
    by_id(browser, "key-save").click()
    wait(browser, lambda d: dialog.get_attribute("open") is None, "the dialog to close")

    drop_file(browser, pdf)
    assert by_id(browser, "file-input").get_attribute("value").endswith("keyed.pdf")
    by_id(browser, "submit").click()
    job_id = wait_for_job_end(browser)
    result = api(key_server, f"/jobs/{job_id}/result", key=API_KEY).json()
    for number in (1, 2):
        if number == 2:
            by_id(browser, "next-page").click()
        wait_page_shown(browser, number)
        check_boxes_match(browser, result["pages"][number - 1])
    assert json.loads(downloaded(browser, "download-json")) == result
    assert API_KEY not in key_server.log()


def enter_key(driver: Any) -> None:
    dialog = driver.find_element(By.ID, "key-dialog")
    wait(driver, lambda d: dialog.get_attribute("open") is not None, "the API key dialog")
    by_id(driver, "key-input").send_keys(API_KEY)
    by_id(driver, "key-save").click()
    wait(driver, lambda d: dialog.get_attribute("open") is None, "the dialog to close")


@pytest.mark.parametrize("keyed", [False, True], ids=["open", "api-key"])
def test_the_markdown_shows_the_figures_crops(browser, open_server, key_server, tmp_path, keyed):
    """The crops the Markdown links (`images/p1-fig1.png`) are served behind the key: the page fetches them with it
    and shows them, each the very image the API serves; the key goes into no URL."""
    server, key = (key_server, API_KEY) if keyed else (open_server, None)
    pdf = pdfgen.figure_pdf(tmp_path / "figures.pdf", pages=2)
    browser.get(f"{server.url}/ui")
    if keyed:
        enter_key(browser)
    submit(browser, pdf)
    job_id = wait_for_job_end(browser)
    result = api(server, f"/jobs/{job_id}/result", key=key).json()
    for number, name in ((1, "p1-fig1.png"), (2, "p2-fig1.jpg")):
        if number == 2:
            by_id(browser, "next-page").click()
        wait_page_shown(browser, number)
        assert f"](images/{name})" in result["pages"][number - 1]["markdown"]
        caption = pdfgen.FIGURE_CAPTIONS[number - 1]
        figure = by_id(browser, "markdown-view").find_element(By.CSS_SELECTOR, f'img[alt="{caption}"]')
        wait(browser, lambda d, f=figure: d.execute_script("return arguments[0].complete", f)
             and d.execute_script("return arguments[0].naturalWidth", f) > 0, f"the crop {name}", timeout_s=30)
        served = Image.open(io.BytesIO(api(server, f"/jobs/{job_id}/images/{name}", key=key).content))
        shown = browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", figure)
        assert tuple(shown) == served.size
        assert figure.get_attribute("src").startswith("blob:") and figure.get_attribute("data-loaded") == "true"
    log = server.log()
    assert "/ui/images/" not in log  # the relative link itself was never requested
    assert API_KEY not in log


def test_a_bad_file_shows_the_apis_error_message(browser, open_server, tmp_path):
    bad = pdfgen.random_bytes(tmp_path / "notes.pdf")
    expected = httpx.post(f"{open_server.url}/jobs", files={"file": ("notes.pdf", bad.read_bytes())}, timeout=30)
    assert expected.status_code == 415
    browser.get(f"{open_server.url}/ui")
    submit(browser, bad)
    error = by_id(browser, "error")
    wait(browser, lambda d: error.is_displayed() and error.text, "the error message")
    assert error.text == expected.json()["error"]["message"]
    assert "Traceback" not in browser.page_source
    assert httpx.get(f"{open_server.url}/readyz", timeout=10).status_code == 200


def test_cancel_stops_a_running_job(browser, open_server, tmp_path):
    pdf = pdfgen.text_pdf(tmp_path / "long.pdf", pages=40)
    browser.get(f"{open_server.url}/ui")
    submit(browser, pdf, mode="ocr")  # OCR on every page: slow enough to cancel midway
    cancel = by_id(browser, "cancel")
    wait(browser, lambda d: cancel.is_displayed(), "the cancel button")
    started = time.monotonic()
    cancel.click()
    wait_for_job_end(browser, status="cancelled")
    assert time.monotonic() - started < 60
    assert int(by_id(browser, "progress").get_attribute("aria-valuenow")) < 40
    assert "cancelled" in by_id(browser, "progress-text").text
