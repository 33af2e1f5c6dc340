"""DashboardState: the direct API of the original design, metrics, bounds, the bus and the singleton."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_dashboard import DashboardEvent, DashboardState, EventType, Severity, get_dashboard, reset_dashboard
from otel_dashboard.model.events import QualityThresholds
from otel_dashboard.store.base import EventQuery, EventStore, MemoryEventStore
from otel_dashboard.store.sqlite import SqliteEventStore


@pytest.fixture(name="state")
def fixture_state() -> DashboardState:
    return DashboardState(max_history=1000)


def types_of(events: list[DashboardEvent]) -> list[str]:
    return [e.event_type.value for e in events]


async def test_every_direct_api_helper_builds_one_event_with_its_fields(state: DashboardState) -> None:
    await state.agent_started("r-1", "Researcher", "find markets", region="EU")
    await state.agent_completed("r-1", "Researcher", "find markets", 1500.0, True,
                                data_source="web", quality_score=97.0)
    await state.opportunity_discovered("o-1", "Solar", "Rooftop solar", 0.9, "$1M", "energy")
    await state.synthesis_started("merge", "merging findings")
    await state.synthesis_completed("merge", 250.0, 4)
    await state.quality_score_updated("Researcher", 92.5, {"accuracy": 90.0})
    await state.error_occurred("Writer", "boom", "RuntimeError")
    await state.system_health_updated(cpu_percent=12.5, memory_percent=40.0, active_agents=2)
    hand_built = DashboardEvent("custom-1", "metrics_updated", "2026-01-15T10:30:00.000Z", {"x": 1})
    await state.broadcast_event(hand_built)

    events = state.get_events_after(0, 100)
    assert types_of(events) == [
        "agent_registered",  # first sight of agent id r-1
        "agent_execution_started",
        "agent_execution_completed",
        "opportunity_discovered",
        "synthesis_started",
        "synthesis_completed",
        "quality_score_updated",
        "error_occurred",
        "system_health_updated",
        "metrics_updated",
    ]
    assert [e.seq for e in events] == list(range(1, 11))
    by_type = {e.event_type: e for e in events}
    started = by_type[EventType.AGENT_EXECUTION_STARTED]
    assert started.data == {"agent_id": "r-1", "agent_name": "Researcher",
                            "task_description": "find markets", "region": "EU"}
    assert started.severity is Severity.INFO
    completed = by_type[EventType.AGENT_EXECUTION_COMPLETED]
    assert completed.data == {"agent_id": "r-1", "agent_name": "Researcher",
                              "task_description": "find markets", "duration_ms": 1500.0,
                              "success": True, "data_source": "web", "quality_score": 97.0}
    assert completed.severity is Severity.SUCCESS
    assert by_type[EventType.OPPORTUNITY_DISCOVERED].data["confidence_score"] == 0.9
    assert by_type[EventType.OPPORTUNITY_DISCOVERED].severity is Severity.SUCCESS
    assert by_type[EventType.SYNTHESIS_COMPLETED].data["patterns_found"] == 4
    assert by_type[EventType.QUALITY_SCORE_UPDATED].severity is Severity.WARNING
    assert by_type[EventType.ERROR_OCCURRED].data == {
        "source": "Writer", "error_message": "boom", "error_type": "RuntimeError"}
    assert by_type[EventType.ERROR_OCCURRED].severity is Severity.ERROR
    assert by_type[EventType.SYSTEM_HEALTH_UPDATED].data["cpu_percent"] == 12.5
    assert by_type[EventType.METRICS_UPDATED].event_id == "custom-1"


async def test_metrics_after_a_known_sequence(state: DashboardState) -> None:
    await state.agent_started("a", "A", "t1")
    await state.agent_completed("a", "A", "t1", 10.0, True, quality_score=0.0)
    await state.agent_started("b", "B", "t2")
    await state.agent_completed("b", "B", "t2", 10.0, False, quality_score=90.0)
    await state.agent_completed("c", "C", "t3", 10.0, True)  # no score: not in the average
    await state.opportunity_discovered("o1", "T", "D", 0.5, "$", "cat")
    await state.error_occurred("x", "y", "z")

    metrics = state.get_metrics()
    assert metrics["total_agents_executed"] == 3
    assert metrics["avg_quality_score"] == 45.0  # 0.0 is a score: (0 + 90) / 2
    assert metrics["quality_scores_count"] == 2
    assert metrics["total_opportunities_discovered"] == 1
    assert metrics["failed_agent_runs"] == 1
    assert metrics["total_errors"] == 1
    assert metrics["active_agents"] == 0
    # 3 first-sight registrations + 5 run events + 1 opportunity + 1 error
    assert metrics["total_events"] == 10
    assert metrics["system_uptime_seconds"] >= 0


async def test_avg_quality_score_is_zero_before_any_score(state: DashboardState) -> None:
    assert state.get_metrics()["avg_quality_score"] == 0.0
    assert state.get_metrics()["quality_scores_count"] == 0


async def test_history_is_bounded_and_recent_events_are_newest_first() -> None:
    state = DashboardState(max_history=5)
    for i in range(12):
        await state.error_occurred(f"s{i}", "m", "t")
    recent = state.get_recent_events(limit=50)
    assert [e["seq"] for e in recent] == [12, 11, 10, 9, 8]
    assert [e["seq"] for e in state.get_recent_events(limit=2)] == [12, 11]
    assert [e.seq for e in state.recent_events(limit=2)] == [12, 11]
    assert state.store.first_seq() == 8
    assert state.get_metrics()["total_events"] == 12


async def test_active_agents_follow_runs_and_are_bounded() -> None:
    state = DashboardState(max_active_agents=3)
    for i in range(5):
        await state.agent_started(f"a{i}", f"A{i}", "task", run_id=f"run-{i}")
    active = state.get_active_agents()
    assert [a["run_id"] for a in active] == ["run-2", "run-3", "run-4"]
    assert state.get_counters()["evicted_active_agents"] == 2
    assert all(a["stalled"] is False and a["elapsed_seconds"] >= 0 for a in active)

    await state.agent_completed("a3", "A3", "task", 5.0, True, run_id="run-3")
    assert [a["run_id"] for a in state.get_active_agents()] == ["run-2", "run-4"]


async def test_an_agent_running_past_the_threshold_is_stalled() -> None:
    state = DashboardState(stall_threshold_seconds=0.01)
    await state.agent_started("a", "A", "t")
    threading.Event().wait(0.05)
    assert state.get_active_agents()[0]["stalled"] is True


async def test_opportunities_are_bounded_newest_first() -> None:
    state = DashboardState(max_opportunities=2)
    for i in range(4):
        await state.opportunity_discovered(f"o{i}", f"T{i}", "d", 0.5, "$", "c")
    assert [o["data"]["opportunity_id"] for o in state.get_opportunities()] == ["o3", "o2"]
    assert [o["opportunity_id"] for o in state.opportunity_records()] == ["o3", "o2"]
    assert state.get_metrics()["total_opportunities_discovered"] == 4


async def test_get_opportunities_and_get_recent_events_keep_the_original_contract() -> None:
    """The original design's direct API: plain dicts in the to_dict() shape, newest first."""
    state = DashboardState()
    first = await state.opportunity_discovered("o1", "T1", "d", 0.5, "$5", "c")
    second = await state.opportunity_discovered("o2", "T2", "d", 0.9, "$9", "c")
    assert state.get_opportunities() == [second.to_dict(), first.to_dict()]
    assert all(type(o) is dict for o in state.get_opportunities())
    recent = state.get_recent_events(10)
    assert recent == [second.to_dict(), first.to_dict()]
    assert [e.event_id for e in state.recent_events(10)] == [second.event_id, first.event_id]


async def test_first_sight_of_an_agent_registers_it_once(state: DashboardState) -> None:
    await state.agent_started("r-1", "Researcher", "t")
    await state.agent_completed("r-1", "Researcher", "t", 1.0, True)
    await state.agent_started("r-1", "Researcher", "t")
    registered = [e for e in state.get_events_after(0, 100) if e.event_type is EventType.AGENT_REGISTERED]
    assert len(registered) == 1
    assert registered[0].data == {
        "agent_id": "r-1", "agent_name": "Researcher", "registered_by": "first_seen"}
    assert state.get_known_agents() == {"r-1": "Researcher"}


@pytest.mark.parametrize(
    ("call", "parameter"),
    [
        (lambda s: s.agent_completed("a", "A", "t", -1.0, True), "duration_ms"),
        (lambda s: s.agent_completed("a", "A", "t", 1.0, True, quality_score=101), "quality_score"),
        (lambda s: s.agent_completed("a", "A", "t", 1.0, True, quality_score=float("nan")), "quality_score"),
        (lambda s: s.opportunity_discovered("o", "T", "D", 1.5, "$", "c"), "confidence_score"),
        (lambda s: s.quality_score_updated("s", -0.1, {}), "overall_score"),
        (lambda s: s.synthesis_completed("p", -5, 1), "duration_ms"),
    ],
)
async def test_out_of_range_values_raise_value_error_naming_the_parameter(
    state: DashboardState, call, parameter: str
) -> None:
    with pytest.raises(ValueError, match=parameter):
        await call(state)
    assert state.last_seq == 0  # nothing half-accepted


@pytest.mark.parametrize(
    ("score", "severity"),
    [(100, "success"), (95, "success"), (94.99, "warning"), (90, "warning"), (89.9, "error"), (0, "error")],
)
async def test_quality_severity_follows_the_thresholds(score: float, severity: str) -> None:
    state = DashboardState()
    event = await state.quality_score_updated("s", score, {})
    assert event.severity.value == severity


async def test_quality_thresholds_are_configurable() -> None:
    state = DashboardState(quality_thresholds=QualityThresholds(success=80, warning=50))
    assert (await state.quality_score_updated("s", 85, {})).severity is Severity.SUCCESS
    assert (await state.quality_score_updated("s", 60, {})).severity is Severity.WARNING
    with pytest.raises(ValueError, match="warning"):
        QualityThresholds(success=50, warning=80)


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [({"max_history": 0}, "max_history"), ({"max_active_agents": -1}, "max_active_agents"),
     ({"max_opportunities": 1.5}, "max_opportunities"), ({"stall_threshold_seconds": 0}, "stall_threshold")],
)
def test_bad_constructor_arguments_name_the_parameter(kwargs: dict, parameter: str) -> None:
    with pytest.raises(ValueError, match=parameter):
        DashboardState(**kwargs)


def test_subscribers_get_every_event_in_order_and_a_failing_one_harms_nobody(state: DashboardState) -> None:
    seen: list[int] = []

    def broken(event: DashboardEvent) -> None:
        raise RuntimeError("subscriber bug")

    state.subscribe(broken)
    state.subscribe(lambda e: seen.append(e.seq))
    for _ in range(3):
        event = state.publish(DashboardEvent.create(EventType.ERROR_OCCURRED, {"source": "s"}))
        assert event.seq is not None
    assert seen == [1, 2, 3]
    assert state.get_counters()["subscriber_errors"] == 3
    state.unsubscribe(broken)
    state.publish(DashboardEvent.create(EventType.ERROR_OCCURRED, {}))
    assert state.get_counters()["subscriber_errors"] == 3


def _run_events() -> list[DashboardEvent]:
    return [
        DashboardEvent.create(EventType.AGENT_EXECUTION_STARTED, {"agent_id": "r-1", "agent_name": "R"}),
        DashboardEvent.create(EventType.ERROR_OCCURRED, {"source": "s"}),
        DashboardEvent.create(EventType.AGENT_EXECUTION_COMPLETED, {"agent_id": "r-1", "success": True}),
    ]


def test_publish_many_is_publish_of_each_event_in_order(state: DashboardState) -> None:
    one_by_one = DashboardState(max_history=1000)
    for event in _run_events():
        one_by_one.publish(event)
    seen: list[int] = []
    state.subscribe(lambda e: seen.append(e.seq))

    state.publish_many(_run_events())

    def wire(s: DashboardState) -> list[dict]:  # ids and times differ between the two runs
        return [e.to_dict() | {"event_id": None, "timestamp": None} for e in s.get_events_after(0, 100)]

    assert wire(state) == wire(one_by_one)
    assert types_of(state.get_events_after(0, 100))[0] == "agent_registered"
    assert seen == [1, 2, 3, 4]
    assert state.events_by_type() == one_by_one.events_by_type()
    assert state.get_known_agents() == one_by_one.get_known_agents() == {"r-1": "R"}
    assert state.get_active_agents() == []


def test_publish_many_tries_every_event_and_raises_the_first_failure(state: DashboardState) -> None:
    events = _run_events()
    events[1].data = None  # type: ignore[assignment]  # an event the store cannot take
    real_append = state.store.append

    def append(event: DashboardEvent) -> None:
        if event.data is None:
            raise RuntimeError("store bug")
        real_append(event)

    state.store.append = append  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="store bug"):
        state.publish_many(events)
    assert types_of(state.get_events_after(0, 100)) == [
        "agent_registered", "agent_execution_started", "agent_execution_completed"]


def test_publish_many_with_a_sequencer_submits_every_event(state: DashboardState) -> None:
    submitted: list[DashboardEvent] = []

    class Sequencer:
        def submit(self, event: DashboardEvent) -> None:
            submitted.append(event)

        def submit_spans(self, records: list) -> None:
            pass

    state.attach_sequencer(Sequencer())
    events = _run_events()
    state.publish_many(events)
    assert submitted == events
    assert state.last_seq == 0 and all(e.seq is None for e in events)


def test_snapshot_and_subscription_are_atomic_under_concurrent_publishing() -> None:
    state = DashboardState(max_history=100_000)
    stop = threading.Event()

    def produce() -> None:
        while not stop.is_set():
            state.publish(DashboardEvent.create(EventType.ERROR_OCCURRED, {}))

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        received: list[int] = []
        while state.last_seq < 200:
            threading.Event().wait(0.001)
        snapshot = state.subscribe_with_snapshot(lambda e: received.append(e.seq), recent_limit=10)
        threading.Event().wait(0.05)
    finally:
        stop.set()
        producer.join()
    assert [e["seq"] for e in snapshot["events"]][-1] == snapshot["seq"]
    assert received[0] == snapshot["seq"] + 1
    assert received == list(range(snapshot["seq"] + 1, received[-1] + 1))


@pytest.fixture(name="big_store", params=["memory", "sqlite"])
def fixture_big_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    store: EventStore = (MemoryEventStore(100_000) if request.param == "memory"
                         else SqliteEventStore(tmp_path / "events.db"))
    yield store
    store.close()


def _publish_until_stopped(state: DashboardState, stop: threading.Event) -> threading.Thread:
    def produce() -> None:
        while not stop.is_set():
            state.publish(DashboardEvent.create(EventType.ERROR_OCCURRED, {}))

    producer = threading.Thread(target=produce)
    producer.start()
    while state.last_seq < 200:
        threading.Event().wait(0.001)
    return producer


def _assert_no_gap_no_duplicate(snapshot: dict[str, Any], received: list[int], recent_limit: int) -> None:
    snapshot_seqs = [e["seq"] for e in snapshot["events"]]
    assert snapshot_seqs == list(range(snapshot["seq"] - recent_limit + 1, snapshot["seq"] + 1))
    assert received and received[0] == snapshot["seq"] + 1
    assert received == list(range(snapshot["seq"] + 1, received[-1] + 1))


@pytest.mark.parametrize("form", ["plain", "async"])
def test_a_snapshot_with_subscription_has_no_gap_and_no_duplicate_while_a_thread_publishes(
    big_store: EventStore, form: str
) -> None:
    state = DashboardState(store=big_store)
    stop = threading.Event()
    received: list[int] = []
    producer = _publish_until_stopped(state, stop)
    try:
        if form == "plain":
            snapshot = state.subscribe_with_snapshot(lambda e: received.append(e.seq), recent_limit=30)
        else:
            snapshot = asyncio.run(state.subscribe_with_snapshot_async(
                lambda e: received.append(e.seq), recent_limit=30))
        threading.Event().wait(0.05)
    finally:
        stop.set()
        producer.join()
    _assert_no_gap_no_duplicate(snapshot, received, 30)


@pytest.mark.parametrize("form", ["plain", "async"])
def test_a_snapshot_taken_while_a_thread_publishes_ends_at_its_seq(big_store: EventStore, form: str) -> None:
    state = DashboardState(store=big_store)
    stop = threading.Event()
    producer = _publish_until_stopped(state, stop)
    try:
        for _ in range(20):
            if form == "plain":
                snapshot = state.snapshot(recent_limit=25)
            else:
                snapshot = asyncio.run(state.snapshot_async(recent_limit=25))
            seqs = [e["seq"] for e in snapshot["events"]]
            assert seqs == list(range(snapshot["seq"] - 24, snapshot["seq"] + 1))
            assert snapshot["metrics"]["total_events"] == snapshot["seq"]  # captured together
    finally:
        stop.set()
        producer.join()


class BlockingReads(MemoryEventStore):
    """A store whose reads, once ``blocking``, wait for ``release`` (a slow disk, made to order)."""

    def __init__(self) -> None:
        super().__init__(1000)
        self.blocking = False
        self.reading = threading.Event()
        self.release = threading.Event()

    def _hold(self) -> None:
        if self.blocking:
            self.reading.set()
            assert self.release.wait(10)

    def recent(self, limit: int) -> list[DashboardEvent]:
        self._hold()
        return super().recent(limit)

    def query(self, query: EventQuery, limit: int) -> list[DashboardEvent]:
        self._hold()
        return super().query(query, limit)

    async def query_async(self, query: EventQuery, limit: int) -> list[DashboardEvent]:
        await asyncio.to_thread(self._hold)
        return super().query(query, limit)


def _history_seqs(view: dict[str, Any]) -> list[int]:
    return [e["seq"] for e in view.get("events", view.get("recent_events", []))]


_PLAIN_READS: dict[str, Callable[[DashboardState], dict[str, Any]]] = {
    "snapshot": lambda s: s.snapshot(),
    "subscribe_with_snapshot": lambda s: s.subscribe_with_snapshot(lambda e: None),
    "get_dashboard_stats": lambda s: s.get_dashboard_stats(),
}
_ASYNC_READS: dict[str, Callable[[DashboardState], Awaitable[dict[str, Any]]]] = {
    "snapshot_async": lambda s: s.snapshot_async(),
    "subscribe_with_snapshot_async": lambda s: s.subscribe_with_snapshot_async(lambda e: None),
    "get_dashboard_stats_async": lambda s: s.get_dashboard_stats_async(),
}


@pytest.mark.parametrize("name", sorted(_PLAIN_READS))
def test_a_store_read_does_not_hold_the_state_lock(name: str) -> None:
    store = BlockingReads()
    state = DashboardState(store=store)
    state.publish(DashboardEvent.create(EventType.ERROR_OCCURRED, {}))
    store.blocking = True
    views: list[dict[str, Any]] = []
    reader = threading.Thread(target=lambda: views.append(_PLAIN_READS[name](state)))
    reader.start()
    try:
        assert store.reading.wait(5)
        publisher = threading.Thread(
            target=state.publish, args=(DashboardEvent.create(EventType.ERROR_OCCURRED, {}),))
        publisher.start()
        publisher.join(5)
        assert not publisher.is_alive() and state.last_seq == 2  # published while the read waited
    finally:
        store.release.set()
        reader.join(5)
    assert _history_seqs(views[0]) == [1]  # the view is of seq 1: the event published meanwhile is not in it


@pytest.mark.parametrize("name", sorted(_ASYNC_READS))
async def test_an_async_store_read_does_not_hold_the_state_lock(name: str) -> None:
    store = BlockingReads()
    state = DashboardState(store=store)
    state.publish(DashboardEvent.create(EventType.ERROR_OCCURRED, {}))
    store.blocking = True
    task = asyncio.create_task(_ASYNC_READS[name](state))
    try:
        assert await asyncio.to_thread(store.reading.wait, 5)
        event = DashboardEvent.create(EventType.ERROR_OCCURRED, {})
        await asyncio.wait_for(asyncio.to_thread(state.publish, event), 5)
        assert state.last_seq == 2
    finally:
        store.release.set()
    assert _history_seqs(await task) == [1]


async def test_the_async_reads_answer_as_the_plain_ones(tmp_path: Path) -> None:
    state = DashboardState(store=SqliteEventStore(tmp_path / "events.db"))
    await state.agent_started("a", "Alpha", "t")
    await state.error_occurred("Alpha", "m", "t", agent_name="Alpha")
    await state.opportunity_discovered("o1", "T", "D", 0.5, "$", "cat")
    assert [e.seq for e in await state.get_events_after_async(1)] == [2, 3, 4]
    assert [e["seq"] for e in await state.get_recent_events_async(2)] == [4, 3]
    assert [e.seq for e in await state.recent_events_async(2)] == [4, 3]
    alpha = EventQuery(agents=["Alpha"])
    assert [e.to_dict() for e in await state.query_events_async(alpha, limit=10)] == [
        e.to_dict() for e in state.query_events(alpha, limit=10)]
    stats, plain = await state.get_dashboard_stats_async(), state.get_dashboard_stats()
    assert list(stats) == list(plain)  # the same keys, in the same order
    assert [e["seq"] for e in stats["recent_events"]] == [4, 3, 2, 1]  # newest first
    snapshot = await state.snapshot_async(recent_limit=2)
    assert list(snapshot) == ["seq", "metrics", "events", "opportunities", "active_agents", "lost_agents",
                              "runs"]
    assert snapshot["seq"] == 4 and [e["seq"] for e in snapshot["events"]] == [3, 4]
    assert snapshot["events"] == state.snapshot(recent_limit=2)["events"]
    state.store.close()


def test_concurrent_publishers_get_unique_consecutive_seqs() -> None:
    state = DashboardState(max_history=50_000)

    def produce() -> None:
        for _ in range(5000):
            state.publish(DashboardEvent.create(EventType.ERROR_OCCURRED, {}))

    threads = [threading.Thread(target=produce) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = [e.seq for e in state.get_events_after(0, 50_000)]
    assert seqs == list(range(1, 40_001))


async def test_metrics_updated_is_emitted_only_after_a_change(state: DashboardState) -> None:
    assert state.emit_metrics_if_changed() is None
    await state.error_occurred("s", "m", "t")
    event = state.emit_metrics_if_changed()
    assert event is not None and event.event_type is EventType.METRICS_UPDATED
    assert event.data["total_events"] == 1  # the card values at the time of the change
    assert state.emit_metrics_if_changed() is None


async def test_history_query_filters(state: DashboardState) -> None:
    await state.agent_started("a", "Alpha", "t")
    await state.agent_started("b", "Beta", "t")
    await state.error_occurred("Alpha", "m", "t", agent_name="Alpha")
    alpha = state.query_events(EventQuery(agents=["Alpha"]), limit=10)
    assert types_of(alpha) == ["agent_registered", "agent_execution_started", "error_occurred"]
    errors = state.query_events(EventQuery(severities=["error"]), limit=10)
    assert types_of(errors) == ["error_occurred"]
    after = state.query_events(EventQuery(after_seq=3, event_types=["agent_execution_started"]), limit=10)
    assert [e.data["agent_name"] for e in after] == ["Beta"]


def test_get_dashboard_is_one_instance_per_process_and_reset_replaces_it() -> None:
    first = get_dashboard()
    assert get_dashboard() is first
    fresh = reset_dashboard()
    assert fresh is not first and get_dashboard() is fresh


@pytest.mark.parametrize("module", ["otel_dashboard.state.dashboard", "otel_dashboard.state.singleton"])
def test_two_copies_of_the_module_share_one_singleton(tmp_path, module: str) -> None:
    # The original design could hold two singletons when imported under two module paths. Both the
    # module users import and the one that holds the singleton are copied.
    code = (
        f"import importlib.util, sys, {module} as a\n"
        "spec = importlib.util.spec_from_file_location('copy_of_state', a.__file__)\n"
        "b = importlib.util.module_from_spec(spec); spec.loader.exec_module(b)\n"
        "assert b is not a and b.get_dashboard() is a.get_dashboard()\n"
        "print('one')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "one"
