"""The ``otel-dashboard`` command.

``otel-dashboard serve`` runs the dashboard server until SIGINT/SIGTERM (exit code 0 after a clean
stop), keeping history in an SQLite file (``--db``; see ``docs/operations.md``), protected by the
security options (token, origins, TLS, limits; see ``docs/security.md``);
``otel-dashboard demo`` runs it with simulated, instrumented agents (history in memory).
``python -m otel_dashboard`` is the same command. Bad option values are argparse errors (exit code
2); a server that cannot start (busy port, unusable database, unusable certificate or key file)
exits with 1 and one line on stderr naming what is wrong.

This module is about 600 lines for a reason: it is the one place where the command line,
its environment variables and their checks meet; each subcommand's options sit next to the code
that turns them into a server.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from otel_dashboard.model.limits import (
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_SNAPSHOT_BYTES,
    DEFAULT_MAX_STRING_BYTES,
)

if TYPE_CHECKING:
    from otel_dashboard.model.guardrails import Guardrails
    from otel_dashboard.model.prices import PriceBook
    from otel_dashboard.server.app import DashboardWebSocketServer
    from otel_dashboard.server.broker.config import BrokerConfig
    from otel_dashboard.server.security.config import SecurityConfig
    from otel_dashboard.store.base import EventStore

__all__ = ["build_parser", "default_db_path", "grpc_address", "grpc_port_of", "main", "public_base_url"]

_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_DEFAULT_HISTORY = 1000
_SNAPSHOT_EVENTS = 100
_DEFAULT_RETENTION_EVENTS = 1_000_000
_MEMORY_DB = ":memory:"
_MIN_BODY_BYTES = 1024
_MAX_BODY_BYTES = 1024 * 1024 * 1024
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]"})


def _int_in_range(low: int, high: int | None, message: str) -> Callable[[str], int]:
    """An argparse ``type`` for integers from ``low`` to ``high`` (no upper bound when None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{message}, got {value}")
        return value

    return parse


_port = _int_in_range(0, 65535, "must be between 0 and 65535 (0 picks a free port)")
_grpc_port = _int_in_range(0, 65535, "must be between 0 and 65535 (0 turns OTLP/gRPC off)")
_GRPC_PORT_HELP = ("OTLP/gRPC port on the same host (default: 4317, the OpenTelemetry one; with --port 0, "
                   "a free one too, printed at start); 0 turns OTLP/gRPC off")
_positive_int = _int_in_range(1, 10_000_000, "must be between 1 and 10000000")
_retention_events = _int_in_range(0, None, "must be 0 (no limit) or more")
_string_bytes = _int_in_range(64, _MAX_BODY_BYTES, "must be between 64 and 1073741824")
_event_bytes = _int_in_range(1024, _MAX_BODY_BYTES, "must be between 1024 and 1073741824")


def _retention_hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or more hours, got {text}")
    return value


def _db_path(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty (use :memory: for no database)")
    return text


def default_db_path() -> Path:
    """Where ``serve`` keeps its database without ``--db``: the user's data directory.

    ``$XDG_DATA_HOME/otel-dashboard/events.db``, else ``~/.local/share/otel-dashboard/events.db``
    (``%LOCALAPPDATA%\\otel-dashboard\\events.db`` on Windows).
    """
    xdg = os.environ.get("XDG_DATA_HOME", "")
    if xdg and os.path.isabs(xdg):
        base = Path(xdg)
    elif sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):  # pragma: no cover - Windows
        base = Path(os.environ["LOCALAPPDATA"])
    else:
        base = Path.home() / ".local" / "share"
    return base / "otel-dashboard" / "events.db"


def _token(text: str) -> str:
    from otel_dashboard.server.security.config import SecurityConfig

    try:
        SecurityConfig(token=text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _origin(text: str) -> str:
    from otel_dashboard.server.security.config import SecurityConfig

    try:
        return SecurityConfig(allowed_origins=(text,)).allowed_origins[0]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("allowed_origins: ")) from None


def _allowed_host(text: str) -> str:
    from otel_dashboard.server.security.config import SecurityConfig

    try:
        return SecurityConfig(allowed_hosts=(text,)).allowed_hosts[0]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("allowed_hosts: ")) from None


def _file(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must be a file path")
    return text


_body_bytes = _int_in_range(
    _MIN_BODY_BYTES, _MAX_BODY_BYTES, f"must be between {_MIN_BODY_BYTES} and {_MAX_BODY_BYTES}")
# The WebSocket queue budgets (ServerOptions.max_client_queue_bytes, max_total_queue_bytes).
_queue_bytes = _int_in_range(1024 * 1024, 64 * 1024**3, f"must be between {1024 * 1024} and {64 * 1024**3}")
# The trace store's memory budget (DashboardState(max_trace_bytes=...)); the same default as the state's.
_trace_bytes = _queue_bytes
_DEFAULT_MAX_TRACE_BYTES = 256 * 1024 * 1024
_response_bytes = _int_in_range(64 * 1024, _MAX_BODY_BYTES, f"must be between 65536 and {_MAX_BODY_BYTES}")


def _events_per_second(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 1:
        raise argparse.ArgumentTypeError(f"must be a number of events per second >= 1, got {text}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0 (at most 86400), got {text}")
    return value


def _usage_window(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value % 60 or not 60 <= value <= 604_800:
        raise argparse.ArgumentTypeError(f"must be a multiple of 60 between 60 and 604800, got {text}")
    return value


def _host(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text.strip()


def _name(text: str) -> str:
    if len(text) > 200:
        raise argparse.ArgumentTypeError("must be at most 200 characters")
    return text


def _log_level(text: str) -> str:
    if text.lower() not in _LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(_LOG_LEVELS)}, got {text!r}")
    return text.upper()


def _price_file(text: str) -> PriceBook:
    """The ``--prices`` file read and checked now: a bad one is an argument error (exit 2), one line
    naming the file and the problem, before anything starts."""
    from otel_dashboard.model.prices import load_price_file

    if not text.strip():
        raise argparse.ArgumentTypeError("must be a file path")
    try:
        return load_price_file(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _budgets_file(text: str) -> Guardrails:
    """The ``--budgets`` file read and checked now: a bad one is an argument error (exit 2), one line
    naming ``file:line`` and the setting, before anything starts."""
    from otel_dashboard.model.guardrails import GuardrailsConfigError, load_guardrails

    if not text.strip():
        raise argparse.ArgumentTypeError("must be a file path")
    try:
        return load_guardrails(text)
    except GuardrailsConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_BUDGETS_HELP = ("TOML or JSON file of budgets (per run, per agent over a window, per conversation: "
                 "tokens, cost_usd, duration_seconds, model_calls, tool_calls) and loop thresholds; "
                 "see docs/guardrails.md")

_PRICES_HELP = ("JSON file of model prices in USD per million tokens, added to genai-prices' bundled "
                "ones and overriding them for the models it names (self-hosted or negotiated prices); "
                "see docs/events.md, \"Cost\"")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``otel-dashboard`` command."""
    parser = argparse.ArgumentParser(
        prog="otel-dashboard",
        description="A live observability dashboard for AI-agent systems, OpenTelemetry native.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    serve = commands.add_parser("serve", help="run the dashboard server",
                                description="Run the dashboard server until SIGINT or SIGTERM.")
    serve.add_argument("--host", type=_host, default="127.0.0.1",
                       help="interface to listen on (default: 127.0.0.1; 0.0.0.0 exposes it)")
    serve.add_argument("--port", type=_port, default=8000,
                       help="TCP port (default: 8000; 0 picks a free one, printed at start)")
    serve.add_argument("--grpc-port", type=_grpc_port, default=None, metavar="N", help=_GRPC_PORT_HELP)
    serve.add_argument("--history", type=_positive_int, default=_DEFAULT_HISTORY, metavar="N",
                       help=f"with --db :memory:, events kept for /api/events and resume (default: "
                            f"{_DEFAULT_HISTORY}); in every mode, snapshots carry the newest "
                            f"min(N, {_SNAPSHOT_EVENTS})")
    serve.add_argument("--db", type=_db_path, default=None, metavar="PATH",
                       help="SQLite file that keeps the event history across restarts (default: "
                            "$XDG_DATA_HOME/otel-dashboard/events.db or "
                            "~/.local/share/otel-dashboard/events.db); :memory: keeps --history "
                            "events in memory only")
    serve.add_argument("--retention-events", type=_retention_events, default=_DEFAULT_RETENTION_EVENTS,
                       metavar="N", help=f"keep at most the newest N events in the database (default: "
                                         f"{_DEFAULT_RETENTION_EVENTS}; 0: no limit)")
    serve.add_argument("--retention-hours", type=_retention_hours, default=0.0, metavar="H",
                       help="delete events older than H hours from the database (default: 0, no limit)")
    serve.add_argument("--db-synchronous", choices=("normal", "full"), default="normal",
                       help="normal (default): a crash of the server loses nothing committed, a power "
                            "loss may lose the newest commits; full: an fsync per commit, survives "
                            "power loss too, slower")
    serve.add_argument("--name", type=_name, default=None, metavar="LABEL",
                       help="a label for this dashboard, shown on the page and in /health")
    serve.add_argument("--log-level", type=_log_level, default="INFO", metavar="LEVEL",
                       help=f"logging level: {', '.join(_LOG_LEVELS)} (default: info)")
    serve.add_argument("--prices", type=_price_file, default=None, metavar="FILE", help=_PRICES_HELP)
    serve.add_argument("--budgets", type=_budgets_file, default=None, metavar="FILE", help=_BUDGETS_HELP)
    serve.add_argument("--max-scanned-rows", type=_positive_int, default=100_000, metavar="N",
                       help="stored events one /api/events request or one resume message walks at most; "
                            "beyond, the answer says where to continue (default: 100000)")
    serve.add_argument("--max-response-bytes", type=_response_bytes, default=4 * 1024 * 1024, metavar="N",
                       help="bytes of events in one /api/events answer at most (default: 4194304, "
                            "at least 65536); beyond, the answer says where to continue")
    serve.add_argument("--usage-window-seconds", type=_usage_window, default=3600, metavar="SECONDS",
                       help="the rolling window of the per-agent usage (GET /api/agents) and of the "
                            "metrics' window_* fields, in 60 buckets: a multiple of 60 up to 604800 "
                            "(default: 3600, one hour in minute buckets)")
    _add_security_arguments(serve)
    _add_broker_arguments(serve)
    _add_alert_arguments(serve)

    demo = commands.add_parser("demo", help="run the server with simulated, instrumented agents",
                               description="Serve the dashboard and run a simulated multi-agent system.")
    demo.add_argument("--host", type=_host, default="127.0.0.1",
                      help="interface to listen on (default: 127.0.0.1)")
    demo.add_argument("--port", type=_port, default=8000, help="TCP port (default: 8000)")
    demo.add_argument("--grpc-port", type=_grpc_port, default=None, metavar="N", help=_GRPC_PORT_HELP)
    demo.add_argument("--log-level", type=_log_level, default="INFO", metavar="LEVEL",
                      help=f"logging level: {', '.join(_LOG_LEVELS)} (default: info)")
    demo.add_argument("--prices", type=_price_file, default=None, metavar="FILE", help=_PRICES_HELP)
    return parser


def _add_security_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("security", "see docs/security.md")
    tokens = group.add_mutually_exclusive_group()
    tokens.add_argument("--token", type=_token, default=None, metavar="T",
                        help="require this token on /ws, /api/*, /stats and ingest (default: "
                             "$OTEL_DASHBOARD_TOKEN; on a non-loopback --host without either, a random "
                             "one is generated and a login URL printed)")
    tokens.add_argument("--no-token", action="store_true",
                        help="no token even on a non-loopback --host (behind an authenticating proxy)")
    group.add_argument("--allowed-origin", type=_origin, action="append", default=[], metavar="URL",
                       help="a browser origin (scheme://host[:port]) allowed to use the API (CORS) and "
                            "the WebSocket; repeatable (default: none)")
    group.add_argument("--allowed-host", type=_allowed_host, action="append", default=[], metavar="NAME",
                       help="an extra Host name accepted on a loopback bind (a local reverse proxy); "
                            "repeatable")
    group.add_argument("--certfile", type=_file, default=None, metavar="PEM",
                       help="certificate chain (PEM, may hold the key too): serve https and wss")
    group.add_argument("--keyfile", type=_file, default=None, metavar="PEM",
                       help="private key (unencrypted PEM) for --certfile")
    group.add_argument("--max-body-bytes", type=_body_bytes, default=16 * 1024 * 1024, metavar="N",
                       help="largest request body; larger ones get 413 (default: 16777216)")
    group.add_argument("--max-connections-per-ip", type=_positive_int, default=4096, metavar="N",
                       help="open WebSocket connections per client address; more get 429 (default: 4096)")
    group.add_argument("--ingest-rate", type=_events_per_second, default=250_000.0, metavar="EPS",
                       help="events per second one client address may ingest, bursts of twice that; "
                            "more get 429 with Retry-After (default: 250000)")
    group.add_argument("--max-client-queue-bytes", type=_queue_bytes, default=8 * 1024 * 1024, metavar="N",
                       help="bytes queued for one WebSocket client (replies it does not read, unsent "
                            "frames); beyond, it is closed with 1013 (default: 8388608)")
    group.add_argument("--max-total-queue-bytes", type=_queue_bytes, default=256 * 1024 * 1024, metavar="N",
                       help="bytes queued for all WebSocket clients together; beyond, the client "
                            "holding the most is closed with 1013 (default: 268435456)")
    group.add_argument("--header-timeout", type=_seconds, default=10.0, metavar="SECONDS",
                       help="an HTTP connection that has not sent a whole request header this long after "
                            "opening (or after its next request began) is closed (default: 10)")
    group.add_argument("--keepalive-timeout", type=_seconds, default=75.0, metavar="SECONDS",
                       help="an HTTP connection idle between requests this long is closed (default: 75)")
    group.add_argument("--max-http-connections-per-ip", type=_positive_int, default=256, metavar="N",
                       help="open HTTP connections per client address, WebSockets not counted; beyond, "
                            "the oldest idle one is closed, or the new one gets 503 (default: 256)")
    group.add_argument("--max-http-connections", type=_positive_int, default=1024, metavar="N",
                       help="open HTTP connections in all, WebSockets not counted, handled the same way "
                            "(default: 1024)")
    group.add_argument("--failed-decode-cost", type=_positive_int, default=1000, metavar="EVENTS",
                       help="an ingest request whose body cannot be decoded is charged to its address's "
                            "ingest rate as one event per 64 bytes inflated or parsed, at least this "
                            "many (default: 1000)")
    group.add_argument("--max-string-bytes", type=_string_bytes, default=DEFAULT_MAX_STRING_BYTES,
                       metavar="N", help="a longer string in an event's data is cut, ending with "
                                         f"'…[cut N bytes]' (default: {DEFAULT_MAX_STRING_BYTES})")
    group.add_argument("--max-event-bytes", type=_event_bytes, default=DEFAULT_MAX_EVENT_BYTES,
                       metavar="N", help="an event's data as JSON, strings cut; a larger posted event "
                                         f"gets 413, a span's is shrunk (default: {DEFAULT_MAX_EVENT_BYTES})")
    group.add_argument("--max-snapshot-bytes", type=_event_bytes, default=DEFAULT_MAX_SNAPSHOT_BYTES,
                       metavar="N", help="the events of a new client's snapshot as JSON; the oldest are "
                                         f"left out (default: {DEFAULT_MAX_SNAPSHOT_BYTES})")
    group.add_argument("--max-trace-bytes", type=_trace_bytes, default=_DEFAULT_MAX_TRACE_BYTES, metavar="N",
                       help="memory budget of the trace view's span records, by estimate; the least "
                            "recently updated traces are evicted beyond it, and a single larger trace "
                            f"keeps its first spans (default: {_DEFAULT_MAX_TRACE_BYTES})")


def _broker_url(text: str) -> str:
    from otel_dashboard.server.broker.config import BrokerConfig

    try:
        BrokerConfig(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("broker url ")) from None
    return text


def _broker_prefix(text: str) -> str:
    if not text or len(text) > 100:
        raise argparse.ArgumentTypeError("must be 1 to 100 characters")
    return text


_broker_entry_bytes = _int_in_range(1024, 2**31, f"must be between 1024 and {2**31}")


def _add_broker_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scale-out",
                                      "several replicas sharing one Redis; see docs/deployment.md")
    # A string default goes through `type` too: a bad $OTEL_DASHBOARD_BROKER is an error naming --broker.
    group.add_argument("--broker", type=_broker_url, default=os.environ.get("OTEL_DASHBOARD_BROKER") or None,
                       metavar="URL",
                       help="share events with the other replicas through Redis (redis://host:6379/0, "
                            "rediss:// or unix://); needs pip install 'otel-dashboard[redis]' "
                            "(default: $OTEL_DASHBOARD_BROKER, else none: this server alone)")
    group.add_argument("--broker-prefix", type=_broker_prefix, default="otel_dashboard", metavar="P",
                       help="prefix of the Redis keys; one cluster per prefix (default: otel_dashboard)")
    group.add_argument("--broker-stream-events", type=_positive_int, default=100_000, metavar="N",
                       help="the Redis stream keeps about the newest N events (default: 100000)")
    group.add_argument("--broker-buffer-events", type=_positive_int, default=100_000, metavar="N",
                       help="events held while Redis is unreachable; beyond, ingest answers 503 "
                            "(default: 100000)")
    group.add_argument("--broker-max-entry-bytes", type=_broker_entry_bytes, default=32 * 1024 * 1024,
                       metavar="BYTES",
                       help="a longer Redis stream entry is skipped and counted, never read into an "
                            "event (default: 33554432)")


_ALERT_WEBHOOKS_ENV = "OTEL_DASHBOARD_ALERT_WEBHOOKS"


def _webhook_url(text: str) -> str:
    from otel_dashboard.server.alert_payload import check_webhook_url

    try:
        return check_webhook_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("an alert webhook ")) from None


def _add_alert_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("alerts", "BudgetExceeded and LoopSuspected out: docs/guardrails.md")
    group.add_argument("--alert-webhook", type=_webhook_url, action="append", default=None, metavar="URL",
                       help="POST each alert as JSON (with a Slack-compatible text field) to this http(s) "
                            "URL; repeatable, up to 20 (default: the URLs of $OTEL_DASHBOARD_ALERT_WEBHOOKS, "
                            "separated by spaces, which keeps a secret URL off the command line)")


def _alert_webhooks(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    """The webhooks from ``--alert-webhook``, else from the environment (exit 2 if bad)."""
    from otel_dashboard.server.alert_payload import MAX_WEBHOOKS, check_webhook_url

    urls: list[str] = args.alert_webhook
    if urls is None:
        urls = []
        for url in os.environ.get(_ALERT_WEBHOOKS_ENV, "").split():
            try:
                urls.append(check_webhook_url(url))
            except ValueError as exc:
                parser.error(f"${_ALERT_WEBHOOKS_ENV}: {exc}")
    if len(urls) > MAX_WEBHOOKS:
        parser.error(f"argument --alert-webhook: at most {MAX_WEBHOOKS} webhooks, got {len(urls)}")
    if len(set(urls)) != len(urls):
        parser.error("argument --alert-webhook: a URL is given twice (each alert would be posted twice)")
    return urls


def _broker_config(args: argparse.Namespace) -> BrokerConfig | None:
    if args.broker is None:
        return None
    from otel_dashboard.server.broker.config import BrokerConfig

    return BrokerConfig(args.broker, prefix=args.broker_prefix, max_stream_events=args.broker_stream_events,
                        max_buffered_events=args.broker_buffer_events, replica=args.name,
                        max_entry_bytes=args.broker_max_entry_bytes)


def _security_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> SecurityConfig:
    """The server's :class:`SecurityConfig` from the command line and the environment (exit 2 if bad)."""
    from otel_dashboard.server.security.config import SecurityConfig

    if args.keyfile is not None and args.certfile is None:
        parser.error("argument --keyfile: needs --certfile (the certificate) as well")
    try:
        return SecurityConfig.from_options(
            token=args.token, bind_host=args.host, allowed_origins=args.allowed_origin,
            allowed_hosts=args.allowed_host, certfile=args.certfile, keyfile=args.keyfile,
            no_token=args.no_token, max_body_bytes=args.max_body_bytes,
            max_connections_per_ip=args.max_connections_per_ip,
            ingest_events_per_second=args.ingest_rate,
            ingest_burst_events=max(1, int(2 * args.ingest_rate)),
            header_timeout_seconds=args.header_timeout,
            keepalive_timeout_seconds=args.keepalive_timeout,
            max_http_connections_per_ip=args.max_http_connections_per_ip,
            max_http_connections=args.max_http_connections,
            failed_decode_cost_events=args.failed_decode_cost,
        )
    except ValueError as exc:  # the environment's token (the options were checked one by one)
        parser.error(str(exc))


def grpc_port_of(args: argparse.Namespace) -> int | None:
    """The ``grpc_port`` for the server from ``--grpc-port``: None (off) for 0; when not given, 4317,
    or a free port (0) when ``--port 0`` asked for a free HTTP port: two servers started that way
    (tests, scripts) must not fight over 4317."""
    from otel_dashboard.server.options import DEFAULT_GRPC_PORT

    if args.grpc_port is None:
        return 0 if args.port == 0 else DEFAULT_GRPC_PORT
    return args.grpc_port or None


def public_base_url(server: DashboardWebSocketServer) -> str:
    """How users reach ``server``: its URL, with this machine's name for a wildcard bind (0.0.0.0)."""
    if server.host not in _WILDCARD_HOSTS:
        return server.url
    scheme = "https" if server.security.tls_enabled else "http"
    return f"{scheme}://{socket.gethostname() or 'localhost'}:{server.port}"


def grpc_address(server: DashboardWebSocketServer) -> str:
    """``host:port`` of the server's OTLP/gRPC receiver (what ``OTEL_EXPORTER_OTLP_ENDPOINT`` names)."""
    host = f"[{server.host}]" if ":" in server.host else server.host
    return f"{host}:{server.grpc_port}"


def _configure_logging(level: str, token: str | None = None) -> None:
    from otel_dashboard.server.security.redact import redact_handler

    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # On the handler, not a logger: a logger's filter misses its children's records (aiohttp.server's,
    # whose malformed-request errors quote the request line), a handler's sees every line it writes.
    for handler in logging.getLogger().handlers:
        redact_handler(handler, [token] if token else [])


async def _serve(args: argparse.Namespace) -> int:
    from otel_dashboard.server.security.config import TLSConfigError
    from otel_dashboard.store.base import StoreError

    if args.broker is not None:
        try:
            import redis.asyncio  # noqa: F401
        except ImportError:
            print("otel-dashboard: --broker needs the redis package: pip install 'otel-dashboard[redis]'",
                  file=sys.stderr)
            return 1
    try:
        args.security.ssl_context()  # a certificate or key that cannot be used stops us before anything
    except TLSConfigError as exc:
        print(f"otel-dashboard: {exc}", file=sys.stderr)
        return 1
    try:
        store = _open_store(args)
    except StoreError as exc:
        print(f"otel-dashboard: {exc}", file=sys.stderr)
        return 1
    try:
        return await _serve_with(args, store)
    finally:
        store.close()


def _open_store(args: argparse.Namespace) -> EventStore:
    """The event store ``serve`` asked for; prints where history is kept.

    Raises:
        StoreError: the database (or its directory) cannot be used; the message names the path.
    """
    from otel_dashboard.store.base import MemoryEventStore, StoreError

    if args.db == _MEMORY_DB:
        print(f"otel-dashboard history: in memory ({args.history} events, lost at exit)", flush=True)
        return MemoryEventStore(args.history)
    from otel_dashboard.store.sqlite import SqliteEventStore

    path = Path(args.db).expanduser() if args.db is not None else default_db_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(str(path), f"event database {path}: cannot create its directory "
                                    f"{path.parent}: {exc.strerror or exc}") from None
    store = SqliteEventStore(
        path,
        retention_events=args.retention_events or None,
        retention_hours=args.retention_hours or None,
        synchronous=args.db_synchronous,
    )
    print(f"otel-dashboard database: {path}", flush=True)
    return store


async def _serve_with(args: argparse.Namespace, store: EventStore) -> int:
    from otel_dashboard.server.app import DashboardWebSocketServer
    from otel_dashboard.state.dashboard import DashboardState, reset_dashboard

    # The process's state (what get_dashboard() returns) is the one served, so in-process producers
    # and the server agree. A durable store rebuilds the state (seq, metrics, lost agents) here.
    try:
        state = reset_dashboard(DashboardState(
            max_history=args.history, store=store, max_string_bytes=args.max_string_bytes,
            max_event_bytes=args.max_event_bytes, max_snapshot_bytes=args.max_snapshot_bytes,
            usage_window_seconds=args.usage_window_seconds, max_trace_bytes=args.max_trace_bytes,
            budgets=args.budgets,
        ))
    except ValueError as exc:  # caps that contradict each other (max_event_bytes < max_string_bytes)
        print(f"otel-dashboard serve: error: {exc}", file=sys.stderr)
        return 2
    config = args.security
    server = DashboardWebSocketServer(
        args.host, args.port, state=state, history_size=min(args.history, _SNAPSHOT_EVENTS),
        name=args.name, security=config, broker=_broker_config(args), prices=args.prices,
        max_client_queue_bytes=args.max_client_queue_bytes, max_total_queue_bytes=args.max_total_queue_bytes,
        max_scanned_rows=args.max_scanned_rows, max_response_bytes=args.max_response_bytes,
        grpc_port=grpc_port_of(args),
        alert_webhooks=args.alert_webhooks,
    )
    # Signal handlers go in before the URL is printed: whoever reads it may signal at once.
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - Windows
            pass
    try:
        try:
            await server.start()
        except OSError as exc:
            return _start_failed(exc, args)
        print(f"otel-dashboard serving on {server.dashboard_url}", flush=True)
        if server.grpc_port is not None:
            print(f"otel-dashboard OTLP/gRPC on {grpc_address(server)}", flush=True)
        if config.token_generated:
            print(f"open {config.login_url(public_base_url(server))}  to log in "
                  "(a token made for this run; set --token or OTEL_DASHBOARD_TOKEN to keep one)", flush=True)
        elif config.auth_required:
            print("a token is required: open the page and enter it, or send 'Authorization: Bearer <token>'",
                  flush=True)
        await stop.wait()
        logging.getLogger(__name__).info("stopping")
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await server.stop()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from otel_dashboard import demo

    try:
        return asyncio.run(demo.run_demo(args.host, args.port, prices=args.prices,
                                         grpc_port=grpc_port_of(args)))
    except OSError as exc:
        return _start_failed(exc, args)


def _start_failed(exc: OSError, args: argparse.Namespace) -> int:
    """One line on stderr for a server that could not start; the exit code."""
    from otel_dashboard.server.grpc_receiver import GrpcBindError

    if isinstance(exc, (FileNotFoundError, GrpcBindError)):  # a missing page; the gRPC port, said whole
        print(f"otel-dashboard: {exc}", file=sys.stderr)
    else:
        print(f"otel-dashboard: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``otel-dashboard`` command with ``argv`` (``sys.argv[1:]`` by default).

    Returns:
        The exit code: 0 after a clean stop, 1 when the server cannot start.

    Raises:
        SystemExit: with code 2 for bad arguments (from argparse), 0 for ``--help``.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        args.security = _security_config(args, parser)
        args.alert_webhooks = _alert_webhooks(args, parser)
    _configure_logging(args.log_level, args.security.token if args.command == "serve" else None)
    try:
        if args.command == "serve":
            return asyncio.run(_serve(args))
        return _demo(args)
    except KeyboardInterrupt:  # Ctrl+C before the handlers were installed
        return 0
