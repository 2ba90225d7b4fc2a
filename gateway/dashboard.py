"""The dashboard: ``GET /`` is ``frontend/index.html``; ``/ui/…`` are its static files.

The page is plain HTML, CSS and ES modules (no build step) and loads nothing from anywhere but
this gateway, which the Content-Security-Policy sent with it also enforces: a page that only
talks to its own origin cannot leak what it shows, and ``frame-ancestors 'none'`` keeps another
site from framing the control buttons (clickjacking). Every file is sent with
``Cache-Control: no-cache`` so an upgraded unigw never serves a stale script next to a new API.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope


def _frontend_dir() -> Path:
    """The dashboard's folder, found beside the ``gateway`` package that is running.

    An installed wheel holds it as the package data ``gateway/frontend/``; a checkout (run from
    source or installed editable) has it as the top-level ``frontend/`` beside ``gateway/``.
    Both are looked up from where ``gateway`` itself was imported, so a second checkout or an
    older install elsewhere on the path is never served instead. StaticFiles needs a real
    folder, which a package installed from a wheel is; from a zip import there is none, and
    ``GET /`` says the dashboard is not installed while the API works on.
    """
    package = resources.files("gateway")
    if not isinstance(package, Path):
        return Path(str(package)) / "frontend"  # not a folder: _index answers 404
    installed = package / "frontend"
    return installed if installed.is_dir() else package.parent / "frontend"


FRONTEND_DIR = _frontend_dir()

# Explicit types for what the page is made of: an ES module must be served as JavaScript, and
# the platform's mimetypes table (e.g. a Windows registry) is not always right about that.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

NO_CACHE = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


def _with_headers(response: Response, path: str) -> Response:
    """Add the no-cache and content-type headers every dashboard file is sent with."""
    response.headers.update(NO_CACHE)
    content_type = CONTENT_TYPES.get(os.path.splitext(path)[1].lower())
    if content_type is not None:
        response.headers["Content-Type"] = content_type
    return response


class _FrontendFiles(StaticFiles):
    """StaticFiles that sends the dashboard's headers with each file (and with 304s)."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        return _with_headers(response, os.fspath(full_path))


async def index(request: Request) -> Response:
    """``GET /``: the dashboard page itself, with its Content-Security-Policy."""
    index = FRONTEND_DIR / "index.html"
    if not index.is_file():
        return PlainTextResponse("dashboard not installed: frontend/index.html is missing", 404)
    response = _with_headers(FileResponse(index), str(index))
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def frontend_files() -> StaticFiles:
    """The dashboard's static files, mounted at ``/ui`` by :mod:`gateway.routes`."""
    return _FrontendFiles(directory=FRONTEND_DIR, check_dir=False)
