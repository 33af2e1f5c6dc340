"""The byte caps on event data (otel_dashboard/model/limits.py) and every path that uses them: the
state's publish, publish_many and update_runs, the ingest validation, the snapshot."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from otel_dashboard.model.events import DashboardEvent, EventType
from otel_dashboard.model.ingest import IngestError, parse_ingest_payload
from otel_dashboard.model.limits import (
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_STRING_BYTES,
    EventTooLarge,
    Limits,
    bound_data,
    cut_marker,
    cut_text,
)
from otel_dashboard.model.span_records import span_records_from_events
from otel_dashboard.state.dashboard import DashboardState


def dropped(text: str) -> int:
    return int(text.rsplit("[cut ", 1)[1].removesuffix(" bytes]"))


# ------------------------------------------------------------------------------ cut_text
def test_a_short_string_is_the_same_object() -> None:
    text = "x" * 100
    assert cut_text(text, 100) is text
    wide = "\u00e9" * 50  # 100 bytes exactly
    assert cut_text(wide, 100) is wide


@pytest.mark.parametrize("char", ["a", "\u00e9", "\u20ac", "\U0001f600"])  # 1, 2, 3 and 4 bytes
@pytest.mark.parametrize("cap", [64, 100, 1000, 16 * 1024])
def test_a_long_string_is_cut_at_a_character_boundary_with_the_marker(char: str, cap: int) -> None:
    text = char * 20_000
    cut = cut_text(text, cap)
    size = len(cut.encode("utf-8"))
    assert size <= cap
    head = cut[: cut.rindex("\u2026[cut ")]
    assert head == char * len(head) and len(head) > 0
    assert len(head.encode("utf-8")) + dropped(cut) == len(text.encode("utf-8"))
    assert cut.endswith(cut_marker(dropped(cut)))


def test_the_marker_reads_as_documented() -> None:
    assert cut_marker(7340032) == "\u2026[cut 7340032 bytes]"
    # 64 bytes: 46 of text, 18 of marker ("…" is 3 bytes); 154 of the 200 dropped.
    assert cut_text("a" * 200, 64) == "a" * 46 + "\u2026[cut 154 bytes]"


# ------------------------------------------------------------------------------ bound_data
def test_data_without_long_strings_is_returned_as_it_is() -> None:
    data = {"agent_id": "a", "n": 1, "nested": {"list": ["x", 2, None]}, "f": 1.5}
    bounded, cuts, size = bound_data(data, 64, 100_000)
    assert bounded is data and cuts == 0 and size == 0
    # Under a tight event cap the size is measured exactly instead of estimated.
    assert bound_data(data, 64, 1024)[2] == len(orjson.dumps(data))


def test_strings_are_cut_at_any_depth_and_the_input_is_not_changed() -> None:
    long = "z" * 1000
    data = {"a": long, "b": [1, long, {"c": long}], long: "key", "d": ("t", long), "e": 5}
    original = orjson.dumps(data)
    bounded, cuts, _ = bound_data(data, 64, 100_000)
    assert cuts == 5
    assert orjson.dumps(data) == original  # the caller's dict is untouched
    assert list(bounded)[:2] == ["a", "b"] and bounded["e"] == 5
    for text in (bounded["a"], bounded["b"][1], bounded["b"][2]["c"], bounded["d"][1]):
        assert len(text.encode()) <= 64 and dropped(text) > 0
    (cut_key,) = [k for k in bounded if k.startswith("zzz")]
    assert len(cut_key.encode()) <= 64 and bounded[cut_key] == "key"
    assert bounded["b"][0] == 1 and bounded["d"][0] == "t"


def test_the_size_is_exact_only_when_it_may_be_over() -> None:
    small = {"s": "x" * 100}
    assert bound_data(small, 16 * 1024, 256 * 1024)[2] == 0
    wide = {f"k{i}": "v" * 100 for i in range(3000)}
    assert bound_data(wide, 16 * 1024, 256 * 1024)[2] == len(orjson.dumps(wide))


# ------------------------------------------------------------------------------ Limits
@pytest.mark.parametrize(("kwargs", "name"), [
    ({"max_string_bytes": 10}, "max_string_bytes"),
    ({"max_string_bytes": 1.5}, "max_string_bytes"),
    ({"max_event_bytes": 100}, "max_event_bytes"),
    ({"max_string_bytes": 4096, "max_event_bytes": 2048}, "max_event_bytes"),
    ({"max_snapshot_bytes": 1024}, "max_snapshot_bytes"),
    ({"max_string_bytes": True}, "max_string_bytes"),
])
def test_caps_are_validated_by_name(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Limits(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=name):
        DashboardState(**kwargs)  # type: ignore[arg-type]


def test_an_event_too_large_is_shrunk_or_refused_and_counted() -> None:
    limits = Limits(max_string_bytes=1024, max_event_bytes=4096)
    data = {"keep": "small", "big1": ["x" * 1000] * 10, "big2": {"y": "y" * 3000}}
    shrunk = limits.bound(data)
    assert len(orjson.dumps(shrunk)) <= 4096
    assert shrunk["keep"] == "small" and shrunk["big1"].startswith("\u2026[cut ")
    with pytest.raises(EventTooLarge) as refused:
        limits.bound(data, shrink=False)
    assert refused.value.size > 4096 and refused.value.max_event_bytes == 4096
    many = {f"k{i}": i for i in range(2000)}
    shrunk_many = limits.bound(many)
    assert len(orjson.dumps(shrunk_many)) <= 4096 and shrunk_many["_cut"].startswith("\u2026[cut ")
    # "x" * 1000 fits the 1024-byte string cap: only "y" * 3000 is cut, once per call.
    assert limits.counters() == {"cut_strings": 2, "shrunk_events": 2, "refused_oversized_events": 1,
                                 "snapshot_events_left_out": 0}


# ------------------------------------------------------------------------------ the state's paths
def test_publish_bounds_every_event_and_counts_in_the_stats() -> None:
    state = DashboardState(max_string_bytes=1024)
    data = {"source": "s", "error_message": "m" * 100_000}
    event = state.publish(DashboardEvent.create(EventType.ERROR_OCCURRED, data))
    assert len(event.data["error_message"].encode()) <= 1024
    assert data["error_message"] == "m" * 100_000  # the publisher's dict is its own
    assert len(event.to_json_bytes()) < 2048
    state.publish_many([DashboardEvent.create(EventType.ERROR_OCCURRED, {"x": "y" * 5000})
                        for _ in range(3)])
    assert all(len(e.to_json_bytes()) < 2048 for e in state.recent_events(10))
    stats = state.get_dashboard_stats()
    assert stats["cut_strings"] == 4 and stats["shrunk_events"] == 0


def test_the_direct_api_is_bounded_too() -> None:
    state = DashboardState(max_string_bytes=256)
    event = asyncio.run(state.agent_started("a", "A", "t" * 10_000, extra="e" * 10_000))
    assert len(event.data["task_description"].encode()) <= 256 and len(event.data["extra"]) <= 256
    assert state.get_active_agents()[0]["task_description"] == event.data["task_description"]


def test_open_runs_are_bounded() -> None:
    state = DashboardState(max_string_bytes=128)
    state.update_runs([{"run_id": "00000000000000a1", "task_description": "t" * 10_000,
                        "current_step": "s" * 500}])
    (run,) = state.get_open_runs()
    assert len(run["task_description"].encode()) <= 128 and len(run["current_step"].encode()) <= 128


def test_a_snapshot_leaves_out_the_oldest_events_over_max_snapshot_bytes() -> None:
    state = DashboardState(max_history=100, max_string_bytes=16 * 1024, max_event_bytes=64 * 1024,
                           max_snapshot_bytes=64 * 1024)
    for i in range(10):
        state.publish(DashboardEvent.create(EventType.ERROR_OCCURRED, {"i": i, "m": "x" * 16_000}))
    snapshot = state.snapshot(recent_limit=50)
    kept = [e["data"]["i"] for e in snapshot["events"]]
    assert kept == [6, 7, 8, 9]  # the newest, ascending: four of ~16,050 bytes fit in 64 KiB
    assert snapshot["seq"] == 10
    assert sum(len(orjson.dumps(e)) for e in snapshot["events"]) <= 64 * 1024
    assert state.get_counters()["snapshot_events_left_out"] == 6
    assert [e["data"]["i"] for e in asyncio.run(state.snapshot_async(recent_limit=50))["events"]] == kept


# ------------------------------------------------------------------------------ ingest
def test_ingest_cuts_strings_and_refuses_an_event_too_large_by_index() -> None:
    limits = Limits()
    (event,) = parse_ingest_payload(orjson.dumps(
        {"event_type": "error_occurred", "data": {"error_message": "e" * (DEFAULT_MAX_STRING_BYTES * 3)}}
    ), limits=limits)
    assert len(event.data["error_message"].encode()) <= DEFAULT_MAX_STRING_BYTES
    body = orjson.dumps({"events": [
        {"event_type": "error_occurred"},
        {"event_type": "error_occurred"},
        {"event_type": "error_occurred", "data": {f"k{i}": "v" * 100 for i in range(3000)}},
    ]})
    with pytest.raises(IngestError) as refused:
        parse_ingest_payload(body, limits=limits)
    error = refused.value
    assert error.status == 413
    details = error.to_dict()
    assert details["index"] == 2 and details["field"] == "events[2].data"
    assert details["parameter"] == "max_event_bytes" and details["max_event_bytes"] == DEFAULT_MAX_EVENT_BYTES
    assert limits.counters()["cut_strings"] == 1 and limits.counters()["refused_oversized_events"] == 1


@pytest.mark.parametrize("key", ["agent_id", "agent_name", "run_id", "parent_span_id", "service_name"])
@pytest.mark.parametrize("value", [{}, {"a": 1}, [], [1, 2]])
def test_ingest_refuses_a_container_where_the_state_keys_agents_and_runs(key: str, value: object) -> None:
    body = orjson.dumps({"events": [{"event_type": "agent_execution_started", "data": {"agent_id": "a"}},
                                    {"event_type": "agent_execution_completed", "data": {key: value}}]})
    with pytest.raises(IngestError) as refused:
        parse_ingest_payload(body)
    assert refused.value.status == 400
    assert refused.value.to_dict()["field"] == f"events[1].data.{key}"
    assert refused.value.to_dict()["index"] == 1


def test_every_validated_event_publishes_without_an_error() -> None:
    """What the ingest accepts, the state takes: an event the validation lets through never fails
    the publish (the 500 after a partial commit of issue 14)."""
    values = [{"a": 1}, [1, 2], "x", 3, 2.5, True, None, "0123456789abcdef", -1, 1e308, ""]
    keys = ["agent_id", "agent_name", "run_id", "parent_span_id", "service_name", "task_description",
            "started_at", "success", "quality_score", "opportunity_id", "duration_ms", "dimension_scores",
            "attributes", "error_message", "phase"]
    state = DashboardState(max_history=1000)
    for event_type in EventType:
        for key in keys:
            for value in values:
                body = orjson.dumps({
                    "event_type": event_type.value, "trace_id": "1" * 32, "span_id": "2" * 16,
                    "data": {"agent_id": "a1", "run_id": "0123456789abcdef", key: value},
                })
                try:
                    events = parse_ingest_payload(body)
                except IngestError:
                    continue
                for event in events:
                    state.publish(event)
                state.record_spans(span_records_from_events(events))
    assert state.get_counters()["subscriber_errors"] == 0
    state.snapshot()
    state.get_dashboard_stats()
