"""The simulated multi-agent demo from plain Python (what `otel-dashboard demo` runs).

    python examples/websocket_dashboard_demo.py [PORT]

Then open the printed URL. Ctrl+C stops it cleanly.
"""

from __future__ import annotations

import asyncio
import sys

from otel_dashboard.demo import run_demo

if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    sys.exit(asyncio.run(run_demo("127.0.0.1", port)))
