"""From spans to dashboard events: a pure function layer.

:func:`map_span_start` and :func:`map_span_end` turn one started or ended span (any
:class:`~opentelemetry.sdk.trace.ReadableSpan`, ours or another instrumentation's) into zero or more
:class:`~otel_dashboard.model.events.DashboardEvent` objects. They publish nothing and keep no state: the
:class:`~otel_dashboard.pipeline.processor.DashboardSpanProcessor`
calls them on its worker thread, and the OTLP
receiver can call them on spans rebuilt from the wire. ``docs/events.md`` is the user-facing reference
for every rule below.

What is recognised
    * An **agent span** has ``gen_ai.operation.name == "invoke_agent"``, or
      ``openinference.span.kind == "AGENT"``, or ``traceloop.span.kind == "agent"`` (the two foreign
      kinds compared case-insensitively). ``gen_ai.agent.name`` alone does not make an agent span: some
      libraries copy it onto every child span through baggage.
    * A **synthesis span** has ``otel_dashboard.span.kind == "synthesis"``.
    * A **registration span** has ``gen_ai.operation.name == "create_agent"``.
    * On every ended span: the span events ``opportunity_discovered`` and ``quality_score_updated``,
      and failure (status ERROR or an ``exception`` span event).

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

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import orjson
from opentelemetry.trace import StatusCode

from instrumentation import semconv as sc
from otel_dashboard.model import sdk_span
from otel_dashboard.model.events import (
    DashboardEvent,
    EventType,
    QualityThresholds,
    Severity,
    format_timestamp,
    new_event_id,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["map_span_end", "map_span_start"]

# Values of other instrumentations' span-kind attributes (candidates for semconv.py).
_OPENINFERENCE_KIND_AGENT = "agent"  # OpenInference writes "AGENT"; compared lower-cased
_TRACELOOP_KIND_AGENT = "agent"
_INVOKE_AGENT_PREFIX = sc.OPERATION_INVOKE_AGENT + " "
_CREATE_AGENT_PREFIX = sc.OPERATION_CREATE_AGENT + " "
_SYNTHESIS_PREFIX = sc.SPAN_KIND_SYNTHESIS + " "
_TASK_DESCRIPTION_MAX_CHARS = 200
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_DEFAULT_THRESHOLDS = QualityThresholds()
# What every agent span reads, as module constants: an enum member looked up through its class goes
# through the enum metaclass and costs about ten times as much.
_AGENT_STARTED = EventType.AGENT_EXECUTION_STARTED
_AGENT_COMPLETED = EventType.AGENT_EXECUTION_COMPLETED
_INFO, _SUCCESS, _ERROR = Severity.INFO, Severity.SUCCESS, Severity.ERROR
_STATUS_ERROR = StatusCode.ERROR
_TRACE_HEX, _SPAN_HEX = "%032x", "%016x"
# The span events that give dashboard events; a span carrying only others (an application's own
# log of steps, say) is mapped as if it had none.
_MAPPED_EVENT_NAMES = frozenset(
    {sc.EXCEPTION_EVENT, sc.EVENT_OPPORTUNITY_DISCOVERED, sc.EVENT_QUALITY_SCORE_UPDATED}
)


# ---------------------------------------------------------------------------------- public API
def map_span_start(
    span: ReadableSpan, *, thresholds: QualityThresholds | None = None
) -> list[DashboardEvent]:
    """The events of a span that has just started.

    Only agent spans (``agent_execution_started``) and synthesis spans (``synthesis_started``) produce
    events at start; a span recognisable only by attributes set later produces none here.

    Args:
        span: the started span (the live SDK span is fine: attributes are read, not copied).
        thresholds: unused at start; accepted so both functions share one signature.

    Returns:
        Zero or one event, timestamped with the span's start time.
    """
    attrs = sdk_span.attributes(span)
    if _is_agent_span(attrs):
        ctx = _span_info(span)
        name = _agent_name(span, attrs)
        started_at = ctx.started_at(span)
        data = {
            "agent_id": _agent_id(attrs, name),
            "agent_name": name,
            "task_description": _task_description(attrs),
            "run_id": ctx.span_id,
            "started_at": started_at,
            "service_name": ctx.service_name,
            "parent_span_id": ctx.parent_span_id,
        }
        return [ctx.event(_AGENT_STARTED, data, _INFO, span.start_time, started_at)]
    if attrs.get(sc.SPAN_KIND) == sc.SPAN_KIND_SYNTHESIS:
        ctx = _span_info(span)
        data = {
            "phase": _synthesis_phase(span, attrs),
            "description": _str(attrs.get(sc.SYNTHESIS_DESCRIPTION)) or "",
            "run_id": ctx.span_id,
            "service_name": ctx.service_name,
            "parent_span_id": ctx.parent_span_id,
        }
        return [ctx.event(EventType.SYNTHESIS_STARTED, data, Severity.INFO, span.start_time)]
    return []


def map_span_end(
    span: ReadableSpan, *, thresholds: QualityThresholds | None = None
) -> list[DashboardEvent]:
    """The events of a span that has ended, in the order given in the module docstring.

    Never produces a started event: an agent span recognisable only at its end yields its
    ``agent_execution_completed`` (with its real start time in ``started_at``) and nothing more.

    Args:
        span: the ended span.
        thresholds: turn quality scores into severities; the defaults (95 / 90) when ``None``.

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
    is_agent = _is_agent_span(attrs)
    operation = attrs.get(sc.GEN_AI_OPERATION_NAME)
    is_registration = operation == sc.OPERATION_CREATE_AGENT
    is_synthesis = not is_agent and attrs.get(sc.SPAN_KIND) == sc.SPAN_KIND_SYNTHESIS
    if not (is_agent or is_synthesis or is_registration or failed or span_events):
        return []  # the common case: a plain span, nothing to read further

    thresholds = thresholds or _DEFAULT_THRESHOLDS
    ctx = _span_info(span)
    out: list[DashboardEvent] = []

    # Who the span belongs to: the agent span itself, or a gen_ai.agent.name copied onto a child.
    agent_name: str | None
    if is_agent:
        agent_name = _agent_name(span, attrs)
        agent_id: str | None = _agent_id(attrs, agent_name)
    else:
        agent_name = _str(attrs.get(sc.GEN_AI_AGENT_NAME))
        agent_id = _agent_id(attrs, agent_name) if agent_name else None

    # 1. span events, in event-time order; the last exception event is kept for step 4.
    last_exception = None
    saw_quality_event = False
    if span_events:
        for span_event in sorted(span_events, key=_event_time):
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
        exc_attrs = _event_attributes(last_exception)
        exc_message = _str(exc_attrs.get(sc.EXCEPTION_MESSAGE))
    else:
        exc_attrs, exc_message = _EMPTY, None
    # Why a failed run failed: the status description, else the last exception's message.
    error_message = (_status_description(status) or exc_message or "error") if failed else None
    duration_ms = _duration_ms(span)
    if is_agent:
        quality_score = attrs.get(sc.QUALITY_SCORE)
        if quality_score is not None:
            quality_score = _float(quality_score)
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
            "task_description": _task_description(attrs),
            "run_id": ctx.span_id,
            "duration_ms": duration_ms,
            "success": not failed,
            "quality_score": quality_score,
            "data_source": None if (source := attrs.get(sc.DATA_SOURCE)) is None else _str(source),
            "error_message": error_message,
            "started_at": ctx.started_at(span),
            "service_name": ctx.service_name,
            "parent_span_id": ctx.parent_span_id,
        }
        # Usually absent: looked up before coercing.
        input_tokens = attrs.get(sc.GEN_AI_USAGE_INPUT_TOKENS)
        if input_tokens is not None and (input_tokens := _int(input_tokens)) is not None:
            data["input_tokens"] = input_tokens
        output_tokens = attrs.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS)
        if output_tokens is not None and (output_tokens := _int(output_tokens)) is not None:
            data["output_tokens"] = output_tokens
        severity = _ERROR if failed else _SUCCESS
        out.append(ctx.event(_AGENT_COMPLETED, data, severity, span.end_time))
    elif is_synthesis:
        data = {
            "phase": _synthesis_phase(span, attrs),
            "description": _str(attrs.get(sc.SYNTHESIS_DESCRIPTION)) or "",
            "run_id": ctx.span_id,
            "duration_ms": duration_ms,
            "patterns_found": _int(attrs.get(sc.SYNTHESIS_PATTERNS_FOUND)),
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
        span_name = _str(span.name)
        if is_agent:
            source = agent_name
        else:
            source = _str(attrs.get(sc.GEN_AI_TOOL_NAME)) or span_name or agent_name or "unknown"
        data = {
            "source": source,
            "error_message": exc_message or error_message or "error",
            "error_type": _str(exc_attrs.get(sc.EXCEPTION_TYPE)) or "Error",
            "span_name": span_name,
            "service_name": ctx.service_name,
        }
        if agent_name:
            data["agent_id"] = agent_id
            data["agent_name"] = agent_name
        when = _event_time(last_exception) if last_exception is not None else 0
        out.append(ctx.event(EventType.ERROR_OCCURRED, data, Severity.ERROR, when or span.end_time))
    return out


# ---------------------------------------------------------------------------------- span facts
class _SpanInfo:
    """The per-span facts every event of the span repeats: ids and service name (and its start time
    formatted, once asked for)."""

    __slots__ = ("_started_at", "parent_span_id", "service_name", "span_id", "trace_id")

    def __init__(self, span: ReadableSpan) -> None:
        trace_id, span_id, parent_id = sdk_span.span_ids(span)
        # Missing or invalid ids give None; %-formatting: twice as fast as format() with a spec.
        self.trace_id = _TRACE_HEX % trace_id if type(trace_id) is int and trace_id > 0 else None
        self.span_id = _SPAN_HEX % span_id if type(span_id) is int and span_id > 0 else None
        self.parent_span_id = _SPAN_HEX % parent_id if type(parent_id) is int and parent_id > 0 else None
        self.service_name = _service_name(span)
        self._started_at: str | bool | None = False  # False: not formatted yet

    def started_at(self, span: ReadableSpan) -> str | None:
        """The span's start time as an ISO timestamp (``None`` without one); formatted once."""
        started_at = self._started_at
        if started_at is False:
            started_at = self._started_at = _iso(span.start_time)
        return started_at  # type: ignore[return-value]

    def event(
        self,
        event_type: EventType,
        data: dict[str, Any],
        severity: Severity,
        time_ns: int | None,
        timestamp: str | None = None,
    ) -> DashboardEvent:
        """The span's event stamped ``time_ns`` (now if unusable); ``timestamp`` when given is that
        time formatted already."""
        if timestamp is None:
            timestamp = format_timestamp(time_ns if isinstance(time_ns, int) and time_ns > 0 else None)
        # What DashboardEvent.create does, without its keyword handling: this runs for every event.
        return DashboardEvent(
            new_event_id(),
            event_type,
            timestamp,
            data,
            severity,
            self.trace_id,
            self.span_id,
        )


# (context, facts) of the last span whose facts were read. An agent span's start and end are mapped
# one after the other, with at most its children's spans between them, which make no facts of their
# own in the common case: its end then reuses what its start formatted. Keyed by the span's context
# object (the SDK makes one per span, shared by its start and end); a tuple swap is thread-safe.
_info_cache: tuple[Any, _SpanInfo | None] = (None, None)


def _span_info(span: ReadableSpan) -> _SpanInfo:
    """The span's :class:`_SpanInfo`, from the cache when it is the last span's."""
    global _info_cache
    context = span.context
    cached_context, info = _info_cache
    if context is cached_context and info is not None:
        return info
    info = _SpanInfo(span)
    if info.span_id is not None and context is not None:
        # Only spans with their own valid context: a foreign span without one may share the
        # invalid context object with spans of other resources.
        _info_cache = (context, info)
    return info


def _event_attributes(span_event: Any) -> Mapping[str, Any]:
    attrs = getattr(span_event, "attributes", None)
    return attrs if attrs is not None else _EMPTY


def _event_time(span_event: Any) -> int:
    ts = getattr(span_event, "timestamp", None)
    return ts if isinstance(ts, int) else 0


# (resource, service name) of the last span seen: a process's spans share one Resource object.
_service_cache: tuple[Any, str | None] = (None, None)


def _service_name(span: ReadableSpan) -> str | None:
    # Passed through as is, the SDK default "unknown_service:..." included.
    global _service_cache
    resource = getattr(span, "resource", None)
    cached_resource, cached_name = _service_cache
    if resource is cached_resource and resource is not None:
        return cached_name
    attrs = getattr(resource, "attributes", None)
    name = _str(attrs.get(sc.SERVICE_NAME)) if attrs else None
    _service_cache = (resource, name)
    return name


def _iso(epoch_ns: Any) -> str | None:
    """``format_timestamp(epoch_ns)`` for a positive integer, else ``None``."""
    if isinstance(epoch_ns, int) and epoch_ns > 0:
        return format_timestamp(epoch_ns)
    return None


# Below this many nanoseconds (11 days), ns / 1e6 as a float is close enough to the exact quotient
# that rounding it to 3 decimals equals rounding the integer microseconds (see _duration_ms).
_EXACT_DURATION_NS = 10**15


def _duration_ms(span: ReadableSpan) -> float | None:
    """``round((end - start) / 1e6, 3)`` (at least 0), or ``None`` without both times."""
    start, end = span.start_time, span.end_time
    if not isinstance(start, int) or not isinstance(end, int):
        return None
    ns = max(end - start, 0)
    # round(x, 3) goes through decimal digits and costs several times the integer arithmetic, which
    # gives the same float except for an exact half microsecond (round's tie follows the float).
    if ns % 1000 == 500 or ns >= _EXACT_DURATION_NS:
        return round(ns / 1_000_000, 3)
    return (ns + 500) // 1000 / 1000


def _status_description(status: Any) -> str | None:
    return _str(getattr(status, "description", None))


# ---------------------------------------------------------------------------------- recognition
def _is_agent_span(attrs: Mapping[str, Any]) -> bool:
    if attrs.get(sc.GEN_AI_OPERATION_NAME) == sc.OPERATION_INVOKE_AGENT:
        return True
    kind = attrs.get(sc.OPENINFERENCE_SPAN_KIND)
    if isinstance(kind, str) and kind.lower() == _OPENINFERENCE_KIND_AGENT:
        return True
    kind = attrs.get(sc.TRACELOOP_SPAN_KIND)
    return isinstance(kind, str) and kind.lower() == _TRACELOOP_KIND_AGENT


def _agent_name(span: ReadableSpan, attrs: Mapping[str, Any]) -> str:
    name = attrs.get(sc.GEN_AI_AGENT_NAME)
    if type(name) is str and name:
        return name  # the common case, without the coercion below
    for key in (sc.GEN_AI_AGENT_NAME, sc.OPENINFERENCE_AGENT_NAME, sc.TRACELOOP_ENTITY_NAME):
        name = _str(attrs.get(key))
        if name:
            return name
    span_name = _str(span.name) or ""
    if span_name.startswith(_INVOKE_AGENT_PREFIX):
        return span_name[len(_INVOKE_AGENT_PREFIX):].strip() or span_name
    return span_name or "agent"


def _agent_id(attrs: Mapping[str, Any], name: str | None) -> str | None:
    value = attrs.get(sc.GEN_AI_AGENT_ID)
    if type(value) is str:
        return value or name
    return _str(value) or name


def _task_description(attrs: Mapping[str, Any]) -> str:
    task = attrs.get(sc.TASK_DESCRIPTION)
    if type(task) is str and task:
        return task
    task = _str(task)
    if task:
        return task
    text = _str(attrs.get(sc.OPENINFERENCE_INPUT_VALUE))
    if not text:
        return ""
    if len(text) > _TASK_DESCRIPTION_MAX_CHARS:
        return text[: _TASK_DESCRIPTION_MAX_CHARS - 1] + "\u2026"
    return text


def _synthesis_phase(span: ReadableSpan, attrs: Mapping[str, Any]) -> str:
    phase = _str(attrs.get(sc.SYNTHESIS_PHASE))
    if phase:
        return phase
    span_name = _str(span.name) or ""
    if span_name.startswith(_SYNTHESIS_PREFIX):
        return span_name[len(_SYNTHESIS_PREFIX):].strip() or span_name
    return span_name or "synthesis"


# ---------------------------------------------------------------------------------- event builders
def _opportunity(
    ctx: _SpanInfo, span_event: Any, agent_id: str | None, agent_name: str | None, index: int
) -> DashboardEvent:
    attrs = _event_attributes(span_event)
    opportunity_id = _str(attrs.get(sc.OPPORTUNITY_ID))
    if not opportunity_id and ctx.span_id:
        opportunity_id = f"{ctx.span_id}-{index}"
    data = {
        "opportunity_id": opportunity_id,
        "title": _str(attrs.get(sc.OPPORTUNITY_TITLE)) or "",
        "description": _str(attrs.get(sc.OPPORTUNITY_DESCRIPTION)) or "",
        "confidence_score": _float(attrs.get(sc.OPPORTUNITY_CONFIDENCE)),
        "revenue_potential": _plain(attrs.get(sc.OPPORTUNITY_REVENUE_POTENTIAL)),
        "category": _str(attrs.get(sc.OPPORTUNITY_CATEGORY)) or "",
        "agent_id": agent_id,
        "agent_name": agent_name,
        "service_name": ctx.service_name,
    }
    return ctx.event(EventType.OPPORTUNITY_DISCOVERED, data, Severity.SUCCESS, _event_time(span_event))


def _quality_from_span_event(
    ctx: _SpanInfo,
    span: ReadableSpan,
    span_event: Any,
    attrs: Mapping[str, Any],
    agent_id: str | None,
    agent_name: str | None,
    thresholds: QualityThresholds,
) -> DashboardEvent | None:
    event_attrs = _event_attributes(span_event)
    score = _float(event_attrs.get(sc.QUALITY_SCORE))
    if score is None:
        return None  # a quality event without a usable score says nothing to show
    source = (
        _str(event_attrs.get(sc.QUALITY_SOURCE))
        or agent_name
        or _str(attrs.get(sc.GEN_AI_TOOL_NAME))
        or _str(span.name)
        or "unknown"
    )
    return _quality_event(
        ctx, source, score, event_attrs, agent_id, agent_name, thresholds, _event_time(span_event)
    )


def _quality_event(
    ctx: _SpanInfo,
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
        "dimension_scores": _dimensions(attrs.get(sc.QUALITY_DIMENSIONS)),
        "agent_id": agent_id,
        "agent_name": agent_name,
        "service_name": ctx.service_name,
    }
    return ctx.event(EventType.QUALITY_SCORE_UPDATED, data, thresholds.severity(score), time_ns)


def _registration(ctx: _SpanInfo, span: ReadableSpan, attrs: Mapping[str, Any]) -> DashboardEvent:
    name = _str(attrs.get(sc.GEN_AI_AGENT_NAME))
    if not name:
        span_name = _str(span.name) or ""
        if span_name.startswith(_CREATE_AGENT_PREFIX):
            span_name = span_name[len(_CREATE_AGENT_PREFIX):].strip()
        name = span_name or _str(attrs.get(sc.GEN_AI_AGENT_ID)) or "agent"
    prefix = sc.AGENT_ATTRIBUTE_PREFIX
    cut = len(prefix)
    # The one place that walks all attributes: registration spans are rare.
    extra = {key[cut:]: _plain(value) for key, value in attrs.items() if key.startswith(prefix)}
    data = {
        "agent_id": _agent_id(attrs, name),
        "agent_name": name,
        "description": _str(attrs.get(sc.GEN_AI_AGENT_DESCRIPTION)) or "",
        "attributes": extra,
        "registered_by": sc.OPERATION_CREATE_AGENT,
        "service_name": ctx.service_name,
    }
    return ctx.event(EventType.AGENT_REGISTERED, data, Severity.INFO, span.end_time)


# ---------------------------------------------------------------------------------- value coercion
def _str(value: Any) -> str | None:
    """Attribute value as text; ``None`` for missing or empty values."""
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return ", ".join(str(v) for v in value) or None
    try:
        return str(value)
    except Exception:
        return None


def _float(value: Any) -> float | None:
    """A finite number from an int, float or numeric string; else ``None`` (booleans included)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _int(value: Any) -> int | None:
    """An integer from an int, an integral float or a numeric string; else ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    number = _float(value)
    if number is None or not number.is_integer():
        return None
    return int(number)


def _plain(value: Any) -> Any:
    """An attribute value as JSON-ready data: scalars as they are, sequences as lists."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return list(value)
    return _str(value)


def _dimensions(value: Any) -> dict[str, Any]:
    """Dimension scores from their JSON object string; anything unusable gives ``{}``."""
    if isinstance(value, Mapping):
        return dict(value)
    if not isinstance(value, (str, bytes)) or not value:
        return {}
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
