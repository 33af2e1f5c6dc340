"""Stopping a run from the page, and the guardrail marks, in a real headless Chromium (issue 18).

A real server (with and without a token), runs put in as the span processor puts them
(``state.update_runs``), events through ``state.publish``. The "Stop run" button of the run view
is there only on a page logged in to a server with a token; it flags the run
(``POST /api/runs/{run_id}/stop``), and the "stop requested" mark then shows on the run's row and
in the run view. Without a token configured the server answers the POST with 403.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import Console, ServerThread, agent_completed, agent_started
from playwright.sync_api import Page, expect

from otel_dashboard.model.guardrails import Budget
from otel_dashboard.server.security import SecurityConfig
from otel_dashboard.state.dashboard import DashboardState

CONNECTED = "Connected - Live Updates"
TOKEN = "browser-stop-token-0123"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(name="servers")
def fixture_servers() -> Iterator[list[ServerThread]]:
    started: list[ServerThread] = []
    yield started
    for server in started:
        server.stop()


def start(servers: list[ServerThread], **options: Any) -> ServerThread:
    server = ServerThread(DashboardState(), health_interval_seconds=60, **options).start()
    servers.append(server)
    return server


def live_run(run_id: str, **fields: Any) -> dict[str, Any]:
    run: dict[str, Any] = {
        "run_id": run_id, "trace_id": TRACE, "agent_id": "runaway", "agent_name": "Runaway",
        "service_name": "tests", "task_description": "Loop forever", "parent_run_id": None,
        "root_run_id": run_id, "started_at": "2020-01-01T00:00:00.000Z", "status": "running",
        "current_step": "calling tool get_weather", "model_calls": 9, "tool_calls": 8, "tool_failures": 0,
        "errors": 0, "tools": {"get_weather": {"calls": 8, "failures": 0}}, "models": ["gpt-4o"],
    }
    run.update(fields)
    return run


def open_run(page: Page, server: ServerThread, run_id: str) -> None:
    """The dashboard with the run view open on ``run_id``, once the page knows whether it may stop runs."""
    with page.expect_response(lambda response: response.url.endswith("/api/auth")):
        page.goto(f"{server.dashboard_url}#run={run_id}")
    expect(page.locator("#conn-text")).to_have_text(CONNECTED)
    expect(page.locator("#detail")).to_have_attribute("data-view", "run")
    expect(page.locator("#detail-sev")).to_have_text("running")


def test_no_button_without_a_token_and_the_server_refuses_with_403(
    page: Page, servers: list[ServerThread], console: Console
) -> None:
    console.allow(r"status of 40[34]")  # the browser logs the refused POST (and the untraced run's trace)
    server = start(servers)
    server.state.set_guardrails([Budget(scope="run", limits={"tokens": 1000, "cost_usd": 0.001})])
    run_id = "aaaa0000bbbb1111"
    server.publish(agent_started("runaway", "Runaway", "Loop forever", run_id=run_id))
    # Over both budgets: the state's tracker marks the run (over_budget) and flags it (kind "budget").
    server.state.update_runs([live_run(run_id, tokens={"input": 4000, "output": 1000, "total": 5000},
                                       cost_usd=0.02, cost_status="priced")])
    open_run(page, server, run_id)

    # The over-budget mark, on the row and in the run view; no stop requested, no button.
    row = page.locator(f'#agents > li.agent[data-run="{run_id}"]')
    expect(row.locator(".run-flag-over")).to_have_text("over budget")
    assert row.locator(".run-flag-over").get_attribute("title") == "Over its budget: tokens, cost"
    expect(row.locator(".run-flag-stop")).to_have_count(0)
    expect(page.locator(".run-view-flags .run-flag-over")).to_have_text("over budget")
    expect(page.locator(".run-view-stop")).to_be_hidden()

    answer = page.evaluate("""async (id) => {
        const res = await fetch(`api/runs/${id}/stop`, {method: "POST"});
        return [res.status, await res.json()];
    }""", run_id)
    assert answer == [403, {"error": "stopping runs needs a token (serve --token)"}]
    flag = server.state.run_flag(run_id)
    assert flag is not None and flag["kind"] == "budget"  # the budget's flag, not the refused request's
    expect(page.locator(".run-view-stop")).to_be_hidden()
    page.goto("about:blank")


def test_with_a_token_the_button_flags_the_run_and_the_marks_show(
    page: Page, servers: list[ServerThread], console: Console
) -> None:
    console.allow(r"status of 404")  # the run's trace is not kept by this server: the trace view says so
    server = start(servers, security=SecurityConfig(token=TOKEN))
    run_id = "cccc0000dddd2222"
    server.publish(agent_started("runaway", "Runaway", "Loop forever", run_id=run_id))
    server.state.update_runs([live_run(run_id)])
    page.goto(f"{server.dashboard_url}?token={TOKEN}")  # logs in (the cookie)
    expect(page.locator("#conn-text")).to_have_text(CONNECTED)

    # The agents table's Failed cell marks the runs of the window over a run budget: two finished
    # runs of the agent went over the state's token budget (the tracker counts them at completion).
    server.state.set_guardrails([Budget(scope="run", limits={"tokens": 1000})])
    for n in (1, 2):
        server.publish(agent_completed("runaway", "Runaway", "Loop forever", run_id=f"eeee0000ffff000{n}",
                                       duration_ms=1000.0, success=True, service_name="tests",
                                       tokens={"input": 4000, "output": 1000, "total": 5000}))
    open_run(page, server, run_id)
    button = page.locator(".run-view-stop")
    expect(button).to_be_visible()
    expect(button).to_have_text("Stop run")
    mark = page.locator('#agents-table-body tr[data-agent="Runaway"] .at-failures .at-over-budget')
    expect(mark).to_have_text("2 over budget")

    button.click()
    expect(page.locator(".run-view-stop-answer")).to_have_text(
        "Stop requested: the run stops at its next decorated step if it opted in (stop_on_budget).")
    flag = server.state.run_flag(run_id)
    assert flag is not None and flag["kind"] == "user" and flag["reason"] == "stop requested on the dashboard"
    expect(button).to_be_hidden()
    # The run's state carries the flag at once (run_progress): the marks show on the row and in the view.
    row = page.locator(f'#agents > li.agent[data-run="{run_id}"]')
    expect(row.locator(".run-flag-stop")).to_have_text("stop requested")
    assert "requested on the dashboard" in (row.locator(".run-flag-stop").get_attribute("title") or "")
    expect(page.locator(".run-view-flags .run-flag-stop")).to_have_text("stop requested")

    # Opened again, a flagged run offers no button.
    page.goto("about:blank")
    open_run(page, server, run_id)
    expect(page.locator(".run-view-flags .run-flag-stop")).to_have_text("stop requested")
    expect(page.locator(".run-view-stop")).to_be_hidden()
    page.goto("about:blank")


def test_the_budgets_in_force_show_under_the_agents_title(page: Page, servers: list[ServerThread]) -> None:
    """GET /api/guardrails gives the state's budgets and loop thresholds; the page writes them in one
    line under the agents table's title, and writes nothing for a server without budgets."""
    plain = start(servers)
    page.goto(plain.dashboard_url)
    expect(page.locator("#conn-text")).to_have_text(CONNECTED)
    body = page.evaluate("async () => (await fetch('api/guardrails')).json()")
    assert body == {"budgets": [], "stop_needs_token": True, "loops": {
        "repeated_tool_calls": 5, "repeated_prompts": 5, "self_invocation_depth": 3}}
    expect(page.locator("#agents-table-budgets")).to_be_hidden()
    page.goto("about:blank")

    server = start(servers)
    server.state.set_guardrails([
        Budget(scope="run", limits={"tokens": 200_000, "cost_usd": 2.5, "duration_seconds": 900}),
        Budget(scope="agent", agent="Planner", limits={"cost_usd": 20}, window_seconds=3600),
        Budget(scope="conversation", limits={"cost_usd": 5}),
    ])
    page.goto(server.dashboard_url)
    expect(page.locator("#agents-table-budgets")).to_have_text(
        "Budgets: each run ≤ 200K tokens · $2.50 · 15m 00s; Planner ≤ $20 per 1h 00m; "
        "each conversation ≤ $5.00")
    page.goto("about:blank")
