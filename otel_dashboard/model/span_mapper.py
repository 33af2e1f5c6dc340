"""Stateful mapping: spans in, in start and end order; dashboard events and live run states out.

:class:`SpanMapper` wraps the pure :mod:`~otel_dashboard.model.mapping` with what needs memory across
spans: the open runs and their aggregates (:mod:`.runs`), which failed spans are one failure
(:mod:`.failures`), and each run's place among runs. The in-process processor keeps one per
processor, on its worker thread; the server keeps one for OTLP, behind a lock
(:meth:`SpanMapper.map_received` orders a request's ended spans into starts and ends).

What it adds to the pure mapping's events (``docs/events.md``, "Runs" and "One failure, one error"):

* ``agent_execution_started``/``completed`` carry ``parent_run_id`` and ``root_run_id``, and their
  ``parent_span_id`` is the nearest enclosing run's span (the span's own parent outside any run);
* ``agent_execution_completed`` carries the run's totals, its task when its span states none (the
  first model call's user message), and a failed run's origin error and type;
* ``error_occurred`` comes once per failure, from the span where it first appeared;
* a ``LoopSuspected`` warning (an ``error_occurred``, severity warning) when a run looks stuck: the
  same tool call or prompt repeated, an agent inside its own run (:mod:`.loops`; ``docs/guardrails.md``).
  Spans received before their run's agent span count at the span they wait at, like their tallies;
  their loop is reported once the run is known (a provisional run naming its agent, or the agent span).

:meth:`SpanMapper.take_progress` returns the live states of the runs changed since the last call.
Bounded everywhere: the oldest open spans, runs and pending tallies go first when a table is full.

This module is longer than ~400 lines for a reason: :class:`SpanMapper` is one state (open spans,
runs, pending tallies of received spans, provisional runs, the runs' loop memories) that its start,
end and received-span paths all update together; split, each part would reach into the others'
tables (the checks themselves are :mod:`.loops`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import StatusCode

from instrumentation import semconv as sc
from otel_dashboard.model import mapping, sdk_span
from otel_dashboard.model.events import (
    DashboardEvent,
    EventType,
    QualityThresholds,
    Severity,
    format_timestamp,
    new_event_id,
)
from otel_dashboard.model.failures import FailureChain
from otel_dashboard.model.guardrails import LOOP_SUSPECTED, LoopThresholds
from otel_dashboard.model.loops import LoopDetector, LoopFinding, LoopMemory
from otel_dashboard.model.runs import CostSource, Run, Tally, price
from otel_dashboard.model.span_facts import event_attributes, event_time, span_info, status_description
from otel_dashboard.model.vocab import (
    KIND_AGENT,
    KIND_MODEL,
    KIND_OTHER,
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

__all__ = ["SpanMapper"]

logger = logging.getLogger(__name__)

_STATUS_ERROR = StatusCode.ERROR
_COMPLETED = EventType.AGENT_EXECUTION_COMPLETED
_STARTED = EventType.AGENT_EXECUTION_STARTED
_ERROR = EventType.ERROR_OCCURRED
_MAX_ANCESTORS = 64
_DEFAULT_LOOPS = LoopThresholds()
_KINDS_WITH_END_EVENTS = frozenset({KIND_AGENT, KIND_SYNTHESIS, KIND_REGISTRATION})
_KINDS_WITH_VIEWS = frozenset({KIND_AGENT, KIND_MODEL, KIND_TOOL})


class _Node:
    """An open span inside a run: its run, and whether it is a model or tool call or inside one."""

    __slots__ = ("call_kind", "in_model", "in_tool", "inner_model", "inner_tokens", "run", "view")

    def __init__(
        self, run: Run, call_kind: str | None, in_model: bool, in_tool: bool, view: SpanView
    ) -> None:
        self.view = view  # made at start; its lazy fields read the span's attributes as they are at end
        self.run = run
        self.call_kind = call_kind
        self.in_model = in_model
        self.in_tool = in_tool
        self.inner_tokens: dict[str, int] | None = None
        self.inner_model: str | None = None


def _check_positive(name: str, value: Any) -> int:
    if type(value) is not int or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return value


class SpanMapper:
    """Maps spans to events with the runs they belong to. Not thread-safe: one caller at a time.

    Args:
        thresholds: quality thresholds for the pure mapping.
        prices: prices model calls (a :class:`~otel_dashboard.model.prices.PriceBook`); ``None``
            leaves every run unpriced ("no_price").
        max_open_runs: open runs kept; the oldest is forgotten beyond (its agent span, should it
            ever end, then completes without totals).
        max_open_spans: open spans tracked (for run membership and ancestry).
        max_pending: tallies of spans whose parent has not been seen, kept for it (OTLP).
        loops: when a run is suspected of looping (a ``LoopSuspected`` event); ``None`` turns loop
            detection off.

    Raises:
        ValueError: a bound that is not a positive integer, a loop threshold below 0.
    """

    def __init__(
        self,
        *,
        thresholds: QualityThresholds | None = None,
        prices: CostSource | None = None,
        max_open_runs: int = 10_000,
        max_open_spans: int = 100_000,
        max_pending: int = 10_000,
        loops: LoopThresholds | None = _DEFAULT_LOOPS,
    ) -> None:
        self._thresholds = thresholds
        self._prices = prices
        self._max_open_runs = _check_positive("max_open_runs", max_open_runs)
        self._max_open_spans = _check_positive("max_open_spans", max_open_spans)
        self._max_pending = _check_positive("max_pending", max_pending)
        self._runs: dict[int, Run] = {}
        self._nodes: dict[int, _Node] = {}
        self._parents: dict[int, int] = {}  # open span id -> parent span id (0: none)
        self._pending: dict[int, Tally] = {}  # parent span id -> tally of its ended children
        self._dirty: dict[str, Run] = {}
        # Received spans only: runs known from their spans before their agent span arrives, keyed by
        # the span their tally waits at (see _count_pending), and the ids of those given up.
        self._provisional: dict[int, Run] = {}
        self._ended: list[str] = []
        self._receiving = False
        self._failures = FailureChain(max_pending=max_pending)
        self.forgotten_runs = 0
        # Loop detection's memories: by run id for open runs, by the span id they wait at for spans
        # outside any open run (moved up with their tallies). Bounded with the runs and the pending.
        self._loops = LoopDetector(loops)
        self._loop_runs: dict[str, LoopMemory] = {}
        self._loop_pending: dict[int, LoopMemory] = {}

    # ------------------------------------------------------------------ spans in
    def start(self, span: ReadableSpan) -> list[DashboardEvent]:
        """The events of a span that has just started; tracks it when it is a run or inside one."""
        _, span_id, parent_id = sdk_span.span_ids(span)
        attrs = sdk_span.attributes(span)
        kind_and_vocabulary = kind_of(span.name, attrs)
        kind = kind_and_vocabulary[0]
        parent_node = self._nodes.get(parent_id) if parent_id and self._nodes else None
        if kind == KIND_AGENT or parent_node is not None:
            view = view_of(span.name, attrs, kind=kind_and_vocabulary)
        else:  # outside any run: the kind is all the start needs
            view = SpanView(*kind_and_vocabulary)
        # Only agent and synthesis spans have start events.
        events = (
            mapping.map_span_start(span, thresholds=self._thresholds, view=view)
            if kind in (KIND_AGENT, KIND_SYNTHESIS) else []
        )
        if type(span_id) is not int or not span_id:
            return events
        parents = self._parents
        if len(parents) >= self._max_open_spans:
            self._forget_oldest_span()
        parents[span_id] = parent_id if type(parent_id) is int else 0
        if kind == KIND_AGENT:
            if self._provisional:
                self._provisional.pop(span_id, None)  # the run it stood for: same id, now known
            run = self._open_run(span, span_id, view, parent_node.run if parent_node else None, events)
            self._nodes[span_id] = _Node(run, None, False, False, view)
            if parent_node is not None and self._loops.enabled:
                found = self._check_self_invocation(run, span.start_time)
                if found:
                    events = [*events, *found]
        elif parent_node is not None:
            run = parent_node.run
            call_kind = kind if kind in (KIND_MODEL, KIND_TOOL) else None
            in_model = parent_node.in_model or parent_node.call_kind == KIND_MODEL
            in_tool = parent_node.in_tool or parent_node.call_kind == KIND_TOOL
            self._nodes[span_id] = _Node(run, call_kind, in_model, in_tool, view)
            if call_kind == KIND_MODEL and not in_model:
                run.open_steps[span_id] = f"waiting on {view.model}" if view.model else "waiting on the model"
                self._dirty[run.run_id] = run
            elif call_kind == KIND_TOOL and not in_tool:
                run.open_steps[span_id] = f"calling tool {view.tool_name}"
                self._dirty[run.run_id] = run
        return events

    def end(self, span: ReadableSpan) -> list[DashboardEvent]:
        """The events of a span that has ended, with its run's totals and one error per failure."""
        trace_id, span_id, parent_id = sdk_span.span_ids(span)
        if type(span_id) is not int:
            span_id = 0
        if type(parent_id) is not int:
            parent_id = 0
        attrs = sdk_span.attributes(span)
        node = self._nodes.pop(span_id, None) if span_id and self._nodes else None
        failed = getattr(span.status, "status_code", None) is _STATUS_ERROR
        if node is not None and node.view.kind != KIND_OTHER:
            # What the span was at its start (the kind attributes are set when a span is made).
            view = node.view
        else:
            kind_and_vocabulary = kind_of(span.name, attrs)
            if (kind_and_vocabulary[0] in _KINDS_WITH_VIEWS or node is not None or failed
                    or sdk_span.events(span) or (self._pending and span_id in self._pending)):
                view = view_of(span.name, attrs, kind=kind_and_vocabulary)
            else:  # a plain span outside any run: nothing to read
                view = SpanView(*kind_and_vocabulary)
        kind = view.kind
        # Only these spans have end events (the pure mapping's rule; skipping it saves a call).
        if kind in _KINDS_WITH_END_EVENTS or failed or sdk_span.events(span):
            events = mapping.map_span_end(span, thresholds=self._thresholds, view=view)
        else:
            events = []
        failure = None
        if failed:
            exception_attrs = _last_exception(span)
            error_type, message = error_of(attrs, exception_attrs, status_description(span.status))
            failure, is_new = self._failures.ended_failed(
                trace_id if type(trace_id) is int else 0, span_id, parent_id, error_type, message,
                self._ancestors(parent_id),
            )
            if not is_new:
                events = [event for event in events if event.event_type is not _ERROR]
            elif node is not None:
                node.run.errors += 1
        else:
            self._failures.ended_ok(span_id, parent_id)
        self._parents.pop(span_id, None)

        if kind == KIND_AGENT:
            self._complete_run(span, span_id, parent_id, view, events, failure)
        elif node is not None:
            found = self._count_in_run(span, span_id, parent_id, node, view, attrs, failed)
            if found:
                events += found
        elif span_id:
            found = self._count_pending(span, span_id, parent_id, view, attrs, failed)
            if found:
                events += found
        return events

    def map_received(self, spans: Iterable[ReadableSpan]) -> list[DashboardEvent]:
        """The events of received (ended) spans: each span's start, then the ends, in time order,
        parents starting before their children at the same time. A span the mapping fails on is
        skipped (the caller logs)."""
        spans = list(spans)
        self._receiving = True
        try:
            return self._map_received(spans)
        finally:
            self._receiving = False

    def _map_received(self, spans: list[ReadableSpan]) -> list[DashboardEvent]:
        by_id = {}
        for span in spans:
            _, span_id, _ = sdk_span.span_ids(span)
            if type(span_id) is int and span_id:
                by_id[span_id] = span
        depth_of: dict[int, int] = {}

        def depth(span: ReadableSpan) -> int:
            seen = 0
            _, span_id, parent_id = sdk_span.span_ids(span)
            known = depth_of.get(span_id)
            if known is not None:
                return known
            while parent_id in by_id and seen < _MAX_ANCESTORS:
                seen += 1
                _, _, parent_id = sdk_span.span_ids(by_id[parent_id])
            depth_of[span_id] = seen
            return seen

        timeline: list[tuple[int, int, int, int, ReadableSpan]] = []
        for index, span in enumerate(spans):
            level = depth(span)
            start, end = span.start_time or 0, span.end_time or 0
            timeline.append((start, 0, level, index, span))
            timeline.append((max(end, start), 1, -level, index, span))
        timeline.sort(key=lambda item: item[:4])
        out: list[DashboardEvent] = []
        failures = 0
        for _, is_end, _, _, span in timeline:
            try:
                out += self.end(span) if is_end else self.start(span)
            except Exception:
                failures += 1
                if failures == 1:
                    logger.exception("Mapping a received span failed; skipping it")
        if failures > 1:
            logger.warning("Mapping failed for %d received span starts and ends; they were skipped", failures)
        return out

    def take_progress(self) -> list[dict[str, Any]]:
        """The live states of the runs changed since the last call (``run_progress``), after the
        runs given up since then (``{"run_id": ..., "status": "ended"}``: a run known only from its
        spans turned out to be another; no ``agent_execution_completed`` follows for it)."""
        if not self._dirty and not self._ended:
            return []
        now = format_timestamp(None)
        states: list[dict[str, Any]] = [
            {"run_id": run_id, "status": "ended", "updated_at": now} for run_id in self._ended
        ]
        self._ended.clear()
        states += [run.state(now) for run in self._dirty.values()]
        self._dirty.clear()
        return states

    @property
    def has_progress(self) -> bool:
        """Whether :meth:`take_progress` has something to give."""
        return bool(self._dirty or self._ended)

    @property
    def open_runs(self) -> int:
        return len(self._runs)

    @property
    def failures(self) -> FailureChain:
        """The failed spans seen so far, one failure one error (read it under the mapper's lock)."""
        return self._failures

    # ------------------------------------------------------------------ runs
    def _open_run(self, span: ReadableSpan, span_id: int, view: SpanView, parent: Run | None,
                  events: list[DashboardEvent]) -> Run:
        ctx = span_info(span)
        started = events[0] if events and events[0].event_type is _STARTED else None
        task = started.data.get("task_description") if started is not None else None
        run = Run(ctx.span_id or f"{span_id:016x}", ctx.trace_id, view.agent_name or "agent",
                  view.agent_id or view.agent_name, ctx.service_name, task or None,
                  ctx.started_at(span), parent)
        run.conversation_id = view.conversation_id
        if started is not None:
            _place(started.data, run, ctx.parent_span_id)
            started.data["conversation_id"] = run.conversation_id
        runs = self._runs
        if len(runs) >= self._max_open_runs:
            oldest = next(iter(runs))
            forgotten = runs.pop(oldest).run_id
            self._dirty.pop(forgotten, None)
            self._loop_runs.pop(forgotten, None)
            self.forgotten_runs += 1
        runs[span_id] = run
        self._dirty[run.run_id] = run
        return run

    def _complete_run(self, span: ReadableSpan, span_id: int, parent_id: int, view: SpanView,
                      events: list[DashboardEvent], failure: Any) -> None:
        run = self._runs.pop(span_id, None) if span_id else None
        if run is None:  # its start was not seen (or forgotten): the run is its span alone
            ctx = span_info(span)
            parent_node = self._nodes.get(parent_id) if parent_id else None
            run = Run(ctx.span_id or "", ctx.trace_id, view.agent_name or "agent", view.agent_id,
                      ctx.service_name, None, ctx.started_at(span), parent_node.run if parent_node else None)
        self._dirty.pop(run.run_id, None)
        pending = self._pending.pop(span_id, None) if self._pending and span_id else None
        if pending is not None:
            run.tally.merge(pending)
        memory = self._loop_runs.pop(run.run_id, None)
        waited = self._loop_pending.pop(span_id, None) if self._loop_pending and span_id else None
        if waited is not None:  # the run's spans that arrived before it: their loops are reported now
            if memory is not None:
                self._loops.merge(memory, waited)
            else:
                memory = waited
            found = self._loop_events(run, self._loops.due(memory), span.end_time)
            if found:  # before the run's completion, inside the run
                at = next((i for i, e in enumerate(events) if e.event_type is _COMPLETED), len(events))
                events[at:at] = found
        completed = next((e for e in events if e.event_type is _COMPLETED), None)
        if completed is None:
            return
        data = completed.data
        if view.conversation_id:  # the agent span's, as it is at its end, comes first
            run.conversation_id = view.conversation_id
        # The run span's own totals count only when its model calls carried none (the token rule).
        span_tokens = None if run.tally.tokens else (view.tokens or view.run_tokens)
        span_model = view.model if span_tokens else None
        span_cost = price(self._prices, span_model, view.provider, span_tokens) if span_tokens else None
        data.update(run.totals(span_tokens, span_cost, span_model))
        _place(data, run, data.get("parent_span_id"))
        if data["tokens_source"] is not None:
            data["input_tokens"] = data["tokens"]["input"]
            data["output_tokens"] = data["tokens"]["output"]
        if not data.get("task_description"):
            data["task_description"] = run.task or run.tally.task or ""
        if failure is not None:
            data["error_message"] = failure.message or data.get("error_message") or "error"
            data["error_type"] = failure.error_type or data.get("error_type")

    def _count_in_run(self, span: ReadableSpan, span_id: int, parent_id: int, node: _Node,
                      view: SpanView, attrs: Any, failed: bool) -> list[DashboardEvent] | None:
        """Counts an ended span of an open run; its loop events, if any."""
        run = node.run
        pending = self._pending.pop(span_id, None) if self._pending else None
        if pending is not None:
            run.tally.merge(pending)
        found: list[LoopFinding] | None = None
        if self._loop_pending:
            waited = self._loop_pending.pop(span_id, None)
            if waited is not None:
                memory = self._loop_memory(run)
                self._loops.merge(memory, waited)
                found = self._loops.due(memory)
        if node.call_kind == KIND_MODEL:
            if node.in_model:
                outer = self._nodes.get(parent_id)
                if outer is not None and view.tokens and outer.inner_tokens is None:
                    outer.inner_tokens, outer.inner_model = view.tokens, view.model
                return self._loop_events(run, found, span.end_time)
            tokens = view.tokens or node.inner_tokens
            model = view.model or node.inner_model
            cost = price(self._prices, model, view.provider, tokens) if tokens else None
            run.tally.add_model_call(model, tokens, cost)
            if run.conversation_id is None:
                run.conversation_id = view.conversation_id
            if run.task is None and run.tally.task is None:
                run.tally.task = task_of(attrs, sdk_span.events(span), messages_only=True)
            run.open_steps.pop(span_id, None)
            self._dirty[run.run_id] = run
            if self._loops.counts_calls:
                finding = self._loops.model_call(self._loop_memory(run), attrs, sdk_span.events(span),
                                                 span_id=f"{span_id:016x}")
                if finding is not None:
                    found = [*(found or ()), finding]
        elif node.call_kind == KIND_TOOL and not node.in_tool:
            run.tally.add_tool_call(view.tool_name or "tool", failed)
            run.open_steps.pop(span_id, None)
            self._dirty[run.run_id] = run
            if self._loops.counts_calls:
                finding = self._loops.tool_call(self._loop_memory(run), attrs,
                                                tool_name=view.tool_name or "tool", span_id=f"{span_id:016x}")
                if finding is not None:
                    found = [*(found or ()), finding]
        return self._loop_events(run, found, span.end_time)

    def _count_pending(self, span: ReadableSpan, span_id: int, parent_id: int, view: SpanView,
                       attrs: Any, failed: bool) -> list[DashboardEvent] | None:
        """A span outside any open run: its counts wait at its parent (received spans arrive
        children first, possibly in an earlier request than their run's agent span); its loop
        memory moves with them, and loop events come once a provisional run stands for the parent."""
        pending = self._pending
        below = pending.pop(span_id, None) if pending else None
        memory = self._loop_pending.pop(span_id, None) if self._loop_pending else None
        kind = view.kind
        if kind == KIND_MODEL:
            tally = Tally()
            tokens = view.tokens
            if below is not None:  # model calls under a model call are the same call
                if not tokens and below.tokens:
                    tokens = dict(below.tokens)
                below.model_calls = 0
                below.tokens = {}
                below.cost_usd, below.priced_calls = 0.0, 0
                below.unpriced_models = []
                tally.merge(below)
            cost = price(self._prices, view.model, view.provider, tokens) if tokens else None
            tally.add_model_call(view.model, tokens, cost)
            tally.task = task_of(attrs, (), messages_only=True)
            if self._loops.counts_calls:
                memory = memory or LoopMemory()
                self._loops.model_call(memory, attrs, sdk_span.events(span), span_id=f"{span_id:016x}",
                                       report=False)
        elif kind == KIND_TOOL:
            tally = Tally()
            if below is not None:  # tool spans under a tool span are the same call
                below.tool_calls = below.tool_failures = 0
                below.tools = {}
                tally.merge(below)
            tally.add_tool_call(view.tool_name or "tool", failed)
            if self._loops.counts_calls:
                # The tool spans under it (an MCP client's and server's) are the same call: not counted.
                memory = memory or LoopMemory()
                memory.forget_tool_calls()
                self._loops.tool_call(memory, attrs, tool_name=view.tool_name or "tool",
                                      span_id=f"{span_id:016x}", report=False)
        elif below is not None:
            tally = below
        else:
            return None
        stood_for = self._provisional.pop(span_id, None) if self._provisional else None
        if stood_for is not None:  # not the agent span its spans were waiting for: look higher
            self._ended.append(stood_for.run_id)
            self._dirty.pop(stood_for.run_id, None)
        if not parent_id:
            return None
        into = pending.get(parent_id)
        if into is not None:
            into.merge(tally)
        else:
            if len(pending) >= self._max_pending:
                self._forget_pending(next(iter(pending)))
            pending[parent_id] = into = tally
        above = None
        if memory is not None:
            above = self._loop_pending.get(parent_id)
            if above is not None:
                self._loops.merge(above, memory)
            else:
                if len(self._loop_pending) >= self._max_pending:
                    del self._loop_pending[next(iter(self._loop_pending))]
                self._loop_pending[parent_id] = above = memory
        if self._receiving:
            self._show_provisional(span, parent_id, into, view.agent_name or (
                stood_for.agent_name if stood_for is not None else None))
            if above is not None:
                run = self._provisional.get(parent_id)
                if run is not None:
                    return self._loop_events(run, self._loops.due(above), span.end_time)
        return None

    def _show_provisional(
        self, span: ReadableSpan, parent_id: int, tally: Tally, agent_name: str | None
    ) -> None:
        """Received spans of a run whose agent span has not arrived (an exporter sends a span when it
        ends): when they name their agent (``gen_ai.agent.name`` on a model or tool call, as GenAI
        semconv stacks write it), the run shows live, under the id of the span they wait at, which
        is the agent span's when they are its children; it is given up, and shown under the next
        span up, when that span arrives and is not the agent's."""
        run = self._provisional.get(parent_id)
        if run is None:
            if not agent_name:
                return
            ctx = span_info(span)
            run = Run(f"{parent_id:016x}", ctx.trace_id, agent_name, None, ctx.service_name, None, None, None)
            if len(self._provisional) >= self._max_open_runs:
                self._provisional.pop(next(iter(self._provisional)))
            self._provisional[parent_id] = run
        run.tally = tally
        self._dirty[run.run_id] = run

    def _forget_pending(self, parent_id: int) -> None:
        del self._pending[parent_id]
        self._loop_pending.pop(parent_id, None)
        run = self._provisional.pop(parent_id, None)
        if run is not None:
            self._ended.append(run.run_id)
            self._dirty.pop(run.run_id, None)

    # ------------------------------------------------------------------ loops
    def _loop_memory(self, run: Run) -> LoopMemory:
        memory = self._loop_runs.get(run.run_id)
        if memory is None:
            memories = self._loop_runs
            if len(memories) >= self._max_open_runs:  # runs forgotten unended: their memories too
                del memories[next(iter(memories))]
            memories[run.run_id] = memory = LoopMemory()
        return memory

    def _check_self_invocation(self, run: Run, time_ns: int | None) -> list[DashboardEvent] | None:
        """At a nested run's start: whether its agent runs inside its own runs too deep."""
        chain: list[tuple[str, str]] = [(run.agent_name, run.run_id)]
        runs: dict[str, Run] = {}
        outer = run
        while outer.parent_run_id and len(chain) < _MAX_ANCESTORS:
            parent = self._run_by_id(outer.parent_run_id)
            if parent is None:
                break
            runs[parent.run_id] = outer = parent
            chain.append((parent.agent_name, parent.run_id))
        same = [run_id for name, run_id in chain[1:] if name == run.agent_name]
        if not same:
            return None
        outermost = runs[same[-1]]
        finding = self._loops.self_invocation(self._loop_memory(outermost), chain)
        return self._loop_events(outermost, [finding], time_ns) if finding is not None else None

    def _run_by_id(self, run_id: str) -> Run | None:
        try:
            return self._runs.get(int(run_id, 16))
        except ValueError:
            return None

    def _loop_events(self, run: Run, found: list[LoopFinding] | None,
                     time_ns: int | None) -> list[DashboardEvent] | None:
        """The ``LoopSuspected`` events of a run's findings (``docs/guardrails.md``)."""
        if not found:
            return None
        timestamp = format_timestamp(time_ns if isinstance(time_ns, int) and time_ns > 0 else None)
        events = []
        for finding in found:
            data = {
                "source": run.agent_name,
                "error_type": LOOP_SUSPECTED,
                "error_message": finding.message(run.agent_name),
                "agent_name": run.agent_name,
                "agent_id": run.agent_id,
                "run_id": run.run_id,
                "service_name": run.service_name,
                "loop": finding.loop_data(),
            }
            last_span = finding.span_ids[-1] if finding.span_ids else None
            events.append(DashboardEvent(new_event_id(), _ERROR, timestamp, data, Severity.WARNING,
                                         run.trace_id, last_span))
        return events

    # ------------------------------------------------------------------ helpers
    def _ancestors(self, parent_id: int) -> frozenset[int]:
        parents = self._parents
        chain: list[int] = []
        while parent_id and len(chain) < _MAX_ANCESTORS:
            chain.append(parent_id)
            parent_id = parents.get(parent_id, 0)
        return frozenset(chain)

    def _forget_oldest_span(self) -> None:
        oldest = next(iter(self._parents))
        del self._parents[oldest]
        self._nodes.pop(oldest, None)


def _place(data: dict[str, Any], run: Run, span_parent: str | None) -> None:
    """A run event's place among runs: its parent and root run; its parent span the parent run's."""
    data["parent_run_id"] = run.parent_run_id
    data["root_run_id"] = run.root_run_id
    data["parent_span_id"] = run.parent_run_id or span_parent


def _last_exception(span: ReadableSpan) -> Any:
    last = None
    for span_event in sdk_span.events(span):
        if getattr(span_event, "name", None) == sc.EXCEPTION_EVENT and (
            last is None or event_time(span_event) >= event_time(last)
        ):
            last = span_event
    return event_attributes(last) if last is not None else None
