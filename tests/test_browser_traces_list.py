"""The traces page, a conversation and the event aside in a real headless Chromium against a real
server on loopback (issue 16).

The list (``#traces=1``, ``GET api/traces``) pages past its first page with "Load older", keeps the
older pages when its first page refreshes, filters, and jumps to a trace id (a malformed one gets an
inline error and no navigation); a row opens the trace page. A conversation (``#conversation=``)
lists its runs in start order, sub-runs and open runs included, each opening its trace at the run's
span. The event aside shows the outcome, then "Open trace" and the waterfall, then the fields (empty
ones left out), then the raw event folded; the run view's "Open trace" opens the trace page.

One server for the module, seeded once over ``POST /api/events``; two page loads per test at most.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import Console, ServerThread
from playwright.sync_api import Page, expect

from otel_dashboard.model.events import DashboardEvent, EventType, Severity, format_timestamp
from otel_dashboard.state.dashboard import DashboardState

pytestmark = pytest.mark.timeout(60)

CONNECTED = "Connected - Live Updates"
PAGE_LIMIT = 50  # TRACES.pageLimit in web/js/traces-common.js
REFRESH_MS = 5000  # TRACES.refreshMs
ROOTS = 55  # root runs seeded: more than one page
BASE_NS = 1_800_000_000 * 10**9
ROWS = "#traces-page-body .traces-table tbody tr"


def rid(n: int) -> str:
    return f"{n:016x}"


def tid(n: int) -> str:
    return f"{n:032x}"


def completed(n: int, *, agent: str, start_ms: int, ok: bool = True, parent: int | None = None,
              trace: int | None = None, conversation: str | None = None, service: str = "svc-a",
              ) -> dict[str, Any]:
    """A run's completion as a remote processor posts it."""
    start_ns = BASE_NS + start_ms * 10**6
    data = {
        "run_id": rid(n), "agent_id": agent.lower(), "agent_name": agent, "service_name": service,
        "success": ok, "duration_ms": 500.0, "started_at": format_timestamp(start_ns),
        "tokens": {"input": 10 * n, "output": n}, "cost_usd": 0.25, "cost_status": "priced",
        "parent_run_id": rid(parent) if parent is not None else None,
        "error_type": None if ok else "ValueError", "conversation_id": conversation,
    }
    event = DashboardEvent.create(EventType.AGENT_EXECUTION_COMPLETED, data,
                                  Severity.SUCCESS if ok else Severity.ERROR,
                                  timestamp_ns=start_ns + 500 * 10**6,
                                  trace_id=tid(trace if trace is not None else n), span_id=rid(n)).to_dict()
    event.pop("seq")
    return event


def post(server: ServerThread, events: list[dict[str, Any]],
         runs: list[dict[str, Any]] | None = None) -> None:
    body: dict[str, Any] = {"events": events}
    if runs is not None:
        body["runs"] = runs
    request = urllib.request.Request(server.url + "/api/events", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    srv = ServerThread(DashboardState(max_history=10_000), health_interval_seconds=60).start()
    try:
        # Root runs 1..55 (every tenth failed; 1 and 2 in conversation conv-1), then a sub-run of 1
        # in conv-1 that started between 1 and 2, and a run of conv-1 open now.
        events = [completed(n, agent="Planner" if n % 2 else "Writer", start_ms=n * 1000, ok=n % 10 != 0,
                            conversation="conv-1" if n <= 2 else None,
                            service="svc-a" if n <= 40 else "svc-b")
                  for n in range(1, ROOTS + 1)]
        events.append(completed(101, agent="Worker", start_ms=1500, parent=1, trace=1, conversation="conv-1"))
        post(srv, events, runs=[{"run_id": rid(102), "trace_id": tid(102), "agent_name": "Planner",
                                 "service_name": "svc-a", "status": "running", "conversation_id": "conv-1",
                                 "started_at": format_timestamp(BASE_NS + 100 * 10**9)}])
        yield srv
    finally:
        srv.stop()


def trace_ids(page: Page) -> list[str]:
    return page.locator(ROWS).evaluate_all("trs => trs.map(tr => tr.dataset.traceId)")


def newest(first: int, last: int) -> list[str]:
    return [tid(n) for n in range(first, last - 1, -1)]


def test_the_list_pages_refreshes_filters_and_jumps(page: Page, server: ServerThread) -> None:
    page.clock.install()  # the refresh's timer is fast-forwarded below, not waited for
    page.goto(server.dashboard_url + "#traces=1")
    expect(page.locator("#conn-text")).to_have_text(CONNECTED)
    expect(page.locator("body")).to_have_attribute("data-page", "traces")
    expect(page.locator("#nav-traces")).to_have_attribute("aria-current", "page")

    # The first page: the newest 50 root runs (the sub-run is not a trace row), newest first.
    expect(page.locator(ROWS)).to_have_count(PAGE_LIMIT)
    assert trace_ids(page) == newest(ROOTS, ROOTS - PAGE_LIMIT + 1)
    first = page.locator(ROWS).first
    cells = first.locator("td").evaluate_all("tds => tds.map(td => td.textContent)")
    assert cells[0] == f"Planner{tid(ROOTS)[:8]}"  # root, then its trace id's first digits
    assert cells[1:8] == ["svc-b", "Planner", "500 ms", "ok", "550 in / 55 out", "$0.2500", cells[7]]
    assert cells[8] == "\N{EN DASH}"  # no conversation
    failed = page.locator(f'{ROWS}[data-trace-id="{tid(50)}"] .tl-status')
    expect(failed).to_have_text("error")
    expect(failed).to_have_attribute("title", "ValueError")

    # "Load older" reaches past the first page, to the end.
    older = page.locator(".traces-older")
    older.click()
    expect(page.locator(ROWS)).to_have_count(ROOTS)
    assert trace_ids(page) == newest(ROOTS, 1)
    expect(older).to_be_hidden()
    expect(page.locator(".traces-count")).to_have_text(f"{ROOTS} traces · no older ones")

    # The refresh brings a new trace in front and keeps the older page loaded.
    post(server, [completed(56, agent="Planner", start_ms=56_000)])
    page.mouse.move(0, 0)
    page.clock.fast_forward(REFRESH_MS + 100)
    expect(page.locator(ROWS)).to_have_count(ROOTS + 1)
    assert trace_ids(page) == newest(ROOTS + 1, 1)

    # A filter asks the server again: status error is every tenth run.
    page.locator(".traces-filters select[name=status]").select_option("error")
    expect(page.locator(ROWS)).to_have_count(5)
    assert trace_ids(page) == [tid(50), tid(40), tid(30), tid(20), tid(10)]
    service = page.locator(".traces-filters input[name=service]")
    service.fill("svc-b")
    service.press("Enter")
    expect(page.locator(ROWS)).to_have_count(1)
    assert trace_ids(page) == [tid(50)]
    service.fill("nothing-here")
    service.press("Enter")
    expect(page.locator(ROWS)).to_have_count(0)
    expect(page.locator(".traces-status")).to_have_text(
        "No trace matches these filters in the server's history.")
    page.locator(".traces-clear").click()
    expect(page.locator(ROWS)).to_have_count(PAGE_LIMIT)

    # The jump box: a malformed id gets an inline error and no navigation; a good one opens it.
    jump = page.locator("#traces-jump-input")
    for bad in ("not-a-trace", "0" * 32, tid(5)[:-1]):
        jump.fill(bad)
        jump.press("Enter")
        expect(page.locator("#traces-jump-error")).to_be_visible()
        expect(jump).to_have_attribute("aria-invalid", "true")
        assert page.evaluate("location.hash") == "#traces=1"
    expect(page.locator("#traces-jump-error")).to_contain_text("32 hex digits")
    jump.fill(tid(7).upper())
    expect(page.locator("#traces-jump-error")).to_be_hidden()
    jump.press("Enter")
    expect(page).to_have_url(f"{server.dashboard_url}#trace={tid(7)}")
    expect(page.locator("body")).to_have_attribute("data-page", "trace")

    # Back to the list; a click on a row (not on a link) opens its trace.
    page.go_back()
    expect(page.locator("body")).to_have_attribute("data-page", "traces")
    expect(page.locator(ROWS)).to_have_count(PAGE_LIMIT)
    page.locator(f'{ROWS}[data-trace-id="{tid(42)}"] .tl-service').click()
    expect(page).to_have_url(f"{server.dashboard_url}#trace={tid(42)}")
    expect(page.locator("body")).to_have_attribute("data-page", "trace")
    page.goto("about:blank")


def test_a_conversation_lists_its_runs_in_start_order(page: Page, server: ServerThread) -> None:
    page.goto(server.dashboard_url + "#traces=1")
    expect(page.locator("#conn-text")).to_have_text(CONNECTED)
    link = page.locator(f'{ROWS}[data-trace-id="{tid(2)}"] .tl-conv-link')
    page.locator(".traces-filters input[name=conversation]").fill("conv-1")
    page.locator(".traces-filters input[name=conversation]").press("Enter")
    expect(page.locator(ROWS)).to_have_count(2)
    expect(link).to_have_text("conv-1")
    link.click()
    expect(page).to_have_url(f"{server.dashboard_url}#conversation=conv-1")
    expect(page.locator("#traces-page-title")).to_have_text("Conversation")
    expect(page.locator(".conversation-id")).to_have_text("conv-1")

    runs = page.locator("#traces-page-body .conversation-table tbody tr")
    expect(runs).to_have_count(4)
    table = runs.evaluate_all("""trs => trs.map(tr => [tr.dataset.runId, tr.dataset.status,
        tr.querySelector('.cv-agent').textContent, tr.classList.contains('is-sub')])""")
    assert table == [[rid(1), "ok", "Planner", False], [rid(101), "ok", "↳ Worker", True],
                     [rid(2), "ok", "Writer", False],
                     [rid(102), "running", "Planner", False]]
    expect(runs.nth(3).locator(".tl-duration")).to_have_text("running")

    # "All traces" goes back to the list; a row opens its trace at the run's own span.
    page.locator(".conversation-all").click()
    expect(page.locator("#traces-page-title")).to_have_text("Traces")
    expect(page.locator(ROWS)).to_have_count(2)  # the filters stay while the page is open
    link.click()
    expect(runs).to_have_count(4)
    runs.nth(1).locator(".tl-started").click()
    expect(page).to_have_url(f"{server.dashboard_url}#trace={tid(1)}&span={rid(101)}")
    expect(page.locator("body")).to_have_attribute("data-page", "trace")
    page.goto("about:blank")


ORDER_JS = """selectors => {
    const nodes = selectors.map(s => document.querySelector(s));
    if (nodes.some(n => !n)) return selectors.filter((s, i) => !nodes[i]);
    const after = (a, b) => Boolean(a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING);
    return nodes.every((n, i) => i === 0 || after(nodes[i - 1], n));
}"""


def test_the_event_aside_puts_the_outcome_and_the_trace_first(
    page: Page, server: ServerThread, console: Console
) -> None:
    console.allow(r"status of 404")  # the traces are not kept: the waterfall says so
    trace, span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    done = server.publish(DashboardEvent.create(
        EventType.AGENT_EXECUTION_COMPLETED,
        {"agent_id": "weather", "agent_name": "WeatherAgent", "run_id": span, "success": False,
         "duration_ms": 2500.0, "error_type": "TimeoutError", "error_message": "the model took too long",
         "model_calls": 2, "models": ["gpt-4o"], "tokens": {"input": 100, "output": 20}, "cost_usd": 0.002,
         "cost_status": "priced", "quality_score": None, "task_description": ""},
        Severity.ERROR, trace_id=trace, span_id=span))
    running = "abab0101cdcd0202"
    server.publish(DashboardEvent.create(
        EventType.AGENT_EXECUTION_STARTED,
        {"agent_id": "weather", "agent_name": "WeatherAgent", "task_description": "Forecast",
         "run_id": running, "service_name": "tests"}, Severity.INFO, trace_id=trace, span_id=running))

    page.goto(f"{server.dashboard_url}#event={done.seq}")
    expect(page.locator("#conn-text")).to_have_text(CONNECTED)
    expect(page.locator("#detail")).to_have_attribute("data-view", "event")
    expect(page.locator("#detail-desc")).to_contain_text("WeatherAgent failed after 2.5 s (TimeoutError)")
    order = ["#detail-desc", "#detail-open-trace", "#trace-view", "#detail-run-section", "#detail-meta",
             "#detail-data", "#detail-raw"]
    assert page.evaluate(ORDER_JS, order) is True
    expect(page.locator("#trace-view")).to_have_attribute("data-trace-id", trace)

    # Empty fields are left out of Data (and said so); the raw event, folded, has everything.
    keys = page.locator("#detail-data dt").all_text_contents()
    assert "agent_name" in keys and "quality_score" not in keys and "task_description" not in keys
    expect(page.locator(".detail-hidden-note")).to_contain_text("2 empty fields not shown")
    raw = page.locator("#detail-raw")
    assert raw.evaluate("d => d.open") is False
    raw.locator("summary").click()
    raw_json = json.loads(page.locator(".detail-raw-json").text_content() or "")
    assert raw_json["data"]["quality_score"] is None and raw_json["seq"] == done.seq
    assert raw_json["trace_id"] == trace and not any(k.startswith("_") for k in raw_json)

    # "Open trace" opens the trace page at the event's span; the aside closes, the URL stays.
    page.locator("#detail-open-trace").click()
    expect(page).to_have_url(f"{server.dashboard_url}#trace={trace}&span={span}")
    expect(page.locator("body")).to_have_attribute("data-page", "trace")
    expect(page.locator("#detail")).to_be_hidden()
    page.wait_for_timeout(100)  # a history.back() from closing the aside would have landed by now
    expect(page).to_have_url(f"{server.dashboard_url}#trace={trace}&span={span}")

    # The run view's "Open trace", at its top, opens the trace page at the run's span.
    page.evaluate(f"location.hash = '#run={running}'")
    expect(page.locator("#detail")).to_have_attribute("data-view", "run")
    button = page.locator("#detail-view .run-view-open-trace")
    expect(button).to_be_visible()
    assert page.evaluate("() => document.querySelector('#detail-view').firstElementChild.classList"
                         ".contains('run-view-open-trace')")
    button.click()
    expect(page).to_have_url(f"{server.dashboard_url}#trace={trace}&span={running}")
    expect(page.locator("body")).to_have_attribute("data-page", "trace")
    page.goto("about:blank")
