"""The security settings of the dashboard server (:class:`SecurityConfig`), and the TLS context.

Imported through :mod:`otel_dashboard.server.security`; this module holds the configuration and the parsing
of host names and origins, with no aiohttp in it.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import secrets
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from otel_dashboard.model.auth import TOKEN_ENV, bearer_headers, check_token

__all__ = [
    "COOKIE_NAME",
    "TOKEN_ENV",
    "SecurityConfig",
    "TLSConfigError",
    "bearer_headers",
    "is_loopback_host",
    "origin_string",
    "parse_host_header",
    "parse_origin",
]

#: Name of the login cookie.
COOKIE_NAME = "otel_dashboard_token"

_MIB = 1024 * 1024
_PORT_RE = re.compile(r"[0-9]{1,5}")
_HOSTNAME_RE = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?")
_ORIGIN_RE = re.compile(r"(https?)://(\[[0-9a-f:.]+\]|[^\[\]/:@?#\s]+)(?::([0-9]{1,5}))?/?")


class TLSConfigError(ValueError):
    """A certificate or key file that is missing, unreadable or unusable (the message names it)."""


def parse_host_header(value: str) -> tuple[str, int | None] | None:
    """``Host`` header -> (lower-case host without brackets or trailing dot, port or None); None if bad."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[1:end], value[end + 1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    else:
        host, colon, port_text = value.partition(":")
        rest = colon + port_text
        if not _HOSTNAME_RE.fullmatch(host):
            return None
        host = host.rstrip(".")
    if not rest:
        return host, None
    if rest[0] != ":" or not _PORT_RE.fullmatch(rest[1:]) or int(rest[1:]) > 65535:
        return None
    return host, int(rest[1:])


def parse_origin(value: str) -> tuple[str, str, int] | None:
    """``scheme://host[:port]`` -> (scheme, host without brackets, port); None for "null" or junk."""
    match = _ORIGIN_RE.fullmatch(value.strip().lower())
    if match is None:
        return None
    scheme, host, port_text = match.groups()
    if host.startswith("["):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    elif not _HOSTNAME_RE.fullmatch(host):
        return None
    port = int(port_text) if port_text else (443 if scheme == "https" else 80)
    if not 0 < port <= 65535:
        return None
    return scheme, host.rstrip("."), port


def is_loopback_host(host: str) -> bool:
    """``localhost``, ``127.0.0.0/8`` or ``::1`` (brackets and a trailing dot allowed)."""
    host = host.strip().strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _normalize_origin(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"allowed_origins: expected strings, got {value!r}")
    if value.strip() == "*":
        raise ValueError("allowed_origins: '*' is not supported; list each origin (scheme://host[:port])")
    parsed = parse_origin(value)
    if parsed is None:
        raise ValueError(f"allowed_origins: {value!r} is not scheme://host[:port] with http or https")
    return origin_string(parsed)


def origin_string(parsed: tuple[str, str, int]) -> str:
    """(scheme, host, port) -> the origin as browsers send it (no default port, IPv6 in brackets)."""
    scheme, host, port = parsed
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" if port == (443 if scheme == "https" else 80) else f"{scheme}://{shown}:{port}"


def _no_password() -> bytes:
    return b""  # never prompt on the terminal for an encrypted key: fail instead


def _fspath(path: str | os.PathLike[str] | None) -> str | None:
    # A path object as its str; anything else goes on to SecurityConfig's checks unchanged.
    return os.fspath(path) if isinstance(path, os.PathLike) else path


@dataclass(frozen=True, kw_only=True)
class SecurityConfig:
    """How the server protects itself; every field has a safe default for one machine.

    Attributes:
        token: the shared secret required by the API, the WebSocket and ingest; None: no auth.
        allowed_origins: browser origins (``scheme://host[:port]``) allowed to use the API cross-origin
            (CORS) and to open the WebSocket, besides the served host itself.
        allowed_hosts: extra host names accepted in the ``Host`` header on a loopback bind (a reverse
            proxy on the same machine that keeps its own host name); the hosts of
            ``allowed_origins`` are accepted too.
        bind_host: the address the server listens on; a loopback one turns the Host check on.
        max_body_bytes: largest request body (413 beyond); pass it to ``web.Application``.
        max_ws_message_bytes: largest WebSocket message from a client.
        ws_messages_per_second: messages a WebSocket client may send per second (close 1008 beyond).
        ws_message_burst: messages a quiet WebSocket client may send at once.
        max_connections_per_ip: open WebSocket connections per client address (429 beyond).
        ingest_events_per_second: events per second one client address may ingest (429 beyond).
        ingest_burst_events: events an idle client address may ingest at once.
        failed_decode_cost_events: what an ingest request whose body cannot be decoded (bad gzip,
            protobuf or JSON, too many content codings, too large once inflated) is charged to its
            address's ingest rate, at least: it is charged one event per 64 bytes inflated or parsed,
            and never less than this.
        header_timeout_seconds: an HTTP connection that has not sent a whole request header this
            long after connecting (or after the first byte of its next request) is closed.
        keepalive_timeout_seconds: an HTTP connection idle between requests this long is closed.
        max_http_connections_per_ip: open HTTP connections (WebSocket ones not counted) per client
            address; beyond it the oldest idle one of that address is closed for the new one, or the
            new one gets 503 when none is idle.
        max_http_connections: open HTTP connections (WebSocket ones not counted) in all, handled
            the same way.
        tls_certfile: PEM certificate chain (may hold the key too); serves https and wss.
        tls_keyfile: PEM private key (unencrypted), if not in ``tls_certfile``.
        token_generated: the token was made up at start; print :meth:`login_url` for the user.

    Raises:
        ValueError: an invalid value; the message names the field.
    """

    token: str | None = None
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    bind_host: str = "127.0.0.1"
    max_body_bytes: int = 16 * _MIB
    max_ws_message_bytes: int = 64 * 1024
    ws_messages_per_second: float = 100.0
    ws_message_burst: int = 200
    max_connections_per_ip: int = 4096
    ingest_events_per_second: float = 250_000.0
    ingest_burst_events: int = 500_000
    failed_decode_cost_events: int = 1000
    header_timeout_seconds: float = 10.0
    keepalive_timeout_seconds: float = 75.0
    max_http_connections_per_ip: int = 256
    max_http_connections: int = 1024
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    token_generated: bool = False

    def __post_init__(self) -> None:
        check_token(self.token, "token")
        for name in ("allowed_origins", "allowed_hosts"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, Iterable):
                raise ValueError(f"{name} must be a sequence of strings, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        origins = tuple(dict.fromkeys(_normalize_origin(o) for o in self.allowed_origins))
        object.__setattr__(self, "allowed_origins", origins)
        hosts = []
        for host in self.allowed_hosts:
            parsed = parse_host_header(host) if isinstance(host, str) else None
            if parsed is None or parsed[1] is not None:
                raise ValueError(f"allowed_hosts: {host!r} is not a host name without a port "
                                 "(IPv6 in brackets: [::1])")
            hosts.append(parsed[0])
        object.__setattr__(self, "allowed_hosts", tuple(dict.fromkeys(hosts)))
        if not isinstance(self.bind_host, str):
            raise ValueError(f"bind_host must be a string, got {self.bind_host!r}")
        for name in ("max_body_bytes", "max_ws_message_bytes", "ws_message_burst",
                     "max_connections_per_ip", "ingest_burst_events", "failed_decode_cost_events",
                     "max_http_connections_per_ip", "max_http_connections"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("ws_messages_per_second", "ingest_events_per_second", "header_timeout_seconds",
                     "keepalive_timeout_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name in ("tls_certfile", "tls_keyfile"):
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
                    raise ValueError(f"{name} must be a file path, got {value!r}")
                object.__setattr__(self, name, os.fspath(value))
        if self.tls_keyfile is not None and self.tls_certfile is None:
            raise ValueError("tls_keyfile needs tls_certfile (the certificate) as well")
        if self.token_generated and self.token is None:
            raise ValueError("token_generated is true but there is no token")

    # ------------------------------------------------------------------ derived
    @property
    def auth_required(self) -> bool:
        """Whether requests need the token."""
        return self.token is not None

    @property
    def tls_enabled(self) -> bool:
        """Whether the server serves https/wss."""
        return self.tls_certfile is not None

    @property
    def loopback(self) -> bool:
        """Whether ``bind_host`` is a loopback address (the Host check applies)."""
        return is_loopback_host(self.bind_host)

    @classmethod
    def from_options(
        cls,
        *,
        token: str | None = None,
        bind_host: str = "127.0.0.1",
        allowed_origins: Iterable[str] = (),
        allowed_hosts: Iterable[str] = (),
        certfile: str | os.PathLike[str] | None = None,
        keyfile: str | os.PathLike[str] | None = None,
        no_token: bool = False,
        environ: Mapping[str, str] | None = None,
        **limits: Any,
    ) -> SecurityConfig:
        """The configuration from command-line values, with the environment and secure defaults.

        The token is ``token``, else ``$OTEL_DASHBOARD_TOKEN``; when neither is set and ``bind_host``
        is not loopback, a random one is generated (``token_generated`` is then True, and the caller
        prints :meth:`login_url`). ``no_token=True`` turns auth off on purpose (for a server behind an
        authenticating proxy).

        Args:
            limits: any of the limit fields (``max_body_bytes=...``).

        Raises:
            ValueError: an invalid value, naming the option or ``OTEL_DASHBOARD_TOKEN``.
            TypeError: an unknown keyword.
        """
        env = os.environ if environ is None else environ
        if no_token and token is not None:
            raise ValueError("token: a token and no_token together make no sense")
        if token is None and not no_token:
            env_token = env.get(TOKEN_ENV, "").strip()
            if env_token:
                check_token(env_token, TOKEN_ENV)
                token = env_token
        generated = False
        if token is None and not no_token and not is_loopback_host(bind_host):
            token = secrets.token_urlsafe(32)
            generated = True
        return cls(
            token=token, bind_host=bind_host, allowed_origins=tuple(allowed_origins),
            allowed_hosts=tuple(allowed_hosts), tls_certfile=_fspath(certfile), tls_keyfile=_fspath(keyfile),
            token_generated=generated, **limits,
        )

    def login_url(self, base_url: str) -> str:
        """``base_url/dashboard?token=...``: the URL that logs a browser in (like Jupyter's).

        ``base_url`` is how users reach the server (``http://myhost:8000``); on a wildcard bind
        (``0.0.0.0``) the caller should put the machine's name in it.
        """
        url = base_url.rstrip("/") + "/dashboard"
        return url if self.token is None else f"{url}?token={quote(self.token, safe='')}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """A server-side TLS context for ``web.TCPSite(ssl_context=...)``; None without a certificate.

        TLS 1.2 or newer. Encrypted keys are not supported (they would prompt on the terminal).

        Raises:
            TLSConfigError: a file that is missing, unreadable, not PEM, or a key that does not match
                the certificate; the message names the file.
        """
        certfile, keyfile = self.tls_certfile, self.tls_keyfile
        if certfile is None:
            return None
        for name, path in (("tls_certfile", certfile), ("tls_keyfile", keyfile)):
            if path is None:
                continue
            try:
                with open(path, "rb") as handle:
                    handle.read(1)
            except OSError as exc:
                raise TLSConfigError(f"{name} {path}: cannot read it: {exc.strerror or exc}") from None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(certfile, keyfile, password=_no_password)
        except ssl.SSLError as exc:
            probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            try:
                probe.load_verify_locations(cafile=certfile)
            except (ssl.SSLError, ValueError):
                raise TLSConfigError(
                    f"tls_certfile {certfile}: not a PEM certificate ({exc.reason or exc})"
                ) from None
            raise TLSConfigError(
                f"tls_keyfile {keyfile or certfile}: not an unencrypted PEM private key matching the "
                f"certificate {certfile} ({exc.reason or exc})"
            ) from None
        return context
