"""RemoteEventSender against a real aiohttp server on 127.0.0.1: delivery, batching, latency, retries,
an unreachable server, timeouts of flush and shutdown, refusals."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from opentelemetry import context as context_api

from otel_dashboard.model.events import DashboardEvent, EventType
from otel_dashboard.pipeline.remote import RemoteEventSender


class RecordingServer:
    """A dashboard stand-in on its own loop thread: records the batches POSTed to it.

    ``statuses`` are answered (in order) before it accepts again; ``hang`` makes it never answer.
    """

    def __init__(self, *, keepalive_timeout: float = 75.0) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.received_at: dict[str, float] = {}
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.hang = False
        self.port = 0
        self._keepalive_timeout = keepalive_timeout
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.monotonic()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        with self._lock:
            self.requests.append({"path": request.path, "headers": dict(request.headers), "peer": peer})
            status = self.statuses.pop(0) if self.statuses else 200
        if self.hang:
            await asyncio.sleep(30)
        if status != 200:
            return web.Response(status=status, text="refused on purpose")
        events = orjson.loads(body)["events"]
        with self._lock:
            self.batches.append(events)
            for event in events:
                self.received_at.setdefault(event["event_id"], now)
        return web.json_response({"accepted": len(events)})

    def start(self, port: int = 0) -> RecordingServer:
        async def _start() -> int:
            app = web.Application()
            app.router.add_post("/{tail:.*}", self._handle)
            runner = web.AppRunner(
                app, keepalive_timeout=self._keepalive_timeout, shutdown_timeout=0.1
            )
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
            await site.start()
            self._runner = runner
            return runner.addresses[0][1]

        self.port = asyncio.run_coroutine_threadsafe(_start(), self._loop).result(5)
        return self

    def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self._loop).result(10)

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def event_ids(self) -> list[str]:
        with self._lock:
            return [event["event_id"] for batch in self.batches for event in batch]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _event(n: int = 0) -> DashboardEvent:
    return DashboardEvent.create(
        EventType.AGENT_EXECUTION_STARTED,
        {"agent_id": f"a{n}", "agent_name": "Researcher", "task_description": "t", "n": n},
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
    )


@pytest.fixture(name="server")
def fixture_server() -> Iterator[RecordingServer]:
    server = RecordingServer().start()
    yield server
    server.close()


@pytest.fixture(name="make_sender")
def fixture_make_sender() -> Iterator[Any]:
    senders: list[RemoteEventSender] = []

    def make(endpoint: str, **kwargs: Any) -> RemoteEventSender:
        sender = RemoteEventSender(endpoint, **kwargs)
        senders.append(sender)
        return sender

    yield make
    for sender in senders:
        sender.shutdown(timeout_millis=0)


def test_delivers_events_as_a_json_batch(server: RecordingServer, make_sender: Any) -> None:
    sender = make_sender(server.url, headers={"Authorization": "Bearer s3cret"})
    events = [_event(i) for i in range(3)]
    events[0].seq = 99
    assert all(sender.submit(event) for event in events)

    assert sender.force_flush(5000)

    received = [event for batch in server.batches for event in batch]
    assert [e["event_id"] for e in received] == [e.event_id for e in events]
    expected = events[1].to_dict()
    del expected["seq"]
    assert received[1] == expected
    assert all("seq" not in e for e in received)  # the server numbers events
    request = server.requests[0]
    assert request["path"] == "/api/events"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["Authorization"] == "Bearer s3cret"
    assert (sender.sent_events, sender.dropped_events, sender.rejected_events) == (3, 0, 0)
    assert sender.failed_requests == 0


def test_endpoint_path_prefix_and_full_path(server: RecordingServer, make_sender: Any) -> None:
    prefixed = make_sender(server.url + "/dashboard/")
    full = make_sender(server.url + "/api/events")
    prefixed.submit(_event())
    full.submit(_event())
    assert prefixed.force_flush(5000) and full.force_flush(5000)
    assert sorted(r["path"] for r in server.requests) == ["/api/events", "/dashboard/api/events"]
    assert prefixed.endpoint == server.url + "/dashboard/api/events"


def test_many_events_go_in_few_requests(server: RecordingServer, make_sender: Any) -> None:
    sender = make_sender(server.url, max_batch_size=400, schedule_delay_millis=50)
    events = [_event(i) for i in range(2000)]
    for event in events:
        sender.submit(event)

    assert sender.force_flush(10_000)

    assert server.event_ids() == [e.event_id for e in events]  # all, once, in order
    assert 5 <= len(server.batches) <= 12
    assert max(len(batch) for batch in server.batches) <= 400
    assert sender.sent_events == 2000


def test_reuses_one_keep_alive_connection(server: RecordingServer, make_sender: Any) -> None:
    sender = make_sender(server.url)
    for i in range(5):
        sender.submit(_event(i))
        assert sender.force_flush(5000)
    assert len(server.requests) == 5
    assert len({r["peer"] for r in server.requests}) == 1


def test_reopens_a_connection_the_server_closed_when_idle(make_sender: Any) -> None:
    server = RecordingServer(keepalive_timeout=0.1).start()
    try:
        sender = make_sender(server.url)
        sender.submit(_event(1))
        assert sender.force_flush(5000)
        time.sleep(0.4)  # the server closes the idle connection meanwhile
        sender.submit(_event(2))
        assert sender.force_flush(5000)
        assert sender.sent_events == 2
        assert sender.failed_requests == 0  # a closed idle connection is not a failure
    finally:
        server.close()


def _latencies(server: RecordingServer, submitted: dict[str, float]) -> list[float]:
    deadline = time.monotonic() + 5
    while len(server.received_at) < len(submitted) and time.monotonic() < deadline:
        time.sleep(0.01)
    return sorted(server.received_at[event_id] - t for event_id, t in submitted.items())


def test_latency_at_light_load(server: RecordingServer, make_sender: Any) -> None:
    sender = make_sender(server.url)
    submitted = {}
    for i in range(30):
        event = _event(i)
        submitted[event.event_id] = time.monotonic()
        sender.submit(event)
        time.sleep(0.02)

    latencies = _latencies(server, submitted)

    assert len(latencies) == 30
    assert latencies[len(latencies) // 2] < 0.05, latencies
    assert latencies[-1] < 0.15, latencies


def test_latency_and_batching_at_1000_events_per_second(
    server: RecordingServer, make_sender: Any
) -> None:
    sender = make_sender(server.url)
    submitted = {}
    start = time.monotonic()
    for i in range(1000):
        target = start + i / 1000
        pause = target - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        event = _event(i)
        submitted[event.event_id] = time.monotonic()
        sender.submit(event)

    latencies = _latencies(server, submitted)

    assert len(latencies) == 1000
    assert latencies[int(len(latencies) * 0.99)] < 0.15, latencies[-20:]
    # Paced at one request per schedule delay (50 ms): about 20 requests for one second.
    assert len(server.requests) <= 60, len(server.requests)


def test_retries_the_same_batch_after_5xx_and_429(server: RecordingServer, make_sender: Any) -> None:
    server.statuses = [503, 500, 429]
    sender = make_sender(server.url, max_retry_delay_millis=50)
    events = [_event(i) for i in range(5)]
    for event in events:
        sender.submit(event)

    assert sender.force_flush(5000)

    assert server.event_ids() == [e.event_id for e in events]  # delivered once
    assert len(server.requests) == 4
    assert sender.failed_requests == 3
    assert (sender.sent_events, sender.dropped_events, sender.rejected_events) == (5, 0, 0)


def test_a_refused_batch_is_dropped_and_counted(
    server: RecordingServer, make_sender: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server.statuses = [400, 400]
    sender = make_sender(server.url)
    for i in range(3):
        sender.submit(_event(i))
    assert sender.force_flush(5000)  # "definitively dropped" counts as flushed
    assert (sender.sent_events, sender.rejected_events, sender.failed_requests) == (0, 3, 1)

    sender.submit(_event(3))
    sender.submit(_event(4))
    assert sender.force_flush(5000)
    assert (sender.rejected_events, sender.failed_requests) == (5, 2)
    sender.submit(_event(5))
    assert sender.force_flush(5000)
    assert sender.sent_events == 1
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 1  # logged once


def test_unreachable_server_never_blocks_submit_and_drops_when_full(make_sender: Any) -> None:
    port = _free_port()  # nothing listens there (yet)
    sender = make_sender(
        f"http://127.0.0.1:{port}", max_queue_size=100, max_batch_size=50, max_retry_delay_millis=100
    )
    slowest = 0.0
    accepted = 0
    for i in range(5000):
        t0 = time.perf_counter()
        accepted += sender.submit(_event(i))
        slowest = max(slowest, time.perf_counter() - t0)

    assert slowest < 0.05, slowest  # generous: a submit is a locked deque append
    assert sender.dropped_events == 5000 - accepted
    assert 100 <= accepted <= 150  # the queue, plus at most the batch being retried
    _wait_for(lambda: sender.failed_requests >= 1)
    assert not sender.force_flush(100)

    server = RecordingServer().start(port)  # the server comes (back)
    try:
        assert sender.force_flush(10_000)
        assert sender.sent_events == accepted
        assert len(server.event_ids()) == accepted
        assert sender.submit(_event(-1))
        assert sender.force_flush(5000)
        assert sender.sent_events == accepted + 1
    finally:
        server.close()


def test_delivery_resumes_after_the_server_restarts(server: RecordingServer, make_sender: Any) -> None:
    sender = make_sender(server.url, max_retry_delay_millis=100)
    sender.submit(_event(1))
    assert sender.force_flush(5000)
    port = server.port
    server.stop()
    sender.submit(_event(2))
    assert not sender.force_flush(300)
    server.start(port)
    assert sender.force_flush(5000)
    assert len(server.event_ids()) == 2
    assert sender.failed_requests >= 1


def test_force_flush_honours_its_timeout(make_sender: Any) -> None:
    sender = make_sender(f"http://127.0.0.1:{_free_port()}", max_retry_delay_millis=50)
    sender.submit(_event())
    t0 = time.monotonic()
    assert sender.force_flush(200) is False
    assert 0.19 <= time.monotonic() - t0 < 0.6


def test_shutdown_with_server_down_returns_within_its_timeout(make_sender: Any) -> None:
    sender = make_sender(f"http://127.0.0.1:{_free_port()}")
    for i in range(10):
        sender.submit(_event(i))
    t0 = time.monotonic()
    assert sender.shutdown(300) is False
    assert time.monotonic() - t0 < 0.6
    _wait_for(lambda: sender.dropped_events == 10)
    assert sender.submit(_event(11)) is False
    assert sender.dropped_events == 11
    assert sender.force_flush(100)  # nothing left to wait for


def test_shutdown_with_a_server_that_never_answers(server: RecordingServer, make_sender: Any) -> None:
    server.hang = True
    sender = make_sender(server.url, timeout_millis=10_000)
    sender.submit(_event())
    _wait_for(lambda: len(server.requests) == 1)
    t0 = time.monotonic()
    assert sender.shutdown(300) is False
    assert time.monotonic() - t0 < 0.6
    _wait_for(lambda: sender.dropped_events == 1)


def test_request_timeout_then_retry(server: RecordingServer, make_sender: Any) -> None:
    server.hang = True
    sender = make_sender(server.url, timeout_millis=200, max_retry_delay_millis=50)
    sender.submit(_event())
    _wait_for(lambda: sender.failed_requests >= 1)
    server.hang = False
    assert sender.force_flush(5000)
    assert sender.sent_events == 1


def test_shutdown_flushes_and_is_idempotent(server: RecordingServer, make_sender: Any) -> None:
    sender = make_sender(server.url, schedule_delay_millis=5000)  # only shutdown makes it send now
    for i in range(100):
        sender.submit(_event(i))
    t0 = time.monotonic()
    assert sender.shutdown(5000) is True
    assert time.monotonic() - t0 < 2
    assert len(server.event_ids()) == 100
    t0 = time.monotonic()
    assert sender.shutdown(5000) is True
    assert time.monotonic() - t0 < 0.1
    assert sender.submit(_event()) is False
    assert sender.dropped_events == 1


def test_force_flush_sends_without_waiting_for_the_schedule_delay(
    server: RecordingServer, make_sender: Any
) -> None:
    sender = make_sender(server.url, schedule_delay_millis=10_000)
    sender.submit(_event(1))
    assert sender.force_flush(5000)  # the first event goes at once (idle sender)
    sender.submit(_event(2))  # the second would wait 10 s for the pacing delay...
    t0 = time.monotonic()
    assert sender.force_flush(5000)  # ...but a flush does not wait for it
    assert time.monotonic() - t0 < 1


def test_submit_never_raises_and_unserializable_events_are_dropped(
    server: RecordingServer, make_sender: Any
) -> None:
    sender = make_sender(server.url)
    assert sender.submit(object()) is True  # type: ignore[arg-type]
    big = _event(1)
    big.data["too_big"] = 2**70  # orjson refuses integers over 64 bits
    sender.submit(big)
    sender.submit(_event(2))
    assert sender.force_flush(5000)
    assert sender.dropped_events == 2
    assert sender.sent_events == 1


def test_the_sender_thread_suppresses_instrumentation(
    server: RecordingServer, make_sender: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []
    original = RemoteEventSender._post

    def spy(self: RemoteEventSender, body: bytes) -> Any:
        seen.append(context_api.get_value(context_api._SUPPRESS_INSTRUMENTATION_KEY))
        seen.append(context_api.get_value("suppress_instrumentation"))
        return original(self, body)

    monkeypatch.setattr(RemoteEventSender, "_post", spy)
    sender = make_sender(server.url)
    sender.submit(_event())
    assert sender.force_flush(5000)
    assert seen == [True, True]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"endpoint": "localhost:8000"}, "endpoint"),
        ({"endpoint": "ftp://host:21"}, "endpoint"),
        ({"endpoint": "http://"}, "endpoint"),
        ({"endpoint": "http://host:99999"}, "endpoint"),
        ({"endpoint": "http://host:8000/?q=1"}, "endpoint"),
        ({"endpoint": "http://user:pw@host:8000"}, "endpoint"),
        ({"endpoint": 8000}, "endpoint"),
        ({"max_queue_size": 0}, "max_queue_size"),
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"max_batch_size": 10, "max_queue_size": 5}, "max_batch_size"),
        ({"schedule_delay_millis": -1}, "schedule_delay_millis"),
        ({"timeout_millis": 0}, "timeout_millis"),
        ({"max_retry_delay_millis": 1.5}, "max_retry_delay_millis"),
        ({"headers": {"X-A": "b\r\nInjected: 1"}}, "headers"),
        ({"headers": {"X-A": 1}}, "headers"),
    ],
)
def test_invalid_arguments_name_the_parameter(kwargs: dict[str, Any], name: str) -> None:
    kwargs = {"endpoint": "http://127.0.0.1:8000", **kwargs}
    endpoint = kwargs.pop("endpoint")
    with pytest.raises(ValueError, match=name):
        RemoteEventSender(endpoint, **kwargs)


def test_a_forked_child_gets_its_own_sender_thread(server: RecordingServer, make_sender: Any) -> None:
    sender = make_sender(server.url)
    sender.submit(_event(1))
    assert sender.force_flush(5000)
    pid = os.fork()
    if pid == 0:  # the child: the parent's thread is gone, a new one must deliver
        ok = False
        try:
            ok = sender.submit(_event(2)) and sender.force_flush(5000)
        finally:
            os._exit(0 if ok else 1)  # never return into pytest
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(server.event_ids()) == 2
    sender.submit(_event(3))  # the parent's sender is unaffected
    assert sender.force_flush(5000)
    assert len(server.event_ids()) == 3


def test_the_module_does_not_import_aiohttp() -> None:
    code = (
        "import sys, otel_dashboard.pipeline.remote\n"
        "assert 'aiohttp' not in sys.modules, sorted(m for m in sys.modules if 'aiohttp' in m)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def _wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
