"""The simulated multi-agent demo from plain Python (what `otel-dashboard demo` runs).

    python examples/websocket_dashboard_demo.py [--port 8000]
    OTEL_DASHBOARD_ENDPOINT=http://127.0.0.1:8000 python examples/websocket_dashboard_demo.py

Then open the printed URL. Ctrl+C stops it cleanly. With OTEL_DASHBOARD_ENDPOINT set, no server
starts here: the simulated agents send their events to that server (with OTEL_DASHBOARD_TOKEN as
its token, when set), through DashboardSpanProcessor(endpoint=...).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from otel_dashboard import DashboardSpanProcessor
from otel_dashboard.demo import run_demo, run_scenario


def send_to(endpoint: str) -> int:
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-dashboard-demo"}))
    provider.add_span_processor(DashboardSpanProcessor(
        endpoint=endpoint, token=os.environ.get("OTEL_DASHBOARD_TOKEN") or None))
    trace.set_tracer_provider(provider)
    print(f"otel-dashboard demo agents sending to {endpoint}  (Ctrl+C to stop)", flush=True)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_scenario())
    finally:
        provider.shutdown()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8000,
                        help="port of the dashboard served here (default: 8000; 0: any free port)")
    args = parser.parse_args()
    endpoint = os.environ.get("OTEL_DASHBOARD_ENDPOINT") or None
    sys.exit(send_to(endpoint) if endpoint else asyncio.run(run_demo("127.0.0.1", args.port)))
