"""TraceStore and span records: from live SDK spans, from run events, merging, ordering, bounds,
thread safety."""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import Status, StatusCode, Tracer

from instrumentation import semconv as sc
from otel_dashboard.model.events import DashboardEvent, EventType, Severity
from otel_dashboard.model.record_size import compact_bytes
from otel_dashboard.model.span_records import (
    compact_span_record,
    expand_span_record,
    span_record_from_span,
    span_records_from_events,
)
from otel_dashboard.state.traces import TraceStore, record_bytes

TRACE = "0af7651916cd43dd8448eb211c80319c"


class _Recorder(SpanProcessor):
    """Records (span, ended) pairs, as the dashboard processor sees them."""

    def __init__(self) -> None:
        self.calls: list[tuple[ReadableSpan, bool]] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.calls.append((span, False))

    def on_end(self, span: ReadableSpan) -> None:
        self.calls.append((span, True))


@pytest.fixture(name="traced")
def fixture_traced() -> Iterator[tuple[Tracer, _Recorder]]:
    provider = TracerProvider(resource=Resource.create({"service.name": "research-agents"}))
    recorder = _Recorder()
    provider.add_span_processor(recorder)
    yield provider.get_tracer("test"), recorder
    provider.shutdown()


def _record(span_id: str, *, trace_id: str = TRACE, parent: str | None = None, start: int = 1,
            end: int | None = None, **extra: Any) -> dict[str, Any]:
    record = {
        "trace_id": trace_id, "span_id": span_id, "parent_span_id": parent, "name": f"span {span_id}",
        "kind": "other", "start_time": None, "end_time": "2026-01-01T00:00:00.000Z" if end else None,
        "start_time_unix_nano": start, "end_time_unix_nano": end, "duration_ms": None,
        "status": "unset", "status_message": None, "service_name": None, "agent_name": None,
        "tool_name": None, "attributes": {},
    }
    record.update(extra)
    return record


def _sid(n: int) -> str:
    return format(n, "016x")


# ---------------------------------------------------------------------------------- records from spans
def test_records_of_a_live_agent_run(traced: tuple[Tracer, _Recorder]) -> None:
    tracer, recorder = traced
    agent_attrs = {
        sc.GEN_AI_OPERATION_NAME: sc.OPERATION_INVOKE_AGENT, sc.GEN_AI_AGENT_NAME: "Researcher",
        sc.TASK_DESCRIPTION: "x" * 1000, "secret.prompt": "not kept",
    }
    tool_attrs = {sc.GEN_AI_OPERATION_NAME: sc.OPERATION_EXECUTE_TOOL, sc.GEN_AI_AGENT_NAME: "Researcher"}
    with (
        tracer.start_as_current_span("invoke_agent Researcher", attributes=agent_attrs),
        tracer.start_as_current_span("execute_tool web_search", attributes=tool_attrs) as tool,
    ):
        tool.set_status(Status(StatusCode.ERROR, "timed out"))

    store = TraceStore()
    records = [span_record_from_span(span, ended=ended) for span, ended in recorder.calls]
    running_agent = records[0]
    assert running_agent["kind"] == "agent"
    assert running_agent["end_time"] is None and running_agent["duration_ms"] is None
    assert running_agent["status"] == "unset"
    assert running_agent["agent_name"] == "Researcher"
    assert running_agent["service_name"] == "research-agents"
    assert running_agent["attributes"][sc.TASK_DESCRIPTION] == "x" * 255 + "\u2026"
    assert "secret.prompt" not in running_agent["attributes"]

    store.add_span(records[0])
    store.add_span(records[1])
    running = store.get_trace(records[0]["trace_id"])
    assert running["running"] is True and running["span_count"] == 2
    for record in records[2:]:
        store.add_span(record)

    trace = store.get_trace(records[0]["trace_id"].upper())
    agent, tool_record = trace["spans"]
    assert trace["running"] is False and trace["truncated"] is False
    assert trace["root_span_ids"] == [agent["span_id"]]
    assert tool_record["parent_span_id"] == agent["span_id"]
    assert tool_record["kind"] == "tool" and tool_record["tool_name"] == "web_search"
    assert tool_record["status"] == "error" and tool_record["status_message"] == "timed out"
    assert agent["status"] == "unset" and agent["end_time"] is not None
    assert agent["duration_ms"] >= tool_record["duration_ms"] >= 0
    assert agent["start_time_unix_nano"] <= tool_record["start_time_unix_nano"]


@pytest.mark.parametrize(
    ("attributes", "kind"),
    [
        ({sc.GEN_AI_OPERATION_NAME: sc.OPERATION_INVOKE_AGENT}, "agent"),
        ({sc.OPENINFERENCE_SPAN_KIND: "AGENT"}, "agent"),
        ({sc.TRACELOOP_SPAN_KIND: "agent"}, "agent"),
        ({sc.GEN_AI_OPERATION_NAME: sc.OPERATION_EXECUTE_TOOL}, "tool"),
        ({sc.OPENINFERENCE_SPAN_KIND: "TOOL"}, "tool"),
        ({sc.SPAN_KIND: sc.SPAN_KIND_SYNTHESIS}, "synthesis"),
        ({sc.GEN_AI_OPERATION_NAME: sc.OPERATION_CREATE_AGENT}, "registration"),
        ({sc.GEN_AI_AGENT_NAME: "copied by baggage"}, "other"),
        ({sc.GEN_AI_OPERATION_NAME: "chat"}, "model"),
        ({sc.OPENINFERENCE_SPAN_KIND: "LLM"}, "model"),
        ({"mcp.method.name": "tools/call"}, "tool"),
        ({sc.OPENINFERENCE_SPAN_KIND: "RETRIEVER"}, "retrieval"),
        ({sc.OPENINFERENCE_SPAN_KIND: "CHAIN"}, "chain"),
    ],
)
def test_kind_detection(traced: tuple[Tracer, _Recorder], attributes: dict[str, Any], kind: str) -> None:
    tracer, recorder = traced
    with tracer.start_as_current_span("s", attributes=attributes):
        pass
    assert span_record_from_span(recorder.calls[-1][0], ended=True)["kind"] == kind


def test_agent_name_from_the_span_name(traced: tuple[Tracer, _Recorder]) -> None:
    tracer, recorder = traced
    with tracer.start_as_current_span("invoke_agent Planner",
                                      attributes={sc.GEN_AI_OPERATION_NAME: sc.OPERATION_INVOKE_AGENT}):
        pass
    assert span_record_from_span(recorder.calls[-1][0], ended=True)["agent_name"] == "Planner"


def test_a_span_without_context_has_no_record() -> None:
    with pytest.raises(ValueError):
        span_record_from_span(ReadableSpan("orphan"), ended=True)


def test_attribute_values_are_capped_and_sequences_shortened(traced: tuple[Tracer, _Recorder]) -> None:
    tracer, recorder = traced
    with tracer.start_as_current_span("s", attributes={
        sc.GEN_AI_AGENT_NAME: "n" * 300, sc.DATA_SOURCE: [f"source {i}" for i in range(20)],
        sc.QUALITY_SCORE: 91.5, sc.GEN_AI_USAGE_INPUT_TOKENS: 12,
    }):
        pass
    attributes = span_record_from_span(recorder.calls[-1][0], ended=True)["attributes"]
    assert attributes == {
        sc.GEN_AI_AGENT_NAME: "n" * 255 + "\u2026",
        sc.DATA_SOURCE: [f"source {i}" for i in range(16)],
        sc.QUALITY_SCORE: 91.5,
        sc.GEN_AI_USAGE_INPUT_TOKENS: 12,
    }


def test_compact_records_are_left_alone_by_the_garbage_collector(traced: tuple[Tracer, _Recorder]) -> None:
    tracer, recorder = traced
    with tracer.start_as_current_span("invoke_agent A", attributes={
        sc.GEN_AI_OPERATION_NAME: sc.OPERATION_INVOKE_AGENT, sc.DATA_SOURCE: ("a", "b"),
    }) as span:
        span.set_status(Status(StatusCode.ERROR, "failed"))
    records = [compact_span_record(s, ended=ended) for s, ended in recorder.calls]
    # Untracked: a collection never walks them again, however many the trace view keeps. (A record
    # holding a sequence value may need a second pass: the collector untracks the inner tuple first.)
    gc.collect()
    gc.collect()
    assert [gc.is_tracked(record) for record in records] == [False, False]
    with tracer.start_as_current_span("execute_tool t", attributes={sc.GEN_AI_TOOL_NAME: "t"}):
        pass
    flat = compact_span_record(recorder.calls[-1][0], ended=True)
    gc.collect(0)
    assert not gc.is_tracked(flat)  # without sequence values, at the first pass of the youngest generation
    running, finished = (expand_span_record(record) for record in records)
    assert running["end_time"] is None and running["status"] == "unset"
    assert finished["status"] == "error" and finished["status_message"] == "failed"
    assert finished["attributes"][sc.DATA_SOURCE] == ["a", "b"]


def test_a_live_span_read_while_its_thread_sets_attributes(traced: tuple[Tracer, _Recorder]) -> None:
    tracer, _ = traced
    span = tracer.start_span("busy")
    stop = threading.Event()

    def set_attributes() -> None:
        n = 0
        while not stop.is_set() and n < 100_000:
            span.set_attribute(f"key.{n}", n)
            n += 1

    writer = threading.Thread(target=set_attributes)
    writer.start()
    try:
        for _ in range(200):
            compact_span_record(span, ended=False)  # never "dictionary changed size during iteration"
    finally:
        stop.set()
        writer.join()
    span.end()


# ---------------------------------------------------------------------------------- records from events
def _run_event(event_type: EventType, data: dict[str, Any], timestamp: str,
               span_id: str = "b7ad6b7169203331") -> DashboardEvent:
    return DashboardEvent("e", event_type, timestamp, data, Severity.INFO, TRACE, span_id)


def test_records_from_agent_run_events() -> None:
    started = _run_event(EventType.AGENT_EXECUTION_STARTED, {
        "agent_id": "a1", "agent_name": "Researcher", "started_at": "2026-01-15T10:30:00.000Z",
        "service_name": "svc", "parent_span_id": "00f067aa0ba902b7",
    }, "2026-01-15T10:30:00.000Z")
    completed = _run_event(EventType.AGENT_EXECUTION_COMPLETED, {
        "agent_id": "a1", "agent_name": "Researcher", "duration_ms": 1500.0, "success": False,
        "error_message": "boom", "started_at": "2026-01-15T10:30:00.000Z",
    }, "2026-01-15T10:30:01.500Z")
    ignored = [
        _run_event(EventType.OPPORTUNITY_DISCOVERED, {}, "2026-01-15T10:30:00.000Z"),
        DashboardEvent("x", EventType.AGENT_EXECUTION_STARTED, "2026-01-15T10:30:00.000Z", {}),
        _run_event(EventType.AGENT_EXECUTION_STARTED, {}, "2026-01-15T10:30:00.000Z", span_id="nothex"),
    ]

    running, finished = span_records_from_events([started, *ignored, completed])

    assert running["kind"] == "agent" and running["name"] == "invoke_agent Researcher"
    assert running["end_time"] is None and running["status"] == "unset"
    assert running["parent_span_id"] == "00f067aa0ba902b7"
    assert running["start_time_unix_nano"] == 1_768_473_000_000_000_000
    assert finished["end_time"] == "2026-01-15T10:30:01.500Z"
    assert finished["duration_ms"] == 1500.0
    assert finished["status"] == "error" and finished["status_message"] == "boom"

    store = TraceStore()
    store.add_span(running)
    assert store.get_trace(TRACE)["running"] is True
    store.add_span(finished)
    trace = store.get_trace(TRACE)
    (span,) = trace["spans"]
    assert trace["running"] is False
    assert span["service_name"] == "svc"  # kept from the start record
    assert span["parent_span_id"] == "00f067aa0ba902b7"
    assert span["status"] == "error"
    assert trace["root_span_ids"] == [span["span_id"]]  # its parent is not in the store


def test_synthesis_completed_without_started_at_starts_at_end_minus_duration() -> None:
    (record,) = span_records_from_events([_run_event(
        EventType.SYNTHESIS_COMPLETED, {"phase": "merge", "duration_ms": 250, "success": True},
        "2026-01-15T10:30:01.000Z",
    )])
    assert record["kind"] == "synthesis" and record["name"] == "synthesis merge"
    assert record["start_time"] == "2026-01-15T10:30:00.750Z"
    assert record["status"] == "ok"


# ---------------------------------------------------------------------------------- store semantics
def test_a_late_start_never_reopens_a_finished_span() -> None:
    store = TraceStore()
    assert store.add_span(_record(_sid(1), end=5, status="ok"))
    assert not store.add_span(_record(_sid(1), status="unset"))
    (span,) = store.get_trace(TRACE)["spans"]
    assert span["status"] == "ok" and span["end_time_unix_nano"] == 5


def test_spans_sorted_by_start_and_roots() -> None:
    store = TraceStore()
    store.add_span(_record(_sid(3), parent=_sid(1), start=30))
    store.add_span(_record(_sid(1), start=10, end=50))
    store.add_span(_record(_sid(2), parent=_sid(1), start=20, end=25))
    store.add_span(_record(_sid(4), parent=_sid(99), start=5, end=6))  # its parent is unknown
    trace = store.get_trace(TRACE)
    assert [s["span_id"] for s in trace["spans"]] == [_sid(4), _sid(1), _sid(2), _sid(3)]
    assert trace["root_span_ids"] == [_sid(4), _sid(1)]
    assert trace["running"] is True


def test_unknown_trace_is_none() -> None:
    store = TraceStore()
    assert store.get_trace(TRACE) is None
    assert store.get_trace("not an id") is None
    assert store.get_trace(None) is None  # type: ignore[arg-type]


def test_returned_traces_are_copies() -> None:
    store = TraceStore()
    store.add_span(_record(_sid(1), attributes={"a": 1}))
    trace = store.get_trace(TRACE)
    trace["spans"][0]["attributes"]["a"] = 2
    trace["spans"][0]["name"] = "changed"
    again = store.get_trace(TRACE)["spans"][0]
    assert again["attributes"] == {"a": 1} and again["name"] == f"span {_sid(1)}"


def test_least_recently_updated_trace_is_evicted() -> None:
    store = TraceStore(max_traces=2)
    traces = [format(n, "032x") for n in (1, 2, 3)]
    store.add_span(_record(_sid(1), trace_id=traces[0]))
    store.add_span(_record(_sid(1), trace_id=traces[1]))
    store.add_span(_record(_sid(2), trace_id=traces[0]))  # trace 0 updated: trace 1 is now oldest
    store.add_span(_record(_sid(1), trace_id=traces[2]))
    assert store.get_trace(traces[1]) is None
    assert store.get_trace(traces[0])["span_count"] == 2
    assert store.get_trace(traces[2]) is not None
    assert len(store) == 2
    assert _counters(store) == {"traces": 2, "spans": 3, "evicted_traces": 1, "dropped_spans": 0}


def test_per_trace_span_cap_truncates_but_still_updates() -> None:
    store = TraceStore(max_spans_per_trace=2)
    assert store.add_span(_record(_sid(1)))
    assert store.add_span(_record(_sid(2)))
    assert not store.add_span(_record(_sid(3)))
    assert store.add_span(_record(_sid(2), end=9, status="ok"))  # a kept span may still end
    trace = store.get_trace(TRACE)
    assert trace["span_count"] == 2 and trace["truncated"] is True and trace["dropped_spans"] == 1
    assert trace["spans"][1]["status"] == "ok"


def _compact(span_id: int, *, end: int | None = None, trace_id: str = TRACE) -> tuple[Any, ...]:
    name = f"span {span_id}"
    return (int(trace_id, 16), span_id, 0, name, 1, end, "ok" if end else "unset", None, None,
            compact_bytes(10, name, None, ()))


def test_compact_records_finish_their_running_records_and_are_never_reopened() -> None:
    store = TraceStore()
    assert store.add_span_records([_compact(1), _compact(2)]) == 2
    assert store.get_trace(TRACE)["running"] is True
    assert store.add_span_records([_compact(1, end=5), _compact(2, end=6)], after_start=True) == 2
    assert store.add_span_records([_compact(1)]) == 0  # a late start
    trace = store.get_trace(TRACE)
    assert trace["running"] is False
    assert [(s["span_id"], s["status"], s["end_time_unix_nano"]) for s in trace["spans"]] == [
        (_sid(1), "ok", 5), (_sid(2), "ok", 6)]
    assert not store.add_span(_record(_sid(1), status="error", end=9))  # the in-process record wins


def test_a_span_over_the_cap_is_counted_once_from_compact_records() -> None:
    store = TraceStore(max_spans_per_trace=1)
    store.add_span_records([_compact(1)])
    assert store.add_span_records([_compact(2)]) == 0  # counted at its running record
    assert store.add_span_records([_compact(2, end=5)], after_start=True) == 0  # not again
    assert store.add_span_records([_compact(3, end=5)]) == 0  # no running record before: counted
    trace = store.get_trace(TRACE)
    assert trace["span_count"] == 1 and trace["truncated"] is True and trace["dropped_spans"] == 2
    assert store.stats()["dropped_spans"] == 2


def test_compact_records_evict_the_least_recently_updated_trace() -> None:
    store = TraceStore(max_traces=2)
    traces = [format(n, "032x") for n in (1, 2, 3)]
    store.add_span_records([_compact(1, trace_id=traces[0]), _compact(1, trace_id=traces[1])])
    store.add_span_records([_compact(1, end=2, trace_id=traces[0])])  # trace 0 updated
    store.add_span_records([_compact(1, trace_id=traces[2])])
    assert store.get_trace(traces[1]) is None
    assert store.get_trace(traces[0]) is not None and store.get_trace(traces[2]) is not None
    assert _counters(store) == {"traces": 2, "spans": 2, "evicted_traces": 1, "dropped_spans": 0}


def test_a_trace_growing_past_the_small_form_keeps_every_record() -> None:
    store = TraceStore()
    for n in range(1, 41):  # compact and JSON records, past the 16 a small trace holds
        if n % 2:
            store.add_span_records([_compact(n)])
        else:
            store.add_span(_record(_sid(n), start=n))
    for n in range(1, 41):
        if n % 2:
            store.add_span_records([_compact(n, end=100 + n)], after_start=True)
        else:
            store.add_span(_record(_sid(n), start=n, end=100 + n))
    trace = store.get_trace(TRACE)
    assert trace["span_count"] == 40 and trace["running"] is False
    assert sorted(s["end_time_unix_nano"] for s in trace["spans"]) == list(range(101, 141))
    assert store.stats()["spans"] == 40


@pytest.mark.parametrize(
    "record",
    [{"span_id": _sid(1)}, {"trace_id": TRACE}, {"trace_id": "xyz", "span_id": _sid(1)},
     {"trace_id": TRACE, "span_id": "b7ad"}],
)
def test_records_need_valid_ids(record: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TraceStore().add_span(record)


@pytest.mark.parametrize("kwargs", [{"max_traces": 0}, {"max_spans_per_trace": -1},
                                    {"max_traces": True}, {"max_traces": 1.5}])
def test_bounds_must_be_positive_integers(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        TraceStore(**kwargs)


def test_concurrent_writers_and_readers() -> None:
    store = TraceStore(max_traces=50, max_spans_per_trace=100)
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for n in range(400):
                trace_id = format(worker * 1000 + n % 60 + 1, "032x")
                store.add_span(_record(_sid(n + 1), trace_id=trace_id, start=n))
                store.add_span(_record(_sid(n + 1), trace_id=trace_id, start=n, end=n + 1))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def read() -> None:
        try:
            for n in range(2000):
                store.get_trace(format(n % 60 + 1, "032x"))
                store.stats()
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    threads.append(threading.Thread(target=read))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    stats = store.stats()
    assert stats["traces"] == 50
    assert stats["evicted_traces"] >= 4 * 60 - 50  # traces cycle, so some come back and go again
    assert stats["spans"] <= 50 * 100


def _counters(store: TraceStore) -> dict[str, int]:
    """The count counters of ``stats()`` (without the byte estimate and the for-bytes evictions)."""
    stats = store.stats()
    return {key: stats[key] for key in ("traces", "spans", "evicted_traces", "dropped_spans")}


# ---------------------------------------------------------------------------------- whole traces, the budget
def _compact_with(span_id: int, *, trace: int, start: int, value: str) -> tuple[Any, ...]:
    name = f"span {span_id}"
    return (trace, span_id, 0, name, start, start + 1, "ok", None, "svc", sc.TASK_DESCRIPTION, value,
            compact_bytes(12, name, None, (value,)))


def test_a_10000_span_trace_is_kept_whole_and_the_10001st_is_dropped() -> None:
    store = TraceStore()
    trace = int(TRACE, 16)
    records = [_compact(n, end=n + 1, trace_id=TRACE) for n in range(1, 10_001)]
    assert store.add_span_records(records) == 10_000
    assert store.add_span_records([_compact(10_001, end=5)]) == 0
    assert not store.add_span(_record(_sid(10_002)))
    whole = store.get_trace(TRACE)
    assert whole["span_count"] == 10_000 and len(whole["spans"]) == 10_000
    assert whole["truncated"] is True and whole["dropped_spans"] == 2
    assert store.stats()["dropped_spans"] == 2
    assert trace == int(whole["trace_id"], 16)


def test_a_trace_reads_by_pages_in_start_then_span_id_order() -> None:
    store = TraceStore()
    # Two spans share a start: the span id orders them.
    store.add_span_records([_compact(5, end=9), _compact(3, end=9), _compact(4, end=9)])
    store.add_span(_record(_sid(1), start=0, end=3))
    first = store.get_trace(TRACE, offset=0, limit=2)
    assert [s["span_id"] for s in first["spans"]] == [_sid(1), _sid(3)]
    assert (first["span_count"], first["offset"], first["limit"], first["next_offset"]) == (4, 0, 2, 2)
    assert first["root_span_ids"] == [_sid(1), _sid(3), _sid(4), _sid(5)]  # of the whole trace
    last = store.get_trace(TRACE, offset=2, limit=2)
    assert [s["span_id"] for s in last["spans"]] == [_sid(4), _sid(5)]
    assert last["next_offset"] is None
    beyond = store.get_trace(TRACE, offset=10, limit=2)
    assert beyond["spans"] == [] and beyond["next_offset"] is None and beyond["span_count"] == 4


def test_the_memory_budget_evicts_the_least_recently_updated_traces_first() -> None:
    value = "v" * 1000
    one = record_bytes(_compact_with(1, trace=1, start=1, value=value))
    store = TraceStore(max_bytes=10 * one)  # four traces of three spans do not fit; three do
    for trace in (1, 2, 3):
        store.add_span_records([_compact_with(n, trace=trace, start=n, value=value) for n in (1, 2, 3)])
    store.add_span_records([_compact_with(9, trace=1, start=9, value=value)])  # trace 1 updated: fresh
    assert store.stats()["evicted_traces_for_bytes"] == 0
    store.add_span_records([_compact_with(n, trace=4, start=n, value=value) for n in (1, 2, 3)])
    kept = {n for n in (1, 2, 3, 4) if store.get_trace(format(n, "032x")) is not None}
    assert kept == {1, 3, 4}  # trace 2, the stalest, went first
    stats = store.stats()
    assert stats["evicted_traces_for_bytes"] == 1 and stats["evicted_traces"] == 1
    assert stats["bytes"] == 10 * one and stats["bytes"] <= stats["max_bytes"]
    assert stats["spans"] == 10


def test_a_trace_larger_than_the_budget_keeps_its_first_spans() -> None:
    value = "v" * 1000
    one = record_bytes(_compact_with(1, trace=1, start=1, value=value))
    store = TraceStore(max_bytes=5 * one)
    store.add_span_records([_compact_with(1, trace=7, start=1, value=value)])  # another trace: evicted
    assert store.add_span_records([_compact_with(n, trace=1, start=n, value=value) for n in range(1, 9)]) == 5
    trace = store.get_trace(format(1, "032x"))
    assert [s["span_id"] for s in trace["spans"]] == [_sid(n) for n in range(1, 6)]
    assert trace["truncated"] is True and trace["dropped_spans"] == 3
    stats = store.stats()
    assert stats["bytes"] <= stats["max_bytes"] and stats["evicted_traces_for_bytes"] == 1
    # A finished record of a kept span still applies; a JSON record over the budget is dropped too.
    assert store.add_span(_record(_sid(99), trace_id=format(1, "032x"), attributes={"x": value})) is False
    assert store.get_trace(format(1, "032x"))["dropped_spans"] == 4


def test_json_records_are_accounted_and_merges_update_the_estimate() -> None:
    store = TraceStore()
    store.add_span(_record(_sid(1)))
    before = store.stats()["bytes"]
    assert before == record_bytes(store.get_span(TRACE, _sid(1))[1])  # the stored copy's estimate
    store.add_span(_record(_sid(1), end=5, status_message="x" * 500))
    assert store.stats()["bytes"] >= before + 500


@pytest.mark.parametrize("kwargs", [{"max_bytes": 0}, {"max_bytes": True}, {"max_bytes": 1.5}])
def test_the_budget_must_be_a_positive_integer(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        TraceStore(**kwargs)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads the RSS from /proc")
@pytest.mark.parametrize("form", ["compact", "json", "detail"])
def test_the_real_memory_stays_within_twice_the_budget(form: str) -> None:
    budget = 32 * 1024 * 1024
    gc.collect()
    before = _rss_bytes()
    store = TraceStore(max_bytes=budget, max_traces=100_000)
    # Three budgets' worth of records with their own strings (a 212-character value each), in
    # traces of 50 spans: the budget evicts, and what stays is what the estimate allowed.
    for trace in range(1, {"compact": 2500, "json": 1500, "detail": 300}[form]):
        values = [f"{trace:08d}{n:04d}" + "x" * 200 for n in range(1, 51)]
        if form == "detail":  # content attributes (2,000 characters) and raw ones, on every span
            trace_id = format(trace, "032x")
            for n, value in enumerate(values, 1):
                store.add_span(_record(_sid(n), trace_id=trace_id, start=n, end=n + 1, detail_attributes={
                    "gen_ai.input.messages": value * 10, "app.a": value[:50], "app.b": n}))
            continue
        if form == "compact":
            store.add_span_records([
                _compact_with(n, trace=trace, start=n, value=value) for n, value in enumerate(values, 1)
            ])
        else:
            trace_id = format(trace, "032x")
            for n, value in enumerate(values, 1):
                store.add_span(_record(_sid(n), trace_id=trace_id, start=n, end=n + 1,
                                       attributes={sc.TASK_DESCRIPTION: value}))
    gc.collect()
    grown = _rss_bytes() - before
    stats = store.stats()
    assert stats["evicted_traces_for_bytes"] > 0
    assert budget * 0.9 <= stats["bytes"] <= budget
    assert grown <= 2 * budget, f"RSS grew {grown} bytes for a {budget}-byte budget"
    del store


# ---------------------------------------------------------------------------------- span events
def _failing_step() -> None:
    raise KeyError("no such tool: web_search")


def test_span_events_of_an_in_process_span_reach_the_trace_store() -> None:
    from otel_dashboard.pipeline.processor import DashboardSpanProcessor
    from otel_dashboard.state.dashboard import DashboardState

    state = DashboardState()
    processor = DashboardSpanProcessor(state=state)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    try:
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("execute_tool web_search", record_exception=False) as span:
            span.add_event("retry", {"attempt": 2, "note": "n" * 1000})
            try:
                _failing_step()
            except KeyError as exc:
                span.record_exception(exc)
            trace_id = format(span.get_span_context().trace_id, "032x")
        with tracer.start_as_current_span("plain") as plain:
            plain_trace = format(plain.get_span_context().trace_id, "032x")
        assert processor.force_flush(5000)
    finally:
        provider.shutdown()
    (record,) = state.traces.get_trace(trace_id)["spans"]
    retry, exception = record["events"]
    assert retry["name"] == "retry" and retry["attributes"] == {"attempt": 2, "note": "n" * 255 + "\u2026"}
    assert isinstance(retry["time_unix_nano"], int) and retry["time"].endswith("Z")
    assert exception["name"] == "exception"
    attrs = exception["attributes"]
    assert attrs["exception.type"] == "KeyError"
    assert attrs["exception.message"] == "'no such tool: web_search'"
    assert attrs["exception.stacktrace"].startswith("Traceback (most recent call last):")
    assert "_failing_step" in attrs["exception.stacktrace"]
    assert record["dropped_events"] == 0
    (without,) = state.traces.get_trace(plain_trace)["spans"]
    assert (without["events"], without["dropped_events"]) == ([], 0)


def test_span_events_are_bounded_and_their_values_capped(traced: tuple[Tracer, _Recorder]) -> None:
    tracer, recorder = traced
    with tracer.start_as_current_span("busy") as span:
        span.add_event("exception", {"exception.type": "E", "exception.stacktrace": "s" * 20_000,
                                     "exception.message": "m" * 5000, "other": "o" * 300})
        for n in range(40):
            span.add_event(f"step {n}")
    ended = recorder.calls[-1][0]
    compact = compact_span_record(ended, ended=True)
    from_compact, direct = expand_span_record(compact), span_record_from_span(ended, ended=True)
    assert from_compact == direct
    assert len(direct["events"]) == 32 and direct["dropped_events"] == 9
    attrs = direct["events"][0]["attributes"]
    stack = attrs["exception.stacktrace"]
    assert len(stack) == 16 * 1024 and stack.endswith("\u2026")
    assert len(attrs["exception.message"]) == 4 * 1024
    assert len(attrs["other"]) == 256
    assert direct["events"][31]["name"] == "step 30"
    # The compact record with events stays one the collector leaves alone: events are tuples in a
    # tuple, untracked from the inside out, one level per pass.
    for _ in range(3):
        gc.collect()
    assert not gc.is_tracked(compact)


def test_a_running_record_has_no_events_yet(traced: tuple[Tracer, _Recorder]) -> None:
    tracer, recorder = traced
    with tracer.start_as_current_span("busy") as span:
        span.add_event("step")
        running = compact_span_record(recorder.calls[0][0], ended=False)
    assert expand_span_record(running)["events"] == []


def test_a_compact_record_carries_its_estimate(traced: tuple[Tracer, _Recorder]) -> None:
    tracer, recorder = traced
    attrs = {sc.GEN_AI_OPERATION_NAME: sc.OPERATION_INVOKE_AGENT, sc.TASK_DESCRIPTION: "t" * 5000,
             sc.DATA_SOURCE: ("a" * 100, "b"), sc.GEN_AI_USAGE_INPUT_TOKENS: 12}
    with tracer.start_as_current_span("invoke_agent A", attributes=attrs) as span:
        span.set_status(Status(StatusCode.ERROR, "m" * 300))
    fast = compact_span_record(recorder.calls[-1][0], ended=True)  # the inlined estimate
    values = fast[9 + (len(fast) - 10) // 2:-1]
    assert record_bytes(fast) == compact_bytes(len(fast), fast[3], fast[7], values)
    assert record_bytes(fast) > 5000 + 300 + 100


def test_a_first_record_larger_than_the_budget_keeps_no_trace() -> None:
    small = _compact_with(1, trace=1, start=1, value="v")
    store = TraceStore(max_bytes=record_bytes(small))
    assert store.add_span_records([_compact_with(1, trace=2, start=1, value="v" * 1000)]) == 0
    assert store.get_trace(format(2, "032x")) is None  # nothing kept, nothing to mark
    assert store.add_span_records([small]) == 1
    stats = store.stats()
    assert (stats["traces"], stats["dropped_spans"], stats["bytes"]) == (1, 1, record_bytes(small))


# ----------------------------------------------------------------------------- detail attributes, summary
def test_a_compact_record_keeps_content_and_raw_attributes(traced: tuple[Tracer, _Recorder]) -> None:
    tracer, recorder = traced
    with tracer.start_as_current_span("chat m", attributes={
        sc.GEN_AI_OPERATION_NAME: "chat", "gen_ai.input.messages": "[" + "m" * 50_000 + "]",
        "app.note": "n" * 3000, "app.list": ("a", "b"),
    }) as span:
        span.add_event("exception", {"exception.type": "E", "exception.stacktrace": "s" * 100})
    running, ended = (compact_span_record(s, ended=e) for s, e in recorder.calls)
    direct = span_record_from_span(recorder.calls[-1][0], ended=True)
    assert expand_span_record(ended) == direct
    assert direct["attributes"] == {sc.GEN_AI_OPERATION_NAME: "chat"}  # the page's
    detail = direct["detail_attributes"]
    assert list(detail) == ["gen_ai.input.messages", "app.note", "app.list"]  # content first
    assert len(detail["gen_ai.input.messages"]) == 32 * 1024 and len(detail["app.note"]) == 1024
    assert detail["app.list"] == ["a", "b"] and direct["dropped_attributes"] == 0
    assert direct["events"][0]["attributes"]["exception.type"] == "E"
    assert expand_span_record(running)["detail_attributes"] == detail  # a running record has them too
    assert record_bytes(ended) > 32 * 1024 + 1024
    for _ in range(3):
        gc.collect()
    assert not gc.is_tracked(ended) and not gc.is_tracked(running)


def _json(span_id: int, parent: int | None, name: str, attributes: dict[str, Any], *,
          end: int | None = 10, status: str = "ok", start: int = 1) -> dict[str, Any]:
    kind = {"invoke_agent": "agent", "chat": "model", "execute_tool": "tool"}[name.split()[0]]
    return _record(_sid(span_id), parent=_sid(parent) if parent else None, start=start, end=end,
                   name=name, status=status, attributes=attributes, service_name="svc", kind=kind)


class _Prices:
    def cost(self, *, model: str | None, provider: str | None, input_tokens: int = 0, output_tokens: int = 0,
             **_: int) -> float | None:
        return (input_tokens + output_tokens) / 1000 if model == "priced" else None


def test_the_summary_of_a_whole_trace_and_the_pages_fields() -> None:
    store = TraceStore()
    agent = {sc.GEN_AI_OPERATION_NAME: sc.OPERATION_INVOKE_AGENT, sc.GEN_AI_AGENT_NAME: "A",
             sc.GEN_AI_USAGE_INPUT_TOKENS: 999, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 999}
    store.add_spans([
        _json(1, None, "invoke_agent A", agent, end=None, status="unset"),
        _json(2, 1, "chat priced", {sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_REQUEST_MODEL: "priced",
                                    sc.GEN_AI_USAGE_INPUT_TOKENS: 100, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 20},
              start=2),
        _json(3, 1, "chat other", {sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_REQUEST_MODEL: "other",
                                   sc.GEN_AI_USAGE_INPUT_TOKENS: 1, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 2},
              start=3),
        _json(4, 1, "execute_tool t", {sc.GEN_AI_OPERATION_NAME: sc.OPERATION_EXECUTE_TOOL}, status="error",
              start=4),
    ])
    trace = store.get_trace(TRACE, limit=2, prices=_Prices())
    summary = trace["summary"]
    assert summary["status"] == "running" and summary["root_name"] == "invoke_agent A"
    assert (summary["input_tokens"], summary["output_tokens"]) == (101, 22)  # the model calls, not the agent
    assert (summary["cost_usd"], summary["cost_status"]) == (0.12, "partial")
    assert (summary["span_count"], summary["error_count"], summary["model_calls"], summary["tool_calls"]) == (
        4, 1, 2, 1)
    assert summary["service_name"] == "svc" and summary["root_span_id"] == _sid(1)
    agent_row, priced = trace["spans"]  # the page has 2 spans; the summary counts all 4
    assert (agent_row["model"], agent_row["input_tokens"], agent_row["cost_usd"]) == (None, None, None)
    assert (priced["model"], priced["input_tokens"], priced["output_tokens"], priced["cost_usd"]) == (
        "priced", 100, 20, 0.12)
    assert agent_row["has_detail"] is False and "detail_attributes" not in priced

    # Without model-call tokens, the outermost agent spans' totals count (not their nested agents').
    store = TraceStore()
    store.add_spans([_json(1, None, "invoke_agent A", agent),
                     _json(2, 1, "invoke_agent B", {**agent, sc.GEN_AI_AGENT_NAME: "B"}, start=2)])
    summary = store.get_trace(TRACE)["summary"]
    assert (summary["input_tokens"], summary["status"], summary["cost_status"]) == (999, "ok", "no_price")
    assert store.get_span(TRACE, _sid(9)) == (True, None) and store.get_span(format(7, "032x"), _sid(1)) == (
        False, None)
