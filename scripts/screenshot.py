"""Take the docs' pictures of the dashboard while the simulated demo runs (`make screenshot`).

Usage: .venv/bin/python scripts/screenshot.py [--out docs/img/dashboard.png] [--seconds 7] [--wait 20]

Writes three pictures, named after OUT:
- OUT (docs/img/dashboard.png, the README's image): 1440x900, dark theme;
- OUT-phone (docs/img/dashboard-phone.png): 390x844, dark theme;
- OUT-light (docs/img/dashboard-light.png): 1440x900, light theme;
- the pages, 1440x900, dark, next to OUT: trace-page.png (the trace page of a finished demo run
  with a model call selected: waterfall and transcript), traces-list.png (the traces list) and
  agent-graph.png (the agent graph of the usage window).

Starts a DashboardWebSocketServer on a free loopback port, runs the simulated multi-agent demo
(otel_dashboard.demo) against it through the real OpenTelemetry path, opens the page in headless
Chromium (/usr/bin/chromium, or $OTEL_DASHBOARD_CHROMIUM), lets the demo run for SECONDS, then takes
each picture once the page is busy enough: at least 3 running runs and 3 opportunities listed, and
a cost (a "$" amount) in the usage cards when the page has them. A page that never gets there within
WAIT seconds is taken anyway, with a warning naming what was missing. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.async_api import Browser, Page, async_playwright  # noqa: E402

from otel_dashboard.demo import (  # noqa: E402
    DEMO_BUDGETS,
    DEMO_STALL_THRESHOLD_SECONDS,
    install_demo_tracing,
    run_scenario,
)
from otel_dashboard.server.app import DashboardWebSocketServer  # noqa: E402
from otel_dashboard.state.dashboard import DashboardState  # noqa: E402

CHROMIUM = os.environ.get("OTEL_DASHBOARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    # Three pages are open at once and only one is in front: without these, the others would stop
    # rendering (requestAnimationFrame paused, timers throttled) and show stale or blank panels.
    "--disable-renderer-backgrounding", "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
]
SEED = 11
SPEED = 2.5  # the demo a little faster than `make demo`, so the page fills in a few seconds
MIN_RUNNING = 3
MIN_OPPORTUNITIES = 3


@dataclass(frozen=True)
class Shot:
    """One picture: where it goes (OUT's name plus ``suffix``), its viewport and its theme."""

    suffix: str
    width: int
    height: int
    theme: str
    mobile: bool = False

    def path(self, out: Path) -> Path:
        return out.with_name(f"{out.stem}{self.suffix}{out.suffix}")


SHOTS = (
    Shot("", 1440, 900, "dark"),
    Shot("-phone", 390, 844, "dark", mobile=True),
    Shot("-light", 1440, 900, "light"),
)

# What the page shows, read by selectors that fit both the page before issue 15 (#agents,
# #opportunities) and after it (#panel-running, #panel-opps, #usage-cards): the page is rebuilt
# panel by panel, and this script must keep working whichever ids are there. Lists are counted by
# their outermost items only (a run's own sub-list does not count as more runs).
_READ_PAGE = """() => {
  const outermost = (panel, fallback) => {
    const root = document.querySelector(panel);
    if (root) {
      return [...root.querySelectorAll('li')]
        .filter(li => !li.parentElement.closest(panel + ' li')).length;
    }
    return document.querySelectorAll(fallback).length;
  };
  const usage = document.getElementById('usage-cards');
  const costShown = usage === null || [...usage.querySelectorAll('*')].some(
    el => el.children.length === 0 && el.textContent.trim().startsWith('$'));
  const conn = document.getElementById('conn');
  return {
    running: outermost('#panel-running', '#agents > li'),
    opportunities: outermost('#panel-opps', '#opportunities > li'),
    usageCards: usage !== null,
    costShown,
    connected: conn === null || !conn.dataset.state || conn.dataset.state === 'open',
  };
}"""


def _missing(seen: dict[str, Any]) -> list[str]:
    """What keeps the page from being busy enough, in words (empty: ready for the picture)."""
    missing = []
    if not seen["connected"]:
        missing.append("not connected")
    if seen["running"] < MIN_RUNNING:
        missing.append(f"{seen['running']} running runs (want {MIN_RUNNING})")
    if seen["opportunities"] < MIN_OPPORTUNITIES:
        missing.append(f"{seen['opportunities']} opportunities (want {MIN_OPPORTUNITIES})")
    if not seen["costShown"]:
        missing.append("no cost in the usage cards")
    return missing


async def _shoot_when_busy(page: Page, path: Path, wait_seconds: float) -> list[str]:
    """Take the picture once the page is busy enough (checked before and after the picture, since
    runs come and go while it is taken), or at ``wait_seconds`` whatever the page shows; returns
    what was still missing then (empty: a busy picture)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    await page.bring_to_front()
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        missing = _missing(await page.evaluate(_READ_PAGE))
        if not missing:
            await page.screenshot(path=str(path), animations="disabled")
            missing = _missing(await page.evaluate(_READ_PAGE))
            if not missing:
                return []
        if loop.time() >= deadline:
            await page.screenshot(path=str(path), animations="disabled")
            return missing
        await asyncio.sleep(0.1)


async def _open(browser: Browser, shot: Shot, url: str, errors: list[str]) -> Page:
    context = await browser.new_context(
        viewport={"width": shot.width, "height": shot.height}, locale="en-US",
        color_scheme="light" if shot.theme == "light" else "dark",
        is_mobile=shot.mobile, has_touch=shot.mobile,
        # No row caught sliding in or card fading in: the picture shows the page at rest.
        reduced_motion="reduce",
    )
    # The page's own theme toggle remembers the choice here; the colour scheme covers a page that
    # follows prefers-color-scheme instead.
    await context.add_init_script(f"localStorage.setItem('otel-dashboard:theme', '{shot.theme}')")
    page = await context.new_page()
    page.on("pageerror", lambda e: errors.append(f"{shot.suffix or 'desktop'}: {e}"))
    page.on("console", lambda m: errors.append(f"{shot.suffix or 'desktop'}: {m.text}")
            if m.type == "error" else None)
    await page.goto(url)
    return page


# The pages (#traces=1, #trace=, #graph=window): the desktop page navigates to each, waits until it
# shows what the picture is for, then takes it.
_PAGE_SHOTS = (
    ("traces-list.png", "#traces=1", "#page-traces tr.tl-row"),
    ("trace-page.png", None, "#trace-span-pane[data-state=ok]"),
    ("agent-graph.png", "#graph=window", "#page-graph g.graph-node"),
)
_PICK_TRACE = """() => {
  const rows = [...document.querySelectorAll('#page-traces tr.tl-row')];
  return rows.length ? rows[0].dataset.traceId : '';
}"""
_PICK_MODEL_SPAN = """() => {
  const row = document.querySelector('#trace-page-view .trace-row[data-kind=model]');
  return row ? row.dataset.spanId : '';
}"""


async def _shoot_pages(page: Page, folder: Path, wait_seconds: float) -> None:
    timeout_ms = wait_seconds * 1000
    trace_id = ""
    for name, route, ready in _PAGE_SHOTS:
        if route is None:
            if not trace_id:
                print(f"warning: {name} not taken: no finished trace in the list", file=sys.stderr)
                continue
            await page.evaluate(f"location.hash = '#trace={trace_id}'")
            await page.wait_for_selector("#trace-page-view .trace-row[data-kind=model]", timeout=timeout_ms)
            span_id = await page.evaluate(_PICK_MODEL_SPAN)
            await page.evaluate(f"location.hash = '#trace={trace_id}&span={span_id}'")
        else:
            await page.evaluate(f"location.hash = '{route}'")
        try:
            await page.wait_for_selector(ready, timeout=timeout_ms)
        except Exception:  # a picture of whatever is there, with a warning
            print(f"warning: {name} taken without {ready!r} on the page", file=sys.stderr)
        await asyncio.sleep(0.5)  # the page's next refresh settles the layout
        if route == "#traces=1":
            trace_id = await page.evaluate(_PICK_TRACE)
        path = folder / name
        await page.screenshot(path=str(path), animations="disabled")
        print(f"wrote {path} (1440x900, dark)")


async def main(out: Path, seconds: float, wait_seconds: float) -> int:
    # The demo's stall threshold, sped up like the demo: the pictures show what `make demo` shows.
    state = DashboardState(max_history=2000, stall_threshold_seconds=DEMO_STALL_THRESHOLD_SECONDS / SPEED,
                           budgets=DEMO_BUDGETS)
    provider = install_demo_tracing(state)
    # Frequent health and metrics updates: the sparkline fills and the cards track the panels.
    server = DashboardWebSocketServer("127.0.0.1", 0, state=state, name="demo",
                                      health_interval_seconds=1.0, metrics_interval_seconds=0.25)
    await server.start()
    scenario: asyncio.Future[None] | None = None
    errors: list[str] = []
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            # Every page is open before the demo starts: each sees the whole run, as a user would.
            pages = [await _open(browser, shot, server.dashboard_url, errors) for shot in SHOTS]
            scenario = asyncio.ensure_future(run_scenario(seed=SEED, speed=SPEED))
            await asyncio.sleep(seconds)
            for shot, page in zip(SHOTS, pages, strict=True):
                path = shot.path(out)
                missing = await _shoot_when_busy(page, path, wait_seconds)
                if missing:
                    print(f"warning: {path.name} taken after {wait_seconds:g} s without a busy enough "
                          f"page: {'; '.join(missing)}", file=sys.stderr)
                print(f"wrote {path} ({shot.width}x{shot.height}, {shot.theme}, "
                      f"{path.stat().st_size // 1024} KB)")
            errors_before = len(errors)
            await _shoot_pages(pages[0], out.parent, wait_seconds)
            del errors[errors_before:]  # a page's own aborted fetch on navigation is not a fault
            await browser.close()
    finally:
        if scenario is not None:
            scenario.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scenario
        await server.stop()
        provider.shutdown()
    if errors:
        print("browser errors:", *errors, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "dashboard.png",
                        help="the desktop picture; the phone and light ones get -phone and -light")
    parser.add_argument("--seconds", type=float, default=7.0, help="demo time before the first picture")
    parser.add_argument("--wait", type=float, default=20.0,
                        help="at most this long per picture for a busy enough page, then taken anyway")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.out, args.seconds, args.wait)))
