"""One kept-alive HTTP(S) connection to a dashboard server, shared by the senders of the pipeline
(:mod:`~otel_dashboard.pipeline.remote`'s event batches, :mod:`~otel_dashboard.pipeline.otlp_exporters`'
metrics and logs). Standard library only (``http.client``): nothing to install in the agents' process.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
from collections.abc import Callable, Mapping
from typing import NamedTuple

__all__ = ["Answer", "KeptAliveConnection", "retry_after_seconds"]


class Answer(NamedTuple):
    """What one POST came back with.

    Attributes:
        status: the HTTP status, None when no answer came (connection refused, reset, timed out).
        detail: ``"HTTP <status> <the answer's first 200 bytes>"``, or the error.
        payload: the answer's body (empty without an answer).
        retry_after: the answer's ``Retry-After`` in seconds, None when absent or unusable.
    """

    status: int | None
    detail: str
    payload: bytes
    retry_after: float | None


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header as seconds (0 to a day); None for none, an HTTP date or nonsense."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # an HTTP date: not worth parsing here
    return seconds if 0 <= seconds < 86_400 else None


class KeptAliveConnection:
    """A connection opened on first use, kept between requests, reopened once when the server closed
    it while idle. Used from one thread, except :meth:`abort`."""

    def __init__(self, scheme: str, host: str, port: int | None) -> None:
        self._scheme, self._host, self._port = scheme, host, port
        self._conn: http.client.HTTPConnection | None = None
        self._ssl_context: ssl.SSLContext | None = None

    def post(
        self, path: str, body: bytes, headers: Mapping[str, str], *, timeout_seconds: Callable[[], float]
    ) -> Answer:
        """POST ``body`` to ``path``; a second try only when a kept-alive connection turns out closed.

        Args:
            timeout_seconds: the socket timeout for an attempt, asked before each (a deadline's rest).
        """
        for _ in range(2):
            timeout = timeout_seconds()
            reused = self._conn is not None
            try:
                conn = self._connection(timeout)
                conn.request("POST", path, body=body, headers=dict(headers))
                response = conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if reused and not isinstance(exc, TimeoutError):
                    continue  # the server closed the idle connection: reopen at once
                return Answer(None, f"{type(exc).__name__}: {exc}", b"", None)
            if response.will_close:
                self.close()
            detail = f"HTTP {response.status} {payload[:200].decode('utf-8', 'replace')}"
            return Answer(response.status, detail, payload,
                          retry_after_seconds(response.getheader("Retry-After")))
        return Answer(None, "connection closed", b"", None)

    def abort(self) -> None:
        """Cut a request in flight short (from another thread: shutdown)."""
        sock = getattr(self._conn, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Close the connection (the next post opens a new one); idempotent."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        conn = self._conn
        if conn is None:
            if self._scheme == "https":
                if self._ssl_context is None:
                    self._ssl_context = ssl.create_default_context()
                conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=timeout, context=self._ssl_context
                )
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
            self._conn = conn
        else:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
        return conn
