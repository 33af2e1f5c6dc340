"""The spans the server has seen, grouped by trace, for the drill-down view (``GET /api/traces/{id}``).

A span is kept as a span record (:mod:`otel_dashboard.model.span_records`), never as the span
itself: its selected attributes, each value capped, and its other attributes (content and raw)
within the per-value and per-span bounds of :mod:`otel_dashboard.model.span_attributes`, all counted
in the memory budget below. Records come in two forms:

* compact records (:data:`~otel_dashboard.model.span_records.SpanRecord`, plain tuples) from the
  in-process span processor and exporter: a running one at start, the finished one at end;
* JSON records (dicts) from spans received over OTLP or shipped by remote processors (always
  finished), and from run events that arrive through ``/api/events`` without their spans.

:class:`TraceStore` is bounded three times: at most ``max_traces`` traces, the least recently
updated evicted first; at most ``max_spans_per_trace`` spans per trace (10,000 by default: more are
dropped, counted and the trace is marked ``truncated``); and at most ``max_bytes`` of records, by an
estimate (:func:`record_bytes`) made once per record (a compact record carries it): while over it, the
least recently updated traces are evicted (``evicted_traces_for_bytes``), and a single trace that
alone would exceed it keeps its first spans and drops (counts) the rest, marked ``truncated``. It
reads no spans and imports neither the OpenTelemetry SDK nor aiohttp.

Log records join their spans here too (:meth:`TraceStore.attach_events`): the GenAI events and
exception logs of :mod:`otel_dashboard.model.otlp.logs` are kept beside the span's own events (in
the record's ``log_events``, served merged into its ``events``), or wait for their span
(:mod:`otel_dashboard.state.log_events`) and are merged when it arrives finished.

Over ~400 lines for a reason: the three bounds, the two record forms, the paged read, the one-span
read and the log events share one lock and one set of counters.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from otel_dashboard.model.limits import positive_ints
from otel_dashboard.model.record_size import events_bytes, json_record_bytes
from otel_dashboard.model.runs import CostSource
from otel_dashboard.model.span_detail import page_record, trace_summary
from otel_dashboard.model.span_records import END_NS, SIZE, SPAN_ID, TRACE_ID, SpanRecord, expand_span_record
from otel_dashboard.state.log_events import PendingLogEvents, cap_events

__all__ = ["DEFAULT_MAX_TRACE_BYTES", "LogFailureListener", "ResolvedFailure", "TraceStore", "record_bytes"]

_DEFAULT_MAX_TRACES = 1000
_DEFAULT_MAX_SPANS_PER_TRACE = 10_000
DEFAULT_MAX_TRACE_BYTES = 256 * 1024 * 1024
"""The trace store's default memory budget (``max_bytes``): 256 MiB of span records, by estimate."""
_START_NS = 4  # position of the start time in a compact record
_PARENT_ID = 2  # position of the parent span id in a compact record
_HEX = frozenset("0123456789abcdef")
_SUMMARY_CACHES = 8
_EXCEPTION_EVENT = "exception"

ResolvedFailure = tuple[Any, dict[str, Any] | None]
"""An exception log's failure (what the caller gave :meth:`TraceStore.attach_events`) and its span, now
known: ``{"name", "service_name", "agent_name", "failed"}`` (``failed``: the span ended with status
ERROR or carries its own ``exception`` event, so it gave its own ``error_occurred``), or None when the
span never came (it was given up on: see :mod:`otel_dashboard.state.log_events`)."""
LogFailureListener = Callable[[list[ResolvedFailure]], object]
"""Called, outside the store's lock, with the failures a span's arrival (or its giving up) resolved."""


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
        max_bytes: the memory budget: estimated bytes of all kept records (see :func:`record_bytes`).
            While over it, the least recently updated other traces are evicted; a new span that
            would take its trace alone over it is dropped and counted like one over
            ``max_spans_per_trace``.

    Raises:
        ValueError: a bound that is not a positive integer (the message names it).
    """

    def __init__(
        self,
        *,
        max_traces: int = _DEFAULT_MAX_TRACES,
        max_spans_per_trace: int = _DEFAULT_MAX_SPANS_PER_TRACE,
        max_bytes: int = DEFAULT_MAX_TRACE_BYTES,
    ) -> None:
        positive_ints(max_traces=max_traces, max_spans_per_trace=max_spans_per_trace, max_bytes=max_bytes)
        self._max_traces = max_traces
        self._max_spans = max_spans_per_trace
        self._max_bytes = max_bytes
        # Estimated bytes per trace (record_bytes of its records) and in all.
        self._trace_bytes: dict[int, int] = {}
        self._bytes = 0
        self._evicted_for_bytes = 0
        self._lock = threading.Lock()
        # Keyed by the integer ids: the in-process hot path then formats no hex at all.
        self._traces: OrderedDict[int, _Spans] = OrderedDict()
        # Spans dropped for the per-trace cap, by trace id: only the (rare) truncated traces.
        self._trace_dropped: dict[int, int] = {}
        self._evicted_traces = 0
        self._dropped_spans = 0
        # What the last summaries read of the traces read most recently (see trace_summary's
        # cache): a trace page polled while its trace runs re-reads only new and changed records.
        self._summary_caches: OrderedDict[int, dict[int, Any]] = OrderedDict()
        # Log events waiting for their span, and what became of log events.
        self._pending = PendingLogEvents()
        self._attached_log_events = 0
        self._dropped_log_events = 0
        self.on_log_failures: LogFailureListener | None = None
        """Told of the exception logs' failures resolved when their span arrives (the state sets it)."""

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
                stored = dict(record)
                stored["trace_id"], stored["span_id"] = format(trace_id, "032x"), format(span_id, "016x")
                stored["attributes"] = dict(record.get("attributes") or {})
                stored["detail_attributes"] = dict(record.get("detail_attributes") or {})
                size = record_bytes(stored)
                if _count(spans) >= self._max_spans or not self._fits(trace_id, size):
                    self._count_dropped(trace_id)
                    return False
                self._put(trace_id, spans, span_id, stored)
                self._account(trace_id, size)
                resolved = self._merge_pending(trace_id, span_id) if finished and self._pending else None
            else:
                if isinstance(existing, tuple):
                    return False  # the in-process record is the truth about its span
                if existing.get("end_time") is not None and not finished:
                    return False
                before = record_bytes(existing)
                for key, value in record.items():
                    if key in ("trace_id", "span_id", "log_events", "dropped_log_events") or value is None:
                        continue
                    if key in ("attributes", "detail_attributes"):
                        if isinstance(value, Mapping):
                            existing[key] = {**(existing.get(key) or {}), **value}
                    else:
                        existing[key] = value
                self._account(trace_id, record_bytes(existing) - before)
                resolved = self._merge_pending(trace_id, span_id) if finished and self._pending else None
        if resolved:
            self._tell(resolved)
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
        trace_bytes = self._trace_bytes
        max_spans = self._max_spans
        max_bytes = self._max_bytes
        resolved: list[ResolvedFailure] = []
        with self._lock:
            # Spans whose log events wait, or whose attached ones a new record would replace: rare,
            # so checked only when there are any (neither changes during the loop).
            waiting = bool(self._pending)
            later: list[tuple[int, int, Any]] = []
            for record in records:
                trace_id = record[TRACE_ID]
                span_id = record[SPAN_ID]
                spans = traces.get(trace_id)
                size = record[SIZE]  # the estimate the record carries
                if spans is None:
                    # A new trace, the common case in process (a span's records come together).
                    if size > max_bytes:
                        # Not kept, so no trace to mark: counted in the store's total only (a
                        # per-trace count for a trace never kept would never be freed).
                        if not (after_start and record[END_NS] is not None):
                            self._dropped_spans += 1
                        continue
                    traces[trace_id] = (span_id, record)
                    if len(traces) > self._max_traces:
                        self._evict()
                    # _account, inlined for the common case.
                    trace_bytes[trace_id] = size
                    self._bytes += size
                    if self._bytes > max_bytes:
                        self._account(trace_id, 0)
                    kept += 1
                    if waiting and record[END_NS] is not None:
                        later.append((trace_id, span_id, None))
                    continue
                traces.move_to_end(trace_id)
                existing = _get(spans, span_id)
                if existing is None:
                    if _count(spans) >= max_spans or trace_bytes.get(trace_id, 0) + size > max_bytes:
                        if not (after_start and record[END_NS] is not None):
                            self._count_dropped(trace_id)
                        continue
                elif record[END_NS] is None and _finished(existing):
                    continue  # a late start
                else:
                    size -= record_bytes(existing)  # a record replaced: its estimate goes
                    if type(existing) is dict and "log_events" in existing:
                        later.append((trace_id, span_id, existing))  # its log events stay
                self._put(trace_id, spans, span_id, record)
                self._account(trace_id, size)
                kept += 1
                if waiting and record[END_NS] is not None:
                    later.append((trace_id, span_id, None))
            for trace_id, span_id, replaced in later:
                if replaced is not None:
                    resolved.extend(self._attach_to_kept(trace_id, span_id, replaced["log_events"],
                                                         replaced.get("dropped_log_events", 0), ()))
                else:
                    resolved.extend(self._merge_pending(trace_id, span_id))
        if resolved:
            self._tell(resolved)
        return kept

    # ---------------------------------------------------------------------------- log events
    def attach_events(
        self, trace_id: int, span_id: int, events: Sequence[dict[str, Any]], failures: Sequence[Any] = ()
    ) -> list[ResolvedFailure]:
        """Attach log events (JSON span events, bounded: :mod:`otel_dashboard.model.otlp.logs`) to
        the span ``(trace_id, span_id)``, with the failures of its exception logs.

        A kept, finished span takes them at once (at most
        :data:`~otel_dashboard.state.log_events.MAX_LOG_EVENTS_PER_SPAN` log events and
        :data:`~otel_dashboard.state.log_events.MAX_LOG_EVENT_BYTES_PER_SPAN` of them; the rest are
        dropped and counted in its ``dropped_events``); otherwise (not kept yet, or still running)
        they wait for it, bounded (:class:`~otel_dashboard.state.log_events.PendingLogEvents`), and
        :attr:`on_log_failures` is told of the failures when it arrives. Entries that waited too long
        are given up on here too.

        Returns:
            The failures resolved now: this span's when it is kept and finished, and those of spans
            given up on (see :data:`ResolvedFailure`).
        """
        with self._lock:
            resolved: list[ResolvedFailure] = [(failure, None) for failure in self._pending.expire()]
            spans = self._traces.get(trace_id)
            existing = _get(spans, span_id) if spans is not None else None
            if existing is not None and _finished(existing):
                resolved.extend(self._attach_to_kept(trace_id, span_id, events, 0, failures))
            else:
                given_up = self._pending.add((trace_id, span_id), events, failures)
                resolved.extend((failure, None) for failure in given_up)
        return resolved

    def expire_pending(self) -> list[ResolvedFailure]:
        """Give up on the spans whose log events waited too long; their failures (span None)."""
        with self._lock:
            return [(failure, None) for failure in self._pending.expire()]

    def _merge_pending(self, trace_id: int, span_id: int) -> list[ResolvedFailure]:
        # Called with the lock held, once the span is kept finished: its waiting events and failures.
        entry = self._pending.take((trace_id, span_id))
        if entry is None:
            return []
        return self._attach_to_kept(trace_id, span_id, entry.events, entry.dropped, entry.failures)

    def _attach_to_kept(self, trace_id: int, span_id: int, events: Sequence[dict[str, Any]], dropped: int,
                        failures: Iterable[Any]) -> list[ResolvedFailure]:
        # Called with the lock held: the events added to the span's record (a compact one becomes a
        # JSON record), its bytes accounted; the failures paired with the span's summary.
        spans = self._traces.get(trace_id)
        existing = _get(spans, span_id) if spans is not None else None
        if spans is None or existing is None:  # evicted meanwhile: the events go, the span is unknown
            self._dropped_log_events += len(events)
            return [(failure, None) for failure in failures]
        if isinstance(existing, tuple):
            stored = expand_span_record(existing)
            before = int(existing[SIZE])
        else:
            stored, before = existing, record_bytes(existing)
        log = stored.get("log_events") or []
        kept, refused, _ = cap_events(len(log), events_bytes(log), events)
        if kept or stored is not existing:
            stored["log_events"] = [*log, *kept]  # a new list: readers hold the old one
        if dropped or refused:
            stored["dropped_log_events"] = stored.get("dropped_log_events", 0) + dropped + refused
        self._attached_log_events += len(kept)
        self._dropped_log_events += refused  # ``dropped`` were counted where they were dropped
        if stored is not existing:
            self._put(trace_id, spans, span_id, stored)
        self._traces.move_to_end(trace_id)
        self._account(trace_id, record_bytes(stored) - before)
        summary = _span_summary(stored)
        return [(failure, summary) for failure in failures]

    def _tell(self, resolved: list[ResolvedFailure]) -> None:
        listener = self.on_log_failures
        if listener is not None:
            listener(resolved)

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
            if self._trace_dropped:
                self._trace_dropped.pop(evicted, None)
            self._bytes -= self._trace_bytes.pop(evicted, 0)  # _forget, inlined: once per new trace
            self._evicted_traces += 1

    def _forget(self, trace_id: int) -> None:
        # Called with the lock held: the bookkeeping of a trace just removed from _traces.
        self._trace_dropped.pop(trace_id, None)
        self._bytes -= self._trace_bytes.pop(trace_id, 0)

    def _fits(self, trace_id: int, size: int) -> bool:
        # Called with the lock held: whether a new record of `size` bytes keeps its trace alone
        # within the budget (other traces are evicted for it in _account).
        return self._trace_bytes.get(trace_id, 0) + size <= self._max_bytes

    def _account(self, trace_id: int, delta: int) -> None:
        # Called with the lock held, after a record of `trace_id` was stored or replaced: its bytes
        # counted, and while over the budget the least recently updated other traces evicted (the
        # one just updated is the most recent: it is never the first in line).
        self._trace_bytes[trace_id] = self._trace_bytes.get(trace_id, 0) + delta
        self._bytes += delta
        traces = self._traces
        while self._bytes > self._max_bytes and len(traces) > 1:
            evicted, _ = traces.popitem(last=False)
            self._forget(evicted)
            self._evicted_traces += 1
            self._evicted_for_bytes += 1

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

    def get_trace(
        self, trace_id: str, *, offset: int = 0, limit: int | None = None, prices: CostSource | None = None
    ) -> dict[str, Any] | None:
        """One page of a trace's spans for the drill-down view, or ``None`` when the trace is not (or
        no longer) kept.

        Spans are ordered by start time, then span id (a span without a start time first); the page
        is ``spans[offset:offset + limit]`` of that order (all of them from ``offset`` without a
        ``limit``). Only the page's records are expanded to JSON.

        Args:
            trace_id: 32 hex digits.
            offset: the page's first span.
            limit: the page's spans at most (all without).
            prices: prices the model calls (``cost_usd``); None leaves them unpriced.

        Returns:
            ``{"trace_id", "spans", "span_count", "offset", "limit", "next_offset", "root_span_ids",
            "running", "truncated", "dropped_spans", "summary"}``. ``spans`` are the page's JSON
            records (copies) without their ``detail_attributes`` and with the waterfall's fields
            (:func:`~otel_dashboard.model.span_detail.page_record`); ``span_count`` counts the
            trace's kept spans (all pages); ``next_offset`` is the offset of the next page, ``None``
            at the end; ``root_span_ids`` (of the whole trace) are the spans without a parent or
            whose parent is not in the trace (so every span hangs somewhere in the tree);
            ``running`` is true while any span has not ended; ``truncated`` when spans were dropped
            for the per-trace cap or the memory budget; ``summary`` is the whole trace's
            (:func:`~otel_dashboard.model.span_detail.trace_summary`).
        """
        found = self._kept(trace_id)
        if found is None:
            return None
        key, kept, dropped = found
        # Sorted and walked in their stored form: a 10,000-span trace expands only its page.
        kept.sort(key=_order)
        ids = {_span_int(item) for item in kept}
        roots = [item for item in kept if _parent_int(item) not in ids]
        page = kept[offset:] if limit is None else kept[offset:offset + limit]
        spans = [page_record(expand_span_record(item) if isinstance(item, tuple) else item, prices)
                 for item in page]
        end = offset + len(page)
        return {
            "trace_id": key,
            "spans": spans,
            "span_count": len(kept),
            "offset": offset,
            "limit": limit,
            "next_offset": end if end < len(kept) else None,
            "root_span_ids": [format(_span_int(item), "016x") for item in roots],
            "running": any(not _finished(item) for item in kept),
            "truncated": dropped > 0,
            "dropped_spans": dropped,
            "summary": trace_summary(kept, prices, cache=self._summary_cache(int(key, 16))),
        }

    def _summary_cache(self, number: int) -> dict[int, Any]:
        # The summary cache of a trace, made fresh if needed; a few traces only (the pages open now).
        with self._lock:
            cache = self._summary_caches.pop(number, None)
            if cache is None:
                cache = {}
            self._summary_caches[number] = cache
            while len(self._summary_caches) > _SUMMARY_CACHES:
                self._summary_caches.popitem(last=False)
        return cache

    def get_span(self, trace_id: str, span_id: str) -> tuple[bool, dict[str, Any] | None]:
        """One span's full JSON record (with its ``detail_attributes``), a copy.

        Returns:
            ``(trace_kept, record)``: whether the trace is kept, and the span's record (None when
            the trace or the span is not kept, or an id is malformed).
        """
        found = self._kept(trace_id, span_id)
        if found is None:
            return False, None
        _, kept, _ = found
        if not kept:
            return True, None
        item = kept[0]
        return True, expand_span_record(item) if isinstance(item, tuple) else item

    def _kept(self, trace_id: str, span_id: str | None = None) -> tuple[str, list[Any], int] | None:
        # (the trace id, its records, its dropped spans) of a kept trace, or None: JSON records
        # copied (add_span merges into them under the lock), compact ones as they are (immutable,
        # expanded outside the lock on the rare read). With span_id, only that span's record, if kept.
        if not isinstance(trace_id, str) or len(trace_id) != 32:
            return None
        key = trace_id.lower()
        if not _HEX.issuperset(key):
            return None
        number = int(key, 16)
        wanted: int | None = None
        if span_id is not None:
            if not isinstance(span_id, str) or len(span_id) != 16 or not _HEX.issuperset(span_id.lower()):
                return None
            wanted = int(span_id, 16)
        with self._lock:
            trace = self._traces.get(number)
            if trace is None:
                return None
            if wanted is not None:
                one = _get(trace, wanted)
                items: Iterable[Any] = () if one is None else (one,)
            else:
                items = trace[1::2] if isinstance(trace, tuple) else trace.values()
            kept = [item if isinstance(item, tuple) else _readable(item) for item in items]
            if wanted is not None and kept and not isinstance(kept[0], tuple):
                kept[0]["detail_attributes"] = dict(kept[0].get("detail_attributes") or {})
            return key, kept, self._trace_dropped.get(number, 0)

    def __len__(self) -> int:
        with self._lock:
            return len(self._traces)

    def stats(self) -> dict[str, int]:
        """Counters for ``/health`` and ``/metrics``: traces and spans kept, traces evicted (for
        either bound; ``evicted_traces_for_bytes`` for the memory budget), spans dropped for the
        per-trace cap or the budget, and the kept records' estimated ``bytes`` against
        ``max_bytes``; the log events attached to spans, the spans (and estimated bytes) whose log
        events wait for them, and the log events dropped (per-span caps, given up on, evicted)."""
        with self._lock:
            return {
                "traces": len(self._traces),
                "spans": sum(_count(spans) for spans in self._traces.values()),
                "evicted_traces": self._evicted_traces,
                "evicted_traces_for_bytes": self._evicted_for_bytes,
                "dropped_spans": self._dropped_spans,
                "bytes": self._bytes,
                "max_bytes": self._max_bytes,
                "log_events_attached": self._attached_log_events,
                "log_events_waiting_spans": len(self._pending),
                "log_events_waiting_bytes": self._pending.bytes,
                "log_events_dropped": (self._dropped_log_events + self._pending.dropped_events
                                       + self._pending.evicted_events),
            }


def record_bytes(record: Mapping[str, Any] | SpanRecord) -> int:
    """The estimated memory a stored span record holds (:mod:`otel_dashboard.model.record_size`): a
    compact record carries it, a JSON record's is computed (once per store or merge), its attached
    log events included."""
    if isinstance(record, tuple):
        return int(record[SIZE])
    log = record.get("log_events")
    return json_record_bytes(record) + (events_bytes(log) if log else 0)


def _readable(item: dict[str, Any]) -> dict[str, Any]:
    # A JSON record as reads serve it (a copy): its log events after its own events.
    copy = {**item, "attributes": dict(item["attributes"])}
    log = copy.pop("log_events", None)
    dropped = copy.pop("dropped_log_events", 0)
    if log:
        copy["events"] = [*(copy.get("events") or ()), *log]
    if dropped:
        copy["dropped_events"] = (copy.get("dropped_events") or 0) + dropped
    return copy


def _span_summary(record: Mapping[str, Any]) -> dict[str, Any]:
    # What an exception log's error needs of its span (see ResolvedFailure).
    own_exception = any(isinstance(event, Mapping) and event.get("name") == _EXCEPTION_EVENT
                        for event in record.get("events") or ())
    return {
        "name": record.get("name"),
        "service_name": record.get("service_name"),
        "agent_name": record.get("agent_name"),
        "failed": record.get("status") == "error" or own_exception,
    }


def _order(record: dict[str, Any] | SpanRecord) -> tuple[int, int]:
    # The page order: start time, then span id (the hex ids have one width: their order is the ints').
    if isinstance(record, tuple):
        return record[_START_NS] or 0, record[SPAN_ID]
    return record.get("start_time_unix_nano") or 0, int(record["span_id"], 16)


def _span_int(record: dict[str, Any] | SpanRecord) -> int:
    if isinstance(record, tuple):
        return int(record[SPAN_ID])
    return int(record["span_id"], 16)


def _parent_int(record: dict[str, Any] | SpanRecord) -> int:
    if isinstance(record, tuple):
        return int(record[_PARENT_ID])
    parent = record.get("parent_span_id")
    return int(parent, 16) if isinstance(parent, str) else 0


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
