"""The OpenTelemetry span processor that feeds the dashboard.

Usage::

    from opentelemetry.sdk.trace import TracerProvider
    from otel_dashboard.pipeline.processor import DashboardSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(DashboardSpanProcessor())                     # in process
    provider.add_span_processor(DashboardSpanProcessor(endpoint="http://dashboard:8000"))  # remote

Every started and ended span is handed, without blocking, to one background worker thread, which
maps it to dashboard events (:mod:`otel_dashboard.model.mapping`) and publishes them to the
:class:`~otel_dashboard.state.dashboard.DashboardState`, and keeps a record of the span in the state's trace
store (``GET /api/traces/{trace_id}``: running at start, finished at end). The span hooks never
raise and never wait: when the queue is full the span is dropped and counted
(:attr:`DashboardSpanProcessor.dropped_events`, also reported to the state so ``/health`` shows it).
What the processor needs of its state is :class:`ProcessorState`.

This module is longer than ~400 lines for a reason: the span hooks, the queue and the worker that
drains it share one set of counters and one shutdown and flush protocol (the SDK's BatchProcessor
keeps them in one class too); split, every part would reach into the others' private state.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from opentelemetry import context as context_api
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from instrumentation._suppression import suppressing_context
from instrumentation.guard import GuardHandle, StopRequest, register_step_guard
from otel_dashboard.model.budget_tracker import BudgetCrossing, BudgetTracker
from otel_dashboard.model.events import DashboardEvent, EventType, QualityThresholds
from otel_dashboard.model.guardrails import (
    Budget,
    Guardrails,
    LoopThresholds,
    as_guardrails,
)
from otel_dashboard.model.prices import default_price_book
from otel_dashboard.model.runs import CostSource
from otel_dashboard.model.span_mapper import SpanMapper
from otel_dashboard.model.span_records import SpanRecord, compact_span_record, span_record_from_span
from otel_dashboard.pipeline.remote import RemoteEventSender
from otel_dashboard.state.dashboard import get_dashboard

__all__ = ["DashboardSpanProcessor", "ProcessorState", "SpanRecordStore"]

_T = TypeVar("_T")

logger = logging.getLogger(__name__)

_DEFAULT_MAX_QUEUE_SIZE = 8192
_DEFAULT_TIMEOUT_MILLIS = 30_000
_REMOTE_MAX_BATCH_SIZE = 512  # events per request; never more than the queue holds
_ERROR_LOG_INTERVAL_SECONDS = 10.0
_LINGER_SECONDS = 0.0005
# How often the open runs' changed states go out (run_progress): the issue's bound is 1 s from a
# child span's end to every browser; the broadcaster adds at most a loop turn.
_PROGRESS_INTERVAL_SECONDS = 0.25
# Queue items the worker maps before it delivers their events (one state lock for all of them):
# bounds how long other publishers wait for that lock, and how late drops are reported.
_BATCH_MAX_ITEMS = 512

# Queue items are (kind, payload) tuples; kind is one of these.
_START = 0
_END = 1
_FLUSH = 2  # payload: a threading.Event the worker sets when it reaches the item
_STOP = 3  # payload: None; the worker exits

_BUDGET_TICK_SECONDS = 1.0  # remote budgets: how often the clock is checked (duration budgets)
_MAX_LOCAL_FLAGS = 10_000  # remote budgets: runs remembered as over a run budget
_COMPLETED = EventType.AGENT_EXECUTION_COMPLETED


class SpanRecordStore(Protocol):
    """Where :class:`DashboardSpanProcessor` keeps the spans' records for the trace view
    (:class:`~otel_dashboard.state.traces.TraceStore` is one)."""

    def add_span_records(self, records: list[SpanRecord], *, after_start: bool = False) -> int:
        """Keeps compact records: a finished one replaces the span's running one. With
        ``after_start``, every finished record follows a running one of the same span offered
        earlier. Called on the worker thread, once per batch; must not block for long."""
        ...


class ProcessorState(Protocol):
    """What :class:`DashboardSpanProcessor` calls on its state
    (:class:`~otel_dashboard.state.dashboard.DashboardState` is one).

    Only :meth:`publish` is required: each other member is used when the object has it (a state
    without ``publish_many`` gets the events one by one, one without ``traces`` keeps no span
    records). Every method is called on the processor's worker thread, never on the application's.
    """

    @property
    def quality_thresholds(self) -> QualityThresholds:
        """Turn quality scores into severities unless the processor was given its own."""
        ...

    @property
    def traces(self) -> SpanRecordStore:
        """The trace view's store of span records."""
        ...

    def publish(self, event: DashboardEvent) -> object:
        """Accepts one event; may raise (the processor logs it and carries on)."""
        ...

    def publish_many(self, events: list[DashboardEvent]) -> object:
        """Accepts a batch's events in order; raises only after trying every event."""
        ...

    def count_dropped(self, n: int = 1) -> None:
        """Counts ``n`` spans the processor dropped (its queue was full)."""
        ...

    def update_runs(self, runs: list[dict[str, Any]]) -> None:
        """Takes the live states of the open runs a batch changed (``run_progress``), after the
        batch's events; must not raise."""
        ...


class _RateLimitedLog:
    """Logs the first failure with its traceback, then at most one line per interval."""

    def __init__(self, interval_seconds: float) -> None:
        self._interval = interval_seconds
        self._next_log = 0.0
        self._suppressed = 0

    def exception(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now < self._next_log:
            self._suppressed += 1
            return
        self._next_log = now + self._interval
        suppressed, self._suppressed = self._suppressed, 0
        if suppressed:
            message += " (%d similar failures not logged)"
            args = (*args, suppressed)
        logger.exception(message, *args)


class DashboardSpanProcessor(SpanProcessor):
    """Maps spans to dashboard events and publishes them, off the application's threads.

    ``on_start`` and ``on_end`` are called synchronously by the SDK in the thread that starts or ends
    the span. They never block and never raise: they append the span to an in-memory queue and, if
    the worker is idle, wake it. A full queue drops the span and counts it. Unsampled spans are
    skipped. One daemon worker thread, started with the processor, takes the queued spans in
    batches (up to 512 starts and ends), maps each with
    :func:`~otel_dashboard.model.mapping.map_span_start` /
    :func:`~otel_dashboard.model.mapping.map_span_end` and
    hands the batch's events, in order, to the state in one call (``state.publish_many``: one lock
    for the batch), with instrumentation suppressed so that the dashboard's own work is never traced.
    The worker also keeps a compact record of every span in the state's trace store for the trace
    view (``state.traces.add_span_records``, after the batch's events): a running one for a span
    started in the batch, a finished one for a span ended in it (only that one when both happened
    in the same batch). A span whose mapping fails is logged (rate-limited) and skipped, as is an
    event whose publishing fails; the worker carries on.

    The start of a span is mapped when the worker reaches it, which may be after more attributes
    were set (under load, even after the span ended); events of one span are always published in
    order, started before completed.

    With ``endpoint`` set, events (started ones included) are not published in process but shipped
    in batches to that dashboard server's ``POST /api/events`` by a
    :class:`~otel_dashboard.pipeline.remote.RemoteEventSender` (standard library HTTP, its own thread, bounded
    queue, retries with backoff while the server is unreachable), together with the span records, so
    the server's trace view shows remote spans too; :meth:`force_flush` and :meth:`shutdown` then
    also wait for delivery, within their timeouts.

    Args:
        state: where events go (see :class:`ProcessorState`); the process's
            :func:`~otel_dashboard.state.dashboard.get_dashboard` when ``None``, resolved once here at
            construction (so a later ``reset_dashboard()`` does not redirect an existing processor).
        max_queue_size: spans waiting for the worker at most; more are dropped and counted. The bound
            may be exceeded by at most one span per concurrently producing thread.
        quality_thresholds: turn quality scores into severities; the state's own
            ``quality_thresholds`` when ``None``.
        endpoint: base URL of a dashboard server (``http://host:8000``) to ship events to instead
            of the in-process state; cannot be combined with ``state``.
        headers: extra HTTP headers for ``endpoint`` (``{"Authorization": "Bearer ..."}``).
        schedule_delay_millis: with ``endpoint``, the longest an event waits for its batch while
            the sender is busy (idle senders send at once).
        token: the server's token (``serve --token``): sent as ``Authorization: Bearer <token>``
            with every batch (it replaces an ``Authorization`` in ``headers``); only with ``endpoint``.
        prices: what prices model calls for the runs' cost
            (:class:`~otel_dashboard.model.prices.PriceBook`, e.g. ``load_price_file(path)`` for
            self-hosted or negotiated prices); the built-in book (genai-prices' bundled data, never
            fetched) when ``None``.
        loops: when a run is suspected of looping (``LoopSuspected``, ``docs/guardrails.md``); when
            ``None``, the state's ``guardrails.loops`` in process, the defaults with ``endpoint``.
            ``LoopThresholds(0, 0, 0)`` turns loop detection off.
        budgets: budgets on the runs (``docs/guardrails.md``, "Budgets"): a
            :class:`~otel_dashboard.model.guardrails.Guardrails` or a list of
            :class:`~otel_dashboard.model.guardrails.Budget`. In process they become the state's
            (``state.set_guardrails``); with ``endpoint`` the processor keeps its own tracker, fed by
            its runs' progress and completions on the worker, and ships each ``BudgetExceeded``
            with its other events (a run over a run budget is also remembered: :meth:`flagged`).
        stop_on_budget: stop every flagged run whose spans this processor sees, at its next
            decorated step (:class:`~instrumentation.guard.BudgetExceeded` in the agent's code), as
            if each agent had ``@agent(stop_on_budget=True)``; False: only the runs of such agents.
            Either way the processor registers the check (:mod:`instrumentation.guard`) until
            :meth:`shutdown`: in process it asks the state's flags (``state.run_flag``); remote,
            the flags the server's answers named (``"stop_runs"``) and the processor's own run
            budget crossings (``docs/guardrails.md``, "Stopping").

    Raises:
        ValueError: ``max_queue_size`` not a positive integer, ``state`` without ``publish``,
            ``quality_thresholds`` not a :class:`~otel_dashboard.model.events.QualityThresholds`, both
            ``state`` and ``endpoint`` given, a ``token`` without ``endpoint``, an invalid
            ``endpoint``/``headers``/``token``, or ``budgets`` for a state without ``set_guardrails``.
        GuardrailsConfigError: a bad budget (a ValueError naming the setting).
    """

    def __init__(
        self,
        *,
        state: ProcessorState | None = None,
        max_queue_size: int = _DEFAULT_MAX_QUEUE_SIZE,
        quality_thresholds: QualityThresholds | None = None,
        endpoint: str | None = None,
        headers: Mapping[str, str] | None = None,
        schedule_delay_millis: int = 50,
        token: str | None = None,
        prices: CostSource | None = None,
        loops: LoopThresholds | None = None,
        budgets: Guardrails | Sequence[Budget] | None = None,
        stop_on_budget: bool = False,
    ) -> None:
        if not isinstance(stop_on_budget, bool):
            raise ValueError(f"stop_on_budget must be True or False, got {stop_on_budget!r}")
        if token is not None:
            from otel_dashboard.model.auth import bearer_headers

            if endpoint is None:
                raise ValueError("token is for a remote server: pass endpoint= too")
            headers = bearer_headers(headers, token)
        if not isinstance(max_queue_size, int) or isinstance(max_queue_size, bool) or max_queue_size < 1:
            raise ValueError(f"max_queue_size must be a positive integer, got {max_queue_size!r}")
        if quality_thresholds is not None and not isinstance(quality_thresholds, QualityThresholds):
            raise ValueError(
                f"quality_thresholds must be a QualityThresholds or None, got {quality_thresholds!r}"
            )
        checked_budgets = as_guardrails(budgets) if budgets is not None else None  # raises before any thread
        self._sender: RemoteEventSender | None = None
        self._state: ProcessorState | None = None
        if endpoint is not None:
            if state is not None:
                raise ValueError("state and endpoint cannot be combined: events go to one of them")
            self._sender = RemoteEventSender(
                endpoint, headers=headers, max_queue_size=max_queue_size,
                max_batch_size=min(_REMOTE_MAX_BATCH_SIZE, max_queue_size),
                schedule_delay_millis=schedule_delay_millis,
            )
        elif state is None:
            state = get_dashboard()
        elif not callable(getattr(state, "publish", None)):
            raise ValueError(f"state must be a DashboardState or None, got {state!r}")
        self._state = state
        # Budgets: in process, the state's; remote, a tracker of this processor's own (the worker's
        # alone) and the runs it found over a run budget (read by any thread: flagged()).
        self._budget_tracker: BudgetTracker | None = None
        self._local_flags: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._last_budget_tick = 0.0
        if checked_budgets is not None:
            if self._sender is not None:
                if checked_budgets.budgets:
                    self._budget_tracker = BudgetTracker(checked_budgets.budgets)
            else:
                set_guardrails = getattr(state, "set_guardrails", None)
                if not callable(set_guardrails):
                    raise ValueError(f"budgets need a DashboardState (set_guardrails), got {state!r}")
                set_guardrails(budgets)  # as given: a list of budgets keeps the state's loop thresholds
        self._thresholds: QualityThresholds = (
            quality_thresholds or getattr(state, "quality_thresholds", None) or QualityThresholds()
        )
        self._max_queue_size = max_queue_size
        self._prices = prices
        if loops is None:
            guardrails = getattr(state, "guardrails", None)
            loops = getattr(guardrails, "loops", None) if self._sender is None else None
        self._loops: LoopThresholds = loops if loops is not None else LoopThresholds()
        # Where the events mapped from one batch of spans go, in order (called on the worker): the
        # state's bus, or the remote sender's queue.
        self._sink: Callable[[list[DashboardEvent]], object]
        if self._sender is not None:
            self._sink = _each(self._sender.submit)
        else:
            publish_many = getattr(state, "publish_many", None)
            self._sink = publish_many if callable(publish_many) else _each(state.publish)  # type: ignore[union-attr]
        # Where the live states of open runs go after each batch's events (run_progress).
        self._runs_sink: Callable[[list[dict[str, Any]]], object] | None
        if self._sender is not None:
            self._runs_sink = self._sender.submit_runs
        else:
            update_runs = getattr(state, "update_runs", None)
            self._runs_sink = update_runs if callable(update_runs) else None
        # The spans' records for the trace view: in process, compact records in the state's trace
        # store, at start and end; remote, a JSON record shipped with the events, at end only (the
        # server derives running agent and synthesis spans from their started events, and a record
        # per start would double the cost). _make_record runs on the worker right after a span is
        # mapped, while its fields are still in the CPU's caches; _deliver_records after the
        # batch's events.
        self._make_record: Callable[..., Any] | None = None
        self._deliver_records: Callable[[list[Any], list[Any]], None] | None = None
        self._record_starts = False
        self._traces: SpanRecordStore | None = None
        if self._sender is not None:
            self._make_record = span_record_from_span
            self._deliver_records = self._ship_records
        else:
            traces = getattr(state, "traces", None)
            if callable(getattr(traces, "add_span_records", None)):
                self._traces = traces
                self._make_record = compact_span_record
                self._deliver_records = self._keep_records
                self._record_starts = True
        self._errors = _RateLimitedLog(_ERROR_LOG_INTERVAL_SECONDS)
        # Stopping a flagged run (instrumentation/guard.py): asked on the agents' threads before
        # each decorated step, so it only reads dicts.
        self._stop_on_budget = stop_on_budget
        run_flag = getattr(state, "run_flag", None)
        self._run_flag: Callable[[str], Any] | None = run_flag if callable(run_flag) else None
        self._guard_handle: GuardHandle | None = register_step_guard(self._stop_request)
        self._shutdown = False
        self._shutdown_lock = threading.Lock()
        self._post_shutdown_logged = False
        self._start_worker()
        _after_fork_processors.add(self)

    def _start_worker(self) -> None:
        # The deque is unbounded on purpose: append/popleft are atomic and lock-free, and the size
        # check in _enqueue bounds it. Only the drop path takes a lock.
        self._queue: deque[tuple[int, Any]] = deque()
        self._wakeup = threading.Event()
        # True while the worker waits (or is about to) for _wakeup: a producer then sets it. A plain
        # attribute, because producers read it on every span and Event.is_set() is a Python call.
        self._idle = False
        self._drop_lock = threading.Lock()
        self._dropped = 0
        self._reported_dropped = 0
        self._next_drop_log = 0.0
        self._processed = 0
        # The runs and failures seen so far: the worker's alone (a forked child starts afresh).
        self._mapper = SpanMapper(thresholds=self._thresholds, prices=self._prices or default_price_book(),
                                  loops=self._loops)
        self._last_progress = 0.0
        self._worker = threading.Thread(
            target=self._run, name="otel-dashboard-span-processor", daemon=True
        )
        self._worker.start()

    # ------------------------------------------------------------------ counters
    @property
    def dropped_events(self) -> int:
        """Spans (starts and ends) dropped because the queue was full, plus, with ``endpoint``,
        events the remote sender dropped (its queue full while the server was unreachable).

        Exact at any moment. The worker passes the same numbers on to ``state.count_dropped`` (so
        ``/health`` shows them) as it goes; :meth:`force_flush` waits for that too. Spans offered
        after :meth:`shutdown` are dropped silently and not counted here.
        """
        sender = self._sender
        return self._dropped + (sender.dropped_events if sender is not None else 0)

    @property
    def processed(self) -> int:
        """Queued spans (starts and ends) the worker has mapped and published so far."""
        return self._processed

    def flagged(self, run_id: str) -> dict[str, str] | None:
        """``{"reason", "kind": "budget"}`` when this processor's own budgets (``budgets=`` with
        ``endpoint``) found the run ``run_id`` over a run budget, else None. Thread-safe (a copy)."""
        flag = self._local_flags.get(run_id)
        return dict(flag) if flag is not None else None

    # ------------------------------------------------------------------ SpanProcessor hooks
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Queue the started span for the worker; never blocks or raises (called synchronously)."""
        try:
            if not span.context.trace_flags.sampled:
                return
            self._enqueue((_START, span))
        except Exception:
            self._errors.exception("dashboard processor: on_start failed")

    def on_end(self, span: ReadableSpan) -> None:
        """Queue the ended span for the worker; never blocks or raises (called synchronously)."""
        try:
            if not span.context.trace_flags.sampled:
                return
            self._enqueue((_END, span))
        except Exception:
            self._errors.exception("dashboard processor: on_end failed")

    def _enqueue(self, item: tuple[int, Any]) -> None:
        if self._shutdown:
            if not self._post_shutdown_logged:
                self._post_shutdown_logged = True
                logger.warning("dashboard processor already shut down; dropping spans silently")
            return
        queue = self._queue
        if len(queue) >= self._max_queue_size:
            self._drop()
            return
        queue.append(item)
        # One attribute read per span while the worker is busy; the worker marks itself idle before
        # it re-checks the queue and waits, so a span appended after that re-check sets the event.
        if self._idle:
            self._idle = False
            self._wakeup.set()

    def _drop(self) -> None:
        # Only counted here. Telling the state (whose lock a slow subscriber may hold) and logging
        # are left to the worker, so that a producing thread never waits on either.
        with self._drop_lock:
            self._dropped += 1

    def _report_drops(self) -> None:
        """Worker side: pass drops counted since the last report on to the state, and log them."""
        dropped = self._dropped
        delta = dropped - self._reported_dropped
        if not delta:
            return
        self._reported_dropped = dropped
        try:
            if self._state is not None:
                self._state.count_dropped(delta)
        except Exception:
            self._errors.exception("dashboard processor: count_dropped failed")
        now = time.monotonic()
        if now >= self._next_drop_log:
            self._next_drop_log = now + _ERROR_LOG_INTERVAL_SECONDS
            logger.warning(
                "dashboard processor queue full (max_queue_size=%d): %d spans dropped so far",
                self._max_queue_size, dropped,
            )

    # ------------------------------------------------------------------ flush and shutdown
    def force_flush(self, timeout_millis: int = _DEFAULT_TIMEOUT_MILLIS) -> bool:
        """Wait until every span queued before this call has been mapped and published.

        Args:
            timeout_millis: how long to wait at most.

        Returns:
            True when done; False on timeout, or after :meth:`shutdown`.
        """
        if self._shutdown:
            return False
        deadline = time.monotonic() + max(timeout_millis, 0) / 1000
        if not self._flush(timeout_millis):
            return False
        if self._sender is not None:
            return self._sender.force_flush(_remaining_millis(deadline))
        return True

    def _flush(self, timeout_millis: float | None) -> bool:
        if timeout_millis is None:
            timeout_millis = _DEFAULT_TIMEOUT_MILLIS
        if threading.current_thread() is self._worker:
            return False  # called from the sink itself: waiting for ourselves cannot succeed
        done = threading.Event()
        # The marker bypasses the size check: a flush must not be refused because the queue is full.
        self._queue.append((_FLUSH, done))
        self._wakeup.set()
        return done.wait(max(timeout_millis, 0) / 1000)

    def shutdown(self, timeout_millis: int = _DEFAULT_TIMEOUT_MILLIS) -> None:
        """Flush what is queued, stop the worker and join it, all within ``timeout_millis``.

        Idempotent. Afterwards the hooks drop spans silently (not counted in :attr:`dropped_events`).
        If the sink is stuck, the worker (a daemon thread) is left behind after the timeout.
        """
        with self._shutdown_lock:
            if self._shutdown:
                return
            self._shutdown = True
        if timeout_millis is None:
            timeout_millis = _DEFAULT_TIMEOUT_MILLIS
        deadline = time.monotonic() + max(timeout_millis, 0) / 1000
        if not self._flush(timeout_millis):
            logger.warning("dashboard processor: shutdown timed out flushing %d spans", len(self._queue))
        self._queue.append((_STOP, None))
        self._wakeup.set()
        if threading.current_thread() is not self._worker:
            self._worker.join(max(deadline - time.monotonic(), 0))
        if self._sender is not None:
            self._sender.shutdown(_remaining_millis(deadline))
        if self._guard_handle is not None:
            self._guard_handle.unregister()
        _after_fork_processors.discard(self)

    # ------------------------------------------------------------------ stopping flagged runs
    def _stop_request(self, run_id: str) -> StopRequest | None:
        """The step guard: the flag of ``run_id`` (in process: the state's; remote: the server's
        answers, then the processor's own budget crossings), None when not flagged."""
        flag: Any = None
        sender = self._sender
        if sender is not None:
            flag = sender.stop_request(run_id)
            if flag is None:
                local = getattr(self, "_local_flags", None)  # the remote budget tracker's crossings
                if local:
                    flag = local.get(run_id)
        elif self._run_flag is not None:
            flag = self._run_flag(run_id)
        if not flag:
            return None
        return StopRequest(str(flag.get("reason") or "run flagged to stop"), str(flag.get("kind") or "user"),
                           self._stop_on_budget)

    # ------------------------------------------------------------------ the worker
    def _run(self) -> None:
        # Nothing this thread does (mapping, publishing, a future HTTP sink) may create spans.
        context_api.attach(suppressing_context())
        queue = self._queue
        wakeup = self._wakeup
        while True:
            if not queue:
                self._report_drops()
                # Linger a moment before going idle: during a burst, more spans arrive within it and
                # are taken in one go, while producers see the wake-up still set and skip set() (a
                # futex wake and a thread switch per span otherwise). Adds at most this to latency.
                time.sleep(_LINGER_SECONDS)
                if queue:
                    continue
                # Idle: clear, then re-check, then wait; a producer that appends after the re-check
                # sees _idle and sets the event, so no wake-up is lost.
                wakeup.clear()
                self._idle = True
                if not queue:
                    # Live run states wait for their turn (_send_progress); no longer than that.
                    due = self._progress_due()
                    if due is None:
                        wakeup.wait()
                    elif due > 0:
                        wakeup.wait(due)
                self._idle = False
                self._send_progress()
                continue
            marker = self._process_batch()
            if marker is not None:
                kind, payload = marker
                if kind == _FLUSH:
                    self._report_drops()
                    self._send_progress(force=True)
                    payload.set()
                else:  # _STOP
                    return

    def _process_batch(self) -> tuple[int, Any] | None:
        """Map and deliver the spans queued now (at most ``_BATCH_MAX_ITEMS``), up to a flush or stop
        marker, which is returned once everything before it is delivered."""
        popleft = self._queue.popleft
        mapper = self._mapper
        map_start = mapper.start
        map_end = mapper.end
        record_starts = self._record_starts
        make_record = self._make_record
        events: list[DashboardEvent] = []
        # Spans started in this batch and not ended in it, by their context (the same object at a
        # span's start and end): a span started and ended within the batch gets one record, the
        # finished one. Records of ended spans go in two lists: those whose start got no record here
        # (counted as new spans of their trace), and those whose start did, in an earlier batch.
        started: dict[int, ReadableSpan] = {}
        new_records: list[Any] = []
        later_records: list[Any] = []
        marker = None
        taken = 0
        while taken < _BATCH_MAX_ITEMS:
            try:
                kind, span = popleft()
            except IndexError:
                break
            if kind > _END:
                marker = (kind, span)
                break
            taken += 1
            try:
                mapped = (map_end if kind else map_start)(span)
            except Exception:
                self._errors.exception("dashboard processor: mapping span %r failed", _span_name(span))
                continue
            if mapped:
                events += mapped
            if kind == _START:
                if record_starts:
                    started[id(span.context)] = span
            elif make_record is not None:
                try:
                    record = make_record(span, ended=True)
                except ValueError:
                    continue  # no valid ids: nothing the trace view could show
                except Exception:
                    self._errors.exception("dashboard processor: recording span %r failed", _span_name(span))
                    continue
                if started.pop(id(span.context), None) is None and record_starts:
                    later_records.append(record)
                else:
                    new_records.append(record)
        for span in started.values():  # still running at the end of the batch
            try:
                new_records.append(make_record(span, ended=False))  # type: ignore[misc]
            except ValueError:
                continue
            except Exception:
                self._errors.exception("dashboard processor: recording span %r failed", _span_name(span))
        if self._budget_tracker is not None and events:
            events += self._budget_events(completions=events)
        if events:
            try:
                self._sink(events)
            except Exception:
                self._errors.exception("dashboard processor: publishing %d events failed", len(events))
        self._send_progress()
        # After the events: a remote batch cut between the two then still lets the shipped span
        # record (which arrives last) win over the record the server derives from a run event.
        if (new_records or later_records) and self._deliver_records is not None:
            try:
                self._deliver_records(new_records, later_records)
            except Exception:
                self._errors.exception(
                    "dashboard processor: recording %d spans failed", len(new_records) + len(later_records)
                )
        self._processed += taken
        if self._dropped != self._reported_dropped:
            self._report_drops()
        return marker

    def _progress_due(self) -> float | None:
        """Seconds until the open runs' changed states (or, with remote budgets, the budgets' clock
        check) are due, or None when nothing is."""
        due = self._states_due()
        tracker = self._budget_tracker
        if tracker is not None and tracker.clock_work and tracker.open_runs:
            tick_due = self._last_budget_tick + _BUDGET_TICK_SECONDS - time.monotonic()
            due = tick_due if due is None else min(due, tick_due)
        return due

    def _states_due(self) -> float | None:
        if self._runs_sink is None or not self._mapper.has_progress:
            return None
        return self._last_progress + _PROGRESS_INTERVAL_SECONDS - time.monotonic()

    def _budget_events(self, *, completions: list[DashboardEvent] | None = None,
                       runs: list[dict[str, Any]] | None = None) -> list[DashboardEvent]:
        """Remote budgets (worker): the ``BudgetExceeded`` events of a batch's completions, of the
        runs' live states, or of the clock (neither given); never raises."""
        tracker = self._budget_tracker
        if tracker is None:
            return []
        try:
            now = time.time()
            crossings: list[BudgetCrossing] = []
            if completions is not None:
                for event in completions:
                    if event.event_type is _COMPLETED:
                        crossings += tracker.complete(event.data, timestamp=event.timestamp,
                                                      trace_id=event.trace_id, now=now)
            elif runs is not None:
                crossings = tracker.observe(runs, now)
            else:
                self._last_budget_tick = time.monotonic()
                crossings = tracker.tick(now)
            events = []
            for crossing in crossings:
                event = crossing.event()
                events.append(event)
                if crossing.budget.scope == "run":
                    self._local_flags[crossing.run_id] = {"reason": event.data["error_message"],
                                                          "kind": "budget"}
                    while len(self._local_flags) > _MAX_LOCAL_FLAGS:
                        self._local_flags.popitem(last=False)
            return events
        except Exception:
            self._errors.exception("dashboard processor: checking budgets failed")
            return []

    def _send_progress(self, *, force: bool = False) -> None:
        """The changed states of open runs to the state (or the remote sender), at most once per
        ``_PROGRESS_INTERVAL_SECONDS``: a run that starts and ends within it costs no state at all,
        and each change still reaches the browsers well within 1 s."""
        tracker = self._budget_tracker
        if (tracker is not None and tracker.clock_work
                and time.monotonic() - self._last_budget_tick >= _BUDGET_TICK_SECONDS):
            self._deliver_budget_events(self._budget_events())
        due = self._states_due()
        if due is None or (due > 0 and not force):
            return
        self._last_progress = time.monotonic()
        runs = self._mapper.take_progress()
        if runs and tracker is not None:
            self._deliver_budget_events(self._budget_events(runs=runs))
        if runs:
            try:
                self._runs_sink(runs)  # type: ignore[misc]
            except Exception:
                self._errors.exception("dashboard processor: publishing %d run states failed", len(runs))

    def _deliver_budget_events(self, events: list[DashboardEvent]) -> None:
        if events:
            try:
                self._sink(events)
            except Exception:
                self._errors.exception("dashboard processor: publishing %d budget events failed", len(events))

    def _keep_records(self, new_records: list[SpanRecord], later_records: list[SpanRecord]) -> None:
        """In process: a batch's compact records into the state's trace store. Separate calls, so that
        a span over its trace's cap is counted once: at its first record, not again at a later one."""
        traces = self._traces
        if traces is None:
            return
        if new_records:
            traces.add_span_records(new_records)
        if later_records:
            traces.add_span_records(later_records, after_start=True)

    def _ship_records(self, new_records: list[dict[str, Any]], later_records: list[dict[str, Any]]) -> None:
        """Remote: a batch's JSON records (of ended spans only) to the sender, after its events."""
        submit_span = self._sender.submit_span  # type: ignore[union-attr]
        for record in new_records:
            submit_span(record)
        for record in later_records:
            submit_span(record)


def _each(submit: Callable[[_T], object]) -> Callable[[list[_T]], None]:
    """A callable for a list of items from one that takes them one at a time; each is tried, and
    the first exception is raised after the last."""

    def submit_each(items: list[_T]) -> None:
        failed: Exception | None = None
        for item in items:
            try:
                submit(item)
            except Exception as exc:
                failed = failed or exc
        if failed is not None:
            raise failed

    return submit_each


def _remaining_millis(deadline: float) -> int:
    return max(int((deadline - time.monotonic()) * 1000), 0)


def _span_name(span: Any) -> str:
    try:
        return str(span.name)
    except Exception:
        return "?"


# A forked child inherits the queue but not the worker thread: give every live processor a fresh
# queue and worker there (the parent's pending spans are the parent's business).
_after_fork_processors: weakref.WeakSet[DashboardSpanProcessor] = weakref.WeakSet()


def _restart_workers_after_fork() -> None:
    for processor in list(_after_fork_processors):
        processor._shutdown_lock = threading.Lock()
        if not processor._shutdown:
            processor._start_worker()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restart_workers_after_fork)
