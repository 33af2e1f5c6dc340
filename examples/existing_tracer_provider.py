"""Adding the dashboard to an application that already has OpenTelemetry tracing set up.

The application keeps its exporters (here a console exporter standing in for OTLP/Jaeger); the
dashboard processor is one more processor on the same provider, so the same spans go to both.

    python examples/existing_tracer_provider.py
"""

from __future__ import annotations

import asyncio
import time

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from otel_dashboard import DashboardSpanProcessor, DashboardWebSocketServer, get_dashboard

# The application's existing set-up.
provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
trace.set_tracer_provider(provider)

# The one line the dashboard needs.
provider.add_span_processor(DashboardSpanProcessor())

tracer = trace.get_tracer("my-app")


def plan_trip(destination: str) -> str:
    # Hand-written GenAI-convention spans (as other instrumentations produce) are understood too.
    with tracer.start_as_current_span("invoke_agent Planner") as span:
        span.set_attribute("gen_ai.operation.name", "invoke_agent")
        span.set_attribute("gen_ai.agent.name", "Planner")
        with tracer.start_as_current_span("execute_tool lookup_flights") as tool_span:
            tool_span.set_attribute("gen_ai.operation.name", "execute_tool")
            tool_span.set_attribute("gen_ai.tool.name", "lookup_flights")
            time.sleep(0.3)  # the lookup itself: a run with no work in it shows "completed in 0 ms"
        return f"itinerary for {destination}"


async def main() -> None:
    async with DashboardWebSocketServer(port=8000) as server:
        plan_trip("Lisbon")
        provider.force_flush()
        print("events so far:", get_dashboard().get_metrics()["total_events"])
        print(f"open {server.url}/dashboard  (Ctrl+C to stop)")
        await server.run_forever()
    provider.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
