"""The dashboard server's options: their defaults and their validation.

:class:`ServerOptions` is built once per application (by :func:`make_options`, from the keyword
arguments of :class:`~otel_dashboard.server.app.DashboardWebSocketServer` and
:func:`~otel_dashboard.server.app.create_app`) and read by every part of the server: the broadcaster,
the WebSocket handler, the HTTP handlers and the timers. An invalid value raises ``ValueError``
naming the option; an unknown option raises ``TypeError``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, overload

from aiohttp import web

from otel_dashboard.model.prices import PriceBook
from otel_dashboard.server.alert_payload import MAX_WEBHOOKS, check_webhook_url
from otel_dashboard.server.broker.config import BrokerConfig
from otel_dashboard.server.security.config import SecurityConfig

__all__ = [
    "DEFAULT_GRPC_PORT",
    "OPTIONS_KEY",
    "OPTION_DEFAULTS",
    "SERVER_VERSION",
    "SERVICE",
    "ServerOptions",
    "check_int",
    "check_seconds",
    "make_options",
]

OPTION_DEFAULTS: dict[str, Any] = {
    "static_dir": None,
    "client_queue_size": 10_000,
    "send_timeout_seconds": 10.0,
    "heartbeat_seconds": 20.0,
    "max_message_bytes": 64 * 1024,
    "health_interval_seconds": 5.0,
    "metrics_interval_seconds": 1.0,
    "overflow_window_seconds": 30.0,
    "stall_threshold_seconds": None,
    "compress": False,
    "max_body_bytes": 16 * 1024 * 1024,
    "max_client_queue_bytes": 8 * 1024 * 1024,
    "max_total_queue_bytes": 256 * 1024 * 1024,
    "security": None,
    "broker": None,
    "prices": None,
    "max_scanned_rows": 100_000,
    "max_response_bytes": 4 * 1024 * 1024,
    "alert_webhooks": (),
    "alert_timeout_seconds": 5.0,
}
"""Defaults of the options passed as keyword arguments (``**options``)."""

DEFAULT_GRPC_PORT = 4317
"""The OTLP/gRPC port (the OpenTelemetry default), what ``serve`` and ``demo`` listen on unless told.
Here, not in :mod:`~otel_dashboard.server.grpc_receiver`: reading it must not import grpc (~9 MB)."""

_MAX_BODY_BYTES_LIMIT = 1024 * 1024 * 1024
# Bounds of the two queue budgets: at least one largest frame (1 MiB) and one largest client message.
_MIN_QUEUE_BYTES = 1024 * 1024
_MAX_QUEUE_BYTES = 64 * 1024 * 1024 * 1024


def check_int(name: str, value: Any, low: int, high: int) -> int:
    """``value`` when it is an integer in ``[low, high]``.

    Raises:
        ValueError: otherwise, naming ``name``.
    """
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer between {low} and {high}, got {value!r}")
    return value


@overload
def check_seconds(name: str, value: Any, *, allow_none: Literal[False] = False) -> float: ...
@overload
def check_seconds(name: str, value: Any, *, allow_none: bool) -> float | None: ...
def check_seconds(name: str, value: Any, *, allow_none: bool = False) -> float | None:
    """``value`` as float seconds when it is a number in ``(0, 86400]`` (or None when allowed).

    Raises:
        ValueError: otherwise, naming ``name``.
    """
    if value is None and allow_none:
        return None
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or value != value
        or not 0 < value <= 86_400
    ):
        extra = " or None" if allow_none else ""
        raise ValueError(f"{name} must be a number of seconds > 0 (at most 86400){extra}, got {value!r}")
    return float(value)


class ServerOptions:
    """The server's validated options (shared by :func:`create_app` and the server)."""

    __slots__ = (
        "alert_timeout_seconds",
        "alert_webhooks",
        "broker",
        "client_queue_size",
        "compress",
        "dashboard_html_path",
        "health_interval_seconds",
        "heartbeat_seconds",
        "history_size",
        "max_body_bytes",
        "max_client_queue_bytes",
        "max_message_bytes",
        "max_response_bytes",
        "max_scanned_rows",
        "max_total_queue_bytes",
        "metrics_interval_seconds",
        "name",
        "overflow_window_seconds",
        "prices",
        "security",
        "send_timeout_seconds",
        "stall_threshold_seconds",
        "static_dir",
    )

    def __init__(
        self,
        *,
        dashboard_html_path: str | os.PathLike[str] | None,
        static_dir: str | os.PathLike[str] | None,
        history_size: int,
        name: str | None,
        client_queue_size: int,
        send_timeout_seconds: float,
        heartbeat_seconds: float | None,
        max_message_bytes: int,
        health_interval_seconds: float | None,
        metrics_interval_seconds: float | None,
        overflow_window_seconds: float,
        stall_threshold_seconds: float | None,
        compress: bool,
        max_body_bytes: int,
        max_client_queue_bytes: int = OPTION_DEFAULTS["max_client_queue_bytes"],
        max_total_queue_bytes: int = OPTION_DEFAULTS["max_total_queue_bytes"],
        security: SecurityConfig | None = None,
        broker: BrokerConfig | str | None = None,
        prices: PriceBook | None = None,
        max_scanned_rows: int = 100_000,
        max_response_bytes: int = 4 * 1024 * 1024,
        alert_webhooks: Sequence[str] = (),
        alert_timeout_seconds: float = 5.0,
    ) -> None:
        self.history_size = check_int("history_size", history_size, 0, 100_000)
        if name is not None and (not isinstance(name, str) or len(name) > 200):
            raise ValueError(f"name must be a string of at most 200 characters or None, got {name!r}")
        self.name = name or None
        self.client_queue_size = check_int("client_queue_size", client_queue_size, 1, 10_000_000)
        self.send_timeout_seconds = check_seconds("send_timeout_seconds", send_timeout_seconds)
        self.heartbeat_seconds = check_seconds("heartbeat_seconds", heartbeat_seconds, allow_none=True)
        self.max_message_bytes = check_int("max_message_bytes", max_message_bytes, 64, 16 * 1024 * 1024)
        self.health_interval_seconds = check_seconds(
            "health_interval_seconds", health_interval_seconds, allow_none=True
        )
        self.metrics_interval_seconds = check_seconds(
            "metrics_interval_seconds", metrics_interval_seconds, allow_none=True
        )
        self.overflow_window_seconds = check_seconds("overflow_window_seconds", overflow_window_seconds)
        self.stall_threshold_seconds = check_seconds(
            "stall_threshold_seconds", stall_threshold_seconds, allow_none=True
        )
        if not isinstance(compress, bool):
            raise ValueError(f"compress must be True or False, got {compress!r}")
        self.compress = compress
        self.max_body_bytes = check_int("max_body_bytes", max_body_bytes, 1024, _MAX_BODY_BYTES_LIMIT)
        # Bytes queued for one WebSocket client, and for all of them (the slow-client policy closes
        # a client over either with 1013; see broadcast/slow.py).
        self.max_client_queue_bytes = check_int(
            "max_client_queue_bytes", max_client_queue_bytes, _MIN_QUEUE_BYTES, _MAX_QUEUE_BYTES)
        self.max_total_queue_bytes = check_int(
            "max_total_queue_bytes", max_total_queue_bytes, _MIN_QUEUE_BYTES, _MAX_QUEUE_BYTES)
        if security is None:
            # No configuration given: the secure defaults, with the two sizes the options name.
            security = SecurityConfig(max_body_bytes=self.max_body_bytes,
                                      max_ws_message_bytes=self.max_message_bytes)
        elif not isinstance(security, SecurityConfig):
            raise ValueError(f"security must be a SecurityConfig or None, got {type(security).__name__}")
        self.security = security
        for pname, pvalue in (("dashboard_html_path", dashboard_html_path), ("static_dir", static_dir)):
            if pvalue is not None and not isinstance(pvalue, (str, os.PathLike)):
                raise ValueError(f"{pname} must be a path or None, got {pvalue!r}")
        self.dashboard_html_path = Path(dashboard_html_path) if dashboard_html_path is not None else None
        self.static_dir = Path(static_dir) if static_dir is not None else None
        if isinstance(broker, str):
            broker = BrokerConfig(broker)
        elif broker is not None and not isinstance(broker, BrokerConfig):
            raise ValueError(
                f"broker must be a redis:// URL, a BrokerConfig or None, got {type(broker).__name__}")
        self.broker = broker
        if prices is not None and not isinstance(prices, PriceBook):
            raise ValueError(f"prices must be a PriceBook or None, got {type(prices).__name__}")
        # None: the process's shared book (default_price_book()), chosen by whoever prices the spans.
        self.prices = prices
        # The history's bounds per request (GET /api/events) and per resume message: stored events
        # walked, and bytes of events answered (docs/api.md, docs/server.md).
        self.max_scanned_rows = check_int("max_scanned_rows", max_scanned_rows, 1, 1_000_000_000)
        self.max_response_bytes = check_int("max_response_bytes", max_response_bytes, 64 * 1024,
                                            _MAX_BODY_BYTES_LIMIT)
        # Where BudgetExceeded and LoopSuspected are POSTed (server/alerts.py); a URL may hold a secret,
        # so an error shows it redacted.
        if isinstance(alert_webhooks, str) or not isinstance(alert_webhooks, (list, tuple)):
            raise ValueError(
                f"alert_webhooks must be a list of http(s) URLs, got {type(alert_webhooks).__name__}")
        if len(alert_webhooks) > MAX_WEBHOOKS:
            raise ValueError(f"alert_webhooks: at most {MAX_WEBHOOKS} URLs, got {len(alert_webhooks)}")
        webhooks = tuple(check_webhook_url(url) for url in alert_webhooks)
        if len(set(webhooks)) != len(webhooks):
            raise ValueError("alert_webhooks: a URL is given twice (each alert would be posted twice)")
        self.alert_webhooks = webhooks
        self.alert_timeout_seconds = check_seconds("alert_timeout_seconds", alert_timeout_seconds)


def make_options(
    dashboard_html_path: Any, history_size: Any, name: Any, options: dict[str, Any]
) -> ServerOptions:
    """Validated options from the server's arguments and its ``**options`` keywords.

    Raises:
        TypeError: an unknown option.
        ValueError: an invalid value, named in the message.
    """
    unknown = set(options) - set(OPTION_DEFAULTS)
    if unknown:
        raise TypeError(f"unexpected option(s): {', '.join(sorted(unknown))}")
    merged = {**OPTION_DEFAULTS, **options}
    security = options.get("security")
    if isinstance(security, SecurityConfig):
        # One source of truth for the two sizes: the SecurityConfig. An option given as well must agree.
        for option, field in _SIZES_FROM_SECURITY:
            value = getattr(security, field)
            if option in options and options[option] != value:
                raise ValueError(f"{option}={options[option]!r} disagrees with security.{field}={value!r}: "
                                 f"set it in one place (the SecurityConfig)")
            merged[option] = value
    return ServerOptions(
        dashboard_html_path=dashboard_html_path, history_size=history_size, name=name, **merged,
    )


# Server options that a SecurityConfig decides when one is given: (option, SecurityConfig field).
_SIZES_FROM_SECURITY = (("max_body_bytes", "max_body_bytes"), ("max_message_bytes", "max_ws_message_bytes"))


OPTIONS_KEY = web.AppKey("otel_dashboard_options", ServerOptions)

try:
    SERVER_VERSION = metadata.version("otel-dashboard")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    SERVER_VERSION = "0.1.0"
"""The version the server reports (``/health``, the snapshot's ``server``)."""

SERVICE = "otel-dashboard"
"""The ``service`` field of ``/health``."""
