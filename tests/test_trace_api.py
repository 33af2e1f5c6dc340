"""``GET /api/traces/{trace_id}`` after an in-process agent -> tool -> agent run (decorators + processor).

The processor records every span it processes in the state's trace store (running at start,
finished at end), so the tree is there while the run is still going.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from opentelemetry import trace
from server_support import WAIT, running_server
from tracing_support import routed_to

from instrumentation import agent, tool
from otel_dashboard.pipeline.processor import DashboardSpanProcessor
from otel_dashboard.server.app import DashboardWebSocketServer
from otel_dashboard.state.dashboard import DashboardState

pytestmark = pytest.mark.timeout(60)


async def get_trace(
    session: aiohttp.ClientSession, server: DashboardWebSocketServer, trace_id: str
) -> tuple[int, dict[str, Any]]:
    async with session.get(f"{server.url}/api/traces/{trace_id}") as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


@pytest.fixture(name="state")
def fixture_state() -> DashboardState:
    return DashboardState()


@pytest.fixture(name="processor")
def fixture_processor(state: DashboardState) -> Iterator[DashboardSpanProcessor]:
    processor = DashboardSpanProcessor(state=state)
    yield processor
    processor.shutdown(5000)


async def test_nested_run_gives_the_span_tree_live_and_finished(
    session: aiohttp.ClientSession, state: DashboardState, processor: DashboardSpanProcessor
) -> None:
    inside, proceed = threading.Event(), threading.Event()
    seen: dict[str, str] = {}

    @agent(name="Critic")
    def critic(draft: str) -> str:
        context = trace.get_current_span().get_span_context()
        seen["trace_id"] = format(context.trace_id, "032x")
        inside.set()
        assert proceed.wait(WAIT), "the test never let the run finish"
        return draft + " (reviewed)"

    @tool(name="review")
    def review(draft: str) -> str:
        return critic(draft)

    @agent(name="Writer")
    def writer(topic: str) -> str:
        return review(f"a draft about {topic}")

    async with running_server(state) as server:
        with routed_to(processor):
            run = asyncio.ensure_future(asyncio.to_thread(writer, "heat pumps"))
            try:
                assert await asyncio.to_thread(inside.wait, WAIT)
                assert await asyncio.to_thread(processor.force_flush, 5000)
                status, live = await get_trace(session, server, seen["trace_id"])
            finally:
                proceed.set()
            assert await asyncio.wait_for(run, WAIT) == "a draft about heat pumps (reviewed)"
        assert await asyncio.to_thread(processor.force_flush, 5000)
        _, done = await get_trace(session, server, seen["trace_id"])

        # While the inner agent waits, all three spans are there and all are running.
        assert status == 200
        assert live["running"] is True
        assert [(s["name"], s["end_time"], s["duration_ms"]) for s in live["spans"]] == [
            ("invoke_agent Writer", None, None),
            ("execute_tool review", None, None),
            ("invoke_agent Critic", None, None),
        ]

        # Finished: the same tree, with kinds, parent links and durations.
        assert done["running"] is False
        assert done["trace_id"] == seen["trace_id"]
        assert done["span_count"] == 3
        outer, tool_span, inner = done["spans"]  # sorted by start time
        assert [(s["kind"], s["name"]) for s in done["spans"]] == [
            ("agent", "invoke_agent Writer"),
            ("tool", "execute_tool review"),
            ("agent", "invoke_agent Critic"),
        ]
        assert done["root_span_ids"] == [outer["span_id"]]
        assert outer["parent_span_id"] is None
        assert tool_span["parent_span_id"] == outer["span_id"]
        assert inner["parent_span_id"] == tool_span["span_id"]
        names = (outer["agent_name"], tool_span["tool_name"], inner["agent_name"])
        assert names == ("Writer", "review", "Critic")
        for span in done["spans"]:
            assert span["status"] == "unset"  # the decorators leave a success UNSET
            assert span["end_time"] is not None
            assert span["duration_ms"] > 0
        assert outer["duration_ms"] >= tool_span["duration_ms"] >= inner["duration_ms"]
        starts = [s["start_time_unix_nano"] for s in (outer, tool_span, inner)]
        assert starts == sorted(starts)

        # Unknown and malformed ids.
        unknown = "0af7651916cd43dd8448eb211c80319c"
        status, body = await get_trace(session, server, unknown)
        assert (status, body) == (404, {"error": "trace not found", "trace_id": unknown})
        for bad in ("xyz", "0af7651916cd43dd8448eb211c80319", "0af7651916cd43dd8448eb211c80319cz", "0" * 32):
            status, body = await get_trace(session, server, bad)
            assert status == 400, bad
            assert body["parameter"] == "trace_id"
        status, body = await get_trace(session, server, seen["trace_id"].upper())
        assert status == 200
        assert body["trace_id"] == seen["trace_id"]
