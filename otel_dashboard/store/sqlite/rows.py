"""An event as a row of the ``events`` table, and back.

A row is the event's wire form as JSON plus the columns the queries filter on (type, severity,
agent id and name, service name) and its timestamp in Unix seconds (retention by age). Building a row never
raises: what SQLite or orjson cannot take is kept in the closest form they can.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import orjson

from otel_dashboard.model.events import DashboardEvent, Severity

_UNNUMBERED_PREFIX = b'{"seq":null,'

__all__ = ["decode_event", "event_row", "text_value", "timestamp_seconds"]

# (the "YYYY-MM-DDTHH:MM:SS" prefix, its Unix seconds) of the last timestamp parsed: events come in
# bursts within one second, and datetime parsing is a large part of building a row. Only the
# writer thread builds rows, so the cache needs no lock.
_second_cache: tuple[str, float] = ("", 0.0)


def timestamp_seconds(timestamp: str, fallback: float) -> float:
    """Unix seconds of an event timestamp (ISO 8601; naive means UTC); ``fallback`` if unreadable."""
    global _second_cache
    # Fast path for the form the dashboard writes itself: 2026-01-15T10:30:00.123Z
    if len(timestamp) == 24 and timestamp[19] == "." and timestamp[23] == "Z" and timestamp[20:23].isdigit():
        prefix, seconds = _second_cache
        if prefix != timestamp[:19]:
            parsed = _parse_iso_seconds(timestamp[:19] + "Z")
            if parsed is None:
                return fallback
            seconds = parsed
            _second_cache = (timestamp[:19], seconds)
        return seconds + int(timestamp[20:23]) / 1000
    parsed = _parse_iso_seconds(timestamp)
    return fallback if parsed is None else parsed


def _parse_iso_seconds(timestamp: str) -> float | None:
    try:
        text = timestamp[:-1] + "+00:00" if timestamp.endswith(("Z", "z")) else timestamp
        value = datetime.fromisoformat(text)
    except (ValueError, TypeError, AttributeError):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def _event_json(event: DashboardEvent) -> str:
    """The wire form as JSON text; never raises (an unencodable event keeps what can be kept)."""
    try:
        return event.to_json_bytes().decode()
    except Exception:  # e.g. an integer beyond 64 bits, which orjson refuses
        pass
    try:
        return json.dumps(event.to_dict(), default=str)
    except Exception:
        wire = event.to_dict()
        wire["data"] = {"_unserializable": repr(event.data)[:10_000]}
        return json.dumps(wire, default=str)


def text_value(value: str) -> str:
    """``value`` as SQLite can store it: lone surrogates (legal in JSON escapes) are escaped."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _name_column(value: Any) -> str | None:
    # Only a string is a name: an object or a number in data.agent_id matches no filter.
    return text_value(value) if isinstance(value, str) else None


def event_row(event: DashboardEvent, now: float) -> tuple[Any, ...]:
    """The values of :data:`~otel_dashboard.store.sqlite.schema.INSERT` for ``event``; ``now`` is
    its time for retention when its timestamp is unreadable."""
    data = event.data
    return (
        event.seq,
        text_value(str(event.event_id)),
        event.event_type.value,
        event.severity.value,
        _name_column(data.get("agent_id")),
        _name_column(data.get("agent_name")),
        timestamp_seconds(event.timestamp, now),
        _name_column(data.get("service_name")),
        _event_json(event),
    )


def decode_event(seq: int, text: str) -> DashboardEvent:
    """The event stored as ``text`` under ``seq``.

    Raises:
        Exception: the text is not an event's wire form (the reader counts and skips it).
    """
    prefix = f'{{"seq":{seq},'
    if text.startswith(prefix):
        # The text is the wire form the event had when it was written (event_row stores
        # to_json_bytes()): the event keeps it as its encoding, and an answer that sends the event
        # does not encode it again.
        try:
            return DashboardEvent.from_unnumbered_json(
                _UNNUMBERED_PREFIX + text[len(prefix):].encode("utf-8", "surrogatepass"), seq)
        except ValueError:
            pass  # the json fallback's text (lone surrogates, huge integers): read it as below
    try:
        wire = orjson.loads(text)
    except orjson.JSONDecodeError:  # written by the json fallback (lone surrogates, huge integers)
        wire = json.loads(text)
    return DashboardEvent(
        wire["event_id"],
        wire["event_type"],
        wire["timestamp"],
        wire.get("data") or {},
        Severity(wire.get("severity") or "info"),
        wire.get("trace_id"),
        wire.get("span_id"),
        seq,
    )
