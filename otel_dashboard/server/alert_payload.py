"""What an alert looks like on the wire, and the webhook URLs it goes to (``docs/guardrails.md``).

Pure functions, no I/O: :func:`alert_payload` (the JSON body of one alert), :func:`check_webhook_url`
(what ``alert_webhooks=`` and ``serve --alert-webhook`` accept) and :func:`redact_url` (a URL as logs,
health and errors show it: a webhook's path may be a secret, Slack's is). The sender is
:mod:`otel_dashboard.server.alerts`.
"""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import quote, urlsplit

from otel_dashboard.model.events import DashboardEvent
from otel_dashboard.model.guardrails import BUDGET_EXCEEDED, LOOP_SUSPECTED

__all__ = ["ALERT_TYPES", "MAX_WEBHOOKS", "alert_payload", "base_url_of", "check_webhook_url", "redact_url"]

ALERT_TYPES = frozenset({BUDGET_EXCEEDED, LOOP_SUSPECTED})
"""The ``error_type`` values of the ``error_occurred`` events that are sent as alerts."""
MAX_WEBHOOKS = 20
"""The most webhooks one server posts to."""

_MAX_URL_CHARS = 2048
_MAX_TEXT_CHARS = 3000  # Slack shows up to 40,000; a one-line alert needs far less
_EMOJI = {BUDGET_EXCEEDED: ":rotating_light:", LOOP_SUSPECTED: ":warning:"}


def redact_url(url: str) -> str:
    """``url`` without its path, query and credentials (``https://hooks.slack.com/***``): what logs show."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "<invalid url>"
    host = f"[{host}]" if ":" in host else host
    rest = "/***" if (parts.path not in ("", "/") or parts.query or parts.fragment or parts.username) else ""
    return f"{parts.scheme}://{host}{port}{rest}"


def check_webhook_url(url: Any) -> str:
    """``url`` when it is an absolute ``http://`` or ``https://`` URL with a host.

    Raises:
        ValueError: otherwise; the message shows the URL redacted (it may hold a secret).
    """
    if not isinstance(url, str):
        raise ValueError(f"an alert webhook must be a URL string, got {type(url).__name__}")
    if not url or len(url) > _MAX_URL_CHARS or any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError(f"an alert webhook must be a URL of 1 to {_MAX_URL_CHARS} characters without "
                         f"spaces or control characters, got {redact_url(url)!r}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        raise ValueError(f"an alert webhook must be a valid URL, got {redact_url(url)!r}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"an alert webhook must be an http:// or https:// URL with a host, "
                         f"got {redact_url(url)!r}")
    return url


def base_url_of(host: str, port: int, *, tls: bool) -> str:
    """How users reach a server bound to ``host:port``: this machine's name for a wildcard bind."""
    if host in ("0.0.0.0", "::", "[::]", ""):
        host = socket.gethostname() or "localhost"
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{'https' if tls else 'http'}://{host}:{port}"


def _slack_escape(text: str) -> str:
    # Slack reads <...> as links and mentions (<!channel>): text from spans must not ping anyone.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def alert_payload(event: DashboardEvent, *, base_url: str | None = None) -> dict[str, Any]:
    """The JSON body posted for one alert event (``docs/guardrails.md`` documents it).

    Args:
        event: an accepted ``error_occurred`` whose ``data.error_type`` is in :data:`ALERT_TYPES`.
        base_url: how users reach the dashboard (``http://host:port``); None: ``dashboard_url`` is null.
    """
    data = event.data
    kind = str(data.get("error_type"))
    message = " ".join(str(data.get("error_message") or kind).split())  # one line
    trace_id = event.trace_id or data.get("trace_id")
    run_id = data.get("run_id")
    link = None
    if base_url is not None:
        link = base_url.rstrip("/") + "/dashboard"
        if isinstance(trace_id, str) and trace_id:
            link += "#trace=" + quote(trace_id, safe="")
            if isinstance(run_id, str) and len(run_id) == 16:  # a run's id is its span id
                link += "&span=" + quote(run_id, safe="")
    details = data.get("budget") if kind == BUDGET_EXCEEDED else data.get("loop")
    text = f"{_EMOJI.get(kind, ':bell:')} {kind}: {message}"
    if len(text) > _MAX_TEXT_CHARS:
        text = text[: _MAX_TEXT_CHARS - 1] + "…"
    return {
        "text": _slack_escape(text),
        "alert": {
            "type": kind,
            "severity": event.severity.value,
            "message": message,
            "agent_name": data.get("agent_name"),
            "run_id": run_id,
            "trace_id": trace_id,
            "service_name": data.get("service_name"),
            "timestamp": event.timestamp,
            "seq": event.seq,
            "details": details if isinstance(details, dict) else None,
            "dashboard_url": link,
        },
    }
