"""Integration tests of the dashboard server: real sockets on loopback, real aiohttp clients.

Every test uses a fresh :class:`DashboardState` and a server on a free port; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType
from server_support import running_server

from otel_dashboard.model.events import DashboardEvent, EventType, Severity
from otel_dashboard.server.app import HUB_KEY, DashboardWebSocketServer, create_app
from otel_dashboard.server.broadcast import handoff
from otel_dashboard.server.broadcast import transport as ws_transport
from otel_dashboard.server.websocket import handle_client_message
from otel_dashboard.state.dashboard import DashboardState

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0  # generous upper bound for any single wait; tests normally take milliseconds


# --------------------------------------------------------------------------- helpers
@pytest.fixture(name="html_path")
def fixture_html_path(tmp_path: Path) -> Path:
    page = tmp_path / "index.html"
    page.write_text("<!doctype html><title>test dashboard</title><p>hello</p>")
    return page


@pytest.fixture(name="static_dir")
def fixture_static_dir(tmp_path: Path) -> Path:
    static = tmp_path / "static"
    static.mkdir()
    (static / "style.css").write_text("body { color: black; }")
    return static


@pytest.fixture(name="make_server")
async def fixture_make_server(
    html_path: Path,
) -> AsyncIterator[Callable[..., Any]]:
    async with AsyncExitStack() as stack:

        async def make(state: DashboardState | None = None, **options: Any) -> DashboardWebSocketServer:
            options.setdefault("dashboard_html_path", html_path)
            return await stack.enter_async_context(running_server(state, **options))

        yield make


def event(
    event_type: EventType | str = EventType.ERROR_OCCURRED,
    severity: Severity | str = Severity.INFO,
    **data: Any,
) -> DashboardEvent:
    return DashboardEvent.create(event_type, data, severity)


async def recv(ws: aiohttp.ClientWebSocketResponse, timeout: float = WAIT) -> dict[str, Any]:
    msg = await asyncio.wait_for(ws.receive(), timeout)
    assert msg.type is WSMsgType.TEXT, (msg.type, msg.data)
    return orjson.loads(msg.data)


async def recv_type(ws: aiohttp.ClientWebSocketResponse, mtype: str, timeout: float = WAIT) -> dict[str, Any]:
    """The next message of type ``mtype`` (skipping live event frames)."""
    deadline = time.monotonic() + timeout
    while True:
        message = await recv(ws, max(0.01, deadline - time.monotonic()))
        if message["type"] == mtype:
            return message
        assert message["type"] == "events", message


async def connect(
    session: aiohttp.ClientSession, server: DashboardWebSocketServer, **kwargs: Any
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    ws = await asyncio.wait_for(session.ws_connect(server.url + "/ws", **kwargs), WAIT)
    snapshot = await recv(ws)
    assert snapshot["type"] == "snapshot"
    return ws, snapshot


async def collect_seqs(
    ws: aiohttp.ClientWebSocketResponse, until_seq: Callable[[], int | None], timeout: float = WAIT
) -> tuple[list[int], list[int]]:
    """Event seqs received (and the size of each events frame) until ``until_seq()`` is reached."""
    seqs: list[int] = []
    frames: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        target = until_seq()
        if target is not None and seqs and seqs[-1] >= target:
            return seqs, frames
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out at seq {seqs[-1] if seqs else None}, waiting for {target}"
        try:
            message = await recv(ws, min(remaining, 0.5))
        except asyncio.TimeoutError:
            continue
        assert message["type"] == "events", message
        frames.append(len(message["events"]))
        seqs.extend(e["seq"] for e in message["events"])


@pytest.fixture(name="public_send", params=[False, True], ids=["direct", "public"])
def fixture_public_send(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Also run the test through aiohttp's public send path: the fence's feature test is made to
    fail (a protocol class without ``_drain_helper``), so every client gets a task writer."""
    if request.param:
        monkeypatch.setattr(ws_transport, "BaseProtocol", asyncio.Protocol)
    return request.param


def publish_many(state: DashboardState, n: int, **data: Any) -> None:
    for i in range(n):
        state.publish(event(i=i, **data))


async def stalled_client(port: int) -> socket.socket:
    """A WebSocket client made by hand that completes the handshake and then never reads."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), WAIT)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1024), WAIT)
        assert chunk, "server closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head[:100]
    return sock


async def stall_server_side(server: DashboardWebSocketServer, sock: socket.socket) -> None:
    """Shrink the server's send buffer for ``sock``'s connection, so kernel buffers cannot hide
    that the peer stopped reading (loopback send buffers autotune to megabytes otherwise)."""
    hub = server.app[HUB_KEY]  # type: ignore[index]
    port = sock.getsockname()[1]
    await wait_for_condition(
        lambda: any(c.transport.get_extra_info("peername")[1] == port for c in hub.clients)
    )
    for client in hub.clients:
        if client.transport.get_extra_info("peername")[1] == port:
            client.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)


async def wait_for_condition(check: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


# --------------------------------------------------------------------------- HTTP
async def test_http_routes(make_server: Any, session: aiohttp.ClientSession, static_dir: Path) -> None:
    state = DashboardState()
    server = await make_server(state, name="lab", static_dir=static_dir)
    assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"

    async with session.get(server.url + "/", allow_redirects=False) as r:
        assert r.status == 302 and r.headers["Location"] == "/dashboard"
    async with session.get(server.url + "/dashboard") as r:
        assert r.status == 200 and r.content_type == "text/html"
        assert "test dashboard" in await r.text()
    async with session.get(server.url + "/static/style.css") as r:
        assert r.status == 200 and "color" in await r.text()

    for path in ("/nope", "/static/missing.js", "/static/../../etc/passwd", "/api/nope"):
        async with session.get(server.url + path) as r:
            assert r.status == 404, path
            assert r.content_type == "application/json"
            body = await r.json()
            assert set(body) == {"error"} and "/" not in body["error"]
    async with session.post(server.url + "/health") as r:
        assert r.status == 405 and r.content_type == "application/json"
        assert "error" in await r.json()
    async with session.get(server.url + "/ws") as r:  # plain GET, no upgrade
        assert r.status == 400 and r.content_type == "application/json"

    state.publish(event())
    async with session.get(server.url + "/health") as r:
        assert r.status == 200 and r.content_type == "application/json"
        health = await r.json()
    assert health["status"] == "healthy" and health["reasons"] == []
    assert health["service"] == "otel-dashboard"
    assert health["name"] == "lab" and health["version"] == "0.1.0"
    assert health["timestamp"].endswith("Z") and health["last_seq"] == 1
    for key in ("connected_clients", "uptime_seconds", "events_per_second", "dropped_events"):
        assert key in health

    ws, _ = await connect(session, server)
    async with session.get(server.url + "/stats") as r:
        assert r.status == 200 and r.content_type == "application/json"
        stats = await r.json()
    for key in ("metrics", "active_agents", "total_opportunities", "recent_events",
                "system_uptime_seconds", "connected_clients", "events_per_second"):
        assert key in stats, key
    assert stats["connected_clients"] == 1 and stats["metrics"]["total_events"] == 1
    assert stats["dropped_events"]["total"] == 0
    (client,) = stats["clients"]
    assert set(client) >= {"id", "remote", "queue_depth", "sent_events", "dropped_events", "filters"}
    await ws.close()


async def test_create_app_with_test_client(aiohttp_client: Any, html_path: Path) -> None:
    state = DashboardState()
    client = await aiohttp_client(create_app(state, dashboard_html_path=html_path,
                                             metrics_interval_seconds=None, health_interval_seconds=None))
    assert state.get_counters()["subscribers"] == 2  # the broadcaster and /metrics' per-agent series
    resp = await client.get("/health")
    assert resp.status == 200 and (await resp.json())["connected_clients"] == 0
    ws = await client.ws_connect("/ws")
    assert (await ws.receive_json())["type"] == "snapshot"
    await state.error_occurred("test", "boom", "RuntimeError")
    frame = await asyncio.wait_for(ws.receive_json(), WAIT)
    assert frame["events"][0]["data"]["error_message"] == "boom"
    await ws.close()


async def test_start_fails_clearly(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "index.html"
    server = DashboardWebSocketServer(port=0, dashboard_html_path=missing, state=DashboardState())
    with pytest.raises(FileNotFoundError, match="nowhere"):
        await server.start()
    assert not server.started
    await server.stop()  # idempotent even when never started


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"port": 70000}, "port"),
        ({"port": -1}, "port"),
        ({"history_size": -1}, "history_size"),
        ({"client_queue_size": 0}, "client_queue_size"),
        ({"send_timeout_seconds": 0}, "send_timeout_seconds"),
        ({"heartbeat_seconds": "x"}, "heartbeat_seconds"),
        ({"max_message_bytes": 10}, "max_message_bytes"),
        ({"health_interval_seconds": -5}, "health_interval_seconds"),
        ({"metrics_interval_seconds": float("nan")}, "metrics_interval_seconds"),
        ({"name": 42}, "name"),
        ({"host": ""}, "host"),
        ({"max_client_queue_bytes": 1000}, "max_client_queue_bytes"),
        ({"max_client_queue_bytes": True}, "max_client_queue_bytes"),
        ({"max_total_queue_bytes": 2**40}, "max_total_queue_bytes"),
    ],
)
def test_options_are_validated(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(ValueError, match=parameter):
        DashboardWebSocketServer(**kwargs)


async def test_api_events(make_server: Any, session: aiohttp.ClientSession) -> None:
    state = DashboardState(max_history=1000)
    server = await make_server(state)
    await state.agent_started("a1", "Researcher", "find")
    await state.agent_started("a2", "Writer", "write")
    await state.error_occurred("tool", "boom", "RuntimeError")
    await state.agent_completed("a1", "Researcher", "find", 12.0, True)

    async def get(query: str) -> tuple[int, dict[str, Any]]:
        async with session.get(server.url + "/api/events" + query) as r:
            assert r.content_type == "application/json"
            return r.status, await r.json()

    status, body = await get("")
    assert status == 200
    seqs = [e["seq"] for e in body["events"]]
    assert seqs == sorted(seqs) and seqs[-1] == body["last_seq"] == state.last_seq
    assert body["first_seq"] == 1

    status, body = await get("?event_type=agent_execution_started,agent_execution_completed&agent=Researcher")
    assert [e["event_type"] for e in body["events"]] == [
        "agent_execution_started", "agent_execution_completed"
    ]
    status, body = await get("?event_type=error_occurred&event_type=agent_registered")
    assert {e["event_type"] for e in body["events"]} == {"error_occurred", "agent_registered"}
    status, body = await get("?severity=error")
    assert [e["data"]["error_message"] for e in body["events"]] == ["boom"]
    status, body = await get("?after_seq=2&limit=2")
    assert [e["seq"] for e in body["events"]] == [3, 4]
    status, body = await get("?limit=1")
    assert [e["seq"] for e in body["events"]] == [state.last_seq]  # newest when no after_seq

    for query, parameter in [
        ("?limit=0", "limit"), ("?limit=1001", "limit"), ("?limit=ten", "limit"),
        ("?after_seq=-1", "after_seq"), ("?after_seq=1.5", "after_seq"),
        ("?event_type=nope", "event_type"), ("?severity=fatal", "severity"), ("?colour=red", "colour"),
    ]:
        status, body = await get(query)
        assert status == 400, query
        assert body["parameter"] == parameter and body["error"], query


# --------------------------------------------------------------------------- WebSocket basics
async def test_snapshot_then_live_events(make_server: Any, session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    server = await make_server(state, name="lab", history_size=2)
    await state.opportunity_discovered("o1", "Idea", "desc", 0.9, "$1M", "tech")
    await state.agent_started("a1", "Researcher", "find")
    ws, snapshot = await connect(session, server)
    assert snapshot["seq"] == state.last_seq == 3  # opportunity, agent_registered, started
    assert [e["seq"] for e in snapshot["events"]] == [2, 3]  # history_size newest, ascending
    assert snapshot["metrics"]["total_opportunities_discovered"] == 1
    assert snapshot["opportunities"][0]["opportunity_id"] == "o1"
    assert snapshot["active_agents"][0]["agent_id"] == "a1"
    assert snapshot["server"] == {"name": "lab", "version": "0.1.0", "stall_threshold_seconds": 300.0}
    assert server.connected_clients == 1

    await state.error_occurred("x", "in loop", "E")  # the loop's own thread
    thread = threading.Thread(target=lambda: state.publish(event(msg="from a thread")))
    thread.start()
    thread.join()
    seqs, _ = await collect_seqs(ws, lambda: 5)
    assert seqs == [4, 5]
    await ws.close()
    await wait_for_condition(lambda: server.connected_clients == 0)


async def test_in_loop_burst_is_batched_and_complete_despite_a_stalled_client(
    make_server: Any, session: aiohttp.ClientSession, public_send: bool
) -> None:
    state = DashboardState()
    server = await make_server(state, send_timeout_seconds=1.0)
    assert server.app[HUB_KEY].direct_writes is not public_send
    sock = await stalled_client(server.port)
    await stall_server_side(server, sock)
    ws, snapshot = await connect(session, server)
    await wait_for_condition(lambda: server.connected_clients == 2)
    base = snapshot["seq"]
    publish_many(state, 5000, pad="x" * 200)  # synchronous, inside the server's loop
    seqs, frames = await collect_seqs(ws, lambda: base + 5000)
    assert seqs == list(range(base + 1, base + 5001))
    assert max(frames) > 1 and len(frames) < 5000  # batched
    await wait_for_condition(lambda: server.connected_clients == 1)  # the stalled one was closed
    sock.close()
    await ws.close()


async def test_light_load_sends_each_event_immediately(
    make_server: Any, session: aiohttp.ClientSession
) -> None:
    state = DashboardState()
    server = await make_server(state)
    ws, _ = await connect(session, server)
    for i in range(3):
        await state.error_occurred("x", f"e{i}", "E")
        message = await recv(ws, 2.0)
        assert [e["data"]["error_message"] for e in message["events"]] == [f"e{i}"]
    await ws.close()


async def test_subscribe_filters(make_server: Any, session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    server = await make_server(state)
    ws, _ = await connect(session, server)

    await ws.send_json({"type": "subscribe", "event_types": ["error_occurred"]})
    reply = await recv_type(ws, "subscribed")
    assert reply == {"type": "subscribed", "event_types": ["error_occurred"], "severities": [], "agents": []}
    await state.synthesis_started("p1", "ignored")
    await state.error_occurred("x", "kept", "E")
    assert [e["data"]["error_message"] for e in (await recv(ws))["events"]] == ["kept"]

    await ws.send_json({"type": "subscribe", "severities": ["warning"]})
    await recv_type(ws, "subscribed")
    await state.quality_score_updated("q", 99.0)  # success
    await state.quality_score_updated("q", 91.0)  # warning
    assert [e["data"]["overall_score"] for e in (await recv(ws))["events"]] == [91.0]

    await ws.send_json({"type": "subscribe", "agents": ["Writer"]})
    await recv_type(ws, "subscribed")
    await state.agent_started("a1", "Researcher", "t")
    await state.agent_started("a2", "Writer", "t")
    frame = await recv(ws)
    assert {e["data"]["agent_name"] for e in frame["events"]} == {"Writer"}

    # Errors: the filter stays as it was.
    for bad, needle in [
        ({"type": "subscribe", "event_types": ["nope", "error_occurred"]}, "nope"),
        ({"type": "subscribe", "severities": ["fatal"]}, "fatal"),
        ({"type": "subscribe", "agents": "Writer"}, "agents"),
        ({"type": "subscribe", "event_types": [1]}, "event_types"),
    ]:
        await ws.send_json(bad)
        error = await recv_type(ws, "error")
        assert needle in error["message"]
    await state.agent_started("a3", "Writer", "t2")
    await state.agent_started("a4", "Critic", "t")
    frame = await recv(ws)  # a3 is new: agent_registered comes first
    assert [(e["event_type"], e["data"]["agent_id"]) for e in frame["events"]] == [
        ("agent_registered", "a3"), ("agent_execution_started", "a3")
    ]

    await ws.send_json({"type": "subscribe"})  # empty = everything again
    assert await recv_type(ws, "subscribed") == {
        "type": "subscribed", "event_types": [], "severities": [], "agents": []
    }
    await ws.close()


async def test_resume_replays_exactly_without_duplicates(
    make_server: Any, session: aiohttp.ClientSession
) -> None:
    state = DashboardState(max_history=1000)
    server = await make_server(state)
    publish_many(state, 50)
    ws, snapshot = await connect(session, server)
    assert snapshot["seq"] == 50
    publish_many(state, 10)
    seqs, _ = await collect_seqs(ws, lambda: 60)
    assert seqs == list(range(51, 61))

    await ws.send_json({"type": "resume", "after_seq": 20})
    replayed: list[int] = []
    while True:
        message = await recv(ws)
        if message["type"] == "resumed":
            break
        assert message["type"] == "events" and message["replay"] is True
        replayed.extend(e["seq"] for e in message["events"])
    assert replayed == list(range(21, 61))
    assert message == {"type": "resumed", "after_seq": 20, "seq": 60, "replayed": 40, "complete": True}
    publish_many(state, 5)
    seqs, _ = await collect_seqs(ws, lambda: 65)
    assert seqs == list(range(61, 66))

    # With a filter, the replay is filtered too.
    await ws.send_json({"type": "subscribe", "severities": ["error"]})
    await recv_type(ws, "subscribed")
    await state.error_occurred("x", "the one", "E")
    await recv(ws)
    await ws.send_json({"type": "resume", "after_seq": 0})
    frame = await recv(ws)
    assert frame["replay"] is True and [e["seq"] for e in frame["events"]] == [66]
    assert (await recv(ws))["type"] == "resumed"

    # A seq from the future (say, from before a server restart) replays nothing and breaks nothing.
    await ws.send_json({"type": "subscribe"})
    await recv_type(ws, "subscribed")
    await ws.send_json({"type": "resume", "after_seq": 10**9})
    assert await recv(ws) == {
        "type": "resumed", "after_seq": 10**9, "seq": 66, "replayed": 0, "complete": True}
    publish_many(state, 1)
    assert [e["seq"] for e in (await recv(ws))["events"]] == [67]
    await ws.close()


async def test_resume_drops_queued_live_events_it_replays(
    make_server: Any, session: aiohttp.ClientSession
) -> None:
    state = DashboardState(max_history=1000)
    server = await make_server(state)
    ws, snapshot = await connect(session, server)
    base = snapshot["seq"]
    (client,) = server.app[HUB_KEY].clients  # type: ignore[index]
    publish_many(state, 30)  # queued for the client; its writer has not run yet
    resume = orjson.dumps({"type": "resume", "after_seq": base + 10}).decode()
    handle_client_message(server.app[HUB_KEY], client, resume)  # type: ignore[index]
    received: list[tuple[bool, int]] = []
    while (message := await recv(ws))["type"] != "resumed":
        received.extend((message.get("replay", False), e["seq"]) for e in message["events"])
    assert received == [(True, seq) for seq in range(base + 11, base + 31)]
    publish_many(state, 1)
    assert [e["seq"] for e in (await recv(ws))["events"]] == [base + 31]
    await ws.close()


async def test_resume_reports_a_gap_when_history_is_too_small(
    make_server: Any, session: aiohttp.ClientSession
) -> None:
    state = DashboardState(max_history=10)
    server = await make_server(state)
    publish_many(state, 30)
    ws, _ = await connect(session, server)
    await ws.send_json({"type": "resume", "after_seq": 5})
    gap = await recv(ws)
    assert gap["type"] == "gap" and (gap["from"], gap["to"]) == (6, 20)
    frame = await recv(ws)
    assert frame["replay"] is True and [e["seq"] for e in frame["events"]] == list(range(21, 31))
    assert (await recv(ws))["type"] == "resumed"
    await ws.close()


async def test_ping_pong(make_server: Any, session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    server = await make_server(state)
    publish_many(state, 3)
    ws, _ = await connect(session, server)
    await ws.send_json({"type": "ping"})
    pong = await recv(ws)
    assert pong["type"] == "pong" and pong["seq"] == 3 and pong["timestamp"].endswith("Z")
    await ws.close()


async def test_bad_messages_get_errors_and_the_connection_stays(
    make_server: Any, session: aiohttp.ClientSession
) -> None:
    state = DashboardState()
    server = await make_server(state, max_message_bytes=1024)
    ws, _ = await connect(session, server)
    cases: list[tuple[Any, str]] = [
        ("{not json", "malformed"),
        ("[1, 2]", "object"),
        ('"ping"', "object"),
        ('{"kind": "ping"}', "type"),
        ('{"type": 7}', "type"),
        ('{"type": "dance"}', "unknown message type"),
        ('{"type": "resume"}', "after_seq"),
        ('{"type": "resume", "after_seq": "3"}', "after_seq"),
        ('{"type": "resume", "after_seq": -1}', "after_seq"),
        ('{"type": "resume", "after_seq": true}', "after_seq"),
        ('{"type": "ping", "pad": "' + "x" * 2000 + '"}', "too large"),
        (b"\x00\x01binary", "binary"),
    ]
    for payload, needle in cases:
        if isinstance(payload, bytes):
            await ws.send_bytes(payload)
        else:
            await ws.send_str(payload)
        reply = await recv(ws)
        assert reply["type"] == "error" and needle in reply["message"], (payload[:40], reply)
    await ws.send_json({"type": "ping"})
    assert (await recv(ws))["type"] == "pong"
    await state.error_occurred("x", "still live", "E")
    assert (await recv(ws))["events"][0]["data"]["error_message"] == "still live"

    # Beyond aiohttp's own frame limit (1 MiB here) the connection is closed with 1009.
    await ws.send_str("x" * (2 * 1024 * 1024 + 10))
    msg = await asyncio.wait_for(ws.receive(), WAIT)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    assert ws.close_code == 1009
    await wait_for_condition(lambda: server.connected_clients == 0)


# --------------------------------------------------------------------------- slow clients
async def test_queue_overflow_sends_a_gap_then_resume_catches_up(
    make_server: Any, session: aiohttp.ClientSession
) -> None:
    state = DashboardState(max_history=1000)
    server = await make_server(state, client_queue_size=50)
    ws, snapshot = await connect(session, server)
    base = snapshot["seq"]
    publish_many(state, 60)  # in-loop: the writer cannot run, the queue overflows once
    gap = await recv(ws)
    assert gap == {"type": "gap", "from": base + 1, "to": base + 50, "reason": "queue_overflow"}
    seqs, _ = await collect_seqs(ws, lambda: base + 60)
    assert seqs == list(range(base + 51, base + 61))
    await ws.send_json({"type": "resume", "after_seq": gap["from"] - 1})
    replayed: list[int] = []
    while (message := await recv(ws))["type"] != "resumed":
        replayed.extend(e["seq"] for e in message["events"])
    assert replayed == list(range(base + 1, base + 61))
    async with session.get(server.url + "/stats") as r:
        stats = await r.json()
    assert stats["dropped_events"]["queue_overflow"] == 50
    assert stats["clients"][0]["dropped_events"] == 50
    async with session.get(server.url + "/health") as r:
        health = await r.json()
    assert health["status"] == "degraded" and health["dropped_events"] == 50
    assert health["reasons"] == ["recent dropped events"]
    await ws.close()


async def test_second_overflow_closes_with_1013(
    make_server: Any, session: aiohttp.ClientSession, public_send: bool
) -> None:
    state = DashboardState()
    server = await make_server(state, client_queue_size=50)
    ws, _ = await connect(session, server)
    publish_many(state, 120)
    closed = None
    while closed is None:
        msg = await asyncio.wait_for(ws.receive(), WAIT)
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED):
            closed = msg
    assert ws.close_code == 1013
    assert "too slow" in (closed.extra or "")
    await wait_for_condition(lambda: server.connected_clients == 0)


async def test_handoff_overflow_is_reported_as_a_gap(
    make_server: Any, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handoff, "HANDOFF_LIMIT", 10)
    state = DashboardState()
    server = await make_server(state)
    ws, snapshot = await connect(session, server)
    base = snapshot["seq"]
    producer = threading.Thread(target=publish_many, args=(state, 50))
    producer.start()
    producer.join(WAIT)  # deliberately blocks the loop: the hand-off fills up
    seqs, _ = await collect_seqs(ws, lambda: base + 10)
    assert seqs == list(range(base + 1, base + 11))
    assert await recv(ws) == {"type": "gap", "from": base + 11, "to": base + 50, "reason": "handoff_overflow"}
    async with session.get(server.url + "/stats") as r:
        assert (await r.json())["dropped_events"]["handoff_overflow"] == 40
    publish_many(state, 1)
    assert [e["seq"] for e in (await recv(ws))["events"]] == [base + 51]
    await ws.close()


async def test_stalled_client_never_slows_the_producer_or_the_others(
    make_server: Any, session: aiohttp.ClientSession
) -> None:
    state = DashboardState(max_history=100)
    server = await make_server(state, send_timeout_seconds=1.0)
    sock = await stalled_client(server.port)
    await stall_server_side(server, sock)
    clients = [await connect(session, server) for _ in range(10)]
    await wait_for_condition(lambda: server.connected_clients == 11)
    base = state.last_seq
    total = 20_000
    longest = 0.0

    def produce() -> None:
        nonlocal longest
        for i in range(total):
            ev = event(i=i, pad="y" * 150)
            t0 = time.perf_counter()
            state.publish(ev)
            longest = max(longest, time.perf_counter() - t0)
            if i % 1000 == 999:
                time.sleep(0.005)  # a fast producer, not an infinitely fast one

    producer = threading.Thread(target=produce)
    readers = [
        asyncio.ensure_future(collect_seqs(ws, lambda: base + total, timeout=30)) for ws, _ in clients
    ]
    producer.start()
    try:
        results = await asyncio.wait_for(asyncio.gather(*readers), 40)
    finally:
        await asyncio.to_thread(producer.join, 10)
    for seqs, frames in results:
        assert seqs == list(range(base + 1, base + total + 1))
        assert max(frames) > 1
    # A producer blocked by the stalled client would wait for seconds (until the send timeout); the
    # bound is loose because one GIL hand-off on a loaded 2-core machine can take tens of ms.
    assert longest < 0.5, f"a publish call took {longest * 1000:.1f} ms"
    await wait_for_condition(lambda: server.connected_clients == 10)  # the stalled one is gone
    async with session.get(server.url + "/stats") as r:
        drops = (await r.json())["dropped_events"]
    assert drops["queue_overflow"] + drops["slow_client_closed"] > 0
    sock.close()
    for ws, _ in clients:
        await ws.close()


async def test_heartbeat_disconnects_a_peer_that_never_answers(
    make_server: Any, session: aiohttp.ClientSession
) -> None:
    server = await make_server(DashboardState(), heartbeat_seconds=0.2)
    silent = await stalled_client(server.port)  # a hand-made client: it never answers pings
    ws, _ = await connect(session, server)
    reader = asyncio.ensure_future(ws.receive())  # aiohttp's client answers pings while receiving
    await wait_for_condition(lambda: server.connected_clients == 2)
    await wait_for_condition(lambda: server.connected_clients == 1, timeout=5)
    await asyncio.sleep(0.5)  # several heartbeat periods: the live client stays
    assert server.connected_clients == 1 and not ws.closed and not reader.done()
    silent.close()
    reader.cancel()
    await ws.close()


# --------------------------------------------------------------------------- consistency
async def test_no_event_lost_or_doubled_across_connect(
    make_server: Any, session: aiohttp.ClientSession
) -> None:
    state = DashboardState(max_history=200)
    # A fast metrics timer mixes in-loop publishes with the thread's.
    server = await make_server(state, metrics_interval_seconds=0.01)
    stop = threading.Event()

    def produce() -> None:
        i = 0
        while not stop.is_set() and i < 200_000:
            state.publish(event(i=i))
            i += 1
            if i % 50 == 0:
                time.sleep(0.001)

    producer = threading.Thread(target=produce)
    producer.start()
    clients: list[tuple[aiohttp.ClientWebSocketResponse, int, asyncio.Future[Any]]] = []
    final: list[int] = []
    try:
        for _ in range(20):
            ws, snapshot = await connect(session, server)
            reader = asyncio.ensure_future(collect_seqs(ws, lambda: final[0] if final else None, timeout=30))
            clients.append((ws, snapshot["seq"], reader))
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.to_thread(producer.join, 10)
    final.append(state.last_seq)  # the metrics timer may add more; every client must reach this
    snapshot_seqs = [snap_seq for _, snap_seq, _ in clients]
    assert snapshot_seqs == sorted(snapshot_seqs) and len(set(snapshot_seqs)) > 10  # joined mid-stream
    results = await asyncio.wait_for(asyncio.gather(*(reader for _, _, reader in clients)), 30)
    for (_, snap_seq, _), (seqs, _) in zip(clients, results, strict=True):
        assert seqs[: final[0] - snap_seq] == list(range(snap_seq + 1, final[0] + 1))
    for ws, _, _ in clients:
        await ws.close()


async def test_disconnect_storm_leaves_no_errors(
    make_server: Any, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    state = DashboardState()
    server = await make_server(state)
    running = True

    async def broadcast() -> None:
        i = 0
        while running:
            state.publish(event(i=i))
            i += 1
            await asyncio.sleep(0.001)

    broadcaster = asyncio.ensure_future(broadcast())
    limit = asyncio.Semaphore(50)

    async def visit(k: int) -> None:
        async with limit:
            if k % 4 == 0:  # vanish without a close handshake: a TCP reset
                sock = await stalled_client(server.port)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
                return
            ws = await session.ws_connect(server.url + "/ws")
            await ws.receive()
            if k % 3 == 0:
                await ws.send_json({"type": "ping"})
            await ws.close()

    try:
        await asyncio.wait_for(asyncio.gather(*(visit(k) for k in range(200))), 30)
    finally:
        running = False
        await broadcaster
    await wait_for_condition(lambda: server.connected_clients == 0)
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


# --------------------------------------------------------------------------- timers
async def test_timers_publish_metrics_and_health(make_server: Any, session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    server = await make_server(state, metrics_interval_seconds=0.05, health_interval_seconds=0.1)
    ws, _ = await connect(session, server)
    await state.agent_started("a1", "Researcher", "t")
    seen: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + WAIT
    while len(seen) < 2 and time.monotonic() < deadline:
        message = await recv(ws)
        for e in message["events"]:
            if e["event_type"] in ("metrics_updated", "system_health_updated"):
                seen[e["event_type"]] = e
    assert seen["metrics_updated"]["data"]["active_agents"] == 1
    health = seen["system_health_updated"]
    assert health["severity"] == "info"
    for key in ("status", "connected_clients", "events_per_second", "dropped_events", "uptime_seconds",
                "memory_rss_bytes", "active_agents", "stalled_agents", "cpu_percent", "memory_percent"):
        assert key in health["data"], key
    assert health["data"]["connected_clients"] == 1 and health["data"]["active_agents"] == 1
    assert health["data"]["status"] == "healthy" and health["data"]["reasons"] == []
    await ws.close()


async def test_a_stalled_agent_is_counted_and_the_server_stays_healthy(
    make_server: Any, session: aiohttp.ClientSession
) -> None:
    state = DashboardState()
    server = await make_server(state, health_interval_seconds=0.05, stall_threshold_seconds=0.01)
    ws, _ = await connect(session, server)
    await state.agent_started("a1", "Slow", "t")
    await asyncio.sleep(0.02)
    while True:
        message = await recv(ws)
        found = [e for e in message["events"] if e["event_type"] == "system_health_updated"]
        if found:
            break
    # A stalled agent is the agent's health, not the server's (the original design's contract).
    assert found[0]["severity"] == "info"
    assert found[0]["data"]["status"] == "healthy" and found[0]["data"]["reasons"] == []
    assert found[0]["data"]["stalled_agents"] == 1
    async with session.get(server.url + "/health") as r:
        health = await r.json()
    assert health["status"] == "healthy" and health["stalled_agents"] == 1
    assert [a["stalled"] for a in state.get_active_agents()] == [True]
    await ws.close()


# --------------------------------------------------------------------------- lifecycle
async def test_graceful_stop_closes_clients_with_1001(
    html_path: Path, session: aiohttp.ClientSession
) -> None:
    state = DashboardState()
    server = DashboardWebSocketServer(port=0, dashboard_html_path=html_path, state=state)
    async with server:
        sockets = [(await connect(session, server))[0] for _ in range(3)]
        stalled = await stalled_client(server.port)  # its close cannot complete: aborted after 2 s
        await stall_server_side(server, stalled)
        assert state.get_counters()["subscribers"] == 2  # the broadcaster and the per-agent series
        await wait_for_condition(lambda: server.connected_clients == 4)
        publish_many(state, 3000, pad="z" * 200)
        await asyncio.sleep(0.2)  # the writers send; the stalled one's transport backs up
        started = time.monotonic()
        await asyncio.wait_for(server.stop(), WAIT)
        assert 1.5 < time.monotonic() - started < 5
        for ws in sockets:
            while (msg := await asyncio.wait_for(ws.receive(), WAIT)).type is WSMsgType.TEXT:
                pass
            assert msg.type is WSMsgType.CLOSE and msg.data == 1001
            assert msg.extra == "server shutdown"
        await server.stop()  # idempotent
        stalled.close()
    assert state.get_counters()["subscribers"] == 0
    assert not server.started


async def test_start_stop_many_times(html_path: Path, session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    port = 0
    for i in range(20):
        server = DashboardWebSocketServer(
            port=port, dashboard_html_path=html_path, state=state, health_interval_seconds=0.01
        )
        await server.start()
        if i == 0:
            port = server.port  # every later server reuses the same port
        assert server.port == port
        ws, _ = await connect(session, server)
        async with session.get(server.url + "/health") as r:
            assert r.status == 200
        await server.stop()
        await ws.close()
    assert state.get_counters()["subscribers"] == 0


async def test_run_forever_returns_after_stop(html_path: Path) -> None:
    server = DashboardWebSocketServer(port=0, dashboard_html_path=html_path, state=DashboardState())
    runner = asyncio.ensure_future(server.run_forever())
    await wait_for_condition(lambda: server.started)
    await server.stop()
    await asyncio.wait_for(runner, WAIT)
    with socket.socket() as probe:  # the port is free again (no listener left)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", server.port))
        probe.listen()


async def test_snapshots_and_resumes_run_no_sqlite_on_the_event_loop(
    make_server: Any, session: aiohttp.ClientSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import otel_dashboard.store.sqlite.reader as reader_module
    from otel_dashboard.store.sqlite import SqliteEventStore

    sql_threads: set[int] = set()
    real_connect = reader_module.connect_reader

    def traced_connect(path: str) -> Any:
        conn = real_connect(path)
        conn.set_trace_callback(lambda statement: sql_threads.add(threading.get_ident()))
        return conn

    monkeypatch.setattr(reader_module, "connect_reader", traced_connect)
    store = SqliteEventStore(str(tmp_path / "events.db"))
    state = DashboardState(store=store)
    for i in range(30):
        state.publish(event(n=i))
    assert await store.wait_durable_async(30, 5)
    server = await make_server(state)

    ws, snapshot = await connect(session, server)
    assert [e["seq"] for e in snapshot["events"]][-1] >= 30
    await ws.send_str(orjson.dumps({"type": "resume", "after_seq": 0}).decode())
    replayed: list[int] = []
    while (message := await recv(ws))["type"] != "resumed":
        replayed.extend(e["seq"] for e in message.get("events", []))
    await ws.close()

    assert replayed[:30] == list(range(1, 31))
    assert sql_threads, "the store was not read at all"
    assert threading.get_ident() not in sql_threads
    store.close()
