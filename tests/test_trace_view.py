"""The trace view (the span waterfall in the event detail panel) in a real headless Chromium.

Real spans throughout: a per-test SDK ``TracerProvider`` with a ``DashboardSpanProcessor`` feeding the
state of a real server on a loopback port, so the spans reach the page through the server's trace
store and ``GET /api/traces/{trace_id}``, and their events through the WebSocket. Every test fails
on a console error or an uncaught page error (the fixtures are the ones of ``test_browser.py``).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from browser_support import Console, ServerThread
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span, TracerProvider
from opentelemetry.trace import Status, StatusCode, Tracer
from playwright.sync_api import Page, Request, expect

from instrumentation import semconv as sc
from otel_dashboard.model.events import DashboardEvent, EventType, Severity
from otel_dashboard.pipeline.processor import DashboardSpanProcessor

CONNECTED = "Connected - Live Updates"
ROW = "#stream > li.ev"
TRACE_ROW = "#trace-view .trace-row"
ERROR_RED = "rgb(255, 93, 108)"  # --error in the dark theme
XSS_IMG = "<img src=x onerror=window.__xss=1>"
XSS_SCRIPT = "<script>window.__xss=2</script>"


# ---------------------------------------------------------------------------------------------- fixtures



class Traced:
    """A server plus a tracer whose spans go through a ``DashboardSpanProcessor`` into its state."""

    def __init__(self, server: ServerThread) -> None:
        self.server = server
        self.provider = TracerProvider(resource=Resource.create({"service.name": "trace-view-tests"}))
        self.processor = DashboardSpanProcessor(state=server.state)
        self.provider.add_span_processor(self.processor)
        self.tracer: Tracer = self.provider.get_tracer("tests.trace_view")

    def flush(self) -> None:
        """Until the processor has mapped and published every span started or ended so far."""
        assert self.processor.force_flush(5_000)

    def trace(self, trace_id: str) -> dict[str, Any]:
        """The trace as the server's API returns it."""
        with urllib.request.urlopen(f"{self.server.url}/api/traces/{trace_id}", timeout=5) as response:
            return json.load(response)


@pytest.fixture
def traced(page: Page) -> Iterator[Callable[[], Traced]]:
    made: list[Traced] = []

    def make() -> Traced:
        t = Traced(ServerThread(health_interval_seconds=60).start())
        made.append(t)
        return t

    yield make
    page.goto("about:blank")  # the page leaves first: no refused retry logged while the servers stop
    for t in made:
        t.provider.shutdown()
        t.server.stop()


# ---------------------------------------------------------------------------------------------- helpers

def agent_attrs(name: str) -> dict[str, Any]:
    return {sc.GEN_AI_OPERATION_NAME: sc.OPERATION_INVOKE_AGENT, sc.GEN_AI_AGENT_NAME: name}


def tool_attrs(name: str) -> dict[str, Any]:
    return {sc.GEN_AI_OPERATION_NAME: sc.OPERATION_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: name}


def hex_trace_id(span: Span) -> str:
    return format(span.get_span_context().trace_id, "032x")


def hex_span_id(span: Span) -> str:
    return format(span.get_span_context().span_id, "016x")


def open_dashboard(page: Page, server: ServerThread) -> None:
    page.goto(server.dashboard_url)
    expect(page.locator("#conn-text")).to_have_text(CONNECTED)
    expect(page.locator("#metric-total-events")).to_have_text(re.compile(r"^\d"))  # the snapshot is in
    # These tests open an event's view from its row: the raw mode has a row per event.
    page.click("#mode-raw")
    expect(page.locator("#mode-raw")).to_have_attribute("aria-pressed", "true")


def wait_for_seq(page: Page, seq: int) -> None:
    """Until the page has received the event ``seq`` and drawn the frame after it."""
    page.wait_for_function("s => window.otelDashboard.lastSeq >= s", arg=seq)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def sync(page: Page, t: Traced) -> None:
    t.flush()
    wait_for_seq(page, t.server.state.last_seq)


def trace_rows(page: Page) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(
        TRACE_ROW,
        """rows => rows.map(r => {
            const bar = r.querySelector('.trace-bar').getBoundingClientRect();
            return {span: r.dataset.spanId, depth: Number(r.dataset.depth), kind: r.dataset.kind,
                    status: r.dataset.status, running: r.dataset.running,
                    durationMs: r.dataset.durationMs === undefined ? null : Number(r.dataset.durationMs),
                    badge: r.querySelector('.trace-kind').textContent,
                    name: r.querySelector('.trace-name').textContent,
                    dur: r.querySelector('.trace-dur').textContent,
                    error: r.querySelector('.trace-error').hidden ? null
                        : r.querySelector('.trace-error').textContent,
                    title: r.title, cls: r.className, current: r.getAttribute('aria-current'),
                    left: bar.left, right: bar.right};
        })""",
    )


def js_duration(ms: float) -> str:
    """The page's text for a finished span of 10 ms to 1 min (``fmtSpanMs``, js/trace-waterfall.js)."""
    assert 10 <= ms < 60_000, ms
    return f"{math.floor(ms + 0.5)} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def count_trace_requests(page: Page) -> list[str]:
    """A live list of the URLs of the page's trace requests."""
    urls: list[str] = []

    def on_request(request: Request) -> None:
        if "/api/traces/" in request.url:
            urls.append(request.url)

    page.on("request", on_request)
    return urls


# ---------------------------------------------------------------------------------------------- tests

def test_nested_agent_tool_agent_run_shows_the_span_tree(page: Page, traced) -> None:
    t = traced()
    open_dashboard(page, t.server)
    tracer = t.tracer
    with tracer.start_as_current_span("invoke_agent Planner", attributes=agent_attrs("Planner")) as planner:
        time.sleep(0.02)
        with tracer.start_as_current_span("execute_tool web_search", attributes=tool_attrs("web_search")):
            time.sleep(0.015)
            with tracer.start_as_current_span("invoke_agent Researcher",
                                              attributes=agent_attrs("Researcher")) as researcher:
                time.sleep(0.03)
        time.sleep(0.01)
    sync(page, t)
    trace_id = hex_trace_id(planner)

    page.locator(f"{ROW}[data-type=agent_execution_completed]").filter(has_text="Planner completed").click()
    expect(page.locator("#detail")).to_be_visible()
    expect(page.locator("#trace-view")).to_have_attribute("data-trace-id", trace_id)
    expect(page.locator(TRACE_ROW)).to_have_count(3)
    expect(page.locator("#trace-view .trace-summary")).to_have_text("3 spans")

    got = trace_rows(page)
    assert [(r["depth"], r["kind"], r["badge"], r["name"]) for r in got] == [
        (0, "agent", "agent", "Planner"),
        (1, "tool", "tool", "web_search"),  # the tool named through gen_ai.tool.name
        (2, "agent", "agent", "Researcher"),
    ]
    assert [r["span"] for r in got] == [hex_span_id(planner), got[1]["span"], hex_span_id(researcher)]
    assert all(r["running"] == "false" and r["error"] is None for r in got)

    # The durations are the server's, in the page's format.
    api = {s["span_id"]: s for s in t.trace(trace_id)["spans"]}
    for row in got:
        assert row["durationMs"] == api[row["span"]]["duration_ms"]
        assert row["dur"] == js_duration(row["durationMs"])
    assert got[0]["durationMs"] > got[1]["durationMs"] > got[2]["durationMs"] >= 30

    # Bars on one time axis: each child's bar lies within its parent's.
    for parent, child in ((got[0], got[1]), (got[1], got[2])):
        assert child["left"] >= parent["left"] - 1 and child["right"] <= parent["right"] + 1
    assert got[2]["right"] - got[2]["left"] > 10

    # The selected event's span is highlighted; the others are not.
    assert got[0]["current"] == "true" and "is-event" in got[0]["cls"].split()
    assert got[1]["current"] is None and got[2]["current"] is None

    # Keyboard: the highlighted row is the one in the tab order; arrows move the selection, Left and
    # Right fold and unfold a subtree (a tree's keys).
    first = page.locator(TRACE_ROW).first
    assert page.eval_on_selector_all(TRACE_ROW, "rs => rs.map(r => r.tabIndex)") == [0, -1, -1]
    first.focus()
    page.keyboard.press("ArrowDown")
    tool = page.locator(f"{TRACE_ROW}[data-kind=tool]")
    expect(tool).to_be_focused()
    expect(tool).to_have_attribute("aria-selected", "true")
    page.keyboard.press("End")
    expect(page.locator(f"{TRACE_ROW}[data-span-id='{hex_span_id(researcher)}']")).to_be_focused()
    page.keyboard.press("ArrowLeft")  # a leaf: to its parent
    expect(tool).to_be_focused()
    expect(tool).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("ArrowLeft")  # an open parent: folds it
    expect(tool).to_have_attribute("aria-expanded", "false")
    expect(page.locator(TRACE_ROW)).to_have_count(2)
    page.keyboard.press("ArrowRight")
    expect(page.locator(TRACE_ROW)).to_have_count(3)
    tool.locator(".trace-toggle").click()  # the mouse folds it too (and does not leave the aside)
    expect(page.locator(TRACE_ROW)).to_have_count(2)
    tool.locator(".trace-toggle").click()
    expect(page.locator(TRACE_ROW)).to_have_count(3)
    expect(page.locator("#detail")).to_be_visible()

    # 360 px: the waterfall scrolls sideways inside its box; the page does not overflow.
    page.set_viewport_size({"width": 360, "height": 740})
    sizes = page.evaluate("""() => {
        const box = document.querySelector('#trace-view .trace-scroll');
        return {doc: document.documentElement.scrollWidth, body: document.body.scrollWidth,
                client: document.documentElement.clientWidth,
                boxScroll: box.scrollWidth, boxClient: box.clientWidth,
                boxRight: box.getBoundingClientRect().right};
    }""")
    assert sizes["client"] == 360 and sizes["doc"] <= 360 and sizes["body"] <= 360, sizes
    assert sizes["boxScroll"] > sizes["boxClient"] and sizes["boxRight"] <= 360, sizes

    # Escape still closes the panel from inside the waterfall.
    page.keyboard.press("Escape")
    expect(page.locator("#detail")).to_be_hidden()


def test_a_failing_tool_span_is_red_with_its_message(page: Page, traced) -> None:
    t = traced()
    open_dashboard(page, t.server)
    with t.tracer.start_as_current_span("invoke_agent Fetcher", attributes=agent_attrs("Fetcher")):
        with t.tracer.start_as_current_span("execute_tool fetch_page",
                                            attributes=tool_attrs("fetch_page")) as sp:
            time.sleep(0.01)
            sp.set_status(Status(StatusCode.ERROR, "HTTP 503 from upstream"))
        with t.tracer.start_as_current_span("execute_tool parse", attributes=tool_attrs("parse")):
            time.sleep(0.01)
    sync(page, t)

    page.locator(f"{ROW}[data-type=agent_execution_completed]").click()
    expect(page.locator(TRACE_ROW)).to_have_count(3)
    expect(page.locator("#trace-view .trace-summary")).to_have_text("3 spans · 1 error")
    failed = page.locator(f"{TRACE_ROW}[data-status=error]")
    expect(failed).to_have_count(1)
    expect(failed.locator(".trace-name")).to_have_text("fetch_page")
    expect(failed.locator(".trace-error")).to_have_text("HTTP 503 from upstream")
    expect(failed).to_have_attribute("title", re.compile("error: HTTP 503 from upstream"))
    colours = failed.evaluate("""r => ({
        name: getComputedStyle(r.querySelector('.trace-name')).color,
        bar: getComputedStyle(r.querySelector('.trace-bar')).backgroundColor,
        dur: getComputedStyle(r.querySelector('.trace-dur')).color})""")
    assert colours == {"name": ERROR_RED, "bar": ERROR_RED, "dur": ERROR_RED}
    ok = page.locator(f"{TRACE_ROW}[data-kind=tool]").filter(has_text="parse")
    expect(ok.locator(".trace-error")).to_be_hidden()
    assert ok.evaluate("r => getComputedStyle(r.querySelector('.trace-name')).color") != ERROR_RED


def _fail_deep(depth: int) -> None:
    """Raises a chain of ``depth + 1`` exceptions: a long stack trace (a plain recursion's is folded
    by Python itself)."""
    try:
        if depth:
            _fail_deep(depth - 1)
        else:
            raise ValueError("the root cause")
    except Exception as exc:
        raise RuntimeError(f"upstream said {XSS_IMG}") from exc


def test_a_click_on_a_row_opens_the_trace_page_at_that_span(page: Page, traced) -> None:
    t = traced()
    open_dashboard(page, t.server)
    requests = count_trace_requests(page)
    with (
        t.tracer.start_as_current_span("invoke_agent Fetcher", attributes=agent_attrs("Fetcher")),
        t.tracer.start_as_current_span("execute_tool fetch_page", attributes=tool_attrs("fetch_page"),
                                       record_exception=False, set_status_on_exception=False) as sp,
    ):
        try:
            _fail_deep(2)
        except RuntimeError as exc:
            sp.record_exception(exc)
            sp.set_status(Status(StatusCode.ERROR, "upstream failed"))
    sync(page, t)
    trace_id, span_id = hex_trace_id(sp), hex_span_id(sp)

    page.locator(f"{ROW}[data-type=agent_execution_completed]").click()
    expect(page.locator(TRACE_ROW)).to_have_count(2)
    page.locator(f"{TRACE_ROW}[data-status=error]").click()
    expect(page).to_have_url(re.compile(rf"#trace={trace_id}&span={span_id}$"))
    expect(page.locator("#page-trace")).to_be_visible()
    expect(page.locator("#detail")).to_be_hidden()
    on_page = page.locator(f"#trace-page-view .trace-row[data-span-id='{span_id}']")
    expect(on_page).to_have_attribute("aria-selected", "true")
    expect(page.locator("#trace-span-pane")).to_have_attribute("data-span-id", span_id)
    history = page.evaluate("history.length")
    # Selecting another span on the page names it in the URL without a new history entry.
    page.locator("#trace-page-view .trace-row[data-kind=agent]").click()
    expect(page).to_have_url(re.compile(rf"#trace={trace_id}&span=(?!{span_id})[0-9a-f]{{16}}$"))
    assert page.evaluate("history.length") == history
    # Back: the live page.
    page.go_back()
    expect(page.locator("main.main")).to_be_visible()
    expect(page.locator("#page-trace")).to_be_hidden()
    # The waterfall came in pages.
    assert any("offset=0" in url and "limit=" in url for url in requests)


def test_a_running_trace_updates_live_until_it_ends(page: Page, traced) -> None:
    t = traced()
    open_dashboard(page, t.server)
    requests = count_trace_requests(page)
    writer = t.tracer.start_span("invoke_agent Writer", attributes=agent_attrs("Writer"))
    sync(page, t)

    page.locator(f"{ROW}[data-type=agent_execution_started]").filter(has_text="Writer started").click()
    row = page.locator(f"{TRACE_ROW}[data-span-id='{hex_span_id(writer)}']")
    expect(row).to_have_attribute("data-running", "true")
    expect(row).to_have_class(re.compile(r"\bis-running\b"))
    dur = row.locator(".trace-dur")
    expect(dur).to_have_text(re.compile(r"^running \d"))
    expect(page.locator("#trace-view .trace-summary")).to_have_text("1 span · 1 running")
    # Striped and moving, except with reduced motion (this context's setting).
    animation = "r => getComputedStyle(r.querySelector('.trace-bar')).animationName"
    assert row.evaluate(animation) == "none"
    page.emulate_media(reduced_motion="no-preference")
    assert row.evaluate(animation) == "trace-stripes"
    page.emulate_media(reduced_motion="reduce")
    # The running time ticks by itself.
    shown = dur.text_content()
    expect(dur).not_to_have_text(shown or "", timeout=3000)

    # Closing the panel stops the polling of a running trace.
    page.keyboard.press("Escape")
    expect(page.locator("#detail")).to_be_hidden()
    page.wait_for_timeout(100)
    closed_at = len(requests)
    page.wait_for_timeout(1300)
    assert len(requests) == closed_at
    page.locator(f"{ROW}[data-type=agent_execution_started]").filter(has_text="Writer started").click()
    expect(row).to_have_attribute("data-running", "true")

    # A child tool span starts: no event comes for it, the polling brings it in.
    with t.tracer.start_as_current_span("execute_tool draft", attributes=tool_attrs("draft"),
                                        context=trace.set_span_in_context(writer)):
        expect(page.locator(f"{TRACE_ROW}[data-kind=tool][data-running=true][data-depth='1']")).to_have_count(
            1, timeout=3000)
        time.sleep(0.02)
    writer.end()
    ended = time.monotonic()
    expect(row).to_have_attribute("data-running", "false", timeout=2500)
    assert time.monotonic() - ended < 2.0
    expect(dur).to_have_text(re.compile(r"^\d+(\.\d+)? (ms|s)$"))
    expect(page.locator(f"{TRACE_ROW}[data-running=true]")).to_have_count(0)
    expect(page.locator("#trace-view .trace-summary")).to_have_text("2 spans")
    api = t.trace(hex_trace_id(writer))
    assert api["running"] is False
    assert float(row.get_attribute("data-duration-ms") or "nan") == next(
        s["duration_ms"] for s in api["spans"] if s["span_id"] == hex_span_id(writer))

    # The trace is over: no more polling while the panel stays open.
    page.wait_for_timeout(300)
    settled = len(requests)
    page.wait_for_timeout(1300)
    assert len(requests) == settled
    # Throttled: never two fetches of the trace closer than 500 ms (as the browser timed them).
    starts = page.evaluate("""() => performance.getEntriesByType('resource')
        .filter(e => e.name.includes('/api/traces/')).map(e => e.startTime).sort((a, b) => a - b)""")
    assert len(starts) == settled >= 3, starts
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 495, gaps


def test_unknown_trace_and_unreachable_server_show_messages(page: Page, traced, console: Console) -> None:
    console.allow(r"status of 404")  # the browser logs the (expected) 404 of an unknown trace
    console.allow(r"net::ERR_FAILED")  # and the request the test makes fail
    t = traced()
    open_dashboard(page, t.server)
    unknown = "5b8efff798038103d269b633813fc60c"
    t.server.publish(DashboardEvent.create(
        EventType.QUALITY_SCORE_UPDATED, {"source": "Nobody", "overall_score": 80.0}, Severity.SUCCESS,
        trace_id=unknown, span_id="eee19b7ec3c1b174"))
    wait_for_seq(page, t.server.state.last_seq)
    page.locator(f"{ROW}[data-type=quality_score_updated]").click()
    view = page.locator("#trace-view")
    expect(view).to_have_attribute("data-state", "missing")
    expect(view.locator(".trace-status-text")).to_have_text(
        "Trace not available (not kept or not received yet).")
    expect(view.locator(".trace-retry")).to_be_visible()
    expect(page.locator(TRACE_ROW)).to_have_count(0)
    page.keyboard.press("Escape")
    page.mouse.move(0, 0)  # off the list: new rows are not held back

    # The server cannot be reached: a message and a retry that works once it can.
    with t.tracer.start_as_current_span("invoke_agent Solo", attributes=agent_attrs("Solo")):
        time.sleep(0.01)
    sync(page, t)
    page.route("**/api/traces/*", lambda route: route.abort())
    page.locator(f"{ROW}[data-type=agent_execution_completed]").click()
    expect(view).to_have_attribute("data-state", "error")
    expect(view.locator(".trace-status-text")).to_have_text(
        "Could not load the trace: the server could not be reached.")
    page.unroute("**/api/traces/*")
    view.locator(".trace-retry").click()
    expect(page.locator(TRACE_ROW)).to_have_count(1)
    expect(view).to_have_attribute("data-state", "ok")
    expect(view.locator(".trace-status")).to_be_hidden()


def test_span_names_and_messages_are_never_html(page: Page, traced) -> None:
    t = traced()
    open_dashboard(page, t.server)
    with t.tracer.start_as_current_span("invoke_agent Guard", attributes=agent_attrs("Guard")):
        with t.tracer.start_as_current_span(XSS_IMG):
            pass
        with t.tracer.start_as_current_span("execute_tool x", attributes=tool_attrs(XSS_SCRIPT)) as sp:
            sp.set_status(Status(StatusCode.ERROR, XSS_IMG))
    sync(page, t)
    page.locator(f"{ROW}[data-type=agent_execution_completed]").click()
    expect(page.locator(TRACE_ROW)).to_have_count(3)
    names = page.eval_on_selector_all(f"{TRACE_ROW} .trace-name", "ns => ns.map(n => n.textContent)")
    assert sorted(names) == sorted(["Guard", XSS_IMG, XSS_SCRIPT])
    expect(page.locator(f"{TRACE_ROW}[data-status=error] .trace-error")).to_have_text(XSS_IMG)
    expect(page.locator(f"{TRACE_ROW}[data-kind=other]")).to_have_attribute(
        "title", re.compile("^" + re.escape(XSS_IMG)))
    page.wait_for_timeout(100)  # an onerror would have fired by now
    assert page.evaluate("typeof window.__xss") == "undefined"
    counts = page.evaluate("""() => ({img: document.querySelectorAll('#trace-view img').length,
                                       script: document.querySelectorAll('#trace-view script').length})""")
    assert counts == {"img": 0, "script": 0}
