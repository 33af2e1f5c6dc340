"""Per-agent rolling-window usage (``otel_dashboard/state/agent_stats.py``) and what the state builds
on it: the numbers for a known sequence of completions (failures, tokens, cost, percentiles), window
expiry on an injected clock, the caps, the ``usage_window_seconds`` option, the one count of "active"
(started UNION open runs), and runs unknown since a restart coming back on their events or progress.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from otel_dashboard.model.events import DashboardEvent, EventType, Severity, format_timestamp
from otel_dashboard.state.agent_stats import AgentStats, cost_status_of, parse_epoch
from otel_dashboard.state.dashboard import DashboardState
from otel_dashboard.store.sqlite import SqliteEventStore

T0 = 1_700_000_000.0  # a whole minute (divisible by 60): bucket arithmetic stays readable


class Clock:
    """An injected clock: seconds since the epoch, moved by the test."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def iso(epoch: float) -> str:
    return format_timestamp(int(epoch * 1_000_000_000))


def done(agent: str = "Researcher", service: str | None = "svc", *, ok: bool = True, ms: float | None = 100.0,
         tokens: tuple[int, int] | None = None, cost: float | None = None, status: str | None = None,
         run_id: str = "r", **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"agent_id": agent.lower(), "agent_name": agent, "service_name": service,
                            "run_id": run_id, "success": ok, "duration_ms": ms}
    if tokens is not None:
        data["tokens"] = {"input": tokens[0], "output": tokens[1], "total": sum(tokens)}
    if cost is not None:
        data["cost_usd"] = cost
    if status is not None:
        data["cost_status"] = status
    data.update(extra)
    return data


# --------------------------------------------------------------------------- AgentStats alone
def test_a_known_sequence_adds_up_per_agent_and_in_the_totals() -> None:
    clock = Clock(T0 + 30)
    stats = AgentStats(window_seconds=600, bucket_seconds=60, clock=clock)
    for i in range(10):  # Researcher: 10 runs, 100..1000 ms, two failures, priced
        stats.record(done(ms=100.0 * (i + 1), ok=i not in (3, 7), tokens=(100, 20), cost=0.01,
                          status="priced", run_id=f"r{i}", error_type="TimeoutError" if i == 7 else None,
                          error_message="slow tool" if i == 7 else None),
                     iso(T0 - 120 + i))
    stats.record(done("Writer", None, tokens=(5, 5), status="no_price"), iso(T0))  # tokens, no price
    stats.record(done("Writer", None, ms=None), iso(T0 + 10))  # no tokens, no duration

    agents = {a["agent"]: a for a in stats.agents()}
    researcher = agents["Researcher"]
    assert researcher["service"] == "svc" and researcher["running"] == 0
    assert (researcher["runs"], researcher["failures"], researcher["success_rate"]) == (10, 2, 0.8)
    assert researcher["duration_ms"] == {"p50": 500.0, "p95": 1000.0, "samples": 10}  # nearest rank
    assert researcher["tokens"] == {"input": 1000, "output": 200}
    assert researcher["cost_usd"] == pytest.approx(0.1) and researcher["cost_status"] == "priced"
    assert researcher["last_error"] == {"type": "TimeoutError", "message": "slow tool",
                                        "at": iso(T0 - 113), "run_id": "r7"}
    assert researcher["last_run_at"] == iso(T0 - 111)
    # 10 buckets, oldest first: the runs fell in the bucket two minutes before T0's.
    activity = researcher["activity"]
    assert len(activity) == 10 and activity[7] == 10 and sum(activity) == 10
    assert researcher["failures_activity"][7] == 2 and sum(researcher["failures_activity"]) == 2

    writer = agents["Writer"]
    assert writer["service"] is None and writer["runs"] == 2 and writer["failures"] == 0
    assert writer["duration_ms"] == {"p50": 100.0, "p95": 100.0, "samples": 1}
    assert writer["cost_usd"] == 0.0 and writer["cost_status"] == "no_price" and writer["last_error"] is None
    assert writer["activity"][9] == 2

    totals = stats.totals()
    assert (totals["runs"], totals["failures"], totals["error_rate"]) == (12, 2, round(2 / 12, 4))
    assert totals["tokens"] == {"input": 1005, "output": 205}
    assert totals["cost_usd"] == pytest.approx(0.1) and totals["cost_status"] == "partial"
    # Most recently active first.
    assert [a["agent"] for a in stats.agents()] == ["Writer", "Researcher"]


def test_the_window_expires_bucket_by_bucket_and_forgets_idle_agents() -> None:
    clock = Clock(T0)
    stats = AgentStats(window_seconds=300, bucket_seconds=60, clock=clock)
    stats.record(done(ok=False), iso(T0 - 250))  # the oldest bucket of the window
    stats.record(done(), iso(T0 - 10))
    stats.record(done(), iso(T0 - 400))  # already out of the window: ignored
    stats.record(done(), iso(T0 + 3600))  # a sender's clock ahead: counts now
    stats.record(done(), "not a time")  # unreadable: ignored
    assert stats.totals()["runs"] == 3
    assert stats.agents()[0]["activity"] == [1, 0, 0, 0, 2]

    clock.now = T0 + 60  # the oldest bucket leaves, with its failure
    assert stats.totals()["runs"] == 2 and stats.totals()["failures"] == 0
    entry = stats.agents()[0]
    assert entry["activity"] == [0, 0, 0, 2, 0] and entry["failures"] == 0
    assert entry["duration_ms"]["samples"] == 2
    assert entry["last_error"] is not None  # the newest failure stays while the agent is tracked

    clock.now = T0 + 360  # nothing left: totals empty, the agent forgotten
    assert stats.totals() == {"runs": 0, "failures": 0, "error_rate": None,
                              "tokens": {"input": 0, "output": 0}, "cost_usd": 0.0, "cost_status": None}
    assert stats.agents() == [] and len(stats) == 0
    # An agent running now is listed with no completion in the window.
    entry = stats.agents({("Planner", None): 2})[0]
    assert (entry["agent"], entry["running"], entry["runs"], entry["success_rate"]) == ("Planner", 2, 0, None)
    assert entry["activity"] == [0] * 5


def test_agents_and_samples_are_capped() -> None:
    clock = Clock(T0)
    stats = AgentStats(window_seconds=600, bucket_seconds=60, max_agents=3, max_samples=4, clock=clock)
    for i in range(5):
        stats.record(done(f"A{i}"), iso(T0 - 5 + i))
    assert len(stats) == 3 and stats.evicted == 2
    assert [a["agent"] for a in stats.agents()] == ["A4", "A3", "A2"]  # the least recently active went
    assert stats.totals()["runs"] == 5  # the totals keep the evicted agents' runs
    for i in range(10):
        stats.record(done("A4", ms=float(i)), iso(T0))
    entry = stats.agents()[0]
    assert entry["runs"] == 11 and entry["duration_ms"] == {"p50": 7.0, "p95": 9.0, "samples": 4}


def test_odd_values_count_as_missing_and_direct_api_token_fields_count() -> None:
    stats = AgentStats(clock=Clock(T0))
    stats.record({"agent_id": "x", "success": "no", "duration_ms": "slow", "tokens": [1], "cost_usd": -1,
                  "service_name": ["svc"]}, iso(T0))
    stats.record({"agent_name": "x", "input_tokens": 7, "output_tokens": 2, "cost_usd": 0.5}, iso(T0))
    entry = stats.agents()[0]
    assert (entry["agent"], entry["service"], entry["runs"], entry["failures"]) == ("x", None, 2, 0)
    assert entry["tokens"] == {"input": 7, "output": 2} and entry["cost_usd"] == 0.5
    assert entry["cost_status"] == "priced" and entry["duration_ms"]["samples"] == 0


def test_cost_status_of_a_sum_and_the_bounds() -> None:
    assert cost_status_of({}) is None
    assert cost_status_of({"no_tokens": 3}) == "no_tokens"
    assert cost_status_of({"priced": 2, "no_tokens": 1}) == "priced"
    assert cost_status_of({"no_price": 2, "no_tokens": 1}) == "no_price"
    assert cost_status_of({"priced": 1, "no_price": 1}) == "partial"
    assert cost_status_of({"partial": 1}) == "partial"
    assert parse_epoch("2026-01-01T00:00:00Z") == parse_epoch("2026-01-01T00:00:00") is not None
    assert parse_epoch(None) is None and parse_epoch("nope") is None
    with pytest.raises(ValueError, match="window_seconds must be a multiple"):
        AgentStats(window_seconds=100, bucket_seconds=60)
    with pytest.raises(ValueError, match="max_agents"):
        AgentStats(max_agents=0)


# --------------------------------------------------------------------------- through the state
def completed(run_id: str, agent: str = "Researcher", *, ok: bool = True, **data: Any) -> DashboardEvent:
    return DashboardEvent.create(
        EventType.AGENT_EXECUTION_COMPLETED,
        {"run_id": run_id, "agent_id": agent.lower(), "agent_name": agent, "service_name": "svc",
         "success": ok, "duration_ms": 50.0, **data},
        Severity.SUCCESS if ok else Severity.ERROR,
    )


def started(run_id: str, agent: str = "Researcher", started_at: str | None = None) -> DashboardEvent:
    data = {"run_id": run_id, "agent_id": agent.lower(), "agent_name": agent, "service_name": "svc"}
    if started_at is not None:
        data["started_at"] = started_at
    return DashboardEvent.create(EventType.AGENT_EXECUTION_STARTED, data)


def run(run_id: str, agent: str = "Researcher", **fields: Any) -> dict[str, Any]:
    return {"run_id": run_id, "agent_id": agent.lower(), "agent_name": agent, "service_name": "svc",
            "started_at": format_timestamp(), "status": "running", **fields}


def test_usage_window_seconds_is_validated_naming_it() -> None:
    assert DashboardState(usage_window_seconds=600).get_agent_stats()["bucket_seconds"] == 10
    for bad in (0, 59, 61, 3601, 7 * 86400 + 60, 600.0, True, "3600"):
        with pytest.raises(ValueError, match="usage_window_seconds"):
            DashboardState(usage_window_seconds=bad)  # type: ignore[arg-type]


def test_active_is_the_union_of_started_runs_and_open_runs_by_run_id() -> None:
    state = DashboardState(stall_threshold_seconds=60)
    state.publish(started("a" * 16))
    state.publish(started("b" * 16, "Writer"))
    state.update_runs([run("a" * 16), run("c" * 16, "Writer"),  # a: in both; c: progress only
                       run("d" * 16, started_at=format_timestamp(int((time.time() - 120) * 1e9)))])
    assert state.get_metrics()["active_agents"] == 4
    assert state.get_dashboard_stats()["active_agents"] == 4
    summary = {r["run_id"]: r for r in state.get_open_run_summary()}
    assert sorted(summary) == ["a" * 16, "b" * 16, "c" * 16, "d" * 16]
    assert [r for r in summary if summary[r]["stalled"]] == ["d" * 16]  # started 2 min ago, threshold 1
    body = state.get_agent_stats()
    assert {(a["agent"], a["running"]) for a in body["agents"]} == {("Researcher", 2), ("Writer", 2)}
    assert body["totals"]["running"] == 4
    state.publish(completed("a" * 16))
    state.publish(completed("c" * 16, "Writer", ok=False))
    assert state.get_metrics()["active_agents"] == 2
    assert state.get_agent_stats(agents=["writer"])["agents"][0]["failures"] == 1  # by agent id too


def test_metrics_updated_follows_progress_only_runs_and_the_window_moving() -> None:
    state = DashboardState(usage_window_seconds=60)  # 1 s buckets
    assert state.emit_metrics_if_changed() is None
    state.update_runs([run("e" * 16)])  # no event accepted, but the active count moved
    event = state.emit_metrics_if_changed()
    assert event is not None and event.data["active_agents"] == 1
    assert state.emit_metrics_if_changed() is None
    # A completion in the oldest bucket of the window: it leaves within a second.
    oldest = int(time.time()) - 59 + 0.1
    state.publish(DashboardEvent.create(EventType.AGENT_EXECUTION_COMPLETED,
                                        {"run_id": "e" * 16, "agent_name": "R", "success": True},
                                        timestamp_ns=int(oldest * 1e9)))
    first = state.emit_metrics_if_changed()
    assert first is not None and first.data["window_runs"] in (0, 1)
    deadline = time.monotonic() + 3
    while state.get_metrics()["window_runs"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    if first.data["window_runs"]:
        second = state.emit_metrics_if_changed()
        assert second is not None and second.data["window_runs"] == 0


def test_an_unknown_run_comes_back_on_an_event_or_progress_naming_it(tmp_path: Any) -> None:
    path = tmp_path / "events.db"
    state = DashboardState(store=SqliteEventStore(path))
    long_ago = format_timestamp(int((time.time() - 30) * 1e9))
    for n in (1, 2, 3):
        state.publish(started(f"{n:016x}", started_at=long_ago))
    state.publish(completed("9" * 16, ok=False, tokens={"input": 3, "output": 4}, cost_usd=0.2))
    assert state.wait_durable(timeout_seconds=5)
    before = state.get_agent_stats()
    state.store.close()

    again = DashboardState(store=SqliteEventStore(path))
    try:
        lost = again.get_lost_agents()
        assert [a["status"] for a in lost] == ["unknown"] * 3
        assert all(a["unknown_since"] == a["lost_detected_at"] for a in lost)
        assert again.get_metrics()["active_agents"] == 0 and again.get_metrics()["lost_agents"] == 3
        # The window's numbers came back with the replay (the running ones are unknown now).
        assert before["totals"].pop("running") == 3 and again.get_agent_stats()["totals"] == {
            **before["totals"], "running": 0}
        assert again.get_metrics()["window_tokens_output"] == 4

        again.publish(DashboardEvent.create(EventType.ERROR_OCCURRED,
                                            {"run_id": f"{1:016x}", "error_message": "retrying"}))
        again.update_runs([run(f"{2:016x}")])
        assert [a["run_id"] for a in again.get_lost_agents()] == [f"{3:016x}"]
        active = {a["run_id"]: a for a in again.get_active_agents()}
        assert sorted(active) == [f"{1:016x}", f"{2:016x}"]
        assert all(a["started_at"] == long_ago and a["elapsed_seconds"] >= 29 for a in active.values())
        assert "status" not in active[f"{1:016x}"]
        assert again.get_metrics()["active_agents"] == 2
        again.publish(completed(f"{1:016x}"))
        assert again.get_metrics()["active_agents"] == 1 and again.get_metrics()["window_runs"] == 2
    finally:
        again.store.close()
