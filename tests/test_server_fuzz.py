"""Property-based tests (hypothesis) against the real server: whatever a client sends, it gets an answer.

- The WebSocket message handler: any text or binary message (JSON-ish structures, protocol-shaped
  messages with random fields, random strings and bytes, huge numbers, deep nesting, oversized text)
  gets an ``error`` message or a valid reply, never a crash or a disconnect; the connection answers a
  ``ping`` after every one.
- The ingest endpoints over HTTP (``/api/events`` and the three OTLP signals): any body, with any of
  the content types clients send, gets a 2xx or a 4xx, never a 5xx.
- The OTLP/gRPC receiver: random bytes, and real requests of the three signals with bytes replaced
  and cut short, are answered OK or INVALID_ARGUMENT, never INTERNAL.

The server runs in its own thread and loop (``browser_support.ServerThread``); the test thread drives
one client connection from its own loop, one example at a time. Nothing may be logged at ERROR.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import orjson
import pytest
from aiohttp import WSMsgType
from browser_support import ServerThread
from fuzz_support import fuzz_settings
from hypothesis import event, given
from hypothesis import strategies as st

from otel_dashboard.model.events import EventType, Severity
from otel_dashboard.model.otlp import SIGNALS, decode_body
from otel_dashboard.server.security import SecurityConfig
from otel_dashboard.state.dashboard import DashboardState

pytestmark = pytest.mark.timeout(120)

WAIT = 10.0
MAX_MESSAGE_BYTES = 8 * 1024
REPLY_TYPES = frozenset({"error", "pong", "subscribed", "resumed", "events", "gap"})
FUZZ = fuzz_settings(150, derandomize=True)


class Client:
    """A server in a thread, and one WebSocket connection plus an HTTP session driven from here."""

    def __init__(self) -> None:
        # Generous message rate: the fuzzer sends hundreds of messages on one connection.
        security = SecurityConfig(max_ws_message_bytes=MAX_MESSAGE_BYTES, max_body_bytes=64 * 1024,
                                  ws_messages_per_second=100_000, ws_message_burst=100_000)
        self.server = ServerThread(DashboardState(max_history=500), security=security,
                                   health_interval_seconds=None, metrics_interval_seconds=None).start()
        self.loop = asyncio.new_event_loop()
        self.session: aiohttp.ClientSession = self.run(self._session())
        self.ws: aiohttp.ClientWebSocketResponse = self.run(self._connect())

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coroutine, 30))

    async def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        ws = await self.session.ws_connect(f"{self.server.url}/ws", max_msg_size=0)
        snapshot = orjson.loads((await ws.receive(timeout=WAIT)).data)
        assert snapshot["type"] == "snapshot"
        return ws

    def close(self) -> None:
        async def close() -> None:
            await self.ws.close()
            await self.session.close()

        try:
            self.run(close())
        finally:
            self.loop.close()
            self.server.stop()


@pytest.fixture(name="client", scope="module")
def fixture_client() -> Iterator[Client]:
    client = Client()
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _no_error_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.WARNING)
    yield
    errors = [r for r in caplog.records
              if r.levelno >= logging.ERROR and r.name.startswith(("otel", "aiohttp"))]
    assert errors == [], [r.getMessage() for r in errors]


# --------------------------------------------------------------------------- strategies
json_scalars = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**64 - 1), st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (st.lists(children, max_size=6)
                      | st.dictionaries(st.text(max_size=12), children, max_size=6)),
    max_leaves=30,
)
names = st.sampled_from(["ping", "subscribe", "resume"]) | st.text(max_size=20)
filter_values = st.lists(
    st.sampled_from([t.value for t in EventType] + [s.value for s in Severity]) | st.text(max_size=15),
    max_size=8,
)
protocol_messages = st.fixed_dictionaries(
    {"type": names},
    optional={
        "after_seq": st.integers(min_value=-5, max_value=2**64) | json_values,
        "event_types": filter_values | json_values,
        "severities": filter_values | json_values,
        "agents": st.lists(st.text(max_size=30), max_size=300) | json_values,
        "extra": json_values,
    },
).map(lambda m: json.dumps(m))
huge_numbers = st.sampled_from([
    '{"type": "resume", "after_seq": ' + "9" * 400 + "}",
    '{"type": "resume", "after_seq": 1e400}',
    '{"type": "resume", "after_seq": -0}',
    '{"type": "resume", "after_seq": 18446744073709551616}',
    '{"type": "resume", "after_seq": 9223372036854775807}',
    '{"type": "ping", "n": NaN}',
    '{"type": "ping", "n": Infinity}',
])
deep_nesting = st.integers(min_value=1, max_value=3000).map(
    lambda depth: '{"type": "subscribe", "agents": ' + "[" * depth + "]" * depth + "}"
)
oversized = st.integers(min_value=MAX_MESSAGE_BYTES - 64, max_value=4 * MAX_MESSAGE_BYTES).map(
    lambda n: '{"type": "ping", "pad": "' + "\u00e9" * (n // 2) + '"}'
)
text_messages = st.one_of(
    json_values.map(lambda v: json.dumps(v)),
    protocol_messages,
    st.text(max_size=200),
    huge_numbers,
    deep_nesting,
    oversized,
)
messages = text_messages | st.binary(max_size=300)


def pongs_expected(message: str | bytes) -> int:
    """1 if the server will answer ``message`` itself with a pong (a valid ping), else 0."""
    if isinstance(message, bytes) or len(message.encode("utf-8", "replace")) > MAX_MESSAGE_BYTES:
        return 0
    try:
        parsed = orjson.loads(message)  # the server's own parser
    except orjson.JSONDecodeError:
        return 0
    return int(isinstance(parsed, dict) and parsed.get("type") == "ping")


# --------------------------------------------------------------------------- WebSocket
@FUZZ
@given(message=messages)
def test_any_websocket_message_gets_an_error_or_a_valid_reply(client: Client, message: str | bytes) -> None:
    async def exchange() -> list[dict[str, Any]]:
        ws = client.ws
        if isinstance(message, bytes):
            await ws.send_bytes(message)
        else:
            await ws.send_str(message)
        await ws.send_str('{"type": "ping"}')
        wanted = 1 + pongs_expected(message)
        replies: list[dict[str, Any]] = []
        while sum(r["type"] == "pong" for r in replies) < wanted:
            msg = await ws.receive(timeout=WAIT)
            assert msg.type is WSMsgType.TEXT, f"the server closed or broke the connection: {msg!r}"
            reply = orjson.loads(msg.data)
            assert isinstance(reply, dict) and reply.get("type") in REPLY_TYPES, reply
            replies.append(reply)
        return replies

    replies = client.run(exchange())
    answers = [r for r in replies if r["type"] != "pong"]
    event("answers: " + " ".join(sorted({r["type"] for r in answers})))  # --hypothesis-show-statistics
    if isinstance(message, bytes):
        assert [r["type"] for r in answers] == ["error"]
    for reply in answers:
        if reply["type"] == "error":
            assert isinstance(reply["message"], str) and reply["message"]
            assert "internal error" not in reply["message"]


def test_the_fuzzed_connection_is_still_the_same_one(client: Client) -> None:
    # Runs after the property above (file order): one connection took every example.
    assert client.server.server is not None and client.server.server.connected_clients == 1
    assert not client.ws.closed


# --------------------------------------------------------------------------- ingest over HTTP
event_like = st.fixed_dictionaries(
    {"event_type": st.sampled_from([t.value for t in EventType]) | json_values},
    optional={
        "severity": st.sampled_from([s.value for s in Severity]) | json_values,
        "data": st.dictionaries(st.text(max_size=10), json_values, max_size=5) | json_values,
        "timestamp": st.sampled_from(["2026-01-15T10:30:00Z", "2026-01-15T10:30:00", "yesterday",
                                      "2026-02-30T10:30:00+01:00", "9999-12-31T23:59:59.999999-23:59"])
        | json_values,
        "trace_id": st.text(alphabet="0123456789abcdefX", min_size=0, max_size=33) | json_values,
        "span_id": st.text(alphabet="0123456789abcdefX", min_size=0, max_size=17) | json_values,
        "event_id": st.text(max_size=140) | json_values,
        "seq": json_values,
    },
)
valid_events = st.fixed_dictionaries(
    {"event_type": st.sampled_from([t.value for t in EventType])},
    optional={"severity": st.sampled_from([s.value for s in Severity]),
              "data": st.dictionaries(st.text(max_size=10), json_values, max_size=5)},
)
span_like = st.fixed_dictionaries(
    {"trace_id": st.sampled_from(["4bf92f3577b34da6a3ce929d0e0e4736", "0" * 32, "xyz"]) | json_values,
     "span_id": st.sampled_from(["00f067aa0ba902b7", "0" * 16]) | json_values,
     "name": st.text(max_size=20) | json_values},
    optional={"attributes": json_values, "kind": json_values, "duration_ms": json_values,
              "start_time_unix_nano": json_values, "parent_span_id": json_values},
)
ingest_documents = st.one_of(
    event_like,
    valid_events,
    st.fixed_dictionaries({"events": st.lists(valid_events, max_size=5)}),
    st.fixed_dictionaries({"events": st.lists(event_like, max_size=5) | json_values},
                          optional={"spans": st.lists(span_like, max_size=4) | json_values}),
    json_values,
)
ingest_bodies = st.one_of(
    ingest_documents.map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=400),
    st.text(max_size=200).map(str.encode),
    deep_nesting.map(str.encode),
)
otlp_bodies = st.one_of(
    st.binary(max_size=400),
    json_values.map(lambda d: json.dumps(d).encode()),
    st.fixed_dictionaries({"resourceSpans": st.lists(
        st.fixed_dictionaries({"scopeSpans": st.lists(st.fixed_dictionaries({"spans": st.lists(
            span_like.map(lambda s: {"traceId": s["trace_id"], "spanId": s["span_id"], "name": s["name"]}),
            max_size=3)}), max_size=2)},
            optional={"resource": json_values}), max_size=2) | json_values,
    }).map(lambda d: json.dumps(d).encode()),
)
# OTLP metrics and logs (/v1/metrics, /v1/logs): shaped like the documents real exporters send, with
# the GenAI names the readers act on, and any value where a number, an id or a body belongs.
hexish = st.text("0123456789abcdefABCDEF", max_size=34) | json_values
any_value_json = st.recursive(
    st.one_of(st.fixed_dictionaries({"stringValue": st.text(max_size=30)}),
              st.fixed_dictionaries({"intValue": st.integers() | st.text(max_size=8)}),
              st.fixed_dictionaries({"doubleValue": st.floats(allow_nan=False) | json_scalars}),
              json_scalars),
    lambda children: (st.fixed_dictionaries({"arrayValue": st.fixed_dictionaries(
        {"values": st.lists(children, max_size=4)})})
        | st.fixed_dictionaries({"kvlistValue": st.fixed_dictionaries({"values": st.lists(
            st.fixed_dictionaries({"key": st.text(max_size=10), "value": children}), max_size=4)})})),
    max_leaves=12,
)
key_values = st.lists(st.fixed_dictionaries({
    "key": st.sampled_from(["gen_ai.token.type", "gen_ai.agent.name", "gen_ai.request.model", "error.type",
                            "event.name", "exception.type", "exception.message", "content", "role"])
    | st.text(max_size=12),
    "value": any_value_json}), max_size=4)
data_points = st.lists(st.fixed_dictionaries({}, optional={
    "attributes": key_values, "count": st.integers(min_value=-5) | json_scalars,
    "sum": st.floats() | json_scalars, "asInt": st.integers() | json_scalars,
    "asDouble": st.floats() | json_scalars, "bucketCounts": st.lists(st.integers(min_value=-2), max_size=5),
    "explicitBounds": st.lists(st.floats(), max_size=5),
    "startTimeUnixNano": st.integers(min_value=-1) | json_scalars,
    "timeUnixNano": st.integers(min_value=-1) | json_scalars}), max_size=3)
metric_names = st.sampled_from([
    "gen_ai.client.token.usage", "gen_ai.client.operation.duration", "gen_ai.invoke_agent.duration",
    "gen_ai.execute_tool.duration", "mcp.client.operation.duration",
    "gen_ai.client.inference.usage.input_tokens"]) | st.text(max_size=20)
metrics_json = st.fixed_dictionaries({"name": metric_names}, optional={
    "histogram": st.fixed_dictionaries(
        {"dataPoints": data_points}, optional={"aggregationTemporality": st.integers(-1, 3) | json_scalars}),
    "sum": st.fixed_dictionaries({"dataPoints": data_points},
                                 optional={"aggregationTemporality": st.integers(-1, 3) | json_scalars,
                                           "isMonotonic": st.booleans() | json_scalars}),
    "gauge": st.fixed_dictionaries({"dataPoints": data_points})})
otlp_metrics_bodies = st.one_of(
    st.binary(max_size=400),
    json_values.map(lambda d: json.dumps(d).encode()),
    st.fixed_dictionaries({"resourceMetrics": st.lists(st.fixed_dictionaries(
        {"scopeMetrics": st.lists(st.fixed_dictionaries({"metrics": st.lists(metrics_json, max_size=3)}),
                                  max_size=2)},
        optional={"resource": st.fixed_dictionaries({"attributes": key_values})}), max_size=2)})
    .map(lambda d: json.dumps(d).encode()),
)
log_records = st.lists(st.fixed_dictionaries({}, optional={
    "traceId": hexish, "spanId": hexish, "timeUnixNano": st.integers(min_value=-1) | json_scalars,
    "eventName": st.sampled_from(["gen_ai.user.message", "gen_ai.choice", "gen_ai.system.message",
                                  "gen_ai.client.inference.operation.details"]) | st.text(max_size=12),
    "severityNumber": st.integers(-1, 30) | json_scalars, "body": any_value_json,
    "attributes": key_values}), max_size=4)
otlp_logs_bodies = st.one_of(
    st.binary(max_size=400),
    json_values.map(lambda d: json.dumps(d).encode()),
    st.fixed_dictionaries({"resourceLogs": st.lists(st.fixed_dictionaries(
        {"scopeLogs": st.lists(st.fixed_dictionaries({"logRecords": log_records}), max_size=2)}),
        max_size=2)}).map(lambda d: json.dumps(d).encode()),
)
content_types = st.sampled_from([
    "application/json", "application/json", "application/json", "application/json; charset=utf-8",
    "application/x-protobuf", "text/plain", "application/x-www-form-urlencoded", None,
])
codings = st.sampled_from([None] * 6 + ["gzip", "identity", "br"])


def post(client: Client, path: str, body: bytes, content_type: str | None, coding: str | None) -> int:
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if coding is not None:
        headers["Content-Encoding"] = coding
    skip = ["Content-Type"] if content_type is None else []

    async def send() -> int:
        async with client.session.post(f"{client.server.url}{path}", data=body, headers=headers,
                                       skip_auto_headers=skip) as response:
            await response.read()
            return response.status

    return client.run(send())


@FUZZ
@given(body=ingest_bodies, content_type=content_types, coding=codings)
def test_any_ingest_body_gets_a_2xx_or_4xx(client: Client, body: bytes, content_type: str | None,
                                           coding: str | None) -> None:
    status = post(client, "/api/events", body, content_type, coding)
    event(f"status {status}")
    assert 200 <= status < 500, (status, body[:200])


@FUZZ
@given(body=otlp_bodies, content_type=content_types, coding=codings)
def test_any_otlp_body_gets_a_2xx_or_4xx(client: Client, body: bytes, content_type: str | None,
                                         coding: str | None) -> None:
    status = post(client, "/v1/traces", body, content_type, coding)
    event(f"status {status}")
    assert 200 <= status < 500, (status, body[:200])


@FUZZ
@given(body=otlp_metrics_bodies, content_type=content_types, coding=codings)
def test_any_otlp_metrics_body_gets_a_2xx_or_4xx(client: Client, body: bytes, content_type: str | None,
                                                 coding: str | None) -> None:
    status = post(client, "/v1/metrics", body, content_type, coding)
    event(f"status {status}")
    assert 200 <= status < 500, (status, body[:200])


@FUZZ
@given(body=otlp_logs_bodies, content_type=content_types, coding=codings)
def test_any_otlp_logs_body_gets_a_2xx_or_4xx(client: Client, body: bytes, content_type: str | None,
                                              coding: str | None) -> None:
    status = post(client, "/v1/logs", body, content_type, coding)
    event(f"status {status}")
    assert 200 <= status < 500, (status, body[:200])


def test_the_server_is_healthy_after_the_fuzzing(client: Client) -> None:
    async def health() -> dict[str, Any]:
        async with client.session.get(f"{client.server.url}/health") as response:
            assert response.status == 200
            return await response.json()

    assert client.run(health())["status"] in ("healthy", "degraded")


# ------------------------------------------------------------------------------ OTLP/gRPC
_FIXTURES = Path(__file__).parent / "fixtures"
_GRPC_SEEDS = [  # real requests of the three signals, as protobuf, for the mutations to start from
    (SIGNALS[signal].grpc_method, decode_body(path.read_bytes(), content_type="application/json",
                                              content_encoding=None, max_decoded_bytes=1 << 24,
                                              signal=signal)[0].SerializeToString())
    for signal, path in (("traces", _FIXTURES / "spans" / "pydantic_ai" / "runaway.json"),
                         ("metrics", _FIXTURES / "signals" / "openai_v2" / "ok.metrics.json"),
                         ("logs", _FIXTURES / "signals" / "openai_v2" / "ok.logs.json"))
]
grpc_messages = st.one_of(
    st.tuples(st.sampled_from([method for method, _ in _GRPC_SEEDS]), st.binary(max_size=400)),
    st.tuples(st.sampled_from(_GRPC_SEEDS),
              st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=3),
              st.just(1.0) | st.floats(0.05, 1)).map(
        lambda t: (t[0][0], _mutated(t[0][1], t[1], t[2]))),
)


def _mutated(data: bytes, flips: list[tuple[float, int]], keep: float) -> bytes:
    """``data`` with some bytes replaced, cut to a fraction of its length."""
    out = bytearray(data)
    for where, value in flips:
        out[int(where * len(out))] = value
    return bytes(out[: max(1, int(len(out) * keep))])


@pytest.fixture(scope="module")
def grpc_server() -> Iterator[ServerThread]:
    server = ServerThread(DashboardState(max_history=500), grpc_port=0, health_interval_seconds=None,
                          metrics_interval_seconds=None,
                          security=SecurityConfig(ingest_events_per_second=1_000_000)).start()
    yield server
    server.stop()


@FUZZ
@given(message=grpc_messages)
def test_any_grpc_message_is_answered_ok_or_invalid_argument(
    grpc_server: ServerThread, message: tuple[str, bytes]
) -> None:
    """Random bytes, and real requests of the three signals with bytes replaced and cut short: each
    RPC is answered, OK (maybe a partial success) or INVALID_ARGUMENT, never INTERNAL."""
    method, data = message
    server = grpc_server.server
    assert server is not None and server.grpc_port
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        try:
            channel.unary_unary(method)(data, timeout=WAIT)
            code = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            code = exc.code()
    event(f"{method.rsplit('.', 1)[-1]} {code.name}")
    assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), (code, method, data[:100])
