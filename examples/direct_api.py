"""The direct API kept from the original design: publish events without spans.

    python examples/direct_api.py [--port 8000]

The direct API publishes to this process's state, so this program always serves the dashboard itself
(OTEL_DASHBOARD_ENDPOINT does not apply: to feed a server elsewhere, use spans and
DashboardSpanProcessor(endpoint=...), as examples/in_process_agents.py does).
"""

from __future__ import annotations

import argparse
import asyncio

from otel_dashboard import DashboardWebSocketServer, get_dashboard


async def publish() -> None:
    dashboard = get_dashboard()
    await dashboard.agent_started("writer-1", "Writer", "Draft the market report")
    await asyncio.sleep(1.5)
    await dashboard.opportunity_discovered(
        "opp-1", "Cold-chain monitoring", "IoT sensors for small grocers", 0.74, "$600K ARR", "logistics"
    )
    await dashboard.agent_completed("writer-1", "Writer", "Draft the market report", 1500.0, True,
                                    quality_score=93.0)
    await dashboard.quality_score_updated("Writer", 93.0, {"clarity": 95.0, "accuracy": 91.0})


async def main(port: int) -> None:
    tasks: list[asyncio.Future[None]] = []

    def started(server: DashboardWebSocketServer) -> None:
        print(f"open {server.dashboard_url}  (Ctrl+C to stop)", flush=True)
        tasks.append(asyncio.ensure_future(publish()))

    await DashboardWebSocketServer(port=port).run_forever(on_started=started)
    for task in tasks:
        task.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8000,
                        help="port of the dashboard (default: 8000; 0: any free port)")
    asyncio.run(main(parser.parse_args().port))
