"""The dashboard page and its static assets (``/``, ``/dashboard``, ``/static/{path}``)."""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

import otel_dashboard
from otel_dashboard.server.http_api import json_error

__all__ = ["HTML_KEY", "STATIC_KEY", "dashboard_page", "default_web_dir", "index", "static_file"]

logger = logging.getLogger(__name__)

HTML_KEY = web.AppKey("otel_dashboard_html", Path)
STATIC_KEY = web.AppKey("otel_dashboard_static", Path)


def default_web_dir() -> Path:
    """The package's ``web/`` directory (``_web`` inside a wheel)."""
    package_dir = Path(otel_dashboard.__file__).resolve().parent
    wheel_dir = package_dir / "_web"
    if wheel_dir.is_dir():
        return wheel_dir
    return package_dir.parent / "web"


async def index(request: web.Request) -> web.StreamResponse:
    """``GET /``: redirect to the page."""
    raise web.HTTPFound("/dashboard")


async def dashboard_page(request: web.Request) -> web.StreamResponse:
    """``GET /dashboard``: the page."""
    path = request.app[HTML_KEY]
    if not path.is_file():
        logger.error("the dashboard page %s disappeared", path)
        return json_error(404, "dashboard page not found")
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})


async def static_file(request: web.Request) -> web.StreamResponse:
    """``GET /static/{path}``: an asset of the page."""
    # Our own static handler (not add_static) so that a miss is a JSON 404 like every other one.
    root = request.app[STATIC_KEY]
    relative = request.match_info["path"]
    if not relative or "\x00" in relative:
        return json_error(404, "not found")
    try:
        path = (root / relative).resolve(strict=True)
    except (OSError, RuntimeError):
        return json_error(404, "not found")
    if not path.is_relative_to(root) or not path.is_file():
        return json_error(404, "not found")
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})
