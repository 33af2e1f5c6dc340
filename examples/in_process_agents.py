"""Way 1 of running: the agent application serves the dashboard in its own event loop.

Decorated agents make spans; the DashboardSpanProcessor on the tracer provider turns them into
dashboard events on the in-process bus; the server broadcasts them to browsers.

    python examples/in_process_agents.py      # then open http://127.0.0.1:8000/dashboard
"""

from __future__ import annotations

import asyncio

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


async def main() -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "research-app"}))
    provider.add_span_processor(DashboardSpanProcessor())
    trace.set_tracer_provider(provider)

    async with DashboardWebSocketServer(port=8000) as server:
        print(f"open {server.url}/dashboard  (Ctrl+C to stop)")

        async def keep_researching() -> None:
            while True:
                await research("Find underserved markets in home energy")
                await asyncio.sleep(2)

        work = asyncio.ensure_future(keep_researching())
        try:
            await server.run_forever()
        finally:
            work.cancel()
            provider.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
