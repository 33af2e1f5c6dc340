"""The agents table and the agent view, in a real headless Chromium against a real server.

The table's figures come from ``GET /api/agents`` (the server's rolling window) and its "running"
column from the page's live model; a row opens the agent view, whose recent runs come from
``GET /api/events`` (the history), beyond the events the page holds. Every test works on its own
agents under its own service name, so the tests share one server.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import Console, ServerThread, agent_completed, agent_started, synthesis_started
from playwright.sync_api import Locator, Page, expect

from otel_dashboard.state.dashboard import DashboardState

CONNECTED = "Connected - Live Updates"
ROWS = "#agents-table-body > tr.at-row"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    # A history of 5000 events, a snapshot of the newest 20: most runs are not in the page's stream.
    srv = ServerThread(DashboardState(max_history=5000), history_size=20, health_interval_seconds=60).start()
    try:
        yield srv
    finally:
        srv.stop()


def completed(agent: str, service: str, run_id: str, duration_ms: float, *, success: bool = True,
              tokens: tuple[int, int] = (1000, 200), cost: float | None = 0.001, **extra: Any) -> Any:
    data: dict[str, Any] = {
        "service_name": service,
        "tokens": {"input": tokens[0], "output": tokens[1], "total": sum(tokens)},
        "tokens_source": "model_calls", "model_calls": 1,
        "cost_usd": cost, "cost_status": "priced" if cost is not None else "no_price",
    }
    data.update(extra)
    return agent_completed(agent.lower(), agent, "a task", run_id=run_id, duration_ms=duration_ms,
                           success=success, **data)


def open_dashboard(page: Page, server: ServerThread) -> None:
    page.goto(server.dashboard_url)
    expect(page.locator("#conn-text")).to_have_text(CONNECTED)


def rows_of(page: Page, service: str) -> Locator:
    return page.locator(f'{ROWS}[data-service="{service}"]')


def agents_in_order(page: Page, service: str) -> list[str]:
    return rows_of(page, service).evaluate_all("rs => rs.map(r => r.dataset.agent)")


# ---------------------------------------------------------------------------------------------- tests

def test_the_row_shows_the_agents_figures(page: Page, server: ServerThread) -> None:
    svc = "t-figures"
    for i, ms in enumerate((100.0, 200.0, 300.0)):
        server.publish(completed("Researcher", svc, f"fig-{i}", ms))
    server.publish(completed("Researcher", svc, "fig-3", 1000.0, success=False,
                             error_type="TimeoutError", error_message="<b>slow</b> upstream <img src=x>"))
    for run_id in ("fig-run-1", "fig-run-2"):
        server.publish(agent_started("researcher", "Researcher", "busy", run_id=run_id, service_name=svc))
    open_dashboard(page, server)

    expect(page.locator("#agents-table-window")).to_have_text("last 1 h")
    row = rows_of(page, svc)
    expect(row).to_have_count(1)
    expect(row.locator(".at-name")).to_have_text("Researcher")
    expect(row.locator(".at-service")).to_have_text(svc)
    expect(row.locator(".at-running")).to_have_text("2")  # from the live model
    expect(row.locator(".at-runs")).to_have_text("4")
    expect(row.locator(".at-failures")).to_have_text("1")
    expect(row.locator(".at-success")).to_have_text("75%")
    expect(row.locator(".at-duration .at-l1")).to_have_text("200 ms")  # nearest-rank p50
    expect(row.locator(".at-duration .at-l2")).to_have_text("p95 1.0 s")
    expect(row.locator(".at-tokens .at-l1")).to_have_text("4K in")
    expect(row.locator(".at-tokens .at-l2")).to_have_text("800 out")
    expect(row.locator(".at-tokens")).to_have_attribute("title", "4,000 input / 800 output tokens")
    expect(row.locator(".at-cost")).to_have_text("$0.0040")
    error = row.locator(".at-error")
    expect(error).to_have_text("TimeoutError: <b>slow</b> upstream <img src=x>")  # text, never markup
    expect(error).to_have_attribute("title", re.compile(r"^TimeoutError: <b>slow</b> upstream"))
    assert page.locator("#agents-table b, #agents-table img").count() == 0
    # The activity spark: one bar (this minute), its failure marked.
    expect(row.locator(".at-spark .at-bar")).to_have_count(1)
    expect(row.locator(".at-spark .at-bar-fail")).to_have_count(1)
    expect(row.locator(".at-activity")).to_have_attribute("title", re.compile(r"^4 runs, 1 failed, last 1 h"))

    # A run ends: the row follows within the throttled refresh, in place (the same element).
    handle = row.element_handle()
    server.publish(completed("Researcher", svc, "fig-run-1", 400.0))
    expect(row.locator(".at-runs")).to_have_text("5", timeout=4000)
    expect(row.locator(".at-running")).to_have_text("1")
    assert handle is not None and handle.evaluate("(tr) => tr.isConnected")


def test_sorting_by_the_column_headers(page: Page, server: ServerThread) -> None:
    svc = "t-sort"
    # Completion times a few ms apart (timestamps have ms resolution): Alpha, Charlie, then Bravo.
    server.publish(completed("Alpha", svc, "alpha-0", 100.0, tokens=(10, 1)))
    time.sleep(0.01)
    for i in range(2):
        server.publish(completed("Charlie", svc, f"charlie-{i}", 100.0, tokens=(50, 10)))
    time.sleep(0.01)
    for i in range(3):
        server.publish(completed("Bravo", svc, f"bravo-{i}", 100.0, tokens=(500, 100)))
    server.publish(agent_started("charlie", "Charlie", "busy", run_id="charlie-open", service_name=svc))
    open_dashboard(page, server)
    expect(rows_of(page, svc)).to_have_count(3)

    # Default: running now first, then the most recently active.
    assert agents_in_order(page, svc) == ["Charlie", "Bravo", "Alpha"]
    running = page.locator("#agents-table-head th[data-sort=running]")
    expect(running).to_have_attribute("aria-sort", "descending")

    runs = page.locator("#agents-table-head th[data-sort=runs]")
    runs.locator("button").click()
    expect(runs).to_have_attribute("aria-sort", "descending")
    expect(running).not_to_have_attribute("aria-sort", re.compile("."))
    assert agents_in_order(page, svc) == ["Bravo", "Charlie", "Alpha"]
    runs.locator("button").click()
    expect(runs).to_have_attribute("aria-sort", "ascending")
    assert agents_in_order(page, svc) == ["Alpha", "Charlie", "Bravo"]

    # From the keyboard: the headers are buttons.
    agent = page.locator("#agents-table-head th[data-sort=agent]")
    agent.locator("button").focus()
    page.keyboard.press("Enter")
    expect(agent).to_have_attribute("aria-sort", "ascending")
    assert agents_in_order(page, svc) == ["Alpha", "Bravo", "Charlie"]
    page.locator("#agents-table-head th[data-sort=tokens] button").click()
    assert agents_in_order(page, svc) == ["Bravo", "Charlie", "Alpha"]


def test_a_row_opens_the_agent_view_with_its_history(page: Page, server: ServerThread) -> None:
    svc = "t-history"
    for i in range(60):
        server.publish(completed("Historian", svc, f"hist-{i}", 100.0 + i, success=i % 10 != 9,
                                 error_type="ValueError" if i % 10 == 9 else None,
                                 error_message="bad <i>input</i>" if i % 10 == 9 else None))
    server.publish(agent_started("historian", "Historian", "reading", run_id="hist-open", service_name=svc))
    for _ in range(25):  # the snapshot (20 events) holds none of the runs
        server.publish(synthesis_started("filler"))
    open_dashboard(page, server)

    row = rows_of(page, svc)
    expect(row.locator(".at-runs")).to_have_text("60")
    row.focus()
    page.keyboard.press("Enter")
    detail = page.locator("#detail")
    expect(detail).to_be_visible()
    expect(detail).to_have_attribute("data-view", "agent")
    expect(page.locator("#detail-title")).to_have_text("Historian")
    assert re.search(r"#agent=Historian&service=t-history$", page.url), page.url

    view = page.locator(".agent-view")
    expect(view.locator(".av-figure-list")).to_contain_text("60")
    running = view.locator(".av-running-list > li")
    expect(running).to_have_count(1)
    expect(running.locator(".av-run-id")).to_have_text("hist-open")

    runs = view.locator(".av-history-list > li")
    expect(runs).to_have_count(50)  # the newest page, newest first
    assert runs.first.get_attribute("data-seq") is not None
    expect(runs.first.locator(".av-run-duration")).to_have_text("159 ms")
    expect(runs.first.locator(".av-outcome")).to_have_text("failed")
    expect(runs.first.locator(".av-run-error")).to_have_text("ValueError: bad <i>input</i>")
    expect(runs.nth(1).locator(".av-outcome")).to_have_text("succeeded")
    expect(runs.nth(1).locator(".av-run-tokens")).to_have_text("1,000 in / 200 out tokens")
    expect(runs.nth(1).locator(".av-run-cost")).to_have_text("$0.0010")
    assert view.locator("i").count() == 0

    older = view.locator(".av-older")
    expect(older).to_be_visible()
    older.click()
    expect(runs).to_have_count(60)
    expect(runs.last.locator(".av-run-duration")).to_have_text("100 ms")  # the oldest run
    expect(older).to_be_hidden()
    seqs = [int(s) for s in runs.evaluate_all("ls => ls.map(l => l.dataset.seq)")]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 60

    # A run that ends while the view is open comes on top (with the table's throttled refresh).
    server.publish(completed("Historian", svc, "hist-open", 777.0))
    expect(runs).to_have_count(61, timeout=4000)
    expect(runs.first.locator(".av-run-duration")).to_have_text("777 ms")
    expect(running).to_have_count(0)

    # A run opens the run view's route.
    runs.last.locator("button").click()
    assert re.search(r"#run=hist-0$", page.url), page.url


def test_a_server_without_agent_statistics_gets_a_hint(page: Page, server: ServerThread,
                                                       console: Console) -> None:
    svc = "t-old-server"
    server.publish(agent_started("legacy", "Legacy", "busy", run_id="legacy-open", service_name=svc))
    console.allow(r"404")
    page.route("**/api/agents*", lambda route: route.fulfill(status=404, body="not found"))
    open_dashboard(page, server)
    expect(page.locator("#agents-table-hint")).to_have_text(re.compile(r"need a newer server"))
    row = rows_of(page, svc)
    expect(row.locator(".at-running")).to_have_text("1")  # the running agents still show
    expect(row.locator(".at-runs")).to_have_text("\u2013")  # an en dash: no figure


def test_disconnected_the_table_freezes(page: Page, console: Console) -> None:
    svc = "t-frozen"
    console.allow(r"WebSocket connection to .* failed")
    console.allow(r"ERR_CONNECTION_REFUSED")
    own = ServerThread(DashboardState(), health_interval_seconds=60).start()
    try:
        own.publish(completed("Keeper", svc, "keep-0", 250.0))
        open_dashboard(page, own)
        row = rows_of(page, svc)
        expect(row.locator(".at-runs")).to_have_text("1")
        expect(page.locator("#panel-agents-table")).not_to_have_class(re.compile(r"\bis-frozen\b"))
    finally:
        own.stop()
    expect(page.locator("#panel-agents-table")).to_have_class(re.compile(r"\bis-frozen\b"))
    fetches: list[str] = []
    page.on("request", lambda request: fetches.append(request.url) if "api/agents" in request.url else None)
    page.wait_for_timeout(500)  # two ticks of the table: no fetch while disconnected
    assert fetches == []
    expect(row.locator(".at-runs")).to_have_text("1")  # the last figures stay, dimmed


def test_a_row_fed_by_otlp_metrics_shows_its_tokens_and_says_so(page: Page, server: ServerThread) -> None:
    """An app that sends only GenAI metrics (no spans) still gets its row, its tokens marked as from
    OTLP metrics; the stock OTLP/HTTP metric exporter sends them."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.resources import Resource

    svc = "t-metrics-only"
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": svc}))
    exporter = OTLPMetricExporter(endpoint=f"{server.url}/v1/metrics")
    try:
        tokens = provider.get_meter("tests.browser").create_histogram("gen_ai.client.token.usage")
        tokens.record(1500, {"gen_ai.agent.name": "Summarizer", "gen_ai.token.type": "input"})
        tokens.record(250, {"gen_ai.agent.name": "Summarizer", "gen_ai.token.type": "output"})
        data = reader.get_metrics_data()
        assert data is not None
        assert exporter.export(data).name == "SUCCESS"
    finally:
        exporter.shutdown()
        provider.shutdown()
    open_dashboard(page, server)
    row = rows_of(page, svc)
    expect(row).to_have_count(1)
    expect(row.locator(".at-name")).to_have_text("Summarizer")
    expect(row.locator(".at-runs")).to_have_text("0")
    tokens_cell = row.locator(".at-tokens")
    expect(tokens_cell).to_contain_text("1.5K in")
    expect(tokens_cell).to_have_attribute(
        "title", re.compile(r"1,500 input / 250 output tokens \(from OTLP metrics\)"))
