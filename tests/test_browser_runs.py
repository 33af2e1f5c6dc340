"""Live agent runs on the dashboard page, in a real headless Chromium against a real server.

What a run is doing (issue 13): the running-agent rows show each open run's current step, calls,
tokens and cost, from the snapshot's ``runs`` and the ``run_progress`` messages; a completed run
leaves them, and its stream row and detail panel show its tokens and cost.

The runs go in the way the span processor puts them in: ``state.update_runs([...])`` from another
thread, and ``agent_execution_completed`` through ``state.publish``. Until the server side of runs
is merged, :func:`_runs_shim` gives the test server's state a stand-in ``update_runs`` (see there);
it switches itself off once :class:`DashboardState` has its own.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from browser_support import ServerThread, agent_completed, agent_started
from playwright.sync_api import Page, expect

from otel_dashboard.model.events import DashboardEvent, EventType
from otel_dashboard.server.broadcast.broadcaster import BROADCASTER_KEY
from otel_dashboard.state.dashboard import DashboardState

CONNECTED = "Connected - Live Updates"
ROWS = "#agents > li.agent"
RUN_A = "a1b2c3d4e5f60718"
RUN_B = "0f1e2d3c4b5a6978"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


# ---------------------------------------------------------------------------------------------- shim

def _runs_shim(server: ServerThread) -> None:
    """A stand-in for the server side of runs (docs: notes/runs-spec.md), for this file only.

    Does what the spec asks of the server, the simplest way: ``update_runs`` keeps the latest state
    per ``run_id`` and sends ``{"type": "run_progress", "runs": [...]}`` to every client (through
    the broadcaster's control path, in order with the events); the snapshot gains ``"runs"``; an
    accepted ``agent_execution_completed`` removes its ``data.run_id``. Nothing happens when
    :class:`DashboardState` has ``update_runs`` of its own: then the real server side is tested.
    """
    if hasattr(DashboardState, "update_runs"):
        return
    state = server.state
    assert server.server is not None and server.server.app is not None
    broadcaster = server.server.app[BROADCASTER_KEY]
    open_runs: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()
    capture = state._capture

    def capture_with_runs(callback: Any = None) -> Any:
        view, query = capture(callback)
        with lock:
            view["runs"] = [dict(run) for run in open_runs.values()]
        return view, query

    def on_event(event: DashboardEvent) -> None:
        if event.event_type == EventType.AGENT_EXECUTION_COMPLETED:
            with lock:
                open_runs.pop(str(event.data.get("run_id")), None)

    def send(message: dict[str, Any]) -> None:
        for client in broadcaster.clients:
            broadcaster.send_control(client, message)

    def update_runs(runs: list[dict[str, Any]]) -> None:
        with lock:
            for run in runs:
                open_runs[run["run_id"]] = dict(run)
        server.call(lambda: send({"type": "run_progress", "runs": [dict(r) for r in runs]}))

    state._capture = capture_with_runs  # type: ignore[method-assign]
    state.subscribe(on_event)
    state.update_runs = update_runs  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------- fixtures

@pytest.fixture
def server(page: Page) -> Iterator[ServerThread]:
    srv = ServerThread(DashboardState(), health_interval_seconds=60).start()
    try:
        _runs_shim(srv)
        yield srv
    finally:
        # The page leaves before the server stops: a page left open on a stopped server retries
        # (its WebSocket, its polls) and the browser logs each refused attempt as a console error,
        # which fails the test in the page fixture's teardown (seen under load).
        page.goto("about:blank")
        srv.stop()


# ---------------------------------------------------------------------------------------------- helpers

def run(run_id: str = RUN_A, **fields: Any) -> dict[str, Any]:
    """A run dict as the spec has it (notes/runs-spec.md), with ``fields`` replacing the defaults."""
    base: dict[str, Any] = {
        "run_id": run_id, "trace_id": TRACE, "agent_id": "weather", "agent_name": "WeatherAgent",
        "service_name": "tests", "task_description": "What is the weather in Paris tomorrow?",
        "parent_run_id": None, "root_run_id": run_id,
        "started_at": "2020-01-01T00:00:00.000Z", "updated_at": "2020-01-01T00:00:01.000Z",
        "status": "running", "current_step": "waiting on fake-gpt",
        "model_calls": 1, "tool_calls": 0, "tool_failures": 0, "errors": 0,
        "tools": {}, "models": ["fake-gpt"],
        "tokens": {"input": 1200, "output": 340, "total": 1540,
                   "cache_read_input": 0, "cache_creation_input": 0, "reasoning_output": 0},
        "tokens_source": "model_calls", "cost_usd": 0.0012, "cost_status": "priced", "unpriced_models": [],
    }
    base.update(fields)
    return base


def update_runs(server: ServerThread, runs: list[dict[str, Any]]) -> None:
    """As the span processor does: from another thread than the server's loop."""
    server.state.update_runs(runs)  # type: ignore[attr-defined]


def completed(r: dict[str, Any], **fields: Any) -> DashboardEvent:
    """The agent_execution_completed of run ``r``, with the run's figures (spec: the new fields)."""
    figures = {k: r[k] for k in ("model_calls", "tool_calls", "tool_failures", "tools", "models", "tokens",
                                 "tokens_source", "cost_usd", "cost_status", "unpriced_models",
                                 "parent_run_id", "root_run_id")}
    figures.update(input_tokens=r["tokens"]["input"], output_tokens=r["tokens"]["output"], error_type=None)
    figures.update(fields)
    return agent_completed(r["agent_id"], r["agent_name"], r["task_description"], run_id=r["run_id"],
                           duration_ms=2500.0, **figures)


def open_dashboard(page: Page, server: ServerThread) -> None:
    page.goto(server.dashboard_url)
    expect(page.locator("#conn-text")).to_have_text(CONNECTED)
    expect(page.locator("#metric-total-events")).to_have_text(re.compile(r"^\d"))  # the snapshot is in


def raw_mode(page: Page) -> None:
    """The stream's raw mode: a row per event (the runs mode folds a run's events into one row)."""
    page.click("#mode-raw")
    expect(page.locator("#mode-raw")).to_have_attribute("aria-pressed", "true")


def row(page: Page, run_id: str) -> Any:
    return page.locator(f'{ROWS}[data-run="{run_id}"]')


# ---------------------------------------------------------------------------------------------- tests

def test_a_run_in_the_snapshot_shows_on_connect(page: Page, server: ServerThread) -> None:
    update_runs(server, [run(cost_usd=None, cost_status="no_price", unpriced_models=["fake-gpt"],
                             tokens={"input": 1200, "output": 340, "total": 1540, "cache_read_input": 800,
                                     "cache_creation_input": 0, "reasoning_output": 0})])
    open_dashboard(page, server)
    r = row(page, RUN_A)
    expect(r).to_have_count(1)
    expect(r.locator(".agent-name")).to_have_text("WeatherAgent")
    expect(r.locator(".agent-task")).to_have_text("What is the weather in Paris tomorrow?")
    expect(r.locator(".run-step")).to_have_text("model call to fake-gpt")  # the page's words
    expect(r.locator(".run-calls")).to_have_text("1 model call")
    expect(r.locator(".run-tokens")).to_have_text("1,200 in / 340 out · 800 cached tokens")
    # No price for the model: said so, with the reason in the tooltip.
    expect(r.locator(".run-cost")).to_have_text("no price")
    expect(r.locator(".run-cost")).to_have_attribute("title", re.compile(r"no price for fake-gpt"))
    expect(r.locator(".run-models")).to_have_text("fake-gpt")
    expect(r.locator(".agent-timer")).to_have_text(re.compile(r"^\d+:\d\d:\d\d$"))  # since 2020: hours
    expect(page.locator("#agents-count")).to_have_text("1")
    assert page.evaluate("window.otelDashboard.liveRuns") == 1


def test_run_progress_updates_the_row_within_a_second(page: Page, server: ServerThread) -> None:
    # The usual order: the agent starts (an event), then its run progresses (run_progress).
    server.publish(agent_started("weather", "WeatherAgent", "What is the weather in Paris tomorrow?",
                                 run_id=RUN_A))
    open_dashboard(page, server)
    r = row(page, RUN_A)
    expect(r).to_have_count(1)
    expect(r.locator(".run-live")).to_be_hidden()  # no progress yet

    update_runs(server, [run()])
    expect(r.locator(".run-step")).to_have_text("model call to fake-gpt", timeout=1000)
    expect(r.locator(".run-cost")).to_have_text("$0.0012", timeout=1000)
    expect(r.locator(".run-tools")).to_have_count(0)  # no tool call yet

    update_runs(server, [run(current_step="calling tool get_weather", model_calls=2, tool_calls=2,
                             tool_failures=1, tools={"get_weather": {"calls": 2, "failures": 1}},
                             cost_usd=0.0034)])
    expect(r.locator(".run-step")).to_have_text("tool get_weather", timeout=1000)
    expect(r.locator(".run-calls")).to_have_text("2 model calls", timeout=1000)
    expect(r.locator(".run-tools")).to_have_text("2 tool calls · 1 failed", timeout=1000)
    expect(r.locator(".run-tools")).to_have_class(re.compile(r"\bhas-failures\b"))
    expect(r.locator(".run-tools")).to_have_attribute("title", "get_weather: 2 calls, 1 failed")
    expect(r.locator(".run-cost")).to_have_text("$0.0034", timeout=1000)
    expect(page.locator(ROWS)).to_have_count(1)  # the same row, updated: one per run


def test_completion_removes_the_run_and_the_stream_row_shows_tokens_and_cost(
    page: Page, server: ServerThread
) -> None:
    parent = run(tool_calls=1, tools={"ask_child": {"calls": 1, "failures": 0}})
    child = run(RUN_B, agent_id="child", agent_name="ChildAgent", task_description="Look it up",
                parent_run_id=RUN_A, root_run_id=RUN_A, started_at="2020-01-01T00:00:00.500Z",
                current_step="calling tool get_weather", cost_usd=0.0005)
    update_runs(server, [parent, child])
    open_dashboard(page, server)
    raw_mode(page)
    rows = page.locator(ROWS)
    expect(rows).to_have_count(2)
    # The sub-run is under its parent, indented, and says whose it is.
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.run)") == [RUN_A, RUN_B]
    expect(row(page, RUN_B)).to_have_class(re.compile(r"\bsub-run\b.*\bdepth-1\b|\bdepth-1\b.*\bsub-run\b"))
    expect(row(page, RUN_B).locator(".agent-parent")).to_have_text("↳ sub-run of WeatherAgent")

    server.publish(completed(child))
    expect(row(page, RUN_B)).to_have_count(0, timeout=1000)
    expect(rows).to_have_count(1)
    done = completed(parent, tool_failures=1, tools={"ask_child": {"calls": 1, "failures": 1}},
                     tokens={"input": 1200, "output": 340, "total": 1540, "cache_read_input": 800,
                             "cache_creation_input": 100, "reasoning_output": 40})
    server.publish(done)
    expect(rows).to_have_count(0, timeout=1000)
    expect(page.locator("#agents-empty")).to_be_visible()
    assert page.evaluate("window.otelDashboard.liveRuns") == 0

    # A late progress message for a completed run does not bring it back.
    update_runs(server, [run()])
    page.evaluate("() => new Promise(r => setTimeout(() => requestAnimationFrame(r), 200))")
    expect(rows).to_have_count(0)

    stream_row = page.locator(f'#stream > li.ev[data-seq="{done.seq}"]')
    expect(stream_row.locator(".ev-desc")).to_have_text("WeatherAgent completed in 2.5 s")
    fields = dict(stream_row.locator(".ev-fields .kv").evaluate_all(
        "kvs => kvs.map(kv => [kv.querySelector('.k').textContent, kv.querySelector('.v').textContent])"))
    assert fields["tokens"] == "1,200 in / 340 out · 800 cached"
    assert fields["cost"] == "$0.0012"
    assert fields["calls"] == "1 model call · 1 tool call · 1 failed"

    # The detail panel has the full breakdown.
    stream_row.click()
    expect(page.locator("#detail-run-section")).to_be_visible()
    breakdown = dict(page.eval_on_selector_all(
        "#detail-run dt", "dts => dts.map(dt => [dt.textContent, dt.nextElementSibling.textContent])"))
    assert breakdown["model calls"] == "1 (fake-gpt)"
    assert breakdown["tool calls"] == "1 tool call · 1 failed"
    assert breakdown["tools"] == "ask_child: 1 call, 1 failed"
    assert (breakdown["input tokens"], breakdown["output tokens"], breakdown["total tokens"]) == (
        "1,200", "340", "1,540")
    assert (breakdown["cache read"], breakdown["cache write"], breakdown["reasoning"]) == ("800", "100", "40")
    assert breakdown["tokens from"] == "summed over the model calls"
    assert breakdown["cost"].startswith("$0.001200 (")
    assert breakdown["parent run"] == "none (a top-level run)"


def test_failed_run_without_a_price_says_no_price(page: Page, server: ServerThread) -> None:
    r = run(cost_usd=None, cost_status="no_price", unpriced_models=["fake-gpt"])
    update_runs(server, [r])
    open_dashboard(page, server)
    raw_mode(page)
    expect(row(page, RUN_A).locator(".run-cost")).to_have_text("no price")

    done = completed(r, success=False, error_type="TimeoutError", error_message="the model took too long")
    server.publish(done)
    expect(page.locator(ROWS)).to_have_count(0, timeout=1000)
    stream_row = page.locator(f'#stream > li.ev[data-seq="{done.seq}"]')
    expect(stream_row.locator(".ev-desc")).to_have_text(
        "WeatherAgent failed after 2.5 s (TimeoutError): the model took too long")
    expect(stream_row.locator(".ev-fields")).to_contain_text("no price")
    stream_row.click()
    breakdown = dict(page.eval_on_selector_all(
        "#detail-run dt", "dts => dts.map(dt => [dt.textContent, dt.nextElementSibling.textContent])"))
    assert breakdown["cost"] == "no price (no price is known for the models of this run)"
    assert breakdown["no price for"] == "fake-gpt"
    assert breakdown["error type"] == "TimeoutError"
    page.keyboard.press("Escape")  # close the view and leave the list: new rows are not held back
    page.mouse.move(0, 0)

    # A completion from a server that does not track runs: no Run section, the row as before.
    plain = agent_completed("old", "OldAgent", "no figures", run_id="run-old")
    server.publish(plain)
    old_row = page.locator(f'#stream > li.ev[data-seq="{plain.seq}"]')
    expect(old_row.locator(".ev-desc")).to_have_text("OldAgent completed in 1.2 s")
    expect(old_row.locator(".ev-fields")).not_to_contain_text("tokens")
    old_row.click()
    expect(page.locator("#detail-run-section")).to_be_hidden()


def test_run_text_is_never_html(page: Page, server: ServerThread) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    name = "<img src=x onerror=alert(1)>"
    hostile = "<img src=x onerror=window.__xss=1>"
    update_runs(server, [run(
        agent_name=name, task_description=f"<script>window.__xss=2</script>{hostile}", current_step=hostile,
        models=[hostile], tools={hostile: {"calls": 1, "failures": 1}}, tool_calls=1, tool_failures=1,
        service_name=hostile, parent_run_id=None)])
    open_dashboard(page, server)
    r = row(page, RUN_A)
    expect(r.locator(".agent-name")).to_have_text(name)
    expect(r.locator(".agent-task")).to_have_text(f"<script>window.__xss=2</script>{hostile}")
    expect(r.locator(".run-step")).to_have_text(hostile)
    expect(r.locator(".run-models")).to_have_text(hostile)
    expect(r.locator(".run-tools")).to_have_attribute("title", f"{hostile}: 1 call, 1 failed")
    page.evaluate("() => new Promise(r => setTimeout(r, 100))")  # an onerror would have run by now
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert dialogs == []
    assert page.locator("#agents img, #agents script").count() == 0


@pytest.fixture
def make_runs() -> Callable[[int], list[dict[str, Any]]]:
    def make(n: int) -> list[dict[str, Any]]:
        return [run(f"{i:016x}", agent_name=f"Agent {i}", root_run_id=f"{i:016x}") for i in range(1, n + 1)]
    return make


def test_rows_are_capped(page: Page, server: ServerThread, make_runs: Callable[[int], list[dict[str, Any]]]
                         ) -> None:
    update_runs(server, make_runs(130))
    open_dashboard(page, server)
    expect(page.locator("#agents-count")).to_have_text("130")
    expect(page.locator(ROWS)).to_have_count(100)
    expect(page.locator("#agents-more")).to_have_text("+ 30 more running")
