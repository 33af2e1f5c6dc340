"""From spans to dashboard events: a pure function layer.

:func:`map_span_start` and :func:`map_span_end` turn one started or ended span (any
:class:`~opentelemetry.sdk.trace.ReadableSpan`, ours or another instrumentation's) into zero or more
:class:`~otel_dashboard.model.events.DashboardEvent` objects. They publish nothing and keep no state: the
:class:`~otel_dashboard.pipeline.processor.DashboardSpanProcessor`
calls them on its worker thread, and the OTLP
receiver can call them on spans rebuilt from the wire. ``docs/events.md`` is the user-facing reference
for every rule below.

What is recognised
    What a span is (agent run, model call, tool call, retrieval, chain step, synthesis,
    registration, other), and its names and task, come from the vocabulary layer
    (:mod:`otel_dashboard.model.vocab`: this project's decorators, GenAI semconv, OpenInference,
    OpenLLMetry, MCP). Agent spans give run events, synthesis spans synthesis events, registration
    spans ``agent_registered``; on every ended span: the span events ``opportunity_discovered`` and
    ``quality_score_updated``, and failure (status ERROR or an ``exception`` span event). An agent
    name copied onto a child span does not make it an agent span. What needs memory across spans
    (runs, their totals, one error per failure) is :mod:`otel_dashboard.model.span_mapper`'s.

Order of the events of one ended span (stable, documented in ``docs/events.md``)
    1. ``opportunity_discovered`` / ``quality_score_updated`` from span events, in event-time order;
    2. the ``quality_score_updated`` derived from a foreign agent span's quality attribute (only when
       the span has no such span event and is not from our ``@agent`` decorator, whose scores always
       come as span events, possibly on a child span);
    3. ``agent_execution_completed`` / ``synthesis_completed`` / ``agent_registered``;
    4. at most one ``error_occurred``.

Attributes and span events are read, never copied, through :mod:`otel_dashboard.model.sdk_span`
(the one module that knows the SDK's private fields; public properties for any other span). Mapping
tolerates anything a foreign span may carry (missing resource or context, non-string values, odd
statuses); it raises only on programmer errors, and the processor guards against even those.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import StatusCode

from instrumentation import semconv as sc
from otel_dashboard.model import sdk_span
from otel_dashboard.model.events import (
    DashboardEvent,
    EventType,
    QualityThresholds,
    Severity,
)
from otel_dashboard.model.recognition import agent_id_of, synthesis_phase_of
from otel_dashboard.model.span_facts import (
    SpanInfo,
    duration_ms_of,
    event_attributes,
    event_time,
    span_info,
    status_description,
)
from otel_dashboard.model.values import as_float, as_int, as_text, dimensions, plain
from otel_dashboard.model.vocab import (
    KIND_AGENT,
    KIND_REGISTRATION,
    KIND_SYNTHESIS,
    KIND_TOOL,
    SpanView,
    error_of,
    kind_of,
    task_of,
    view_of,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["map_span_end", "map_span_start"]

_CREATE_AGENT_PREFIX = sc.OPERATION_CREATE_AGENT + " "
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_DEFAULT_THRESHOLDS = QualityThresholds()
# What every agent span reads, as module constants: an enum member looked up through its class goes
# through the enum metaclass and costs about ten times as much.
_AGENT_STARTED = EventType.AGENT_EXECUTION_STARTED
_AGENT_COMPLETED = EventType.AGENT_EXECUTION_COMPLETED
_INFO, _SUCCESS, _ERROR = Severity.INFO, Severity.SUCCESS, Severity.ERROR
_STATUS_ERROR = StatusCode.ERROR
# The span events that give dashboard events; a span carrying only others (an application's own
# log of steps, say) is mapped as if it had none.
_MAPPED_EVENT_NAMES = frozenset(
    {sc.EXCEPTION_EVENT, sc.EVENT_OPPORTUNITY_DISCOVERED, sc.EVENT_QUALITY_SCORE_UPDATED}
)


# ---------------------------------------------------------------------------------- public API
def map_span_start(
    span: ReadableSpan, *, thresholds: QualityThresholds | None = None, view: SpanView | None = None
) -> list[DashboardEvent]:
    """The events of a span that has just started.

    Only agent spans (``agent_execution_started``) and synthesis spans (``synthesis_started``) produce
    events at start; a span recognisable only by attributes set later produces none here.

    Args:
        span: the started span (the live SDK span is fine: attributes are read, not copied).
        thresholds: unused at start; accepted so both functions share one signature.
        view: the span's :class:`~otel_dashboard.model.vocab.SpanView` when the caller has it
            already (the stateful :class:`~otel_dashboard.model.span_mapper.SpanMapper`).

    Returns:
        Zero or one event, timestamped with the span's start time.
    """
    attrs = sdk_span.attributes(span)
    kind = view.kind if view is not None else kind_of(span.name, attrs)[0]
    if kind == KIND_AGENT:
        if view is None:
            view = view_of(span.name, attrs)
        ctx = span_info(span)
        name = view.agent_name or "agent"
        started_at = ctx.started_at(span)
        data = {
            "agent_id": view.agent_id or name,
            "agent_name": name,
            "task_description": task_of(attrs, sdk_span.events(span)) or "",
            "run_id": ctx.span_id,
            "started_at": started_at,
            "service_name": ctx.service_name,
            "parent_span_id": ctx.parent_span_id,
        }
        return [ctx.event(_AGENT_STARTED, data, _INFO, span.start_time, started_at)]
    if kind == KIND_SYNTHESIS:
        ctx = span_info(span)
        data = {
            "phase": synthesis_phase_of(span, attrs),
            "description": as_text(attrs.get(sc.SYNTHESIS_DESCRIPTION)) or "",
            "run_id": ctx.span_id,
            "service_name": ctx.service_name,
            "parent_span_id": ctx.parent_span_id,
        }
        return [ctx.event(EventType.SYNTHESIS_STARTED, data, Severity.INFO, span.start_time)]
    return []


def map_span_end(
    span: ReadableSpan, *, thresholds: QualityThresholds | None = None, view: SpanView | None = None
) -> list[DashboardEvent]:
    """The events of a span that has ended, in the order given in the module docstring.

    Never produces a started event: an agent span recognisable only at its end yields its
    ``agent_execution_completed`` (with its real start time in ``started_at``) and nothing more.

    Args:
        span: the ended span.
        thresholds: turn quality scores into severities; the defaults (95 / 90) when ``None``.
        view: the span's :class:`~otel_dashboard.model.vocab.SpanView` when the caller has it.

    Returns:
        The span's events; empty for the common span that is none of the recognised kinds.
    """
    attrs = sdk_span.attributes(span)
    span_events = sdk_span.events(span)
    if span_events:
        for span_event in span_events:
            if getattr(span_event, "name", None) in _MAPPED_EVENT_NAMES:
                break
        else:
            span_events = ()  # nothing to map in them: the plain span below returns at once
    status = span.status
    failed = getattr(status, "status_code", None) is _STATUS_ERROR
    kind = view.kind if view is not None else kind_of(span.name, attrs)[0]
    is_agent = kind == KIND_AGENT
    is_registration = kind == KIND_REGISTRATION
    is_synthesis = kind == KIND_SYNTHESIS
    if not (is_agent or is_synthesis or is_registration or failed or span_events):
        return []  # the common case: a plain span, nothing to read further

    thresholds = thresholds or _DEFAULT_THRESHOLDS
    ctx = span_info(span)
    out: list[DashboardEvent] = []

    # Who the span belongs to: the agent span itself, or an agent name copied onto a child.
    if view is None:
        view = view_of(span.name, attrs)
    agent_name = view.agent_name
    agent_id = (view.agent_id or agent_name) if agent_name else None

    # 1. span events, in event-time order; the last exception event is kept for step 4.
    last_exception = None
    saw_quality_event = False
    if span_events:
        for span_event in sorted(span_events, key=event_time):
            ename = getattr(span_event, "name", None)
            if ename == sc.EXCEPTION_EVENT:
                last_exception = span_event
            elif ename == sc.EVENT_OPPORTUNITY_DISCOVERED:
                out.append(_opportunity(ctx, span_event, agent_id, agent_name, len(out)))
            elif ename == sc.EVENT_QUALITY_SCORE_UPDATED:
                saw_quality_event = True
                event = _quality_from_span_event(
                    ctx, span, span_event, attrs, agent_id, agent_name, thresholds
                )
                if event is not None:
                    out.append(event)

    # 2. + 3. the span's own completion.
    if last_exception is not None:
        exc_attrs = event_attributes(last_exception)
        exc_message = as_text(exc_attrs.get(sc.EXCEPTION_MESSAGE))
    else:
        exc_attrs, exc_message = _EMPTY, None
    # Why a failed run failed: the status description, else the last exception's message, else
    # error.type; and its type: the exception's, else error.type.
    error_type, _ = error_of(attrs, exc_attrs, None)
    error_message = (status_description(status) or exc_message or error_type or "error") if failed else None
    duration_ms = duration_ms_of(span)
    if is_agent:
        quality_score = attrs.get(sc.QUALITY_SCORE)
        if quality_score is not None:
            quality_score = as_float(quality_score)
        # Derive the event only for foreign agent spans. Our decorators' spans get the attribute only
        # from record_quality_score, which always writes the span event too, possibly on a child
        # span (it copies the score onto the enclosing agent span): deriving would duplicate it.
        if (
            quality_score is not None
            and not saw_quality_event
            and attrs.get(sc.SPAN_KIND) != sc.SPAN_KIND_AGENT
        ):
            out.append(_quality_event(
                ctx, agent_name, quality_score, attrs, agent_id, agent_name, thresholds, span.end_time
            ))
        data = {
            "agent_id": agent_id,
            "agent_name": agent_name,
            "task_description": task_of(attrs, sdk_span.events(span)) or "",
            "run_id": ctx.span_id,
            "duration_ms": duration_ms,
            "success": not failed,
            "quality_score": quality_score,
            "data_source": None if (source := attrs.get(sc.DATA_SOURCE)) is None else as_text(source),
            "error_message": error_message,
            "started_at": ctx.started_at(span),
            "service_name": ctx.service_name,
            "parent_span_id": ctx.parent_span_id,
        }
        data["error_type"] = error_type if failed else None
        # The run span's own token totals (the stateful mapper replaces them by the run's).
        tokens = view.tokens or view.run_tokens
        if tokens:
            if "input" in tokens:
                data["input_tokens"] = tokens["input"]
            if "output" in tokens:
                data["output_tokens"] = tokens["output"]
        severity = _ERROR if failed else _SUCCESS
        out.append(ctx.event(_AGENT_COMPLETED, data, severity, span.end_time))
    elif is_synthesis:
        data = {
            "phase": synthesis_phase_of(span, attrs),
            "description": as_text(attrs.get(sc.SYNTHESIS_DESCRIPTION)) or "",
            "run_id": ctx.span_id,
            "duration_ms": duration_ms,
            "patterns_found": as_int(attrs.get(sc.SYNTHESIS_PATTERNS_FOUND)),
            "success": not failed,
            "error_message": error_message,
            "service_name": ctx.service_name,
        }
        severity = Severity.ERROR if failed else Severity.SUCCESS
        out.append(ctx.event(EventType.SYNTHESIS_COMPLETED, data, severity, span.end_time))
    if is_registration:
        out.append(_registration(ctx, span, attrs))

    # 4. one error_occurred per span, however many exception events it carries.
    if failed or last_exception is not None:
        span_name = as_text(span.name)
        if is_agent:
            source = agent_name
        else:
            source = (view.tool_name if kind == KIND_TOOL else None) or as_text(
                attrs.get(sc.GEN_AI_TOOL_NAME)) or span_name or agent_name or "unknown"
        data = {
            "source": source,
            "error_message": exc_message or error_message or error_type or "error",
            "error_type": error_type or "Error",
            "span_name": span_name,
            "service_name": ctx.service_name,
        }
        if agent_name:
            data["agent_id"] = agent_id
            data["agent_name"] = agent_name
        when = event_time(last_exception) if last_exception is not None else 0
        out.append(ctx.event(EventType.ERROR_OCCURRED, data, Severity.ERROR, when or span.end_time))
    return out


# ---------------------------------------------------------------------------------- event builders
def _opportunity(
    ctx: SpanInfo, span_event: Any, agent_id: str | None, agent_name: str | None, index: int
) -> DashboardEvent:
    attrs = event_attributes(span_event)
    opportunity_id = as_text(attrs.get(sc.OPPORTUNITY_ID))
    if not opportunity_id and ctx.span_id:
        opportunity_id = f"{ctx.span_id}-{index}"
    data = {
        "opportunity_id": opportunity_id,
        "title": as_text(attrs.get(sc.OPPORTUNITY_TITLE)) or "",
        "description": as_text(attrs.get(sc.OPPORTUNITY_DESCRIPTION)) or "",
        "confidence_score": as_float(attrs.get(sc.OPPORTUNITY_CONFIDENCE)),
        "revenue_potential": plain(attrs.get(sc.OPPORTUNITY_REVENUE_POTENTIAL)),
        "category": as_text(attrs.get(sc.OPPORTUNITY_CATEGORY)) or "",
        "agent_id": agent_id,
        "agent_name": agent_name,
        "service_name": ctx.service_name,
    }
    return ctx.event(EventType.OPPORTUNITY_DISCOVERED, data, Severity.SUCCESS, event_time(span_event))


def _quality_from_span_event(
    ctx: SpanInfo,
    span: ReadableSpan,
    span_event: Any,
    attrs: Mapping[str, Any],
    agent_id: str | None,
    agent_name: str | None,
    thresholds: QualityThresholds,
) -> DashboardEvent | None:
    event_attrs = event_attributes(span_event)
    score = as_float(event_attrs.get(sc.QUALITY_SCORE))
    if score is None:
        return None  # a quality event without a usable score says nothing to show
    source = (
        as_text(event_attrs.get(sc.QUALITY_SOURCE))
        or agent_name
        or as_text(attrs.get(sc.GEN_AI_TOOL_NAME))
        or as_text(span.name)
        or "unknown"
    )
    return _quality_event(
        ctx, source, score, event_attrs, agent_id, agent_name, thresholds, event_time(span_event)
    )


def _quality_event(
    ctx: SpanInfo,
    source: str | None,
    score: float,
    attrs: Mapping[str, Any],
    agent_id: str | None,
    agent_name: str | None,
    thresholds: QualityThresholds,
    time_ns: int | None,
) -> DashboardEvent:
    """``quality_score_updated``; ``attrs`` (a span event's or the span's) carry the dimensions."""
    data = {
        "source": source,
        "overall_score": score,
        "dimension_scores": dimensions(attrs.get(sc.QUALITY_DIMENSIONS)),
        "agent_id": agent_id,
        "agent_name": agent_name,
        "service_name": ctx.service_name,
    }
    return ctx.event(EventType.QUALITY_SCORE_UPDATED, data, thresholds.severity(score), time_ns)


def _registration(ctx: SpanInfo, span: ReadableSpan, attrs: Mapping[str, Any]) -> DashboardEvent:
    name = as_text(attrs.get(sc.GEN_AI_AGENT_NAME))
    if not name:
        span_name = as_text(span.name) or ""
        if span_name.startswith(_CREATE_AGENT_PREFIX):
            span_name = span_name[len(_CREATE_AGENT_PREFIX):].strip()
        name = span_name or as_text(attrs.get(sc.GEN_AI_AGENT_ID)) or "agent"
    prefix = sc.AGENT_ATTRIBUTE_PREFIX
    cut = len(prefix)
    # The one place that walks all attributes: registration spans are rare.
    extra = {key[cut:]: plain(value) for key, value in attrs.items() if key.startswith(prefix)}
    data = {
        "agent_id": agent_id_of(attrs, name),
        "agent_name": name,
        "description": as_text(attrs.get(sc.GEN_AI_AGENT_DESCRIPTION)) or "",
        "attributes": extra,
        "registered_by": sc.OPERATION_CREATE_AGENT,
        "service_name": ctx.service_name,
    }
    return ctx.event(EventType.AGENT_REGISTERED, data, Severity.INFO, span.end_time)


