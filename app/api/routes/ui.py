"""The web UI: GET /ui (one page), its static files under /ui/static/, and GET / pointing at it.

Plain HTML, CSS and JavaScript modules shipped inside the package (app/ui/static), so the page works offline with
no build step; the two vendored libraries are listed with their versions and licences in
app/ui/static/vendor/README.md. The page talks to the public API only (/jobs, /jobs/{id}/events, /result,
/pages/{n}.png), sending the API key the user typed as a header. These paths are open without a key (see
app/api/auth.py): they carry no data.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parents[2] / "ui" / "static"
UI_PATH = "/ui"

# The page renders text taken from documents: scripts, styles, images and connections come from this origin only
# (blob: for page images and downloads fetched with the API key), so markup slipping through can run nothing.
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_HEADERS = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}

# Starlette's StaticFiles does the path checks (no escaping the directory, no symlinks out), ETags and 304s.
_static = StaticFiles(directory=STATIC_DIR)


@router.get("/")
async def root(request: Request) -> Response:
    """Browsers go to the UI; other clients get where things are."""
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse(UI_PATH, status_code=307)
    return JSONResponse({"ui": UI_PATH, "docs": "/docs", "openapi": "/openapi.json", "health": "/health"})


@router.get(UI_PATH)
async def ui_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8",
                        headers={**_HEADERS, "Cache-Control": "no-cache"})


@router.get(UI_PATH + "/static/{path:path}")
async def ui_static(path: str, request: Request) -> Response:
    response = await _static.get_response(path, request.scope)
    response.headers.update({**_HEADERS, "Cache-Control": "no-cache"})
    return response
