"""Take docs/img/dashboard.png: the dashboard at 1440x900 while the simulated demo runs.

Usage: .venv/bin/python scripts/screenshot.py [--out docs/img/dashboard.png] [--seconds 7] [--theme dark]

Starts a DashboardWebSocketServer on a free loopback port, runs the simulated multi-agent demo
(otel_dashboard.demo) against it through the real OpenTelemetry path, opens the page in headless
Chromium (/usr/bin/chromium, or $OTEL_DASHBOARD_CHROMIUM) and saves a screenshot once the panels
are busy. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.async_api import async_playwright  # noqa: E402

from otel_dashboard.server.app import DashboardWebSocketServer  # noqa: E402
from otel_dashboard.state.dashboard import DashboardState  # noqa: E402

CHROMIUM = os.environ.get("OTEL_DASHBOARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


async def _busy_enough(page, deadline: float) -> None:
    """Wait (until ``deadline``) for a frame that shows running agents and opportunities."""
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        counts = await page.evaluate(
            """() => ({agents: document.querySelectorAll('#agents > li').length,
                       stalled: document.querySelectorAll('#agents > li.stalled').length,
                       opps: document.querySelectorAll('#opportunities > li').length,
                       activeCard: document.getElementById('metric-active-agents').textContent,
                       oppsCard: document.getElementById('metric-opportunities').textContent})"""
        )
        # The cards are throttled server values: wait for a moment when they agree with the panels.
        agree = counts["activeCard"] == str(counts["agents"]) and counts["oppsCard"] == str(counts["opps"])
        if counts["agents"] >= 3 and counts["stalled"] >= 1 and counts["opps"] >= 3 and agree:
            return
        await asyncio.sleep(0.1)


async def main(out: Path, seconds: float, theme: str) -> int:
    from otel_dashboard.demo import install_demo_tracing, run_scenario

    # A short stall threshold so that the slow DeepDiver shows as stalled in the picture.
    state = DashboardState(max_history=2000, stall_threshold_seconds=4.0)
    provider = install_demo_tracing(state)
    # Frequent health and metrics updates: the sparkline fills and the cards track the panels.
    server = DashboardWebSocketServer("127.0.0.1", 0, state=state, name="demo",
                                      health_interval_seconds=1.0, metrics_interval_seconds=0.25)
    await server.start()
    scenario: asyncio.Task[None] | None = None
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = await browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-US",
                                                color_scheme=theme)
            if theme == "light":
                await context.add_init_script("localStorage.setItem('otel-dashboard:theme', 'light')")
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            await page.goto(server.dashboard_url)
            await page.wait_for_selector("#conn[data-state=open]")
            scenario = asyncio.ensure_future(run_scenario(seed=11, speed=2.5))
            loop = asyncio.get_running_loop()
            await asyncio.sleep(seconds)
            await _busy_enough(page, loop.time() + 15)
            out.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(out), animations="disabled")
            await browser.close()
            if errors:
                print("browser errors:", *errors, sep="\n  ", file=sys.stderr)
                return 1
    finally:
        if scenario is not None:
            scenario.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scenario
        await server.stop()
        provider.shutdown()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "dashboard.png")
    parser.add_argument("--seconds", type=float, default=7.0, help="demo time before the shot")
    parser.add_argument("--theme", choices=("dark", "light"), default="dark")
    args = parser.parse_args()
    code = asyncio.run(main(args.out, args.seconds, args.theme))
    if code == 0:
        print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")
    sys.exit(code)
