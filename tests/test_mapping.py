"""otel_dashboard.model.mapping: every row of the span-to-event table, on spans from a real SDK tracer.

The spans are built by hand (no decorators), so these tests also describe what foreign
instrumentations (OpenAI Agents SDK, OpenInference, OpenLLMetry) get from the dashboard.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode, Tracer, set_span_in_context

from instrumentation import agent, synthesis
from instrumentation import semconv as sc
from otel_dashboard.model.events import (
    DashboardEvent,
    EventType,
    QualityThresholds,
    Severity,
    format_timestamp,
)
from otel_dashboard.model.mapping import map_span_end, map_span_start

SERVICE = "mapping-tests"
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


class _Capture(SpanProcessor):
    """Maps each span at its real start (as the live span looks then) and keeps the ended spans."""

    def __init__(self) -> None:
        self.started: dict[int, list[DashboardEvent]] = {}
        self.ended: list[ReadableSpan] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.started[span.context.span_id] = map_span_start(span)

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)


@pytest.fixture(name="capture")
def fixture_capture() -> _Capture:
    return _Capture()


@pytest.fixture(name="tracer")
def fixture_tracer(capture: _Capture) -> Iterator[Tracer]:
    provider = TracerProvider(resource=Resource.create({sc.SERVICE_NAME: SERVICE}))
    provider.add_span_processor(capture)
    yield provider.get_tracer("tests.mapping")
    provider.shutdown()


@dataclass
class SpanSpec:
    """A span to build: attributes at start and at end, span events, final status."""

    name: str
    start_attrs: dict[str, Any] = field(default_factory=dict)
    end_attrs: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: Status | None = None


def run(tracer: Tracer, capture: _Capture, spec: SpanSpec, parent: Span | None = None,
        ) -> tuple[list[DashboardEvent], list[DashboardEvent], ReadableSpan]:
    """Start and end ``spec`` as a real span; return (start events, end events, ended span)."""
    ctx = set_span_in_context(parent) if parent is not None else None
    span = tracer.start_span(spec.name, context=ctx, attributes=spec.start_attrs)
    for name, attrs in spec.events:
        span.add_event(name, attrs)
    span.set_attributes(spec.end_attrs)
    if spec.status is not None:
        span.set_status(spec.status)
    span.end()
    ended = capture.ended[-1]
    return capture.started[span.context.span_id], map_span_end(ended), ended


def types_of(events: list[DashboardEvent]) -> list[str]:
    return [e.event_type.value for e in events]


def one(events: list[DashboardEvent], event_type: EventType) -> DashboardEvent:
    found = [e for e in events if e.event_type is event_type]
    assert len(found) == 1, types_of(events)
    return found[0]


OWN_AGENT = {
    sc.GEN_AI_OPERATION_NAME: sc.OPERATION_INVOKE_AGENT,
    sc.GEN_AI_AGENT_NAME: "Researcher",
    sc.GEN_AI_AGENT_ID: "researcher-1",
    sc.SPAN_KIND: sc.SPAN_KIND_AGENT,
    sc.TASK_DESCRIPTION: "find markets",
}
LONG_INPUT = "x" * 500

# (id, span, start event types, end event types, expected data subsets {event_type: {key: value}})
CASES = [
    pytest.param(
        SpanSpec("invoke_agent Researcher", OWN_AGENT),
        ["agent_execution_started"], ["agent_execution_completed"],
        {"agent_execution_started": {"agent_id": "researcher-1", "agent_name": "Researcher",
                                     "task_description": "find markets"},
         "agent_execution_completed": {"agent_id": "researcher-1", "agent_name": "Researcher",
                                       "task_description": "find markets", "success": True,
                                       "quality_score": None, "error_message": None}},
        id="own-genai-agent",
    ),
    pytest.param(
        SpanSpec("invoke_agent Researcher", {sc.GEN_AI_OPERATION_NAME: "invoke_agent"}),
        ["agent_execution_started"], ["agent_execution_completed"],
        {"agent_execution_started": {"agent_id": "Researcher", "agent_name": "Researcher",
                                     "task_description": ""},
         "agent_execution_completed": {"agent_id": "Researcher", "agent_name": "Researcher"}},
        id="foreign-genai-name-in-span-name",
    ),
    pytest.param(
        SpanSpec("Researcher", {sc.GEN_AI_OPERATION_NAME: "invoke_agent"}),
        ["agent_execution_started"], ["agent_execution_completed"],
        {"agent_execution_started": {"agent_id": "Researcher", "agent_name": "Researcher"}},
        id="foreign-genai-plain-span-name",
    ),
    pytest.param(
        SpanSpec("invoke_agent", {sc.GEN_AI_OPERATION_NAME: "invoke_agent"}),
        ["agent_execution_started"], ["agent_execution_completed"],
        {"agent_execution_started": {"agent_name": "invoke_agent"}},
        id="foreign-genai-no-name-at-all",
    ),
    pytest.param(
        SpanSpec("AgentRun", {sc.OPENINFERENCE_SPAN_KIND: "AGENT"},
                 end_attrs={sc.OPENINFERENCE_AGENT_NAME: "Planner", sc.OPENINFERENCE_INPUT_VALUE: "plan it"}),
        ["agent_execution_started"], ["agent_execution_completed"],
        {"agent_execution_started": {"agent_name": "AgentRun", "task_description": ""},
         "agent_execution_completed": {"agent_id": "Planner", "agent_name": "Planner",
                                       "task_description": "plan it"}},
        id="openinference-agent-name-set-at-end",
    ),
    pytest.param(
        SpanSpec("AgentRun", end_attrs={sc.OPENINFERENCE_SPAN_KIND: "AGENT",
                                        sc.OPENINFERENCE_AGENT_NAME: "Planner",
                                        sc.OPENINFERENCE_INPUT_VALUE: LONG_INPUT}),
        [], ["agent_execution_completed"],
        {"agent_execution_completed": {"agent_name": "Planner",
                                       "task_description": "x" * 199 + "\u2026"}},
        id="openinference-recognisable-only-at-end",
    ),
    pytest.param(
        SpanSpec("writer.agent", {sc.TRACELOOP_SPAN_KIND: "agent", sc.TRACELOOP_ENTITY_NAME: "Writer"}),
        ["agent_execution_started"], ["agent_execution_completed"],
        {"agent_execution_started": {"agent_id": "Writer", "agent_name": "Writer"}},
        id="traceloop-agent",
    ),
    pytest.param(
        SpanSpec("chat gpt-4o", {sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_AGENT_NAME: "Researcher"}),
        [], [], {},
        id="child-with-baggage-agent-name-is-not-an-agent",
    ),
    pytest.param(
        SpanSpec("execute_tool search", {sc.GEN_AI_OPERATION_NAME: sc.OPERATION_EXECUTE_TOOL,
                                         sc.GEN_AI_TOOL_NAME: "search", sc.SPAN_KIND: sc.SPAN_KIND_TOOL}),
        [], [], {},
        id="tool-span-ok",
    ),
    pytest.param(
        SpanSpec("invoke_agent Researcher", OWN_AGENT, status=Status(StatusCode.ERROR, "quota exceeded")),
        ["agent_execution_started"], ["agent_execution_completed", "error_occurred"],
        {"agent_execution_completed": {"success": False, "error_message": "quota exceeded"},
         "error_occurred": {"source": "Researcher", "error_message": "quota exceeded",
                            "error_type": "Error", "span_name": "invoke_agent Researcher",
                            "agent_id": "researcher-1", "agent_name": "Researcher"}},
        id="failure-status-error-without-exception-event",
    ),
    pytest.param(
        SpanSpec("invoke_agent Researcher", OWN_AGENT, status=Status(StatusCode.ERROR)),
        ["agent_execution_started"], ["agent_execution_completed", "error_occurred"],
        {"agent_execution_completed": {"success": False, "error_message": "error"},
         "error_occurred": {"error_message": "error", "error_type": "Error"}},
        id="failure-status-error-without-description",
    ),
    pytest.param(
        SpanSpec("invoke_agent Researcher", OWN_AGENT, status=Status(StatusCode.OK)),
        ["agent_execution_started"], ["agent_execution_completed"],
        {"agent_execution_completed": {"success": True}},
        id="success-status-ok",
    ),
    pytest.param(
        SpanSpec("invoke_agent Researcher", OWN_AGENT,
                 events=[
                     (sc.EXCEPTION_EVENT, {sc.EXCEPTION_TYPE: "TimeoutError", sc.EXCEPTION_MESSAGE: "slow"}),
                     (sc.EXCEPTION_EVENT, {sc.EXCEPTION_TYPE: "ValueError", sc.EXCEPTION_MESSAGE: "bad"}),
                 ],
                 status=Status(StatusCode.ERROR, "ValueError: bad")),
        ["agent_execution_started"], ["agent_execution_completed", "error_occurred"],
        {"error_occurred": {"error_message": "bad", "error_type": "ValueError"}},
        id="one-error-per-span-with-two-exception-events",
    ),
    pytest.param(
        SpanSpec("invoke_agent Researcher", OWN_AGENT,
                 events=[(sc.EXCEPTION_EVENT, {sc.EXCEPTION_TYPE: "KeyError", sc.EXCEPTION_MESSAGE: "'k'"})],
                 status=Status(StatusCode.ERROR)),
        ["agent_execution_started"], ["agent_execution_completed", "error_occurred"],
        {"agent_execution_completed": {"success": False, "error_message": "'k'"},
         "error_occurred": {"error_message": "'k'", "error_type": "KeyError"}},
        id="failure-message-from-exception-when-status-has-none",
    ),
    pytest.param(
        SpanSpec("execute_tool search", {sc.GEN_AI_TOOL_NAME: "search"},
                 events=[(sc.EXCEPTION_EVENT, {sc.EXCEPTION_TYPE: "KeyError", sc.EXCEPTION_MESSAGE: "k"})]),
        [], ["error_occurred"],
        {"error_occurred": {"source": "search", "error_type": "KeyError", "error_message": "k",
                            "span_name": "execute_tool search"}},
        id="exception-event-on-a-succeeding-tool-span",
    ),
    pytest.param(
        SpanSpec("http get", status=Status(StatusCode.ERROR, "503")),
        [], ["error_occurred"],
        {"error_occurred": {"source": "http get", "error_message": "503", "error_type": "Error"}},
        id="plain-span-with-status-error",
    ),
    pytest.param(
        SpanSpec("synthesis merge", {sc.SPAN_KIND: sc.SPAN_KIND_SYNTHESIS, sc.SYNTHESIS_PHASE: "merge",
                                     sc.SYNTHESIS_DESCRIPTION: "merging findings"},
                 end_attrs={sc.SYNTHESIS_PATTERNS_FOUND: 4}),
        ["synthesis_started"], ["synthesis_completed"],
        {"synthesis_started": {"phase": "merge", "description": "merging findings"},
         "synthesis_completed": {"phase": "merge", "patterns_found": 4, "success": True}},
        id="synthesis",
    ),
    pytest.param(
        SpanSpec("synthesis merge", {sc.SPAN_KIND: sc.SPAN_KIND_SYNTHESIS},
                 status=Status(StatusCode.ERROR, "no data")),
        ["synthesis_started"], ["synthesis_completed", "error_occurred"],
        {"synthesis_started": {"phase": "merge", "description": ""},
         "synthesis_completed": {"phase": "merge", "patterns_found": None, "success": False,
                                 "error_message": "no data"},
         "error_occurred": {"source": "synthesis merge", "error_message": "no data"}},
        id="synthesis-error",
    ),
    pytest.param(
        SpanSpec("create_agent Researcher", {
            sc.GEN_AI_OPERATION_NAME: sc.OPERATION_CREATE_AGENT, sc.GEN_AI_AGENT_NAME: "Researcher",
            sc.GEN_AI_AGENT_ID: "researcher-1", sc.GEN_AI_AGENT_DESCRIPTION: "finds markets",
            sc.SPAN_KIND: sc.SPAN_KIND_REGISTRATION,
            sc.AGENT_ATTRIBUTE_PREFIX + "model": "gpt-4o", sc.AGENT_ATTRIBUTE_PREFIX + "max_steps": 5}),
        [], ["agent_registered"],
        {"agent_registered": {"agent_id": "researcher-1", "agent_name": "Researcher",
                              "description": "finds markets", "registered_by": "create_agent",
                              "attributes": {"model": "gpt-4o", "max_steps": 5}}},
        id="create-agent-registration",
    ),
    pytest.param(
        SpanSpec("create_agent Scout", {sc.GEN_AI_OPERATION_NAME: sc.OPERATION_CREATE_AGENT}),
        [], ["agent_registered"],
        {"agent_registered": {"agent_id": "Scout", "agent_name": "Scout", "description": "",
                              "attributes": {}}},
        id="foreign-create-agent-name-in-span-name",
    ),
]


@pytest.mark.parametrize(("spec", "start_types", "end_types", "expected"), CASES)
def test_mapping_table(tracer: Tracer, capture: _Capture, spec: SpanSpec, start_types: list[str],
                       end_types: list[str], expected: dict[str, dict[str, Any]]) -> None:
    started, ended, span = run(tracer, capture, spec)

    assert types_of(started) == start_types
    assert types_of(ended) == end_types
    for event in started + ended:
        subset = expected.get(event.event_type.value, {})
        assert {k: event.data.get(k, "<missing>") for k in subset} == subset, event.event_type
        # Every span-derived event: the span's ids in hex, the service, a Z timestamp.
        assert event.trace_id == format(span.context.trace_id, "032x")
        assert event.span_id == format(span.context.span_id, "016x")
        assert HEX32.match(event.trace_id) and HEX16.match(event.span_id)
        assert event.data["service_name"] == SERVICE
        assert ISO_Z.match(event.timestamp)
    for event in started:
        assert event.severity is Severity.INFO
        assert event.timestamp == format_timestamp(span.start_time)
        assert event.data["run_id"] == event.span_id


def test_started_event_carries_its_fields(tracer: Tracer, capture: _Capture) -> None:
    started, _, span = run(tracer, capture, SpanSpec("invoke_agent Researcher", OWN_AGENT))

    event = one(started, EventType.AGENT_EXECUTION_STARTED)
    assert event.data == {
        "agent_id": "researcher-1",
        "agent_name": "Researcher",
        "task_description": "find markets",
        "run_id": format(span.context.span_id, "016x"),
        "started_at": format_timestamp(span.start_time),
        "service_name": SERVICE,
        "parent_span_id": None,
    }


def test_completed_event_carries_its_fields(tracer: Tracer, capture: _Capture) -> None:
    spec = SpanSpec("invoke_agent Researcher", OWN_AGENT, end_attrs={
        sc.DATA_SOURCE: "web", sc.GEN_AI_USAGE_INPUT_TOKENS: 120, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 30})
    _, ended, span = run(tracer, capture, spec)

    event = one(ended, EventType.AGENT_EXECUTION_COMPLETED)
    assert event.severity is Severity.SUCCESS
    assert event.timestamp == format_timestamp(span.end_time)
    assert event.data == {
        "agent_id": "researcher-1",
        "agent_name": "Researcher",
        "task_description": "find markets",
        "run_id": format(span.context.span_id, "016x"),
        "duration_ms": round((span.end_time - span.start_time) / 1e6, 3),
        "success": True,
        "quality_score": None,
        "data_source": "web",
        "error_message": None,
        "started_at": format_timestamp(span.start_time),
        "service_name": SERVICE,
        "parent_span_id": None,
        "input_tokens": 120,
        "output_tokens": 30,
        "error_type": None,
    }


def test_failed_agent_completion_is_an_error(tracer: Tracer, capture: _Capture) -> None:
    spec = SpanSpec("invoke_agent Researcher", OWN_AGENT, status=Status(StatusCode.ERROR, "boom"))
    _, ended, span = run(tracer, capture, spec)

    assert [e.severity for e in ended] == [Severity.ERROR, Severity.ERROR]
    error = one(ended, EventType.ERROR_OCCURRED)
    assert error.timestamp == format_timestamp(span.end_time)


def test_durations_and_timestamps_follow_the_span_clock(tracer: Tracer, capture: _Capture) -> None:
    start_ns = 1_767_225_600_123_456_789  # 2026-01-01T00:00:00.123Z
    span = tracer.start_span("synthesis rank", attributes={sc.SPAN_KIND: sc.SPAN_KIND_SYNTHESIS},
                             start_time=start_ns)
    span.end(end_time=start_ns + 2_500_000)
    started = capture.started[span.context.span_id]
    ended = map_span_end(capture.ended[-1])

    assert started[0].timestamp == "2026-01-01T00:00:00.123Z"
    assert ended[0].timestamp == "2026-01-01T00:00:00.125Z"
    assert ended[0].data["duration_ms"] == 2.5
    assert ended[0].data["phase"] == "rank"


def test_the_decorators_unset_success_maps_to_success(exporter: InMemorySpanExporter) -> None:
    @synthesis(phase="merge")
    def merge() -> list[str]:
        return ["a", "b"]

    @agent(name="Researcher")
    def research(topic: str) -> list[str]:
        return merge()

    assert research("markets") == ["a", "b"]

    merged, researched = exporter.get_finished_spans()
    assert merged.status.status_code is researched.status.status_code is StatusCode.UNSET
    assert one(map_span_end(researched), EventType.AGENT_EXECUTION_COMPLETED).data["success"] is True
    completed = one(map_span_end(merged), EventType.SYNTHESIS_COMPLETED).data
    assert (completed["success"], completed["patterns_found"]) == (True, 2)


def test_nested_agent_spans_are_two_runs(tracer: Tracer, capture: _Capture) -> None:
    workflow = tracer.start_span("Workflow", attributes={sc.OPENINFERENCE_SPAN_KIND: "AGENT"})
    inner_started, inner_ended, inner = run(
        tracer, capture, SpanSpec("invoke_agent Researcher", OWN_AGENT), parent=workflow
    )
    workflow.end()
    outer_started = capture.started[workflow.context.span_id]
    outer_ended = map_span_end(capture.ended[-1])

    outer_run = one(outer_started, EventType.AGENT_EXECUTION_STARTED).data
    inner_run = one(inner_started, EventType.AGENT_EXECUTION_STARTED).data
    assert outer_run["agent_name"] == "Workflow"
    assert inner_run["agent_name"] == "Researcher"
    assert outer_run["run_id"] != inner_run["run_id"]
    assert inner_run["parent_span_id"] == outer_run["run_id"]
    assert one(inner_ended, EventType.AGENT_EXECUTION_COMPLETED).data["run_id"] == inner_run["run_id"]
    assert one(outer_ended, EventType.AGENT_EXECUTION_COMPLETED).data["run_id"] == outer_run["run_id"]
    assert inner.parent is not None


def test_child_with_agent_name_produces_no_agent_events_but_is_attributed(
    tracer: Tracer, capture: _Capture
) -> None:
    spec = SpanSpec("chat", {sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_AGENT_NAME: "Researcher"},
                    events=[(sc.EVENT_OPPORTUNITY_DISCOVERED, {sc.OPPORTUNITY_TITLE: "Solar"})])
    started, ended, _ = run(tracer, capture, spec)

    assert started == []
    assert types_of(ended) == ["opportunity_discovered"]
    assert ended[0].data["agent_name"] == "Researcher"
    assert ended[0].data["agent_id"] == "Researcher"


def test_opportunity_span_event(tracer: Tracer, capture: _Capture) -> None:
    attrs = {sc.OPPORTUNITY_ID: "opp-1", sc.OPPORTUNITY_TITLE: "Solar", sc.OPPORTUNITY_DESCRIPTION: "Rooftop",
             sc.OPPORTUNITY_CONFIDENCE: 0.9, sc.OPPORTUNITY_REVENUE_POTENTIAL: "$1M",
             sc.OPPORTUNITY_CATEGORY: "energy"}
    span = tracer.start_span("invoke_agent Researcher", attributes=OWN_AGENT)
    span.add_event(sc.EVENT_OPPORTUNITY_DISCOVERED, attrs, timestamp=span.start_time + 1_000_000)
    span.end()
    ended = map_span_end(capture.ended[-1])

    assert types_of(ended) == ["opportunity_discovered", "agent_execution_completed"]
    event = ended[0]
    assert event.severity is Severity.SUCCESS
    assert event.timestamp == format_timestamp(span.start_time + 1_000_000)
    assert event.data == {
        "opportunity_id": "opp-1", "title": "Solar", "description": "Rooftop", "confidence_score": 0.9,
        "revenue_potential": "$1M", "category": "energy", "agent_id": "researcher-1",
        "agent_name": "Researcher", "service_name": SERVICE,
    }


def test_opportunity_without_id_gets_a_stable_one(tracer: Tracer, capture: _Capture) -> None:
    _, ended, span = run(tracer, capture, SpanSpec("work", events=[
        (sc.EVENT_OPPORTUNITY_DISCOVERED, {sc.OPPORTUNITY_TITLE: "A"}),
        (sc.EVENT_OPPORTUNITY_DISCOVERED, {sc.OPPORTUNITY_TITLE: "B"}),
    ]))

    span_hex = format(span.context.span_id, "016x")
    assert [e.data["opportunity_id"] for e in ended] == [f"{span_hex}-0", f"{span_hex}-1"]
    assert ended[0].data["agent_name"] is None
    assert ended[0].data["confidence_score"] is None


@pytest.mark.parametrize(
    ("score", "thresholds", "severity"),
    [
        (100.0, None, Severity.SUCCESS),
        (95.0, None, Severity.SUCCESS),
        (94.99, None, Severity.WARNING),
        (90.0, None, Severity.WARNING),
        (89.99, None, Severity.ERROR),
        (0.0, None, Severity.ERROR),
        (85.0, QualityThresholds(success=80, warning=50), Severity.SUCCESS),
        (50.0, QualityThresholds(success=80, warning=50), Severity.WARNING),
        (49.0, QualityThresholds(success=80, warning=50), Severity.ERROR),
    ],
)
def test_quality_span_event_severity_follows_thresholds(
    tracer: Tracer, capture: _Capture, score: float, thresholds: QualityThresholds | None, severity: Severity
) -> None:
    span = tracer.start_span("execute_tool grade", attributes={sc.GEN_AI_TOOL_NAME: "grade"})
    span.add_event(sc.EVENT_QUALITY_SCORE_UPDATED, {
        sc.QUALITY_SCORE: score, sc.QUALITY_SOURCE: "grader", sc.QUALITY_DIMENSIONS: '{"accuracy": 91.5}'})
    span.end()
    ended = map_span_end(capture.ended[-1], thresholds=thresholds)

    event = one(ended, EventType.QUALITY_SCORE_UPDATED)
    assert event.severity is severity
    assert event.data == {"source": "grader", "overall_score": score,
                          "dimension_scores": {"accuracy": 91.5}, "agent_id": None,
                          "agent_name": None, "service_name": SERVICE}


@pytest.mark.parametrize("dimensions", ["{not json", "[1, 2]", "", 42])
def test_bad_dimension_json_gives_empty_dimensions(
    tracer: Tracer, capture: _Capture, dimensions: Any
) -> None:
    _, ended, _ = run(tracer, capture, SpanSpec("work", events=[
        (sc.EVENT_QUALITY_SCORE_UPDATED, {sc.QUALITY_SCORE: 91.0, sc.QUALITY_DIMENSIONS: dimensions})]))

    assert one(ended, EventType.QUALITY_SCORE_UPDATED).data["dimension_scores"] == {}
    assert one(ended, EventType.QUALITY_SCORE_UPDATED).data["source"] == "work"


FOREIGN_AGENT = {k: v for k, v in OWN_AGENT.items() if k != sc.SPAN_KIND}


def test_quality_attribute_without_span_event_gives_one_quality_event(
    tracer: Tracer, capture: _Capture
) -> None:
    spec = SpanSpec("invoke_agent Researcher", FOREIGN_AGENT, end_attrs={sc.QUALITY_SCORE: 92.0})
    _, ended, span = run(tracer, capture, spec)

    assert types_of(ended) == ["quality_score_updated", "agent_execution_completed"]
    quality = ended[0]
    assert quality.severity is Severity.WARNING
    assert quality.timestamp == format_timestamp(span.end_time)
    assert quality.data["source"] == "Researcher"
    assert quality.data["overall_score"] == 92.0
    assert quality.data["dimension_scores"] == {}
    assert ended[1].data["quality_score"] == 92.0


def test_quality_recorded_in_a_child_of_our_agent_span_reaches_the_stream_once(
    tracer: Tracer, capture: _Capture
) -> None:
    # What record_quality_score does inside a tool of an @agent: the span event on the tool span,
    # and the score copied onto the agent span as an attribute.
    agent = tracer.start_span("invoke_agent Researcher", attributes=OWN_AGENT)
    _, tool_events, _ = run(tracer, capture, SpanSpec("execute_tool grade", events=[
        (sc.EVENT_QUALITY_SCORE_UPDATED, {sc.QUALITY_SCORE: 92.0, sc.QUALITY_SOURCE: "Researcher"})]),
        parent=agent)
    agent.set_attribute(sc.QUALITY_SCORE, 92.0)
    agent.end()
    agent_events = map_span_end(capture.ended[-1])

    assert types_of(tool_events + agent_events) == ["quality_score_updated", "agent_execution_completed"]
    assert agent_events[0].data["quality_score"] == 92.0


def test_quality_attribute_with_span_event_is_not_duplicated(tracer: Tracer, capture: _Capture) -> None:
    spec = SpanSpec(
        "invoke_agent Researcher", FOREIGN_AGENT, end_attrs={sc.QUALITY_SCORE: 97.0},
        events=[(sc.EVENT_QUALITY_SCORE_UPDATED, {sc.QUALITY_SCORE: 97.0, sc.QUALITY_SOURCE: "Researcher",
                                                  sc.QUALITY_DIMENSIONS: '{"depth": 96}'})],
    )
    _, ended, _ = run(tracer, capture, spec)

    assert types_of(ended) == ["quality_score_updated", "agent_execution_completed"]
    assert ended[0].data["dimension_scores"] == {"depth": 96}
    assert ended[0].data["agent_id"] == "researcher-1"
    assert ended[0].severity is Severity.SUCCESS
    assert ended[1].data["quality_score"] == 97.0


def test_quality_attribute_on_a_non_agent_span_alone_gives_nothing(tracer: Tracer, capture: _Capture) -> None:
    _, ended, _ = run(tracer, capture, SpanSpec("work", {sc.QUALITY_SCORE: 50.0}))

    assert ended == []


def test_span_events_come_in_event_time_order_then_completion_then_error(
    tracer: Tracer, capture: _Capture
) -> None:
    span = tracer.start_span("invoke_agent Researcher", attributes=OWN_AGENT)
    t0 = span.start_time
    span.add_event(sc.EVENT_QUALITY_SCORE_UPDATED, {sc.QUALITY_SCORE: 99.0}, timestamp=t0 + 3_000_000)
    span.add_event(sc.EVENT_OPPORTUNITY_DISCOVERED, {sc.OPPORTUNITY_TITLE: "late"}, timestamp=t0 + 2_000_000)
    span.add_event(sc.EXCEPTION_EVENT, {sc.EXCEPTION_MESSAGE: "oops"}, timestamp=t0 + 4_000_000)
    span.add_event(sc.EVENT_OPPORTUNITY_DISCOVERED, {sc.OPPORTUNITY_TITLE: "early"}, timestamp=t0 + 1_000_000)
    span.end(end_time=t0 + 5_000_000)
    ended = map_span_end(capture.ended[-1])

    assert types_of(ended) == ["opportunity_discovered", "opportunity_discovered", "quality_score_updated",
                               "agent_execution_completed", "error_occurred"]
    assert [e.data.get("title") for e in ended[:2]] == ["early", "late"]
    assert [e.timestamp for e in ended] == [format_timestamp(t0 + n * 1_000_000) for n in (1, 2, 3, 5, 4)]
    # An exception recorded on a span that still succeeds: the run succeeded, the error is reported.
    assert ended[3].data["success"] is True
    assert ended[4].data["error_message"] == "oops"


def test_map_span_end_never_emits_started_events(tracer: Tracer, capture: _Capture) -> None:
    for param in CASES:
        spec = param.values[0]
        _, ended, _ = run(tracer, capture, spec)
        assert not {"agent_execution_started", "synthesis_started"} & set(types_of(ended))


def test_service_name_default_and_missing_resource() -> None:
    capture = _Capture()
    provider = TracerProvider()  # the SDK's default resource: service.name = "unknown_service"
    provider.add_span_processor(capture)
    tracer = provider.get_tracer("t")
    span = tracer.start_span("Researcher", attributes={sc.GEN_AI_OPERATION_NAME: "invoke_agent"})
    span.end()
    assert capture.started[span.context.span_id][0].data["service_name"].startswith("unknown_service")

    bare = ReadableSpan("Researcher", attributes={sc.GEN_AI_OPERATION_NAME: "invoke_agent"})
    bare._resource = None  # a foreign span with no resource at all
    events = map_span_start(bare) + map_span_end(bare)
    assert types_of(events) == ["agent_execution_started", "agent_execution_completed"]
    assert events[0].data["service_name"] is None
    provider.shutdown()


@pytest.mark.parametrize(
    "span",
    [
        ReadableSpan("weird"),
        ReadableSpan("weird", attributes=None, status=None),  # type: ignore[arg-type]
        ReadableSpan("weird-agent", attributes={
            sc.GEN_AI_OPERATION_NAME: "invoke_agent", sc.GEN_AI_AGENT_NAME: 7, sc.GEN_AI_AGENT_ID: ("a", "b"),
            sc.TASK_DESCRIPTION: 3.5, sc.QUALITY_SCORE: "not a number", sc.GEN_AI_USAGE_INPUT_TOKENS: "12",
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: 1.5}, start_time=None, end_time=None),
        ReadableSpan("weird-synthesis", attributes={
            sc.SPAN_KIND: sc.SPAN_KIND_SYNTHESIS, sc.SYNTHESIS_PATTERNS_FOUND: "many"},
            start_time=10, end_time=5),
        ReadableSpan("weird-events", events=(object(),), status=Status(StatusCode.ERROR)),  # type: ignore[arg-type]
        ReadableSpan("kind", attributes={sc.OPENINFERENCE_SPAN_KIND: 5, sc.TRACELOOP_SPAN_KIND: None}),
    ],
    ids=["bare", "none-status", "odd-agent-values", "odd-synthesis-values", "odd-events", "odd-kinds"],
)
def test_mapping_tolerates_anything(span: ReadableSpan) -> None:
    events = map_span_start(span) + map_span_end(span)

    for event in events:
        assert event.trace_id is None and event.span_id is None
        event.to_json()  # serialisable


def test_odd_values_are_coerced() -> None:
    span = ReadableSpan("weird-agent", attributes={
        sc.GEN_AI_OPERATION_NAME: "invoke_agent", sc.GEN_AI_AGENT_NAME: 7, sc.GEN_AI_AGENT_ID: ("a", "b"),
        sc.TASK_DESCRIPTION: 3.5, sc.QUALITY_SCORE: "96", sc.GEN_AI_USAGE_INPUT_TOKENS: "12",
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 1.5})
    events = map_span_end(span)

    completed = one(events, EventType.AGENT_EXECUTION_COMPLETED)
    assert completed.data["agent_name"] == "7"
    assert completed.data["agent_id"] == "a, b"
    assert completed.data["task_description"] == "3.5"
    assert completed.data["quality_score"] == 96.0
    assert completed.data["input_tokens"] == 12
    assert "output_tokens" not in completed.data
    assert completed.data["duration_ms"] is None
    assert completed.data["started_at"] is None
    synthesis = map_span_end(ReadableSpan("s", attributes={sc.SPAN_KIND: sc.SPAN_KIND_SYNTHESIS},
                                          start_time=10, end_time=5))
    assert synthesis[0].data["duration_ms"] == 0.0
