"""Deep links in a real headless Chromium against a real server (issue 15).

The URL's hash names the open view (``#run=``, ``#agent=&service=``, ``#trace=``, ``#event=``): a
reload or a shared URL opens the same view, closing the aside clears the hash, and Back closes a
view the page opened. A shared link to a completed run the page does not hold is found in the
server's history (``GET api/events?run_id=``).

Until the server side of ``run_id`` (issue 15, part A) is merged, :func:`_run_id_shim` answers
``api/events?run_id=`` in the browser from the real server's unfiltered history; it switches itself
off once the server takes the parameter.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import Console, ServerThread, agent_completed, agent_started, synthesis_started
from playwright.sync_api import Page, Route, expect

from otel_dashboard.state.dashboard import DashboardState

CONNECTED = "Connected - Live Updates"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    # A snapshot of 5 events: older ones are only in the server's history.
    srv = ServerThread(DashboardState(), health_interval_seconds=60, history_size=5).start()
    try:
        yield srv
    finally:
        srv.stop()


def _server_has_run_id(server: ServerThread) -> bool:
    try:
        with urllib.request.urlopen(f"{server.url}/api/events?run_id=probe&limit=1", timeout=5):
            return True
    except urllib.error.HTTPError as exc:
        if exc.code == 400:
            return False
        raise


def _run_id_shim(page: Page, server: ServerThread) -> None:
    """``api/events?run_id=`` for a server without the filter: the real history, filtered here."""
    if _server_has_run_id(server):
        return

    def fulfil(route: Route) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlparse(route.request.url).query)
        ids = set(query.get("run_id", []))
        with urllib.request.urlopen(f"{server.url}/api/events?limit=1000", timeout=5) as res:
            events = json.load(res)["events"]
        mine = sorted((e for e in events if e["data"].get("run_id") in ids), key=lambda e: e["seq"])
        route.fulfill(status=200, content_type="application/json", body=json.dumps({"events": mine}))

    page.route(re.compile(r".*/api/events\?run_id=.*"), fulfil)


def open_at(page: Page, server: ServerThread, hash_: str = "") -> None:
    page.goto(server.dashboard_url + hash_)
    expect(page.locator("#conn-text")).to_have_text(CONNECTED)


def view(page: Page) -> Any:
    return page.locator("#detail")


def test_each_route_opens_its_view_on_load_and_on_reload(
    page: Page, server: ServerThread, console: Console
) -> None:
    console.allow(r"status of 404")  # the trace is not kept: the trace view says so
    rid = "abab0101cdcd0202"
    server.publish(agent_started("weather", "WeatherAgent", "Forecast", run_id=rid))
    old = server.publish(synthesis_started("old-phase"))
    for i in range(6):
        server.publish(synthesis_started(f"filler-{i}"))
    recent = server.publish(synthesis_started("recent-phase"))

    open_at(page, server, f"#run={rid}")
    expect(view(page)).to_have_attribute("data-view", "run")
    expect(page.locator("#detail-sev")).to_have_text("running")
    page.reload()
    expect(view(page)).to_have_attribute("data-view", "run")
    expect(page.locator("#detail-title")).to_have_text("WeatherAgent")

    open_at(page, server, "#agent=WeatherAgent&service=tests")  # a hash change: no reload
    expect(view(page)).to_have_attribute("data-view", "agent")

    # The trace page (not the aside), on load and on reload, with its span.
    open_at(page, server, f"#trace={TRACE}&span=00f067aa0ba902b7")
    expect(view(page)).to_be_hidden()
    expect(page.locator("#page-trace")).to_be_visible()
    expect(page.locator("#trace-page-view")).to_have_attribute("data-trace-id", TRACE)
    expect(page.locator("#trace-page-view")).to_have_attribute("data-state", "missing")  # not kept
    page.reload()
    expect(page.locator("#page-trace")).to_be_visible()
    expect(page.locator("#trace-page-view")).to_have_attribute("data-trace-id", TRACE)
    assert page.evaluate("location.hash") == f"#trace={TRACE}&span=00f067aa0ba902b7"

    # An event the page holds, then one only the server's history has (not in the 5-event snapshot).
    open_at(page, server, f"#event={recent.seq}")
    expect(view(page)).to_have_attribute("data-view", "event")
    expect(page.locator("#detail-desc")).to_have_text("Synthesis recent-phase started: Cluster findings")
    page.reload()
    expect(page.locator("#detail-desc")).to_have_text("Synthesis recent-phase started: Cluster findings")
    open_at(page, server, f"#event={old.seq}")
    expect(page.locator("#detail-desc")).to_have_text("Synthesis old-phase started: Cluster findings")
    assert page.locator(f'#stream > li[data-seq="{old.seq}"]').count() == 0
    server.publish(agent_completed("weather", "WeatherAgent", "Forecast", run_id=rid))


def test_closing_clears_the_url_and_back_closes_the_view(page: Page, server: ServerThread) -> None:
    ev = server.publish(synthesis_started("clicked-phase"))
    open_at(page, server)
    stream_row = page.locator(f'#stream > li[data-seq="{ev.seq}"]')
    stream_row.click()
    expect(view(page)).to_be_visible()
    assert page.evaluate("location.hash") == f"#event={ev.seq}"
    page.keyboard.press("Escape")
    expect(view(page)).to_be_hidden()
    expect(page).to_have_url(server.dashboard_url)  # no hash left

    stream_row.click()
    expect(page).to_have_url(f"{server.dashboard_url}#event={ev.seq}")
    page.go_back()
    expect(view(page)).to_be_hidden()
    expect(page).to_have_url(server.dashboard_url)
    page.go_forward()
    expect(view(page)).to_be_visible()
    expect(page.locator("#detail-desc")).to_have_text("Synthesis clicked-phase started: Cluster findings")
    page.locator("#detail-close").click()
    expect(page).to_have_url(server.dashboard_url)


def test_a_shared_link_opens_a_completed_run_found_only_in_history(page: Page, server: ServerThread,
                                                                   console: Console) -> None:
    console.allow(r"status of 404")
    rid = "efef0303abab0404"
    server.publish(agent_started("planner", "Planner", "Plan the trip", run_id=rid))
    server.publish(agent_completed("planner", "Planner", "Plan the trip", run_id=rid, duration_ms=4200.0,
                                   model_calls=2, models=["gpt-4o"], tool_calls=1,
                                   tools={"web_search": {"calls": 1, "failures": 0}},
                                   tokens={"input": 900, "output": 120, "total": 1020}, cost_usd=0.0021,
                                   cost_status="priced", tokens_source="model_calls"))
    for i in range(6):
        server.publish(synthesis_started(f"after-{i}"))  # the run's events leave the snapshot
    _run_id_shim(page, server)
    open_at(page, server, f"#run={rid}")  # a fresh page: it holds none of the run's events
    expect(page.locator("#detail-sev")).to_have_text("succeeded")
    expect(page.locator("#detail-title")).to_have_text("Planner")
    summary = dict(page.eval_on_selector_all(
        ".run-view-summary dt", "dts => dts.map(dt => [dt.textContent, dt.nextElementSibling.textContent])"))
    assert summary["duration"] == "4.2 s"
    assert summary["task"] == "Plan the trip"
    expect(page.locator(".run-view-figures")).to_contain_text("2 (gpt-4o)")
    expect(page.locator(".run-view-figures")).to_contain_text("$0.002100")


def test_an_older_server_without_the_run_id_filter_says_so(page: Page, server: ServerThread,
                                                           console: Console) -> None:
    console.allow(r"status of 400")
    page.route(re.compile(r".*/api/events\?run_id=.*"), lambda route: route.fulfill(
        status=400, content_type="application/json",
        body=json.dumps({"error": "unknown parameter: run_id", "parameter": "run_id"})))
    open_at(page, server, "#run=nosuchrun")
    expect(page.locator(".run-view-status")).to_contain_text("cannot look runs up by id")
