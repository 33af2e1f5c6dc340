"""The spans the server has seen, grouped by trace, for the drill-down view (``GET /api/traces/{id}``).

A span is kept as a span record (:mod:`otel_dashboard.model.span_records`), never as the span
itself: the selected attributes only, each value capped. Records come in two forms:

* compact records (:data:`~otel_dashboard.model.span_records.SpanRecord`, plain tuples) from the
  in-process span processor and exporter: a running one at start, the finished one at end;
* JSON records (dicts) from spans received over OTLP or shipped by remote processors (always
  finished), and from run events that arrive through ``/api/events`` without their spans.

:class:`TraceStore` is bounded twice: at most ``max_traces`` traces, the least recently updated
evicted first, and at most ``max_spans_per_trace`` spans per trace (more are dropped, counted and the
trace is marked ``truncated``). It reads no spans and imports neither the OpenTelemetry SDK nor
aiohttp.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from otel_dashboard.model.span_records import END_NS, SPAN_ID, TRACE_ID, SpanRecord, expand_span_record

__all__ = ["TraceStore"]

_DEFAULT_MAX_TRACES = 1000
_DEFAULT_MAX_SPANS_PER_TRACE = 1000
_HEX = frozenset("0123456789abcdef")


# ---------------------------------------------------------------------------------- the store
# One trace's records (JSON records are dicts, compact ones tuples), by span id (int). A small trace
# is a flat tuple (span_id_1, record_1, span_id_2, record_2, ...), replaced on every change: the
# collector untracks a tuple of compact records, so the last 1,000 traces cost it nothing, where a
# dict per trace stays tracked (and walked by every collection of the older generations) until a
# full collection. A trace that grows beyond _SMALL_TRACE_SPANS becomes a dict: replacing a tuple
# costs a copy of it.
_Spans = tuple[Any, ...] | dict[int, dict[str, Any] | SpanRecord]
_SMALL_TRACE_SPANS = 16


class TraceStore:
    """Span records grouped by trace id; thread-safe and bounded.

    Args:
        max_traces: traces kept at most; adding a span to a new trace beyond it evicts the trace
            updated least recently.
        max_spans_per_trace: spans kept per trace; further new spans of a full trace are dropped and
            counted (updates of kept spans still apply).

    Raises:
        ValueError: a bound that is not a positive integer.
    """

    def __init__(
        self,
        *,
        max_traces: int = _DEFAULT_MAX_TRACES,
        max_spans_per_trace: int = _DEFAULT_MAX_SPANS_PER_TRACE,
    ) -> None:
        for name, value in (("max_traces", max_traces), ("max_spans_per_trace", max_spans_per_trace)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self._max_traces = max_traces
        self._max_spans = max_spans_per_trace
        self._lock = threading.Lock()
        # Keyed by the integer ids: the in-process hot path then formats no hex at all.
        self._traces: OrderedDict[int, _Spans] = OrderedDict()
        # Spans dropped for the per-trace cap, by trace id: only the (rare) truncated traces.
        self._trace_dropped: dict[int, int] = {}
        self._evicted_traces = 0
        self._dropped_spans = 0

    def add_span(self, record: Mapping[str, Any]) -> bool:
        """Adds or updates one JSON span record (see
        :func:`~otel_dashboard.model.span_records.span_record_from_span` for its keys).

        A record for a span already kept is merged into it: its non-null fields win, so a finished
        record completes a running one. A running record never reopens a finished span (a start that
        arrives after its end is ignored), and a span kept from a compact record (in process) is not
        changed by JSON records.

        Returns:
            False when the record was not kept (its trace is full, it was a late start, or the span
            is an in-process one).

        Raises:
            ValueError: ``trace_id`` or ``span_id`` missing or not a hex string of the right length.
        """
        trace_id = int(_checked_id(record.get("trace_id"), 32, "trace_id"), 16)
        span_id = int(_checked_id(record.get("span_id"), 16, "span_id"), 16)
        finished = record.get("end_time") is not None
        with self._lock:
            spans = self._trace_for(trace_id)
            existing = _get(spans, span_id)
            if existing is None:
                if _count(spans) >= self._max_spans:
                    self._count_dropped(trace_id)
                    return False
                stored = dict(record)
                stored["trace_id"], stored["span_id"] = format(trace_id, "032x"), format(span_id, "016x")
                stored["attributes"] = dict(record.get("attributes") or {})
                self._put(trace_id, spans, span_id, stored)
                return True
            if isinstance(existing, tuple):
                return False  # the in-process record is the truth about its span
            if existing.get("end_time") is not None and not finished:
                return False
            for key, value in record.items():
                if key in ("trace_id", "span_id") or value is None:
                    continue
                if key == "attributes":
                    if isinstance(value, Mapping):
                        existing["attributes"] = {**existing["attributes"], **value}
                else:
                    existing[key] = value
            return True

    def add_span_records(self, records: Iterable[SpanRecord], *, after_start: bool = False) -> int:
        """Adds or replaces compact span records (the in-process path), under one acquisition of the
        lock.

        A finished record replaces whatever is kept for its span; a running one is added, or replaces
        a running one, but never reopens a finished span. Either marks its trace as recently updated.
        A record that finds its trace full is dropped and counted in ``dropped_spans``, once per
        span: with ``after_start`` (the span processor's path, where every finished record follows
        a running record of the same span offered earlier) a finished one is then not counted again.

        Records are not checked: they come from
        :func:`~otel_dashboard.model.span_records.compact_span_record`, which guarantees valid ids.

        Returns:
            How many of them are kept.
        """
        kept = 0
        traces = self._traces
        max_spans = self._max_spans
        with self._lock:
            for record in records:
                trace_id = record[TRACE_ID]
                span_id = record[SPAN_ID]
                spans = traces.get(trace_id)
                if spans is None:
                    # A new trace, the common case in process (a span's records come together).
                    traces[trace_id] = (span_id, record)
                    if len(traces) > self._max_traces:
                        self._evict()
                    kept += 1
                    continue
                traces.move_to_end(trace_id)
                existing = _get(spans, span_id)
                if existing is None:
                    if _count(spans) >= max_spans:
                        if not (after_start and record[END_NS] is not None):
                            self._count_dropped(trace_id)
                        continue
                elif record[END_NS] is None and _finished(existing):
                    continue  # a late start
                self._put(trace_id, spans, span_id, record)
                kept += 1
        return kept

    def _trace_for(self, trace_id: int) -> _Spans:
        # Called with the lock held: the trace, created (evicting the stalest) or marked as fresh.
        spans = self._traces.get(trace_id)
        if spans is None:
            spans = self._traces[trace_id] = ()
            if len(self._traces) > self._max_traces:
                self._evict()
        else:
            self._traces.move_to_end(trace_id)
        return spans

    def _evict(self) -> None:
        # Called with the lock held: the traces updated least recently, down to the bound.
        while len(self._traces) > self._max_traces:
            evicted, _ = self._traces.popitem(last=False)
            self._trace_dropped.pop(evicted, None)
            self._evicted_traces += 1

    def _put(self, trace_id: int, spans: _Spans, span_id: int, record: dict[str, Any] | SpanRecord) -> None:
        # Called with the lock held: adds or replaces the span's record in the trace ``spans``.
        if type(spans) is tuple:
            try:
                # Span ids sit at even positions; a record (a tuple or a dict) never equals an int.
                at = spans.index(span_id)
            except ValueError:
                if len(spans) < 2 * _SMALL_TRACE_SPANS:
                    self._traces[trace_id] = (*spans, span_id, record)
                    return
                spans = self._traces[trace_id] = dict(zip(spans[::2], spans[1::2], strict=True))
            else:
                self._traces[trace_id] = (*spans[: at + 1], record, *spans[at + 2 :])
                return
        spans[span_id] = record  # type: ignore[index]

    def _count_dropped(self, trace_id: int) -> None:
        # Called with the lock held: one span of the trace refused for the per-trace cap.
        self._trace_dropped[trace_id] = self._trace_dropped.get(trace_id, 0) + 1
        self._dropped_spans += 1

    def add_spans(self, records: Iterable[Mapping[str, Any]]) -> None:
        """:meth:`add_span` for each record."""
        for record in records:
            self.add_span(record)

    def get_trace(self, trace_id: str) -> dict[str, Any] | None:
        """One trace for the drill-down view, or ``None`` when it is not (or no longer) kept.

        Returns:
            ``{"trace_id", "spans", "span_count", "root_span_ids", "running", "truncated",
            "dropped_spans"}``. ``spans`` are JSON records (copies) sorted by start time;
            ``root_span_ids`` are the spans without a parent or whose parent is not in the trace (so
            every span hangs somewhere in the tree); ``running`` is true while any span has not
            ended; ``truncated`` when spans were dropped for the per-trace cap.
        """
        if not isinstance(trace_id, str) or len(trace_id) != 32:
            return None
        key = trace_id.lower()
        if not _HEX.issuperset(key):
            return None
        with self._lock:
            number = int(key, 16)
            trace = self._traces.get(number)
            if trace is None:
                return None
            # JSON records are copied here (add_span merges into them under the lock); compact ones
            # are immutable and expanded below, outside the lock, on the (rare) read.
            kept = [
                item if isinstance(item, tuple) else {**item, "attributes": dict(item["attributes"])}
                for item in (trace[1::2] if isinstance(trace, tuple) else trace.values())
            ]
            dropped = self._trace_dropped.get(number, 0)
        spans = [expand_span_record(item) if isinstance(item, tuple) else item for item in kept]
        spans.sort(key=lambda r: (r.get("start_time_unix_nano") or 0, r["span_id"]))
        ids = {record["span_id"] for record in spans}
        return {
            "trace_id": key,
            "spans": spans,
            "span_count": len(spans),
            "root_span_ids": [r["span_id"] for r in spans if r.get("parent_span_id") not in ids],
            "running": any(r.get("end_time") is None for r in spans),
            "truncated": dropped > 0,
            "dropped_spans": dropped,
        }

    def __len__(self) -> int:
        with self._lock:
            return len(self._traces)

    def stats(self) -> dict[str, int]:
        """Counters for ``/health`` and ``/metrics``: traces and spans kept, traces evicted, spans
        dropped for the per-trace cap."""
        with self._lock:
            return {
                "traces": len(self._traces),
                "spans": sum(_count(spans) for spans in self._traces.values()),
                "evicted_traces": self._evicted_traces,
                "dropped_spans": self._dropped_spans,
            }


def _get(spans: _Spans, span_id: int) -> dict[str, Any] | SpanRecord | None:
    if type(spans) is tuple:
        try:
            return spans[spans.index(span_id) + 1]
        except ValueError:
            return None
    return spans.get(span_id)  # type: ignore[union-attr]


def _count(spans: _Spans) -> int:
    return len(spans) // 2 if type(spans) is tuple else len(spans)


def _finished(record: dict[str, Any] | SpanRecord) -> bool:
    if type(record) is tuple:
        return record[END_NS] is not None
    return record.get("end_time") is not None  # type: ignore[union-attr]


def _checked_id(value: Any, digits: int, name: str) -> str:
    if isinstance(value, str) and len(value) == digits:
        lowered = value.lower()
        if _HEX.issuperset(lowered):
            return lowered
    raise ValueError(f"{name} must be {digits} hex digits, got {value!r}")
