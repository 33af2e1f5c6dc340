"""The dashboard page in a real headless Chromium against a real server on a loopback port.

One browser per module; every test gets a fresh server (fresh :class:`DashboardState`) and a fresh
browser context. Events are published into the server's state from the test thread, the way an
instrumented agent publishes them. Every test fails on a console error or an uncaught page error.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from browser_support import (
    Console,
    ServerThread,
    agent_completed,
    agent_started,
    error_occurred,
    opportunity,
    quality_score,
    synthesis_completed,
    synthesis_started,
)
from playwright.sync_api import Page, expect

from otel_dashboard.model.events import DashboardEvent, EventType, Severity
from otel_dashboard.server.security import SecurityConfig
from otel_dashboard.state.dashboard import DashboardState
from otel_dashboard.store.sqlite import SqliteEventStore

CONNECTED = "Connected - Live Updates"
ROW = "#stream > li.ev"
META_TYPES = ("metrics_updated", "system_health_updated")


# ---------------------------------------------------------------------------------------------- fixtures



@pytest.fixture
def make_server(page: Page) -> Iterator[Callable[..., ServerThread]]:
    servers: list[ServerThread] = []

    def make(state: DashboardState | None = None, **kwargs: Any) -> ServerThread:
        server = ServerThread(state, **kwargs).start()
        servers.append(server)
        return server

    yield make
    # The page leaves before its servers stop: left open, it would retry (its WebSocket, its polls)
    # and the browser would log the refused attempts as console errors, failing the test's teardown.
    page.goto("about:blank")
    for server in servers:
        server.stop()


# ---------------------------------------------------------------------------------------------- helpers

def open_dashboard(page: Page, server: ServerThread) -> None:
    page.goto(server.dashboard_url)
    expect(page.locator("#conn-text")).to_have_text(CONNECTED)
    expect(page.locator("#metric-total-events")).to_have_text(re.compile(r"^\d"))  # the snapshot is in


def wait_for_seq(page: Page, seq: int, timeout: float = 10_000) -> None:
    """Until the page has received the event ``seq`` (and rendered the frame after it)."""
    page.wait_for_function("s => window.otelDashboard.lastSeq >= s", arg=seq, timeout=timeout)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def rows(page: Page, *, visible_only: bool = False, with_meta: bool = False) -> list[dict[str, Any]]:
    """The stream's rows, top to bottom, as dicts."""
    return page.eval_on_selector_all(
        ROW,
        """(rows, [visibleOnly, withMeta, meta]) => rows
            .filter(r => (!visibleOnly || !r.hidden) && (withMeta || !meta.includes(r.dataset.type)))
            .map(r => ({seq: Number(r.dataset.seq), type: r.dataset.type, severity: r.dataset.severity,
                        cls: r.className, hidden: r.hidden,
                        time: r.querySelector('.ev-time').textContent,
                        label: r.querySelector('.ev-type').textContent,
                        desc: r.querySelector('.ev-desc').textContent,
                        text: r.textContent}))""",
        [visible_only, with_meta, list(META_TYPES)],
    )


def raw_mode(page: Page) -> None:
    """The stream's raw mode: a row per event, as it arrives (the default folds each run into one row)."""
    page.click("#mode-raw")
    expect(page.locator("#mode-raw")).to_have_attribute("aria-pressed", "true")


def latest_metrics(state: DashboardState) -> dict[str, Any] | None:
    for event in state.recent_events(200):
        if event.event_type is EventType.METRICS_UPDATED:
            return event.data
    return None


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------------- tests

def test_connects_renders_events_in_order_and_cards_show_server_values(page: Page, make_server) -> None:
    server = make_server(name="prod-eu-1", health_interval_seconds=60)
    open_dashboard(page, server)
    raw_mode(page)
    expect(page.locator("#server-name")).to_have_text("prod-eu-1")
    assert "prod-eu-1" in page.title()

    publish = server.publish
    started = publish(agent_started("researcher", "Researcher", "Analyze the market", run_id="r1"))
    publish(agent_completed("researcher", "Researcher", "Analyze the market", run_id="r1",
                            duration_ms=1500, quality_score=92.5))
    publish(quality_score("Researcher", 97.0, {"accuracy": 98.0}))
    publish(error_occurred("Researcher", "rate limited by upstream", "RateLimitError"))
    publish(opportunity("opp-1", "Invoice automation gap", confidence=0.9))
    wait_for_seq(page, server.state.last_seq)

    got = rows(page)
    assert [(r["type"], r["severity"], r["label"], r["desc"]) for r in got] == [
        ("opportunity_discovered", "success", "Opportunity", "Opportunity: Invoice automation gap"),
        ("error_occurred", "error", "Error", "RateLimitError in Researcher: rate limited by upstream"),
        ("quality_score_updated", "success", "Quality score", "Quality score 97.0 from Researcher"),
        ("agent_execution_completed", "success", "Agent completed", "Researcher completed in 1.5 s"),
        ("agent_execution_started", "info", "Agent started", "Researcher started: Analyze the market"),
        ("agent_registered", "info", "Agent registered", "Agent registered: Researcher"),
    ]
    assert [r["seq"] for r in got] == sorted((r["seq"] for r in got), reverse=True)
    assert all(f"sev-{r['severity']}" in r["cls"].split() for r in got)
    assert got[-2]["time"] == started.timestamp[11:19]  # HH:MM:SS, local time (the context is UTC)
    assert "quality92.5" in got[3]["text"].replace(" ", "")  # a key field of the completed run
    # The severity colour really reaches the screen: the error row's border is the error red.
    colours = page.eval_on_selector_all(
        ROW, "rs => rs.map(r => [r.dataset.severity, getComputedStyle(r).borderLeftColor])")
    assert ["error", "rgb(255, 93, 108)"] in colours
    assert ["success", "rgb(62, 207, 142)"] in colours

    expect(page.locator("#metric-agents-executed")).to_have_text("1")
    expect(page.locator("#metric-opportunities")).to_have_text("1")
    expect(page.locator("#metric-avg-quality")).to_have_text("92.5")
    expect(page.locator("#metric-avg-quality-foot")).to_have_text("over 1 scored run")
    expect(page.locator("#metric-active-agents")).to_have_text("0")
    # Total Events is the value of the server's newest metrics_updated, not a browser count.
    wait_until(lambda: (m := latest_metrics(server.state)) is not None
               and page.text_content("#metric-total-events") == f"{m['total_events']:,}",
               message="the total events card to show the server's value")
    uptime = page.locator("#metric-uptime")
    expect(uptime).to_have_text(re.compile(r"^\d+s$"))


def test_opportunity_cards_and_running_agents_with_stall(page: Page, make_server) -> None:
    server = make_server(DashboardState(stall_threshold_seconds=1.5))
    open_dashboard(page, server)
    expect(page.locator("#stall-threshold")).to_have_text("1s")

    server.publish(agent_started("scout", "TrendScout", "Scan filings for trends", run_id="run-scout"))
    server.publish(agent_started("diver", "DeepDiver", "Due diligence", run_id="run-diver"))
    agents = page.locator("#agents > li.agent")
    expect(agents).to_have_count(2)
    scout = agents.filter(has_text="TrendScout")
    expect(scout.locator(".agent-task")).to_have_text("Scan filings for trends")
    expect(scout.locator(".agent-timer")).to_have_text(re.compile(r"^0:0\d$"))
    expect(scout).not_to_have_class(re.compile(r"\bstalled\b"))
    expect(page.locator("#agents-count")).to_have_text("2")

    opps = [
        ("opp-high", "Cold-chain gap", 0.92, "logistics", "$4M ARR", "conf-high", "92%"),
        ("opp-mid", "Pet telehealth", 0.65, "health", "$800K ARR", "conf-mid", "65%"),
        ("opp-low", "Vertical farming", 0.3, "agritech", "$250K ARR", "conf-low", "30%"),
    ]
    for oid, title, conf, category, revenue, _, _ in opps:
        server.publish(opportunity(oid, title, confidence=conf, category=category, revenue=revenue,
                                   description=f"{title}: incumbents ignore the mid-market."))
    cards = page.locator("#opportunities > li.opp")
    expect(cards).to_have_count(3)
    for card_index, (_, title, _, category, revenue, cls, pct) in enumerate(reversed(opps)):
        card = cards.nth(card_index)  # newest first
        expect(card.locator(".opp-title")).to_have_text(title)
        expect(card.locator(".opp-category")).to_have_text(category)
        expect(card.locator(".opp-revenue")).to_have_text(revenue)
        expect(card.locator(".opp-desc")).to_contain_text("incumbents ignore")
        expect(card.locator(".opp-conf")).to_have_class(re.compile(rf"\b{cls}\b"))
        expect(card.locator(".conf-value")).to_have_text(pct)

    # Past the threshold the run is highlighted as stalled, and its timer has moved on.
    expect(scout).to_have_class(re.compile(r"\bstalled\b"), timeout=5000)
    expect(scout.locator(".agent-stall")).to_be_visible()
    expect(scout.locator(".agent-timer")).not_to_have_text("0:00")

    server.publish(agent_completed("scout", "TrendScout", "Scan filings for trends", run_id="run-scout"))
    # A completion for a run the page never saw start is fine: nothing to remove.
    server.publish(agent_completed("ghost", "Ghost", "never started", run_id="run-ghost"))
    expect(agents).to_have_count(1)
    expect(agents.first).to_contain_text("DeepDiver")
    server.publish(agent_completed("diver", "DeepDiver", "Due diligence", run_id="run-diver", success=False))
    expect(agents).to_have_count(0)
    expect(page.locator("#agents-empty")).to_be_visible()


def test_filters_map_to_subscribe_and_pause_holds_the_stream(page: Page, make_server) -> None:
    server = make_server(health_interval_seconds=60)
    open_dashboard(page, server)
    raw_mode(page)  # the event types menu is the raw mode's
    publish = server.publish
    publish(agent_started("alpha", "Alpha", "first task", run_id="a1"))
    publish(agent_completed("alpha", "Alpha", "first task", run_id="a1"))
    publish(agent_started("beta", "Beta", "second task", run_id="b1"))
    publish(error_occurred("Beta", "boom", "ValueError", agent_name="Beta"))
    publish(synthesis_started("pattern_extraction"))
    publish(quality_score("Alpha", 91.0, severity=Severity.WARNING))
    wait_for_seq(page, server.state.last_seq)
    everything = rows(page, visible_only=True)
    assert len(everything) == 8  # two agent_registered rows too

    # Outcome: a client-side filter (it would starve the cards on the server).
    page.click(".outcome-chip[data-outcome=failed]")
    expect(page.locator(".outcome-chip[data-outcome=failed]")).to_have_attribute("aria-pressed", "true")
    assert [r["type"] for r in rows(page, visible_only=True)] == ["error_occurred"]
    assert page.evaluate("window.otelDashboard.filters.severities") == []
    assert page.evaluate("window.otelDashboard.filters.event_types") == []
    page.click(".outcome-chip[data-outcome=all]")

    # Type: goes to the server as subscribe, always with the types the panels live on.
    page.click("#more-menu summary")
    page.get_by_role("button", name="None").click()
    page.locator("#type-options input[value=error_occurred]").check()
    expect(page.locator("#type-summary")).to_have_text("1 of 10")
    page.keyboard.press("Escape")
    page.mouse.move(0, 0)  # the menu was over the list: leave it, or new rows are held back
    assert [r["type"] for r in rows(page, visible_only=True, with_meta=True)] == ["error_occurred"]
    assert sorted(page.evaluate("window.otelDashboard.filters.event_types")) == sorted([
        "error_occurred", "agent_execution_started", "agent_execution_completed",
        "opportunity_discovered", "system_health_updated", "metrics_updated"])
    publish(synthesis_completed("pattern_extraction"))
    publish(error_occurred("Alpha", "second failure", "KeyError", agent_name="Alpha"))
    wait_for_seq(page, server.state.last_seq)
    expect(page.locator(f"{ROW}:visible")).to_have_count(2)
    assert [r["desc"] for r in rows(page, visible_only=True)] == [
        "KeyError in Alpha: second failure", "ValueError in Beta: boom"]
    page.click("#filter-clear")
    expect(page.locator("#type-summary")).to_have_text("all")
    # Rows already shown come back (toggled, not rebuilt); events filtered out meanwhile are not kept.
    assert len(rows(page, visible_only=True)) == 9
    assert page.evaluate("window.otelDashboard.filters.event_types") == []

    # Agent and text filters.
    page.select_option("#filter-agent", "Beta")
    expect(page.locator(f"{ROW}:visible")).to_have_count(3)  # registered, started, error
    assert {r["type"] for r in rows(page, visible_only=True)} == {
        "agent_registered", "agent_execution_started", "error_occurred"}
    page.select_option("#filter-agent", "")
    page.fill("#filter-text", "PATTERN_extraction")
    expect(page.locator(f"{ROW}:visible")).to_have_count(1)
    expect(page.locator(f"{ROW}:visible .ev-desc")).to_have_text(
        "Synthesis pattern_extraction started: Cluster findings")
    page.click("#filter-clear")
    expect(page.locator("#filter-clear")).to_be_hidden()
    assert len(rows(page, visible_only=True)) == 9  # all back (and the metrics rows, not counted here)

    # Pause holds new rows back and counts them; resume shows them.
    page.click("#pause")
    expect(page.locator("#pause")).to_have_attribute("aria-pressed", "true")
    before = len(rows(page, with_meta=True))
    for i in range(3):
        publish(synthesis_started(f"paused-{i}"))
    wait_for_seq(page, server.state.last_seq)
    assert len(rows(page, with_meta=True)) == before
    expect(page.locator("#stream-paused")).to_have_text(re.compile(r"^Paused · [3-9] new$"))
    page.click("#pause")
    expect(page.locator("#pause-label")).to_have_text("Pause")
    expect(page.locator(f"{ROW}[data-type=synthesis_started]")).to_have_count(4)
    expect(page.locator("#stream-paused")).to_be_hidden()
    assert rows(page)[0]["desc"].startswith("Synthesis paused-2 started")


def test_row_cap_holds_under_a_burst_of_5000_events(page: Page, make_server) -> None:
    server = make_server(DashboardState(max_history=500), health_interval_seconds=60)
    open_dashboard(page, server)
    kinds = [
        lambda i: synthesis_started(f"phase-{i}"),
        lambda i: error_occurred("burst", f"failure {i}"),
        lambda i: quality_score("burst", 90 + i % 10),
    ]
    last = None
    for i in range(5000):
        last = server.publish(kinds[i % 3](i))
    wait_for_seq(page, last.seq, timeout=20_000)
    top = page.locator(ROW).first
    expect(top).to_have_attribute("data-seq", re.compile(r"^\d+$"))
    wait_until(lambda: int(page.get_attribute(f"{ROW}:first-child", "data-seq")) >= last.seq,
               message="the newest event on top")
    seqs = [r["seq"] for r in rows(page, with_meta=True)]
    assert len(seqs) == 200
    assert seqs == sorted(seqs, reverse=True)
    assert len(set(seqs)) == 200
    assert seqs[-1] > 4000  # the newest ones, the oldest were dropped
    # The page still answers promptly.
    t0 = time.monotonic()
    page.evaluate("1 + 1")
    assert time.monotonic() - t0 < 1.0


def test_hidden_tab_renders_nothing_and_catches_up_with_the_newest_rows(page: Page, make_server) -> None:
    server = make_server(DashboardState(max_history=1000), health_interval_seconds=60)
    open_dashboard(page, server)
    server.publish(synthesis_started("visible"))
    wait_for_seq(page, server.state.last_seq)
    before = len(rows(page, with_meta=True))
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    run = "hidden-run"
    server.publish(agent_started("bg", "Background", "runs while hidden", run_id=run))
    for i in range(500):
        server.publish(synthesis_started(f"hidden-{i}"))
    last = server.state.last_seq
    wait_for_seq(page, last)  # received (and the model is up to date) ...
    assert len(rows(page, with_meta=True)) == before  # ... but nothing was drawn
    assert page.evaluate("window.otelDashboard.runningAgents") == 1
    expect(page.locator("#agents > li")).to_have_count(0)

    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    expect(page.locator("#agents > li")).to_have_count(1)
    wait_until(lambda: int(page.get_attribute(f"{ROW}:first-child", "data-seq")) >= last,
               message="the catch-up frame")
    seqs = [r["seq"] for r in rows(page, with_meta=True)]
    assert len(seqs) == 200
    assert seqs[0] >= last and seqs == sorted(seqs, reverse=True)
    assert rows(page)[0]["desc"].startswith("Synthesis hidden-499 started")


XSS_IMG = "<img src=x onerror=window.__xss=1>"
XSS_SCRIPT = "<script>window.__xss=1</script>"
XSS_URL = "javascript:window.__xss=1"


def test_event_text_is_never_html(page: Page, make_server) -> None:
    server = make_server()
    open_dashboard(page, server)
    server.publish(agent_started("evil", XSS_IMG, XSS_SCRIPT, run_id="xss-run"))
    run_row = page.locator(f"{ROW}.run-row[data-run=xss-run]")
    expect(run_row.locator(".ev-desc")).to_have_text(f"{XSS_IMG} running: {XSS_SCRIPT}")  # the run's row
    raw_mode(page)
    server.publish(error_occurred(XSS_URL, XSS_SCRIPT, XSS_IMG, link=XSS_URL))
    server.publish(opportunity("opp-xss", XSS_IMG, confidence=0.5, category=XSS_SCRIPT,
                               revenue=XSS_URL, description=XSS_SCRIPT, url=XSS_URL))
    server.publish(DashboardEvent.create(EventType.SYNTHESIS_STARTED,
                                         {"phase": XSS_IMG, "description": XSS_URL}))
    wait_for_seq(page, server.state.last_seq)

    expect(page.locator(f"{ROW}[data-type=opportunity_discovered] .ev-desc")).to_have_text(
        f"Opportunity: {XSS_IMG}")
    expect(page.locator(f"{ROW}[data-type=agent_execution_started] .ev-desc")).to_have_text(
        f"{XSS_IMG} started: {XSS_SCRIPT}")
    expect(page.locator(f"{ROW}[data-type=error_occurred] .ev-desc")).to_have_text(
        f"{XSS_IMG} in {XSS_URL}: {XSS_SCRIPT}")
    expect(page.locator(".opp-title")).to_have_text(XSS_IMG)
    expect(page.locator(".opp-category")).to_have_text(XSS_SCRIPT)
    expect(page.locator(".opp-revenue")).to_have_text(XSS_URL)
    expect(page.locator(".agent .agent-name")).to_have_text(XSS_IMG)
    expect(page.locator(".agent .agent-task")).to_have_text(XSS_SCRIPT)
    expect(page.get_by_text(XSS_IMG, exact=True).first).to_be_visible()

    page.click(f"{ROW}[data-type=opportunity_discovered]")
    detail = page.locator("#detail")
    expect(detail).to_be_visible()
    expect(detail.locator("#detail-data dd").filter(has_text=XSS_URL).first).to_be_visible()

    page.wait_for_timeout(100)  # an onerror would have fired by now
    assert page.evaluate("typeof window.__xss") == "undefined"
    counts = page.evaluate("""() => ({
        img: document.querySelectorAll('main img, aside img').length,
        script: document.querySelectorAll('body script').length,
        links: document.querySelectorAll('a[href^="javascript"]').length})""")
    assert counts == {"img": 0, "script": 0, "links": 0}


def test_unknown_and_malformed_messages_do_not_break_the_page(page: Page, make_server) -> None:
    server = make_server(health_interval_seconds=60)
    sockets: list[Any] = []

    def through(ws: Any) -> None:  # the real server behind it; lets the test add frames
        ws.connect_to_server()
        sockets.append(ws)

    page.route_web_socket(re.compile(r"/ws$"), through)
    open_dashboard(page, server)
    raw_mode(page)
    base = 1_000_000
    odd_events = [
        None, 5, "text",
        {"seq": base + 1, "event_type": "constructor", "severity": "__proto__", "data": None,
         "timestamp": 12},
        {"seq": base + 2, "event_type": "__proto__", "data": [1, 2], "timestamp": "garbage"},
        {"seq": base + 3, "event_type": "agent_execution_completed", "severity": "error",
         "data": {"duration_ms": "abc", "success": "maybe", "agent_name": {"nested": True}}},
        {"seq": base + 4, "event_type": "opportunity_discovered", "severity": "success",
         "data": {"title": None, "confidence_score": "high", "revenue_potential": 1234567}},
        {"seq": base + 5, "event_type": "quality_score_updated", "data": {"dimension_scores": "n/a"}},
        {"seq": base + 6, "event_type": "metrics_updated", "data": {"total_events": "lots"}},
        {"seq": base + 7, "event_type": "future_event_type", "data": {"alpha": 1, "beta": {"x": [1]}}},
        {"seq": base + 7, "event_type": "future_event_type", "data": {}},  # a duplicate seq
    ]
    for frame in ["not json", "[1, 2]", '{"type": 42}', '{"type": "events", "events": "nope"}',
                  json.dumps({"type": "brand_new_message"}),
                  json.dumps({"type": "events", "events": odd_events}),
                  json.dumps({"type": "gap"}),
                  json.dumps({"type": "error", "message": "<b>bad</b>"})]:
        sockets[0].send(frame)
    wait_for_seq(page, base + 7)

    got = rows(page, with_meta=True)
    assert [r["seq"] for r in got[:7]] == list(range(base + 7, base, -1))
    assert got[0]["label"] == "future_event_type"
    assert got[0]["desc"] == "future event type"
    assert got[5]["label"] == "__proto__"
    assert got[6]["label"] == "constructor" and got[6]["severity"] == "info"
    assert got[6]["time"] == "--:--:--"
    expect(page.locator(".notice[data-kind=error]")).to_have_text(re.compile(r"^Server: <b>bad</b>"))
    expect(page.locator(".opp")).to_have_count(1)
    expect(page.locator(".opp .conf-value")).to_have_text("?")
    expect(page.locator("#metric-total-events")).to_have_text("\N{EN DASH}")  # not a number: no value
    # ... and the page still works.
    server.publish(synthesis_started("still-alive"))
    expect(page.locator(f"{ROW}[data-type=synthesis_started]")).to_have_count(1)
    expect(page.locator("#conn-text")).to_have_text(CONNECTED)


# 7: the replay takes many `resume` messages (each walks at most 7 events), which the page chains.
@pytest.mark.parametrize("max_scanned_rows", [100_000, 7])
def test_reconnects_by_itself_and_catches_up_through_resume(
    page: Page, make_server, console: Console, max_scanned_rows: int
) -> None:
    # While the server is down, the browser logs each refused connection attempt itself.
    console.allow(r"WebSocket connection to .* failed")
    console.allow(r"ERR_CONNECTION_REFUSED")  # a poll (health, api/agents) racing the stop
    state = DashboardState(max_history=1000)
    first = make_server(state, health_interval_seconds=60)
    port = first.port
    open_dashboard(page, first)
    raw_mode(page)  # every event a row: every seq must be there
    for i in range(5):
        first.publish(synthesis_started(f"before-{i}"))
    wait_for_seq(page, state.last_seq)

    first.stop()
    expect(page.locator("#conn-text")).to_have_text(re.compile(r"^Reconnecting in \d+s$"), timeout=2000)
    expect(page.locator("#conn")).to_have_attribute("data-state", "waiting")
    for i in range(120):  # more than the snapshot's recent events: only resume can bring them all
        state.publish(synthesis_started(f"while-down-{i}"))

    second = make_server(state, port=port, health_interval_seconds=60, max_scanned_rows=max_scanned_rows)
    expect(page.locator("#conn-text")).to_have_text(CONNECTED, timeout=15_000)
    second.publish(synthesis_started("after"))
    last = state.last_seq  # a metrics event may come after it: the check stops here
    wait_for_seq(page, last)

    shown = rows(page, with_meta=True)
    seqs = [r["seq"] for r in shown]
    assert len(seqs) == len(set(seqs)), "duplicated rows"
    assert seqs == sorted(seqs, reverse=True)
    assert [s for s in sorted(seqs) if s <= last] == list(range(1, last + 1)), "missed events"
    phases = [r["desc"].split()[1] for r in shown if r["type"] == "synthesis_started"]
    assert phases[0] == "after"
    assert phases[-1] == "before-0"
    assert len(phases) == 126


def test_gap_notice_when_history_no_longer_holds_missed_events(
    page: Page, make_server, console: Console
) -> None:
    console.allow(r"WebSocket connection to .* failed")
    console.allow(r"ERR_CONNECTION_REFUSED")  # a poll (health, api/agents) racing the stop
    state = DashboardState(max_history=20)
    first = make_server(state, health_interval_seconds=60)
    port = first.port
    open_dashboard(page, first)
    first.publish(synthesis_started("seen"))
    wait_for_seq(page, state.last_seq)
    first.stop()
    for i in range(60):
        state.publish(synthesis_started(f"lost-{i}"))
    make_server(state, port=port, health_interval_seconds=60)
    expect(page.locator("#conn-text")).to_have_text(CONNECTED, timeout=15_000)
    notice = page.locator(".notice[data-kind=warning]")
    expect(notice).to_contain_text("missed")
    wait_for_seq(page, state.last_seq)
    assert rows(page)[0]["desc"] == "Synthesis lost-59 started: Cluster findings"
    notice.get_by_role("button", name="Dismiss").click()
    expect(notice).to_have_count(0)


def test_detail_panel_shows_fields_and_ids_and_closes_on_escape(
    page: Page, make_server, console: Console
) -> None:
    # The event's trace id is made up: the trace view asks for it and the browser logs the 404.
    console.allow(r"status of 404")
    server = make_server(health_interval_seconds=60)
    open_dashboard(page, server)
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    event = DashboardEvent.create(
        EventType.QUALITY_SCORE_UPDATED,
        {"source": "Researcher", "overall_score": 96.5,
         "dimension_scores": {"accuracy": 97.0, "coverage": 95.5}},
        Severity.SUCCESS, trace_id=trace_id, span_id=span_id)
    server.publish(event)
    server.publish(synthesis_started("other"))
    wait_for_seq(page, server.state.last_seq)

    row = page.locator(f"{ROW}[data-type=quality_score_updated]")
    row.click()
    detail = page.locator("#detail")
    expect(detail).to_be_visible()
    expect(page.locator("#detail-title")).to_have_text("Quality score")
    data = page.eval_on_selector_all(
        "#detail-data dt", "dts => dts.map(dt => [dt.textContent, dt.nextElementSibling.textContent])")
    data = dict(data)
    assert data["source"] == "Researcher"
    assert data["overall_score"] == "96.5"
    assert '"accuracy": 97' in data["dimension_scores"]  # nested values as pretty JSON
    expect(page.locator("#detail-data pre")).to_have_count(1)
    ids = page.locator("#detail-trace-ids")
    expect(ids).to_contain_text(trace_id)
    expect(ids).to_contain_text(span_id)
    expect(page.locator("#detail-meta")).to_contain_text(event.event_id)
    expect(page.locator("#detail-trace-h")).to_have_text("Trace")
    expect(page.locator("#trace-view")).to_have_attribute("data-trace-id", trace_id)
    expect(page.locator("#trace-view")).to_contain_text("Trace not available")

    page.keyboard.press("Escape")
    expect(detail).to_be_hidden()
    expect(row).to_be_focused()  # focus goes back to the row

    # Keyboard: a focused row opens with Enter.
    other = page.locator(f"{ROW}[data-type=synthesis_started]")
    other.focus()
    page.keyboard.press("Enter")
    expect(detail).to_be_visible()
    expect(page.locator("#detail-title")).to_have_text("Synthesis started")
    expect(page.locator("#detail-trace-ids")).to_contain_text("null")
    page.click("#detail-close")
    expect(detail).to_be_hidden()

    # Arrow keys move between rows; "/" jumps to the search box.
    other.focus()
    page.keyboard.press("ArrowDown")
    expect(row).to_be_focused()
    page.keyboard.press("/")
    expect(page.locator("#filter-text")).to_be_focused()


def test_auto_scroll_only_at_the_top_otherwise_a_new_events_pill(page: Page, make_server) -> None:
    server = make_server(health_interval_seconds=60)
    page.set_viewport_size({"width": 1440, "height": 700})
    open_dashboard(page, server)
    for i in range(60):
        server.publish(synthesis_started(f"early-{i}"))
    wait_for_seq(page, server.state.last_seq)
    pill = page.locator("#new-pill")
    expect(pill).to_be_hidden()
    assert page.eval_on_selector("#stream", "s => s.scrollTop") == 0

    # The reader scrolls down: new events must not move what they are reading.
    where = """() => {
        const s = document.getElementById('stream');
        const top = s.getBoundingClientRect().top;
        const row = [...s.children].find(r => r.getBoundingClientRect().top >= top);
        return [row.dataset.seq, Math.round(row.getBoundingClientRect().top - top)];
    }"""
    page.eval_on_selector("#stream", "s => { s.scrollTop = 600; }")
    anchor_seq, anchor_offset = page.evaluate(where)
    for i in range(5):
        server.publish(synthesis_started(f"late-{i}"))
    wait_for_seq(page, server.state.last_seq)
    expect(pill).to_be_visible()
    expect(page.locator("#new-pill-text")).to_have_text(re.compile(r"^([5-9]|1\d) new events$"))
    offset = page.evaluate(
        """seq => { const s = document.getElementById('stream');
                    const r = s.querySelector(`li[data-seq="${seq}"]`);
                    return Math.round(r.getBoundingClientRect().top - s.getBoundingClientRect().top); }""",
        anchor_seq)
    assert abs(offset - anchor_offset) <= 1

    pill.click()
    page.wait_for_function("document.getElementById('stream').scrollTop === 0")
    expect(pill).to_be_hidden()
    assert rows(page)[0]["desc"].startswith("Synthesis late-4 started")


def test_a_server_with_a_fresh_history_restarts_the_stream(page: Page, make_server, console: Console) -> None:
    console.allow(r"WebSocket connection to .* failed")
    console.allow(r"ERR_CONNECTION_REFUSED")  # a poll (health, api/agents) racing the stop
    first = make_server(health_interval_seconds=60)
    port = first.port
    open_dashboard(page, first)
    for i in range(30):
        first.publish(synthesis_started(f"old-{i}"))
    wait_for_seq(page, first.state.last_seq)
    first.stop()
    second = make_server(DashboardState(), port=port, health_interval_seconds=60)
    second.publish(synthesis_started("fresh"))
    expect(page.locator("#conn-text")).to_have_text(CONNECTED, timeout=15_000)
    expect(page.locator(".notice[data-kind=info]")).to_contain_text("fresh history")
    expect(page.locator(f"{ROW}[data-type=synthesis_started]")).to_have_count(1)
    assert rows(page)[0]["desc"].startswith("Synthesis fresh started")


def test_a_stalled_agent_shows_on_its_row_and_the_server_stays_healthy(page: Page, make_server) -> None:
    # The original design's contract: a stalled agent is the agent's health (its row, the count under
    # the active agents), not the server's; a healthy server with a slow agent says HEALTH HEALTHY.
    server = make_server(DashboardState(stall_threshold_seconds=0.5), health_interval_seconds=0.2)
    open_dashboard(page, server)
    server.publish(agent_started("slow", "SlowPoke", "Takes its time", run_id="run-slow"))
    row = page.locator("#agents > li.agent").filter(has_text="SlowPoke")
    expect(row).to_have_class(re.compile(r"\bstalled\b"), timeout=5000)
    expect(row.locator(".agent-stall")).to_be_visible()
    expect(page.locator("#metric-active-agents-foot")).to_have_text("1 stalled", timeout=5000)
    badge = page.locator("#health-status")
    expect(badge).to_have_attribute("data-status", "healthy")
    expect(badge).to_have_text("health healthy")
    shown = page.evaluate("getComputedStyle(document.getElementById('health-status')).textTransform")
    assert shown == "uppercase"  # HEALTH HEALTHY on the screen


def test_the_health_badge_shows_degraded_with_its_reasons(page: Page, make_server) -> None:
    server = make_server(health_interval_seconds=60)
    open_dashboard(page, server)
    server.publish(DashboardEvent.create(
        EventType.SYSTEM_HEALTH_UPDATED,
        {"status": "degraded", "reasons": ["broker down", "broker reader not reading"],
         "connected_clients": 1, "events_per_second": 0.0, "dropped_events": 0, "stalled_agents": 0},
        Severity.WARNING))
    badge = page.locator("#health-status")
    expect(badge).to_have_attribute("data-status", "degraded")
    expect(badge).to_have_text("health degraded")
    badge.focus()  # the reasons: in a popover on focus (and hover), tests/test_browser_layout.py
    expect(page.locator("#health-reasons > li")).to_have_text(["broker down", "broker reader not reading"])
    page.click("#mode-system")  # health rows are system events, hidden until asked for
    expect(page.locator(f"{ROW}[data-type=system_health_updated]")).to_contain_text(
        "broker down, broker reader not reading")


def test_page_runs_under_a_strict_content_security_policy(page: Page, make_server) -> None:
    # The page carries the policy the server will also send: no inline script or style, no eval,
    # nothing from elsewhere. Every test runs under it, and a violation is logged as a console
    # error, which fails the test.
    server = make_server(health_interval_seconds=0.2)
    open_dashboard(page, server)
    csp = page.get_attribute('meta[http-equiv="Content-Security-Policy"]', "content")
    assert csp is not None and "default-src 'self'" in csp
    server.publish(opportunity("o-csp", "Under CSP", confidence=0.7))
    expect(page.locator(".opp-title")).to_have_text("Under CSP")
    width = page.eval_on_selector(".conf-fill", "e => e.getBoundingClientRect().width")
    total = page.eval_on_selector(".conf-bar", "e => e.getBoundingClientRect().width")
    assert width == pytest.approx(total * 0.7, abs=1.5)  # set through the CSSOM, which CSP allows
    expect(page.locator("#health-eps")).to_have_text(re.compile(r"^\d+\.\d$"))  # health events flow
    expect(page.locator("#eps-spark polyline")).to_have_count(1, timeout=5000)


def test_theme_toggle_persists(page: Page, make_server) -> None:
    server = make_server()
    open_dashboard(page, server)
    html = page.locator("html")
    expect(html).to_have_attribute("data-theme", "dark")
    dark_bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.click("#theme-toggle")
    expect(html).to_have_attribute("data-theme", "light")
    expect(page.locator("#theme-toggle")).to_have_attribute("aria-pressed", "true")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != dark_bg
    page.reload()
    expect(page.locator("#conn-text")).to_have_text(CONNECTED)
    expect(html).to_have_attribute("data-theme", "light")
    page.click("#theme-toggle")
    expect(html).to_have_attribute("data-theme", "dark")
    assert page.evaluate("localStorage.getItem('otel-dashboard:theme')") == "dark"


def test_narrow_360px_viewport_has_no_horizontal_overflow(page: Page, make_server) -> None:
    server = make_server(name="a-rather-long-server-name-for-a-small-screen")
    page.set_viewport_size({"width": 360, "height": 740})
    open_dashboard(page, server)
    long_word = "x" * 300
    server.publish(agent_started("a" * 80, "Agent" + "N" * 60, long_word, run_id="narrow"))
    server.publish(opportunity("o-narrow", long_word, confidence=0.81, description=long_word,
                               category=long_word))
    server.publish(error_occurred(long_word, long_word, "E" * 80))
    wait_for_seq(page, server.state.last_seq)
    expect(page.locator(".opp")).to_have_count(1)
    widths = page.evaluate("""() => ({scroll: document.documentElement.scrollWidth,
                                       client: document.documentElement.clientWidth,
                                       body: document.body.scrollWidth})""")
    assert widths["client"] == 360
    assert widths["scroll"] <= 360 and widths["body"] <= 360, widths
    expect(page.locator(".card")).to_have_count(9)  # the six original cards and three usage cards
    expect(page.locator("#conn-text")).to_be_in_viewport()


# ---------------------------------------------------------------------------------------------- issue 6

TOKEN = "browser-test-token-0123"


def test_login_prompt_on_a_token_protected_server_then_logging_in_connects(
    page: Page, make_server, console: Console
) -> None:
    # The browser logs the refused handshake (401) and the refused wrong token itself.
    console.allow(r"WebSocket connection to .* failed")
    console.allow(r"status of 401")
    server = make_server(security=SecurityConfig(token=TOKEN), health_interval_seconds=60)
    server.publish(synthesis_started("before-login"))
    page.goto(server.dashboard_url)
    login = page.locator("#login")
    expect(login).to_be_visible()  # a prompt, not a blank page
    expect(page.locator("#login-title")).to_have_text("This dashboard needs a token")
    expect(page.locator("#conn-text")).to_have_text("Login required")
    expect(page.locator("#login-token")).to_be_focused()
    assert page.evaluate("window.otelDashboard.loginRequired") is True

    page.fill("#login-token", "not-the-token")
    page.keyboard.press("Enter")
    error = page.locator("#login-error")
    expect(error).to_have_text("That token is wrong. Check it and try again.")
    expect(login).to_be_visible()
    page.fill("#login-token", "<b>no</b>")
    page.click("#login-submit")
    expect(error).to_contain_text("not a token")

    page.fill("#login-token", TOKEN)
    page.click("#login-submit")
    page.mouse.move(0, 0)  # off the stream: new rows are not held back
    expect(login).to_be_hidden()
    expect(page.locator("#conn-text")).to_have_text(CONNECTED)
    wait_for_seq(page, server.state.last_seq)
    assert rows(page)[0]["desc"] == "Synthesis before-login started: Cluster findings"
    server.publish(synthesis_started("after-login"))
    wait_for_seq(page, server.state.last_seq)
    assert rows(page)[0]["desc"] == "Synthesis after-login started: Cluster findings"
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["otel_dashboard_token"]["httpOnly"] is True
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script can read it

    # The login URL the server prints works too, and the token does not stay in the address bar.
    page.context.clear_cookies()
    page.goto(f"{server.dashboard_url}?token={TOKEN}")
    expect(page.locator("#conn-text")).to_have_text(CONNECTED)
    assert page.url == server.dashboard_url
    expect(login).to_be_hidden()


def test_service_filter_lists_seen_services_and_filters_the_stream(page: Page, make_server) -> None:
    server = make_server(health_interval_seconds=60)
    server.publish(agent_started("a", "Alpha", "in snapshot", run_id="s1", service_name="billing"))
    open_dashboard(page, server)
    publish = server.publish
    publish(agent_started("b", "Beta", "task b", run_id="s2", service_name="search"))
    publish(agent_completed("b", "Beta", "task b", run_id="s2", service_name="search"))
    publish(error_occurred("Gamma", "boom", service_name="checkout"))
    publish(synthesis_started("no-service"))
    wait_for_seq(page, server.state.last_seq)

    select = page.locator("#filter-service")
    expect(select.locator("option")).to_have_text(["All services", "billing", "checkout", "search"])
    page.click("#more-menu summary")  # the service list is in the "More" menu
    select.select_option("search")
    expect(page.locator("#more-summary")).to_have_text("More (1)")
    page.keyboard.press("Escape")
    shown = rows(page, visible_only=True)
    assert [(r["type"], r["desc"]) for r in shown] == [("agent_run", "Beta succeeded in 1.2 s: task b")]
    assert page.evaluate("window.otelDashboard.filters")["agents"] == []  # applied in the page only
    expect(page.locator("#filter-clear")).to_be_visible()

    # New events: only the selected service shows; the others are not kept.
    publish(agent_started("c", "Charlie", "task c", run_id="s3", service_name="search"))
    publish(error_occurred("Delta", "other service", service_name="billing"))
    wait_for_seq(page, server.state.last_seq)
    shown = rows(page, visible_only=True)
    assert shown[0]["desc"] == "Charlie running: task c"
    assert not any("Delta" in r["desc"] for r in shown)
    expect(select.locator("option")).to_have_count(4)  # no duplicate options

    page.click("#filter-clear")
    expect(select).to_have_value("")
    assert any("Gamma" in r["desc"] for r in rows(page, visible_only=True))


def test_lost_agents_are_shown_after_a_restart_with_a_running_agent(
    page: Page, make_server, console: Console, tmp_path
) -> None:
    console.allow(r"WebSocket connection to .* failed")
    console.allow(r"ERR_CONNECTION_REFUSED")  # a failed attempt asks api/auth, while the server is down
    db = tmp_path / "events.db"
    first = make_server(DashboardState(store=SqliteEventStore(db)), health_interval_seconds=60)
    port = first.port
    open_dashboard(page, first)
    first.publish(agent_started("miner", "DataMiner", "Crawl filings", run_id="run-lost",
                                service_name="ingest"))
    first.publish(agent_started("fast", "Quick", "Short task", run_id="run-done"))
    first.publish(agent_completed("fast", "Quick", "Short task", run_id="run-done"))
    wait_for_seq(page, first.state.last_seq)
    expect(page.locator("#agents > li.agent")).to_have_count(1)
    expect(page.locator("#lost")).to_be_hidden()
    assert first.state.wait_durable(timeout_seconds=5)
    first.stop()
    first.state.store.close()

    # The same database, a new server on the same port: the run that never ended is unknown since the
    # restart, not running.
    second = make_server(DashboardState(store=SqliteEventStore(db)), port=port, health_interval_seconds=60)
    assert [a["run_id"] for a in second.state.get_lost_agents()] == ["run-lost"]
    expect(page.locator("#conn-text")).to_have_text(CONNECTED, timeout=15_000)
    lost = page.locator("#lost")
    expect(lost).to_be_visible()
    expect(page.locator("#lost-count")).to_have_text("1")
    row = page.locator("#lost-agents > li.lost-agent")
    expect(row).to_have_count(1)
    expect(row.locator(".agent-name")).to_have_text("DataMiner")
    expect(row.locator(".agent-task")).to_have_text("Crawl filings")
    expect(row.locator(".agent-meta")).to_contain_text("ingest")
    expect(row.locator(".lost-tag")).to_have_text("unknown")  # unknown since restart
    expect(page.locator("#agents > li.agent")).to_have_count(0)  # not shown as running forever
    expect(page.locator("#agents-count")).to_have_text("0")
    assert page.evaluate("window.otelDashboard.lostAgents") == 1

    # Its completion arrives after all (the agent outlived the server): it leaves the list.
    second.publish(agent_completed("miner", "DataMiner", "Crawl filings", run_id="run-lost"))
    expect(lost).to_be_hidden()
    second.stop()
    second.state.store.close()
