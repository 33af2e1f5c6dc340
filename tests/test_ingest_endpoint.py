"""``POST /api/events`` on a real server: single events, batches, all-or-nothing, span records, 413/415."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from server_support import EventStream, of_type, running_server

from otel_dashboard.server.app import DashboardWebSocketServer

pytestmark = pytest.mark.timeout(60)

SMALL_LIMIT = 16 * 1024
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
AGENT_SPAN = "00f067aa0ba902b7"
TOOL_SPAN = "00f067aa0ba902b8"


@pytest.fixture(name="server")
async def fixture_server() -> AsyncIterator[DashboardWebSocketServer]:
    async with running_server(max_body_bytes=SMALL_LIMIT) as server:
        yield server


async def post(
    session: aiohttp.ClientSession, server: DashboardWebSocketServer, body: Any = None, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    if body is not None:
        kwargs["json"] = body
    async with session.post(f"{server.url}/api/events", **kwargs) as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


async def last_seq(session: aiohttp.ClientSession, server: DashboardWebSocketServer) -> int:
    async with session.get(f"{server.url}/health") as response:
        assert response.status == 200
        return (await response.json())["last_seq"]


def error_event(message: str, **extra: Any) -> dict[str, Any]:
    return {"event_type": "error_occurred", "severity": "error",
            "data": {"source": "tests", "error_message": message, "error_type": "Boom"}, **extra}


async def test_a_single_event(server: DashboardWebSocketServer, session: aiohttp.ClientSession) -> None:
    stream = await EventStream.connect(session, server)
    status, body = await post(session, server, error_event("one", timestamp="2026-01-15T11:30:00.5+01:00"))
    assert status == 200
    assert body == {"accepted": 1, "first_seq": 1, "last_seq": 1}
    event = await stream.wait_for(of_type("error_occurred", error_message="one"))
    assert event["seq"] == 1
    assert event["timestamp"] == "2026-01-15T10:30:00.500Z"
    await stream.close()


async def test_a_batch_is_published_in_order(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession
) -> None:
    stream = await EventStream.connect(session, server)
    status, body = await post(session, server, {"events": [error_event(f"e{i}") for i in range(5)]})
    assert status == 200
    assert body == {"accepted": 5, "first_seq": 1, "last_seq": 5}
    await stream.wait_for(of_type("error_occurred", error_message="e4"))
    assert [e["data"]["error_message"] for e in stream.events] == [f"e{i}" for i in range(5)]
    async with session.get(f"{server.url}/api/events", params={"event_type": "error_occurred"}) as r:
        assert [e["seq"] for e in (await r.json())["events"]] == [1, 2, 3, 4, 5]
    status, body = await post(session, server, {"events": []})
    assert (status, body) == (200, {"accepted": 0, "first_seq": None, "last_seq": None})
    await stream.close()


@pytest.mark.parametrize(("bad", "field"), [
    ({"event_type": "agent_started"}, "events[2].event_type"),
    ({"event_type": "error_occurred", "severity": "fatal"}, "events[2].severity"),
    ({"event_type": "error_occurred", "timestamp": "2026-01-15T10:30:00"}, "events[2].timestamp"),
    ({"severity": "info"}, "events[2].event_type"),
    ({"event_type": "error_occurred", "trace_id": "xyz"}, "events[2].trace_id"),
])
async def test_a_batch_with_one_bad_event_is_refused_whole(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession, bad: dict[str, Any], field: str
) -> None:
    await post(session, server, error_event("before"))
    before = await last_seq(session, server)
    status, body = await post(session, server, {"events": [error_event("a"), error_event("b"), bad]})
    assert status == 400
    assert body["field"] == field
    assert body["error"].startswith(field + ": ")
    assert await last_seq(session, server) == before  # nothing of the batch was accepted
    async with session.get(f"{server.url}/api/events") as response:
        assert [e["data"].get("error_message") for e in (await response.json())["events"]] == ["before"]


async def test_span_records_reach_the_trace_view(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession
) -> None:
    started = {
        "event_type": "agent_execution_started", "trace_id": TRACE, "span_id": AGENT_SPAN,
        "timestamp": "2026-01-15T10:30:00.000Z",
        "data": {"agent_id": "remote-1", "agent_name": "Remote", "run_id": "r1"},
    }
    tool = {
        "trace_id": TRACE, "span_id": TOOL_SPAN, "parent_span_id": AGENT_SPAN, "name": "execute_tool fetch",
        "kind": "tool", "start_time": "2026-01-15T10:30:00.100Z", "end_time": "2026-01-15T10:30:00.300Z",
        "start_time_unix_nano": 1, "end_time_unix_nano": 2, "duration_ms": 200.0, "status": "ok",
        "tool_name": "fetch", "attributes": {"gen_ai.tool.name": "fetch", "nested": {"dropped": True}},
        "unknown_field": "ignored",
    }
    status, body = await post(session, server, {"events": [started], "spans": [tool]})
    assert status == 200, body
    # The state registers the never-seen agent first (seq 1); the request's event is seq 2.
    assert body == {"accepted": 1, "first_seq": 2, "last_seq": 2}
    async with session.get(f"{server.url}/api/traces/{TRACE}") as response:
        trace = await response.json()
    by_id = {s["span_id"]: s for s in trace["spans"]}
    assert set(by_id) == {AGENT_SPAN, TOOL_SPAN}
    assert by_id[AGENT_SPAN]["kind"] == "agent"  # derived from the run event
    assert by_id[AGENT_SPAN]["end_time"] is None  # still running
    assert by_id[TOOL_SPAN]["parent_span_id"] == AGENT_SPAN
    assert by_id[TOOL_SPAN]["attributes"] == {"gen_ai.tool.name": "fetch"}
    assert "unknown_field" not in by_id[TOOL_SPAN]
    assert trace["running"] is True
    assert trace["root_span_ids"] == [AGENT_SPAN]


@pytest.mark.parametrize(("span", "field"), [
    ({"span_id": TOOL_SPAN, "name": "x"}, "spans[1].trace_id"),
    ({"trace_id": TRACE, "span_id": "00f0", "name": "x"}, "spans[1].span_id"),
    ({"trace_id": "0" * 32, "span_id": TOOL_SPAN, "name": "x"}, "spans[1].trace_id"),
    ({"trace_id": TRACE, "span_id": TOOL_SPAN, "name": 7}, "spans[1].name"),
    ("not an object", "spans[1]"),
])
async def test_a_bad_span_record_refuses_the_whole_request(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession, span: Any, field: str
) -> None:
    good = {"trace_id": TRACE, "span_id": AGENT_SPAN, "name": "invoke_agent A"}
    status, body = await post(session, server, {"events": [error_event("x")], "spans": [good, span]})
    assert status == 400
    assert body["field"] == field
    assert await last_seq(session, server) == 0
    async with session.get(f"{server.url}/api/traces/{TRACE}") as response:
        assert response.status == 404


async def test_other_content_types_are_415(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession
) -> None:
    for headers in ({"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"},
                    {"Content-Type": "application/json", "Content-Encoding": "gzip"}):
        status, body = await post(session, server, data=b'{"event_type": "error_occurred"}', headers=headers)
        assert status == 415, headers
        assert "error" in body
    status, _ = await post(session, server, data=b'{"event_type": "error_occurred"}',
                           headers={"Content-Type": "application/json; charset=utf-8"})
    assert status == 200
    assert await last_seq(session, server) == 1


async def test_an_oversized_body_is_413_and_the_server_keeps_serving(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession
) -> None:
    big = {"events": [error_event("x" * 1000) for _ in range(SMALL_LIMIT // 1000 + 1)]}
    status, body = await post(session, server, big)
    assert status == 413
    assert body == {"error": f"request body is larger than {SMALL_LIMIT} bytes"}

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: aiohttp's own limit applies
        yield b'{"events": ['
        for _ in range(SMALL_LIMIT // 100 + 1):
            yield b'{"event_type": "error_occurred", "data": {"pad": "' + b"x" * 60 + b'"}},'
        yield b'{"event_type": "error_occurred"}]}'

    status, body = await post(session, server, data=chunks(), headers={"Content-Type": "application/json"})
    assert status == 413
    assert "larger than" in body["error"]
    assert await last_seq(session, server) == 0
    status, _ = await post(session, server, error_event("small"))
    assert status == 200


async def test_malformed_json_is_400_naming_the_body(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession
) -> None:
    status, body = await post(session, server, data=b'{"events": [',
                              headers={"Content-Type": "application/json"})
    assert status == 400
    assert body["field"] == "body"
