"""Hostile clients of ``/ws`` against a real ``serve`` subprocess (issue 14, attacks 3 and 7's PING flood).

* Clients that send ~60 KiB ``subscribe`` messages and never read the replies: each is closed with
  1013 once more than ``max_client_queue_bytes`` is queued for it (or the client holding the most
  once all of them together pass ``max_total_queue_bytes``), the closes are counted in ``/stats``,
  the server's memory grows by a bounded amount, and ``/health`` stays fast meanwhile.
* A WebSocket PING flood: PINGs count against the message rate, and the flooder is closed with 1008.
* A slow reader of the broadcast (a full socket for a while, then reading) is still served as before:
  the events it lags behind wait in the shared log, not in its byte budget, and it gets them all.

A client that "never reads" has to be a raw socket: aiohttp's client reads in the background. The one
here does the WebSocket handshake by hand, with a small receive buffer, and then only writes frames
until the test reads what the server sent it.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from hostile_support import ServeProcess, get_json, health_latency_millis, http, serve_process

pytestmark = pytest.mark.timeout(60)

MIB = 1024 * 1024
RATE_BURST = 200  # SecurityConfig.ws_message_burst's default
RATE_PER_SECOND = 100  # SecurityConfig.ws_messages_per_second's default
# What a test allows the server's RSS to grow by, beyond the queue budget it is testing.
RSS_MARGIN = 32 * MIB


class RawWebSocket:
    """A WebSocket client on a plain socket: it writes frames and reads only when told to.

    Args:
        server: the server.
        receive_buffer: ``SO_RCVBUF`` (set before connecting, so the window stays small).
    """

    def __init__(self, server: ServeProcess, *, receive_buffer: int = 4096) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.settimeout(10.0)
        sock.connect((server.host, server.port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET /ws HTTP/1.1\r\nHost: {server.host}:{server.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            assert chunk, "the server closed the connection during the handshake"
            data += chunk
        head, self._pending = data.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head
        self.sock = sock
        self.writable = True

    def send(self, payload: bytes, opcode: int = 0x1) -> bool:
        """Send one masked frame (an all-zero mask: the payload goes as it is); False once the server
        has dropped the connection."""
        if not self.writable:
            return False
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        # A short timeout: a server that stopped reading (it is closing this connection, its close
        # frame behind what this client did not read) is done with this client's messages.
        self.sock.settimeout(1.0)
        try:
            self.sock.sendall(header + b"\0\0\0\0" + payload)
        except OSError:  # the timeout, or a reset
            self.writable = False
        return self.writable

    def _read(self, n: int, deadline: float) -> bytes:
        while len(self._pending) < n:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(1024 * 1024)
            if not chunk:
                raise ConnectionError(f"the connection ended before a close frame ({len(self._pending)} B)")
            self._pending += chunk
        data, self._pending = self._pending[:n], self._pending[n:]
        return data

    def read_frame(self, deadline: float) -> tuple[int, bytes]:
        """The next frame the server sent: (opcode, payload)."""
        first, second = self._read(2, deadline)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read(2, deadline))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read(8, deadline))
        return first & 0x0F, self._read(length, deadline)

    def read_until_close(self, timeout: float = 20.0) -> tuple[int, str, list[dict[str, Any]]]:
        """Read everything the server sent, up to its close frame: (code, reason, the text messages)."""
        deadline = time.monotonic() + timeout
        messages = []
        while True:
            opcode, payload = self.read_frame(deadline)
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.send(payload[:2], opcode=0x8)  # the closing handshake's answer
                return code, payload[2:].decode(), messages
            if opcode == 0x1:
                messages.append(orjson.loads(payload))

    def read_messages(self, until: Any, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Read text messages until ``until(message)`` is true (a close frame fails the test)."""
        deadline = time.monotonic() + timeout
        messages = []
        while True:
            opcode, payload = self.read_frame(deadline)
            assert opcode != 0x8, ("closed", payload)
            if opcode == 0x1:
                messages.append(orjson.loads(payload))
                if until(messages[-1]):
                    return messages

    def close(self) -> None:
        self.sock.close()


def subscribe_message() -> bytes:
    """A valid ``subscribe`` just under the 64 KiB message limit: its ``subscribed`` echo is as big."""
    agents = [f"agent-{i:04d}-" + "x" * 48 for i in range(1000)]
    message = orjson.dumps({"type": "subscribe", "agents": agents})
    assert 58 * 1024 < len(message) <= 64 * 1024
    return message


class Sampler:
    """From a thread, for as long as the attack lasts: ``GET /health`` timings and the peak RSS."""

    def __init__(self, server: ServeProcess) -> None:
        self._server = server
        self._stop = threading.Event()
        self.millis: list[float] = []
        self.rss_peak = server.rss_bytes()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.millis.extend(health_latency_millis(self._server.url, samples=1, interval_seconds=0))
            for _ in range(5):
                self.rss_peak = max(self.rss_peak, self._server.rss_bytes())
                time.sleep(0.01)

    @property
    def p50(self) -> float:
        return self.millis[len(self.millis) // 2]

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)
        self.millis.sort()


@pytest.fixture(name="server")
def fixture_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ServeProcess]:
    args = getattr(request, "param", ())
    with serve_process(tmp_path, *args) as server:
        yield server


def flood_subscribes(clients: list[RawWebSocket], count: int) -> None:
    """Each client sends ``count`` subscribes, paced so that none is over its message rate
    (the burst, then 150/s while the bucket lasts): what is tested is the byte cap, not the rate."""
    message = subscribe_message()
    started = time.monotonic()
    for i in range(count):
        for client in clients:
            client.send(message)
        pause = started + max(0, i - RATE_BURST // 2) / 150 - time.monotonic()
        if pause > 0:
            time.sleep(pause)


def test_subscribers_that_never_read_are_closed_1013_and_memory_stays_bounded(server: ServeProcess) -> None:
    base = server.url
    get_json(base + "/stats")
    rss_before = server.rss_bytes()
    clients = [RawWebSocket(server) for _ in range(4)]
    # 500 replies of ~60 KiB per client: 30 MB each, all of which the server held for it (until the
    # 10 s send watchdog) before the cap.
    with Sampler(server) as sampler:
        flood_subscribes(clients, 500)
    closes = [client.read_until_close() for client in clients]
    for client in clients:
        client.close()
    growth = sampler.rss_peak - rss_before
    stats = get_json(base + "/stats")
    print(f"\nRSS before {rss_before / MIB:.1f} MiB, peak {sampler.rss_peak / MIB:.1f} MiB "
          f"(+{growth / MIB:.1f} MiB; 4 clients x 500 x {len(subscribe_message())} B sent); "
          f"/health meanwhile: p50 {sampler.p50:.1f} ms, max {sampler.millis[-1]:.1f} ms "
          f"({len(sampler.millis)} requests); {[len(m) for _, _, m in closes]} messages before the close; "
          f"slow_clients {stats['slow_clients']}")
    cap = stats["slow_clients"]["max_client_queue_bytes"]
    assert cap == 8 * MIB  # the default
    for code, reason, messages in closes:
        assert (code, reason) == (1013, f"client too slow: more than {cap} bytes queued for it")
        assert messages[0]["type"] == "snapshot"
        assert {m["type"] for m in messages[1:]} == {"subscribed"}
        assert len(messages) < 500  # the replies beyond the cap were never queued
    assert stats["slow_clients"]["closed"]["queue_bytes"] == 4
    assert stats["slow_clients"]["queued_bytes"] < MIB
    assert growth < 4 * cap + RSS_MARGIN
    assert sampler.p50 < 100 and sampler.millis[-1] < 1000
    assert max(health_latency_millis(base, samples=5)) < 200
    assert server.alive()


@pytest.mark.parametrize("server", [("--max-total-queue-bytes", str(4 * MIB))], indirect=True)
def test_the_total_budget_closes_the_client_holding_the_most(server: ServeProcess) -> None:
    base = server.url
    rss_before = server.rss_bytes()
    clients = [RawWebSocket(server) for _ in range(4)]
    with Sampler(server) as sampler:
        flood_subscribes(clients, 150)  # ~9 MB each, with what the kernel's buffers take of it
    closes = [client.read_until_close() for client in clients]
    for client in clients:
        client.close()
    stats = get_json(base + "/stats")
    growth = sampler.rss_peak - rss_before
    print(f"\nRSS +{growth / MIB:.1f} MiB at the peak; closes {[c[:2] for c in closes]}; "
          f"slow_clients {stats['slow_clients']}")
    reasons = {reason for _, reason, _ in closes}
    assert f"server busy: more than {4 * MIB} bytes queued for all clients" in reasons
    assert {code for code, _, _ in closes} == {1013}
    closed = stats["slow_clients"]["closed"]
    assert closed["total_queue_bytes"] >= 1
    assert closed["total_queue_bytes"] + closed["queue_bytes"] == 4
    assert growth < 4 * MIB + RSS_MARGIN


async def test_a_ping_flood_is_closed_1008_and_counted(server: ServeProcess) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(server.url + "/ws", autoping=False)
        assert (await ws.receive_json())["type"] == "snapshot"
        started = time.monotonic()
        for i in range(5 * RATE_BURST):
            await ws.ping(b"%d" % i)
        pongs = 0
        while True:
            msg = await ws.receive(timeout=10)
            if msg.type is not aiohttp.WSMsgType.PONG:
                break
            pongs += 1
        elapsed = time.monotonic() - started
        assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 1008, "message rate exceeded")
        # The burst (and what the rate refilled meanwhile) was answered; the flood beyond was not.
        assert RATE_BURST - 5 <= pongs <= RATE_BURST + RATE_PER_SECOND * elapsed + 5, (pongs, elapsed)
        await ws.close()
    stats = get_json(server.url + "/stats")
    print(f"\n{pongs} pongs in {elapsed:.2f} s before the 1008; security {stats['security']}")
    assert stats["security"]["ws_message_rate_exceeded"] == 1
    assert max(health_latency_millis(server.url, samples=5)) < 200


def test_a_slow_reader_of_the_broadcast_still_gets_every_event(server: ServeProcess) -> None:
    base = server.url
    reader = RawWebSocket(server)  # connected, not reading: its socket fills up
    filler = "y" * 4000
    last_seq = 0
    for batch in range(10):  # 2,000 events of ~4 KB: ~8 MB, as much as one client's whole byte cap
        events = [{"event_type": "error_occurred", "severity": "error",
                   "data": {"source": "tests", "error_message": f"{batch}-{i}-{filler}",
                            "error_type": "Slow"}}
                  for i in range(200)]
        status, _, body = http("POST", base + "/api/events", orjson.dumps({"events": events}),
                               {"Content-Type": "application/json"})
        assert status == 200, body[:300]
        last_seq = orjson.loads(body)["last_seq"]
    time.sleep(0.5)
    lagging = {c["id"]: c for c in get_json(base + "/stats")["clients"]}
    assert len(lagging) == 1 and next(iter(lagging.values()))["queue_depth"] > 0  # it is behind
    messages = reader.read_messages(
        lambda m: m["type"] == "events" and any(e["seq"] == last_seq for e in m["events"]))
    seqs = [e["seq"] for m in messages if m["type"] == "events" for e in m["events"]
            if e["event_type"] == "error_occurred"]
    assert seqs == sorted(seqs) and len(seqs) == 2000 and seqs[-1] == last_seq
    assert "gap" not in {m["type"] for m in messages}
    reader.send(b'{"type": "ping"}')
    assert reader.read_messages(lambda m: m["type"] == "pong")[-1]["type"] == "pong"
    stats = get_json(base + "/stats")
    assert stats["slow_clients"]["closed"] == {
        "queue_overflow": 0, "send_timeout": 0, "queue_bytes": 0, "total_queue_bytes": 0}
    assert stats["dropped_events"]["total"] == 0
    reader.close()
