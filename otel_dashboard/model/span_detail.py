"""What the trace page reads of span records: the waterfall's small fields, a trace's summary, and
one span's details (``GET /api/traces/{trace_id}[/spans/{span_id}]``, ``docs/api.md``).

Pure functions of JSON span records (:mod:`otel_dashboard.model.span_records`; the summary reads
compact records too, through :func:`~otel_dashboard.model.span_records.record_head`) and of a price
source (:class:`~otel_dashboard.model.runs.CostSource`, ``None`` leaves calls unpriced). No aiohttp,
no SDK: the trace store calls them off the event loop.

Time to first token (``time_to_first_token_ms`` of a model call), from the first the span has:

* ``gen_ai.response.time_to_first_chunk`` (GenAI semantic conventions: seconds from the request to
  the first chunk of a streamed answer), in ms;
* the first span event of a streamed answer's chunks, minus the span's start: OpenLLMetry's
  ``gen_ai.content.completion.chunk`` (one event per chunk, no attributes; older versions
  ``llm.content.completion.chunk``) and OpenInference's ``First Token Stream Event``;

else null (an answer that was not streamed has no first token apart from its end).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from otel_dashboard.model.events import format_timestamp
from otel_dashboard.model.runs import CostSource, price
from otel_dashboard.model.span_records import SpanRecord, record_head
from otel_dashboard.model.transcript import CONTENT_EVENTS, is_content_key, tool_io_of, transcript_of
from otel_dashboard.model.vocab import KIND_AGENT, KIND_MODEL, KIND_TOOL, view_of

__all__ = [
    "TTFT_EVENTS",
    "TTFT_KEY",
    "model_call",
    "page_record",
    "span_detail",
    "trace_summary",
]

TTFT_KEY = "gen_ai.response.time_to_first_chunk"
"""The GenAI attribute of a streamed call's time to its first chunk, in seconds."""
TTFT_EVENTS = frozenset({"gen_ai.content.completion.chunk", "llm.content.completion.chunk",
                         "First Token Stream Event"})
"""Span events whose first one marks a streamed answer's first token."""
_EXCEPTION_EVENT = "exception"
# A non-tool OpenInference span's input.value/output.value are its own input and output, not a
# tool's: they do not make a detail worth a mark in the waterfall (they are raw attributes).
_IO_KEYS = frozenset({"input.value", "output.value", "input.mime_type", "output.mime_type",
                      "traceloop.entity.input", "traceloop.entity.output"})
_OPERATION_KEYS = ("gen_ai.operation.name", "llm.request.type")
_REQUEST_MODEL_KEYS = ("gen_ai.request.model", "llm.request.model")
_FINISH_REASON_KEYS = ("gen_ai.response.finish_reasons", "llm.response.finish_reason")


# ---------------------------------------------------------------------------------- one span
def _call_fields(
    name: Any, kind: str, attrs: Mapping[str, Any], prices: CostSource | None
) -> tuple[Any, ...]:
    """``(model, provider, tokens, cost_usd, cost_status)`` of a model or agent span."""
    view = view_of(name if isinstance(name, str) else None, attrs, kind=(kind, "record"))
    model, provider, tokens = view.model, view.provider, view.tokens
    if not tokens:
        return model, provider, tokens, None, "no_tokens"
    cost = price(prices, model, provider, tokens)
    return model, provider, tokens, (round(cost, 10) if cost is not None else None), (
        "priced" if cost is not None else "no_price")


def _has_detail(record: Mapping[str, Any]) -> bool:
    for event in record.get("events") or ():
        name = event.get("name") if isinstance(event, Mapping) else None
        if name == _EXCEPTION_EVENT or name in CONTENT_EVENTS:
            return True
    tool = record.get("kind") == KIND_TOOL
    return any(is_content_key(key) and (tool or key not in _IO_KEYS)
               for key in record.get("detail_attributes") or ())


def page_record(record: Mapping[str, Any], prices: CostSource | None) -> dict[str, Any]:
    """A record as a trace page serves it: without ``detail_attributes`` (the span details serve
    them), with ``model``, ``input_tokens``, ``output_tokens`` and ``cost_usd`` (null but for a
    model-call span) and ``has_detail`` (it has a transcript, a tool's input/output or an exception).
    """
    page = {key: value for key, value in record.items() if key != "detail_attributes"}
    page["model"] = page["input_tokens"] = page["output_tokens"] = page["cost_usd"] = None
    if record.get("kind") == KIND_MODEL:
        attrs = record.get("attributes") or {}
        model, _, tokens, cost, _ = _call_fields(record.get("name"), KIND_MODEL, attrs, prices)
        page["model"] = model
        if tokens:
            page["input_tokens"], page["output_tokens"] = tokens.get("input", 0), tokens.get("output", 0)
        page["cost_usd"] = cost
    page["has_detail"] = _has_detail(record)
    return page


def _first(attrs: Mapping[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        value = attrs.get(key)
        if value is not None:
            return value
    return None


def _finish_reasons(value: Any, transcript: Mapping[str, Any] | None) -> list[str]:
    if isinstance(value, str):
        try:
            value = orjson.loads(value) if value[:1] == "[" else [value]
        except orjson.JSONDecodeError:
            value = [value]
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value if item is not None][:16]
    if transcript:
        return [str(message["finish_reason"]) for message in transcript.get("output") or ()
                if isinstance(message, Mapping) and message.get("finish_reason")][:16]
    return []


def _ttft_ms(attrs: Mapping[str, Any], record: Mapping[str, Any]) -> float | None:
    seconds = attrs.get(TTFT_KEY)
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and 0 <= seconds < 1e9:
        return round(seconds * 1000, 3)
    start = record.get("start_time_unix_nano")
    for event in record.get("events") or ():
        if isinstance(event, Mapping) and event.get("name") in TTFT_EVENTS:
            when = event.get("time_unix_nano")
            if isinstance(when, int) and isinstance(start, int) and when >= start:
                return round((when - start) / 1e6, 3)
            return None
    return None


def model_call(record: Mapping[str, Any], prices: CostSource | None,
               transcript: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The model call of a model-call span's JSON record (None for another kind of span):
    ``{"operation", "model", "request_model", "provider", "input_tokens", "output_tokens",
    "cost_usd", "cost_status", "duration_ms", "time_to_first_token_ms", "finish_reasons"}``.
    ``model`` is the model that answered, else the one asked for; ``cost_status`` ``"priced"``,
    ``"no_price"`` (tokens, no price for the model) or ``"no_tokens"``; ``finish_reasons`` from the
    attributes, else from the transcript's output messages."""
    if record.get("kind") != KIND_MODEL:
        return None
    attrs = {**(record.get("detail_attributes") or {}), **(record.get("attributes") or {})}
    model, provider, tokens, cost, status = _call_fields(record.get("name"), KIND_MODEL, attrs, prices)
    operation = _first(attrs, _OPERATION_KEYS)
    request_model = _first(attrs, _REQUEST_MODEL_KEYS)
    return {
        "operation": operation if isinstance(operation, str) else None,
        "model": model,
        "request_model": request_model if isinstance(request_model, str) else None,
        "provider": provider,
        "input_tokens": tokens.get("input", 0) if tokens else None,
        "output_tokens": tokens.get("output", 0) if tokens else None,
        "cost_usd": cost,
        "cost_status": status,
        "duration_ms": record.get("duration_ms"),
        "time_to_first_token_ms": _ttft_ms(attrs, record),
        "finish_reasons": _finish_reasons(_first(attrs, _FINISH_REASON_KEYS), transcript),
    }


def _exceptions(events: Iterable[Any]) -> list[dict[str, Any]]:
    found = []
    for event in events:
        if not isinstance(event, Mapping) or event.get("name") != _EXCEPTION_EVENT:
            continue
        attrs = event.get("attributes") or {}
        escaped = attrs.get("exception.escaped")
        if isinstance(escaped, str):
            escaped = escaped.lower() == "true"
        found.append({
            "type": attrs.get("exception.type"),
            "message": attrs.get("exception.message"),
            "stacktrace": attrs.get("exception.stacktrace"),
            "escaped": escaped if isinstance(escaped, bool) else None,
            "time": event.get("time"),
        })
    return found


def span_detail(record: Mapping[str, Any], prices: CostSource | None) -> dict[str, Any]:
    """One span's details from its full JSON record (with ``detail_attributes``): ``{"span" (its page
    record, :func:`page_record`), "model_call", "transcript", "tool_io", "exceptions", "attributes"
    (selected and other attributes together), "dropped_attributes", "events", "dropped_events"}``."""
    attrs = {**(record.get("attributes") or {}), **(record.get("detail_attributes") or {})}
    events = [event for event in record.get("events") or () if isinstance(event, Mapping)]
    kind = record.get("kind")
    transcript = transcript_of(attrs, events) if kind != KIND_TOOL else None
    return {
        "span": page_record(record, prices),
        "model_call": model_call(record, prices, transcript),
        "transcript": transcript,
        "tool_io": tool_io_of(attrs) if kind == KIND_TOOL else None,
        "exceptions": _exceptions(events),
        "attributes": attrs,
        "dropped_attributes": record.get("dropped_attributes") or 0,
        "events": events,
        "dropped_events": record.get("dropped_events") or 0,
    }


# ---------------------------------------------------------------------------------- a whole trace
def _cost_status(priced: int, unpriced: int) -> str:
    if priced and unpriced:
        return "partial"
    if priced:
        return "priced"
    return "no_price" if unpriced else "no_tokens"


_Facts = tuple[Any, ...]
"""What a summary reads of one record: ``(span_id, parent_id, name, start_ns, end_ns, status, service,
kind, tokens, cost)``; ``tokens`` and ``cost`` only for a model or agent span with tokens."""


def _facts(record: SpanRecord | Mapping[str, Any], prices: CostSource | None) -> _Facts:
    span_id, parent, name, start, end, status, service, attrs = record_head(record)
    view = view_of(name if isinstance(name, str) else None, attrs)
    kind = view.kind
    tokens = view.tokens if kind in (KIND_MODEL, KIND_AGENT) else None
    cost = price(prices, view.model, view.provider, tokens) if tokens else None
    return span_id, parent, name, start, end, status, service, kind, tokens, cost


def trace_summary(records: Iterable[SpanRecord | Mapping[str, Any]], prices: CostSource | None,
                  *, now_ns: int | None = None, cache: dict[int, tuple[Any, _Facts]] | None = None
                  ) -> dict[str, Any]:
    """The summary of a whole trace (every kept record, compact or JSON).

    Args:
        records: the trace's records.
        prices: prices the model calls.
        now_ns: the time a running trace's duration runs to (now by default).
        cache: what an earlier summary of the same trace read of its compact records, by span id
            (``{span_id: (record, facts)}``); updated here. A compact record is immutable (a
            change replaces it), so its facts are reused while the same record is kept: a live
            10,000-span trace polled every second reads only its new and changed records.

    Returns:
        ``{"root_name", "root_span_id", "service_name", "status", "duration_ms", "input_tokens",
        "output_tokens", "cost_usd", "cost_status", "span_count", "error_count", "model_calls",
        "tool_calls", "started_at"}``. The root is the earliest span without a parent (else the
        earliest whose parent is not kept); ``status`` is ``"running"`` while the root has not ended,
        else ``"error"`` when the root failed and ``"ok"`` otherwise (an ended root without a status
        did not fail); ``"unset"`` only for a trace without spans; ``duration_ms`` runs from the earliest
        start to the latest end (to now while running). Tokens and cost add up the model-call spans;
        a trace without a model-call span that has tokens adds up its outermost agent spans with
        tokens instead (an agent span's tokens are its run's totals). ``cost_status`` as a run's:
        ``"priced"``, ``"partial"``, ``"no_price"`` or ``"no_tokens"``.
    """
    facts: list[_Facts] = []
    fresh: dict[int, tuple[Any, _Facts]] = {}
    for record in records:
        if cache is not None and isinstance(record, tuple):
            hit = cache.get(record[1])
            if hit is None or hit[0] is not record:
                hit = (record, _facts(record, prices))
            fresh[record[1]] = hit
            facts.append(hit[1])
        else:
            facts.append(_facts(record, prices))
    if cache is not None:
        cache.clear()
        cache.update(fresh)
    ids = {fact[0] for fact in facts}
    roots = [fact for fact in facts if fact[1] not in ids]
    root = min(roots, key=lambda fact: (fact[1] != 0, fact[3] or 0, fact[0])) if roots else None
    starts = [fact[3] for fact in facts if fact[3]]
    ends = [fact[4] for fact in facts if fact[4]]
    running = root is not None and root[4] is None
    errors = model_calls = tool_calls = 0
    called: list[_Facts] = []
    agents: dict[int, _Facts] = {}
    for fact in facts:
        kind = fact[7]
        errors += fact[5] == "error"
        if kind == KIND_MODEL:
            model_calls += 1
            if fact[8]:
                called.append(fact)
        elif kind == KIND_TOOL:
            tool_calls += 1
        elif kind == KIND_AGENT and fact[8]:
            agents[fact[0]] = fact
    if not called and agents:
        parents = {fact[0]: fact[1] for fact in facts}
        called = [fact for span_id, fact in agents.items() if not _below_agent(span_id, parents, agents)]
    tokens_in = tokens_out = priced = unpriced = 0
    cost = 0.0
    for fact in called:
        tokens, call_cost = fact[8], fact[9]
        tokens_in += tokens.get("input", 0)
        tokens_out += tokens.get("output", 0)
        if call_cost is None:
            unpriced += 1
        else:
            priced += 1
            cost += call_cost
    end = (now_ns or time.time_ns()) if running else (max(ends) if ends else None)
    start = min(starts) if starts else None
    return {
        "root_name": root[2] if root else None,
        "root_span_id": format(root[0], "016x") if root else None,
        "service_name": root[6] if root else None,
        # An ended root without a status is a run that did not fail (OpenTelemetry's "unset" is the
        # default of a span that ended normally): shown as "ok", like the traces list shows it.
        "status": ("unset" if root is None else "running" if running
                   else "error" if root[5] == "error" else "ok"),
        "duration_ms": round(max(end - start, 0) / 1e6, 3) if start and end else None,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "cost_usd": round(cost, 10) if priced else None,
        "cost_status": _cost_status(priced, unpriced),
        "span_count": len(facts),
        "error_count": errors,
        "model_calls": model_calls,
        "tool_calls": tool_calls,
        "started_at": format_timestamp(start) if start else None,
    }


def _below_agent(span_id: int, parents: Mapping[int, int], agents: Mapping[int, Any]) -> bool:
    # Whether an ancestor of the span is an agent span with tokens (its totals include the span's).
    seen = {span_id}
    parent = parents.get(span_id, 0)
    while parent and parent not in seen:
        if parent in agents:
            return True
        seen.add(parent)
        parent = parents.get(parent, 0)
    return False
