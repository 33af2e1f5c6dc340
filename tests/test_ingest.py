"""parse_ingest_payload: single events and batches, every refusal names its field, all or nothing, and
no input whatsoever raises anything but IngestError."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import pytest
from fuzz_support import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from otel_dashboard.model.events import DashboardEvent, EventType, Severity
from otel_dashboard.model.ingest import (
    IngestError,
    normalize_timestamp,
    parse_ingest_payload,
    timestamp_to_unix_nano,
)

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"


def _valid(**overrides: Any) -> dict[str, Any]:
    event = {
        "event_id": "remote-1",
        "event_type": "agent_execution_started",
        "timestamp": "2026-01-15T10:30:00.000Z",
        "severity": "info",
        "data": {"agent_id": "a1", "agent_name": "Researcher", "task_description": "t"},
        "trace_id": TRACE_ID,
        "span_id": SPAN_ID,
    }
    event.update(overrides)
    return event


def _body(document: Any) -> bytes:
    return json.dumps(document).encode()


def test_one_event() -> None:
    (event,) = parse_ingest_payload(_body(_valid()))
    assert event == DashboardEvent(
        "remote-1", EventType.AGENT_EXECUTION_STARTED, "2026-01-15T10:30:00.000Z",
        {"agent_id": "a1", "agent_name": "Researcher", "task_description": "t"},
        Severity.INFO, TRACE_ID, SPAN_ID, None,
    )


def test_a_batch_keeps_order() -> None:
    events = [_valid(event_id=f"e{i}", event_type=t.value) for i, t in enumerate(EventType)]
    parsed = parse_ingest_payload(_body({"events": events}))
    assert [e.event_id for e in parsed] == [f"e{i}" for i in range(len(EventType))]
    assert [e.event_type for e in parsed] == list(EventType)


def test_an_empty_batch_accepts_nothing() -> None:
    assert parse_ingest_payload(b'{"events": []}') == []


def test_defaults_and_normalization() -> None:
    (event,) = parse_ingest_payload(_body({
        "event_type": "metrics_updated",
        "trace_id": TRACE_ID.upper(),
        "span_id": None,
        "timestamp": "2026-01-15T11:30:00.123456+01:00",
        "seq": 17,
        "some_future_field": 1,
    }))
    assert event.event_id  # generated
    assert event.severity is Severity.INFO
    assert event.data == {}
    assert event.trace_id == TRACE_ID
    assert event.span_id is None
    assert event.timestamp == "2026-01-15T10:30:00.123Z"
    assert event.seq is None  # the server assigns seq; a client's is ignored


def test_missing_timestamp_is_the_time_of_receipt() -> None:
    (event,) = parse_ingest_payload(b'{"event_type": "agent_registered"}')
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event.timestamp)


def test_generated_event_ids_are_unique() -> None:
    events = parse_ingest_payload(_body({"events": [{"event_type": "agent_registered"}] * 3}))
    assert len({e.event_id for e in events}) == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-15T10:30:00Z", "2026-01-15T10:30:00.000Z"),
        ("2026-01-15T10:30:00.5z", "2026-01-15T10:30:00.500Z"),
        ("2026-01-15 10:30:00.123456789Z", "2026-01-15T10:30:00.123Z"),
        ("2026-01-15T10:30:00,25+00:00", "2026-01-15T10:30:00.250Z"),
        ("2026-01-15T01:00:00-05:30", "2026-01-15T06:30:00.000Z"),
        ("2026-01-01T00:30:00+0100", "2025-12-31T23:30:00.000Z"),
    ],
)
def test_timestamps_with_a_zone_are_normalized_to_utc_millis(text: str, expected: str) -> None:
    assert normalize_timestamp(text) == expected
    (event,) = parse_ingest_payload(_body(_valid(timestamp=text)))
    assert event.timestamp == expected


def test_timestamp_to_unix_nano() -> None:
    assert timestamp_to_unix_nano("1970-01-01T00:00:01.000000001Z") == 1_000_000_001
    assert timestamp_to_unix_nano("2026-01-15T10:30:00.000Z") == 1_768_473_000_000_000_000
    assert timestamp_to_unix_nano("yesterday") is None
    assert timestamp_to_unix_nano(None) is None


BAD_EVENTS = [
    ({"event_type": None}, "event_type"),
    ({"event_type": 3}, "event_type"),
    ({"event_type": "agent_exploded"}, "event_type"),
    ({"severity": "critical"}, "severity"),
    ({"severity": 1}, "severity"),
    ({"data": []}, "data"),
    ({"data": "text"}, "data"),
    ({"timestamp": "2026-01-15T10:30:00"}, "timestamp"),  # no zone
    ({"timestamp": "2026-01-15"}, "timestamp"),
    ({"timestamp": "2026-02-30T10:30:00Z"}, "timestamp"),
    ({"timestamp": "2026-01-15T25:30:00Z"}, "timestamp"),
    ({"timestamp": "2026-01-15T10:30:00+24:00"}, "timestamp"),
    ({"timestamp": "0001-01-01T00:30:00+01:00"}, "timestamp"),  # before year 1 in UTC
    ({"timestamp": 1768473000}, "timestamp"),
    ({"timestamp": "next tuesday"}, "timestamp"),
    ({"trace_id": "abc"}, "trace_id"),
    ({"trace_id": "z" * 32}, "trace_id"),
    ({"trace_id": "0" * 32}, "trace_id"),
    ({"trace_id": 5}, "trace_id"),
    ({"span_id": TRACE_ID}, "span_id"),
    ({"span_id": ["b7ad6b7169203331"]}, "span_id"),
    ({"event_id": 7}, "event_id"),
    ({"event_id": ""}, "event_id"),
    ({"event_id": "x" * 129}, "event_id"),
]


@pytest.mark.parametrize(("override", "field"), BAD_EVENTS)
def test_each_invalid_field_is_named(override: dict[str, Any], field: str) -> None:
    with pytest.raises(IngestError) as info:
        parse_ingest_payload(_body(_valid(**override)))
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert info.value.to_dict() == {"error": str(info.value), "field": field}


@pytest.mark.parametrize(("override", "field"), BAD_EVENTS[::3])
def test_in_a_batch_the_field_names_its_event(override: dict[str, Any], field: str) -> None:
    batch = {"events": [_valid(event_id="ok-0"), _valid(event_id="ok-1"), _valid(**override)]}
    with pytest.raises(IngestError) as info:  # nothing of the batch is accepted
        parse_ingest_payload(_body(batch))
    assert info.value.field == f"events[2].{field}"


def test_missing_event_type() -> None:
    event = _valid()
    del event["event_type"]
    with pytest.raises(IngestError, match=r"^event_type: missing$"):
        parse_ingest_payload(_body(event))
    with pytest.raises(IngestError) as info:
        parse_ingest_payload(_body({"events": [_valid(), event]}))
    assert info.value.field == "events[1].event_type"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"", "body"),
        (b"{", "body"),
        (b"\xff\xfe{}", "body"),
        (b"[]", "body"),
        (b"null", "body"),
        (b"42", "body"),
        (b'{"events": {}}', "events"),
        (b'{"events": null}', "events"),
        (b'{"events": [1]}', "events[0]"),
        (b'{"events": [{"event_type": "agent_registered"}, "x"]}', "events[1]"),
        (b"NaN", "body"),
        (b'{"event_type": "agent_registered", "data": {"n": 1e999}}', "body"),
    ],
)
def test_invalid_bodies(body: bytes, field: str) -> None:
    with pytest.raises(IngestError) as info:
        parse_ingest_payload(body)
    assert info.value.field == field


def test_too_many_events_names_events() -> None:
    body = _body({"events": [{"event_type": "agent_registered"}] * 11})
    with pytest.raises(IngestError) as info:
        parse_ingest_payload(body, max_events=10)
    assert info.value.field == "events"
    assert len(parse_ingest_payload(body, max_events=11)) == 11


def test_data_nested_too_deep_to_re_encode() -> None:
    nested: Any = {}
    for _ in range(300):
        nested = {"x": nested}
    with pytest.raises(IngestError) as info:
        parse_ingest_payload(_body(_valid(data=nested)))
    assert info.value.field == "data"


def test_an_object_with_event_type_is_one_event_even_with_an_events_key() -> None:
    (event,) = parse_ingest_payload(_body(_valid(events=[1, 2])))
    assert event.event_type is EventType.AGENT_EXECUTION_STARTED


def test_non_bytes_input() -> None:
    with pytest.raises(IngestError):
        parse_ingest_payload(None)  # type: ignore[arg-type]
    assert parse_ingest_payload('{"event_type": "agent_registered"}')  # str is fine too


# ---------------------------------------------------------------------------------- property tests
def _check(body: Any) -> None:
    """The property: a list of re-encodable events, or an IngestError naming a field; nothing else."""
    try:
        events = parse_ingest_payload(body)
    except IngestError as exc:
        assert isinstance(exc.field, str) and exc.field
        return
    for event in events:
        assert isinstance(event, DashboardEvent)
        wire = orjson.loads(event.to_json_bytes())
        assert DashboardEvent.from_dict(wire) == event


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=30,
)
def _mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly valid values, sometimes anything JSON."""
    return st.integers(0, 3).flatmap(lambda n: json_values if n == 0 else valid)


id_values = _mostly(st.sampled_from([TRACE_ID, SPAN_ID, TRACE_ID.upper(), "0" * 32, None]))
timestamp_values = _mostly(st.one_of(
    st.sampled_from(["2026-01-15T10:30:00Z", "2026-01-15T10:30:00.123+05:45", "9999-12-31T23:59:59-12:00",
                     "0001-01-01T00:00:00+00:01", "2026-01-15T10:30:00"]),
    st.text(alphabet="0123456789TZ:-.+ ", max_size=32),
))
shaped_events = st.fixed_dictionaries(
    {"event_type": _mostly(st.sampled_from([t.value for t in EventType]))},
    optional={
        "event_id": _mostly(st.text(min_size=1, max_size=10)),
        "timestamp": timestamp_values,
        "severity": _mostly(st.sampled_from([s.value for s in Severity])),
        "data": _mostly(st.dictionaries(st.text(max_size=5), json_values, max_size=4)),
        "trace_id": id_values,
        "span_id": id_values,
        "seq": json_values,
        "events": json_values,
    },
)
loose_events = st.dictionaries(st.sampled_from(["event_type", "events", "data", "timestamp"]), json_values)
event_like = st.integers(0, 5).flatmap(lambda n: loose_events if n == 0 else shaped_events)
batches = st.fixed_dictionaries({"events": st.lists(_mostly(event_like), max_size=5)})
documents = st.integers(0, 5).flatmap(
    lambda n: json_values if n == 0 else batches if n <= 2 else event_like
)


def _encode(document: Any) -> bytes:
    # json.dumps writes NaN/Infinity, lone surrogates and huge integers: all fair game.
    return json.dumps(document).encode("utf-8", "surrogatepass")


@fuzz_settings(300)
@given(st.binary(max_size=200))
def test_property_random_bytes_only_raise_ingest_error(body: bytes) -> None:
    _check(body)


@fuzz_settings(300)
@given(documents)
def test_property_json_documents_only_raise_ingest_error(document: Any) -> None:
    _check(_encode(document))


@fuzz_settings(200)
@given(documents, st.integers(min_value=0, max_value=200))
def test_property_mangled_json_only_raises_ingest_error(document: Any, cut: int) -> None:
    body = _encode(document)
    _check(body[:cut])
    _check(body[cut:])
    _check(body.decode("utf-8", "replace"))
