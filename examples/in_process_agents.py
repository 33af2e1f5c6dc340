"""Way 1 of running: the agent application serves the dashboard in its own event loop.

Decorated agents make spans; the DashboardSpanProcessor on the tracer provider turns them into
dashboard events on the in-process bus; the server broadcasts them to browsers.

    python examples/in_process_agents.py                # then open http://127.0.0.1:8000/dashboard
    python examples/in_process_agents.py --port 8123    # another port (0: any free one)
    OTEL_DASHBOARD_ENDPOINT=http://127.0.0.1:8000 python examples/in_process_agents.py

With OTEL_DASHBOARD_ENDPOINT set (way 2), no server starts here: the processor ships the events to
that server (with OTEL_DASHBOARD_TOKEN as its token, when set).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from otel_dashboard import (
    DashboardSpanProcessor,
    DashboardWebSocketServer,
    agent,
    record_opportunity,
    record_quality_score,
    tool,
)


@tool(name="search")
async def search(query: str) -> list[str]:
    await asyncio.sleep(0.3)
    return [f"{query} result {i}" for i in range(3)]


@agent(name="Researcher", agent_id="researcher-1")
async def research(task: str) -> int:
    results = await search(task)
    record_opportunity("Solar storage for SMBs", category="energy", confidence=0.82,
                       description="Battery + PV bundles for small businesses",
                       revenue_potential="$1.5M ARR")
    record_quality_score(96.0, dimension_scores={"accuracy": 97.0, "coverage": 95.0})
    return len(results)


async def keep_researching() -> None:
    while True:
        await research("Find underserved markets in home energy")
        await asyncio.sleep(2)


async def main(port: int, endpoint: str | None) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "research-app"}))
    if endpoint:  # way 2: a dashboard server runs elsewhere
        token = os.environ.get("OTEL_DASHBOARD_TOKEN") or None
        provider.add_span_processor(DashboardSpanProcessor(endpoint=endpoint, token=token))
    else:
        provider.add_span_processor(DashboardSpanProcessor())
    trace.set_tracer_provider(provider)
    work: asyncio.Future[None] | None = None
    try:
        if endpoint:
            print(f"sending to {endpoint}  (Ctrl+C to stop)", flush=True)
            await keep_researching()
        else:
            def started(server: DashboardWebSocketServer) -> None:
                nonlocal work
                print(f"open {server.dashboard_url}  (Ctrl+C to stop)", flush=True)
                work = asyncio.ensure_future(keep_researching())

            await DashboardWebSocketServer(port=port).run_forever(on_started=started)
    finally:
        if work is not None:
            work.cancel()
        provider.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8000,
                        help="port of the dashboard served here (default: 8000; 0: any free port)")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):  # way 2 has no signal handler of its own
        asyncio.run(main(args.port, os.environ.get("OTEL_DASHBOARD_ENDPOINT") or None))
