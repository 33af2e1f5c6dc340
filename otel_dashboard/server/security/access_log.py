"""aiohttp's access log without secrets."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.web_log import AccessLogger

from otel_dashboard.server.security.guard import TOKEN_PARAMETER


class RedactingAccessLogger(AccessLogger):
    """aiohttp's access logger, with the value of any ``token`` query parameter shown as ``***``.

    Pass it to the runner: ``web.AppRunner(app, access_log_class=RedactingAccessLogger)``.
    """

    def log(self, request: Any, response: web.StreamResponse, time: float) -> None:
        url = request.rel_url
        if TOKEN_PARAMETER in url.query:
            try:
                shown = [(k, "***" if k == TOKEN_PARAMETER else v) for k, v in url.query.items()]
                request = request.clone(rel_url=url.with_query(shown))
            except Exception:
                request = request.clone(rel_url=url.with_query(None))
        super().log(request, response, time)
