"""Validation of ``POST /api/events`` bodies: remote processors and other languages push events here.

The body is one event object in the wire form of DESIGN.md ("Event on the wire") or a batch
``{"events": [event, ...]}``. A request is accepted whole or refused whole: the first invalid field
raises :class:`IngestError`, which names it (``"events[3].event_type"`` in a batch, ``"event_type"``
for a single event), and nothing of that request is kept. The server answers 400 with
:meth:`IngestError.to_dict` as the JSON body.

Field rules
    ``event_type``
        required; one of the ten :class:`~otel_dashboard.model.events.EventType` values.
    ``severity``
        optional (``"info"`` when missing or null); one of the :class:`~otel_dashboard.model.events.Severity`
        values.
    ``data``
        optional (``{}`` when missing or null); a JSON object that can be re-encoded (nested at most
        as deep as the JSON encoder allows).
    ``timestamp``
        optional (the time of receipt when missing or null); an ISO-8601 date-time string WITH a zone,
        ``Z`` or an offset (``2026-01-15T10:30:00Z``, ``2026-01-15T11:30:00.123456+01:00``). It is
        normalized to UTC with millisecond precision and a ``Z``; zone-less and numeric timestamps are
        refused.
    ``trace_id`` / ``span_id``
        optional or null; 32 / 16 hex digits, not all zero, normalized to lower case.
    ``event_id``
        optional (generated when missing or null); a non-empty string of at most 128 characters.
    ``seq``
        ignored, whatever its value: the server that accepts an event numbers it.
    other keys
        ignored, for forward compatibility.

    ``data.agent_id``, ``data.agent_name``, ``data.run_id``, ``data.parent_span_id``,
    ``data.service_name``
        when present: a string, a number, a boolean or null, never an object or an array (the state
        keys agents and runs on them).

An object is a batch when it has an ``events`` key and no ``event_type`` key. A batch holds at most
``max_events`` events; an empty batch is valid and accepts nothing.

Sizes (:mod:`otel_dashboard.model.limits`)
    Every string in ``data`` (a value at any depth, or a key) longer than ``max_string_bytes`` UTF-8
    bytes is cut, ending with ``"…[cut N bytes]"``; the event is kept. An event whose ``data``, its
    strings cut, is still over ``max_event_bytes`` bytes of JSON refuses the whole request: 413,
    :class:`IngestError` with ``status`` 413, naming the event (``"events[3].data"``, ``"index": 3``)
    and the parameter.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from otel_dashboard.model.events import DashboardEvent, EventType, Severity, format_timestamp, new_event_id
from otel_dashboard.model.limits import EventTooLarge, Limits

__all__ = [
    "IngestError",
    "normalize_timestamp",
    "parse_ingest_payload",
    "timestamp_to_unix_nano",
]

_MAX_EVENT_ID_CHARS = 128
_EVENT_TYPES = {member.value: member for member in EventType}
_SEVERITIES = {member.value: member for member in Severity}
_TRACE_ID_RE = re.compile(r"[0-9a-fA-F]{32}")
_SPAN_ID_RE = re.compile(r"[0-9a-fA-F]{16}")
_INDEX_RE = re.compile(r"events\[([0-9]+)\]")
# The data fields the state keys agents and runs on: a hashable JSON scalar or null, never a container.
_SCALAR_DATA_KEYS = ("agent_id", "agent_name", "run_id", "parent_span_id", "service_name")
_ISO_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:[.,]([0-9]{1,9}))?"
    r"(?:([Zz])|([+-])([0-9]{2}):?([0-9]{2}))"
)


class IngestError(ValueError):
    """An ingest body refused as a whole (HTTP 400, or 413 for an event over ``max_event_bytes``).

    Attributes:
        field: the offending field, e.g. ``"events[3].event_type"``; ``"body"`` for the body itself.
        message: what is wrong with it.
        status: the HTTP status to answer: 400, or 413 for an event too large.
        details: more keys of the JSON body (``"parameter"``, ``"max_event_bytes"``, ``"size"``).
    """

    def __init__(self, field: str, message: str, *, status: int = 400,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body: ``{"error": "<field>: <message>", "field": "<field>"}``, plus
        ``"index"`` (the event's place in the batch) when the field is in ``events[i]``, plus
        :attr:`details`."""
        body: dict[str, Any] = {"error": str(self), "field": self.field}
        match = _INDEX_RE.match(self.field)
        if match is not None:
            body["index"] = int(match.group(1))
        body.update(self.details)
        return body


def parse_ingest_payload(
    body: bytes, *, max_events: int = 10_000, limits: Limits | None = None
) -> list[DashboardEvent]:
    """Parses and validates one ingest body, all or nothing.

    Args:
        body: the request body (UTF-8 JSON; ``bytes``, ``bytearray``, ``memoryview`` or ``str``).
        max_events: the most events one request may carry.
        limits: the byte caps on event data (the accepting state's ``limits``, which also counts
            the cuts); the defaults of :class:`~otel_dashboard.model.limits.Limits` when None.

    Returns:
        The events, in request order, without ``seq`` (the accepting state assigns it), their long
        strings cut.

    Raises:
        IngestError: for any body that is not entirely valid (``status`` 413 for an event over
            ``max_event_bytes``); no other exception, whatever ``body`` is.
    """
    if limits is None:
        limits = Limits()
    if not isinstance(body, (bytes, bytearray, memoryview, str)):
        raise IngestError("body", "must be bytes")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise IngestError("body", f"invalid JSON: {exc}"[:300]) from None
    if not isinstance(document, dict):
        raise IngestError("body", "must be a JSON object (one event or {\"events\": [...]})")
    if "events" in document and "event_type" not in document:
        items = document["events"]
        if not isinstance(items, list):
            raise IngestError("events", "must be an array of event objects")
        if len(items) > max_events:
            raise IngestError("events", f"at most {max_events} events per request, got {len(items)}")
        return [_event(item, f"events[{index}].", limits) for index, item in enumerate(items)]
    return [_event(document, "", limits)]


def _event(item: Any, prefix: str, limits: Limits) -> DashboardEvent:
    if not isinstance(item, dict):
        raise IngestError(prefix.rstrip(".") or "body", "must be an event object")

    if "event_type" not in item:
        raise IngestError(prefix + "event_type", "missing")
    raw_type = item["event_type"]
    if not isinstance(raw_type, str):
        raise IngestError(prefix + "event_type", "must be a string")
    event_type = _EVENT_TYPES.get(raw_type)
    if event_type is None:
        raise IngestError(prefix + "event_type", f"unknown event type {raw_type[:64]!r}")

    raw_severity = item.get("severity")
    if raw_severity is None:
        severity = Severity.INFO
    elif not isinstance(raw_severity, str) or raw_severity not in _SEVERITIES:
        raise IngestError(
            prefix + "severity", f"must be one of {', '.join(_SEVERITIES)}, got {_show(raw_severity)}"
        )
    else:
        severity = _SEVERITIES[raw_severity]

    data = item.get("data")
    if data is None:
        data = {}
    elif not isinstance(data, dict):
        raise IngestError(prefix + "data", "must be an object")
    else:
        try:
            orjson.dumps(data)
        except orjson.JSONEncodeError:
            raise IngestError(prefix + "data", "nested too deeply") from None
        for key in _SCALAR_DATA_KEYS:
            value = data.get(key)
            if isinstance(value, (dict, list)):
                raise IngestError(
                    f"{prefix}data.{key}", f"must be a string, a number or null, got {_show(value)}"
                )
        try:
            data = limits.bound(data, shrink=False)
        except EventTooLarge as exc:
            raise IngestError(
                prefix + "data", str(exc), status=413,
                details={"parameter": "max_event_bytes", "max_event_bytes": exc.max_event_bytes,
                         "size": exc.size},
            ) from None

    raw_timestamp = item.get("timestamp")
    if raw_timestamp is None:
        timestamp = format_timestamp()
    else:
        try:
            timestamp = normalize_timestamp(raw_timestamp)
        except ValueError as exc:
            raise IngestError(prefix + "timestamp", str(exc)) from None

    trace_id = _hex_id(item.get("trace_id"), _TRACE_ID_RE, prefix + "trace_id", 32)
    span_id = _hex_id(item.get("span_id"), _SPAN_ID_RE, prefix + "span_id", 16)

    event_id = item.get("event_id")
    if event_id is None:
        event_id = new_event_id()
    elif not isinstance(event_id, str) or not event_id:
        raise IngestError(prefix + "event_id", "must be a non-empty string")
    elif len(event_id) > _MAX_EVENT_ID_CHARS:
        raise IngestError(prefix + "event_id", f"must be at most {_MAX_EVENT_ID_CHARS} characters")

    return DashboardEvent(event_id, event_type, timestamp, data, severity, trace_id, span_id)


def _hex_id(value: Any, pattern: re.Pattern[str], field: str, digits: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise IngestError(field, f"must be {digits} hex digits or null, got {_show(value)}")
    if not value.strip("0"):
        raise IngestError(field, "must not be all zero")
    return value.lower()


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value[:64])
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    return f"a JSON {'array' if isinstance(value, list) else 'object'}"


# ---------------------------------------------------------------------------------- timestamps
def _parse_iso(value: Any) -> tuple[datetime, int]:
    """The UTC datetime (whole seconds) and the nanoseconds of an ISO-8601 string with a zone."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO-8601 date-time string with a zone, like 2026-01-15T10:30:00Z")
    match = _ISO_RE.fullmatch(value)
    if match is None:
        raise ValueError(
            f"must be an ISO-8601 date-time with a zone ('Z' or an offset), got {value[:64]!r}"
        )
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    offset_minutes = 0
    if not zulu:
        if int(off_h) > 23 or int(off_m) > 59:
            raise ValueError(f"invalid zone offset in {value[:64]!r}")
        offset_minutes = (int(off_h) * 60 + int(off_m)) * (-1 if sign == "-" else 1)
    try:
        local = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second),
            tzinfo=timezone(timedelta(minutes=offset_minutes)),
        )
        utc = local.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise ValueError(f"not a valid date and time: {value[:64]!r}") from None
    nanos = int((fraction or "0").ljust(9, "0"))
    return utc, nanos


def normalize_timestamp(value: Any) -> str:
    """An ISO-8601 date-time string with a zone, as UTC with milliseconds and a ``Z``.

    Raises:
        ValueError: not a string, no zone, or not a valid date and time.
    """
    utc, nanos = _parse_iso(value)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{nanos // 1_000_000:03d}Z"
    )


def timestamp_to_unix_nano(value: Any) -> int | None:
    """Nanoseconds since the Unix epoch of an ISO-8601 string with a zone; ``None`` if it is not one."""
    try:
        utc, nanos = _parse_iso(value)
    except ValueError:
        return None
    return calendar.timegm(utc.timetuple()) * 1_000_000_000 + nanos
