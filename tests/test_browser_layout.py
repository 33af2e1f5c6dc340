"""The page's layout, contrast and trustworthy status, in a real headless Chromium against a real server.

* Layout at 1024x768, 1440x900, 1920x1080 and a 390x844 phone, with a populated page: no two
  top-level regions, cards, panels or header controls overlap (bounding boxes), nothing scrolls
  sideways, and what must be visible without scrolling is (docs/dashboard.md, "Layout").
* Contrast: every visible text's colour against its effective background (the ancestors'
  backgrounds, alpha-blended), computed in the browser from ``getComputedStyle``: WCAG AA, 4.5:1
  (3:1 for large text) in the dark and the light theme.
* The disconnected state (the server stops): uptime frozen, ev/s a dash, "last update HH:MM:SS",
  the health badge not HEALTHY, the live parts dimmed; and everything resumes on reconnect.
* The health badge's reasons, in a popover on keyboard focus.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import (
    ServerThread,
    agent_completed,
    agent_started,
    error_occurred,
    opportunity,
    quality_score,
)
from playwright.sync_api import Browser, Page, expect

from otel_dashboard.model.events import DashboardEvent, EventType, Severity
from otel_dashboard.state.dashboard import DashboardState

CONNECTED = "Connected - Live Updates"
VIEWPORTS = {
    "1440x900": (1440, 900),
    "1920x1080": (1920, 1080),
    "1024x768": (1024, 768),
    "390x844": (390, 844),
}
WINDOW_METRICS = {
    "window_seconds": 3600, "window_runs": 40, "window_failed_runs": 3, "window_error_rate": 0.075,
    "window_tokens_input": 59_300, "window_tokens_output": 13_300, "window_cost_usd": 0.5312,
}


def populate(server: ServerThread) -> None:
    """Running agents, completed and failed runs, opportunities, scores, an error, and metrics
    with the usage window's figures."""
    names = ["MarketResearcher", "CompetitorAnalyst", "TrendSpotter", "Planner", "Writer", "Critic"]
    for i, name in enumerate(names):
        server.publish(agent_started(f"a{i}", name, f"Task number {i} for {name}", run_id=f"run-live-{i}"))
    for i in range(12):
        name = names[i % len(names)]
        server.publish(agent_started(f"a{i}", name, f"Finished task {i}", run_id=f"run-done-{i}"))
        server.publish(agent_completed(f"a{i}", name, f"Finished task {i}", run_id=f"run-done-{i}",
                                       success=i % 5 != 0, quality_score=70.0 + 2 * i))
    for i in range(5):
        server.publish(opportunity(f"o{i}", f"Opportunity number {i}", confidence=0.5 + i / 10))
        server.publish(quality_score("Critic", 80.0 + i))
    server.publish(error_occurred("Writer", "the model timed out", "TimeoutError"))


def publish_metrics(server: ServerThread) -> None:
    """A metrics_updated with the usage window's figures (after the page's snapshot)."""
    stats = server.state.get_dashboard_stats()
    metrics = stats["metrics"]
    server.publish(DashboardEvent.create(EventType.METRICS_UPDATED, {**metrics, **WINDOW_METRICS}))


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    srv = ServerThread(DashboardState(), health_interval_seconds=60, metrics_interval_seconds=None).start()
    try:
        populate(srv)
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def shared(browser: Browser, server: ServerThread) -> Iterator[tuple[Page, list[str]]]:
    """One populated page for the layout, contrast, usage and badge tests (a page load is ~1 s):
    each test sets the viewport or the theme it needs. Yields the page and its console errors."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-US",
                                  timezone_id="UTC", reduced_motion="reduce")
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    try:
        open_page(page, server)
        yield page, errors
    finally:
        context.close()


@pytest.fixture
def populated(shared: tuple[Page, list[str]]) -> Iterator[Page]:
    page, errors = shared
    page.set_viewport_size({"width": 1440, "height": 900})
    if page.get_attribute("html", "data-theme") != "dark":
        page.click("#theme-toggle")
    next_frame(page)
    yield page
    assert errors == [], "errors in the browser console"


def next_frame(page: Page) -> None:
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def open_page(page: Page, server: ServerThread) -> None:
    page.goto(server.dashboard_url)
    expect(page.locator("#conn-text")).to_have_text(CONNECTED)
    publish_metrics(server)
    expect(page.locator("#metric-tokens")).to_have_text("72.6k")  # the populated metrics are in
    expect(page.locator("#agents > li.agent")).to_have_count(6)
    expect(page.locator("#opportunities > li")).to_have_count(5)
    next_frame(page)


# ---------------------------------------------------------------------------------------------- layout

# Boxes of the top-level regions and the visible cards, panels and header controls (selector, name).
BOXES_JS = """() => {
  const pick = [
    ['.topbar', 'topbar'], ['#usage-cards', 'usage'], ['.cards', 'cards'],
    ['#panel-running', 'running'], ['#panel-agents-table', 'agents-table'], ['#panel-stream', 'stream'],
    ['#panel-opps', 'opps'], ['#usage-cards .card', 'usage-card'], ['.cards .card', 'card'],
    ['.topbar .brand', 'brand'], ['#conn', 'conn'], ['#last-update', 'last-update'],
    ['.health-item', 'health-item'], ['#health-status', 'health-badge'], ['#theme-toggle', 'theme'],
  ];
  const out = [];
  for (const [sel, name] of pick) {
    document.querySelectorAll(sel).forEach((el, i) => {
      const r = el.getBoundingClientRect();
      const visible = r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden';
      if (visible) out.push({name: `${name}#${i}`, group: name, x: r.left + scrollX, y: r.top + scrollY,
                             w: r.width, h: r.height});
    });
  }
  return out;
}"""

# Pairs that may overlap: a region and what it contains.
CONTAINS = {
    "topbar": {"brand", "conn", "last-update", "health-item", "health-badge", "theme"},
    "usage": {"usage-card"},
    "cards": {"card"},
}


def overlapping(boxes: list[dict[str, Any]]) -> list[tuple[str, str]]:
    bad = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if b["group"] in CONTAINS.get(a["group"], ()) or a["group"] in CONTAINS.get(b["group"], ()):
                continue
            dx = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
            dy = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
            if dx > 0.5 and dy > 0.5:
                bad.append((a["name"], b["name"]))
    return bad


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_layout_has_no_overlaps_no_sideways_scroll_and_the_essentials_above_the_fold(
        populated: Page, size: str) -> None:
    page = populated
    width, height = VIEWPORTS[size]
    page.set_viewport_size({"width": width, "height": height})
    next_frame(page)
    boxes = page.evaluate(BOXES_JS)
    assert overlapping(boxes) == []
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"the page scrolls sideways: {scroll_width} > {width}"
    wider = page.evaluate(
        """w => [...document.querySelectorAll('body *')].filter(e => {
             const r = e.getBoundingClientRect();
             return r.width > 0 && r.right > w + 1 && !e.closest('.sr-only, .detail, [hidden]');
           }).map(e => e.id || e.className).slice(0, 5)""", width)
    assert wider == []

    def top(selector: str) -> float:
        return float(page.eval_on_selector(selector, "e => e.getBoundingClientRect().top"))

    def bottom(selector: str) -> float:
        return float(page.eval_on_selector(selector, "e => e.getBoundingClientRect().bottom"))

    if width >= 1024:
        # Running runs and opportunities start above the fold at every desktop size.
        assert top("#panel-running") < height - 40
        assert top("#panel-opps") < height - 40
    if width >= 1440:
        # Everything that matters is on the first screen, without scrolling.
        for selector in ("#usage-cards", ".cards", "#panel-running", "#panel-opps",
                         "#panel-agents-table .panel-head", "#panel-stream"):
            assert bottom(selector) <= height + 0.5, f"{selector} ends below the fold"
        assert bottom("#stream > li:first-child") <= height
        assert page.evaluate("document.documentElement.scrollHeight") <= height
        # The stream's filter bar stays on one line.
        tops = page.eval_on_selector_all(
            "#filters > *:not([hidden])", "els => els.map(e => Math.round(e.getBoundingClientRect().top))")
        heights = page.eval_on_selector("#filters", "e => e.getBoundingClientRect().height")
        assert heights < 60, f"the filter bar wraps: {tops}"
        # One card row: the usage group and the six cards side by side,
        assert abs(top("#usage-cards") - top(".cards")) < 2
        # and no card's label, figure or foot is cut.
        cut = page.eval_on_selector_all(
            ".card-label, .card-value, .card-foot",
            "els => els.filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.id || e.textContent)")
        assert cut == []
    if width < 600:
        # The phone: running runs, then the stream, then the agents table, then opportunities.
        order = [top(s) for s in ("#panel-running", "#panel-stream", "#panel-agents-table", "#panel-opps")]
        assert order == sorted(order), order
        assert top(".cards") < top("#panel-running")
        assert top("#panel-running") < height / 2  # running runs start on the first screen,
        assert top("#panel-stream") < height  # and so does the stream
        # The cards are small tiles, three per row.
        card_tops = page.eval_on_selector_all(
            ".cards .card", "els => els.map(e => Math.round(e.getBoundingClientRect().top))")
        assert card_tops.count(card_tops[0]) == 3
        # The agent menu fits the screen.
        box = page.locator("#filter-agent").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width


# ---------------------------------------------------------------------------------------------- contrast

# For every visible text node on the screen: its colour (times the ancestors' opacity) over its
# effective background (the ancestors' background colours alpha-blended over each other and over the
# page's; a gradient counts as its last stop's colour), and the WCAG ratio it needs for its size and
# weight (3:1 from 24 px, or 18.66 px bold; 4.5:1 otherwise).
CONTRAST_JS = """() => {
  const parse = (c) => {
    let m = c.match(/rgba?\\(([^)]+)\\)/);
    let scale = 1;
    if (!m) {
      m = c.match(/color\\(srgb ([^)]+)\\)/);  // what color-mix() computes to
      scale = 255;
    }
    if (!m) throw new Error(`unknown colour ${c}`);
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return {r: p[0] * scale, g: p[1] * scale, b: p[2] * scale, a: p.length > 3 ? p[3] : 1};
  };
  const over = (top, bottom) => {
    const a = top.a + bottom.a * (1 - top.a);
    if (a === 0) return {r: 0, g: 0, b: 0, a: 0};
    const mix = (k) => (top[k] * top.a + bottom[k] * bottom.a * (1 - top.a)) / a;
    return {r: mix('r'), g: mix('g'), b: mix('b'), a};
  };
  const lum = (c) => {
    const ch = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * ch(c.r) + 0.7152 * ch(c.g) + 0.0722 * ch(c.b);
  };
  const gradientColour = (img) => {
    const m = img.match(/rgba?\\([^)]+\\)/g);
    return m ? parse(m[m.length - 1]) : null;
  };
  const layers = (el) => {
    const out = [];
    for (let e = el; e; e = e.parentElement) {
      const s = getComputedStyle(e);
      let bg = parse(s.backgroundColor);
      if (s.backgroundImage && s.backgroundImage !== 'none' && e !== document.body) {
        const g = gradientColour(s.backgroundImage);
        if (g) bg = bg && bg.a > 0 ? over(g, bg) : g;
      }
      const op = Number(s.opacity);
      if (bg && bg.a > 0) out.push({...bg, a: bg.a * op});
      if (bg && bg.a >= 1 && op >= 1) break;
    }
    return out;
  };
  const results = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (!n.textContent.trim()) continue;
    const el = n.parentElement;
    if (!el || el.closest('[hidden], .sr-only, svg, script, style')) continue;
    const range = document.createRange();
    range.selectNodeContents(n);
    const rect = range.getBoundingClientRect();
    if (rect.width < 1 || rect.height < 1) continue;
    if (rect.bottom < 0 || rect.top > innerHeight || rect.right < 0 || rect.left > innerWidth) continue;
    const s = getComputedStyle(el);
    if (s.visibility === 'hidden' || Number(s.opacity) === 0) continue;
    let bg = {r: 0, g: 0, b: 0, a: 0};
    for (const layer of layers(el).reverse()) bg = over(layer, bg);
    bg = over(bg, {...parse(getComputedStyle(document.body).backgroundColor), a: 1});
    let fg = parse(s.color);
    let opacity = 1;
    for (let e = el; e; e = e.parentElement) opacity *= Number(getComputedStyle(e).opacity);
    fg = over({...fg, a: fg.a * opacity}, bg);
    const l1 = lum(fg), l2 = lum(bg);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(s.fontSize);
    const bold = Number(s.fontWeight) >= 700;
    const large = size >= 24 || (bold && size >= 18.66);
    results.push({text: n.textContent.trim().slice(0, 40), id: el.id, cls: String(el.className),
                  ratio: Math.round(ratio * 100) / 100, need: large ? 3 : 4.5, color: s.color});
  }
  return results;
}"""


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_every_visible_text_meets_wcag_aa_contrast(populated: Page, theme: str) -> None:
    page = populated
    if theme == "light":
        page.click("#theme-toggle")
    expect(page.locator("html")).to_have_attribute("data-theme", theme)
    page.click("#stream > li.ev >> nth=0")  # a selected row and the detail panel are text too,
    expect(page.locator("#detail")).to_be_visible()
    page.focus("#health-status")  # and so is the health popover
    expect(page.locator("#health-pop")).to_be_visible()
    results = page.evaluate(CONTRAST_JS)
    assert len(results) > 60, "the walk found too little text"
    failing = [r for r in results if r["ratio"] < r["need"]]
    assert failing == [], f"{len(failing)} texts under WCAG AA in the {theme} theme"
    page.click("#detail-close")
    expect(page.locator("#detail")).to_be_hidden()


# ---------------------------------------------------------------------------------------------- status

def test_the_health_badge_shows_its_reasons_on_keyboard_focus(populated: Page, server: ServerThread) -> None:
    page = populated
    badge = page.locator("#health-status")
    expect(badge).to_have_attribute("data-status", "healthy")  # GET health, on connect
    popover = page.locator("#health-pop")
    expect(popover).to_be_hidden()
    server.publish(DashboardEvent.create(
        EventType.SYSTEM_HEALTH_UPDATED,
        {"status": "degraded", "reasons": ["broker down", "store not writing"], "connected_clients": 1,
         "events_per_second": 3.5, "dropped_events": 0, "stalled_agents": 0,
         "uptime_seconds": 10_000_000},  # newer than the report of GET health
        Severity.WARNING))
    expect(badge).to_have_attribute("data-status", "degraded")
    expect(badge).to_have_text("health degraded")
    assert badge.evaluate("e => e.tagName") == "BUTTON"
    assert badge.get_attribute("aria-describedby") == "health-pop"
    page.focus("#theme-toggle")
    page.keyboard.press("Shift+Tab")  # to the badge, from the keyboard
    expect(badge).to_be_focused()
    expect(popover).to_be_visible()
    expect(badge).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#health-reasons > li")).to_have_text(["broker down", "store not writing"])
    expect(page.locator("#health-pop-title")).to_have_text("The server is degraded:")
    page.keyboard.press("Escape")
    expect(popover).to_be_hidden()
    expect(badge).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("Tab")
    expect(popover).to_be_hidden()  # leaving the badge closes it
    page.hover("#health-status")  # and a pointer opens it too
    expect(popover).to_be_visible()
    page.mouse.move(5, 400)
    expect(popover).to_be_hidden()


def test_while_disconnected_everything_live_freezes_and_dims_then_resumes(
        page: Page, console: Any) -> None:
    console.allow(r"WebSocket connection to .* failed")
    console.allow(r"ERR_CONNECTION_REFUSED")
    state = DashboardState()
    first = ServerThread(state, health_interval_seconds=0.3).start()
    port = first.port
    try:
        first.publish(agent_started("a1", "Planner", "Plan the day", run_id="run-planner"))
        open_page_minimal(page, first)
        expect(page.locator("#health-eps")).to_have_text(re.compile(r"^\d+\.\d$"))
        expect(page.locator("#health-status")).to_have_attribute("data-status", "healthy")
        expect(page.locator("body")).to_have_attribute("data-live", "true")
        assert page.locator("#last-update").is_hidden()
    finally:
        first.stop()
    second: ServerThread | None = None
    try:
        expect(page.locator("body")).to_have_attribute("data-live", "false")
        expect(page.locator("#conn")).to_have_attribute("data-state", re.compile("waiting|connecting"))
        expect(page.locator("#health-eps")).to_have_text("\N{EN DASH}")
        expect(page.locator("#health-clients")).to_have_text("\N{EN DASH}")
        badge = page.locator("#health-status")
        expect(badge).to_have_attribute("data-status", "unknown")
        expect(badge).to_have_text("health unknown")
        expect(page.locator("#last-update")).to_have_text(re.compile(r"^last update \d\d:\d\d:\d\d$"))
        assert float(page.eval_on_selector(".layout", "e => getComputedStyle(e).opacity")) < 0.8
        assert float(page.eval_on_selector(".cards", "e => getComputedStyle(e).opacity")) < 0.8
        uptime = page.text_content("#metric-uptime")
        timer = page.text_content("#agents > li.agent .agent-timer")
        page.wait_for_timeout(1200)  # longer than the one-second tick
        assert page.text_content("#metric-uptime") == uptime, "the uptime kept ticking while disconnected"
        assert page.text_content("#agents > li.agent .agent-timer") == timer, "a run timer kept ticking"
        page.focus("#health-status")
        title = page.locator("#health-pop-title")
        expect(title).to_have_text("Disconnected: the server's health is unknown.")
        expect(page.locator("#health-pop-note")).to_have_text(re.compile(r"^Last report: healthy at "))

        second = ServerThread(state, port=port, health_interval_seconds=0.3).start()
        # "Retry now" rather than the backoff's wait (the retry button is what a user would press).
        page.wait_for_function("""() => {
            document.getElementById('conn-retry').click();
            return window.otelDashboard.connectionState === 'open';
        }""", polling=200, timeout=15_000)
        expect(page.locator("#conn-text")).to_have_text(CONNECTED)
        expect(page.locator("body")).to_have_attribute("data-live", "true")
        expect(badge).to_have_attribute("data-status", "healthy")
        expect(page.locator("#health-eps")).to_have_text(re.compile(r"^\d+\.\d$"))
        expect(page.locator("#last-update")).to_be_hidden()
        assert float(page.eval_on_selector(".layout", "e => getComputedStyle(e).opacity")) == 1
        expect(page.locator("#metric-uptime")).not_to_have_text(uptime or "")  # ticking again
    finally:
        if second is not None:
            second.stop()


def open_page_minimal(page: Page, server: ServerThread) -> None:
    page.goto(server.dashboard_url)
    expect(page.locator("#conn-text")).to_have_text(CONNECTED)
    expect(page.locator("#metric-total-events")).to_have_text(re.compile(r"^\d"))


def test_usage_cards_active_agents_and_the_quality_band(populated: Page) -> None:
    page = populated
    expect(page.locator("#usage-window")).to_have_text("last 1 h")
    expect(page.locator("#metric-tokens-foot")).to_have_text("in 59.3k / out 13.3k")
    expect(page.locator("#metric-cost")).to_have_text("$0.5312")
    expect(page.locator("#metric-error-rate")).to_have_text("7.5%")
    expect(page.locator("#metric-error-rate-foot")).to_have_text("3 of 40 runs failed")
    expect(page.locator('.card[data-metric="window_error_rate"]')).to_have_attribute("data-level", "warn")
    # Active Agents: the same number as the Running runs panel.
    expect(page.locator("#metric-active-agents")).to_have_text(page.text_content("#agents-count") or "")
    # Quality: 70-89 is "fair" on the quality scale, whatever the severities say.
    expect(page.locator('.card[data-metric="avg_quality_score"]')).to_have_attribute("data-band", "fair")
