"""Live run progress end to end: ``DashboardState.update_runs`` -> ``run_progress`` on real WebSocket
clients of a real server on loopback; the snapshot's ``runs``; ``GET /api/runs``; the ``runs`` of
``POST /api/events`` and ``RemoteEventSender.submit_runs``. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType
from server_support import WAIT, running_server

from otel_dashboard.model.events import DashboardEvent, EventType, Severity
from otel_dashboard.model.run_records import MAX_RUN_TEXT_CHARS, MAX_RUN_TOOLS, parse_run_records
from otel_dashboard.pipeline.remote import RemoteEventSender
from otel_dashboard.server.app import HUB_KEY, DashboardWebSocketServer
from otel_dashboard.server.broadcast import transport as ws_transport
from otel_dashboard.state.dashboard import DashboardState
from otel_dashboard.state.runs import OpenRuns

pytestmark = pytest.mark.timeout(60)

PROGRESS_BOUND_SECONDS = 1.0  # the bound, from a child span's end to every browser
QUIET = 0.3  # how long "nothing arrives" is watched for


# --------------------------------------------------------------------------- helpers
def delivered(run: dict[str, Any]) -> dict[str, Any]:
    """A run state as the clients get it: the state adds the guardrails' fields (``over_budget``,
    ``stop``: docs/guardrails.md)."""
    return {**run, "over_budget": [], "stop": None}


def run_state(run_id: str, agent_name: str = "Researcher", **fields: Any) -> dict[str, Any]:
    """A run in the spec's shape (docs/server.md, run_progress)."""
    run: dict[str, Any] = {
        "run_id": run_id, "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "agent_id": agent_name.lower(),
        "agent_name": agent_name, "service_name": "research-agents", "task_description": "Find gaps",
        "parent_run_id": None, "root_run_id": run_id, "started_at": "2026-01-15T10:30:00.000Z",
        "updated_at": "2026-01-15T10:30:01.000Z", "status": "running", "current_step": "thinking",
        "model_calls": 1, "tool_calls": 0, "tool_failures": 0, "errors": 0,
        "tools": {}, "models": ["gpt-4o"],
        "tokens": {"input": 10, "output": 5, "total": 15, "cache_read_input": 0,
                   "cache_creation_input": 0, "reasoning_output": 0},
        "tokens_source": "model_calls", "cost_usd": 0.001, "cost_status": "priced", "unpriced_models": [],
    }
    run.update(fields)
    return run


def rid(n: int) -> str:
    return f"{n + 1:016x}"


def completed(run_id: str, agent_name: str = "Researcher") -> DashboardEvent:
    return DashboardEvent.create(
        EventType.AGENT_EXECUTION_COMPLETED,
        {"run_id": run_id, "agent_id": agent_name.lower(), "agent_name": agent_name, "success": True},
        Severity.SUCCESS,
    )


class Client:
    """A real WebSocket client of ``/ws`` that keeps every message, with its arrival time."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, snapshot: dict[str, Any]) -> None:
        self.ws = ws
        self.snapshot = snapshot
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self._read = 0

    @classmethod
    async def connect(cls, session: aiohttp.ClientSession, server: DashboardWebSocketServer) -> Client:
        ws = await asyncio.wait_for(session.ws_connect(server.url + "/ws"), WAIT)
        msg = await asyncio.wait_for(ws.receive(), WAIT)
        snapshot = orjson.loads(msg.data)
        assert snapshot["type"] == "snapshot", snapshot
        return cls(ws, snapshot)

    async def _receive(self, timeout: float) -> bool:
        try:
            msg = await asyncio.wait_for(self.ws.receive(), timeout)
        except asyncio.TimeoutError:
            return False
        assert msg.type is WSMsgType.TEXT, (msg.type, msg.data)
        self.messages.append((time.monotonic(), orjson.loads(msg.data)))
        return True

    async def next(self, mtype: str, timeout: float = WAIT) -> tuple[float, dict[str, Any]]:
        """The next unread message of type ``mtype`` and its arrival time (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            while self._read < len(self.messages):
                arrived, message = self.messages[self._read]
                self._read += 1
                if message["type"] == mtype:
                    return arrived, message
            remaining = deadline - time.monotonic()
            types = [m["type"] for _, m in self.messages]
            assert remaining > 0, f"no {mtype} within {timeout} s; got {types}"
            await self._receive(remaining)

    async def progress(self, timeout: float = WAIT) -> dict[str, Any]:
        return (await self.next("run_progress", timeout))[1]

    async def quiet(self, seconds: float = QUIET) -> list[dict[str, Any]]:
        """Every message arriving within ``seconds`` (read, so ``next`` skips them)."""
        deadline = time.monotonic() + seconds
        start = len(self.messages)
        while (remaining := deadline - time.monotonic()) > 0:
            await self._receive(remaining)
        self._read = len(self.messages)
        return [m for _, m in self.messages[start:]]


async def in_thread(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` in a worker thread, as the span processor's worker or a receiver thread calls it."""
    return await asyncio.to_thread(fn, *args)


# --------------------------------------------------------------------------- live progress
async def test_progress_from_a_worker_thread_reaches_every_client_within_1_s(
    session: aiohttp.ClientSession,
) -> None:
    state = DashboardState()
    async with running_server(state) as server:
        clients = [await Client.connect(session, server) for _ in range(3)]
        assert all(c.snapshot["runs"] == [] for c in clients)
        run = run_state(rid(1), current_step="calling tool get_weather", tool_calls=1,
                        tools={"get_weather": {"calls": 1, "failures": 0}})
        sent = time.monotonic()
        await in_thread(state.update_runs, [run])
        for client in clients:
            arrived, message = await client.next("run_progress")
            assert arrived - sent < PROGRESS_BOUND_SECONDS
            assert message == {"type": "run_progress", "runs": [delivered(run)]}  # no seq: not an event
        assert state.get_counters()["open_runs"] == 1


async def test_progress_through_aiohttps_send_path_and_with_deflate(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fence's feature test made to fail: every client gets a task writer, as deflate ones do.
    monkeypatch.setattr(ws_transport, "BaseProtocol", asyncio.Protocol)
    state = DashboardState()
    async with running_server(state, compress=True) as server:
        client = await Client.connect(session, server)
        state.publish(DashboardEvent.create(EventType.ERROR_OCCURRED, {"i": 1}))
        await in_thread(state.update_runs, [run_state(rid(1), tool_calls=4)])
        await client.next("events")
        assert [r["tool_calls"] for r in (await client.progress())["runs"]] == [4]
        assert [m["type"] for _, m in client.messages] == ["events", "run_progress"]


async def test_updates_between_two_passes_coalesce_latest_wins(session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    async with running_server(state) as server:
        client = await Client.connect(session, server)
        # On the loop, with no await in between: all of them before the one pass they schedule.
        for i in range(50):
            state.update_runs([run_state(rid(1), tool_calls=i), run_state(rid(2), tool_calls=100 + i)])
        message = await client.progress()
        assert [(r["run_id"], r["tool_calls"]) for r in message["runs"]] == [(rid(1), 49), (rid(2), 149)]
        assert [m for m in await client.quiet() if m["type"] == "run_progress"] == []


async def test_a_client_connecting_mid_run_gets_the_run_in_its_snapshot(
    session: aiohttp.ClientSession,
) -> None:
    state = DashboardState()
    async with running_server(state) as server:
        first = await Client.connect(session, server)
        await in_thread(state.update_runs, [run_state(rid(1), model_calls=3)])
        await in_thread(state.update_runs, [run_state(rid(2), agent_name="Writer")])
        await first.progress()
        late = await Client.connect(session, server)
        assert [(r["run_id"], r.get("model_calls")) for r in late.snapshot["runs"]] == [
            (rid(1), 3), (rid(2), 1)
        ]  # oldest-updated first
        # It then follows the live progress like everyone else.
        await in_thread(state.update_runs, [run_state(rid(1), model_calls=4)])
        assert (await late.progress())["runs"][0]["model_calls"] == 4


async def test_the_completion_closes_the_run_and_later_progress_for_it_is_ignored(
    session: aiohttp.ClientSession,
) -> None:
    state = DashboardState()
    async with running_server(state) as server:
        client = await Client.connect(session, server)
        await in_thread(state.update_runs, [run_state(rid(1)), run_state(rid(2))])
        await client.progress()
        await in_thread(state.publish, completed(rid(1)))
        while True:  # agent_registered (first sight) may come in a frame of its own
            _, frame = await client.next("events")
            if frame["events"][-1]["event_type"] == "agent_execution_completed":
                break

        await in_thread(state.update_runs, [run_state(rid(1), tool_calls=9)])  # late: ignored
        assert [m for m in await client.quiet() if m["type"] == "run_progress"] == []
        await in_thread(state.update_runs,
                        [run_state(rid(1), tool_calls=10), run_state(rid(2), tool_calls=2)])
        assert [r["run_id"] for r in (await client.progress())["runs"]] == [rid(2)]

        newcomer = await Client.connect(session, server)
        assert [r["run_id"] for r in newcomer.snapshot["runs"]] == [rid(2)]
        async with session.get(server.url + "/api/runs") as response:
            assert [r["run_id"] for r in (await response.json())["runs"]] == [rid(2)]
        counters = state.get_counters()
        assert counters["open_runs"] == 1 and counters["ignored_run_updates"] == 2


async def test_progress_is_never_in_the_history_nor_replayed_on_resume(
    session: aiohttp.ClientSession,
) -> None:
    state = DashboardState()
    async with running_server(state) as server:
        client = await Client.connect(session, server)
        for i in range(3):
            state.publish(DashboardEvent.create(EventType.ERROR_OCCURRED, {"i": i}))
            await in_thread(state.update_runs, [run_state(rid(1), errors=i + 1)])
            await client.progress()
        await client.ws.send_json({"type": "resume", "after_seq": 0})
        _, resumed = await client.next("resumed")
        replayed = [m for _, m in client.messages if m.get("replay")]
        assert sum(len(m["events"]) for m in replayed) == resumed["replayed"] == 3
        after_resume = await client.quiet()
        assert [m["type"] for m in after_resume] == []  # nothing replayed beside the events

        async with session.get(server.url + "/api/events", params={"limit": "1000"}) as response:
            history = await response.json()
        assert [e["event_type"] for e in history["events"]] == ["error_occurred"] * 3
        assert all("runs" not in e and "run_progress" not in orjson.dumps(e).decode()
                   for e in history["events"])
        assert sum(state.events_by_type().values()) == 3  # still the ten types, none for progress


async def test_the_agent_filter_applies_to_progress(session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    async with running_server(state) as server:
        client = await Client.connect(session, server)
        await client.ws.send_json({"type": "subscribe", "agents": ["Writer"]})
        await client.next("subscribed")
        await in_thread(state.update_runs, [run_state(rid(1), agent_name="Researcher"),
                                            run_state(rid(2), agent_name="Writer")])
        assert [r["agent_name"] for r in (await client.progress())["runs"]] == ["Writer"]
        await in_thread(state.update_runs, [run_state(rid(1), agent_name="Researcher", tool_calls=5)])
        assert [m for m in await client.quiet() if m["type"] == "run_progress"] == []
        # By agent id too, as for events.
        await client.ws.send_json({"type": "subscribe", "agents": ["researcher"]})
        await client.next("subscribed")
        await in_thread(state.update_runs, [run_state(rid(1), agent_name="Researcher", tool_calls=6)])
        assert [r["tool_calls"] for r in (await client.progress())["runs"]] == [6]


async def test_a_lagging_client_is_owed_progress_and_gets_the_newest_once_it_catches_up(
    session: aiohttp.ClientSession,
) -> None:
    state = DashboardState()
    async with running_server(state) as server:
        client = await Client.connect(session, server)
        other = await Client.connect(session, server)
        hub = server.app[HUB_KEY]  # type: ignore[index]
        lagging = next(c for c in hub.clients if c.id == 1)
        loop = asyncio.get_running_loop()
        lagging.send_started = loop.time()  # as if its socket were full: nothing may be written to it
        await in_thread(state.update_runs, [run_state(rid(1), tool_calls=1)])
        await in_thread(state.update_runs, [run_state(rid(1), tool_calls=2)])
        assert (await other.progress())["runs"][0]["tool_calls"] in (1, 2)
        assert [m for m in await client.quiet() if m["type"] == "run_progress"] == []
        assert hub.run_progress_stats()["deferred"] >= 1 and hub.run_progress_stats()["clients_owed"] == 1
        lagging.send_started = None  # drained
        arrived_by = time.monotonic() + PROGRESS_BOUND_SECONDS
        message = await client.progress()
        assert time.monotonic() < arrived_by
        assert [r["tool_calls"] for r in message["runs"]] == [2]  # the newest state, once
        assert not lagging.closing and hub.run_progress_stats()["clients_owed"] == 0


async def test_progress_never_follows_its_runs_completion_under_concurrent_producers(
    session: aiohttp.ClientSession,
) -> None:
    state = DashboardState()
    async with running_server(state) as server:
        client = await Client.connect(session, server)
        runs = [rid(n) for n in range(40)]
        stop = threading.Event()

        def produce(offset: int) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                state.update_runs([run_state(runs[(i + offset) % len(runs)], tool_calls=i)])

        def complete_all() -> None:
            for run_id in runs:
                state.publish(completed(run_id))
                time.sleep(0.002)

        producers = [threading.Thread(target=produce, args=(k * 7,)) for k in range(4)]
        for thread in producers:
            thread.start()
        try:
            await in_thread(complete_all)
        finally:
            stop.set()
            for thread in producers:
                thread.join(WAIT)
        while await client.quiet(0.2):
            pass
        closed: set[str] = set()
        late = []
        for _, message in client.messages:
            if message["type"] == "events":
                closed.update(e["data"]["run_id"] for e in message["events"]
                              if e["event_type"] == "agent_execution_completed")
            elif message["type"] == "run_progress":
                late.extend(r["run_id"] for r in message["runs"] if r["run_id"] in closed)
        assert closed == set(runs)
        assert late == []
        assert state.get_open_runs() == [] and (await Client.connect(session, server)).snapshot["runs"] == []


# --------------------------------------------------------------------------- state bounds
def test_the_open_table_is_bounded_least_recently_updated_evicted() -> None:
    state = DashboardState(max_open_runs=3)
    state.update_runs([run_state(rid(n)) for n in range(4)])
    state.update_runs([run_state(rid(1), tool_calls=1)])  # touched: now the most recent
    state.update_runs([run_state(rid(4))])
    assert [r["run_id"] for r in state.get_open_runs()] == [rid(3), rid(1), rid(4)]
    assert [r["run_id"] for r in state.get_open_runs(limit=2)] == [rid(1), rid(4)]  # the newest two
    counters = state.get_counters()
    assert counters["open_runs"] == 3 and counters["evicted_runs"] == 2
    with pytest.raises(ValueError, match="max_open_runs"):
        DashboardState(max_open_runs=0)


def test_completed_ids_are_remembered_within_a_bound() -> None:
    table = OpenRuns(max_open_runs=10, max_completed_runs=2)
    for n in range(3):
        table.complete(rid(n))
    assert not table.is_completed(rid(0)) and table.is_completed(rid(1)) and table.is_completed(rid(2))
    assert table.update([run_state(rid(0)), run_state(rid(2))]) == [run_state(rid(0))]
    assert table.ignored == 1


def test_update_runs_never_raises_and_bad_subscribers_cannot_break_it() -> None:
    state = DashboardState()
    seen: list[list[str]] = []

    def broken(runs: list[dict[str, Any]]) -> None:
        raise RuntimeError("subscriber bug")

    state.subscribe_runs(broken)
    state.subscribe_runs(lambda runs: seen.append([r["run_id"] for r in runs]))
    state.update_runs([None, {"run_id": 5}, "x", {"no": "id"}, run_state(rid(1)),  # type: ignore[list-item]
                       run_state(rid(3), tools={1: {"calls": 1}})])  # JSON cannot carry it
    state.update_runs(None)  # type: ignore[arg-type]
    assert seen == [[rid(1)]]
    counters = state.get_counters()
    assert counters["subscriber_errors"] == 1 and counters["ignored_run_updates"] == 5
    assert counters["open_runs"] == 1
    state.unsubscribe_runs(broken)
    state.update_runs([run_state(rid(2))])
    assert state.get_counters()["subscriber_errors"] == 1


def test_the_state_keeps_its_own_copy() -> None:
    state = DashboardState()
    run = run_state(rid(1), tools={"search": {"calls": 1, "failures": 0}})
    state.update_runs([run])
    run["tool_calls"] = 99
    run["tools"]["search"]["calls"] = 99
    run["tokens"]["input"] = 99
    kept = state.get_open_runs()[0]
    assert kept["tool_calls"] == 0 and kept["tools"]["search"]["calls"] == 1 and kept["tokens"]["input"] == 10


async def test_stats_and_metrics_show_the_run_counters(session: aiohttp.ClientSession) -> None:
    state = DashboardState(max_open_runs=2)
    async with running_server(state) as server:
        state.update_runs([run_state(rid(n)) for n in range(3)])
        async with session.get(server.url + "/stats") as response:
            stats = await response.json()
        assert stats["open_runs"] == 2 and stats["evicted_runs"] == 1
        assert set(stats["run_progress"]) == {"sent_messages", "deferred", "dropped_runs", "clients_owed"}
        async with session.get(server.url + "/metrics") as response:
            metrics = await response.text()
        assert "otel_dashboard_open_runs 2.0" in metrics
        assert "otel_dashboard_evicted_runs_total 1.0" in metrics


# --------------------------------------------------------------------------- GET /api/runs
async def test_api_runs_filters_and_limits(session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    async with running_server(state) as server:
        state.update_runs([run_state(rid(1), agent_name="Researcher"),
                           run_state(rid(2), agent_name="Writer", service_name="writers"),
                           run_state(rid(3), agent_name="Researcher")])

        async def runs(**params: str) -> list[str]:
            async with session.get(server.url + "/api/runs", params=params) as response:
                assert response.status == 200 and response.content_type == "application/json"
                return [r["run_id"] for r in (await response.json())["runs"]]

        assert await runs() == [rid(1), rid(2), rid(3)]
        assert await runs(limit="2") == [rid(2), rid(3)]
        assert await runs(agent="Researcher") == [rid(1), rid(3)]
        assert await runs(agent="writer,nobody") == [rid(2)]  # the agent id
        assert await runs(service="writers") == [rid(2)]
        assert await runs(agent="Researcher", limit="1") == [rid(3)]
        for params, parameter in [({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"),
                                  ({"agents": "x"}, "agents")]:
            async with session.get(server.url + "/api/runs", params=params) as response:
                assert response.status == 400
                assert (await response.json())["parameter"] == parameter


async def test_api_runs_needs_the_token_like_api_events(session: aiohttp.ClientSession) -> None:
    from otel_dashboard.server.security import SecurityConfig

    token = "s3cret-token-123"
    config = SecurityConfig.from_options(token=token, bind_host="127.0.0.1")
    async with running_server(security=config) as server:
        async with session.get(server.url + "/api/runs") as response:
            assert response.status == 401
        async with session.get(server.url + "/api/runs", headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200 and await r.json() == {"runs": []}


# --------------------------------------------------------------------------- POST /api/events runs
async def test_posted_runs_reach_the_clients_and_a_completion_in_the_same_request_wins(
    session: aiohttp.ClientSession,
) -> None:
    state = DashboardState()
    async with running_server(state) as server:
        client = await Client.connect(session, server)
        body = {"events": [], "runs": [run_state(rid(1), tool_calls=3), run_state(rid(2))]}
        async with session.post(server.url + "/api/events", json=body) as response:
            assert response.status == 200, await response.text()
            assert await response.json() == {"accepted": 0, "first_seq": None, "last_seq": None}
        message = await client.progress()
        assert [(r["run_id"], r["tool_calls"]) for r in message["runs"]] == [(rid(1), 3), (rid(2), 0)]
        assert message["runs"][0] == delivered(run_state(rid(1), tool_calls=3))  # every known field kept

        completion = completed(rid(2)).to_dict()
        completion.pop("seq")
        body = {"events": [completion], "runs": [run_state(rid(2), tool_calls=8)]}
        async with session.post(server.url + "/api/events", json=body) as response:
            assert response.status == 200
        assert [r["run_id"] for r in state.get_open_runs()] == [rid(1)]
        async with session.get(server.url + "/stats") as response:
            assert (await response.json())["receiver"]["ingested_runs"] == 3


async def test_posted_runs_keep_known_fields_only_and_are_capped(session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    async with running_server(state) as server:
        run = run_state(rid(1), agent_name="A" * 5000, secret="dropped",
                        tools={f"tool{i}": {"calls": i, "failures": 0, "extra": 1} for i in range(80)},
                        models=[f"m{i}" for i in range(50)],
                        tokens={"input": 1, "output": 2, "bogus": 3},
                        trace_id="4BF92F3577B34DA6A3CE929D0E0E4736",
                        started_at="2026-01-15T11:30:00+01:00")
        async with session.post(server.url + "/api/events", json={"events": [], "runs": [run]}) as response:
            assert response.status == 200
        kept = state.get_open_runs()[0]
        assert "secret" not in kept
        assert len(kept["agent_name"]) == MAX_RUN_TEXT_CHARS
        assert len(kept["tools"]) == MAX_RUN_TOOLS and kept["tools"]["tool3"] == {"calls": 3, "failures": 0}
        assert len(kept["models"]) == 20
        assert kept["tokens"] == {"input": 1, "output": 2}
        assert kept["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert kept["started_at"] == "2026-01-15T10:30:00.000Z"


@pytest.mark.parametrize(("runs", "field"), [
    ("nope", "runs"),
    ([{"agent_name": "x"}], "runs[0].run_id"),
    ([run_state("00F067AA0BA902B7")], "runs[0].run_id"),
    ([run_state("0" * 16)], "runs[0].run_id"),
    ([run_state(rid(1)), 5], "runs[1]"),
    ([run_state(rid(1), tool_calls=-1)], "runs[0].tool_calls"),
    ([run_state(rid(1), errors=True)], "runs[0].errors"),
    ([run_state(rid(1), model_calls=1.5)], "runs[0].model_calls"),
    ([run_state(rid(1), tokens={"input": "3"})], "runs[0].tokens.input"),
    ([run_state(rid(1), tokens=[1])], "runs[0].tokens"),
    ([run_state(rid(1), tools={"search": {"calls": False}})], "runs[0].tools['search'].calls"),
    ([run_state(rid(1), tools={"search": 3})], "runs[0].tools['search']"),
    ([run_state(rid(1), models="gpt-4o")], "runs[0].models"),
    ([run_state(rid(1), unpriced_models=[1])], "runs[0].unpriced_models[0]"),
    ([run_state(rid(1), cost_status="free")], "runs[0].cost_status"),
    ([run_state(rid(1), cost_usd=-1)], "runs[0].cost_usd"),
    ([run_state(rid(1), tokens_source=["x"])], "runs[0].tokens_source"),
    ([run_state(rid(1), agent_id=7)], "runs[0].agent_id"),
    ([run_state(rid(1), updated_at="yesterday")], "runs[0].updated_at"),
    ([run_state(rid(1), parent_run_id="xyz")], "runs[0].parent_run_id"),
    ([run_state(rid(1), trace_id="12")], "runs[0].trace_id"),
    ([run_state(rid(n)) for n in range(1001)], "runs"),
])
async def test_a_bad_run_refuses_the_request_naming_the_field(
    session: aiohttp.ClientSession, runs: Any, field: str
) -> None:
    state = DashboardState()
    async with running_server(state) as server:
        event = {"event_type": "error_occurred", "data": {"error_message": "kept?"}}
        async with session.post(server.url + "/api/events", json={"events": [event], "runs": runs}) as r:
            assert r.status == 400 and r.content_type == "application/json"
            body = await r.json()
        assert body["field"] == field, body
        assert body["error"].startswith(field + ": ")
        assert state.last_seq == 0 and state.get_open_runs() == []  # all or nothing


# --------------------------------------------------------------------------- RemoteEventSender
async def test_submit_runs_delivers_to_a_real_server(session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    async with running_server(state) as server:
        client = await Client.connect(session, server)
        sender = RemoteEventSender(server.url)
        try:
            assert await in_thread(sender.submit_runs, [run_state(rid(1), current_step="waiting on gpt-4o")])
            message = await client.progress()
            assert message["runs"] == [delivered(run_state(rid(1), current_step="waiting on gpt-4o"))]
            assert await in_thread(sender.force_flush, 5000)
            assert sender.sent_runs == 1 and sender.dropped_runs == 0 and sender.rejected_events == 0
        finally:
            await in_thread(sender.shutdown, 5000)


async def test_submit_runs_coalesces_in_place_and_never_resurrects_a_completed_run(
    session: aiohttp.ClientSession,
) -> None:
    state = DashboardState()
    async with running_server(state) as server:
        # A long pacing delay after the first request: what follows waits in the queue together.
        sender = RemoteEventSender(server.url, schedule_delay_millis=1500)
        try:
            first = DashboardEvent.create(EventType.ERROR_OCCURRED, {"error_message": "first"})
            assert sender.submit(first)
            deadline = time.monotonic() + WAIT
            while sender.sent_events < 1:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            assert sender.submit_runs([run_state(rid(1), tool_calls=1), run_state(rid(2), tool_calls=1)])
            assert sender.submit(completed(rid(1)))  # rid(1) ends...
            assert sender.submit_runs([run_state(rid(1), tool_calls=2), run_state(rid(2), tool_calls=2)])
            assert sender.queue_size == 3  # ...and its newer state took the place it had: before it
            assert await in_thread(sender.force_flush, 5000)
            assert sender.sent_runs == 2 and sender.sent_events == 2
            assert [(r["run_id"], r["tool_calls"]) for r in state.get_open_runs()] == [(rid(2), 2)]
            # A later state of the completed run (the next batch) is ignored by the server.
            assert sender.submit_runs([run_state(rid(1), tool_calls=3)])
            assert await in_thread(sender.force_flush, 5000)
            assert [r["run_id"] for r in state.get_open_runs()] == [rid(2)]
        finally:
            await in_thread(sender.shutdown, 5000)


async def test_submit_runs_splits_more_than_the_server_takes_and_drops_bad_runs_alone(
    session: aiohttp.ClientSession,
) -> None:
    state = DashboardState(max_open_runs=5000)
    async with running_server(state) as server:
        sender = RemoteEventSender(server.url, max_batch_size=4000, max_queue_size=5000,
                                   schedule_delay_millis=200)
        try:
            runs = [run_state(rid(n)) for n in range(2500)]
            bad = run_state(rid(9999), tool_calls=-5)  # the server would refuse the request for it
            assert sender.submit_runs([*runs, bad])
            assert sender.submit(DashboardEvent.create(EventType.ERROR_OCCURRED, {"error_message": "x"}))
            assert await in_thread(sender.force_flush, 10_000)
            assert sender.sent_runs == 2500 and sender.dropped_runs == 1
            assert sender.sent_events == 1 and sender.rejected_events == 0
            assert state.get_counters()["open_runs"] == 2500
        finally:
            await in_thread(sender.shutdown, 5000)


def test_submit_runs_never_raises_and_counts_what_it_drops() -> None:
    sender = RemoteEventSender("http://127.0.0.1:9", max_queue_size=2, max_batch_size=2,
                               max_retry_delay_millis=50)
    try:
        assert not sender.submit_runs([run_state(rid(1)), "x", {"run_id": 1}])  # type: ignore[list-item]
        assert sender.dropped_runs == 2
        assert not sender.submit_runs(None)  # type: ignore[arg-type]
    finally:
        sender.shutdown(100)
    assert not sender.submit_runs([run_state(rid(2))])


def test_the_wire_check_keeps_a_spec_run_unchanged() -> None:
    run = run_state(rid(1), tools={"get_weather": {"calls": 1, "failures": 1}}, cost_usd=None,
                    cost_status="no_price", unpriced_models=["local-llm"], parent_run_id=rid(7))
    assert parse_run_records([run]) == [run]
    assert parse_run_records(None) == []
