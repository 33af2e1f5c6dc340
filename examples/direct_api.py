"""The direct API kept from the original design: publish events without spans.

    python examples/direct_api.py
"""

from __future__ import annotations

import asyncio

from otel_dashboard import DashboardWebSocketServer, get_dashboard


async def main() -> None:
    dashboard = get_dashboard()
    async with DashboardWebSocketServer(port=8000) as server:
        print(f"open {server.url}/dashboard  (Ctrl+C to stop)")
        await dashboard.agent_started("writer-1", "Writer", "Draft the market report")
        await asyncio.sleep(1.5)
        await dashboard.opportunity_discovered(
            "opp-1", "Cold-chain monitoring", "IoT sensors for small grocers", 0.74, "$600K ARR", "logistics"
        )
        await dashboard.agent_completed("writer-1", "Writer", "Draft the market report", 1500.0, True,
                                        quality_score=93.0)
        await dashboard.quality_score_updated("Writer", 93.0, {"clarity": 95.0, "accuracy": 91.0})
        await server.run_forever()


if __name__ == "__main__":
    asyncio.run(main())
