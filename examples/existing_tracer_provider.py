"""Adding the dashboard to an application that already has OpenTelemetry tracing set up.

The application keeps its exporters (here a console exporter standing in for OTLP/Jaeger); the
dashboard processor is one more processor on the same provider, so the same spans go to both.

    python examples/existing_tracer_provider.py [--port 8000]
    OTEL_DASHBOARD_ENDPOINT=http://127.0.0.1:8000 python examples/existing_tracer_provider.py

With OTEL_DASHBOARD_ENDPOINT set, the processor ships the events to that server (with
OTEL_DASHBOARD_TOKEN as its token, when set) and the program ends once they are delivered; without
it, the program serves the dashboard on --port until Ctrl+C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from otel_dashboard import DashboardSpanProcessor, DashboardWebSocketServer, get_dashboard

ENDPOINT = os.environ.get("OTEL_DASHBOARD_ENDPOINT") or None

# The application's existing set-up.
provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
trace.set_tracer_provider(provider)

# The one line the dashboard needs (in process, or to a server elsewhere).
if ENDPOINT:
    provider.add_span_processor(DashboardSpanProcessor(
        endpoint=ENDPOINT, token=os.environ.get("OTEL_DASHBOARD_TOKEN") or None))
else:
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


async def main(port: int) -> None:
    def started(server: DashboardWebSocketServer) -> None:
        plan_trip("Lisbon")
        provider.force_flush()
        print("events so far:", get_dashboard().get_metrics()["total_events"])
        print(f"open {server.dashboard_url}  (Ctrl+C to stop)", flush=True)

    await DashboardWebSocketServer(port=port).run_forever(on_started=started)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8000,
                        help="port of the dashboard served here (default: 8000; 0: any free port)")
    args = parser.parse_args()
    try:
        if ENDPOINT:
            plan_trip("Lisbon")
            print(f"sent to {ENDPOINT}", flush=True)
        else:
            asyncio.run(main(args.port))
    finally:
        provider.shutdown()  # delivers what is still queued
