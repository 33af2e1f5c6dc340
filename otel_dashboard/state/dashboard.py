"""The dashboard's state and event bus.

:class:`DashboardState` accepts events from any thread, numbers them (``seq``), keeps them in its
store, derives the metrics, the running agents and the opportunities from them, and hands each
accepted event to its subscribers (the server). :func:`get_dashboard` returns the one instance of
the process.

This module is the bus itself; the rest of the state is in its own modules, each a part of
:class:`DashboardState`: :mod:`~otel_dashboard.state.derived` (what the events add up to),
:mod:`~otel_dashboard.state.history` (snapshots, stats and history reads, plain and ``async``),
:mod:`~otel_dashboard.state.cluster` (the sequencer of a cluster), :mod:`~otel_dashboard.state.rebuild`
(starting from a store that already holds events), :mod:`~otel_dashboard.state.direct_api` (the
original design's ``agent_started``, ...), :mod:`~otel_dashboard.state.signal_intake` (what OTLP
metrics and logs add) and :mod:`~otel_dashboard.state.singleton`. Their public
names are importable from here too.

Over 400 lines because every public read and write of the state takes the one lock here (so that an
event, its run's progress and the metrics it moves are seen together); the work behind each is in the
modules above.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from otel_dashboard.model.events import (
    DashboardEvent,
    EventType,
    QualityThresholds,
    format_timestamp,
)
from otel_dashboard.model.guardrails import Budget, Guardrails
from otel_dashboard.model.limits import (
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_SNAPSHOT_BYTES,
    DEFAULT_MAX_STRING_BYTES,
    Limits,
)
from otel_dashboard.state.agent_graph import AgentGraph
from otel_dashboard.state.agent_stats import (
    DEFAULT_BUCKETS,
    DEFAULT_WINDOW_SECONDS,
    AgentStats,
    agent_key,
)
from otel_dashboard.state.cluster import (
    ClusterSync,
    Sequencer,
    first_sight_agent_id,
    first_sight_registration,
)
from otel_dashboard.state.derived import DerivedState
from otel_dashboard.state.direct_api import DirectApi
from otel_dashboard.state.guardrails import StateBudgets
from otel_dashboard.state.history import HistoryReads
from otel_dashboard.state.metric_usage import MetricUsage, merge_entry, merge_totals
from otel_dashboard.state.rebuild import rebuild_from_store
from otel_dashboard.state.run_flags import RunFlags
from otel_dashboard.state.runs import DEFAULT_MAX_OPEN_RUNS, ENDED, OpenRuns
from otel_dashboard.state.signal_intake import SignalIntake
from otel_dashboard.state.singleton import get_dashboard, reset_dashboard
from otel_dashboard.state.traces import DEFAULT_MAX_TRACE_BYTES, TraceStore
from otel_dashboard.store.base import EventStore, MemoryEventStore

if TYPE_CHECKING:  # the model's OTLP package loads the SDK, which the state may not
    pass

__all__ = [
    "DashboardState",
    "RunSubscriber",
    "Sequencer",
    "Subscriber",
    "first_sight_agent_id",
    "first_sight_registration",
    "get_dashboard",
    "reset_dashboard",
]

logger = logging.getLogger(__name__)

Subscriber = Callable[[DashboardEvent], None]
"""Called with each accepted event, synchronously, in the publishing thread, in ``seq`` order.

It must not block: hand the event to your own queue or loop and return.
"""

RunSubscriber = Callable[[list[dict[str, Any]]], None]
"""Called with the runs an :meth:`DashboardState.update_runs` call took (their newest state),
synchronously, in the updating thread, under the state's lock: never for a run after the state
accepted its ``agent_execution_completed``. The dicts are shared: read them, never change them.

It must not block: note what changed and return (the server's broadcaster coalesces by ``run_id``).
"""

_DEFAULT_MAX_OPEN_RUNS_SNAPSHOT = 200

_DEFAULT_MAX_ACTIVE_AGENTS = 1000
_DEFAULT_MAX_OPPORTUNITIES = 200
_DEFAULT_MAX_KNOWN_AGENTS = 10_000
_DEFAULT_STALL_THRESHOLD_SECONDS = 300.0
_MAX_USAGE_WINDOW_SECONDS = 7 * 86_400
_API_AGENTS_DEFAULT_LIMIT = 200


# The keys an opportunity record holds beside its event's data (state/derived.py).
_OPPORTUNITY_EVENT_KEYS = ("seq", "event_id", "timestamp", "severity", "trace_id", "span_id")
_OPPORTUNITY_TYPE = EventType.OPPORTUNITY_DISCOVERED.value


def _opportunity_event_dict(record: dict[str, Any]) -> dict[str, Any]:
    """An opportunity record back in its event's ``to_dict()`` shape."""
    data = {key: value for key, value in record.items() if key not in _OPPORTUNITY_EVENT_KEYS}
    return {
        "seq": record.get("seq"),
        "event_id": record.get("event_id"),
        "event_type": _OPPORTUNITY_TYPE,
        "timestamp": record.get("timestamp"),
        # A record taken from an older replica's export may lack these: the usual severity then.
        "severity": record.get("severity", "success"),
        "data": data,
        "trace_id": record.get("trace_id"),
        "span_id": record.get("span_id"),
    }


def _usage_window(value: Any) -> int:
    if (not isinstance(value, int) or isinstance(value, bool) or value % DEFAULT_BUCKETS
            or not DEFAULT_BUCKETS <= value <= _MAX_USAGE_WINDOW_SECONDS):
        raise ValueError(f"usage_window_seconds must be a multiple of {DEFAULT_BUCKETS} between "
                         f"{DEFAULT_BUCKETS} and {_MAX_USAGE_WINDOW_SECONDS}, got {value!r}")
    return value


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class DashboardState(ClusterSync, HistoryReads, DirectApi, SignalIntake, RunFlags, StateBudgets):
    """Event history, metrics, running agents and opportunities; the in-process event bus.

    All methods are thread-safe. :meth:`publish` is the one way in: the span processor, the
    direct API, the ingest endpoint and the server's timers all go through it. No method reads the
    store while holding the lock :meth:`publish` needs (see :mod:`~otel_dashboard.state.history`).

    Args:
        max_history: events kept in the default in-memory history (ignored when ``store`` is given).
        store: where accepted events are kept; a :class:`MemoryEventStore` by default. A store
            that already holds events (a database, after a restart) is read back at once: ``seq``
            continues after it and the derived state is rebuilt (see
            :func:`~otel_dashboard.state.rebuild.rebuild_from_store`).
        max_active_agents: running agents tracked at most; the oldest are evicted (and counted).
        max_opportunities: opportunities kept at most; the oldest go first.
        max_known_agents: agent ids remembered for ``agent_registered`` on first sight.
        quality_thresholds: turn quality scores into severities.
        stall_threshold_seconds: a running agent older than this counts as stalled.
        max_traces: traces kept for the trace view (:attr:`traces`); the least recently updated go
            first.
        max_trace_bytes: the trace view's memory budget: the estimated bytes of all kept span
            records (see :class:`~otel_dashboard.state.traces.TraceStore`, ``max_bytes``); the least
            recently updated traces go first, and a single larger trace keeps its first spans;
            256 MiB by default.
        max_open_runs: open runs whose live progress is kept (:meth:`update_runs`); the least
            recently updated are evicted (and counted).
        max_string_bytes: every string of an accepted event's data (and of an open run) is cut to
            this many UTF-8 bytes, ending with ``"…[cut N bytes]"`` (see
            :mod:`otel_dashboard.model.limits`); 16 KiB by default.
        max_event_bytes: an accepted event's data, its strings cut, encodes to at most this many
            bytes of JSON; a larger one has its largest values replaced by markers; 256 KiB.
        max_snapshot_bytes: the events of one snapshot (:meth:`snapshot`) add up to at most this
            many bytes of JSON, the oldest left out first; 4 MiB.
        usage_window_seconds: the rolling window of the per-agent usage (:meth:`get_agent_stats`)
            and of the metrics' ``window_*`` fields: a multiple of 60 between 60 and 604800 (7 days),
            in 60 buckets; 3600 (one hour, minute buckets) by default.
        budgets: budgets on the runs (``docs/guardrails.md``, "Budgets"): a
            :class:`~otel_dashboard.model.guardrails.Guardrails` (its loop thresholds too, e.g.
            from :func:`~otel_dashboard.model.guardrails.load_guardrails`) or a list of
            :class:`~otel_dashboard.model.guardrails.Budget`; None: no budget. An ``"agent"``
            budget without its own window uses ``usage_window_seconds``. :meth:`set_guardrails`
            changes them later.

    The caps and what they did are in :attr:`limits` (its counters are in :meth:`get_counters`).

    Raises:
        ValueError: a bound that is not a positive integer, or a non-positive stall threshold, or a
            byte cap below its minimum (see :class:`~otel_dashboard.model.limits.Limits`), or a
            ``usage_window_seconds`` that is not a multiple of 60 in its range.
        GuardrailsConfigError: a bad budget (a ValueError naming the setting).
    """

    def __init__(
        self,
        max_history: int = 100,
        *,
        store: EventStore | None = None,
        max_active_agents: int = _DEFAULT_MAX_ACTIVE_AGENTS,
        max_opportunities: int = _DEFAULT_MAX_OPPORTUNITIES,
        max_known_agents: int = _DEFAULT_MAX_KNOWN_AGENTS,
        quality_thresholds: QualityThresholds | None = None,
        stall_threshold_seconds: float = _DEFAULT_STALL_THRESHOLD_SECONDS,
        max_traces: int = 1000,
        max_trace_bytes: int = DEFAULT_MAX_TRACE_BYTES,
        max_open_runs: int = DEFAULT_MAX_OPEN_RUNS,
        max_string_bytes: int = DEFAULT_MAX_STRING_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_snapshot_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES,
        usage_window_seconds: int = DEFAULT_WINDOW_SECONDS,
        budgets: Guardrails | Sequence[Budget] | None = None,
    ) -> None:
        _positive_int("max_history", max_history)
        self.limits = Limits(
            max_string_bytes=max_string_bytes,
            max_event_bytes=max_event_bytes,
            max_snapshot_bytes=max_snapshot_bytes,
        )
        self._bound_data = self.limits.bound  # bound once: it runs for every event published
        self._derived = DerivedState(
            max_active_agents=_positive_int("max_active_agents", max_active_agents),
            max_opportunities=_positive_int("max_opportunities", max_opportunities),
            max_known_agents=_positive_int("max_known_agents", max_known_agents),
        )
        if not stall_threshold_seconds > 0:
            raise ValueError(
                f"stall_threshold_seconds must be positive, got {stall_threshold_seconds!r}"
            )
        self.stall_threshold_seconds = float(stall_threshold_seconds)
        self.quality_thresholds = quality_thresholds or QualityThresholds()
        self._store: EventStore = store if store is not None else MemoryEventStore(max_history)
        # Spans by trace, for GET /api/traces/{id}.
        self.traces = TraceStore(
            max_traces=_positive_int("max_traces", max_traces),
            max_bytes=_positive_int("max_trace_bytes", max_trace_bytes),
        )
        # An exception log that waited for its span: its error once the span arrives (record_log_events).
        self.traces.on_log_failures = self._publish_log_failures
        self.log_failure_check: Callable[[Any], bool] | None = None
        """Whether an exception log (a LogFailure) reports a failure the span mapping already gave an
        error for (the server sets it to its received spans' FailureChain); None: the span's own
        status and exception events decide alone."""
        self.guardrails = Guardrails()
        """Budgets and loop thresholds (``docs/guardrails.md``); the default: no budget, the default loop
        thresholds."""
        self._lock = threading.RLock()
        self._subscribers: tuple[Subscriber, ...] = ()
        self._runs = OpenRuns(max_open_runs=_positive_int("max_open_runs", max_open_runs))
        self._derived.open_runs = self._runs  # an accepted completion closes its run (derived.apply)
        window = _usage_window(usage_window_seconds)
        self._budget_window_seconds = window
        self.set_guardrails(budgets)  # checked before anything is built on it
        self._derived.agent_stats = AgentStats(window_seconds=window,
                                               bucket_seconds=window // DEFAULT_BUCKETS)
        self._derived.agent_graph = AgentGraph(window_seconds=window,
                                               bucket_seconds=window // DEFAULT_BUCKETS)
        # GenAI / MCP metrics (POST /v1/metrics): in memory only, not rebuilt from the store.
        self._metric_usage = MetricUsage(window_seconds=window, bucket_seconds=window // DEFAULT_BUCKETS)
        self._run_subscribers: tuple[RunSubscriber, ...] = ()
        self._started_monotonic = time.monotonic()
        self._started_at = time.time()
        self._apply = self._derived.apply  # bound once: it runs for every accepted event
        self._metrics_emitted_version = 0
        self._subscriber_errors = 0
        self._dropped_events = 0
        self._sequencer: Sequencer | None = None
        # Nobody else holds this state yet: the rebuild reads the store without the lock.
        self._seq = rebuild_from_store(self._store, self._derived)
        self._metrics_emitted_window = self._moving_metrics()

    # ------------------------------------------------------------------ the bus
    @property
    def store(self) -> EventStore:
        """Where accepted events are kept."""
        return self._store

    @property
    def last_seq(self) -> int:
        """The ``seq`` of the newest accepted event (0 before the first)."""
        return self._seq

    def wait_durable(self, seq: int | None = None, timeout_seconds: float = 5.0) -> bool:
        """Block until the event ``seq`` (the newest accepted one when None) is committed to the store.

        The ingest endpoint calls it (or :meth:`wait_durable_async`) before it answers 200. An
        in-memory store answers True at once.

        Returns:
            True once committed; False on timeout or if the store could not keep the event.
        """
        return self._store.wait_durable(self._seq if seq is None else seq, timeout_seconds)

    async def wait_durable_async(self, seq: int | None = None, timeout_seconds: float = 5.0) -> bool:
        """:meth:`wait_durable` for coroutines: waits without blocking the event loop."""
        return await self._store.wait_durable_async(self._seq if seq is None else seq, timeout_seconds)

    def publish(self, event: DashboardEvent) -> DashboardEvent:
        """Accept ``event``: number it, keep it, update the derived state, notify subscribers.

        Never blocks on I/O; safe from any thread. A run event for an agent id never seen before is
        preceded by an ``agent_registered`` event. The event's data is bounded first (strings cut,
        an event too large shrunk: ``max_string_bytes``, ``max_event_bytes``): ``event.data`` may be
        replaced by a bounded copy, the caller's dict is never changed.

        Returns:
            The same event, with its ``seq`` set.
        """
        self._bound(event)
        sequencer = self._sequencer
        if sequencer is not None:
            # A cluster numbers events once for every replica: the event comes back, numbered,
            # through accept_sequenced (registration on first sight included).
            sequencer.submit(event)
            if self._budget_tracker is not None:
                with self._lock:  # the replica that received a completion is the one that counts it
                    self._budgets_on_event(event)
            return event
        with self._lock:
            agent_id = first_sight_agent_id(event)
            if agent_id and agent_id not in self._derived.known_agents:
                self._accept(first_sight_registration(event, agent_id))
            self._accept(event)
            if self._budget_tracker is not None:
                self._budgets_on_event(event)  # after the event: a crossing it makes comes next
        return event

    def publish_many(self, events: Iterable[DashboardEvent]) -> None:
        """:meth:`publish` each of ``events`` in order, taking the lock once for all of them.

        The span processor's worker publishes the events of a batch of spans this way. Everything
        :meth:`publish` does applies to each event (``agent_registered`` on first sight, the
        sequencer when one is attached).

        Raises:
            Exception: the first exception publishing an event raised, after every event was tried.
        """
        events = list(events)
        bound = self._bound
        for event in events:  # outside the lock: a cut encodes strings
            bound(event)
        sequencer = self._sequencer
        if sequencer is not None:
            submit = sequencer.submit  # numbered by the cluster, as in publish
            for event in events:
                submit(event)
            if self._budget_tracker is not None:
                with self._lock:
                    for event in events:
                        self._budgets_on_event(event)
            return
        take = self._take
        failed: Exception | None = None
        with self._lock:
            on_budgets = self._budgets_on_event if self._budget_tracker is not None else None
            known_agents = self._derived.known_agents  # import_derived may replace it, under the lock
            for event in events:
                try:
                    agent_id = first_sight_agent_id(event)
                    if agent_id and agent_id not in known_agents:
                        self._accept(first_sight_registration(event, agent_id))
                    # _accept inlined: this loop runs for every event the span processor maps.
                    self._seq = event.seq = self._seq + 1
                    take(event)
                    if on_budgets is not None:
                        on_budgets(event)
                except Exception as exc:
                    failed = failed or exc
        if failed is not None:
            raise failed

    def _bound(self, event: DashboardEvent) -> None:
        data = event.data
        if type(data) is dict:
            bounded = self._bound_data(data)
            if bounded is not data:
                event.data = bounded
                event._json_cache = None  # encoded before it was bounded: encode it again

    def _accept(self, event: DashboardEvent) -> None:
        self._seq += 1
        event.seq = self._seq
        self._take(event)

    def _take(self, event: DashboardEvent) -> None:
        self._store.append(event)
        self._apply(event)
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                self._subscriber_errors += 1
                logger.exception("dashboard subscriber %r failed; event seq=%s", subscriber, event.seq)

    def subscribe(self, callback: Subscriber) -> None:
        """Call ``callback`` with every event accepted from now on (see :data:`Subscriber`)."""
        with self._lock:
            if callback not in self._subscribers:
                self._subscribers = (*self._subscribers, callback)

    def unsubscribe(self, callback: Subscriber) -> None:
        """Stop calling ``callback``; unknown callbacks are ignored."""
        with self._lock:
            self._subscribers = tuple(s for s in self._subscribers if s != callback)

    def emit_metrics_if_changed(self) -> DashboardEvent | None:
        """Publish ``metrics_updated`` if anything changed since the last one (the server's timer
        calls this, which is what throttles it)."""
        # The timer also gives up on the spans that exception logs waited for too long (their errors),
        # and checks the budgets the clock crosses (durations, agent windows).
        self._publish_log_failures(self.traces.expire_pending())
        self._budgets_tick()
        with self._lock:
            version = self._derived.version
            moving = self._moving_metrics()
            if version == self._metrics_emitted_version and moving == self._metrics_emitted_window:
                return None
            self._metrics_emitted_version = version
            self._metrics_emitted_window = moving
            return self.publish(DashboardEvent.create(EventType.METRICS_UPDATED, self.get_metrics()))

    def _moving_metrics(self) -> tuple[Any, ...]:
        # What changes with no event accepted: runs known from their progress only (the active
        # count), and the window's totals as its oldest bucket leaves it.
        derived = self._derived
        return (derived.open_run_count(), *derived.window_metrics().values())

    def count_dropped(self, n: int = 1) -> None:
        """Record ``n`` events dropped before they reached the state (shown in health and stats)."""
        with self._lock:
            self._dropped_events += n

    def record_spans(self, records: list[dict[str, Any]], *, from_cluster: bool = False) -> None:
        """Keep span records (see :func:`~otel_dashboard.state.traces.span_record_from_span`) in
        :attr:`traces`; thread-safe (the trace store has its own lock). Invalid records are skipped.

        With a sequencer attached they also go to the other replicas, unless they came from them
        (``from_cluster``)."""
        sequencer = self._sequencer
        if sequencer is not None and not from_cluster and records:
            sequencer.submit_spans(records)
        for record in records:
            try:
                self.traces.add_span(record)
            except ValueError:
                logger.debug("span record without valid ids skipped: %r", record)

    # ------------------------------------------------------------------ open runs
    def update_runs(self, runs: list[dict[str, Any]]) -> None:
        """Take the newest live state of some open runs and tell the run subscribers.

        Thread-safe; the span processor's worker calls it after publishing a batch's events, the
        ingest endpoint with the ``runs`` of a request. Each run is upserted by ``run_id`` (a copy
        is kept: the caller may reuse its dicts). A run whose ``agent_execution_completed`` the
        state already accepted is ignored, as is an entry without a string ``run_id``. Bounded by
        ``max_open_runs`` (least recently updated evicted); strings cut as an event's
        (``max_string_bytes``). Only this state takes them: in a
        cluster, progress stays on the replica that received it (completions reach every replica).
        With budgets (:meth:`set_guardrails`), each run taken is checked against them and gets
        ``over_budget`` (the kinds of the run budgets it crossed; ``[]`` without); a crossing is
        published after the run subscribers were told. Never raises: a failure is logged.
        """
        try:
            bound = self._bound_data
            # A run's strings (its task, its step, a tool's name) are bounded as an event's are.
            runs = [bound(run) if type(run) is dict else run for run in runs]
            runs = self.with_stop_fields(runs)  # "stop": the run's flag or None (state/run_flags.py)
            with self._lock:
                taken = self._runs.update(runs)
                crossings = self._budgets_on_runs(taken) if taken else []  # sets over_budget
                derived = self._derived
                if taken and derived.lost_agents:
                    # Progress naming a run unknown since a restart: its sender is still at work.
                    for run in taken:
                        if run["run_id"] in derived.lost_agents:
                            if run.get("status") == ENDED:
                                derived.drop_lost(run["run_id"])
                            else:
                                derived.revive(run["run_id"])
                if taken:
                    self._tell_run_subscribers(taken)
                if crossings:
                    self._publish_crossings(crossings, refresh=False)
        except Exception:  # the span worker and the ingest handler must not fail on progress
            logger.exception("updating %d runs failed", len(runs) if isinstance(runs, list) else -1)

    def _tell_run_subscribers(self, taken: list[dict[str, Any]]) -> None:
        """Hand the run states just taken to every run subscriber (under the lock); a failing one is
        counted and logged, the others still told."""
        for subscriber in self._run_subscribers:
            try:
                subscriber(taken)
            except Exception:
                self._subscriber_errors += 1
                logger.exception("dashboard run subscriber %r failed", subscriber)

    def subscribe_runs(self, callback: RunSubscriber) -> None:
        """Call ``callback`` with the runs of every :meth:`update_runs` from now on
        (see :data:`RunSubscriber`)."""
        with self._lock:
            if callback not in self._run_subscribers:
                self._run_subscribers = (*self._run_subscribers, callback)

    def unsubscribe_runs(self, callback: RunSubscriber) -> None:
        """Stop calling ``callback``; unknown callbacks are ignored."""
        with self._lock:
            self._run_subscribers = tuple(s for s in self._run_subscribers if s != callback)

    def get_open_runs(self, limit: int = _DEFAULT_MAX_OPEN_RUNS_SNAPSHOT) -> list[dict[str, Any]]:
        """The ``limit`` most recently updated open runs, oldest-updated first (read-only dicts)."""
        with self._lock:
            return self._runs.newest(limit)

    def find_open_runs(self, run_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The runs among ``run_ids`` that are still open, with their newest state, oldest-updated
        first (read-only dicts); the broadcaster re-reads what it was told of this way."""
        with self._lock:
            return self._runs.find(run_ids)

    # ------------------------------------------------------------------ the derived state
    def get_metrics(self) -> dict[str, Any]:
        """The metric card values (the original design's keys plus a few more)."""
        with self._lock:
            return self._derived.metrics(time.monotonic() - self._started_monotonic)

    def get_opportunities(self) -> list[dict[str, Any]]:
        """The kept opportunities, newest first, each as its event's wire form: a plain dict in the
        :meth:`DashboardEvent.to_dict <otel_dashboard.model.events.DashboardEvent.to_dict>` shape
        (``seq``, ``event_id``, ``event_type``, ``timestamp``, ``severity``, ``data``, ``trace_id``,
        ``span_id``), as the original design's ``get_opportunities()`` returned them. New dicts:
        the caller may change them.

        :meth:`opportunity_records` gives the flat form the snapshot sends to the page.
        """
        with self._lock:
            records = list(self._derived.opportunities)
        return [_opportunity_event_dict(record) for record in reversed(records)]

    def opportunity_records(self) -> list[dict[str, Any]]:
        """The kept opportunities, newest first, flat: each the event's ``data`` with its
        ``timestamp``, ``seq``, ``event_id``, ``severity``, ``trace_id`` and ``span_id`` beside the
        data's fields (the snapshot's ``"opportunities"``). Shared dicts: read them, never change them.
        """
        with self._lock:
            return list(reversed(self._derived.opportunities))

    def get_active_agents(self) -> list[dict[str, Any]]:
        """The agent runs in progress, oldest first, each with ``elapsed_seconds`` and ``stalled``."""
        with self._lock:
            return self._derived.running(self.stall_threshold_seconds)

    def get_open_run_summary(self) -> list[dict[str, Any]]:
        """Every open run now, one entry per ``run_id``: the running agents (started events) and
        the runs of the live progress table together, each ``{"run_id", "agent_id", "agent_name",
        "service_name", "stalled"}``. Its length is ``metrics["active_agents"]`` (the one source of
        "active": metrics, ``/stats``, ``/health``, ``GET /api/agents``)."""
        with self._lock:
            return self._derived.open_runs_now(self.stall_threshold_seconds)

    def get_agent_stats(
        self,
        *,
        limit: int = _API_AGENTS_DEFAULT_LIMIT,
        agents: Iterable[str] | None = None,
        services: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """Per-agent usage over the rolling window: the body of ``GET /api/agents`` (``docs/api.md``).

        The span-derived figures first; the GenAI / MCP metrics' (:meth:`record_metric_usage`) fill
        the figures the spans lack and add the agents seen only in metrics; each entry and the totals
        say where their runs, tokens and cost came from (``sources``).

        Args:
            limit: agents returned at most, the most recently active first (one running now is
                active now).
            agents: only agents of these names (or agent ids); None or empty: all.
            services: only agents of these services; None or empty: all.

        Returns:
            ``{"window_seconds", "bucket_seconds", "generated_at", "agents", "totals"}``. ``totals``
            are the whole window's, whatever the filters (the metrics' ``window_*`` fields), with
            ``running`` the number of open runs now.
        """
        agent_names = frozenset(agents or ())
        service_names = frozenset(services or ())
        with self._lock:
            derived = self._derived
            stats = derived.agent_stats
            assert stats is not None  # set in __init__
            open_runs = derived.open_runs_now(self.stall_threshold_seconds)
            running: dict[tuple[str, str | None], int] = {}
            running_ids: dict[tuple[str, str | None], set[str]] = {}  # for the agent filter
            for run in open_runs:
                key = agent_key(run)
                running[key] = running.get(key, 0) + 1
                if isinstance(run["agent_id"], str):
                    running_ids.setdefault(key, set()).add(run["agent_id"])

            def keep(key: tuple[str, str | None], agent_ids: set[str]) -> bool:
                if service_names and key[1] not in service_names:
                    return False
                return not agent_names or key[0] in agent_names or not (
                    agent_names.isdisjoint(agent_ids) and agent_names.isdisjoint(running_ids.get(key, ())))

            filtering = bool(agent_names or service_names)
            # Filtered and cut on the keys first: only the entries answered are made, under the lock.
            entries = stats.agents(running, limit=limit, keep=keep if filtering else None)
            usage = self._metric_usage
            newest = usage.newest(keep=(lambda key: keep(key, set())) if filtering else None, limit=limit)
            if newest:
                entries = self._with_metric_rows(entries, newest, running, limit)
            else:
                entries = [merge_entry(entry, None) for entry in entries]
            totals = merge_totals(stats.totals(), usage.totals())
        for entry in entries:  # an agent seen only in the metrics has no budget figures
            entry.setdefault("over_budget_runs", 0)
        totals["running"] = len(open_runs)
        return {
            "window_seconds": stats.window_seconds,
            "bucket_seconds": stats.bucket_seconds,
            "generated_at": format_timestamp(),
            "agents": entries[:limit],
            "totals": {key: totals[key] for key in ("runs", "failures", "error_rate", "running", "tokens",
                                                    "cost_usd", "cost_status", "sources")},
        }

    def get_agent_graph(self) -> dict[str, Any]:
        """The agent graph over the usage window: the body of ``GET /api/graph`` (``docs/api.md``,
        "The agent graph"), ``{"scope": "window", "window_seconds", "generated_at", "nodes", "edges",
        "truncated"}``; the open runs now (started UNION live progress) are its ``running``."""
        with self._lock:
            derived = self._derived
            graph = derived.agent_graph
            assert graph is not None  # set in __init__
            body = graph.graph(derived.open_runs_now(self.stall_threshold_seconds),
                               self._runs.newest(len(self._runs)))
        body["generated_at"] = format_timestamp()
        return body

    def events_by_type(self) -> dict[str, int]:
        """Accepted events per event type, since this state was created (or rebuilt)."""
        with self._lock:
            return self._derived.counts_by_type()

    def get_known_agents(self) -> dict[str, str]:
        """Agent ids seen so far (bounded), mapped to their names."""
        with self._lock:
            return dict(self._derived.known_agents)

    def get_lost_agents(self) -> list[dict[str, Any]]:
        """Agent runs that were in progress when a previous server stopped ("unknown since
        restart"), oldest first.

        Found at start by the rebuild (a start with no completion); each keeps the fields of an
        active agent plus ``"status": "unknown"``, ``unknown_since`` and ``lost_detected_at`` (the
        same time, its older name). An event or run progress naming one brings it back to the
        running agents, from its original start; its completion removes it. Bounded by
        ``max_active_agents``.
        """
        with self._lock:
            return [dict(entry) for entry in self._derived.lost_agents.values()]

    def get_counters(self) -> dict[str, int]:
        """Internal counters for health and stats."""
        with self._lock:
            return {
                "dropped_events": self._dropped_events,
                "subscriber_errors": self._subscriber_errors,
                "evicted_active_agents": self._derived.evicted_active_agents,
                "subscribers": len(self._subscribers),
                "open_runs": len(self._runs),
                "evicted_runs": self._runs.evicted,
                "ignored_run_updates": self._runs.ignored,
                "evicted_agent_stats": self._derived.agent_stats.evicted if self._derived.agent_stats else 0,
                **self._metric_usage.counters(),
                **self.limits.counters(),
            }
