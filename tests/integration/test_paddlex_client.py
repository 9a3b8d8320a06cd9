"""PaddleOCR-VL's official client snippet, run unchanged against the real server, and a `file` given as a URL.

tests/fixtures/paddleocr_vl_client.py is the Python example of "Multilingual Service Invocation Example" in
PaddleOCR's docs/version3.x/pipeline_usage/PaddleOCR-VL.en.md (PaddlePaddle/PaddleOCR@00a6c1c, Apache-2.0),
byte for byte. It posts ./demo.jpg to http://localhost:8080/layout-parsing, PaddleX's default port, so the server
listens there (`make run PORT=8080` for people); only where 8080 is taken on this machine is the port in the URL
replaced, the one edit its docs ask of every reader.
"""

from __future__ import annotations

import functools
import http.server
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
from PIL import Image
from rapidfuzz import fuzz

from tests import pdfgen
from tests.paddlex_schemas import validate_failure, validate_success
from tests.server_process import free_port

SNIPPET = Path(__file__).resolve().parents[1] / "fixtures" / "paddleocr_vl_client.py"
PADDLEX_PORT = 8080


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_the_official_client_snippet_runs_unchanged(serve, tmp_path):
    port = PADDLEX_PORT if port_free(PADDLEX_PORT) else free_port()
    server = serve(ready=False, port=port)
    server.port, server.url = port, f"http://127.0.0.1:{port}"
    server.wait_ready()
    client_dir = tmp_path / "client"
    client_dir.mkdir()
    pdfgen.scan_image(dpi=200).convert("RGB").save(client_dir / "demo.jpg", quality=92, dpi=(200, 200))
    snippet = SNIPPET.read_text()
    if port != PADDLEX_PORT:
        snippet = snippet.replace(f"localhost:{PADDLEX_PORT}", f"localhost:{port}")
    script = client_dir / "client.py"
    script.write_text(snippet)
    run = subprocess.run([sys.executable, str(script)], cwd=client_dir, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr + server.log()[-3000:]
    assert "Markdown document saved at markdown_0/doc.md" in run.stdout
    markdown = (client_dir / "markdown_0" / "doc.md").read_text()
    assert fuzz.partial_ratio("\n".join(pdfgen.SCAN_LINES), markdown) > 85, markdown
    with Image.open(client_dir / "layout_det_res_0.jpg") as layout:  # outputImages, written by the snippet
        # the page as sent (1700x2200), shrunk to PaddleX's 2000-pixel bound for output images
        assert max(layout.size) == 2000 and abs(layout.size[0] / layout.size[1] - 1700 / 2200) < 0.01


def test_a_file_url_on_an_allowed_host_is_fetched(serve, tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    pdfgen.text_pdf(files / "report.pdf", pages=2)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(files))
    origin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    try:
        host = f"127.0.0.1:{origin.server_address[1]}"
        server = serve(file_url_allowed_hosts=host)
        fetched = httpx.post(f"{server.url}/layout-parsing", timeout=300,
                             json={"file": f"http://{host}/report.pdf", "visualize": False})
        assert fetched.status_code == 200, fetched.text
        body = fetched.json()
        validate_success(body)
        assert body["result"]["dataInfo"]["numPages"] == 2
        assert pdfgen.TITLE in body["result"]["layoutParsingResults"][0]["markdown"]["text"]
        missing = httpx.post(f"{server.url}/layout-parsing", json={"file": f"http://{host}/nothing.pdf"}, timeout=60)
        assert missing.status_code == 422 and "answered HTTP 404" in validate_failure(missing.json()).errorMsg
        elsewhere = httpx.post(f"{server.url}/layout-parsing", timeout=60,
                               json={"file": "http://localhost:1/a.pdf"})
        assert elsewhere.status_code == 422 and "not in FILE_URL_ALLOWED_HOSTS" in elsewhere.json()["errorMsg"]
    finally:
        origin.shutdown()
        origin.server_close()
