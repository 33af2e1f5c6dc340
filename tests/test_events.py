"""The event model: types, severities, ids, timestamps and the wire form."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from otel_dashboard.model.events import DashboardEvent, EventType, Severity, format_timestamp, new_event_id

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_there_are_exactly_the_ten_event_types() -> None:
    assert {t.value for t in EventType} == {
        "agent_execution_started", "agent_execution_completed", "opportunity_discovered",
        "synthesis_started", "synthesis_completed", "quality_score_updated", "error_occurred",
        "system_health_updated", "agent_registered", "metrics_updated",
    }
    assert {s.value for s in Severity} == {"info", "success", "warning", "error"}


def test_the_wire_form_has_every_field() -> None:
    event = DashboardEvent.create(EventType.AGENT_EXECUTION_STARTED, {"agent_id": "a"},
                                  trace_id="0" * 32, span_id="1" * 16)
    event.seq = 7
    wire = orjson.loads(event.to_json())
    assert wire == {
        "seq": 7, "event_id": event.event_id, "event_type": "agent_execution_started",
        "timestamp": event.timestamp, "severity": "info", "data": {"agent_id": "a"},
        "trace_id": "0" * 32, "span_id": "1" * 16,
    }
    assert ISO_Z.match(wire["timestamp"])


def test_timestamps_are_utc_with_z_whatever_the_input() -> None:
    assert format_timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert format_timestamp(1_768_473_000_123_456_789) == "2026-01-15T10:30:00.123Z"
    naive = DashboardEvent("i", "error_occurred", datetime(2026, 1, 15, 10, 30), {})
    assert naive.timestamp == "2026-01-15T10:30:00.000Z"  # naive is read as UTC
    zoned = datetime(2026, 1, 15, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    assert DashboardEvent("i", "error_occurred", zoned, {}).timestamp == "2026-01-15T10:30:00.000Z"
    assert DashboardEvent("i", "error_occurred", 0.5, {}).timestamp == "1970-01-01T00:00:00.500Z"


def test_event_ids_are_unique() -> None:
    ids = {new_event_id() for _ in range(10_000)}
    assert len(ids) == 10_000


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"event_type": "nope"}, "event_type"), ({"severity": "fatal"}, "severity"),
     ({"timestamp": object()}, "timestamp")],
)
def test_invalid_fields_raise_value_error_naming_the_field(kwargs: dict, field: str) -> None:
    args = {"event_id": "i", "event_type": "error_occurred", "timestamp": "2026-01-01T00:00:00.000Z",
            "data": {}, **kwargs}
    with pytest.raises(ValueError, match=field):
        DashboardEvent(**args)


def test_data_that_json_cannot_encode_is_sent_as_text() -> None:
    class Weird:
        def __str__(self) -> str:
            return "weird"

    event = DashboardEvent.create(EventType.ERROR_OCCURRED, {"obj": Weird()})
    assert orjson.loads(event.to_json_bytes())["data"]["obj"] == "weird"


def test_from_dict_round_trips_and_names_bad_fields() -> None:
    event = DashboardEvent.create(EventType.SYNTHESIS_STARTED, {"phase": "p"}, "info")
    event.seq = 3
    again = DashboardEvent.from_dict(event.to_dict())
    assert again == event
    with pytest.raises(ValueError, match="event_type"):
        DashboardEvent.from_dict({"data": {}})
    with pytest.raises(ValueError, match="data"):
        DashboardEvent.from_dict({"event_type": "error_occurred", "data": []})


def test_an_unnumbered_wire_form_comes_back_numbered_with_the_bytes_a_fresh_encoding_gives() -> None:
    event = DashboardEvent.create(EventType.ERROR_OCCURRED, {"message": "ü <b>", "n": [1, 2.5, None]},
                                  Severity.ERROR, trace_id="ab" * 16, span_id="cd" * 8)
    numbered = DashboardEvent.from_unnumbered_json(event.to_json_bytes(), 42)
    assert numbered.seq == 42
    fresh = DashboardEvent.from_dict({**event.to_dict(), "seq": 42})
    assert numbered.to_json_bytes() == fresh.to_json_bytes()
    assert orjson.loads(numbered.to_json_bytes())["seq"] == 42


@pytest.mark.parametrize(("raw", "named"), [(b"{not json", "event"), (b'{"data": {}}', "event_type")])
def test_an_unnumbered_wire_form_that_is_not_an_event_is_a_value_error(raw: bytes, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        DashboardEvent.from_unnumbered_json(raw, 1)
