"""The broadcaster's mechanics: the shared log, the flush pass, direct frames, backpressure.

The unit tests drive a :class:`Broadcaster` with fake sockets (a transport that records what is
written and whose buffer size the test sets), so they can look at the bytes and the objects; the
integration tests use a real server and real aiohttp clients (permessage-deflate, frame sizes,
connection slots).
"""

from __future__ import annotations

import asyncio
import logging
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
from otel_dashboard.server.app import HUB_KEY, DashboardWebSocketServer
from otel_dashboard.server.broadcast import Broadcaster, Client, frames, handoff
from otel_dashboard.server.broadcast import transport as ws_transport
from otel_dashboard.server.options import make_options
from otel_dashboard.server.security import SECURITY_KEY
from otel_dashboard.server.websocket import handle_client_message
from otel_dashboard.state.dashboard import DashboardState

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0


# --------------------------------------------------------------------------- fakes
class FakeProtocol:
    """What the broadcaster asks of aiohttp's protocol while a transport is full."""

    def __init__(self) -> None:
        self.writing_paused = False
        self._waiter: asyncio.Future[None] | None = None

    async def _drain_helper(self) -> None:
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter

    def resume(self) -> None:
        self.writing_paused = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self._waiter = None


class FakeTransport:
    """Records every write; ``buffered`` is what it reports as still waiting to be sent."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.buffered = 0
        self.protocol = FakeProtocol()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closed

    def get_protocol(self) -> FakeProtocol:
        return self.protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def fill(self) -> None:
        """The peer stopped reading: the buffer is over the mark and asyncio paused the protocol."""
        self.buffered = 10 * ws_transport.HIGH_WATER_BYTES
        self.protocol.writing_paused = True

    def drain(self) -> None:
        self.buffered = 0
        self.protocol.resume()

    def messages(self) -> list[dict[str, Any]]:
        """Every frame written, parsed (each write must be exactly one whole frame)."""
        return [orjson.loads(payload) for payload in map(parse_frame, self.writes)]


class FakeWriter:
    """What the fence checks of aiohttp's writer: that it writes to the connection's transport."""

    def __init__(self, transport: FakeTransport) -> None:
        self.transport = transport


class FakeWebSocket:
    """A prepared, uncompressed WebSocket: its writer (for the fence's check) and the public send path."""

    compress = 0
    closed = False

    def __init__(self, transport: FakeTransport) -> None:
        self._writer = FakeWriter(transport)

    async def send_frame(self, payload: bytes, opcode: WSMsgType) -> None:
        assert opcode is WSMsgType.TEXT
        await self._send(payload)

    async def send_str(self, data: str) -> None:  # aiohttp < 3.11 has no send_frame
        await self._send(data.encode())

    async def _send(self, payload: bytes) -> None:
        """As aiohttp's writer: the whole frame at once, then wait while the peer is not reading."""
        transport = self._writer.transport
        transport.write(frames.text_frame(payload))
        while transport.buffered > ws_transport.HIGH_WATER_BYTES:
            await transport.protocol._drain_helper()


class FakeRequest:
    def __init__(self) -> None:
        self.transport = FakeTransport()
        self.remote = "127.0.0.1"


def parse_frame(data: bytes) -> bytes:
    """The payload of one unmasked, final TEXT frame that is exactly ``data``."""
    assert data[0] == 0x81, data[:2]  # FIN + TEXT, no RSV bits (no compression)
    length = data[1]
    assert not length & 0x80  # a server never masks
    offset = 2
    if length == 126:
        (length,) = struct.unpack("!H", data[2:4])
        offset = 4
        assert length >= 126  # the shortest form is required
    elif length == 127:
        (length,) = struct.unpack("!Q", data[2:10])
        offset = 10
        assert length >= 65536
    assert len(data) == offset + length, (len(data), offset, length)
    return data[offset:]


def event(**data: Any) -> DashboardEvent:
    return DashboardEvent.create(EventType.ERROR_OCCURRED, data, Severity.INFO)


@pytest.fixture(name="write_path", params=["direct", "public"])
def fixture_write_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with direct writes, then through aiohttp's public send (the fence's fallback).

    The fallback is forced the way an aiohttp without what the direct path uses would force it: the
    feature test sees a protocol class with no ``_drain_helper`` (asyncio's own).
    """
    if request.param == "public":
        monkeypatch.setattr(ws_transport, "BaseProtocol", asyncio.Protocol)
    return request.param


@pytest.fixture(name="hub")
async def fixture_hub() -> AsyncIterator[Callable[..., Broadcaster]]:
    hubs: list[Broadcaster] = []

    def make(state: DashboardState | None = None, **options: Any) -> Broadcaster:
        options.setdefault("metrics_interval_seconds", None)
        options.setdefault("health_interval_seconds", None)
        hub = Broadcaster(state or DashboardState(), make_options(None, 100, None, options))
        hub.start(asyncio.get_running_loop())
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        await hub.cleanup()


async def connect(hub: Broadcaster) -> tuple[Client, FakeTransport]:
    request = FakeRequest()
    client = await hub.register(FakeWebSocket(request.transport), request)  # type: ignore[arg-type]
    return client, request.transport


async def wait_for_condition(check: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def next_pass() -> None:
    """Let the scheduled flush pass (and whatever it schedules) run."""
    for _ in range(3):
        await asyncio.sleep(0)


# --------------------------------------------------------------------------- the shared log
async def test_a_thousand_clients_share_one_frame_object(hub: Callable[..., Broadcaster]) -> None:
    state = DashboardState()
    broadcaster = hub(state)
    clients = [await connect(broadcaster) for _ in range(1000)]
    for client, transport in clients:
        assert client.writer_task is None and client.drain_task is None  # no task per idle client
        assert client.controls is None and client.filter is None
        assert transport.messages()[0]["type"] == "snapshot"  # written at once, first
    for i in range(5):
        state.publish(event(i=i))
    await next_pass()
    frames = [transport.writes[1] for _, transport in clients]
    assert all(frame is frames[0] for frame in frames)  # one bytes object for everyone
    assert all(len(transport.writes) == 2 for _, transport in clients)  # one frame per pass
    assert [e["data"]["i"] for e in orjson.loads(parse_frame(frames[0]))["events"]] == list(range(5))
    assert all(client.sent_events == 5 for client, _ in clients)
    assert broadcaster._log.payloads == []  # everyone has everything: the log is trimmed to nothing


async def test_frames_follow_the_load_one_event_when_idle_many_when_busy(
    hub: Callable[..., Broadcaster], write_path: str
) -> None:
    state = DashboardState()
    broadcaster = hub(state)
    client, transport = await connect(broadcaster)
    assert (client.writer_task is None) == (write_path == "direct")
    for i in range(3):  # idle: each event gets its own frame as soon as the loop turns
        state.publish(event(i=i))
        await next_pass()
    for i in range(3, 2503):  # busy: everything since the last pass, up to the frame cap
        state.publish(event(i=i))
    await next_pass()
    sizes = [len(m["events"]) for m in transport.messages()[1:]]
    assert sizes == [1, 1, 1, frames.MAX_FRAME_EVENTS, frames.MAX_FRAME_EVENTS, 500]
    seqs = [e["seq"] for m in transport.messages()[1:] for e in m["events"]]
    assert seqs == list(range(1, 2504))


async def test_controls_stay_in_order_with_events_and_filters_share_frames(
    hub: Callable[..., Broadcaster], write_path: str
) -> None:
    state = DashboardState()
    broadcaster = hub(state)
    (a, ta), (b, tb), (c, tc) = [await connect(broadcaster) for _ in range(3)]
    lists = {"event_types": ["error_occurred"], "severities": ["error"], "agents": []}
    broadcaster.set_filter(b, dict(lists))
    broadcaster.set_filter(c, dict(lists))
    await next_pass()
    state.publish(DashboardEvent.create(EventType.ERROR_OCCURRED, {"n": 1}, Severity.ERROR))
    state.publish(event(n=2))  # severity info: filtered out for b and c
    broadcaster.pong(a)  # after the two events it comes after them
    state.publish(DashboardEvent.create(EventType.ERROR_OCCURRED, {"n": 3}, Severity.ERROR))
    await next_pass()
    kinds = [(m["type"], [e["data"]["n"] for e in m.get("events", [])]) for m in ta.messages()[1:]]
    assert kinds == [("events", [1, 2]), ("pong", []), ("events", [3])]
    for transport in (tb, tc):
        kinds = [(m["type"], [e["data"]["n"] for e in m.get("events", [])]) for m in transport.messages()[1:]]
        assert kinds == [("subscribed", []), ("events", [1, 3])]
    if write_path == "direct":
        assert tb.writes[-1] is tc.writes[-1]  # the same filter at the same cursor: one frame


# --------------------------------------------------------------------------- backpressure
async def test_a_full_transport_lags_then_gets_a_gap_and_the_rest(
    hub: Callable[..., Broadcaster], write_path: str
) -> None:
    state = DashboardState()
    broadcaster = hub(state, client_queue_size=50)
    slow, slow_transport = await connect(broadcaster)
    fast, fast_transport = await connect(broadcaster)
    slow_transport.fill()
    for i in range(30):  # over several passes: the slow client's lag grows, the fast one keeps up
        state.publish(event(i=i))
        await next_pass()
    assert len(slow_transport.writes) == 1  # nothing written over the mark (only the snapshot)
    assert slow.send_started is not None  # the watchdog's clock runs
    if write_path == "direct":
        assert slow.drain_task is not None  # waiting for the drain; a task writer waits in its send
    depths = {row["id"]: row["queue_depth"] for row in broadcaster.client_infos()}
    assert depths == {slow.id: 30, fast.id: 0}
    assert sorted(broadcaster.queue_depths()) == [0, 30]
    for i in range(30, 60):
        state.publish(event(i=i))
        await next_pass()
    # Lag 51 > 50: the oldest 50 are dropped, once; the slow client stays connected.
    assert broadcaster.drops["queue_overflow"] == 50 and slow.dropped_events == 50
    assert not slow.closing
    slow_transport.drain()
    await next_pass()
    messages = slow_transport.messages()[1:]
    assert messages[0] == {"type": "gap", "from": 1, "to": 50, "reason": "queue_overflow"}
    assert [e["seq"] for m in messages[1:] for e in m["events"]] == list(range(51, 61))
    assert slow.send_started is None
    assert [e["seq"] for m in fast_transport.messages()[1:] for e in m["events"]] == list(range(1, 61))


async def test_a_second_overflow_closes_a_full_client_with_1013(
    hub: Callable[..., Broadcaster], monkeypatch: pytest.MonkeyPatch, write_path: str
) -> None:
    state = DashboardState()
    broadcaster = hub(state, client_queue_size=10)
    closed: list[tuple[int, int]] = []

    async def close_client(client: Client, code: int, reason: str, timeout: float | None = None) -> None:
        closed.append((client.id, code))

    monkeypatch.setattr(broadcaster._slow, "close", close_client)
    slow, transport = await connect(broadcaster)
    transport.fill()
    for i in range(11):
        state.publish(event(i=i))
        await next_pass()
    assert broadcaster.drops["queue_overflow"] == 10
    for i in range(10):
        state.publish(event(i=i))
        await next_pass()
    assert closed == [(slow.id, 1013)] and slow.closing
    assert broadcaster.drops["slow_client_closed"] == 11  # what it still had not been sent


def record_closes(broadcaster: Broadcaster, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, str]]:
    """The closes the broadcaster starts, recorded instead of done: (client id, code, reason)."""
    closed: list[tuple[int, int, str]] = []

    async def close_client(client: Client, code: int, reason: str, timeout: float | None = None) -> None:
        closed.append((client.id, code, reason))

    monkeypatch.setattr(broadcaster._slow, "close", close_client)
    return closed


def subscribed(size: int) -> dict[str, Any]:
    """A ``subscribed`` reply of about ``size`` bytes (what a subscribe with long agent names gets)."""
    return {"type": "subscribed", "event_types": [], "severities": [], "agents": ["a" * (size - 80)]}


async def test_replies_to_a_client_that_does_not_read_are_capped_in_bytes(
    hub: Callable[..., Broadcaster], monkeypatch: pytest.MonkeyPatch, write_path: str
) -> None:
    mib = 1024 * 1024
    broadcaster = hub(max_client_queue_bytes=mib)
    closed = record_closes(broadcaster, monkeypatch)
    client, transport = await connect(broadcaster)
    other, _ = await connect(broadcaster)
    await next_pass()
    transport.fill()  # 640 KiB unsent: it counts, with the replies
    sent = 0
    while not client.closing:
        broadcaster.send_control(client, subscribed(60 * 1024))
        sent += 1
        assert sent < 100, "never closed"
        assert client.queued_bytes() <= mib
    assert sent == (mib - transport.buffered) // (60 * 1024) + 1
    await next_pass()
    assert closed == [(client.id, 1013, f"client too slow: more than {mib} bytes queued for it")]
    # Its queue is forgotten at once, and counted in /stats.
    assert client.controls is None and client.control_bytes == 0
    stats = broadcaster.slow_client_stats()
    assert stats["closed"] == {
        "queue_overflow": 0, "send_timeout": 0, "queue_bytes": 1, "total_queue_bytes": 0}
    assert stats["queued_bytes"] == 0 and stats["max_client_queue_bytes"] == mib
    broadcaster.send_control(client, subscribed(100))  # a closing client is sent nothing more
    assert client.controls is None and not other.closing


async def test_the_total_budget_closes_the_clients_holding_the_most(
    hub: Callable[..., Broadcaster], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "otel_dashboard.server.broadcast.slow")
    mib = 1024 * 1024
    broadcaster = hub(max_client_queue_bytes=8 * mib, max_total_queue_bytes=2 * mib)
    closed = record_closes(broadcaster, monkeypatch)
    pairs = [await connect(broadcaster) for _ in range(3)]
    await next_pass()
    (a, _), (b, _), (c, _) = pairs
    for _, transport in pairs:
        transport.fill()  # 640 KiB each
    broadcaster.send_control(a, subscribed(mib))
    broadcaster.send_control(b, subscribed(mib // 2))
    assert not closed  # 1.5 MiB of replies: within the budget (the transports are summed at a tick)
    broadcaster.send_control(c, subscribed(6 * mib // 10))
    await next_pass()
    # 2.1 MiB of replies + 1.9 MiB unsent: the largest (a), then the next (c), until within 2 MiB.
    reason = f"server busy: more than {2 * mib} bytes queued for all clients"
    assert closed == [(a.id, 1013, reason), (c.id, 1013, reason)]
    assert not b.closing
    assert broadcaster.slow_client_stats()["closed"]["total_queue_bytes"] == 2
    # Logged once per kind per minute (hostile clients can be made slow by the thousand).
    logged = [(r.levelno, r.getMessage()) for r in caplog.records
              if "closing dashboard client" in r.getMessage()]
    assert [level for level, _ in logged] == [logging.WARNING, logging.DEBUG], logged
    assert broadcaster._clients.queued.controls == b.control_bytes


async def test_an_error_reply_quotes_client_input_short(hub: Callable[..., Broadcaster]) -> None:
    broadcaster = hub()
    client, transport = await connect(broadcaster)
    await next_pass()
    handle_client_message(broadcaster, client, orjson.dumps({"type": "x" * 60_000}).decode())
    handle_client_message(broadcaster, client, orjson.dumps({"type": "subscribe", "agents": 5}).decode())
    broadcaster.send_error(client, "y" * 10_000)
    replies = transport.messages()[1:]
    assert [r["type"] for r in replies] == ["error"] * 3
    assert all(len(r["message"]) <= 300 for r in replies), [len(r["message"]) for r in replies]


async def test_the_log_is_trimmed_behind_the_slowest_client(hub: Callable[..., Broadcaster]) -> None:
    state = DashboardState()
    broadcaster = hub(state, client_queue_size=100_000)
    slow, transport = await connect(broadcaster)
    await connect(broadcaster)
    transport.fill()
    for i in range(1000):
        state.publish(event(i=i))
    await next_pass()
    assert len(broadcaster._log.payloads) == 1000  # the slow client still needs all of them
    transport.drain()
    await next_pass()
    assert broadcaster._log.payloads == [] and broadcaster._log.base == 1000
    broadcaster.unregister(slow)
    state.publish(event(i=-1))  # nobody to send it to: nothing is kept
    broadcaster.unregister(broadcaster.clients[0])
    state.publish(event(i=-2))
    await next_pass()
    assert broadcaster._log.payloads == []


async def test_thread_handoff_losses_are_a_gap_in_the_log(
    hub: Callable[..., Broadcaster], monkeypatch: pytest.MonkeyPatch, write_path: str
) -> None:
    monkeypatch.setattr(handoff, "HANDOFF_LIMIT", 5)
    state = DashboardState()
    broadcaster = hub(state)
    _, transport = await connect(broadcaster)
    thread = threading.Thread(target=lambda: [state.publish(event(i=i)) for i in range(20)])
    thread.start()
    thread.join(WAIT)
    await wait_for_condition(lambda: len(transport.writes) >= 3)
    messages = transport.messages()[1:]
    assert [e["seq"] for e in messages[0]["events"]] == [1, 2, 3, 4, 5]
    assert messages[1] == {"type": "gap", "from": 6, "to": 20, "reason": "handoff_overflow"}


# --------------------------------------------------------------------------- the fence
def test_the_feature_test_accepts_this_aiohttp_and_refuses_a_protocol_without_drain_helper(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert ws_transport.direct_write_problem() is None  # every aiohttp the project supports
    monkeypatch.setattr(ws_transport, "BaseProtocol", asyncio.Protocol)
    problem = ws_transport.direct_write_problem()
    assert problem is not None and "_drain_helper" in problem


async def test_the_fallback_is_chosen_at_start_and_logged(
    hub: Callable[..., Broadcaster], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert hub().direct_writes
    monkeypatch.setattr(ws_transport, "BaseProtocol", asyncio.Protocol)
    broadcaster = hub()
    assert not broadcaster.direct_writes
    assert any("through aiohttp's send path" in r.getMessage() for r in caplog.records)
    client, transport = await connect(broadcaster)
    await next_pass()
    assert client.writer_task is not None and transport.messages()[0]["type"] == "snapshot"


async def test_a_connection_whose_writer_uses_another_transport_gets_a_task_writer(
    hub: Callable[..., Broadcaster],
) -> None:
    broadcaster = hub()
    request = FakeRequest()
    elsewhere = FakeTransport()  # our frames and aiohttp's could interleave: never write directly
    client = await broadcaster.register(FakeWebSocket(elsewhere), request)  # type: ignore[arg-type]
    await next_pass()
    assert client.writer_task is not None
    assert request.transport.writes == [] and elsewhere.messages()[0]["type"] == "snapshot"


# --------------------------------------------------------------------------- real sockets
@pytest.fixture(name="make_server")
async def fixture_make_server(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    page = tmp_path / "index.html"
    page.write_text("<!doctype html><title>test</title>")
    async with AsyncExitStack() as stack:

        async def make(state: DashboardState, **options: Any) -> DashboardWebSocketServer:
            return await stack.enter_async_context(
                running_server(state, dashboard_html_path=page, **options))

        yield make


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await asyncio.wait_for(ws.receive(), WAIT)
    assert msg.type is WSMsgType.TEXT, (msg.type, msg.data)
    return orjson.loads(msg.data)


async def events_until(ws: aiohttp.ClientWebSocketResponse, last_seq: int) -> list[int]:
    seqs: list[int] = []
    while not seqs or seqs[-1] < last_seq:
        message = await receive(ws)
        assert message["type"] == "events", message
        seqs.extend(e["seq"] for e in message["events"])
    return seqs


async def test_deflate_and_plain_clients_get_the_same_stream(
    make_server: Callable[..., Any], session: aiohttp.ClientSession
) -> None:
    state = DashboardState(max_history=1000)
    server = await make_server(state, compress=True)
    deflate = await session.ws_connect(server.url + "/ws", compress=15)
    plain = await session.ws_connect(server.url + "/ws", compress=0)
    assert deflate.compress == 15 and plain.compress == 0  # negotiated, and not
    for ws in (deflate, plain):
        assert (await receive(ws))["type"] == "snapshot"
    by_compress = {bool(c.writer_task): c for c in server.app[HUB_KEY].clients}
    assert set(by_compress) == {True, False}  # a writer task only for the deflate client
    big = "x" * 70_000  # frames of every header length, and a compressed one above aiohttp's sync size
    for i in range(20):
        state.publish(event(i=i, pad=big if i % 7 == 0 else "y"))
    thread = threading.Thread(target=lambda: [state.publish(event(i=i)) for i in range(20, 40)])
    thread.start()
    thread.join(WAIT)
    for ws in (deflate, plain):
        assert await events_until(ws, 40) == list(range(1, 41))
        await ws.send_json({"type": "ping"})
        assert (await receive(ws))["type"] == "pong"
        await ws.send_json({"type": "resume", "after_seq": 35})
        replayed = await receive(ws)
        assert replayed["replay"] is True and [e["seq"] for e in replayed["events"]] == [36, 37, 38, 39, 40]
        assert (await receive(ws))["type"] == "resumed"
    await deflate.close()
    await plain.close()


async def test_frame_lengths_of_every_header_form(
    make_server: Callable[..., Any], session: aiohttp.ClientSession, write_path: str
) -> None:
    # Caps raised: one string per frame size, beyond the default per-string and per-event caps.
    state = DashboardState(max_string_bytes=1024 * 1024, max_event_bytes=1024 * 1024)
    server = await make_server(state)
    ws = await session.ws_connect(server.url + "/ws")
    assert (await receive(ws))["type"] == "snapshot"
    for size in (10, 200, 60_000, 70_000, 300_000):  # 7-bit, 16-bit and 64-bit lengths
        state.publish(event(pad="p" * size))
        message = await receive(ws)
        assert len(message["events"][0]["data"]["pad"]) == size
    await ws.close()


async def test_the_websocket_gives_its_connection_slot_back(
    make_server: Callable[..., Any], session: aiohttp.ClientSession
) -> None:
    server = await make_server(DashboardState())
    security = server.app[SECURITY_KEY]
    sockets = [await session.ws_connect(server.url + "/ws") for _ in range(3)]
    assert security.connections.total == 3
    for ws in sockets:
        await ws.close()
    async with session.get(server.url + "/ws") as response:  # not an upgrade: no slot taken or given
        assert response.status == 400
    await wait_for_condition(lambda: security.connections.total == 0)
    assert security.connections.total == 0 and len(security.connections) == 0


async def test_the_websocket_route_answers_its_own_errors_as_json(
    make_server: Callable[..., Any], session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = await make_server(DashboardState())
    security = server.app[SECURITY_KEY]

    def broken(self: Any, request: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(aiohttp.web.WebSocketResponse, "can_prepare", broken)
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    async with session.get(server.url + "/ws", headers=upgrade) as response:
        assert response.status == 500 and response.content_type == "application/json"
        assert await response.json() == {"error": "internal server error"}
    assert any("unhandled error serving GET /ws" in r.getMessage() for r in caplog.records)
    assert security.connections.total == 0  # the slot was given back
    async with session.get(server.url + "/nowhere", headers=upgrade) as response:  # other routes:
        assert response.status == 404 and response.content_type == "application/json"  # the middleware


async def test_pings_are_answered_and_counted_as_messages(
    make_server: Callable[..., Any], session: aiohttp.ClientSession
) -> None:
    server = await make_server(DashboardState())
    security = server.app[SECURITY_KEY]
    burst = int(security.config.ws_message_burst)
    ws = await session.ws_connect(server.url + "/ws", autoping=False)
    assert (await receive(ws))["type"] == "snapshot"
    await ws.send_json({"type": "ping"})
    assert (await receive(ws))["type"] == "pong"
    await ws.pong(b"unsolicited")  # counted too, not answered
    for i in range(burst - 2):  # the rest of the burst: each PING answered with its PONG
        await ws.ping(str(i).encode())
        msg = await asyncio.wait_for(ws.receive(), WAIT)
        assert (msg.type, msg.data) == (WSMsgType.PONG, str(i).encode())
    for _ in range(burst):  # a flood: closed for its rate like a flood of messages
        await ws.ping(b"x")
        msg = await asyncio.wait_for(ws.receive(), WAIT)
        if msg.type is not WSMsgType.PONG:
            break
    assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 1008, "message rate exceeded")
    assert security.stats()["ws_message_rate_exceeded"] == 1


async def test_the_heartbeat_pings_a_silent_client_and_keeps_one_that_answers(
    make_server: Callable[..., Any], session: aiohttp.ClientSession, write_path: str
) -> None:
    server = await make_server(DashboardState(), heartbeat_seconds=0.2)
    assert server.app[HUB_KEY].direct_writes == (write_path == "direct")
    ws = await session.ws_connect(server.url + "/ws", autoping=False)
    assert (await receive(ws))["type"] == "snapshot"
    started = time.monotonic()
    for _ in range(3):  # a ping after each 0.2 s of silence; answering keeps the connection
        msg = await asyncio.wait_for(ws.receive(), WAIT)
        assert msg.type is WSMsgType.PING
        await ws.pong(msg.data)
    assert time.monotonic() - started >= 0.5
    assert server.connected_clients == 1
    msg = await asyncio.wait_for(ws.receive(), WAIT)  # this one goes unanswered: dropped, as 1006
    assert msg.type is WSMsgType.PING
    msg = await asyncio.wait_for(ws.receive(), WAIT)
    assert msg.type in (WSMsgType.CLOSED, WSMsgType.ERROR, WSMsgType.CLOSE)
    await wait_for_condition(lambda: server.connected_clients == 0)


async def test_no_heartbeat_no_pings(make_server: Callable[..., Any], session: aiohttp.ClientSession) -> None:
    server = await make_server(DashboardState(), heartbeat_seconds=None)
    ws = await session.ws_connect(server.url + "/ws", autoping=False)
    assert (await receive(ws))["type"] == "snapshot"
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(ws.receive(), 0.5)
    assert len(server.app[HUB_KEY]._tasks) == 1  # the send watchdog only
    await ws.close()
