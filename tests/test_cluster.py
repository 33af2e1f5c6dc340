"""Several dashboard servers sharing one Redis (``broker=``): one sequence, every event everywhere once.

Real ``redis-server`` processes on free loopback ports (tests/redis_support.py), real servers (in
process, or ``otel-dashboard serve`` subprocesses where a replica is killed), real WebSocket clients.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType
from redis_support import RedisServer
from server_support import WAIT, read_line_matching, running_server

from otel_dashboard.cli import build_parser
from otel_dashboard.cli import main as cli_main
from otel_dashboard.server.app import DashboardWebSocketServer
from otel_dashboard.server.broker import BROKER_KEY, BrokerConfig, redact_url
from otel_dashboard.server.health import HEALTH_KEY
from otel_dashboard.state.dashboard import DashboardState
from otel_dashboard.store.sqlite import SqliteEventStore

pytestmark = pytest.mark.timeout(90)


def _config(redis: RedisServer, prefix: str, **kwargs: Any) -> BrokerConfig:
    return BrokerConfig(redis.url, prefix=prefix, **kwargs)


@asynccontextmanager
async def _replicas(
    redis: RedisServer, count: int = 2, **kwargs: Any
) -> AsyncIterator[list[DashboardWebSocketServer]]:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(running_server(
                DashboardState(max_history=20_000), broker=_config(redis, prefix, replica=f"r{i}", **kwargs)
            ))
            for i in range(count)
        ]


class ClusterClient:
    """A WebSocket client that keeps the numbered events it receives and can move to another replica."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.events: list[dict[str, Any]] = []
        self.provisional: list[dict[str, Any]] = []
        self.gaps: list[dict[str, Any]] = []
        self.last_seq = 0
        self.resumed: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def connect(self, url: str, *, resume: bool = False) -> None:
        ws = await asyncio.wait_for(self.session.ws_connect(url + "/ws"), WAIT)
        snapshot = orjson.loads((await asyncio.wait_for(ws.receive(), WAIT)).data)
        assert snapshot["type"] == "snapshot"
        if resume:
            await ws.send_str(orjson.dumps({"type": "resume", "after_seq": self.last_seq}).decode())
        else:
            self.last_seq = snapshot["seq"]
        self.closed = asyncio.Event()
        self._task = asyncio.ensure_future(self._read(ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    break
                message = orjson.loads(msg.data)
                if message["type"] == "events" and message.get("provisional"):
                    self.provisional.extend(message["events"])
                elif message["type"] == "events":
                    for event in message["events"]:
                        self.events.append(event)
                        self.last_seq = event["seq"]
                elif message["type"] == "gap":
                    self.gaps.append(message)
                elif message["type"] == "resumed":
                    self.resumed.append(message)
        finally:
            self.closed.set()

    def markers(self, run: str) -> list[int]:
        return [e["data"]["i"] for e in self.events if e["data"].get("run") == run]

    async def wait_for_markers(self, run: str, count: int, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while len(set(self.markers(run))) < count:
            assert time.monotonic() < deadline, (
                f"{len(set(self.markers(run)))} of {count} events within {timeout} s; gaps {self.gaps}")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task


async def _clients_on(
    session: aiohttp.ClientSession, servers: list[DashboardWebSocketServer], count: int
) -> list[ClusterClient]:
    """``count`` connected clients, taking the servers in turn (client i on server i % len)."""
    clients = [ClusterClient(session) for _ in range(count)]
    for i, client in enumerate(clients):
        await client.connect(servers[i % len(servers)].url)
    return clients


async def _caught_up(server: DashboardWebSocketServer, seq: int) -> None:
    """Until ``server``'s state has taken the event ``seq`` from the stream."""
    deadline = time.monotonic() + WAIT
    while server.state.last_seq < seq:
        assert time.monotonic() < deadline, f"seq {seq} not taken within {WAIT} s"
        await asyncio.sleep(0.02)


def _batch(run: str, start: int, count: int) -> dict[str, Any]:
    return {"events": [
        {"event_type": "error_occurred", "event_id": f"{run}-{i}", "data": {"run": run, "i": i}}
        for i in range(start, start + count)
    ]}


def _assert_in_seq_order_once(client: ClusterClient) -> None:
    seqs = [e["seq"] for e in client.events]
    assert seqs == sorted(set(seqs)), "events out of seq order or repeated"


async def test_two_replicas_every_client_sees_every_event_once_in_seq_order(
    redis_server: RedisServer, session: aiohttp.ClientSession
) -> None:
    async with _replicas(redis_server) as (a, b):
        clients = await _clients_on(session, [a, b], 6)
        answers = []
        for start in range(0, 400, 50):
            response = await session.post(a.url + "/api/events", json=_batch("r", start, 50))
            assert response.status == 200
            answers.append(await response.json())
        for client in clients:
            await client.wait_for_markers("r", 400)
        # The seqs the ingest answered are the ones every client on both replicas got.
        answered = [seq for answer in answers for seq in range(answer["first_seq"], answer["last_seq"] + 1)]
        assert all(not answer["buffered"] for answer in answers)
        for client in clients:
            _assert_in_seq_order_once(client)
            assert client.markers("r") == list(range(400))
            assert [e["seq"] for e in client.events if e["data"].get("run") == "r"] == answered
            assert not client.gaps and not client.provisional
        for client in clients:
            await client.close()


async def test_metrics_active_agents_and_registrations_agree_across_replicas(
    redis_server: RedisServer, session: aiohttp.ClientSession
) -> None:
    async with _replicas(redis_server) as (a, b):
        watcher = ClusterClient(session)
        await watcher.connect(b.url)

        def run(agent: str, kind: str) -> dict[str, Any]:
            return {"event_type": f"agent_execution_{kind}",
                    "data": {"agent_id": agent, "agent_name": agent.title(), "run_id": f"{agent}-1",
                             "success": True, "run": "m", "i": 0}}

        # The first runs of the same agents arrive at both replicas at once: one registration each.
        posts = [session.post(server.url + "/api/events", json={"events": [run(agent, "started")]})
                 for agent in ("alpha", "beta", "gamma") for server in (a, b)]
        for response in await asyncio.gather(*posts):
            assert response.status == 200
        response = await session.post(b.url + "/api/events", json={"events": [run("alpha", "completed")]})
        assert response.status == 200
        seq = (await response.json())["last_seq"]
        await _caught_up(a, seq)
        await _caught_up(b, seq)
        for key in ("total_events", "active_agents", "total_agents_executed"):
            assert a.state.get_metrics()[key] == b.state.get_metrics()[key], key
        assert sorted(x["agent_id"] for x in a.state.get_active_agents()) == ["beta", "gamma"]
        assert sorted(x["agent_id"] for x in b.state.get_active_agents()) == ["beta", "gamma"]
        assert a.state.get_known_agents() == b.state.get_known_agents()
        assert a.state.events_by_type()["agent_registered"] == 3
        assert b.state.events_by_type()["agent_registered"] == 3
        await watcher.close()


async def test_a_trace_sent_to_one_replica_shows_on_the_other(
    redis_server: RedisServer, session: aiohttp.ClientSession
) -> None:
    trace_id, span_id = "ab" * 16, "cd" * 8
    async with _replicas(redis_server) as (a, b):
        body = {"events": [{"event_type": "agent_execution_completed", "trace_id": trace_id,
                            "span_id": span_id, "data": {"agent_id": "t", "run_id": "t-1"}}],
                "spans": [{"trace_id": trace_id, "span_id": span_id, "name": "agent.t",
                           "start_time_unix_nano": 1, "end_time_unix_nano": 2}]}
        assert (await session.post(a.url + "/api/events", json=body)).status == 200
        deadline = time.monotonic() + WAIT
        while (response := await session.get(f"{b.url}/api/traces/{trace_id}")).status != 200:
            assert time.monotonic() < deadline, "the other replica never got the span"
            await asyncio.sleep(0.05)
        trace = await response.json()
        assert [span["name"] for span in trace["spans"]] == ["agent.t"]


async def test_the_snapshot_names_the_replica_and_health_events_carry_it(
    redis_server: RedisServer, session: aiohttp.ClientSession
) -> None:
    async with _replicas(redis_server) as (a, b):
        ws = await session.ws_connect(b.url + "/ws")
        snapshot = orjson.loads((await ws.receive()).data)
        assert snapshot["server"]["replica"] == "r1"
        a.app[HEALTH_KEY].publish_health()  # type: ignore[index]
        while True:
            message = orjson.loads((await asyncio.wait_for(ws.receive(), WAIT)).data)
            if message["type"] == "events":
                health = [e for e in message["events"] if e["event_type"] == "system_health_updated"]
                if health:
                    break
        assert health[0]["data"]["replica"] == "r0"
        await ws.close()


async def test_metrics_endpoint_reports_the_broker(
    redis_server: RedisServer, session: aiohttp.ClientSession
) -> None:
    async with _replicas(redis_server, count=1) as (a,):
        assert (await session.post(a.url + "/api/events", json=_batch("p", 0, 3))).status == 200
        await _caught_up(a, 3)
        text = await (await session.get(a.url + "/metrics")).text()
        assert "otel_dashboard_broker_connected 1.0" in text
        assert "otel_dashboard_broker_appended_events_total 3.0" in text
        assert "otel_dashboard_broker_received_events_total 3.0" in text


async def test_only_one_replica_leads_the_metrics(redis_server: RedisServer) -> None:
    async with _replicas(redis_server) as (a, b):
        leaders = [await server.app[BROKER_KEY].is_leader(5000) for server in (a, b)]  # type: ignore[index]
        assert sorted(leaders) == [False, True]
        # The lease is renewed by its holder, not taken over.
        assert [await server.app[BROKER_KEY].is_leader(5000) for server in (a, b)] == leaders  # type: ignore[index]


def _serve_replica(redis: RedisServer, prefix: str, name: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "otel_dashboard", "serve", "--port", "0", "--db", ":memory:",
         "--history", "20000", "--name", name, "--broker", redis.url, "--broker-prefix", prefix],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "OTEL_DASHBOARD_TOKEN": ""},
    )
    match = read_line_matching(proc, re.compile(r"serving on (http://\S+)/dashboard"), WAIT)
    return proc, match.group(1)


async def test_clients_of_a_killed_replica_resume_on_the_other_without_a_gap(
    redis_server: RedisServer, session: aiohttp.ClientSession
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    doomed, doomed_url = _serve_replica(redis_server, prefix, "doomed")
    survivor, survivor_url = _serve_replica(redis_server, prefix, "survivor")
    try:
        movers = [ClusterClient(session) for _ in range(3)]
        stayers = [ClusterClient(session) for _ in range(2)]
        for client in movers:
            await client.connect(doomed_url)
        for client in stayers:
            await client.connect(survivor_url)
        total = 0
        for round_ in range(30):
            target = doomed_url if round_ < 10 else survivor_url
            response = await session.post(target + "/api/events", json=_batch("k", total, 20))
            assert response.status == 200
            total += 20
            if round_ == 10:
                await movers[0].wait_for_markers("k", 200)  # the doomed replica's clients are mid-stream
                doomed.send_signal(signal.SIGKILL)
                doomed.wait(timeout=WAIT)
                for client in movers:
                    await asyncio.wait_for(client.closed.wait(), WAIT)
                    await client.connect(survivor_url, resume=True)
            await asyncio.sleep(0.01)
        for client in movers + stayers:
            await client.wait_for_markers("k", total)
            _assert_in_seq_order_once(client)
            assert client.markers("k") == list(range(total))
            assert not client.gaps
        for client in movers:
            assert client.resumed and client.resumed[-1]["type"] == "resumed"
        for client in movers + stayers:
            await client.close()
    finally:
        for proc in (doomed, survivor):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def test_redis_down_for_5_s_under_load_loses_nothing_accepted(
    redis_server: RedisServer, session: aiohttp.ClientSession
) -> None:
    async with _replicas(redis_server) as (a, b):
        clients = await _clients_on(session, [a, b], 4)
        sent = 0
        statuses: list[int] = []
        health_during: list[dict[str, Any]] = []

        async def post(count: int) -> None:
            nonlocal sent
            response = await session.post(a.url + "/api/events", json=_batch("o", sent, count))
            statuses.append(response.status)
            sent += count

        for _ in range(20):  # 2 s with Redis
            await post(10)
            await asyncio.sleep(0.1)
        redis_server.stop()
        down_until = time.monotonic() + 5.0
        while time.monotonic() < down_until:  # 5 s without: the replica buffers and shows its own events
            await post(10)
            health_during.append(await (await session.get(a.url + "/health")).json())
            await asyncio.sleep(0.1)
        provisional_seen = [len(c.provisional) for c in clients]
        redis_server.start()
        for _ in range(20):  # 2 s after
            await post(10)
            await asyncio.sleep(0.1)
        assert set(statuses) == {200}, "every request was accepted"
        for client in clients:
            await client.wait_for_markers("o", sent, timeout=20)
            _assert_in_seq_order_once(client)
            assert client.markers("o") == list(range(sent))
        assert health_during[-1]["status"] == "degraded"
        assert "broker down" in health_during[-1]["reasons"]
        assert health_during[-1]["broker"]["connected"] is False
        assert max(h["broker"]["buffered_events"] for h in health_during) > 0
        # Replica a's own clients saw its events while Redis was down; b's could not.
        assert provisional_seen[0] > 0 and provisional_seen[2] > 0
        assert provisional_seen[1] == provisional_seen[3] == 0
        deadline = time.monotonic() + WAIT
        while (await (await session.get(a.url + "/health")).json())["status"] != "healthy":
            assert time.monotonic() < deadline, "health stays degraded after Redis is back"
            await asyncio.sleep(0.1)
        for client in clients:
            await client.close()


async def test_a_full_buffer_refuses_ingest_with_503_and_keeps_what_it_holds(
    redis_server: RedisServer, session: aiohttp.ClientSession
) -> None:
    async with _replicas(redis_server, count=1, max_buffered_events=25) as (a,):
        client = ClusterClient(session)
        await client.connect(a.url)
        redis_server.stop()
        response = await session.post(a.url + "/api/events", json=_batch("f", 0, 20))
        assert response.status == 200
        assert await response.json() == {
            "accepted": 20, "first_seq": None, "last_seq": None, "buffered": True}
        response = await session.post(a.url + "/api/events", json=_batch("f", 20, 10))
        assert response.status == 503
        assert (await response.json())["error"] == (
            "the broker is unreachable and its buffer of 25 events is full; send them again")
        assert response.headers["Retry-After"]
        redis_server.start()
        await client.wait_for_markers("f", 20, timeout=20)
        assert client.markers("f") == list(range(20))
        await client.close()


async def test_a_replica_starts_while_redis_is_down_and_catches_up(
    redis_server: RedisServer, session: aiohttp.ClientSession
) -> None:
    redis_server.stop()
    async with _replicas(redis_server, count=1) as (a,):
        health = await (await session.get(a.url + "/health")).json()
        assert health["status"] == "degraded" and health["broker"]["connected"] is False
        response = await session.post(a.url + "/api/events", json=_batch("s", 0, 5))
        assert (await response.json())["buffered"] is True
        redis_server.start()
        deadline = time.monotonic() + 20
        while a.state.last_seq < 5:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        stored = [e.data["i"] for e in a.state.get_events_after(0) if e.data.get("run") == "s"]
        assert stored == list(range(5))


async def test_a_replica_joining_after_the_stream_was_trimmed_takes_the_saved_state(
    redis_server: RedisServer, session: aiohttp.ClientSession
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    config = _config(redis_server, prefix, max_stream_events=100, snapshot_interval_seconds=0.1)
    async with running_server(DashboardState(max_history=5000), broker=config) as a:
        runs = [{"event_type": "agent_execution_started",
                 "data": {"agent_id": f"agent-{i}", "run_id": f"run-{i}"}} for i in range(30)]
        runs += [{"event_type": "agent_execution_completed",
                  "data": {"agent_id": f"agent-{i}", "run_id": f"run-{i}", "quality_score": 0.5}}
                 for i in range(10)]
        assert (await session.post(a.url + "/api/events", json={"events": runs})).status == 200
        for start in range(0, 1000, 100):
            assert (await session.post(a.url + "/api/events", json=_batch("t", start, 100))).status == 200
        broker = a.app[BROKER_KEY]  # type: ignore[index]
        deadline = time.monotonic() + WAIT
        while broker._snapshot_seq != a.state.last_seq:
            assert time.monotonic() < deadline, "the leader did not save its state"
            await asyncio.sleep(0.05)
        assert await broker._redis.xlen(f"{prefix}:events") < 500  # the stream dropped the oldest
        async with running_server(DashboardState(max_history=5000),
                                  broker=_config(redis_server, prefix, replica="late")) as late:
            await _caught_up(late, a.state.last_seq)
            for key in ("total_events", "active_agents", "total_agents_executed", "avg_quality_score",
                        "total_errors"):
                assert late.state.get_metrics()[key] == a.state.get_metrics()[key], key
            assert late.state.get_metrics()["active_agents"] == 20
            assert late.state.events_by_type() == a.state.events_by_type()
            assert late.state.get_known_agents() == a.state.get_known_agents()
            # What the stream still held is history the late replica can replay.
            assert late.state.get_events_after(a.state.last_seq - 50, 100) == a.state.get_events_after(
                a.state.last_seq - 50, 100)


async def test_a_replica_restarted_on_its_database_keeps_the_cluster_runs_running(
    redis_server: RedisServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "replica.db"
    started = {"event_type": "agent_execution_started", "data": {"agent_id": "long", "run_id": "long-1"}}
    store = SqliteEventStore(path)
    async with running_server(DashboardState(store=store), broker=_config(redis_server, prefix)) as a:
        seq = (await (await session.post(a.url + "/api/events", json=started)).json())["last_seq"]
        await _caught_up(a, seq)
    store.close()
    # Alone, a restart on the database would report the run as lost; in the cluster it still runs.
    store = SqliteEventStore(path)
    try:
        state = DashboardState(store=store)
        assert [x["run_id"] for x in state.get_lost_agents()] == ["long-1"]
        async with running_server(state, broker=_config(redis_server, prefix)) as again, \
                running_server(DashboardState(), broker=_config(redis_server, prefix)) as other:
            assert [x["run_id"] for x in again.state.get_active_agents()] == ["long-1"]
            assert again.state.get_lost_agents() == []
            completed = {"event_type": "agent_execution_completed",
                         "data": {"agent_id": "long", "run_id": "long-1", "success": True}}
            response = await session.post(other.url + "/api/events", json=completed)
            last = (await response.json())["last_seq"]
            assert last == seq + 1  # the cluster's numbering went on from where it was
            await _caught_up(again, last)
            assert again.state.get_active_agents() == []
    finally:
        store.close()


# --------------------------------------------------------------------------- configuration
@pytest.mark.parametrize(("kwargs", "named"), [
    ({"url": "http://localhost:6379"}, "broker url"),
    ({"url": "redis://h", "prefix": ""}, "broker prefix"),
    ({"url": "redis://h", "max_stream_events": 0}, "broker max_stream_events"),
    ({"url": "redis://h", "max_buffered_events": True}, "broker max_buffered_events"),
    ({"url": "redis://h", "snapshot_interval_seconds": 0}, "broker snapshot_interval_seconds"),
])
def test_broker_config_names_the_bad_field(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        BrokerConfig(**kwargs)


def test_a_bad_broker_option_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="broker"):
        DashboardWebSocketServer(port=0, broker=6379)
    with pytest.raises(ValueError, match="redis://"):
        DashboardWebSocketServer(port=0, broker="localhost:6379")


def test_urls_are_shown_without_their_password() -> None:
    assert redact_url("redis://:s3cret@db:6379/0") == "redis://***@db:6379/0"
    assert redact_url("redis://user:s3cret@db:6379/0") == "redis://user:***@db:6379/0"
    assert redact_url("redis://db:6379/0") == "redis://db:6379/0"


def test_serve_refuses_a_bad_broker_url(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main(["serve", "--broker", "http://localhost:6379"])
    assert exc.value.code == 2
    assert "--broker: must start with redis://" in capsys.readouterr().err


def test_a_bad_broker_url_in_the_environment_names_the_option(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_DASHBOARD_BROKER", "http://:s3cret@localhost:6379")
    with pytest.raises(SystemExit) as exc:
        cli_main(["serve"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--broker: must start with redis://" in err
    assert "s3cret" not in err


def test_the_broker_url_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_DASHBOARD_BROKER", "redis://:s3cret@redis-host:6379/0")
    args = build_parser().parse_args(["serve"])
    assert args.broker == "redis://:s3cret@redis-host:6379/0"


def test_serve_without_the_redis_package_says_how_to_install_it() -> None:
    code = ("import sys; sys.modules['redis'] = None; sys.modules['redis.asyncio'] = None\n"
            "from otel_dashboard.cli import main\n"
            "sys.exit(main(['serve', '--port', '0', '--db', ':memory:', '--broker', 'redis://127.0.0.1:1/0']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "pip install 'otel-dashboard[redis]'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
