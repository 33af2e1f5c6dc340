"""DashboardSpanProcessor: end to end on a real SDK provider, exact counting under threads, dropping
instead of blocking, flush and shutdown, faults that never reach user code."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from opentelemetry import context as context_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, Decision, Sampler, SamplingResult
from opentelemetry.trace import Status, StatusCode, Tracer, set_span_in_context

from instrumentation import semconv as sc
from otel_dashboard.model import mapping
from otel_dashboard.model.events import DashboardEvent, EventType, QualityThresholds, Severity
from otel_dashboard.pipeline.processor import DashboardSpanProcessor
from otel_dashboard.state.dashboard import DashboardState
from otel_dashboard.state.traces import TraceStore

SYNTHESIS = {sc.SPAN_KIND: sc.SPAN_KIND_SYNTHESIS, sc.SYNTHESIS_PHASE: "merge"}
AGENT = {
    sc.GEN_AI_OPERATION_NAME: sc.OPERATION_INVOKE_AGENT,
    sc.GEN_AI_AGENT_NAME: "Researcher",
    sc.GEN_AI_AGENT_ID: "researcher-1",
    sc.TASK_DESCRIPTION: "find markets",
}


@pytest.fixture(name="state")
def fixture_state() -> DashboardState:
    return DashboardState(max_history=10_000)


@pytest.fixture(name="make_tracer")
def fixture_make_tracer() -> Iterator[Callable[..., tuple[Tracer, DashboardSpanProcessor]]]:
    """Build provider + processor pairs; every provider is shut down after the test."""
    providers: list[TracerProvider] = []

    def make(state: DashboardState, sampler: Sampler | None = None,
             **options: object) -> tuple[Tracer, DashboardSpanProcessor]:
        processor = DashboardSpanProcessor(state=state, **options)  # type: ignore[arg-type]
        provider = TracerProvider(resource=Resource.create({sc.SERVICE_NAME: "proc-tests"}), sampler=sampler)
        provider.add_span_processor(processor)
        providers.append(provider)
        return provider.get_tracer("tests.processor"), processor

    yield make
    for provider in providers:
        provider.shutdown()


def types_of(events: list[DashboardEvent]) -> list[str]:
    return [e.event_type.value for e in events]


def all_events(state: DashboardState) -> list[DashboardEvent]:
    return state.get_events_after(0, 1_000_000)


def test_spans_become_state_events_in_order(state: DashboardState, make_tracer) -> None:
    tracer, processor = make_tracer(state)

    agent = tracer.start_span("invoke_agent Researcher", attributes=AGENT)
    synthesis = tracer.start_span("synthesis merge", context=set_span_in_context(agent), attributes=SYNTHESIS)
    synthesis.set_attribute(sc.SYNTHESIS_PATTERNS_FOUND, 3)
    synthesis.end()
    tool = tracer.start_span("execute_tool search", context=set_span_in_context(agent),
                             attributes={sc.GEN_AI_TOOL_NAME: "search"})
    tool.set_status(Status(StatusCode.ERROR, "timeout"))
    tool.end()
    agent.set_attribute(sc.QUALITY_SCORE, 96.0)
    agent.end()
    assert processor.force_flush()

    events = all_events(state)
    assert types_of(events) == [
        "agent_registered",  # first sight of researcher-1, added by the state
        "agent_execution_started",
        "synthesis_started",
        "synthesis_completed",
        "error_occurred",
        "quality_score_updated",
        "agent_execution_completed",
    ]
    assert [e.seq for e in events] == list(range(1, 8))
    completed = events[-1]
    assert completed.data["quality_score"] == 96.0
    assert completed.data["service_name"] == "proc-tests"
    assert completed.span_id == format(agent.context.span_id, "016x")
    assert events[4].data["source"] == "search"
    assert processor.processed == 6  # three starts, three ends
    assert processor.dropped_events == 0
    assert state.get_metrics()["active_agents"] == 0
    assert state.get_metrics()["avg_quality_score"] == 96.0


def test_exact_counting_under_eight_threads(make_tracer) -> None:
    threads_n, spans_per_thread = 8, 10_000
    accepted = itertools.count()  # next() is atomic; the state calls subscribers under its lock anyway
    state = DashboardState(max_history=100)
    state.subscribe(lambda event: next(accepted))
    # A queue small enough that eight producers may fill it: the drop path runs under contention too.
    tracer, processor = make_tracer(state, max_queue_size=1024)
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_n)

    def produce() -> None:
        try:
            barrier.wait()
            for _ in range(spans_per_thread):
                tracer.start_span("synthesis merge", attributes=SYNTHESIS).end()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=produce) for _ in range(threads_n)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert processor.force_flush(timeout_millis=60_000)

    produced = threads_n * spans_per_thread * 2  # one start and one end item per span
    events_accepted = next(accepted)
    assert errors == []
    assert events_accepted == processor.processed  # each synthesis start or end is one event
    assert events_accepted + processor.dropped_events == produced
    assert state.get_counters()["dropped_events"] == processor.dropped_events


class _Stall:
    """A subscriber that blocks the publishing thread until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, event: DashboardEvent) -> None:
        self.entered.set()
        self.release.wait(30)


def test_full_queue_drops_instead_of_blocking(state: DashboardState, make_tracer) -> None:
    stall = _Stall()
    state.subscribe(stall)
    tracer, processor = make_tracer(state, max_queue_size=100)
    try:
        first = tracer.start_span("synthesis first", attributes=SYNTHESIS)
        assert stall.entered.wait(5)  # the worker is now stuck inside publish, the queue is empty
        first.end()  # 1 item queued

        slowest = 0.0
        begin = time.perf_counter()
        for _ in range(150):  # 300 more items, room for 99
            t0 = time.perf_counter()
            tracer.start_span("synthesis merge", attributes=SYNTHESIS).end()
            slowest = max(slowest, time.perf_counter() - t0)
        elapsed = time.perf_counter() - begin

        assert processor.dropped_events == 301 - 100
        assert slowest < 0.1 and elapsed < 2.0
        assert processor.force_flush(timeout_millis=50) is False  # stalled: times out
    finally:
        stall.release.set()
    assert processor.force_flush(timeout_millis=10_000) is True
    assert processor.processed == 1 + 100
    assert len(all_events(state)) == 1 + 100
    assert processor.dropped_events == 201
    assert state.get_counters()["dropped_events"] == 201  # reported by the worker, before the flush


def test_shutdown_flushes_is_idempotent_and_then_drops_silently(state: DashboardState, make_tracer) -> None:
    tracer, processor = make_tracer(state)
    for _ in range(5):
        tracer.start_span("synthesis merge", attributes=SYNTHESIS).end()

    processor.shutdown()
    assert len(all_events(state)) == 10  # pending spans were flushed
    assert not processor._worker.is_alive()
    processor.shutdown()  # again: returns at once
    tracer.start_span("synthesis merge", attributes=SYNTHESIS).end()  # no error, nothing queued

    assert len(all_events(state)) == 10
    assert processor.dropped_events == 0  # post-shutdown drops are not counted
    assert processor.force_flush() is False


def test_shutdown_is_bounded_when_the_sink_is_stuck(state: DashboardState, make_tracer) -> None:
    stall = _Stall()
    state.subscribe(stall)
    tracer, processor = make_tracer(state)
    try:
        tracer.start_span("synthesis merge", attributes=SYNTHESIS).end()
        assert stall.entered.wait(5)
        begin = time.perf_counter()
        processor.shutdown(timeout_millis=200)
        assert time.perf_counter() - begin < 2.0
    finally:
        stall.release.set()
    processor._worker.join(5)
    assert not processor._worker.is_alive()


def test_hooks_never_raise_when_mapping_raises(
    state: DashboardState, make_tracer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_map_end = mapping.map_span_end

    def flaky_map_end(span: ReadableSpan, **kwargs: object) -> list[DashboardEvent]:
        if span.name == "bad":
            raise RuntimeError("mapping bug")
        return real_map_end(span, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(mapping, "map_span_end", flaky_map_end)
    tracer, processor = make_tracer(state)

    tracer.start_span("bad", attributes=SYNTHESIS).end()
    tracer.start_span("synthesis good", attributes=SYNTHESIS).end()
    assert processor.force_flush()

    assert types_of(all_events(state)) == ["synthesis_started", "synthesis_started", "synthesis_completed"]
    assert all_events(state)[-1].data["phase"] == "merge"
    assert processor.processed == 4
    assert any("mapping span 'bad' failed" in r.getMessage() for r in caplog.records)


def test_hooks_never_raise_on_broken_spans_or_a_failing_sink(state: DashboardState, make_tracer) -> None:
    tracer, processor = make_tracer(state)
    processor.on_start(object())  # type: ignore[arg-type]
    processor.on_end(None)  # type: ignore[arg-type]

    def broken_publish(event: DashboardEvent) -> DashboardEvent:
        raise RuntimeError("store down")

    processor._sink = broken_publish
    tracer.start_span("synthesis merge", attributes=SYNTHESIS).end()
    assert processor.force_flush()
    assert processor.processed == 2
    assert all_events(state) == []


def test_a_state_with_publish_only_gets_every_event_in_order_despite_a_failing_one(make_tracer) -> None:
    class PublishOnly:
        def __init__(self) -> None:
            self.events: list[DashboardEvent] = []

        def publish(self, event: DashboardEvent) -> DashboardEvent:
            if event.data.get("phase") == "bad":
                raise RuntimeError("store down")
            self.events.append(event)
            return event

    sink = PublishOnly()
    tracer, processor = make_tracer(sink)
    for phase in ("first", "bad", "last"):
        tracer.start_span(f"synthesis {phase}", attributes={**SYNTHESIS, sc.SYNTHESIS_PHASE: phase}).end()
    assert processor.force_flush()

    assert [(e.event_type.value, e.data["phase"]) for e in sink.events] == [
        ("synthesis_started", "first"), ("synthesis_completed", "first"),
        ("synthesis_started", "last"), ("synthesis_completed", "last"),
    ]
    assert processor.processed == 6


class _RecordOnly(Sampler):
    """Records spans (so processors see them) without sampling them."""

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None,
                      trace_state=None) -> SamplingResult:
        return SamplingResult(Decision.RECORD_ONLY, attributes)

    def get_description(self) -> str:
        return "RecordOnly"


@pytest.mark.parametrize("sampler", [_RecordOnly(), ALWAYS_OFF], ids=["record-only", "always-off"])
def test_unsampled_spans_are_skipped(state: DashboardState, make_tracer, sampler: Sampler) -> None:
    tracer, processor = make_tracer(state, sampler=sampler)
    span = tracer.start_span("invoke_agent Researcher", attributes=AGENT)
    span.end()
    assert processor.force_flush()

    assert processor.processed == 0
    assert all_events(state) == []


def test_quality_thresholds_come_from_the_state_unless_given(make_tracer) -> None:
    lenient = DashboardState(quality_thresholds=QualityThresholds(success=80, warning=50))

    def quality_span(tracer: Tracer) -> None:
        span = tracer.start_span("grade")
        span.add_event(sc.EVENT_QUALITY_SCORE_UPDATED, {sc.QUALITY_SCORE: 85.0})
        span.end()

    tracer, processor = make_tracer(lenient)
    quality_span(tracer)
    assert processor.force_flush()
    strict_state = DashboardState()
    strict = QualityThresholds(success=99, warning=98)
    tracer, processor = make_tracer(strict_state, quality_thresholds=strict)
    quality_span(tracer)
    assert processor.force_flush()

    assert all_events(lenient)[0].severity is Severity.SUCCESS
    assert all_events(strict_state)[0].severity is Severity.ERROR


def test_the_worker_runs_with_instrumentation_suppressed(state: DashboardState, make_tracer) -> None:
    seen: list[object] = []
    key = context_api._SUPPRESS_INSTRUMENTATION_KEY
    state.subscribe(lambda event: seen.append(context_api.get_value(key)))
    tracer, processor = make_tracer(state)
    tracer.start_span("synthesis merge", attributes=SYNTHESIS).end()
    assert processor.force_flush()

    assert seen == [True, True]


def test_default_state_is_resolved_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    state = DashboardState()
    monkeypatch.setattr("otel_dashboard.pipeline.processor.get_dashboard", lambda: state)
    processor = DashboardSpanProcessor()
    monkeypatch.setattr("otel_dashboard.pipeline.processor.get_dashboard", lambda: DashboardState())
    provider = TracerProvider()
    provider.add_span_processor(processor)
    provider.get_tracer("t").start_span("synthesis merge", attributes=SYNTHESIS).end()
    assert processor.force_flush()
    provider.shutdown()

    assert types_of(all_events(state)) == ["synthesis_started", "synthesis_completed"]


@pytest.mark.parametrize(
    ("options", "parameter"),
    [
        ({"max_queue_size": 0}, "max_queue_size"),
        ({"max_queue_size": -5}, "max_queue_size"),
        ({"max_queue_size": True}, "max_queue_size"),
        ({"max_queue_size": "100"}, "max_queue_size"),
        ({"quality_thresholds": (95, 90)}, "quality_thresholds"),
        ({"state": object()}, "state"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_the_parameter(options: dict, parameter: str) -> None:
    with pytest.raises(ValueError, match=parameter):
        DashboardSpanProcessor(state=DashboardState(), **options) if "state" not in options else (
            DashboardSpanProcessor(**options))


def test_arguments_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        DashboardSpanProcessor(DashboardState())  # type: ignore[misc]


def test_event_types_cover_agent_runs_end_to_end(state: DashboardState, make_tracer) -> None:
    tracer, processor = make_tracer(state)
    span = tracer.start_span("AgentRun", attributes={sc.OPENINFERENCE_SPAN_KIND: "AGENT"})
    span.set_attribute(sc.OPENINFERENCE_AGENT_NAME, "Planner")
    span.end()
    assert processor.force_flush()

    events = all_events(state)
    completed = [e for e in events if e.event_type is EventType.AGENT_EXECUTION_COMPLETED]
    assert len(completed) == 1
    assert completed[0].data["agent_name"] == "Planner"
    assert state.get_metrics()["active_agents"] == 0


def test_spans_over_the_trace_cap_are_counted_once(make_tracer) -> None:
    class CappedState:
        """A state whose trace store keeps two spans per trace (DashboardState keeps 1,000)."""

        def __init__(self) -> None:
            self.events: list[DashboardEvent] = []
            self.traces = TraceStore(max_spans_per_trace=2)

        def publish(self, event: DashboardEvent) -> DashboardEvent:
            self.events.append(event)
            return event

    state = CappedState()
    tracer, processor = make_tracer(state)
    agent = tracer.start_span("invoke_agent Researcher", attributes=AGENT)
    assert processor.force_flush()  # the agent's running record, in a batch of its own
    parent = set_span_in_context(agent)
    for n in range(4):
        tracer.start_span(f"step {n}", context=parent).end()
    agent.end()
    assert processor.force_flush()

    trace = state.traces.get_trace(format(agent.context.trace_id, "032x"))
    assert trace is not None and trace["running"] is False
    assert trace["span_count"] == 2 and trace["dropped_spans"] == 3  # each refused span once
    assert state.traces.stats()["dropped_spans"] == 3
