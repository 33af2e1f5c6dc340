"""``DashboardSpanProcessor(endpoint=...)`` against a real server: live delivery, server down, recovery.

Decorated agents (``instrumentation.agent`` / ``tool``, on the global tracer provider) run in a worker
thread, as an agent application would, while this test's event loop runs the server they ship to.
Anything that may block (the agents, ``force_flush``, ``shutdown``) therefore runs in a thread.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import aiohttp
import pytest
from server_support import WAIT, EventStream, of_type, running_server
from tracing_support import routed_to

from instrumentation import agent, tool
from otel_dashboard.pipeline.processor import DashboardSpanProcessor

pytestmark = pytest.mark.timeout(60)

LIVE_LATENCY_SECONDS = 0.3  # the bound, from span start/end to the WebSocket client


def free_port() -> int:
    """A loopback port nothing listens on (bound and released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@tool(name="lookup")
def lookup(query: str) -> str:
    return query.upper()


async def test_started_and_completed_events_arrive_within_300_ms(session: aiohttp.ClientSession) -> None:
    async with running_server() as server:
        stream = await EventStream.connect(session, server)
        processor = DashboardSpanProcessor(endpoint=server.url)
        gate = threading.Event()
        times: dict[str, float] = {}

        @agent(name="LiveRemote")
        def live_remote(task: str) -> str:
            result = lookup(task)
            assert gate.wait(WAIT), "the test never let the agent finish"
            times["body_done"] = time.monotonic()  # the span ends after this
            return result

        def run() -> str:
            times["calling"] = time.monotonic()  # the span starts after this
            return live_remote("find market gaps")

        try:
            with routed_to(processor):
                running = asyncio.ensure_future(asyncio.to_thread(run))
                try:
                    arrived, started = await stream.wait_for_timed(
                        of_type("agent_execution_started", agent_name="LiveRemote")
                    )
                    assert not running.done()  # seen while the agent still runs
                finally:
                    gate.set()
                assert await asyncio.wait_for(running, WAIT) == "FIND MARKET GAPS"
                start_latency = arrived - times["calling"]
                arrived, completed = await stream.wait_for_timed(
                    of_type("agent_execution_completed", agent_name="LiveRemote")
                )
                end_latency = arrived - times["body_done"]
            assert start_latency < LIVE_LATENCY_SECONDS, start_latency
            assert end_latency < LIVE_LATENCY_SECONDS, end_latency
            assert completed["data"]["success"] is True
            assert completed["data"]["task_description"] == "find market gaps"
            assert completed["trace_id"] == started["trace_id"]

            # The span records travelled too: the remote run, its tool included, is in the trace view.
            assert await asyncio.to_thread(processor.force_flush, 5000)
            async with session.get(f"{server.url}/api/traces/{started['trace_id']}") as response:
                trace = await response.json()
            kinds = {s["name"]: (s["kind"], s["end_time"] is not None) for s in trace["spans"]}
            assert kinds == {
                "invoke_agent LiveRemote": ("agent", True), "execute_tool lookup": ("tool", True),
            }
            agent_span = next(s for s in trace["spans"] if s["kind"] == "agent")
            tool_span = next(s for s in trace["spans"] if s["kind"] == "tool")
            assert tool_span["parent_span_id"] == agent_span["span_id"] == started["span_id"]
            assert processor.dropped_events == 0
        finally:
            await asyncio.to_thread(processor.shutdown, 5000)
        await stream.close()


@agent(name="Burst")
def burst(i: int) -> int:
    return len(lookup(str(i)))


def run_many(count: int) -> tuple[float, float]:
    """``count`` decorated agent calls (each with a tool call); the slowest call and the total time."""
    slowest = 0.0
    began = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        burst(i)
        slowest = max(slowest, time.perf_counter() - t0)
    return slowest, time.perf_counter() - began


async def wait_until(check: Any, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_server_down_agents_run_at_full_speed_then_delivery_resumes(
    session: aiohttp.ClientSession,
) -> None:
    port = free_port()
    processor = DashboardSpanProcessor(endpoint=f"http://127.0.0.1:{port}", max_queue_size=64)
    try:
        with routed_to(processor):
            # 1. Nobody listens: the agents must not notice.
            slowest, total = await asyncio.to_thread(run_many, 2000)
            assert slowest < 0.25, f"a decorated call took {slowest * 1000:.1f} ms with the server down"
            assert total < 10.0, f"2000 decorated calls took {total:.2f} s with the server down"
            await wait_until(lambda: processor.dropped_events > 0)  # the small queue overflowed

            # 2. A server comes up on that port: the sender's retries get the backlog through (what
            #    fitted in the queue), then new spans arrive as usual.
            async with running_server(port=port) as server:
                stream = await EventStream.connect(session, server)
                await stream.wait_for(of_type("agent_execution_completed", agent_name="Burst"))
                assert await asyncio.to_thread(processor.force_flush, 10_000)  # backlog delivered
                dropped = processor.dropped_events

                @agent(name="Returner")
                def returner() -> str:
                    return "back"

                assert await asyncio.to_thread(returner) == "back"
                await stream.wait_for(of_type("agent_execution_started", agent_name="Returner"))
                await stream.wait_for(of_type("agent_execution_completed", agent_name="Returner"))
                assert await asyncio.to_thread(processor.force_flush, 10_000)
                assert processor.dropped_events == dropped  # nothing lost once the server is back
                async with session.get(f"{server.url}/stats") as response:
                    assert (await response.json())["receiver"]["ingest_requests"] >= 1
                await stream.close()
                await asyncio.to_thread(processor.shutdown, 5000)
    finally:
        await asyncio.to_thread(processor.shutdown, 1000)  # idempotent; bounded if the test failed early
