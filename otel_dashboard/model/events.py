"""The dashboard's event model: the ten event types, severities and :class:`DashboardEvent`."""

from __future__ import annotations

import enum
import itertools
import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

__all__ = [
    "DashboardEvent",
    "EventType",
    "QualityThresholds",
    "Severity",
    "format_timestamp",
    "json_dumps",
    "new_event_id",
]


class EventType(str, enum.Enum):
    """The ten dashboard event types (their values are the wire names)."""

    AGENT_EXECUTION_STARTED = "agent_execution_started"
    AGENT_EXECUTION_COMPLETED = "agent_execution_completed"
    OPPORTUNITY_DISCOVERED = "opportunity_discovered"
    SYNTHESIS_STARTED = "synthesis_started"
    SYNTHESIS_COMPLETED = "synthesis_completed"
    QUALITY_SCORE_UPDATED = "quality_score_updated"
    ERROR_OCCURRED = "error_occurred"
    SYSTEM_HEALTH_UPDATED = "system_health_updated"
    AGENT_REGISTERED = "agent_registered"
    METRICS_UPDATED = "metrics_updated"

    def __str__(self) -> str:
        return self.value


class Severity(str, enum.Enum):
    """How an event is colored on the page."""

    INFO = "info"
    SUCCESS = "success"
    WARNING = "warning"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class QualityThresholds:
    """Score thresholds (0-100) that turn a quality score into a severity.

    A score >= ``success`` is ``success``, >= ``warning`` is ``warning``, anything lower ``error``.
    """

    success: float = 95.0
    warning: float = 90.0

    def __post_init__(self) -> None:
        for name in ("success", "warning"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or math.isnan(value) or not 0 <= value <= 100:
                raise ValueError(f"{name} must be a number between 0 and 100, got {value!r}")
        if self.warning > self.success:
            raise ValueError("warning must not be greater than success")

    def severity(self, score: float) -> Severity:
        """The severity of ``score`` under these thresholds."""
        if score >= self.success:
            return Severity.SUCCESS
        if score >= self.warning:
            return Severity.WARNING
        return Severity.ERROR


# Event ids: a per-process random prefix plus a counter. Unique across processes and much cheaper
# than uuid4() on the span hot path; next() on itertools.count is atomic under the GIL.
_ID_PREFIX = os.urandom(6).hex()
_ID_FORMAT = _ID_PREFIX + "-%x"  # %-formatting: cheaper than an f-string with a format spec
_id_counter = itertools.count(1)


def new_event_id() -> str:
    """A new process-unique event id (``"<12 hex>-<counter hex>"``)."""
    return _ID_FORMAT % next(_id_counter)


# The "YYYY-MM-DDTHH:MM:SS" part of the last second formatted: events come in bursts within the
# same second, and gmtime + formatting is most of the cost. One tuple, replaced atomically.
_second_cache: tuple[int, str] = (-1, "")
# ".000Z" to ".999Z": indexing this is several times cheaper than formatting the milliseconds.
_MILLIS_SUFFIXES = tuple(f".{ms:03d}Z" for ms in range(1000))


def format_timestamp(epoch_ns: int | None = None) -> str:
    """An ISO-8601 UTC timestamp with millisecond precision and a ``Z``.

    Args:
        epoch_ns: nanoseconds since the Unix epoch; now when ``None``.
    """
    global _second_cache
    if epoch_ns is None:
        epoch_ns = time.time_ns()
    seconds = epoch_ns // 1_000_000_000
    cached_second, prefix = _second_cache
    if cached_second != seconds:
        t = time.gmtime(seconds)
        prefix = (
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        )
        _second_cache = (seconds, prefix)
    return prefix + _MILLIS_SUFFIXES[epoch_ns // 1_000_000 % 1000]


def _normalize_timestamp(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            # The original design produced naive timestamps; we read naive ones as UTC.
            value = value.replace(tzinfo=timezone.utc)
        return format_timestamp(round(value.timestamp() * 1_000_000) * 1000)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format_timestamp(int(value * 1_000_000_000))
    raise ValueError(f"timestamp must be an ISO string, a datetime or epoch seconds, got {value!r}")


_UNNUMBERED_PREFIX = b'{"seq":null,'


def _json_default(value: Any) -> Any:
    # Never raise while serializing event data: anything orjson cannot encode becomes its text.
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def json_dumps(obj: Any, *, option: int | None = None) -> bytes:
    """JSON bytes of ``obj``; never raises for values orjson cannot encode (they become text)."""
    return orjson.dumps(obj, default=_json_default, option=option)


@dataclass(slots=True)
class DashboardEvent:
    """One dashboard event.

    Args:
        event_id: unique id of the event.
        event_type: an :class:`EventType` (or its string value).
        timestamp: UTC ISO-8601 string with ``Z``; a ``datetime`` or epoch seconds is converted.
        data: the event's fields; must be JSON-serializable (anything else is sent as text).
        severity: a :class:`Severity` (or its string value).
        trace_id: 32 hex digits of the span's trace, if the event came from a span.
        span_id: 16 hex digits of the span, if the event came from a span.
        seq: assigned by the :class:`~otel_dashboard.state.dashboard.DashboardState` that accepts the event.

    Raises:
        ValueError: an unknown ``event_type`` or ``severity``, or an unusable ``timestamp``.
    """

    event_id: str
    event_type: EventType
    timestamp: str
    data: dict[str, Any] = field(default_factory=dict)
    severity: Severity = Severity.INFO
    trace_id: str | None = None
    span_id: str | None = None
    seq: int | None = None
    # (seq, wire JSON) of the last serialization: an accepted event is encoded once and the bytes
    # shared by the broadcast, the store and the history API. Keyed by seq because the wire form
    # holds it; an event's data must not change once it is published.
    _json_cache: tuple[int | None, bytes] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.event_type) is not EventType:
            try:
                self.event_type = EventType(self.event_type)
            except ValueError:
                raise ValueError(f"event_type: unknown event type {self.event_type!r}") from None
        if type(self.severity) is not Severity:
            try:
                self.severity = Severity(self.severity)
            except ValueError:
                raise ValueError(f"severity: unknown severity {self.severity!r}") from None
        if type(self.timestamp) is not str:
            self.timestamp = _normalize_timestamp(self.timestamp)
        if self.data is None:
            self.data = {}

    @classmethod
    def create(
        cls,
        event_type: EventType | str,
        data: dict[str, Any] | None = None,
        severity: Severity | str = Severity.INFO,
        *,
        timestamp_ns: int | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
    ) -> DashboardEvent:
        """Build an event with a fresh id and a timestamp (now, or ``timestamp_ns``)."""
        # The fields are typed as __post_init__ leaves them: it turns a str type or severity into the enum.
        return cls(
            new_event_id(),
            event_type,  # type: ignore[arg-type]
            format_timestamp(timestamp_ns),
            data if data is not None else {},
            severity,  # type: ignore[arg-type]
            trace_id,
            span_id,
        )

    def to_dict(self) -> dict[str, Any]:
        """The wire form of DESIGN.md ("Event on the wire")."""
        return {
            "seq": self.seq,
            "event_id": self.event_id,
            "event_type": self.event_type.value,
            "timestamp": self.timestamp,
            "severity": self.severity.value,
            "data": self.data,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
        }

    def to_json_bytes(self) -> bytes:
        """The wire form as UTF-8 JSON bytes."""
        cached = self._json_cache
        if cached is not None and cached[0] == self.seq:
            return cached[1]
        encoded = json_dumps(self.to_dict())
        self._json_cache = (self.seq, encoded)
        return encoded

    def to_json(self) -> str:
        """The wire form as a JSON string."""
        return self.to_json_bytes().decode()

    @classmethod
    def from_unnumbered_json(cls, raw: bytes, seq: int) -> DashboardEvent:
        """Rebuild an event from the wire form it had before it was numbered (``"seq": null``),
        and number it ``seq``; its numbered wire form reuses ``raw`` instead of encoding again.

        Raises:
            ValueError: ``raw`` is not an event's wire form (the field is named).
        """
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"event: not JSON ({exc})") from None
        event = cls.from_dict(payload)
        event.seq = seq
        if raw.startswith(_UNNUMBERED_PREFIX):
            event._json_cache = (seq, b'{"seq":%d,' % seq + raw[len(_UNNUMBERED_PREFIX):])
        return event

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> DashboardEvent:
        """Rebuild an event from its wire form (``seq`` is kept if present).

        Raises:
            ValueError: a missing or invalid field, named in the message.
        """
        if not isinstance(payload, dict):
            raise ValueError("event must be a JSON object")
        for name in ("event_type",):
            if name not in payload:
                raise ValueError(f"{name}: missing")
        data = payload.get("data", {})
        if not isinstance(data, dict):
            raise ValueError("data: must be an object")
        event_id = payload.get("event_id") or new_event_id()
        if not isinstance(event_id, str):
            raise ValueError("event_id: must be a string")
        timestamp = payload.get("timestamp") or format_timestamp()
        for name in ("trace_id", "span_id"):
            value = payload.get(name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name}: must be a string or null")
        seq = payload.get("seq")
        if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool)):
            raise ValueError("seq: must be an integer")
        return cls(
            event_id,
            payload["event_type"],
            timestamp,
            data,
            payload.get("severity", Severity.INFO),
            payload.get("trace_id"),
            payload.get("span_id"),
            seq,
        )
