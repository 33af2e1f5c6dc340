"""The Running runs panel in a real headless Chromium against a real server (issue 15).

Each run in progress shows its elapsed time, current step, calls, tokens and cost, live from
``run_progress``; a row opens the run view; stalls are marked on the run and counted in the panel
head; timers freeze while the server is gone; runs unknown since a restart come back as running
when their agent reports again. Runs go in as the span processor puts them in
(``state.update_runs``), events through ``state.publish``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import Console, ServerThread, agent_completed, agent_started, error_occurred
from playwright.sync_api import Page, expect

from otel_dashboard.state.dashboard import DashboardState
from otel_dashboard.store.sqlite import SqliteEventStore

CONNECTED = "Connected - Live Updates"
ROWS = "#agents > li.agent"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(scope="module")
def shared() -> Iterator[ServerThread]:
    server = ServerThread(DashboardState(), health_interval_seconds=60).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(shared: ServerThread) -> Iterator[ServerThread]:
    """The module's server; every run a test leaves open is completed after it."""
    yield shared
    state = shared.state
    for a in [*state.get_active_agents(), *state.get_open_runs()]:
        name = a.get("agent_name") or "x"
        shared.publish(agent_completed(a.get("agent_id") or name, name, "", run_id=a["run_id"]))


def run(run_id: str, **fields: Any) -> dict[str, Any]:
    """A run's live state as run_progress carries it, ``fields`` replacing the defaults."""
    base: dict[str, Any] = {
        "run_id": run_id, "trace_id": TRACE, "agent_id": "weather", "agent_name": "WeatherAgent",
        "service_name": "tests", "task_description": "Forecast for Paris", "parent_run_id": None,
        "root_run_id": run_id, "started_at": "2020-01-01T00:00:00.000Z",
        "updated_at": "2020-01-01T00:00:01.000Z",
        "status": "running", "current_step": "waiting on gpt-4o", "model_calls": 1, "tool_calls": 0,
        "tool_failures": 0, "errors": 0, "tools": {}, "models": ["gpt-4o"],
        "tokens": {"input": 1200, "output": 340, "total": 1540, "cache_read_input": 0,
                   "cache_creation_input": 0, "reasoning_output": 0},
        "tokens_source": "model_calls", "cost_usd": 0.0012, "cost_status": "priced", "unpriced_models": [],
    }
    base.update(fields)
    return base


def open_dashboard(page: Page, server: ServerThread, hash_: str = "") -> None:
    page.goto(server.dashboard_url + hash_)
    expect(page.locator("#conn-text")).to_have_text(CONNECTED)
    expect(page.locator("#metric-total-events")).to_have_text(re.compile(r"^\d"))


def row(page: Page, run_id: str) -> Any:
    return page.locator(f'{ROWS}[data-run="{run_id}"]')


def kv(page: Page, selector: str) -> dict[str, str]:
    return dict(page.eval_on_selector_all(
        f"{selector} dt", "dts => dts.map(dt => [dt.textContent, dt.nextElementSibling.textContent])"))


def test_rows_update_live_from_run_progress_and_open_the_run_view(
    page: Page, server: ServerThread, console: Console
) -> None:
    console.allow(r"status of 404")  # the run's trace is not kept by this server: the trace view says so
    rid = "1111aaaa2222bbbb"
    server.publish(agent_started("weather", "WeatherAgent", "Forecast for Paris", run_id=rid))
    open_dashboard(page, server)
    expect(page.locator("#agents-title")).to_have_text("Running runs")
    r = row(page, rid)
    expect(r.locator(".agent-timer")).to_have_text(re.compile(r"^0:0\d$"))
    started = {**run(rid), "started_at": None}
    server.state.update_runs([started])
    expect(r.locator(".run-step")).to_have_text("model call to gpt-4o", timeout=1000)
    expect(r.locator(".run-calls")).to_have_text("1 model call")
    expect(r.locator(".run-tokens")).to_have_text("1,200 in / 340 out tokens")
    expect(r.locator(".run-cost")).to_have_text("$0.0012")

    server.state.update_runs([{**started, "current_step": "calling tool web_search", "model_calls": 2,
                               "tool_calls": 1, "tools": {"web_search": {"calls": 1, "failures": 0}},
                               "tokens": {"input": 2500, "output": 700, "total": 3200}, "cost_usd": 0.0031}])
    expect(r.locator(".run-step")).to_have_text("tool web_search", timeout=1000)
    expect(r.locator(".run-calls")).to_have_text("2 model calls", timeout=1000)
    expect(r.locator(".run-tools")).to_have_text("1 tool call")
    expect(r.locator(".run-tokens")).to_have_text("2,500 in / 700 out tokens")
    expect(r.locator(".run-cost")).to_have_text("$0.0031")
    expect(page.locator("#agents-count")).to_have_text("1")

    # The row is a button: Enter opens the run view, named in the URL.
    r.locator("button.agent-open").focus()
    page.keyboard.press("Enter")
    detail = page.locator("#detail")
    expect(detail).to_have_attribute("data-view", "run")
    expect(page.locator("#detail-title")).to_have_text("WeatherAgent")
    expect(page.locator("#detail-sev")).to_have_text("running")
    assert page.evaluate("location.hash") == f"#run={rid}"
    summary = kv(page, ".run-view-summary")
    assert summary["now"] == "tool web_search" and summary["elapsed"].endswith("so far")
    assert kv(page, ".run-view-figures")["model calls"] == "2 (gpt-4o)"
    assert kv(page, ".run-view-figures")["tools"] == "web_search: 1 call"
    expect(page.locator("#detail-view .trace-view")).to_have_attribute("data-trace-id", TRACE)

    # Live: progress updates the view; the completion turns it into the ended run.
    server.state.update_runs([{**started, "model_calls": 3, "current_step": None}])
    expect(page.locator(".run-view-figures")).to_contain_text("3 (gpt-4o)", timeout=1000)
    server.publish(agent_completed("weather", "WeatherAgent", "Forecast for Paris", run_id=rid,
                                   duration_ms=2500.0, success=False, error_type="TimeoutError",
                                   error_message="the model took too long", model_calls=3, models=["gpt-4o"],
                                   tokens={"input": 2600, "output": 800, "total": 3400}, cost_usd=0.0033,
                                   cost_status="priced"))
    expect(page.locator("#detail-sev")).to_have_text("failed", timeout=1000)
    expect(r).to_have_count(0)
    assert kv(page, ".run-view-summary")["duration"] == "2.5 s"
    assert kv(page, ".run-view-error") == {"error type": "TimeoutError", "message": "the model took too long"}
    page.keyboard.press("Escape")
    expect(detail).to_be_hidden()
    assert page.evaluate("location.hash") == ""


def test_stalled_runs_are_marked_on_the_run_and_counted_as_agent_health(
    page: Page, server: ServerThread, console: Console
) -> None:
    console.allow(r"status of 404")
    # Started in 2020: far past the default threshold.
    server.state.update_runs([run("3333cccc4444dddd", agent_name="SlowPoke"),
                              run("5555eeee6666ffff", parent_run_id="3333cccc4444dddd")])
    server.publish(agent_started("fresh", "Fresh", "just started", run_id="fresh-run"))
    open_dashboard(page, server)
    slow = row(page, "3333cccc4444dddd")
    expect(slow).to_have_class(re.compile(r"\bstalled\b"))
    expect(slow.locator(".agent-stall")).to_have_text(re.compile("stalled", re.I))
    expect(slow.locator(".agent-stall")).to_be_visible()
    expect(row(page, "fresh-run")).not_to_have_class(re.compile(r"\bstalled\b"))
    expect(page.locator("#agents-count")).to_have_text("3")
    expect(page.locator("#agents-stalled")).to_have_text("2 stalled")
    # Agent health, never server health: the server's badge does not turn degraded for it.
    expect(page.locator("#health-status")).not_to_have_attribute("data-status", "degraded")
    slow.click()
    expect(page.locator("#detail-sev")).to_have_text("stalled")
    expect(page.locator(".run-view-status")).to_contain_text("Stalled")
    # Its sub-run is a link to the sub-run's own view, and the sub-run links back to its parent.
    sub = page.locator('.run-view-related button[data-run="5555eeee6666ffff"]')
    expect(sub).to_have_text("WeatherAgent")
    sub.click()
    expect(page).to_have_url(re.compile(r"#run=5555eeee6666ffff$"))
    expect(page.locator('.run-view-related button[data-run="3333cccc4444dddd"]')).to_have_text("SlowPoke")


def test_timers_freeze_while_the_server_is_gone(page: Page, console: Console) -> None:
    console.allow(r"WebSocket connection to .* failed")
    console.allow(r"ERR_CONNECTION_REFUSED")
    server = ServerThread(DashboardState(stall_threshold_seconds=4), health_interval_seconds=60).start()
    try:
        server.publish(agent_started("w", "Worker", "long task", run_id="freeze-run"))
        page.clock.install()
        open_dashboard(page, server)
        r = row(page, "freeze-run")
        expect(r.locator(".agent-timer")).to_have_text(re.compile(r"^0:0[0-3]$"))
    finally:
        server.stop()
    expect(page.locator("#conn-text")).not_to_have_text(CONNECTED)
    frozen = r.locator(".agent-timer").text_content()
    page.clock.fast_forward(20_000)  # 20 s later, past the 4 s stall threshold
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")
    expect(r.locator(".agent-timer")).to_have_text(frozen or "")
    expect(r).not_to_have_class(re.compile(r"\bstalled\b"))
    expect(page.locator("#agents-stalled")).to_be_hidden()


def test_unknown_since_restart_comes_back_as_running(page: Page, tmp_path: Path, console: Console) -> None:
    console.allow(r"status of 404")
    db = tmp_path / "events.db"
    first = ServerThread(DashboardState(store=SqliteEventStore(db)), health_interval_seconds=60).start()
    try:
        first.publish(agent_started("miner", "DataMiner", "Crawl filings", run_id="7777aaaa8888bbbb"))
        first.publish(agent_started("scout", "Scout", "Scan news", run_id="9999cccc0000dddd"))
        assert first.state.wait_durable(timeout_seconds=5)
    finally:
        first.stop()
        first.state.store.close()
    second = ServerThread(DashboardState(store=SqliteEventStore(db)), health_interval_seconds=60).start()
    try:
        open_dashboard(page, second)
        lost = page.locator("#lost")
        expect(page.locator("#lost-title")).to_contain_text("Unknown since restart")
        expect(lost.locator(".lost-hint")).to_have_text(
            "Running when the server restarted; they come back as running if their agent still reports, "
            "or end when it finishes.")
        expect(page.locator("#lost-agents > li .lost-tag")).to_have_text(["unknown", "unknown"])
        expect(page.locator("#agents-count")).to_have_text("0")

        # The unknown run's view says so; a run_progress naming the run brings it back at once.
        page.locator('#lost-agents > li[data-run="7777aaaa8888bbbb"] button').click()
        expect(page.locator("#detail-sev")).to_have_text("unknown")
        second.state.update_runs([run("7777aaaa8888bbbb", agent_name="DataMiner")])
        revived = row(page, "7777aaaa8888bbbb")
        expect(revived.locator(".run-step")).to_have_text("model call to gpt-4o", timeout=1000)
        expect(page.locator("#detail-sev")).to_have_text(re.compile("running|stalled"))
        expect(page.locator("#lost-count")).to_have_text("1")

        # So does an agent event naming it (here an error it reports).
        second.publish(error_occurred("Scout", "rate limited", run_id="9999cccc0000dddd"))
        expect(row(page, "9999cccc0000dddd")).to_have_count(1, timeout=1000)
        expect(lost).to_be_hidden()
        expect(page.locator("#agents-count")).to_have_text("2")
    finally:
        second.stop()
        second.state.store.close()
