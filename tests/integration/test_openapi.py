"""The OpenAPI document is the truth about the real server: schemathesis (pinned in requirements-dev.txt) drives
every operation with bounded, deterministic examples and fails on any 5xx or on a response the document does
not describe (status, content type, headers, body schema, Allow on 405)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.server_process import ServerProcess

MAX_DPI = 300
EXAMPLES_PER_OPERATION = 25
# positive_data_acceptance: schema-valid bytes are rarely a PDF, so the server's 415/422 are right, not a bug.
# use_after_free: DELETE cancels an active job (documented) and the job stays readable as "cancelled".
EXCLUDED_CHECKS = "positive_data_acceptance,use_after_free"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    server = ServerProcess(tmp_path_factory.mktemp("openapi"), {"MAX_DPI": str(MAX_DPI), "LOG_LEVEL": "WARNING",
                                                                 "MAX_UPLOAD_MB": "5"}).start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_document_lists_the_statuses_and_bounds_the_server_enforces(server):
    document = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    paths = document["paths"]
    for method in ("get", "delete"):
        assert "404" in paths["/jobs/{job_id}"][method]["responses"]
    for status in ("404", "409"):
        assert status in paths["/jobs/{job_id}/result"]["get"]["responses"]
    for status in ("413", "415", "422", "503", "507"):
        assert status in paths["/jobs"]["post"]["responses"]
        assert status in paths["/ocr/pdf"]["post"]["responses"]
    dpi = next(p for p in paths["/ocr/pdf"]["post"]["parameters"] if p["name"] == "dpi")["schema"]
    assert {key: dpi[key] for key in ("type", "minimum", "maximum")} == {"type": "integer", "minimum": 36,
                                                                        "maximum": MAX_DPI}
    form = paths["/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert form["dpi"]["maximum"] == MAX_DPI and form["mode"]["enum"] == ["auto", "text", "ocr", "vl"]
    error = paths["/jobs/{job_id}"]["get"]["responses"]["404"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/ErrorBody"}


@pytest.mark.parametrize(("method", "path", "allow"), [("OPTIONS", "/jobs", "GET, POST"),
                                                       ("PUT", "/jobs/abcdefgh", "DELETE, GET"),
                                                       ("GET", "/ocr/pdf", "POST")])
def test_405_names_every_method_the_path_serves(server, method, path, allow):
    response = httpx.request(method, f"{server.url}{path}", timeout=10)
    assert response.status_code == 405 and response.headers["Allow"] == allow
    assert response.json()["error"]["type"] == "method_not_allowed"


def test_schemathesis_finds_no_server_error_and_no_undocumented_response(server, tmp_path):
    st = Path(sys.executable).with_name("st")
    command = [str(st), "run", f"{server.url}/openapi.json", "--checks", "all", "--exclude-checks",
               EXCLUDED_CHECKS, "--max-examples", str(EXAMPLES_PER_OPERATION), "--generation-deterministic",
               "--request-timeout", "60", "--workers", "1", "--report-dir", str(tmp_path)]
    env = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""}
    done = subprocess.run(command, capture_output=True, text=True, timeout=540, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:] + server.log()[-4000:]
    assert "Test cases:" in done.stdout and "generated" in done.stdout  # it did run cases
    assert "unhandled error" not in server.log()  # what the request middleware logs for every 500
