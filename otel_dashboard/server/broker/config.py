"""How replicas share their events (:class:`BrokerConfig`, ``serve --broker``), without Redis or aiohttp:
the CLI and the server options read it before either is needed."""

from __future__ import annotations

import os
import socket
import urllib.parse
from dataclasses import dataclass

__all__ = ["BrokerBufferFull", "BrokerConfig", "redact_url"]

_SCHEMES = ("redis", "rediss", "unix")


class BrokerBufferFull(Exception):
    """Redis is unreachable and the replica's buffer has no room for more events (ingest answers 503)."""


def redact_url(url: str) -> str:
    """``url`` without its password (for logs, ``/health`` and ``/stats``)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urllib.parse.urlunsplit(parts._replace(netloc=user + netloc))


@dataclass(frozen=True)
class BrokerConfig:
    """Where and how replicas share their events.

    Args:
        url: ``redis://[user:password@]host:port/db``, ``rediss://`` (TLS) or ``unix://path``.
        prefix: the Redis keys are ``<prefix>:events`` (the stream), ``<prefix>:seq``,
            ``<prefix>:agents`` and ``<prefix>:leader``; one cluster per prefix.
        max_stream_events: the stream keeps about this many newest events (``XADD MAXLEN ~``).
        max_buffered_events: events a replica holds while Redis is unreachable; beyond, ingest
            answers 503 and in-process events are dropped (and counted).
        replica: this replica's name (``host:pid`` by default), in ``system_health_updated``.
        snapshot_interval_seconds: how often the leader saves the derived state (counts, running
            agents, opportunities) for replicas that join after the stream dropped old events.
        max_entry_bytes: the longest stream entry a replica reads into an event or span records;
            a longer one is skipped and counted (``broker.skipped_entries.too_large`` in ``/stats``).
            The default is twice the default request body limit, so no entry a replica appended is
            ever refused.

    Raises:
        ValueError: an invalid field, named in the message.
    """

    url: str
    prefix: str = "otel_dashboard"
    max_stream_events: int = 100_000
    max_buffered_events: int = 100_000
    replica: str | None = None
    snapshot_interval_seconds: float = 5.0
    max_entry_bytes: int = 32 * 1024 * 1024

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or urllib.parse.urlsplit(self.url).scheme not in _SCHEMES:
            raise ValueError(f"broker url must start with redis://, rediss:// or unix://, got "
                             f"{redact_url(self.url) if isinstance(self.url, str) else self.url!r}")
        if not isinstance(self.prefix, str) or not self.prefix or len(self.prefix) > 100:
            raise ValueError(f"broker prefix must be a non-empty string of at most 100 characters, "
                             f"got {self.prefix!r}")
        for name in ("max_stream_events", "max_buffered_events"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100_000_000:
                raise ValueError(f"broker {name} must be an integer between 1 and 100000000, got {value!r}")
        size = self.max_entry_bytes
        if not isinstance(size, int) or isinstance(size, bool) or not 1024 <= size <= 2**31:
            raise ValueError(f"broker max_entry_bytes must be an integer between 1024 and {2**31}, "
                             f"got {size!r}")
        interval = self.snapshot_interval_seconds
        if (not isinstance(interval, (int, float)) or isinstance(interval, bool)
                or not 0 < interval <= 3600):
            raise ValueError(f"broker snapshot_interval_seconds must be a number of seconds in (0, 3600], "
                             f"got {interval!r}")
        if self.replica is not None and (not isinstance(self.replica, str) or len(self.replica) > 200):
            raise ValueError(
                f"broker replica must be a string of at most 200 characters, got {self.replica!r}")

    @property
    def replica_name(self) -> str:
        return self.replica or f"{socket.gethostname()}:{os.getpid()}"


